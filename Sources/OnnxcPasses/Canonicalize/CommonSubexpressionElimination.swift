import OnnxcCore
public import OnnxcIR

/// Merges nodes that compute the same thing, and initializers that hold the same constant.
///
/// Matches: two deterministic nodes with the same op, domain, inputs and attributes (no subgraphs); two
/// initializers with the same type, dims and bytes. Produces: the later one's uses read the earlier one's
/// values. Preconditions: the later values are not graph outputs, the initializers are not graph inputs
/// (those can be overridden at run time). Numerics: unchanged. Tested by: CommonSubexpressionEliminationTests.
public struct CommonSubexpressionElimination: Pass {
    public let id = "cse"
    public let summary = "merge duplicate nodes and duplicate constants"

    /// Ops whose results differ between two evaluations with the same inputs.
    static let nondeterministic: Set<String> = [
        "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial", "Dropout",
    ]

    public init() {}

    private struct NodeKey: Hashable {
        var op: String
        var domain: String
        var overload: String
        var inputs: [String]
        var attributeNames: [String]
    }

    private struct TensorKey: Hashable {
        var dtype: DType
        var dims: [Int64]
        var prefix: [UInt8]
    }

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        let outputs = Set(graph.outputs.map(\.name))
        let interface = Set(graph.inputs.map(\.name))
        var patch = GraphPatch()

        var constants: [TensorKey: [Tensor]] = [:]
        for tensor in graph.initializers where !interface.contains(tensor.name) && !outputs.contains(tensor.name) {
            let prefix = tensor.data.bytes.map { Array($0.array.prefix(32)) } ?? []
            let key = TensorKey(dtype: tensor.dtype, dims: tensor.dims, prefix: prefix)
            if let twin = constants[key]?.first(where: { $0.data == tensor.data }) {
                patch.redirects[tensor.name] = twin.name
                patch.removedInitializers.insert(tensor.name)
            } else {
                constants[key, default: []].append(tensor)
            }
        }

        var seen: [NodeKey: [Int]] = [:]
        for (n, node) in graph.nodes.enumerated() {
            guard node.subgraphs.isEmpty, !CommonSubexpressionElimination.nondeterministic.contains(node.opType),
                  !node.outputs.isEmpty else { continue }
            let key = NodeKey(op: node.opType, domain: node.domain, overload: node.overload,
                              inputs: node.inputs.map { $0.isEmpty ? $0 : patch.resolve($0) },
                              attributeNames: node.attributes.map(\.name))
            let twin = seen[key]?.first { graph.nodes[$0].attributes == node.attributes && graph.nodes[$0].outputs.count == node.outputs.count }
            guard let twin, !node.outputs.contains(where: { outputs.contains($0) }) else {
                seen[key, default: []].append(n)
                continue
            }
            for (mine, theirs) in zip(node.outputs, graph.nodes[twin].outputs) where !mine.isEmpty {
                guard !theirs.isEmpty else { continue }
                patch.redirects[mine] = theirs
            }
            // Only drop the node when every output it produces has a twin to read instead.
            if zip(node.outputs, graph.nodes[twin].outputs).allSatisfy({ $0.isEmpty || !$1.isEmpty }) { patch.remove(n) }
        }
        return patch.isEmpty ? nil : patch
    }
}
