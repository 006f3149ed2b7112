import OnnxcCore

/// Misc operators.
enum MiscKernels {
    static let table: [String: Kernel] = [:]
}
