import OnnxcCore
public import OnnxcIR

/// Fuses a quantized residual Add into the channels-last integer convolution that produces one of its operands.
///
/// Matches: `ai.onnxc::QLinearAdd` whose operand is the uint8 output of an `ai.onnxc::NhwcQLinearConv` (with an
/// output grid) that nothing else reads. Produces: `ai.onnxc::NhwcQLinearConvAdd` at the Add's place (both operands
/// exist there): the convolution's nine inputs, then the other operand (the residual) and its grid, the
/// convolution's grid as the Add reads it, the Add's output grid, and `residual_operand` (0: the residual is the
/// Add's first operand, 1: its second). An Add of two such convolutions fuses the later one. Preconditions: after the
/// layout stage and `lower-qdq`. Numerics: the same bytes: the kernel requantizes the convolution as before and then
/// applies QLinearAdd's float arithmetic (`ck_qadd_u8_float`) to each output and residual byte in registers, which
/// saves the Add's separate pass over both tensors. Tested by: QuantizationTests, QuantizeTests (with and without).
public struct QuantizedResidualFusion: Pass {
    public let id = "fuse-qconv-add"
    public let summary = "fuse a quantized residual Add into the channels-last integer convolution before it (runtime target)"

    public init() {}

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        guard context.allowsRuntimeOps else { return nil }
        let index = GraphIndex(graph)
        var patch = GraphPatch()
        for (n, node) in graph.nodes.enumerated() where node.qualifiedOpType == RuntimeOps.domain + "::QLinearAdd" && node.inputs.count == 8 {
            // After the layout stage: an Add of a channels-last convolution's uint8 output (read by nothing else) and a
            // residual becomes the convolution with the Add in its epilogue, at the Add's place (both operands exist
            // there). An Add of two such convolutions fuses the later one.
            let candidates = [0, 3].compactMap { k -> (slot: Int, conv: Int)? in
                guard let (c, slot) = FusionSupport.soleConsumer(of: node.inputs[k], index), c == n, slot == k,
                      let (p, o) = index.producer(of: node.inputs[k]), o == 0 else { return nil }
                let conv = graph.nodes[p]
                guard conv.qualifiedOpType == RuntimeOps.domain + "::NhwcQLinearConv", conv.inputs.count >= 8, !conv.inputs[6].isEmpty,
                      !conv.inputs[7].isEmpty, patch.replacements[p] == nil else { return nil }
                return (k, p)
            }
            guard let chosen = candidates.max(by: { $0.conv < $1.conv }), patch.replacements[n] == nil, let out = node.outputs.first else { continue }
            let conv = graph.nodes[chosen.conv]
            let r = chosen.slot == 0 ? 3 : 0
            var inputs = Array(conv.inputs) + Array(repeating: "", count: max(0, 9 - conv.inputs.count))
            inputs += [node.inputs[r], node.inputs[r + 1], node.inputs[r + 2], node.inputs[chosen.slot + 1], node.inputs[chosen.slot + 2],
                       node.inputs[6], node.inputs[7]]
            var attributes = conv.attributes
            attributes.append(Attribute("residual_operand", .int(r == 0 ? 0 : 1)))
            patch.replace(n, with: [Node(name: conv.name, opType: "NhwcQLinearConvAdd", domain: RuntimeOps.domain, inputs: inputs,
                                         outputs: [out], attributes: attributes)])
            patch.remove(chosen.conv)
        }
        return patch.isEmpty ? nil : patch
    }
}
