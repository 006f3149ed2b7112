import ArgumentParser
import OnnxcCore
import OnnxcFrontend
import OnnxcIR

/// `onnxc optimize MODEL -o OUT.onnx -O<level>`: ONNX in, standard ONNX out.
struct Optimize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "optimize",
        abstract: "Optimize a model and write standard ONNX that ONNX Runtime loads.",
        discussion: """
            -O0 re-encodes the model losslessly: same nodes, names, attributes, initializer bytes, metadata and \
            opsets. -O1 canonicalizes: constant folding (with the runtime's kernels), Identity/Dropout elimination, \
            common-subexpression elimination and dead-code elimination, to a fixed point. -O2 adds fusions. Weights go to a side file (OUT.data) with --external-data, when the model already used \
            external data, or when they would exceed protobuf's 2 GB limit.
            """)

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(name: .shortAndLong, help: "Where to write the optimized model.")
    var output: String

    @Option(name: .customShort("O", allowingJoined: true),
            help: ArgumentHelp("Optimization level, as -O1 or -O 1 (0: lossless re-encode, 1: canonicalize, 2: fuse).", valueName: "level"))
    var level: String = "0"

    @Flag(help: "Write initializers of 1 kB or more to OUT.data beside the model.")
    var externalData = false

    @Option(help: ArgumentHelp("Skip a pass (repeatable); `onnxc passes` lists them.", valueName: "id"))
    var disablePass: [String] = []

    @Flag(help: "Print, per pass: runs, changes, nodes removed and added, time.")
    var printPassStats = false

    @Flag(help: "Print the report as JSON (op counts before and after, per-pass statistics).")
    var json = false

    func validate() throws {
        _ = try OptimizationLevel.parse(level)
        try OptimizationLevel.validate(disabled: disablePass)
        guard output != model else { throw ValidationError("the output must not overwrite the input model") }
    }

    func run() throws {
        let optimization = try OptimizationLevel.parse(level)
        // -O0 keeps model-local functions as they are: the output is the same model, re-encoded. Higher levels
        // work on the inlined graph.
        let loaded = try ModelLoading.load(model, inlineFunctions: optimization > 0)
        let (optimized, passStatistics) = try OptimizationLevel.optimize(loaded, level: optimization, disabled: disablePass, file: model)
        do {
            try ONNXExporter.write(optimized, to: output, options: ExportOptions(externalData: externalData ? .always : .automatic))
        } catch {
            throw CommandFailure(file: output, error)
        }
        guard optimization > 0 else { return }
        if json {
            let before = ModelSummary(loaded), after = ModelSummary(optimized)
            let ops = JSON.object(Set(before.opHistogram.map(\.op) + after.opHistogram.map(\.op)).sorted().map { op in
                (op, JSON.object([("before", .int(Int64(before.opHistogram.first { $0.op == op }?.count ?? 0))),
                                  ("after", .int(Int64(after.opHistogram.first { $0.op == op }?.count ?? 0)))]))
            })
            Output.write(JSON.object([("nodes_before", .int(Int64(before.nodeCountIncludingSubgraphs))),
                                      ("nodes_after", .int(Int64(after.nodeCountIncludingSubgraphs))),
                                      ("ops", ops), ("passes", OptimizationLevel.statisticsJSON(passStatistics))]).serialized() + "\n")
        } else {
            Output.write(OptimizationLevel.opTable(before: loaded, after: optimized))
            if printPassStats { Output.write("\n" + OptimizationLevel.statisticsTable(passStatistics)) }
        }
    }
}
