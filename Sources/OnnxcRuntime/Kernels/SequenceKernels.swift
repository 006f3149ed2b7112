import OnnxcCore

/// Sequence operators.
enum SequenceKernels {
    static let table: [String: Kernel] = [:]
}
