import OnnxcCore

/// LinearAlgebra operators.
enum LinearAlgebraKernels {
    static let table: [String: Kernel] = [:]
}
