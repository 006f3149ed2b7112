import OnnxcCore

/// Recurrent operators.
enum RecurrentKernels {
    static let table: [String: Kernel] = [:]
}
