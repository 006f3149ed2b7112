import ArgumentParser
import OnnxcCore
import OnnxcIR

/// `onnxc dump MODEL`: the whole graph as text, JSON or Graphviz DOT.
struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Print a model's graph: readable text (one line per node), JSON, or Graphviz DOT.",
        discussion: "Text and JSON are deterministic, so dumps can be diffed. Render DOT with `dot -Tsvg`.")

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json, dot
    }

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(help: "Output format: text, json or dot.")
    var format: Format = .text

    @Flag(help: "Include initializer values (the first --max-values of each) and their min/max/mean.")
    var weights = false

    @Option(help: "How many values to print per tensor.")
    var maxValues = 16

    @Flag(help: "Replace calls to model-local functions by their bodies, as the compiler sees the graph.")
    var inlineFunctions = false

    @Flag(help: "Show only the types the file declares; by default shape inference fills in every node output's type.")
    var noInfer = false

    @Option(help: ArgumentHelp("Show the graph after running a pipeline: 0, 1 or 2.", valueName: "level"))
    var pipeline: String?

    @Option(help: ArgumentHelp("With --pipeline (default 2): show the graph right after this pass last changed it.", valueName: "id"))
    var after: String?

    @Option(help: ArgumentHelp("With --pipeline: optimize for `onnx` (standard ops, what `optimize` writes) or `runtime` (onnxc's own fused ops, what the compiler executes).", valueName: "target"))
    var target: String = "onnx"

    func validate() throws {
        guard maxValues >= 0 else { throw ValidationError("--max-values must be 0 or more") }
        if let pipeline { _ = try OptimizationLevel.parse(pipeline) }
        _ = try OptimizationLevel.parseTarget(target)
        if let after { try OptimizationLevel.validate(disabled: [after]) }
    }

    func run() throws {
        // By default the graph is shown as the file has it, so node counts match what the onnx package reports.
        let level = try pipeline.map(OptimizationLevel.parse) ?? (after == nil ? nil : 2)
        var loaded = try ModelLoading.load(model, inlineFunctions: inlineFunctions || level != nil)
        if let level {
            var snapshot: Model?
            let (optimized, _) = try OptimizationLevel.optimize(loaded, level: level, target: OptimizationLevel.parseTarget(target), disabled: [], file: model) { id, model in
                if id == after { snapshot = model }
            }
            loaded = after == nil ? optimized : (snapshot ?? loaded)
            if let after, snapshot == nil { Output.note("note: pass \(after) did not change the graph; showing it before the pipeline") }
        }
        if !noInfer {
            // Inference findings do not stop the dump: they are shown on stderr, the graph on stdout.
            let (inferred, diagnostics) = ShapeInference.infer(loaded)
            loaded = inferred
            for diagnostic in diagnostics { Output.note("warning: shape inference: \(diagnostic)") }
        }
        let options = DumpOptions(includeWeights: weights, maximumValues: maxValues)
        switch format {
        case .text: Output.write(TextDump.render(loaded, options: options))
        case .json: Output.write(JSONDump.render(loaded, options: options).serialized() + "\n")
        case .dot: Output.write(DotDump.render(loaded, options: options))
        }
    }
}
