import OnnxcCore

/// Pooling operators.
enum PoolingKernels {
    static let table: [String: Kernel] = [:]
}
