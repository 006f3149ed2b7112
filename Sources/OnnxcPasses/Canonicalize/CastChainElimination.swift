import OnnxcCore
public import OnnxcIR

/// Collapses Cast(Cast(x, T1), T2) into one Cast when the middle type loses nothing.
///
/// Matches: a Cast reading a Cast, where the inner cast is exact for every value of x's type T0 (float16 →
/// float, int8 → int32, …: widening only; float → int → float is not), or T1 == T2. Produces: Cast(x, T2), or no
/// node when T2 is x's own type; the inner Cast goes when nothing else reads it. Preconditions: the types are
/// standard (bool, integers up to 64 bits, float16, bfloat16, float, double: not strings, whose text depends on
/// the source type, nor 4-bit or float8 pairs runtimes may not implement); a half-precision T2 needs T0 exact in
/// float, since runtimes round to half through float. Numerics: unchanged. Tested by: NoOpEliminationTests.
public struct CastChainElimination: Pass {
    public let id = "fold-cast-chain"
    public let summary = "collapse Cast chains whose middle type is exact"

    public init() {}

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        let index = GraphIndex(graph)
        let outputs = Set(graph.outputs.map(\.name))
        var types: [String: DType] = [:]
        for tensor in graph.initializers { types[tensor.name] = tensor.dtype }
        for info in graph.valueInfo + graph.outputs + graph.inputs { if let t = info.type?.tensorType { types[info.name] = t.elementType } }
        var patch = GraphPatch()
        var touched = Set<Int>()
        for (n, outer) in graph.nodes.enumerated() where outer.opType == "Cast" && outer.domain.isEmpty && !touched.contains(n) {
            guard let middle = outer.inputs.first, !middle.isEmpty, let output = outer.outputs.first, !output.isEmpty,
                  let i = index.producer(of: middle)?.node, !touched.contains(i) else { continue }
            let inner = graph.nodes[i]
            guard inner.opType == "Cast", inner.domain.isEmpty, let x = inner.inputs.first, !x.isEmpty,
                  case .int(let t1)? = inner.attribute("to"), case .int(let t2)? = outer.attribute("to"),
                  let mid = DType(rawValue: Int32(truncatingIfNeeded: t1)), let target = DType(rawValue: Int32(truncatingIfNeeded: t2)) else { continue }
            let source = types[x]
            var replacement = outer
            replacement.inputs = [x]
            if mid == target {
                // Casting twice to one type is casting once; the inner cast's settings (saturate) are the ones that act.
                replacement.attributes = inner.attributes
            } else {
                guard let source, Self.isExact(source, mid), Self.standard.contains(target),
                      !Self.halves.contains(target) || Self.isExact(source, .float) else { continue }
            }
            if source == target, !outputs.contains(output) {
                patch.redirects[output] = x
                patch.remove(n)
            } else {
                patch.replace(n, with: [replacement])
            }
            touched.insert(n)
            if index.consumers(of: middle).count == 1, !index.isGraphOutput(middle) {
                patch.remove(i)
                touched.insert(i)
            }
        }
        return patch.isEmpty ? nil : patch
    }

    static let halves: Set<DType> = [.float16, .bfloat16]
    static let standard: Set<DType> = [.bool, .uint8, .int8, .uint16, .int16, .uint32, .int32, .uint64, .int64, .float16, .bfloat16, .float, .double]

    /// True when every value of `source` is exactly representable in `target`.
    static func isExact(_ source: DType, _ target: DType) -> Bool {
        if source == target { return standard.contains(source) }
        let wider: Set<DType>
        switch source {
        case .bool: wider = standard
        case .uint8: wider = [.uint16, .int16, .uint32, .int32, .uint64, .int64, .float16, .bfloat16, .float, .double]
        case .int8: wider = [.int16, .int32, .int64, .float16, .bfloat16, .float, .double]
        case .uint16: wider = [.uint32, .int32, .uint64, .int64, .float, .double]
        case .int16: wider = [.int32, .int64, .float, .double]
        case .uint32: wider = [.uint64, .int64, .double]
        case .int32: wider = [.int64, .double]
        case .float16, .bfloat16: wider = [.float, .double]
        case .float: wider = [.double]
        default: wider = []
        }
        return wider.contains(target)
    }
}
