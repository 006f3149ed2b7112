import OnnxcIR
import OnnxcLowering
import OnnxcRuntime

/// The operators of a model the runtime has no kernel for (with their nodes), for `info`.
enum UnsupportedOps {
    static func list(_ model: Model) -> [RuntimeError.UnsupportedOp] {
        // Functions are inlined for this question: their bodies are what would run.
        let inlined = (try? FunctionInliner.inline(model)) ?? model
        do {
            _ = try Executor(graph: try Lowering.lower(inlined))
            return []
        } catch {
            if case .unsupportedOps(let ops) = error { return ops }
            return []
        }
    }
}
