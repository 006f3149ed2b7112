import OnnxcCore

/// onnxc's runtime-only ops (domain `ai.onnxc`, see `RuntimeOps`), keyed "ai.onnxc::OpType" so they never
/// collide with a standard op of the same name.
enum RuntimeOpRules {
    static let table: [String: InferenceRule] = [
        // Fused ops with an activation epilogue (FusedKernels): the base op's shape.
        "ai.onnxc::FusedConv": ConvolutionRules.conv,
        "ai.onnxc::FusedGemm": LinearAlgebraRules.gemm,
        "ai.onnxc::FusedMatMul": LinearAlgebraRules.matMul,
        "ai.onnxc::Silu": ElementwiseRules.unary,
        "ai.onnxc::Gelu": ElementwiseRules.unary,
        "ai.onnxc::LayerNormalization": NormalizationRules.layerNorm,
        // Fused attention (AttentionKernels).
        "ai.onnxc::Attention": attention,
        // Channels-last convolution and pools (ChannelsLastKernels).
        "ai.onnxc::NhwcConv": ConvolutionRules.nhwcConv,
        "ai.onnxc::NhwcMaxPool": ConvolutionRules.nhwcPool,
        "ai.onnxc::NhwcAveragePool": ConvolutionRules.nhwcPool,
        "ai.onnxc::NhwcGlobalAveragePool": ConvolutionRules.nhwcGlobalPool,
        "ai.onnxc::NhwcGlobalMaxPool": ConvolutionRules.nhwcGlobalPool,
        // Integer ops from lower-qdq (QuantizationKernels): uint8 out with an output grid, float32 without.
        "ai.onnxc::QLinearConv": { ctx in
            [InferenceSupport.tensor(ctx.hasInput(7) ? ctx.dtype(7) : .float, try ConvolutionRules.convShape(ctx, x: 0, w: 3))]
        },
        "ai.onnxc::QGemm": { ctx in
            var shape: Shape?
            if let x = ctx.shape(0), let w = ctx.shape(3), w.dims.count == 2, !x.dims.isEmpty {
                shape = Shape(Array(x.dims.dropLast()) + [w.dims[0]])
            }
            return [InferenceSupport.tensor(ctx.hasInput(6) ? .uint8 : .float, shape)]
        },
        "ai.onnxc::NhwcQLinearConv": { ctx in
            [InferenceSupport.tensor(ctx.hasInput(7) ? ctx.dtype(7) : .float, try ConvolutionRules.convShape(ctx, x: 0, w: 3, channelsLast: true))]
        },
        "ai.onnxc::NhwcQLinearConvAdd": { ctx in
            [InferenceSupport.tensor(.uint8, try ConvolutionRules.convShape(ctx, x: 0, w: 3, channelsLast: true))]
        },
        "ai.onnxc::QLinearAdd": { ctx in [InferenceSupport.tensor(.uint8, try InferenceSupport.broadcastInputs(ctx, [0, 3]))] },
        "ai.onnxc::QLookup": { ctx in [InferenceSupport.tensor(.uint8, ctx.shape(0))] },
        "ai.onnxc::QLinearMul": { ctx in [InferenceSupport.tensor(.uint8, try InferenceSupport.broadcastInputs(ctx, [0, 3]))] },
        "ai.onnxc::QLSTM": RecurrentRules.rnn,
        "ai.onnxc::QGRU": RecurrentRules.rnn,
        "ai.onnxc::QRNN": RecurrentRules.rnn,
        "ai.onnxc::NhwcQAveragePool": ConvolutionRules.nhwcPool,
        "ai.onnxc::NhwcQGlobalAveragePool": { ctx in
            var shape: Shape?
            if let x = ctx.shape(0), x.dims.count == 4 { shape = Shape([x.dims[0], .fixed(1), .fixed(1), x.dims[3]]) }
            return [InferenceSupport.tensor(.uint8, shape)]
        },
    ]

    /// ai.onnxc::Attention(Q [..., Sq, D], Kt [..., D, Sk], V [..., Sk, Dv][, mask]) with attribute `scale`:
    /// Softmax(scale · Q·Kt + mask, axis -1) · V (see AttentionKernels). The shape is the unfused graph's:
    /// MatMul(Q, Kt), broadcast with the mask, MatMul with V — [..., Sq, Dv], leading dims broadcast.
    static let attention: InferenceRule = { ctx in
        let dtype = ctx.dtype(0) ?? ctx.dtype(2)
        for i in 0..<3 {
            if let rank = ctx.rank(i), rank < 2 { throw InferenceError("Attention input \(i) must have rank 2 or more, got rank \(rank)") }
        }
        var scores = try LinearAlgebraRules.matmulShape(ctx.shape(0), ctx.shape(1))
        if ctx.hasInput(3) {
            if let shape = scores, let mask = ctx.shape(3) {
                do {
                    scores = try InferenceSupport.broadcast([shape, mask])
                } catch {
                    throw InferenceError("Attention mask \(mask) does not broadcast to the scores \(shape)")
                }
            } else {
                scores = nil
            }
        }
        return [InferenceSupport.tensor(dtype, try LinearAlgebraRules.matmulShape(scores, ctx.shape(2)))]
    }
}
