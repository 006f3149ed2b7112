import OnnxcIR
import OnnxcLowering
import OnnxcRuntime

/// The operators of a model the runtime has no kernel for (with their nodes), for `info`.
enum UnsupportedOps {
    static func list(_ model: Model) -> [RuntimeError.UnsupportedOp] {
        // Functions are inlined for this question: their bodies are what would run.
        let inlined = (try? FunctionInliner.inline(model)) ?? model
        return Lowering.unsupportedOps(inlined)
    }
}
