import OnnxcCore
public import OnnxcIR

/// Resolves shape computations over symbolic dims: what is static becomes a constant, and a Reshape target
/// built from the input's own symbolic dims becomes a constant in Reshape's conventions (0 copies the input's
/// dim at that position, -1 is inferred from the element count).
///
/// Exporters write `x.view(x.size(0), 2, 24, h, w)` as Shape → Gather → Unsqueeze → Concat → Reshape; with a
/// dynamic batch only the batch entry is unknown, and it is the input's own dim 0, so the target is the constant
/// [0, 2, 24, h, w] and the whole shape chain becomes dead code. onnxsim and onnxslim reach the same result by
/// propagating dims; ShuffleNet's and the transformers' node counts depend on it.
///
/// Matches: (a) an int64 node whose value traces (see `ShapeTracer`) to entries that are all static, e.g.
/// Slice(Shape(x), -1) of an x whose last dim is static; (b) a Reshape (allowzero 0) whose shape input is not a
/// constant but traces to entries. Produces: (a) an initializer in place of the node; (b) the same Reshape
/// reading a new int64 initializer. Preconditions for (b): every entry resolves — to its constant or static
/// dim, to 0 when it is the named symbolic dim the data input has at the same position, or to -1 for the one
/// remaining entry when every other entry is a positive constant (a copied dim could be 0 in an empty batch,
/// and then -1 would not be inferable where the original worked). Unknown dims (`?`) match nothing.
/// Numerics: the same values by Reshape's definition. Tested by: SymbolicShapeResolutionTests.
public struct SymbolicShapeResolution: Pass {
    public let id = "resolve-symbolic-shapes"
    public let summary = "fold shape arithmetic over symbolic dims; Reshape targets become constants (0 = copy, -1 = infer)"

    public init() {}

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        let tracer = ShapeTracer(graph: graph)
        let graphOutputs = Set(graph.outputs.map(\.name))
        var taken = FusionSupport.takenNames(graph)
        var patch = GraphPatch()
        for (n, node) in graph.nodes.enumerated() where canonicalDomain(node.domain).isEmpty && node.subgraphs.isEmpty {
            if let folded = staticValue(node, tracer: tracer), !graphOutputs.contains(folded.name) {
                patch.addedInitializers.append(folded)
                patch.remove(n)
                continue
            }
            guard node.opType == "Reshape", node.inputs.count == 2, FusionSupport.int(node, "allowzero") ?? 0 == 0,
                  FusionSupport.constant(node.inputs[1], in: graph) == nil,
                  let entries = tracer.entries(of: node.inputs[1]),
                  let target = resolve(entries, data: tracer.shape(of: node.inputs[0])) else { continue }
            let name = FusionSupport.freshName(node.inputs[1] + "_resolved", &taken)
            guard let data = try? TensorData(int64s: target, dims: [Int64(target.count)]) else { continue }
            var rewritten = node
            rewritten.inputs[1] = name
            patch.addedInitializers.append(Tensor(name: name, data: data))
            patch.replace(n, with: [rewritten])
        }
        return patch.isEmpty ? nil : patch
    }

    /// A traced int64 value that turned out fully static, as an initializer of the node's declared shape.
    private func staticValue(_ node: Node, tracer: ShapeTracer) -> Tensor? {
        guard ShapeTracer.tracedOps.contains(node.opType), node.outputs.count == 1, let output = node.outputs.first,
              let type = tracer.type(of: output), type.elementType == .int64,
              let dims = type.shape?.fixedDims, dims.count <= 1,
              let entries = tracer.entries(of: output), entries.count == (dims.first.map(Int.init) ?? 1) else { return nil }
        var values: [Int64] = []
        for entry in entries {
            guard let value = entry.staticValue else { return nil }
            values.append(value)
        }
        guard let data = try? TensorData(int64s: values, dims: dims) else { return nil }
        return Tensor(name: output, data: data)
    }

    /// The constant target, or nil when some entry stays unknown.
    func resolve(_ entries: [ShapeTracer.Entry], data: Shape?) -> [Int64]? {
        var target: [Int64?] = entries.enumerated().map { position, entry in
            if let value = entry.staticValue { return value }
            guard case .dim(.symbolic(let name)) = entry, let data, position < data.rank,
                  case .symbolic(name) = data.dims[position] else { return nil }
            return 0
        }
        let unresolved = target.indices.filter { target[$0] == nil }
        if unresolved.count == 1, target.allSatisfy({ ($0 ?? 1) > 0 }) { target[unresolved[0]] = -1 }
        let resolved = target.compactMap { $0 }
        return resolved.count == target.count ? resolved : nil
    }
}

/// Reads a small integer vector computed from shapes as a list of entries: constants, dims of some value's
/// declared shape, or run-time values it cannot name (products of symbolic dims, say).
struct ShapeTracer {
    enum Entry: Equatable {
        case constant(Int64)
        case dim(Dim)
        case opaque

        var staticValue: Int64? {
            switch self {
            case .constant(let value), .dim(.fixed(let value)): value
            default: nil
            }
        }
    }

    /// The ops whose results the tracer follows.
    static let tracedOps: Set<String> = ["Shape", "Gather", "Slice", "Unsqueeze", "Squeeze", "Identity", "Cast", "Concat",
                                         "Mul", "Add", "Sub"]
    /// Traced vectors longer than this are not shape vectors worth resolving (and bound the work per node).
    static let maximumLength = 64

    let graph: Graph
    private let index: GraphIndex
    /// Declared or inferred tensor types by value name (one pass over the graph's value infos, not a scan per query).
    private let types: [String: TensorType]

    init(graph: Graph) {
        self.graph = graph
        index = GraphIndex(graph)
        var types: [String: TensorType] = [:]
        for info in graph.inputs + graph.valueInfo + graph.outputs {
            if let type = info.type?.tensorType, types[info.name] == nil { types[info.name] = type }
        }
        self.types = types
    }

    func type(of name: String) -> TensorType? { types[name] }

    /// The declared or inferred shape of a value.
    func shape(of name: String) -> Shape? {
        if let shape = types[name]?.shape { return shape }
        if let tensor = graph.initializer(named: name) { return Shape(tensor.dims.map { .fixed($0) }) }
        return nil
    }

    /// The entries of a 0-D or 1-D integer value, or nil when it cannot be traced.
    func entries(of name: String) -> [Entry]? {
        if FusionSupport.constant(name, in: graph) != nil {
            return constantInts(name)?.map { .constant($0) }
        }
        guard let (n, _) = index.producer(of: name) else { return nil }
        let node = graph.nodes[n]
        guard canonicalDomain(node.domain).isEmpty, node.outputs.count == 1, ShapeTracer.tracedOps.contains(node.opType) else { return nil }
        switch node.opType {
        case "Shape":
            guard let source = node.inputs.first, let shape = shape(of: source) else { return nil }
            let (start, end) = ShapeTracer.range(start: FusionSupport.int(node, "start"), end: FusionSupport.int(node, "end"), count: shape.rank)
            return start < end ? shape.dims[start..<end].map { .dim($0) } : []
        case "Gather":
            guard node.inputs.count == 2, FusionSupport.int(node, "axis") ?? 0 == 0,
                  let source = entries(of: node.inputs[0]), let indices = constantInts(node.inputs[1]) else { return nil }
            var picked: [Entry] = []
            for raw in indices {
                let position = raw < 0 ? raw + Int64(source.count) : raw
                guard position >= 0, position < source.count else { return nil }
                picked.append(source[Int(position)])
            }
            return picked
        case "Slice":
            return slice(node)
        case "Unsqueeze", "Squeeze", "Identity":
            // One element keeps its value whatever the axes; longer vectors only through Identity.
            guard let source = node.inputs.first.flatMap(entries(of:)), source.count == 1 || node.opType == "Identity" else { return nil }
            return source
        case "Cast":
            guard let to = FusionSupport.int(node, "to"), to == Int64(DType.int64.rawValue) || to == Int64(DType.int32.rawValue) else { return nil }
            return node.inputs.first.flatMap(entries(of:))
        case "Concat":
            guard FusionSupport.int(node, "axis") == 0 || FusionSupport.int(node, "axis") == -1 else { return nil }
            var all: [Entry] = []
            for input in node.inputs {
                guard let part = entries(of: input) else { return nil }
                all += part
                if all.count > ShapeTracer.maximumLength { return nil }
            }
            return all
        default:
            return arithmetic(node)
        }
    }

    /// Slice of a traced vector with constant starts, ends and (optional) axes 0 and steps, as Slice clamps them.
    private func slice(_ node: Node) -> [Entry]? {
        guard node.inputs.count >= 3, let source = entries(of: node.inputs[0]),
              let starts = constantInts(node.inputs[1]), let ends = constantInts(node.inputs[2]),
              starts.count == 1, ends.count == 1 else { return nil }
        if node.inputs.count > 3, !node.inputs[3].isEmpty {
            guard let axes = constantInts(node.inputs[3]), axes == [0] || axes == [-1] else { return nil }
        }
        var step: Int64 = 1
        if node.inputs.count > 4, !node.inputs[4].isEmpty {
            guard let steps = constantInts(node.inputs[4]), steps.count == 1, steps[0] != 0 else { return nil }
            step = steps[0]
        }
        return ShapeTracer.sliceIndices(start: starts[0], end: ends[0], step: step, count: source.count).map { source[$0] }
    }

    /// The positions Slice picks from `count` elements (ONNX's clamping: [0, count] forwards, [-1, count-1] backwards).
    static func sliceIndices(start: Int64, end: Int64, step: Int64, count: Int) -> [Int] {
        let n = Int64(count)
        func clamped(_ v: Int64, _ low: Int64, _ high: Int64) -> Int64 { max(low, min(high, v < 0 ? v &+ n : v)) }
        var indices: [Int] = []
        if step > 0 {
            var i = clamped(start, 0, n)
            let stop = clamped(end, 0, n)
            while i < stop { indices.append(Int(i)); i += step }
        } else if n > 0 {
            var i = clamped(start, 0, n - 1)
            let stop = clamped(end, -1, n - 1)
            while i > stop { indices.append(Int(i)); i += step }
        }
        return indices
    }

    /// Element-wise Mul/Add/Sub of traced vectors of equal length (or one side of length 1): constants are
    /// computed (when they do not overflow), anything symbolic becomes opaque.
    private func arithmetic(_ node: Node) -> [Entry]? {
        guard node.inputs.count == 2, let a = entries(of: node.inputs[0]), let b = entries(of: node.inputs[1]),
              a.count == b.count || a.count == 1 || b.count == 1 else { return nil }
        let count = max(a.count, b.count)
        return (0..<count).map { i in
            guard let x = a[a.count == 1 ? 0 : i].staticValue, let y = b[b.count == 1 ? 0 : i].staticValue else { return .opaque }
            let (value, overflow) = switch node.opType {
            case "Mul": x.multipliedReportingOverflow(by: y)
            case "Add": x.addingReportingOverflow(y)
            default: x.subtractingReportingOverflow(y)
            }
            return overflow ? .opaque : .constant(value)
        }
    }

    /// The elements of a small constant integer tensor.
    private func constantInts(_ name: String) -> [Int64]? {
        guard let tensor = FusionSupport.constant(name, in: graph), tensor.dtype == .int64 || tensor.dtype == .int32,
              tensor.dims.count <= 1, tensor.data.elementCount <= ShapeTracer.maximumLength else { return nil }
        return tensor.data.integers()
    }

    /// Start and end clamped to [0, count] the way Shape and Slice clamp them (negative counts from the end).
    static func range(start: Int64?, end: Int64?, count: Int) -> (Int, Int) {
        let n = Int64(count)
        func clamp(_ v: Int64) -> Int { Int(max(0, min(n, v < 0 ? v + n : v))) }
        return (clamp(start ?? 0), clamp(end ?? n))
    }
}
