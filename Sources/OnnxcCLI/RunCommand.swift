import ArgumentParser
import OnnxcCore
import OnnxcFrontend
import OnnxcIR
import OnnxcLowering
import OnnxcRuntime

/// `onnxc run MODEL --input NAME=FILE ...`: executes a model on given inputs.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a model on inputs from .npy, .npz or TensorProto .pb files.")

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(name: .customLong("input"), help: ArgumentHelp("An input: NAME=FILE (.npy, .npz or .pb).", valueName: "name=file"))
    var inputs: [String] = []

    @Option(help: "Write one NAME.npy per graph output into this folder.")
    var outputDir: String?

    func run() throws {
        let loaded = try ModelLoading.load(model, inlineFunctions: true)
        let graph: RuntimeGraph
        let executor: Executor
        do {
            graph = try Lowering.lower(loaded)
            executor = try Executor(graph: graph)
        } catch {
            throw CommandFailure(file: model, error)
        }
        let values = try InputFiles.load(inputs, graph: graph, model: model)
        let results: [String: Value]
        do {
            results = try executor.run(values)
        } catch {
            throw CommandFailure(file: model, error)
        }
        try OutputFiles.emit(results, graph: graph, outputDir: outputDir)
    }
}
