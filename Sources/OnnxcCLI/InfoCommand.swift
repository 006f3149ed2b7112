import ArgumentParser
import OnnxcIR

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
        Output.write(json ? summary.json.serialized() + "\n" : summary.text)
    }
}
