import OnnxcCore
public import OnnxcFormat
import OnnxcRuntime

/// Chooses at compile time the kernel an op runs where the runtime has more than one for it, and records the
/// choice in the op's attributes: the runtime follows it and never re-decides at load.
///
/// NhwcConv runs F(2×2, 3×3) Winograd (`algorithm = "winograd"`) instead of the direct indirect GEMM for float32
/// 3×3 convolutions with stride 1, dilation 1 and one group on a compiled input shape with at least
/// `winogradMinimumTiles` 2×2 output tiles and `winogradMinimumInputChannels` to `winogradMaximumInputChannels`
/// input channels. That is where it was measured faster (docs/benchmarks.md): fewer tiles leave too little work to
/// pay for the transforms (resnet50's 256 channels at 14×14: 0.87×; yolo_tiny's 64 at 20×20: 0.73× on Zen 5), fewer
/// channels make the transforms (per channel) cost more than the 2.25× fewer multiply-adds save (yolo_tiny's 16 at
/// 80×80 and 32 at 40×40: 0.6–0.8×, where the direct tiles run at full AVX-512 width), and with more input channels
/// the transformed weights a task streams for every row of tiles outgrow the L2 cache (512 channels at 7×7: 0.37×).
/// resnet50's 64 channels at 56×56 and 128 at 28×28 gain 1.5×.
public enum KernelSelection {
    static let winogradMinimumTiles = 196
    static let winogradMinimumInputChannels = 64
    static let winogradMaximumInputChannels = 128

    /// Records the choices in the ops of `graphs` (`winograd: false`: none of that kernel).
    static func select(_ graphs: inout [ProgramGraph], tensors: [ProgramTensor], winograd: Bool = true) {
        for g in graphs.indices {
            for o in graphs[g].ops.indices {
                let op = graphs[g].ops[o]
                guard op.opcode.domain == RuntimeOps.domain, op.opcode.opType == "NhwcConv",
                      !op.attributes.contains(where: { $0.name == "algorithm" }), winograd, prefersWinograd(op, tensors) else { continue }
                graphs[g].ops[o].attributes.append(ProgramAttribute("algorithm", .string("winograd")))
            }
        }
    }

    /// The kernel name an op's attributes select ("winograd"), or nil for the op's default one.
    public static func variant(_ op: ProgramOp) -> String? {
        for attribute in op.attributes where attribute.name == "algorithm" {
            if case .string(let name) = attribute.value, name != "direct" { return name }
        }
        return nil
    }

    private static func prefersWinograd(_ op: ProgramOp, _ tensors: [ProgramTensor]) -> Bool {
        guard op.inputs.count >= 2, op.inputs[0] >= 0, op.inputs[1] >= 0, let outputID = op.outputs.first, outputID >= 0 else { return false }
        let x = tensors[Int(op.inputs[0])], w = tensors[Int(op.inputs[1])], y = tensors[Int(outputID)]
        guard x.dtype == .float, case .constant(let weights, _) = w.storage, weights.dtype == .float, weights.dims.count == 4,
              weights.dims[2] == 3, weights.dims[3] == 3,
              let xDims = x.shape.flatMap(imageDims), let yDims = y.shape.flatMap(imageDims) else { return false }
        func ints(_ name: String, _ fallback: [Int64]) -> [Int64] {
            for attribute in op.attributes where attribute.name == name {
                if case .ints(let values) = attribute.value { return values }
                if case .int(let value) = attribute.value { return [value] }
            }
            return fallback
        }
        guard ints("group", [1]) == [1], ints("strides", [1, 1]) == [1, 1], ints("dilations", [1, 1]) == [1, 1],
              xDims[3] == weights.dims[1], xDims[3] >= Int64(winogradMinimumInputChannels),
              xDims[3] <= Int64(winogradMaximumInputChannels) else { return false }
        let tiles = yDims[0] * ((yDims[1] + 1) / 2) * ((yDims[2] + 1) / 2)
        return tiles >= Int64(winogradMinimumTiles)
    }

    /// [N, H, W, C] with H, W and C fixed; a symbolic batch counts as 1 (more images only add tiles).
    private static func imageDims(_ shape: Shape) -> [Int64]? {
        guard shape.rank == 4 else { return nil }
        let rest = shape.dims[1...].compactMap(\.fixedValue)
        guard rest.count == 3 else { return nil }
        return [shape.dims[0].fixedValue ?? 1] + rest
    }
}
