import OnnxcCore
public import OnnxcIR

/// Fuses the exact (Erf-based) GELU that exporters spell out, x·0.5·(1 + Erf(x/√2)), into one Gelu.
///
/// Matches: u = Div(x, √2) or Mul(x, 1/√2); e = Erf(u); p = Add(e, 1); then the product of x, p and one half in
/// the orderings exporters use — (x·p)·0.5 (PyTorch), (0.5·x)·p and (x·0.5)·p (Hugging Face, TensorFlow),
/// x·(p·0.5) — with Div(·, 2) accepted for ·0.5 and Add/Mul operands in either order. Produces: Gelu(x) (approximate
/// "none") writing the last matched node's output, so graph outputs keep their names. Preconditions:
/// default-domain opset ≥ 20 (Gelu's first version; below it the pattern stays); every intermediate has exactly
/// one consumer and is not a graph output; the constants are single-element, of a floating type, equal to
/// √2, 1/√2, 1, 0.5 or 2 within that type's rounding, and no larger in rank than x (so they do not broadcast x
/// up). Numerics: the same function in one kernel; equal within float rounding. Tested by: GeluFusionTests.
public struct GeluFusion: Pass {
    public let id = "fuse-gelu"
    public let summary = "fuse Erf-based GELU into Gelu (opset >= 20)"

    /// Gelu entered the default domain in opset 20.
    static let firstOpset: Int64 = 20

    public init() {}

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        guard context.opset(for: defaultDomain) >= GeluFusion.firstOpset else { return nil }
        let matcher = GeluMatcher(pattern: PatternGraph(graph))
        return matcher.pattern.fuse(anchoredAt: "Erf") { matcher.match(fromErf: $0) }
    }
}

private struct GeluMatcher {
    /// Gelu's T.
    static let floatTypes: Set<DType> = [.float, .float16, .double, .bfloat16]

    let pattern: PatternGraph
    var graph: Graph { pattern.graph }
    var index: GraphIndex { pattern.index }
    var constants: [String: TensorData] { pattern.constants }

    func node(_ n: Int) -> Node { pattern.node(n) }

    /// The node's two inputs when it is the binary default-domain `op` with one output.
    func binary(_ n: Int, _ op: String) -> (String, String)? {
        let candidate = node(n)
        guard candidate.opType == op, canonicalDomain(candidate.domain).isEmpty, candidate.inputs.count == 2,
              let output = candidate.outputs.first, !output.isEmpty else { return nil }
        return (candidate.inputs[0], candidate.inputs[1])
    }

    func output(_ n: Int) -> String { node(n).outputs.first ?? "" }

    /// The single node reading `value` through an input slot, when `value` is not a graph output either.
    func soleConsumer(of value: String) -> Int? { pattern.soleConsumer(of: value)?.node }

    /// True when `name` is a single-element floating constant equal to `expected` within its type's rounding,
    /// whose rank cannot raise x's (rank nil: x's rank is unknown, so only a rank-0 constant is safe).
    func isConstant(_ name: String, _ expected: Double, rank: Int?, dtype: DType?) -> Bool {
        guard let data = constants[name], data.elementCount == 1, GeluMatcher.floatTypes.contains(data.dtype),
              dtype == nil || dtype == data.dtype, data.dims.count <= (rank ?? 0),
              let value = data.numericValue(at: 0) else { return false }
        let tolerance: Double = switch data.dtype {
        case .float16: 1e-3
        case .bfloat16: 1e-2
        default: 1e-6
        }
        return abs(value - expected) <= tolerance * abs(expected)
    }

    /// x · ½ spelled Mul(x, 0.5) in either order or Div(x, 2): the operand that is not the constant.
    func halved(_ n: Int, rank: Int?, dtype: DType?) -> String? {
        if let (a, b) = binary(n, "Mul") {
            if isConstant(b, 0.5, rank: rank, dtype: dtype) { return a }
            if isConstant(a, 0.5, rank: rank, dtype: dtype) { return b }
        }
        if let (a, b) = binary(n, "Div"), isConstant(b, 2, rank: rank, dtype: dtype) { return a }
        return nil
    }

    func match(fromErf erfNode: Int) -> FusionMatch? {
        guard let u = node(erfNode).inputs.first, !u.isEmpty, let scaleNode = index.producer(of: u)?.node,
              soleConsumer(of: u) == erfNode else { return nil }

        // u = x / √2 or x · (1/√2); x's declared type (when known) fixes the rank and type the constants may have.
        let x: String
        func typeOf(_ name: String) -> (rank: Int?, dtype: DType?) {
            let type = graph.declaredType(of: name)?.tensorType
            return (type?.shape?.rank, type?.elementType)
        }
        if let (a, b) = binary(scaleNode, "Div"), a != b, isConstant(b, 2.0.squareRoot(), rank: typeOf(a).rank, dtype: typeOf(a).dtype) {
            x = a
        } else if let (a, b) = binary(scaleNode, "Mul"), a != b, isConstant(b, 0.5.squareRoot(), rank: typeOf(a).rank, dtype: typeOf(a).dtype) {
            x = a
        } else if let (a, b) = binary(scaleNode, "Mul"), a != b, isConstant(a, 0.5.squareRoot(), rank: typeOf(b).rank, dtype: typeOf(b).dtype) {
            x = b
        } else {
            return nil
        }
        let (rank, dtype) = typeOf(x)
        if let dtype, !GeluMatcher.floatTypes.contains(dtype) { return nil }

        // p = Erf(u) + 1.
        guard let addNode = soleConsumer(of: output(erfNode)), let (a0, a1) = binary(addNode, "Add"),
              a0 == output(erfNode) ? isConstant(a1, 1, rank: rank, dtype: dtype) : (a1 == output(erfNode) && isConstant(a0, 1, rank: rank, dtype: dtype)),
              let firstMul = soleConsumer(of: output(addNode)), let (m0, m1) = binary(firstMul, "Mul") else { return nil }
        let p = output(addNode)
        guard m0 != m1 else { return nil }
        let other = m0 == p ? m1 : m0
        var nodes = [scaleNode, erfNode, addNode, firstMul]
        let last: Int
        if other == x {
            // (x · p) · ½
            guard let half = soleConsumer(of: output(firstMul)), halved(half, rank: rank, dtype: dtype) == output(firstMul) else { return nil }
            last = half
        } else if isConstant(other, 0.5, rank: rank, dtype: dtype) {
            // x · (p · ½)
            guard let outer = soleConsumer(of: output(firstMul)), let (o0, o1) = binary(outer, "Mul"),
                  (o0 == x && o1 == output(firstMul)) || (o1 == x && o0 == output(firstMul)) else { return nil }
            last = outer
        } else if let half = index.producer(of: other)?.node, soleConsumer(of: other) == firstMul,
                  halved(half, rank: rank, dtype: dtype) == x {
            // (x · ½) · p
            nodes.append(half)
            last = firstMul
        } else {
            return nil
        }
        if last != firstMul { nodes.append(last) }
        let result = output(last)
        guard !result.isEmpty else { return nil }
        let fused = Node(name: node(erfNode).name.isEmpty ? "" : node(erfNode).name + "/Gelu", opType: "Gelu",
                         inputs: [x], outputs: [result])
        return FusionMatch(nodes: nodes, last: last, fused: fused)
    }
}
