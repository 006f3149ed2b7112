import OnnxcCore
import OnnxcFormat
import OnnxcRuntime

/// Stores convolution weights in the packed GEMM's A layout at compile time, so that a run reads them in the
/// kernel's order straight from the mapped file instead of repacking every weight on every call (for resnet50,
/// 100 MB of weights read and written again per inference).
///
/// Packed: float32 weights [M, C, kh, kw] of 2-D Convs and FusedConvs with one group that are not a 1×1-channel
/// depthwise case, whose every use is such a convolution's W input. Anything else stays plain: a packed constant
/// is only readable by the kernel that asked for it.
enum WeightPacking {
    static func prepack(_ tensors: inout [ProgramTensor], graphs: [ProgramGraph]) -> Int {
        var candidates: [TensorID: Bool] = [:]
        for graph in graphs {
            for op in graph.ops {
                let isConv = op.opcode.opType == "Conv" && op.opcode.domain.isEmpty
                    || op.opcode.opType == "FusedConv" && op.opcode.domain == RuntimeOps.domain
                for (slot, id) in op.inputs.enumerated() where id >= 0 {
                    guard case .constant = tensors[Int(id)].storage else { continue }
                    let packable = isConv && slot == 1 && oneGroup(op)
                    candidates[id] = (candidates[id] ?? true) && packable
                }
            }
        }
        var count = 0
        for (id, packable) in candidates where packable {
            guard case .constant(let data, .plain) = tensors[Int(id)].storage, data.dtype == .float, data.dims.count == 4,
                  !(data.dims[0] == 1 && data.dims[1] == 1),
                  let packed = PrepackedWeights.packConvolutionWeights(data) else { continue }
            let parameters = data.dims + [Int64(PrepackedWeights.panelRows)]
            tensors[Int(id)].storage = .constant(packed, layout: .packed(code: ConstantLayoutCode.packedConvWeights, parameters: parameters))
            count += 1
        }
        return count
    }

    private static func oneGroup(_ op: ProgramOp) -> Bool {
        for attribute in op.attributes where attribute.name == "group" {
            if case .int(let group) = attribute.value { return group == 1 }
            return false
        }
        return true
    }
}
