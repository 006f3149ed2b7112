import OnnxcCore

/// Reduction operators.
enum ReductionKernels {
    static let table: [String: Kernel] = [:]
}
