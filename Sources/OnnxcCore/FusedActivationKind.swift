/// The activations a fused `ai.onnxc` op (FusedConv, FusedGemm, FusedMatMul) applies to its result: the values of
/// its `activation` attribute, each with the `activation_params` (floats, in this order) it takes. The passes that
/// write these attributes and the runtime that reads them share this one list.
public enum FusedActivationKind: String, Sendable, CaseIterable {
    case relu = "Relu"
    case clip = "Clip"
    case sigmoid = "Sigmoid"
    case hardSigmoid = "HardSigmoid"
    case hardSwish = "HardSwish"
    case leakyRelu = "LeakyRelu"
    case tanh = "Tanh"
    /// x·sigmoid(x) (`ai.onnxc::Silu`).
    case silu = "Silu"
    /// Exact GELU, 0.5·x·(1 + erf(x/√2)).
    case gelu = "Gelu"
    /// GELU's tanh approximation (Gelu with approximate = "tanh").
    case geluTanh = "GeluTanh"

    /// The names of the `activation_params`, in order: Clip (min, max), HardSigmoid (alpha, beta), LeakyRelu (alpha).
    public var parameterNames: [String] {
        switch self {
        case .clip: ["min", "max"]
        case .hardSigmoid: ["alpha", "beta"]
        case .leakyRelu: ["alpha"]
        case .relu, .sigmoid, .hardSwish, .tanh, .silu, .gelu, .geluTanh: []
        }
    }
}
