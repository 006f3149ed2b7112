import OnnxcCore
import OnnxcIR

/// One recognized pattern: the nodes it spans, the one whose output the fused node takes over (so graph
/// outputs keep their names), and the fused node.
struct FusionMatch {
    var nodes: [Int]
    var last: Int
    var fused: Node
}

/// What multi-node pattern fusions (LayerNormalization, Gelu) share: use-def queries and the graph level's
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

    /// Runs `match` from every default-domain `anchor` node and replaces each non-overlapping match by its fused
    /// node.
    func fuse(anchoredAt anchor: String, _ match: (Int) -> FusionMatch?) -> GraphPatch? {
        var patch = GraphPatch()
        var claimed = Set<Int>()
        for n in graph.nodes.indices where isOp(n, anchor) {
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
