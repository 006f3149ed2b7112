import OnnxcCore
public import OnnxcIR

/// Folds a per-output-channel constant Add/Sub/Mul/Div after a Conv or ConvTranspose into its weight and bias.
///
/// Matches: Conv/ConvTranspose with a constant weight (and constant bias, if any) whose only reader is Add or
/// Mul (either operand order), or Sub or Div with the conv output first, whose other operand is a constant
/// of the weight's type that broadcasts per output channel: at most the output's rank, every dim 1 except
/// possibly the channel axis (1), e.g. [C,1,1], [1,C,1,1], [1] or a scalar. Produces: one conv writing the
/// arithmetic node's output; Add/Sub change the bias (B ± k), Mul/Div scale weight and bias per channel
/// (Div by multiplying by 1/k). Preconditions: the conv output has no other reader and is not a graph output;
/// a constant that would broadcast over spatial axes or raise the rank is left alone; Div by zero is left
/// alone. Numerics: recomputed in double and rounded once to the weight's type. Tested by:
/// ConvAddMulFusionTests.
public struct ConvAddMulFusion: Pass {
    public let id = "fuse-conv-add-mul"
    public let summary = "fold per-channel constant Add/Sub/Mul/Div after Conv into its weight and bias"

    public init() {}

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        let index = GraphIndex(graph)
        var taken = FusionSupport.takenNames(graph)
        var patch = GraphPatch()
        for (n, conv) in graph.nodes.enumerated() where conv.domain.isEmpty && (conv.opType == "Conv" || conv.opType == "ConvTranspose") {
            guard conv.inputs.count >= 2, let output = conv.outputs.first, conv.outputs.count == 1,
                  let (a, slot) = FusionSupport.soleConsumer(of: output, index),
                  patch.replacements[n] == nil, patch.replacements[a] == nil,
                  let weight = FusionSupport.constant(conv.inputs[1], in: graph), weight.dims.count >= 3 else { continue }
            // The consumer is checked before any weight is decoded: most Convs are followed by something else.
            let arithmetic = graph.nodes[a]
            guard arithmetic.domain.isEmpty, arithmetic.inputs.count == 2, arithmetic.outputs.count == 1,
                  let result = arithmetic.outputs.first, !result.isEmpty else { continue }
            switch arithmetic.opType {
            case "Add", "Mul": break
            case "Sub", "Div": guard slot == 0 else { continue }
            default: continue
            }
            let group = Int(FusionSupport.int(conv, "group") ?? 1)
            guard group >= 1, let channels = ConvBatchNormFusion.outputChannels(conv.opType, weight.dims, group: group),
                  let operand = FusionSupport.constant(arithmetic.inputs[1 - slot], in: graph), operand.dtype == weight.dtype,
                  let k = Self.perChannel(operand, channels: channels, outputRank: weight.dims.count),
                  let w = FusionSupport.doubles(weight) else { continue }
            var bias: [Double]?
            if conv.inputs.count > 2, !conv.inputs[2].isEmpty {
                guard let tensor = FusionSupport.constant(conv.inputs[2], in: graph), tensor.dtype == weight.dtype,
                      tensor.data.elementCount == channels, let values = FusionSupport.doubles(tensor) else { continue }
                bias = values
            }
            var newWeight = w
            var newBias = bias
            switch arithmetic.opType {
            case "Add", "Sub":
                let sign: Double = arithmetic.opType == "Add" ? 1 : -1
                let base = bias ?? [Double](repeating: 0, count: channels)
                newBias = (0..<channels).map { base[$0] + sign * k[$0] }
            default:
                var factor = k
                if arithmetic.opType == "Div" {
                    guard !k.contains(0) else { continue }
                    factor = k.map { 1 / $0 }
                }
                for i in newWeight.indices {
                    guard let channel = ConvBatchNormFusion.outputChannel(ofElement: i, conv.opType, weight.dims, group: group) else { continue }
                    newWeight[i] *= factor[channel]
                }
                newBias = bias.map { b in (0..<channels).map { b[$0] * factor[$0] } }
            }
            var fused = conv
            fused.outputs = [result]
            var added: [Tensor] = []
            if newWeight != w {
                let name = FusionSupport.freshName(weight.name + "_scaled", &taken)
                guard let tensor = FusionSupport.tensor(name, weight.dtype, weight.dims, newWeight) else { continue }
                fused.inputs[1] = name
                added.append(tensor)
            }
            if let newBias {
                let name = FusionSupport.freshName((arithmetic.name.isEmpty ? result : arithmetic.name) + "_bias", &taken)
                guard let tensor = FusionSupport.tensor(name, weight.dtype, [Int64(channels)], newBias) else { continue }
                fused.inputs = [conv.inputs[0], fused.inputs[1], name]
                added.append(tensor)
            }
            patch.replace(n, with: [fused])
            patch.remove(a)
            patch.addedInitializers += added
        }
        return patch.isEmpty ? nil : patch
    }

    /// The per-channel values of a constant that broadcasts against [N, C, spatial…] only along C; nil when it
    /// varies along another axis or has more dims than the conv output.
    static func perChannel(_ tensor: Tensor, channels: Int, outputRank: Int) -> [Double]? {
        let dims = tensor.dims
        guard dims.count <= outputRank, let values = FusionSupport.doubles(tensor) else { return nil }
        let offset = outputRank - dims.count
        var varying = false
        for (d, dim) in dims.enumerated() {
            let axis = d + offset
            if axis == 1 {
                if dim == Int64(channels), channels != 1 { varying = true } else if dim != 1 { return nil }
            } else if dim != 1 {
                return nil
            }
        }
        if varying { return values }
        guard let first = values.first else { return nil }
        return [Double](repeating: first, count: channels)
    }
}
