import OnnxcCore

/// Quantization operators.
enum QuantizationKernels {
    static let table: [String: Kernel] = [:]
}
