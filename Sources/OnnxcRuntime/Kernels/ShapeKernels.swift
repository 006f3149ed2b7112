import OnnxcCore

/// Shape operators.
enum ShapeKernels {
    static let table: [String: Kernel] = [:]
}
