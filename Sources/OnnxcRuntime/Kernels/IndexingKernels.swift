import OnnxcCore

/// Indexing operators.
enum IndexingKernels {
    static let table: [String: Kernel] = [:]
}
