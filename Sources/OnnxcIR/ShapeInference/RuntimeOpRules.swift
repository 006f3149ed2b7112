import OnnxcCore

/// onnxc's runtime-only ops (domain `ai.onnxc`, see `RuntimeOps`), keyed "ai.onnxc::OpType" so they never
/// collide with a standard op of the same name.
enum RuntimeOpRules {
    static let table: [String: InferenceRule] = [:]
}
