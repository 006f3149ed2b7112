import OnnxcCore

/// Generator operators.
enum GeneratorKernels {
    static let table: [String: Kernel] = [:]
}
