import OnnxcCore
public import OnnxcIR

/// Rewrites float32 2-D convolutions and pools to onnxc's channels-last (NHWC) ops, each between two
/// Transposes, so that `push-transposes` and `fuse-transposes` can then cancel the Transposes between
/// neighbours and leave the whole convolutional trunk channels last.
///
/// Matches: Conv and ai.onnxc::FusedConv with a 4-D float32 input X and 4-D weights; MaxPool with one used
/// output, AveragePool, GlobalAveragePool and GlobalMaxPool on 4-D float32 inputs; QLinearConv (standard or
/// onnxc's float-output form) with a 4-D uint8 X and int8 weights, and MaxPool on uint8.
/// Produces: Transpose(X, [0,2,3,1]) → ai.onnxc::Nhwc<Op>(same attributes) → Transpose([0,3,1,2]) writing
/// the original output; FusedConv's residual input gets its own Transpose to channels last.
/// Preconditions: the runtime target (the ops are onnxc's); input types known (shape inference ran).
/// Numerics: the channels-last kernels sum each output's taps in (kernel row, kernel column, channel) order
/// where the NCHW GEMM sums (channel, kernel row, kernel column): equal up to float rounding.
/// Tested by: ChannelsLastConversionTests.
public struct ChannelsLastConversion: Pass {
    public let id = "convert-to-nhwc"
    public let summary = "float32 2-D Conv/FusedConv and pools to channels-last ai.onnxc::Nhwc* ops between Transposes"

    public init() {}

    static let toChannelsLast: [Int64] = [0, 2, 3, 1]
    static let toChannelsFirst: [Int64] = [0, 3, 1, 2]

    /// Op type → its channels-last counterpart in `ai.onnxc`.
    static let counterparts: [String: String] = [
        "Conv": "NhwcConv", RuntimeOps.domain + "::FusedConv": "NhwcConv",
        "MaxPool": "NhwcMaxPool", "AveragePool": "NhwcAveragePool",
        "GlobalAveragePool": "NhwcGlobalAveragePool", "GlobalMaxPool": "NhwcGlobalMaxPool",
        "QLinearConv": "NhwcQLinearConv", RuntimeOps.domain + "::QLinearConv": "NhwcQLinearConv",
    ]

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        guard context.allowsRuntimeOps else { return nil }
        let types = LayoutSupport.tensorTypes(graph)
        let index = GraphIndex(graph)
        var taken = FusionSupport.takenNames(graph)
        var patch = GraphPatch()
        for (n, node) in graph.nodes.enumerated() {
            guard let target = Self.counterparts[node.qualifiedOpType], Self.convertible(node, types, index) else { continue }
            var converted = node
            converted.opType = target
            converted.domain = RuntimeOps.domain
            var before: [Node] = []
            for slot in Self.layoutInputs(node) {
                let name = node.inputs[slot]
                let transposed = FusionSupport.freshName(name + "_nhwc", &taken)
                before.append(LayoutSupport.transpose(name, to: transposed, perm: Self.toChannelsLast, name: node.name + "_to_nhwc_\(slot)"))
                converted.inputs[slot] = transposed
            }
            // MaxPool's unused Indices output is dropped: the channels-last pool has one output.
            converted.outputs = [FusionSupport.freshName(node.outputs[0] + "_nhwc", &taken)]
            let after = LayoutSupport.transpose(converted.outputs[0], to: node.outputs[0], perm: Self.toChannelsFirst,
                                                name: node.name + "_to_nchw")
            patch.replace(n, with: before + [converted, after])
        }
        return patch.isEmpty ? nil : patch
    }

    /// The inputs in the data layout: X, and FusedConv's residual.
    static func layoutInputs(_ node: Node) -> [Int] {
        var slots = [0]
        if node.opType == "FusedConv", node.inputs.count > 3, !node.inputs[3].isEmpty { slots.append(3) }
        return slots
    }

    static func convertible(_ node: Node, _ types: [String: TensorType], _ index: GraphIndex) -> Bool {
        guard let x = node.inputs.first, !x.isEmpty, let xt = types[x], xt.shape?.rank == 4,
              let output = node.outputs.first, !output.isEmpty else { return false }
        // uint8: the integer convolution, and MaxPool of a quantized tensor (max commutes with the grid).
        let integer = node.opType == "QLinearConv" || (node.opType == "MaxPool" && node.domain.isEmpty)
        guard xt.elementType == .float || (integer && xt.elementType == .uint8) else { return false }
        switch node.opType {
        case "QLinearConv":
            guard xt.elementType == .uint8, node.inputs.count >= 6, let w = types[node.inputs[3]], w.shape?.rank == 4, w.elementType == .int8 else { return false }
            return node.outputs.count == 1
        case "Conv", "FusedConv":
            guard node.inputs.count >= 2, let w = types[node.inputs[1]], w.shape?.rank == 4, w.elementType == .float else { return false }
            for slot in 2..<node.inputs.count where !node.inputs[slot].isEmpty {
                guard types[node.inputs[slot]]?.elementType == .float else { return false }
            }
            return node.outputs.count == 1
        case "MaxPool":
            // The Indices output has no channels-last form.
            guard node.outputs.dropFirst().allSatisfy({ $0.isEmpty || index.isUnused($0) }) else { return false }
            return FusionSupport.ints(node, "kernel_shape")?.count == 2
        case "AveragePool":
            return FusionSupport.ints(node, "kernel_shape")?.count == 2 && node.outputs.count == 1
        default:
            return node.outputs.count == 1
        }
    }
}
