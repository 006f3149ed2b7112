public import OnnxcIR

/// A value of an ONNX `SequenceProto` or `OptionalProto` file (backend-test inputs and outputs that are not
/// plain tensors). Sequences of tensors and optionals of tensors or sequences are what the tests use.
public indirect enum DataValue: Sendable {
    case tensor(Tensor)
    case sequence([Tensor])
    case optional(DataValue?)

    public enum Kind: Sendable {
        case sequence
        case optional
    }
}
