import OnnxcCore

/// Activation operators.
enum ActivationKernels {
    static let table: [String: Kernel] = [:]
}
