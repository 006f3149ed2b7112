import OnnxcCore

/// Convolution operators.
enum ConvolutionKernels {
    static let table: [String: Kernel] = [:]
}
