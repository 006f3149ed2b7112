import OnnxcCore
import OnnxcIR

/// One recognized pattern: the nodes it spans, the one whose output the fused node takes over (so graph
/// outputs keep their names), and the fused node.
struct FusionMatch {
    var nodes: [Int]
    var last: Int
    var fused: Node
}

extension FusionMatch {
    /// The match with its fused node moved into onnxc's runtime domain (`ai.onnxc`): the same op, for a model
    /// whose default-domain opset predates it, when the runtime target allows runtime ops.
    func inRuntimeDomain() -> FusionMatch {
        var copy = self
        copy.fused.domain = RuntimeOps.domain
        return copy
    }
}

/// What multi-node pattern fusions (LayerNormalization, Gelu, HardSwish, Silu, activations) share: use-def queries and the graph level's
/// constants, from non-overridable initializers and Constant nodes alike.
struct PatternGraph {
    let graph: Graph
    let index: GraphIndex
    let constants: [String: TensorData]

    init(_ graph: Graph) {
        self.graph = graph
        index = GraphIndex(graph)
        var constants: [String: TensorData] = [:]
        let interface = Set(graph.inputs.map(\.name))
        for tensor in graph.initializers where !interface.contains(tensor.name) { constants[tensor.name] = tensor.data }
        for node in graph.nodes where node.opType == "Constant" && canonicalDomain(node.domain).isEmpty {
            if let output = node.outputs.first, !output.isEmpty, let value = PatternGraph.constantValue(of: node) { constants[output] = value }
        }
        self.constants = constants
    }

    func node(_ n: Int) -> Node { graph.nodes[n] }

    func isOp(_ n: Int, _ op: String) -> Bool { graph.nodes[n].opType == op && canonicalDomain(graph.nodes[n].domain).isEmpty }

    /// The single node reading `value` through an input slot, when `value` is not a graph output either.
    func soleConsumer(of value: String) -> (node: Int, input: Int)? { FusionSupport.soleConsumer(of: value, index) }

    /// Floating element types (what Gelu, HardSwish and the activations accept).
    static let floatTypes: Set<DType> = [.float, .float16, .double, .bfloat16]

    func output(_ n: Int) -> String { node(n).outputs.first ?? "" }

    /// The node's two inputs when it is the binary default-domain `op` with one output.
    func binary(_ n: Int, _ op: String) -> (String, String)? {
        let candidate = node(n)
        guard candidate.opType == op, canonicalDomain(candidate.domain).isEmpty, candidate.inputs.count == 2,
              let output = candidate.outputs.first, !output.isEmpty else { return nil }
        return (candidate.inputs[0], candidate.inputs[1])
    }

    /// The operand of the binary `op` node other than one satisfying `isOther`, with the operands in either order.
    func operand(of n: Int, _ op: String, besides isOther: (String) -> Bool) -> String? {
        guard let (a, b) = binary(n, op), a != b else { return nil }
        if isOther(b) { return a }
        if isOther(a) { return b }
        return nil
    }

    /// The declared rank and element type of `name`, where known.
    func typeOf(_ name: String) -> (rank: Int?, dtype: DType?) {
        let type = graph.declaredType(of: name)?.tensorType
        return (type?.shape?.rank, type?.elementType)
    }

    /// True when `name` is a single-element constant equal to `expected` within its type's rounding, of a floating
    /// type (or, with `integral`, an integer type too) matching `dtype` if known, whose rank cannot raise x's (rank
    /// nil: x's rank is unknown, so only a rank-0 constant is safe).
    func isConstant(_ name: String, _ expected: Double, rank: Int?, dtype: DType?, integral: Bool = false) -> Bool {
        guard let data = constants[name], data.elementCount == 1, data.dims.count <= (rank ?? 0),
              let value = data.numericValue(at: 0) else { return false }
        if PatternGraph.floatTypes.contains(data.dtype) {
            guard dtype == nil || dtype == data.dtype else { return false }
        } else {
            return integral && value == expected
        }
        let tolerance: Double = switch data.dtype {
        case .float16: 1e-3
        case .bfloat16: 1e-2
        default: 1e-6
        }
        return abs(value - expected) <= tolerance * abs(expected)
    }

    /// Runs `match` from every default-domain node of an `anchors` op and replaces each non-overlapping match by its fused
    /// node.
    func fuse(anchoredAt anchors: [String], _ match: (Int) -> FusionMatch?) -> GraphPatch? {
        var patch = GraphPatch()
        var claimed = Set<Int>()
        for n in graph.nodes.indices where anchors.contains(where: { isOp(n, $0) }) {
            guard let found = match(n), claimed.isDisjoint(with: found.nodes) else { continue }
            claimed.formUnion(found.nodes)
            for i in found.nodes where i != found.last { patch.remove(i) }
            patch.replace(found.last, with: [found.fused])
        }
        return patch.isEmpty ? nil : patch
    }

    /// The tensor a Constant node produces, for the attribute forms a scalar or small vector comes in.
    static func constantValue(of node: Node) -> TensorData? {
        guard let attribute = node.attributes.first else { return nil }
        switch attribute.value {
        case .tensor(let tensor): return tensor.data
        case .float(let value): return packed(.float, [], [value.bitPattern])
        case .floats(let values): return packed(.float, [Int64(values.count)], values.map(\.bitPattern))
        case .int(let value): return packed(.int64, [], [UInt64(bitPattern: value)])
        case .ints(let values): return packed(.int64, [Int64(values.count)], values.map { UInt64(bitPattern: $0) })
        default: return nil
        }
    }

    private static func packed<T: FixedWidthInteger>(_ dtype: DType, _ dims: [Int64], _ words: [T]) -> TensorData? {
        var bytes: [UInt8] = []
        for word in words { withUnsafeBytes(of: word.littleEndian) { bytes.append(contentsOf: $0) } }
        return try? TensorData(dtype: dtype, dims: dims, payload: .bytes(ByteSlice(copying: bytes)))
    }
}
