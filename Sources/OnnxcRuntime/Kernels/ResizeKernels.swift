import OnnxcCore

/// Resize operators.
enum ResizeKernels {
    static let table: [String: Kernel] = [:]
}
