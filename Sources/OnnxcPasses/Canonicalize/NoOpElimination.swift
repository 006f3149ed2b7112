import OnnxcCore
public import OnnxcIR

/// Removes nodes that provably return their input unchanged.
///
/// Matches: Cast/CastLike to the input's own type; Reshape whose constant shape resolves to the input's shape;
/// Expand to a shape that broadcasts to the input's own; Pad with all-zero pads; Transpose with the identity
/// permutation; Slice with step 1 keeping every element of each sliced (static) axis; Split into one output;
/// Concat of one input; Add/Sub of a constant 0 and Mul/Div by a constant 1 of the same type whose shape does
/// not broadcast the other operand to a larger one (Add of a [1,3] zero to a [3] value is not a no-op).
/// Produces: uses of the output read the input, and the node goes. Preconditions: the output is not a graph
/// output; every fact is proven from constants (initializers that are not graph inputs, Constant nodes) and
/// declared shapes, never assumed. Numerics: unchanged (x + 0 turns -0 into +0, which compares equal).
/// Tested by: NoOpEliminationTests.
public struct NoOpElimination: Pass {
    public let id = "eliminate-noop"
    public let summary = "remove Cast, Reshape, Expand, Pad, Transpose, Slice, Split, Concat and arithmetic that change nothing"

    public init() {}

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        let outputs = Set(graph.outputs.map(\.name))
        let facts = NoOpFacts(graph)
        let opset = context.opset(for: "")
        var patch = GraphPatch()
        for (n, node) in graph.nodes.enumerated() where node.domain.isEmpty && node.subgraphs.isEmpty {
            guard let output = node.outputs.first, !output.isEmpty, !outputs.contains(output),
                  let source = passedThrough(node, facts, opset: opset), !source.isEmpty, source != output else { continue }
            patch.redirects[output] = source
            patch.remove(n)
        }
        return patch.isEmpty ? nil : patch
    }

    /// The input `node` returns unchanged, or nil when that is not proven.
    private func passedThrough(_ node: Node, _ facts: NoOpFacts, opset: Int64) -> String? {
        guard let x = node.inputs.first, !x.isEmpty else { return nil }
        switch node.opType {
        case "Cast":
            guard case .int(let to) = node.attribute("to"), let source = facts.type(x)?.elementType,
                  Int64(source.rawValue) == to else { return nil }
            return x
        case "CastLike":
            guard node.inputs.count > 1, let source = facts.type(x)?.elementType,
                  let target = facts.type(node.inputs[1])?.elementType, source == target else { return nil }
            return x
        case "Reshape":
            guard opset >= 5, node.inputs.count > 1, let shape = facts.ints(node.inputs[1]), let dims = facts.type(x)?.shape?.dims else { return nil }
            var allowZero = false
            if case .int(let a) = node.attribute("allowzero") { allowZero = a != 0 }
            return Self.reshapeKeeps(dims, shape, allowZero: allowZero) ? x : nil
        case "Expand":
            guard node.inputs.count > 1, let shape = facts.ints(node.inputs[1]), let dims = facts.type(x)?.shape?.dims else { return nil }
            return Self.broadcastKeeps(dims, shape) ? x : nil
        case "Pad":
            let pads: [Int64]?
            if opset >= 11 {
                pads = node.inputs.count > 1 ? facts.ints(node.inputs[1]) : nil
            } else if case .ints(let p) = node.attribute(opset < 2 ? "paddings" : "pads") {
                pads = p
            } else {
                pads = nil
            }
            guard let pads, pads.allSatisfy({ $0 == 0 }) else { return nil }
            return x
        case "Transpose":
            if case .ints(let perm) = node.attribute("perm") {
                return perm == (0..<Int64(perm.count)).map { $0 } ? x : nil
            }
            guard let rank = facts.type(x)?.shape?.rank, rank <= 1 else { return nil }
            return x
        case "Slice":
            return slicesEverything(node, facts, opset: opset) ? x : nil
        case "Split":
            guard node.outputs.count == 1 else { return nil }
            var sizes: [Int64]?
            if case .ints(let s) = node.attribute("split") { sizes = s }
            if node.inputs.count > 1, !node.inputs[1].isEmpty {
                guard let s = facts.ints(node.inputs[1]) else { return nil }
                sizes = s
            }
            if let sizes {
                // A single explicit size must cover the whole axis.
                var axis: Int64 = 0
                if case .int(let a) = node.attribute("axis") { axis = a }
                guard sizes.count == 1, let dims = facts.type(x)?.shape?.dims else { return nil }
                let rank = Int64(dims.count)
                let normalized = axis < 0 ? axis + rank : axis
                guard normalized >= 0, normalized < rank, dims[Int(normalized)].fixedValue == sizes[0] else { return nil }
            }
            return x
        case "Concat":
            return node.inputs.count == 1 ? x : nil
        case "Add", "Sub", "Mul", "Div":
            guard node.inputs.count == 2 else { return nil }
            let neutral: Double = node.opType == "Add" || node.opType == "Sub" ? 0 : 1
            let commutes = node.opType == "Add" || node.opType == "Mul"
            if isNeutral(node.inputs[1], for: node.inputs[0], neutral, facts) { return node.inputs[0] }
            if commutes, isNeutral(node.inputs[0], for: node.inputs[1], neutral, facts) { return node.inputs[1] }
            return nil
        default:
            return nil
        }
    }

    /// True when `constant` holds only `neutral`, has `operand`'s element type, and broadcasting it against
    /// `operand` yields `operand`'s shape.
    private func isNeutral(_ constant: String, for operand: String, _ neutral: Double, _ facts: NoOpFacts) -> Bool {
        guard !operand.isEmpty, constant != operand, let tensor = facts.constants[constant],
              let type = facts.type(operand), type.elementType == tensor.dtype, let dims = type.shape?.dims,
              Self.broadcastKeeps(dims, tensor.dims) else { return false }
        for i in 0..<tensor.data.elementCount where tensor.data.numericValue(at: i) != neutral { return false }
        return true
    }

    /// True when broadcasting `dims` with `other` gives `dims` back: `other` has no more dims, and each of its
    /// aligned dims is 1 or equals a static dim of `dims`.
    static func broadcastKeeps(_ dims: [Dim], _ other: [Int64]) -> Bool {
        guard other.count <= dims.count else { return false }
        let offset = dims.count - other.count
        for (i, size) in other.enumerated() where size != 1 {
            guard dims[offset + i].fixedValue == size else { return false }
        }
        return true
    }

    /// True when Reshape of a value of shape `dims` to `shape` gives `dims` back.
    static func reshapeKeeps(_ dims: [Dim], _ shape: [Int64], allowZero: Bool) -> Bool {
        guard shape.count == dims.count else { return false }
        var inferred: Int?
        for (i, size) in shape.enumerated() {
            if size == 0 && !allowZero { continue }  // copies the input dim
            if size == -1 {
                guard inferred == nil else { return false }
                inferred = i
                continue
            }
            guard dims[i].fixedValue == size else { return false }
        }
        // -1 recovers its input dim only when the other dims multiply to a known non-zero count.
        if let k = inferred {
            for (i, dim) in dims.enumerated() where i != k {
                guard let value = dim.fixedValue, value > 0 else { return false }
            }
        }
        return true
    }

    private func slicesEverything(_ node: Node, _ facts: NoOpFacts, opset: Int64) -> Bool {
        guard let x = node.inputs.first, let dims = facts.type(x)?.shape?.dims else { return false }
        let starts: [Int64], ends: [Int64]
        var axes: [Int64]?, steps: [Int64]?
        if opset < 10 {
            guard case .ints(let s) = node.attribute("starts"), case .ints(let e) = node.attribute("ends") else { return false }
            starts = s
            ends = e
            if case .ints(let a) = node.attribute("axes") { axes = a }
        } else {
            guard node.inputs.count >= 3, let s = facts.ints(node.inputs[1]), let e = facts.ints(node.inputs[2]) else { return false }
            starts = s
            ends = e
            if node.inputs.count > 3, !node.inputs[3].isEmpty {
                guard let a = facts.ints(node.inputs[3]) else { return false }
                axes = a
            }
            if node.inputs.count > 4, !node.inputs[4].isEmpty {
                guard let t = facts.ints(node.inputs[4]) else { return false }
                steps = t
            }
        }
        let rank = Int64(dims.count)
        let axisList = axes ?? (0..<Int64(starts.count)).map { $0 }
        guard starts.count == ends.count, axisList.count == starts.count, steps == nil || steps?.count == starts.count else { return false }
        var seen = Set<Int64>()
        for i in starts.indices {
            let axis = axisList[i] < 0 ? axisList[i] + rank : axisList[i]
            guard axis >= 0, axis < rank, seen.insert(axis).inserted, (steps?[i] ?? 1) == 1,
                  let size = dims[Int(axis)].fixedValue else { return false }
            func clamped(_ v: Int64) -> Int64 { min(max(v < 0 ? v + size : v, 0), size) }
            guard clamped(starts[i]) == 0, clamped(ends[i]) == size else { return false }
        }
        return true
    }
}

/// Constants and declared types of one graph level, looked up by name.
private struct NoOpFacts {
    var constants: [String: OnnxcIR.Tensor] = [:]
    var types: [String: TensorType] = [:]

    init(_ graph: Graph) {
        let interface = Set(graph.inputs.map(\.name))
        for tensor in graph.initializers where !interface.contains(tensor.name) { constants[tensor.name] = tensor }
        for node in graph.nodes where node.opType == "Constant" && node.domain.isEmpty {
            guard let output = node.outputs.first, case .tensor(let value)? = node.attribute("value") else { continue }
            constants[output] = OnnxcIR.Tensor(name: output, data: value.data)
        }
        for tensor in graph.initializers { types[tensor.name] = tensor.type }
        for (name, tensor) in constants { types[name] = tensor.type }
        for info in graph.valueInfo + graph.outputs + graph.inputs { if let t = info.type?.tensorType { types[info.name] = t } }
    }

    func type(_ name: String) -> TensorType? { types[name] }

    /// The values of a constant int64 or int32 tensor.
    func ints(_ name: String) -> [Int64]? {
        guard let tensor = constants[name], tensor.dtype == .int64 || tensor.dtype == .int32 else { return nil }
        return tensor.data.integers()
    }
}
