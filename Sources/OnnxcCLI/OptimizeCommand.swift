import ArgumentParser
import OnnxcCore
import OnnxcFrontend
import OnnxcIR

/// `onnxc optimize MODEL -o OUT.onnx -O<level>`: ONNX in, standard ONNX out.
struct Optimize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Optimize a model and write standard ONNX that ONNX Runtime loads.",
        discussion: """
            -O0 re-encodes the model losslessly: same nodes, names, attributes, initializer bytes, metadata and \
            opsets. Weights go to a side file (OUT.data) with --external-data, when the model already used \
            external data, or when they would exceed protobuf's 2 GB limit.
            """)

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(name: .shortAndLong, help: "Where to write the optimized model.")
    var output: String

    @Option(name: .customShort("O", allowingJoined: true),
            help: ArgumentHelp("Optimization level, as -O0 or -O 0 (0: lossless re-encode).", valueName: "level"))
    var level: String = "0"

    @Flag(help: "Write initializers of 1 kB or more to OUT.data beside the model.")
    var externalData = false

    func validate() throws {
        guard ["0"].contains(level) else {
            throw ValidationError("-O\(level) is not available yet: this build of onnxc offers -O0 (lossless re-encode)")
        }
        guard output != model else { throw ValidationError("the output must not overwrite the input model") }
    }

    func run() throws {
        // -O0 keeps model-local functions as they are: the output is the same model, re-encoded.
        let loaded = try ModelLoading.load(model, inlineFunctions: false)
        do {
            try ONNXExporter.write(loaded, to: output, options: ExportOptions(externalData: externalData ? .always : .automatic))
        } catch {
            throw CommandFailure(file: output, error)
        }
    }
}
