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
    ]
}
