import OnnxcCore
import OnnxcFormat
import OnnxcRuntime

/// Stores convolution weights in their kernel's packed layout at compile time, so that a run reads them in the
/// kernel's order straight from the mapped file instead of repacking every weight on every call (for resnet50,
/// 100 MB of weights read and written again per inference).
///
/// Packed: float32 weights [M, C, kh, kw] whose every use is the W input of convolutions that want one layout:
/// 2-D Conv/FusedConv with one group (not a 1×1-channel depthwise case) → GEMM A panels (layout 2);
/// ai.onnxc::NhwcConv → the indirect GEMM's B panels per group (layout 3), or the depthwise layout (layout 4) when
/// every group has one input and one output channel; the 2-D weight of a Gemm, MatMul or their fused forms that
/// the runtime's linear step runs (`LinearSteps.packable`) → GEMM B panels (layout 1). Anything else stays plain: a
/// packed constant is only readable by the kernel that asked for it.
enum WeightPacking {
    /// The layout a use of a constant asks for.
    private enum Want: Equatable {
        case gemmA
        case nhwc(groups: Int)
        case nhwcDepthwise
        case gemmB(transposed: Bool)
        case quantized(groups: Int, dims: [Int64])
        case quantizedDepthwise
        case plain
    }

    /// The weight input of an op: 1, or 3 for the integer ops (after X and its grid).
    private static func weightSlot(_ op: ProgramOp) -> Int {
        op.opcode.domain == RuntimeOps.domain && ["NhwcQLinearConv", "NhwcQLinearConvAdd", "QGemm"].contains(op.opcode.opType) ? 3 : 1
    }

    static func prepack(_ tensors: inout [ProgramTensor], graphs: [ProgramGraph]) -> Int {
        var wants: [TensorID: Want] = [:]
        for graph in graphs {
            for op in graph.ops {
                for (slot, id) in op.inputs.enumerated() where id >= 0 {
                    guard case .constant(let data, .plain) = tensors[Int(id)].storage else { continue }
                    let want = slot == weightSlot(op) ? weightLayout(op, data, tensors) : .plain
                    wants[id] = wants[id].map { $0 == want ? want : .plain } ?? want
                }
            }
        }
        var count = 0
        for (id, want) in wants {
            guard case .constant(let data, .plain) = tensors[Int(id)].storage else { continue }
            let layout: (TensorData, ConstantLayout)?
            switch want {
            case .plain:
                layout = nil
            case .gemmA:
                layout = PrepackedWeights.packConvolutionWeights(data).map {
                    ($0, .packed(code: ConstantLayoutCode.packedConvWeights, parameters: data.dims + [Int64(PrepackedWeights.panelRows)]))
                }
            case .nhwc(let groups):
                layout = PrepackedWeights.packNHWCConvolutionWeights(data, groups: groups, depthwise: false).map {
                    ($0, .packed(code: ConstantLayoutCode.packedNHWCConvWeights,
                                 parameters: data.dims + [Int64(groups), Int64(PrepackedWeights.channelsLastPanelWidth)]))
                }
            case .gemmB(let transposed):
                let (k, n) = transposed ? (data.dims[1], data.dims[0]) : (data.dims[0], data.dims[1])
                layout = PrepackedWeights.packGemmWeights(data, transposed: transposed).map {
                    ($0, .packed(code: ConstantLayoutCode.packedGEMMBPanels, parameters: [k, n, Int64(PrepackedWeights.panelColumns)]))
                }
            case .quantized(let groups, let dims):
                let shaped = try? TensorData(dtype: .int8, dims: dims, payload: data.payload)
                layout = shaped.flatMap { PrepackedWeights.packQuantizedWeights($0, groups: groups, depthwise: false) }.map {
                    ($0, .packed(code: ConstantLayoutCode.packedQuantizedNHWCWeights, parameters: dims + [Int64(groups)]))
                }
            case .quantizedDepthwise:
                layout = PrepackedWeights.packQuantizedWeights(data, groups: Int(data.dims[0]), depthwise: true).map {
                    ($0, .packed(code: ConstantLayoutCode.packedQuantizedDepthwiseWeights, parameters: data.dims))
                }
            case .nhwcDepthwise:
                layout = PrepackedWeights.packNHWCConvolutionWeights(data, groups: Int(data.dims[0]), depthwise: true).map {
                    ($0, .packed(code: ConstantLayoutCode.packedNHWCDepthwiseWeights,
                                 parameters: data.dims + [Int64(PrepackedWeights.channelsLastPanelWidth)]))
                }
            }
            guard let (packed, packedLayout) = layout else { continue }
            tensors[Int(id)].storage = .constant(packed, layout: packedLayout)
            count += 1
        }
        return count
    }

    /// The layout a convolution or product wants for its float32 weights, or plain.
    private static func weightLayout(_ op: ProgramOp, _ w: TensorData, _ tensors: [ProgramTensor]) -> Want {
        if w.dtype == .int8, op.opcode.domain == RuntimeOps.domain {
            if op.opcode.opType == "QGemm", w.dims.count == 2 { return .quantized(groups: 1, dims: w.dims + [1, 1]) }
            guard ["NhwcQLinearConv", "NhwcQLinearConvAdd"].contains(op.opcode.opType), w.dims.count == 4, let group = groups(op) else { return .plain }
            return group > 1 && w.dims[1] == 1 && w.dims[0] == Int64(group) ? .quantizedDepthwise : .quantized(groups: group, dims: w.dims)
        }
        guard w.dtype == .float else { return .plain }
        if w.dims.count == 2 {
            let ints = { (name: String) -> Int64? in
                for a in op.attributes where a.name == name { if case .int(let v) = a.value { return v } }
                return nil
            }
            let floats = { (name: String) -> Float? in
                for a in op.attributes where a.name == name { if case .float(let v) = a.value { return v } }
                return nil
            }
            let isGemm = op.opcode.opType == "Gemm" || op.opcode.opType == "FusedGemm"
            let transposed = isGemm && ints("transB") ?? 0 != 0
            let n = transposed ? w.dims[0] : w.dims[1]
            var bias: Bool?
            if op.inputs.count > 2, op.inputs[2] >= 0 {
                if case .constant(let b, .plain) = tensors[Int(op.inputs[2])].storage, b.dtype == .float, b.elementCount == Int(n),
                   b.dims.count == 1 || (b.dims.count == 2 && b.dims[0] == 1) {
                    bias = true
                } else {
                    bias = false
                }
            }
            let input = op.inputs.first.map { $0 >= 0 ? tensors[Int($0)].dtype : .undefined } ?? .undefined
            guard input == .float, PrepackedWeights.packsGemmWeights(
                opType: op.opcode.opType, domain: op.opcode.domain, attributes: ints,
                alphaBeta: (floats("alpha") ?? 1, floats("beta") ?? 1), weightRank: 2, biasIsConstantVector: bias) else { return .plain }
            return .gemmB(transposed: transposed)
        }
        guard w.dims.count == 4 else { return .plain }
        let group = groups(op)
        switch (op.opcode.domain, op.opcode.opType) {
        case ("", "Conv"), (RuntimeOps.domain, "FusedConv"):
            return group == 1 && !(w.dims[0] == 1 && w.dims[1] == 1) ? .gemmA : .plain
        case (RuntimeOps.domain, "NhwcConv"):
            guard let group, group >= 1 else { return .plain }
            return group > 1 && w.dims[1] == 1 && w.dims[0] == Int64(group) ? .nhwcDepthwise : .nhwc(groups: group)
        default:
            return .plain
        }
    }

    private static func groups(_ op: ProgramOp) -> Int? {
        for attribute in op.attributes where attribute.name == "group" {
            if case .int(let group) = attribute.value, group >= 1, group <= Int64(Int32.max) { return Int(group) }
            return nil
        }
        return 1
    }
}
