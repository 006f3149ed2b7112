import ArgumentParser
import OnnxcCore
import OnnxcIR
import OnnxcLowering
import OnnxcRuntime

/// `onnxc info MODEL`: versions, signature, parameters and op histogram.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Summarize a model: IR version, opsets, producer, inputs and outputs, parameters, op histogram.")

    @Argument(help: "The ONNX model file.")
    var model: String

    @Flag(help: "Print the summary as JSON.")
    var json = false

    func run() throws {
        let loaded = try ModelLoading.load(model, inlineFunctions: false)
        let summary = ModelSummary(loaded)
        let unsupported = UnsupportedOps.list(loaded)
        if json {
            guard case .object(var members) = summary.json else { return }
            members.append(("unsupported_ops", .array(unsupported.map { .string($0.description) })))
            Output.write(JSON.object(members).serialized() + "\n")
        } else {
            var text = summary.text
            if !unsupported.isEmpty {
                text += "unsupported (no onnxc kernel yet)\n" + unsupported.map { "  \($0)\n" }.joined()
            }
            Output.write(text)
        }
    }
}
