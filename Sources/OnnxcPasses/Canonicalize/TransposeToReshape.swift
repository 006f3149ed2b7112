import OnnxcCore
public import OnnxcIR

/// Turns a Transpose that only moves axes of size 1 into a Reshape: the elements keep their order, so no copy is
/// needed (the runtime's Reshape is a view). The usual case is the end of a channels-last trunk,
/// [N, 1, 1, C] → [N, C, 1, 1] before a Flatten or Gemm.
///
/// Matches: Transpose with a static, non-empty input shape whose axes longer than 1 appear in the same relative order in
/// the permutation. Produces: Reshape(x, output shape) with an int64 constant. Preconditions: opset ≥ 5 (Reshape's shape
/// input); the output keeps its name, so graph outputs are fine. Numerics: unchanged (the same bytes). Tested by:
/// TransposePushingTests.
public struct TransposeToReshape: Pass {
    public let id = "transpose-to-reshape"
    public let summary = "Transpose that moves only size-1 axes into Reshape"

    public init() {}

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        // Reshape takes its shape as an input from opset 5 (an attribute before).
        guard context.opset(for: defaultDomain) >= 5 else { return nil }
        let types = LayoutSupport.tensorTypes(graph)
        var taken = FusionSupport.takenNames(graph)
        var patch = GraphPatch()
        for (n, node) in graph.nodes.enumerated() {
            guard let perm = LayoutSupport.perm(node), let x = node.inputs.first, !x.isEmpty,
                  let dims = types[x]?.shape?.fixedDims, dims.count == perm.count, dims.allSatisfy({ $0 > 0 }), let output = node.outputs.first else { continue }
            let moved = perm.filter { dims[$0] != 1 }
            guard moved == moved.sorted(), perm != Array(perm.indices) else { continue }
            let shape = perm.map { dims[$0] }
            guard let data = try? TensorData(int64s: shape, dims: [Int64(shape.count)]) else { continue }
            let constant = FusionSupport.freshName(output + "_shape", &taken)
            patch.addedInitializers.append(Tensor(name: constant, data: data))
            patch.replace(n, with: [Node(name: node.name, opType: "Reshape", inputs: [x, constant], outputs: [output])])
        }
        return patch.isEmpty ? nil : patch
    }
}
