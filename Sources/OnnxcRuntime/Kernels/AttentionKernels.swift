import OnnxcCore

enum AttentionKernels {
    static let table: [String: Kernel] = [:]
}
