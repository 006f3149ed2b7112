import ArgumentParser
import OnnxcCore
import OnnxcEmitter
import OnnxcRuntime

/// `onnxc verify MODEL.onnx MODEL.oxc`: the compiled model must give the original's answers.
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Run an ONNX model (as written, -O0) and its compiled .oxc on the same inputs and compare every output.",
        discussion: """
            An output passes when every |oxc - onnx| <= atol + rtol * max|onnx| (rtol relative to the output's largest \
            magnitude: near-zero elements of a deep network's output carry the rounding of its large ones), or \
            atol + rtol * |onnx| per element with --elementwise. Exits 1 when any output does not.
            """)

    @Argument(help: "The original ONNX model.")
    var reference: String

    @Argument(help: "The compiled model (.oxc), or another .onnx to compare at -O2.")
    var candidate: String

    @Option(name: .customLong("input"), help: ArgumentHelp("An input: NAME=FILE (.npy, .npz or .pb); missing inputs are generated.", valueName: "name=file"))
    var inputs: [String] = []

    @Option(help: ArgumentHelp("Dims for generated inputs: NAME=1x3x224x224.", valueName: "name=dims"))
    var inputShape: [String] = []

    @Option(help: "Relative tolerance.")
    var rtol: Double = 1e-4

    @Option(help: "Absolute tolerance.")
    var atol: Double = 1e-5

    @Flag(help: "Compare each element against its own magnitude (numpy.allclose) instead of the output's largest.")
    var elementwise = false

    func validate() throws {
        for spec in inputShape { _ = try InputShapes.parse(spec) }
    }

    func run() throws {
        var shapes: [String: [Int64]] = [:]
        for spec in inputShape {
            let (name, dims) = try InputShapes.parse(spec)
            shapes[name] = dims
        }
        let original = try Runnable.load(reference, level: 0)
        let compiled = try Runnable.load(candidate, level: 2)
        let given = try InputFiles.load(inputs, graph: original.graph, model: reference, requireAll: false)
        let values = try GeneratedInputs.make(for: original.graph, given: given, shapes: shapes)
        let expected = try original.run(values)
        let actual = try compiled.run(values)
        var failed = false
        var lines: [String] = []
        for output in original.graph.outputs {
            guard let want = expected[output.name]?.tensor else { continue }
            guard let got = actual[output.name]?.tensor else {
                lines.append("FAIL \(output.name): missing from \(candidate)")
                failed = true
                continue
            }
            let errors = TensorComparison.maximumErrors(got, want)
            let problem = TensorComparison.difference(got, want, rtol: rtol, atol: atol, scale: elementwise ? .element : .output)
            failed = failed || problem != nil
            func g(_ v: Double) -> String { Text.format("%.3g", v) }
            lines.append((problem == nil ? "ok   " : "FAIL ") + "\(output.name): max abs err \(g(errors.absolute)), "
                         + "rel to the output's largest \(g(errors.ofOutput)), elementwise rel \(g(errors.relative))"
                         + (problem.map { " — \($0)" } ?? ""))
        }
        Output.write(lines.joined(separator: "\n") + "\n")
        if failed, Runnable.isCompiled(candidate), let level = try? CompiledFile.load(candidate).program.metadata.optimization,
           ["-O int8", "-O int8-dynamic", "-O fp16"].contains(level) {
            // A reduced-precision model is expected to differ by more than float rounding.
            Output.note("note: \(candidate) was compiled with \(level): expect differences of a quantization step per layer, and "
                        + "more where generated inputs leave the calibration range (they are clipped); pass real inputs with "
                        + "--input and a looser --rtol (e.g. 0.05), or measure accuracy with compile --eval-data")
        }
        if failed { throw ExitCode.failure }
    }
}
