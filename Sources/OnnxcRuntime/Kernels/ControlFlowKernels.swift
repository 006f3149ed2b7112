import OnnxcCore

/// ControlFlow operators.
enum ControlFlowKernels {
    static let table: [String: Kernel] = [:]
}
