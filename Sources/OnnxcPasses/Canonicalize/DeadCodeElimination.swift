public import OnnxcIR

/// Removes nodes whose outputs nothing reads, and initializers nothing reads.
///
/// Matches: a node none of whose outputs is a graph output, an input of a later node, or a value read by a
/// later node's subgraph; an initializer read by no node or subgraph and not a graph input or output.
/// Produces: the same graph without them. Preconditions: none (ONNX inference ops have no side effects).
/// Numerics: unchanged. Tested by: DeadCodeEliminationTests.
public struct DeadCodeElimination: Pass {
    public let id = "dce"
    public let summary = "remove nodes and initializers whose values nothing reads"

    public init() {}

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        var live = Set(graph.outputs.map(\.name))
        var patch = GraphPatch()
        for index in graph.nodes.indices.reversed() {
            let node = graph.nodes[index]
            guard node.outputs.contains(where: { !$0.isEmpty && live.contains($0) }) else {
                patch.remove(index)
                continue
            }
            live.formUnion(node.inputs.filter { !$0.isEmpty })
            for subgraph in node.subgraphs { live.formUnion(subgraph.capturedValues) }
        }
        let interface = Set(graph.inputs.map(\.name))
        for tensor in graph.initializers where !live.contains(tensor.name) && !interface.contains(tensor.name) {
            patch.removedInitializers.insert(tensor.name)
        }
        return patch.isEmpty ? nil : patch
    }
}
