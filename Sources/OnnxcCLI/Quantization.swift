import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import OnnxcCore
import OnnxcFrontend
import OnnxcIR
import OnnxcPasses
import OnnxcRuntime

/// The options `quantize` and `compile -O int8` share.
struct QuantizationArguments: ParsableArguments {
    @Option(help: ArgumentHelp("Calibration inputs: a .npz with one array per model input, samples along axis 0.", valueName: "file"))
    var calibrationData: String?

    @Option(help: ArgumentHelp("How ranges are chosen: minmax (default), percentile or entropy.", valueName: "method"))
    var calibrationMethod: String = "minmax"

    @Option(help: ArgumentHelp("The percentile kept by --calibration-method percentile (default 99.99).", valueName: "p"))
    var percentile: Double = 99.99

    @Flag(help: "One scale per weight tensor instead of one per output channel.")
    var perTensor = false

    @Option(help: ArgumentHelp("Nodes to keep in float, by name, comma-separated (repeatable).", valueName: "names"))
    var excludeNodes: [String] = []

    @Option(help: ArgumentHelp("Op types to keep in float, comma-separated (repeatable).", valueName: "types"))
    var excludeOpTypes: [String] = []

    @Option(help: ArgumentHelp("Write the per-layer sensitivity report (SQNR and cosine of each layer's output against the float model on the calibration data, worst first) as JSON.", valueName: "file"))
    var report: String?

    @Option(help: ArgumentHelp("Keep the N layers that lose the most accuracy (by the sensitivity report) in float.", valueName: "n"))
    var autoFallback: Int?

    @Option(help: ArgumentHelp("Keep the worst layers in float until the top-1 accuracy on --eval-data is at most this many points below the float model's.", valueName: "points"))
    var maxAccuracyDrop: Double?

    @Option(help: ArgumentHelp("Evaluation data: a .npz with the model's inputs and `labels` (one class per sample); reports accuracy before and after.", valueName: "file"))
    var evalData: String?

    func validate() throws {
        _ = try method()
        guard percentile > 50, percentile <= 100 else { throw ValidationError("--percentile must be in (50, 100], e.g. 99.99") }
        if let autoFallback, autoFallback < 0 { throw ValidationError("--auto-fallback must be 0 or more") }
        if let maxAccuracyDrop {
            guard maxAccuracyDrop >= 0 else { throw ValidationError("--max-accuracy-drop must be 0 or more points") }
            guard evalData != nil else { throw ValidationError("--max-accuracy-drop needs --eval-data EVAL.npz (inputs and labels)") }
        }
    }

    /// Whether the sensitivity of each layer must be measured.
    var needsSensitivity: Bool { report != nil || autoFallback != nil || maxAccuracyDrop != nil }

    func method() throws -> CalibrationMethod {
        switch calibrationMethod {
        case "minmax": return .minMax
        case "percentile": return .percentile(percentile)
        case "entropy": return .entropy
        default: throw ValidationError("--calibration-method \(calibrationMethod) is not a method: use minmax, percentile or entropy")
        }
    }

    var options: QuantizationOptions {
        func split(_ lists: [String]) -> Set<String> {
            Set(lists.flatMap { $0.split(separator: ",").map { $0.trimmingWhitespace() } }.filter { !$0.isEmpty })
        }
        return QuantizationOptions(perChannel: !perTensor, excludedNodes: split(excludeNodes), excludedOpTypes: split(excludeOpTypes))
    }
}

/// Calibration and QDQ insertion for the CLI: the float model is optimized (BatchNormalization folded, Gemm
/// formed) before it is observed, so ranges are those of the tensors the quantized model computes.
enum QuantizationDriver {
    struct Result {
        var model: Model
        var summary: QuantizationSummary
        var samples: Int
        var seconds: Double
        var sensitivity: [LayerSensitivity] = []
        /// Top-1 accuracy (0…1) of the float and the quantized model on --eval-data.
        var floatAccuracy: Double?
        var quantizedAccuracy: Double?
        /// Layers kept in float by --auto-fallback / --max-accuracy-drop.
        var fallback: [String] = []
    }

    /// `-O int8-dynamic` / `quantize --dynamic`: int8 weights, activation grids computed per run; no calibration.
    static func quantizeDynamic(_ model: Model, file: String, arguments: QuantizationArguments) throws -> Result {
        let start = ContinuousClock.now
        let (optimized, _) = try OptimizationLevel.optimize(model, level: 2, target: .onnx, disabled: [], file: file)
        var options = arguments.options
        options.dynamic = true
        do throws(QuantizationError) {
            let (quantized, summary) = try QDQInsertion.insert(optimized, ranges: [:], options: options)
            return Result(model: quantized, summary: summary, samples: 0, seconds: Stopwatch.seconds(since: start))
        } catch {
            throw CommandFailure(file: file, error)
        }
    }

    static func quantize(_ model: Model, file: String, arguments: QuantizationArguments, quiet: Bool) throws -> Result {
        guard let calibrationPath = arguments.calibrationData else {
            throw CommandFailure(file: file, what: "int8 quantization needs calibration data",
                                 hint: "pass --calibration-data CALIB.npz: one array per model input, samples along axis 0")
        }
        let start = ContinuousClock.now
        let (optimized, _) = try OptimizationLevel.optimize(model, level: 2, target: .onnx, disabled: [], file: file)
        let (batches, samples) = try calibrationBatches(calibrationPath, model: optimized)
        let options = arguments.options
        let unknown = options.excludedNodes.subtracting(optimized.graph.nodes.map(\.name))
        if !unknown.isEmpty {
            throw CommandFailure(file: file, what: "--exclude-nodes names no node: \(unknown.sorted().joined(separator: ", "))",
                                 hint: "`onnxc dump \(file) -O 2` lists the node names after optimization")
        }
        // The evaluation set is checked before the calibration runs, so a bad file fails at once.
        var evaluation: (batches: [[String: Value]], labels: [Int64])?
        if let path = arguments.evalData { evaluation = try evaluationSet(path, model: optimized) }
        let tensors = QDQInsertion.calibrationTensors(optimized, options: options)
        let progress = ProgressBar(label: "calibrating", quiet: quiet)
        let ranges: [String: TensorRange]
        let method = try arguments.method()
        do throws(RuntimeError) {
            ranges = try Calibration.ranges(model: optimized, tensors: tensors, batches: batches, method: method) { done, total in
                progress.update(done, total)
            }
        } catch {
            progress.finish()
            throw CommandFailure(file: calibrationPath, error)
        }
        progress.finish()
        func insert(_ options: QuantizationOptions) throws(CommandFailure) -> (Model, QuantizationSummary) {
            do throws(QuantizationError) {
                return try QDQInsertion.insert(optimized, ranges: ranges, options: options)
            } catch {
                throw CommandFailure(file: file, error)
            }
        }
        var (quantized, summary) = try insert(options)
        var result = Result(model: quantized, summary: summary, samples: samples, seconds: 0)
        func accuracy(_ model: Model) throws(CommandFailure) -> Double? {
            guard let evaluation else { return nil }
            do throws(RuntimeError) {
                return try Sensitivity.accuracy(model, batches: evaluation.batches, labels: evaluation.labels)
            } catch {
                throw CommandFailure(file: arguments.evalData, error)
            }
        }
        result.floatAccuracy = try accuracy(optimized)
        if arguments.needsSensitivity {
            do throws(RuntimeError) {
                result.sensitivity = try Sensitivity.analyze(float: optimized, quantized: quantized, layers: summary.layers, batches: batches)
            } catch {
                throw CommandFailure(file: calibrationPath, error)
            }
        }
        // Fallback: the layers that introduce the most error leave the quantized set, worst first.
        let ranking = result.sensitivity.map(\.node)
        var excluded = options
        if let n = arguments.autoFallback, n > 0 {
            result.fallback = Array(ranking.prefix(n))
            excluded.excludedNodes.formUnion(result.fallback)
            (quantized, summary) = try insert(excluded)
        }
        result.quantizedAccuracy = try accuracy(quantized)
        if let budget = arguments.maxAccuracyDrop, let base = result.floatAccuracy {
            for node in ranking where !excluded.excludedNodes.contains(node) {
                guard let current = result.quantizedAccuracy, (base - current) * 100 > budget else { break }
                excluded.excludedNodes.insert(node)
                result.fallback.append(node)
                (quantized, summary) = try insert(excluded)
                result.quantizedAccuracy = try accuracy(quantized)
            }
        }
        result.model = quantized
        result.summary = summary
        result.seconds = Stopwatch.seconds(since: start)
        if let path = arguments.report { try writeReport(result, to: path) }
        return result
    }

    /// --eval-data: the model's inputs (cut into runs as calibration data is) and `labels`.
    static func evaluationSet(_ path: String, model: Model) throws(CommandFailure) -> ([[String: Value]], [Int64]) {
        let arrays = try NPZArchive.read(path)
        guard let labels = arrays["labels"], labels.dtype == .int64 || labels.dtype == .int32, labels.rank == 1 else {
            throw CommandFailure(file: path, what: "has no 1-D integer array `labels`",
                                 hint: "save the class of every sample as numpy.savez(path, labels=numpy.array(classes, dtype=numpy.int64), <inputs>...)")
        }
        let (batches, samples) = try calibrationBatches(path, model: model)
        let values = labels.int64s()
        guard values.count >= samples else {
            throw CommandFailure(file: path, what: "has \(values.count) labels for \(samples) samples", hint: "give one label per sample")
        }
        return (batches, Array(values.prefix(samples)))
    }

    /// The sensitivity report as JSON, written to a temporary file and renamed.
    static func writeReport(_ result: Result, to path: String) throws(CommandFailure) {
        func number(_ v: Double) -> JSON { v.isFinite ? .double(v) : .null }
        let json = JSON.object([
            ("layers", .array(result.sensitivity.map { layer in
                .object([("node", .string(layer.node)), ("op_type", .string(layer.opType)), ("sqnr_db", number(layer.sqnr)),
                         ("cosine", number(layer.cosine)), ("introduced_db", number(layer.introduced)),
                         ("float", .bool(result.fallback.contains(layer.node)))])
            })),
            ("float_accuracy", result.floatAccuracy.map { .double($0) } ?? .null),
            ("int8_accuracy", result.quantizedAccuracy.map { .double($0) } ?? .null),
            ("kept_in_float", .array(result.fallback.map { .string($0) })),
        ])
        do {
            let writer = try AtomicFileWriter(path: path)
            try writer.write(ByteSlice(copying: Array((json.serialized() + "\n").utf8)))
            try writer.commit(durable: false)
        } catch {
            throw CommandFailure(file: nil, error)
        }
    }

    /// The calibration archive cut into runs: all samples at once for a dynamic batch (in chunks of 16), else
    /// chunks of the fixed batch. Every model input must be present with the model's dtype and trailing dims.
    static func calibrationBatches(_ path: String, model: Model) throws(CommandFailure) -> ([[String: Value]], Int) {
        let arrays = try NPZArchive.read(path)
        let inputs = model.graph.runtimeInputs
        var samples: Int?
        var fixedBatch: Int?
        for input in inputs {
            guard let array = arrays[input.name] else {
                throw CommandFailure(file: path, what: "has no array for model input \(input.name) (it has: \(arrays.keys.sorted().joined(separator: ", ")))",
                                     hint: "save one array per model input with numpy.savez(path, \(input.name)=samples, ...)")
            }
            guard case .tensor(let type)? = input.type?.kind else { continue }
            guard array.dtype == type.elementType else {
                throw CommandFailure(file: path, what: "array \(input.name) is \(array.dtype.onnxName) but the model's input is \(type.elementType.onnxName)",
                                     hint: "convert it, e.g. samples.astype(numpy.float32)")
            }
            let dims = type.shape?.dims ?? []
            guard array.rank == dims.count, array.rank >= 1 else {
                throw CommandFailure(file: path, what: "array \(input.name) has shape \(array.shape); the model's input is \(type.shape.map { "\($0)" } ?? "?") with samples along axis 0",
                                     hint: "stack the samples along a first axis of the model's rank")
            }
            for (axis, dim) in dims.enumerated().dropFirst() {
                if case .fixed(let d) = dim, d != Int64(array.shape[axis]) {
                    throw CommandFailure(file: path, what: "array \(input.name) has shape \(array.shape); axis \(axis) must be \(d) as in the model's input \(type.shape.map { "\($0)" } ?? "?")",
                                         hint: "resize the samples to the model's input size")
                }
            }
            if case .fixed(let b)? = dims.first { fixedBatch = Int(b) }
            if let s = samples, s != array.shape[0] {
                throw CommandFailure(file: path, what: "arrays hold different numbers of samples (\(s) and \(array.shape[0]) for \(input.name))",
                                     hint: "give every input the same number of samples")
            }
            samples = array.shape[0]
        }
        let count = samples ?? 0
        let chunk = fixedBatch ?? min(16, max(1, count))
        guard count >= max(1, chunk) else {
            throw CommandFailure(file: path, what: "holds \(count) samples; calibration needs at least \(max(1, chunk)) (the model's batch)",
                                 hint: "give a few hundred representative samples (TFLite asks for 100–500)")
        }
        if count % chunk != 0, fixedBatch != nil {
            Output.note("note: \(path): \(count % chunk) samples past the last full batch of \(chunk) are not used")
        }
        var batches: [[String: Value]] = []
        var first = 0
        while first + (fixedBatch ?? 1) <= count {
            let size = min(chunk, count - first)
            var batch: [String: Value] = [:]
            for input in inputs {
                guard let array = arrays[input.name] else { continue }
                do {
                    batch[input.name] = .tensor(try array.slice(first: first, count: size))
                } catch {
                    throw CommandFailure(file: path, what: "cannot slice \(input.name): \(error)", hint: "check the array")
                }
            }
            batches.append(batch)
            first += size
        }
        return (batches, first)
    }

    /// One line summary for the compile and quantize reports.
    static func describe(_ result: Result) -> String {
        let nodes = result.summary.quantizedNodes.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            .map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        var text = "  quantized \(nodes.isEmpty ? "nothing" : nodes); \(result.summary.quantizedTensors) activations, \(result.summary.quantizedWeights) weights\n"
        if result.samples > 0 {
            text += Text.format("  calibrated on %ld samples in %.2f s\n", result.samples, result.seconds)
        } else {
            text += "  dynamic   activation grids computed per run (DynamicQuantizeLinear); no calibration\n"
        }
        if !result.summary.skipped.isEmpty {
            let shown = result.summary.skipped.prefix(8).map { "\($0.node) (\($0.reason))" }.joined(separator: ", ")
            text += "  float     \(result.summary.skipped.count) nodes: \(shown)\(result.summary.skipped.count > 8 ? ", …" : "")\n"
        }
        if let a = result.floatAccuracy, let b = result.quantizedAccuracy {
            text += Text.format("  accuracy  %.2f %% float → %.2f %% int8 (%+.2f points) on the evaluation data\n", a * 100, b * 100, (b - a) * 100)
        }
        if !result.fallback.isEmpty {
            text += "  fallback  \(result.fallback.count) layers kept in float: \(result.fallback.prefix(8).joined(separator: ", "))\(result.fallback.count > 8 ? ", …" : "")\n"
        }
        if !result.sensitivity.isEmpty {
            let worst = result.sensitivity.prefix(3).map { "\($0.node) (\($0.opType), " + Text.format("%.1f dB, −%.1f dB here)", $0.sqnr, $0.introduced) }
            text += "  worst     " + worst.joined(separator: "; ") + "\n"
        }
        if result.summary.clampedBiases > 0 {
            text += "  warning: \(result.summary.clampedBiases) biases did not fit int32 at scale s_x·s_w and were clamped\n"
        }
        return text
    }

    static func summaryJSON(_ result: Result) -> JSON {
        .object([
            ("quantized_nodes", .object(result.summary.quantizedNodes.sorted { $0.key < $1.key }.map { ($0.key, .int(Int64($0.value))) })),
            ("quantized_activations", .int(Int64(result.summary.quantizedTensors))),
            ("quantized_weights", .int(Int64(result.summary.quantizedWeights))),
            ("float_nodes", .array(result.summary.skipped.map { .object([("node", .string($0.node)), ("reason", .string($0.reason))]) })),
            ("clamped_biases", .int(Int64(result.summary.clampedBiases))),
            ("calibration_samples", .int(Int64(result.samples))),
            ("calibration_seconds", .double(result.seconds)),
            ("float_accuracy", result.floatAccuracy.map { .double($0) } ?? .null),
            ("int8_accuracy", result.quantizedAccuracy.map { .double($0) } ?? .null),
            ("kept_in_float", .array(result.fallback.map { .string($0) })),
        ])
    }
}

/// A progress bar on stderr, redrawn in place; silent when quiet or when stderr is not a terminal... and
/// still one final line there, so logs show that calibration ran.
final class ProgressBar {
    let label: String
    let unit: String
    let quiet: Bool
    let terminal = isatty(2) != 0
    var last = -1

    init(label: String, unit: String = "runs", quiet: Bool) {
        self.label = label
        self.unit = unit
        self.quiet = quiet
    }

    func update(_ done: Int, _ total: Int) {
        guard !quiet, total > 0 else { return }
        let width = 30
        let filled = done * width / total
        guard terminal || done == total, filled != last || done == total else { return }
        last = filled
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        let line = "\(label) \(bar) \(done)/\(total) \(unit)"
        Output.progress((terminal ? "\r" : "") + line + (terminal ? "" : "\n"))
    }

    func finish() {
        guard !quiet, terminal, last >= 0 else { return }
        Output.progress("\n")
        last = -1
    }
}

/// `onnxc quantize MODEL --calibration-data CALIB.npz -o OUT.onnx`: standard QDQ ONNX that ONNX Runtime runs.
struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Quantize a model to int8 and write standard QDQ ONNX (QuantizeLinear/DequantizeLinear around float ops).",
        discussion: """
            Weights become int8, symmetric, one scale per output channel (stored as uint8 with zero point 128 unless \
            --weight-type int8: the same values, without the int16 saturation of ONNX Runtime's u8×s8 kernels on \
            CPUs without VNNI); activations uint8 with a scale and zero \
            point per tensor from the calibration data; biases int32 at scale s_x·s_w. The output runs in ONNX \
            Runtime, and `onnxc compile -O int8` with the same options runs the same arithmetic on integer kernels.
            """)

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(name: .shortAndLong, help: "Where to write the quantized model (.onnx).")
    var output: String

    @OptionGroup var quantization: QuantizationArguments

    @Flag(help: "Dynamic quantization: int8 weights, activation grids computed per run by DynamicQuantizeLinear (no calibration data; Conv, Gemm, MatMul, and the weights of LSTM, GRU and RNN).")
    var dynamic = false

    @Option(help: ArgumentHelp("How Conv, Gemm and MatMul weights are stored: uint8 (default; zero point 128, exact in ONNX Runtime on every CPU) or int8 (faster in ONNX Runtime on VNNI CPUs, but its kernels for CPUs without VNNI saturate int16 sums: see the README).", valueName: "type"))
    var weightType = "uint8"

    @Flag(help: "Print the report as JSON.")
    var json = false

    func validate() throws {
        guard output != model else { throw ValidationError("the output must not overwrite the input model") }
        guard ["uint8", "int8"].contains(weightType) else { throw ValidationError("--weight-type \(weightType) is not a type: use uint8 or int8") }
    }

    func run() throws {
        let loaded = try ModelLoading.load(model, inlineFunctions: true)
        let result = dynamic ? try QuantizationDriver.quantizeDynamic(loaded, file: model, arguments: quantization)
                             : try QuantizationDriver.quantize(loaded, file: model, arguments: quantization, quiet: json)
        let written = weightType == "uint8" ? UnsignedWeightEncoding.apply(result.model).0 : result.model
        do {
            try ONNXExporter.write(written, to: output, options: ExportOptions(externalData: .automatic))
        } catch {
            throw CommandFailure(file: output, error)
        }
        let sizes = [model, output].map(FileInfo.size)
        if json {
            Output.write(JSON.object([("model", .string(model)), ("output", .string(output)),
                                      ("model_bytes", sizes[0].map { .int(Int64($0)) } ?? .null),
                                      ("output_bytes", sizes[1].map { .int(Int64($0)) } ?? .null),
                                      ("quantization", QuantizationDriver.summaryJSON(result))]).serialized() + "\n")
            return
        }
        var text = "\(model) → \(output) (int8 \(dynamic ? "dynamic" : "QDQ"))\n" + QuantizationDriver.describe(result)
        if let a = sizes[0], let b = sizes[1] { text += Text.format("  size      %.2f MB → %.2f MB (%.2f×)\n", Double(a) / 1e6, Double(b) / 1e6, Double(b) / Double(a)) }
        Output.write(text)
    }
}

extension OnnxcRuntime.Tensor {
    /// Samples first ..< first + count along axis 0, copied.
    func slice(first: Int, count: Int) throws(RuntimeError) -> OnnxcRuntime.Tensor {
        guard let rows = shape.first, first >= 0, count >= 0, first + count <= rows else {
            throw .invalidArgument("samples \(first)..<\(first + count) of a tensor of shape \(shape)")
        }
        if first == 0 && count == rows { return self }
        var dims = shape
        dims[0] = count
        let result = try OnnxcRuntime.Tensor(uninitialized: dtype, shape: dims)
        let rowBytes = rows == 0 ? 0 : byteCount / rows
        withBytes { source in
            result.withMutableBytes { target in
                guard let from = source.baseAddress, let to = target.baseAddress else { return }
                to.copyMemory(from: from + first * rowBytes, byteCount: count * rowBytes)
            }
        }
        return result
    }
}
