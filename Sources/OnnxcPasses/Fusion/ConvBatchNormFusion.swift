import OnnxcCore
public import OnnxcIR

/// Folds inference BatchNormalization into the Conv or ConvTranspose before it.
///
/// Matches: Conv/ConvTranspose with a constant weight (and constant bias, if any) whose only reader is an
/// inference BatchNormalization with constant scale/bias/mean/var, one per output channel. Produces: one
/// Conv/ConvTranspose writing BN's output, with W' = W·s and B' = (B − mean)·s + β per output channel,
/// s = γ/√(var+ε) (for ConvTranspose the output channel of W[c, j, …] is (c / (C/group))·(M/group) + j).
/// Preconditions: the conv output has no other reader and is not a graph output; BN is not in training mode
/// and its mean/var outputs are unused; element type float, double or float16. Numerics: weights recomputed
/// in double and rounded once to their type, so results match to float rounding. Tested by:
/// ConvBatchNormFusionTests.
public struct ConvBatchNormFusion: Pass {
    public let id = "fuse-conv-bn"
    public let summary = "fold inference BatchNormalization into the preceding Conv/ConvTranspose weights and bias"

    public init() {}

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        let index = GraphIndex(graph)
        var taken = FusionSupport.takenNames(graph)
        var patch = GraphPatch()
        for (n, conv) in graph.nodes.enumerated() where conv.domain.isEmpty && (conv.opType == "Conv" || conv.opType == "ConvTranspose") {
            guard conv.inputs.count >= 2, let output = conv.outputs.first, conv.outputs.count == 1,
                  let (b, slot) = FusionSupport.soleConsumer(of: output, index), slot == 0,
                  patch.replacements[n] == nil, patch.replacements[b] == nil,
                  let weight = FusionSupport.constant(conv.inputs[1], in: graph), weight.dims.count >= 3 else { continue }
            // The consumer is checked before any weight is decoded: most Convs are followed by something else.
            let group = Int(FusionSupport.int(conv, "group") ?? 1)
            let bn = graph.nodes[b]
            guard group >= 1, let channels = Self.outputChannels(conv.opType, weight.dims, group: group),
                  let affine = FusionSupport.batchNormAffine(bn, channels: channels, in: graph, index),
                  let bnOutput = bn.outputs.first, !bnOutput.isEmpty, let w = FusionSupport.doubles(weight) else { continue }
            var bias = [Double](repeating: 0, count: channels)
            if conv.inputs.count > 2, !conv.inputs[2].isEmpty {
                guard let tensor = FusionSupport.constant(conv.inputs[2], in: graph), tensor.dtype == weight.dtype,
                      tensor.data.elementCount == channels, let values = FusionSupport.doubles(tensor) else { continue }
                bias = values
            }
            var scaled = w
            for i in scaled.indices {
                guard let channel = Self.outputChannel(ofElement: i, conv.opType, weight.dims, group: group) else { continue }
                scaled[i] *= affine.scale[channel]
            }
            let newBias = (0..<channels).map { bias[$0] * affine.scale[$0] + affine.shift[$0] }
            let wName = FusionSupport.freshName(weight.name + "_bn", &taken)
            let bName = FusionSupport.freshName((bn.name.isEmpty ? bnOutput : bn.name) + "_bias", &taken)
            guard let newWeight = FusionSupport.tensor(wName, weight.dtype, weight.dims, scaled),
                  let newBiasTensor = FusionSupport.tensor(bName, weight.dtype, [Int64(channels)], newBias) else { continue }
            var fused = conv
            fused.inputs = [conv.inputs[0], wName, bName]
            fused.outputs = [bnOutput]
            patch.replace(n, with: [fused])
            patch.remove(b)
            patch.addedInitializers += [newWeight, newBiasTensor]
        }
        return patch.isEmpty ? nil : patch
    }

    /// Conv weights are [M, C/group, k…]; ConvTranspose weights are [C, M/group, k…].
    static func outputChannels(_ op: String, _ dims: [Int64], group: Int) -> Int? {
        guard dims.count >= 2 else { return nil }
        if op == "Conv" { return Int(dims[0]) }
        guard dims[0] % Int64(group) == 0 else { return nil }
        let (product, overflow) = Int(dims[1]).multipliedReportingOverflow(by: group)
        return overflow ? nil : product
    }

    static func outputChannel(ofElement i: Int, _ op: String, _ dims: [Int64], group: Int) -> Int? {
        let inner = dims.dropFirst(2).reduce(1) { $0 * Int($1) }
        guard inner > 0 else { return nil }
        if op == "Conv" { return i / (inner * Int(dims[1])) }
        let c = i / (inner * Int(dims[1]))
        let j = (i / inner) % Int(dims[1])
        let inPerGroup = Int(dims[0]) / group
        guard inPerGroup > 0 else { return nil }
        return (c / inPerGroup) * Int(dims[1]) + j
    }
}
