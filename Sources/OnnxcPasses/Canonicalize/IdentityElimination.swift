public import OnnxcIR

/// Reads through Identity and inference-mode Dropout.
///
/// Matches: Identity; Dropout whose mask output is unused and whose training_mode input is absent or a
/// constant false (at inference Dropout is the identity). Produces: uses of the output read the input instead,
/// and the node goes. Preconditions: the output is not a graph output (the graph's interface keeps its
/// names). Numerics: unchanged. Tested by: IdentityEliminationTests.
public struct IdentityElimination: Pass {
    public let id = "eliminate-identity"
    public let summary = "read through Identity and inference-mode Dropout"

    public init() {}

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        let outputs = Set(graph.outputs.map(\.name))
        let index = GraphIndex(graph)
        var patch = GraphPatch()
        for (n, node) in graph.nodes.enumerated() where node.domain.isEmpty {
            guard let input = node.inputs.first, !input.isEmpty, let output = node.outputs.first, !output.isEmpty,
                  !outputs.contains(output) else { continue }
            switch node.opType {
            case "Identity":
                break
            case "Dropout":
                if node.outputs.count > 1, !node.outputs[1].isEmpty, !index.isUnused(node.outputs[1]) { continue }
                if node.inputs.count > 2, !node.inputs[2].isEmpty {
                    guard let mode = graph.initializer(named: node.inputs[2]), mode.data.numericValue(at: 0) == 0,
                          !graph.inputs.contains(where: { $0.name == mode.name }) else { continue }
                }
            default:
                continue
            }
            patch.redirects[output] = input
            patch.remove(n)
        }
        return patch.isEmpty ? nil : patch
    }
}
