import OnnxcCore

/// Normalization operators.
enum NormalizationKernels {
    static let table: [String: Kernel] = [:]
}
