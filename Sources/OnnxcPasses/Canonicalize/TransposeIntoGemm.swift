public import OnnxcIR

/// Folds a 2-D Transpose feeding Gemm's A or B into Gemm's transA/transB flag.
///
/// Matches: Gemm whose A or B is produced by Transpose with perm [1, 0] (or no perm: Gemm's A and B are 2-D,
/// so the default reversal is the same swap). Produces: the Gemm reading the Transpose's input with the flag
/// flipped; the Transpose goes when nothing else reads it. Preconditions: none beyond the match (the flag
/// exists in every Gemm version). Numerics: unchanged (the same products, the same sums). Tested by:
/// NoOpEliminationTests.
public struct TransposeIntoGemm: Pass {
    public let id = "fuse-transpose-gemm"
    public let summary = "fold a 2-D Transpose into Gemm's transA/transB"

    public init() {}

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        let index = GraphIndex(graph)
        var patch = GraphPatch()
        var folded: [String: (node: Int, uses: Int)] = [:]  // transpose output → uses folded away
        for (n, node) in graph.nodes.enumerated() where node.opType == "Gemm" && node.domain.isEmpty && node.inputs.count >= 2 {
            var gemm = node
            for (slot, flag) in [(0, "transA"), (1, "transB")] {
                let name = node.inputs[slot]
                guard !name.isEmpty, let t = index.producer(of: name)?.node else { continue }
                let transpose = graph.nodes[t]
                guard transpose.opType == "Transpose", transpose.domain.isEmpty, let x = transpose.inputs.first, !x.isEmpty else { continue }
                if case .ints(let perm)? = transpose.attribute("perm"), perm != [1, 0] { continue }
                var current: Int64 = 0
                if case .int(let v)? = gemm.attribute(flag) { current = v }
                gemm.attributes.removeAll { $0.name == flag }
                gemm.attributes.append(Attribute(flag, .int(current == 0 ? 1 : 0)))
                gemm.inputs[slot] = x
                folded[name, default: (t, 0)].uses += 1
            }
            if gemm != node { patch.replace(n, with: [gemm]) }
        }
        for (name, entry) in folded where entry.uses == index.consumers(of: name).count && !index.isGraphOutput(name) {
            patch.remove(entry.node)
        }
        return patch.isEmpty ? nil : patch
    }
}
