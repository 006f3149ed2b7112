import OnnxcCore

enum FusedKernels {
    static let table: [String: Kernel] = [:]
}
