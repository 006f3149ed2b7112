import OnnxcCore

/// Elementwise operators.
enum ElementwiseKernels {
    static let table: [String: Kernel] = [:]
}
