import OnnxcCore

/// Cast operators.
enum CastKernels {
    static let table: [String: Kernel] = [:]
}
