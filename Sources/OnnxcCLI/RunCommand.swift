import ArgumentParser
import OnnxcCore
import OnnxcFrontend
import OnnxcIR
import OnnxcLowering
import OnnxcRuntime

/// `onnxc run MODEL --input NAME=FILE ...`: executes a model on given inputs.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",abstract: "Run a model on inputs from .npy, .npz or TensorProto .pb files.")

    @Argument(help: "The model: an .onnx file, or a compiled .oxc.")
    var model: String

    @Option(name: .customLong("input"), help: ArgumentHelp("An input: NAME=FILE (.npy, .npz or .pb).", valueName: "name=file"))
    var inputs: [String] = []

    @Option(help: "Write one NAME.npy per graph output into this folder.")
    var outputDir: String?

    @Flag(help: "Print where the time went: per op type, calls and milliseconds, slowest first.")
    var profile = false

    @Option(name: .customShort("O", allowingJoined: true),
            help: ArgumentHelp("For .onnx: optimize for the runtime first: -O0 (as written), -O1, -O2 (with onnxc's fused ops).", valueName: "level"))
    var level: String = "0"

    @Option(help: ArgumentHelp("Kernel threads (default: the compiled model's setting, else physical cores).", valueName: "n"))
    var threads: Int?

    func validate() throws {
        _ = try OptimizationLevel.parse(level)
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        let runnable = try Runnable.load(model, level: OptimizationLevel.parse(level))
        runnable.applyThreads(threads)
        let graph = runnable.graph
        let executor = runnable.executor
        let values = try InputFiles.load(inputs, graph: graph, model: model)
        let results: [String: Value]
        if profile { executor.profile = [:] }
        let start = ContinuousClock.now
        do {
            results = try executor.run(values)
        } catch {
            throw CommandFailure(file: model, error)
        }
        let total = ContinuousClock.now - start
        try OutputFiles.emit(results, graph: graph, outputDir: outputDir)
        if let table = executor.profile { Output.note(Profile.render(table, total: total)) }
    }
}

/// The `--profile` table, on stderr so outputs stay parseable.
enum Profile {
    static func render(_ table: [String: OpProfile], total: Duration) -> String {
        let totalMilliseconds = Double(total.components.seconds) * 1e3 + Double(total.components.attoseconds) * 1e-15
        var lines = ["op                    calls        ms       %"]
        for (op, entry) in table.sorted(by: { $0.value.seconds > $1.value.seconds }) {
            let ms = entry.seconds * 1e3
            let share = totalMilliseconds > 0 ? 100 * ms / totalMilliseconds : 0
            lines.append(pad(op, 20) + pad(String(entry.calls), 8, left: true) + pad(format(ms), 10, left: true)
                         + pad(format(share), 8, left: true))
        }
        lines.append("total \(format(totalMilliseconds)) ms (subgraph ops are also inside their If/Loop/Scan)")
        return lines.joined(separator: "\n")
    }

    private static func format(_ value: Double) -> String {
        let rounded = (value * 100).rounded() / 100
        return String(rounded)
    }

    private static func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - text.count))
        return left ? fill + text : text + fill
    }
}
