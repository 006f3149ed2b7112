import ArgumentParser
import OnnxcCore
import OnnxcEmitter
import OnnxcFormat
import OnnxcIR
import OnnxcPasses

/// `onnxc compile MODEL -o OUT.oxc`: optimizes for the runtime, plans memory, and writes the compiled model.
struct Compile: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compile",
        abstract: "Compile an ONNX model into a .oxc file that `onnxc run`/`bench` (and the C/Swift runtime) load in place.")

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(name: .shortAndLong, help: "Where to write the compiled model (.oxc).")
    var output: String

    @Option(name: .customShort("O", allowingJoined: true),
            help: ArgumentHelp("Optimization level: 0 (as written), 1 (canonicalize), 2 (plus fusions and onnxc's fused ops; default), int8 (-O2 plus int8 quantization: needs --calibration-data), int8-dynamic (int8 weights, activation grids per run), fp16 (-O2 with float16 weight storage: half the size, float32 compute).", valueName: "level"))
    var level: String = "2"

    @OptionGroup(title: "int8 quantization (-O int8)") var quantization: QuantizationArguments

    @Option(help: ArgumentHelp("Pin an input's dims so every size is known ahead of time: NAME=1x3x224x224 (repeatable).", valueName: "name=dims"))
    var inputShape: [String] = []

    @Option(help: ArgumentHelp("Threads the runtime uses by default for this model (default: the machine's physical cores).", valueName: "n"))
    var threads: Int?

    @Option(help: ArgumentHelp("Skip a pass (repeatable); `onnxc passes` lists them.", valueName: "id"))
    var disablePass: [String] = []

    @Flag(help: "Keep every weight in ONNX's layout instead of the kernels' packed one (for comparisons).")
    var noPrepack = false

    @Flag(help: "Compute every convolution directly, without the Winograd kernel where it was measured faster (for comparisons).")
    var noWinograd = false

    @Flag(help: "Give every Concat operand and Split part its own arena slot instead of a channel range of a wider tensor's (for comparisons).")
    var noChannelWindows = false

    @Option(help: ArgumentHelp("Prune this fraction of each channel group first (as `onnxc prune --ratio`; refitted on --calibration-data when given).", valueName: "R"))
    var prune: Double?

    @Option(help: ArgumentHelp("Channel importance for --prune: l1, l2 or bn-scale.", valueName: "criterion"))
    var pruneCriterion: String = "l1"

    @Flag(help: "Print the compile report as JSON.")
    var json = false

    /// What --prune asks for: `onnxc prune --ratio R --criterion C`, refitted on the calibration data.
    var pruningRequest: PruningDriver.Request {
        PruningDriver.Request(options: PruningOptions(ratio: prune ?? 0, criterion: PruningCriterion(rawValue: pruneCriterion) ?? .l1),
                              calibrationData: quantization.calibrationData, evalData: quantization.evalData)
    }

    /// -O int8: quantized on top of -O2.
    var int8: Bool { level == "int8" || int8Dynamic }
    /// -O int8-dynamic: int8 weights, activation grids per run.
    var int8Dynamic: Bool { level == "int8-dynamic" }
    /// -O fp16: -O2 with float16 weight storage.
    var fp16: Bool { level == "fp16" }

    func validate() throws {
        if int8 && !int8Dynamic {
            guard quantization.calibrationData != nil else {
                throw ValidationError("-O int8 needs --calibration-data CALIB.npz (one array per model input, samples along axis 0)")
            }
        } else if !fp16 && !int8 {
            guard (try? OptimizationLevel.parse(level)) != nil else {
                throw ValidationError("-O\(level) is not a level: use -O0, -O1, -O2 (default), -O int8 (with --calibration-data), -O int8-dynamic or -O fp16")
            }
        }
        try OptimizationLevel.validate(disabled: disablePass)
        for spec in inputShape { _ = try InputShapes.parse(spec) }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let prune, !(prune >= 0 && prune < 1) { throw ValidationError("--prune takes a fraction in [0, 1), e.g. 0.3") }
        guard PruningCriterion(rawValue: pruneCriterion) != nil else {
            throw ValidationError("--prune-criterion is one of \(PruningCriterion.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() throws {
        let levelName = int8 || fp16 ? "-O \(level)" : "-O\(level)"
        let level = int8 || fp16 ? 2 : try OptimizationLevel.parse(level)
        var stages: [(String, Double)] = []
        var clock = ContinuousClock.now
        func lap(_ name: String) {
            stages.append((name, Stopwatch.seconds(since: clock)))
            clock = ContinuousClock.now
        }
        var shapes: [String: [Int64]] = [:]
        for spec in inputShape {
            let (name, dims) = try InputShapes.parse(spec)
            shapes[name] = dims
        }
        let source = try ModelLoading.load(model, inlineFunctions: true)
        let hash: [UInt8]
        do {
            hash = try MappedFile.map(path: model).withUnsafeBytes { SHA256.hash($0) }
        } catch {
            throw CommandFailure(file: nil, error)
        }
        lap("import")
        var pinned = source
        do {
            pinned = try InputShapes.pin(source, shapes)
        } catch {
            throw CommandFailure(file: model, error)
        }
        var pruned: PruningDriver.Result?
        if prune != nil {
            let result = try PruningDriver.prune(pinned, file: model, request: pruningRequest, quiet: json)
            pinned = result.model
            pruned = result
            lap("prune")
        }
        var quantized: QuantizationDriver.Result?
        let floatModel = pinned
        if int8 {
            let result = int8Dynamic ? try QuantizationDriver.quantizeDynamic(pinned, file: model, arguments: quantization)
                                     : try QuantizationDriver.quantize(pinned, file: model, arguments: quantization, quiet: json)
            lap("calibrate")
            do {
                pinned = try Pipelines.quantizedLowering(disabled: Set(disablePass)).run(ShapeInference.infer(result.model).0)
            } catch {
                throw CommandFailure(file: model, error)
            }
            quantized = result
        }
        var (optimized, passStatistics) = try OptimizationLevel.optimize(pinned, level: level, target: .runtime, disabled: disablePass, file: model)
        if int8 {
            // Once more after the layout stage: the squeeze-excitation patterns exist only channels last.
            do {
                optimized = try Pipelines.quantizedLowering(disabled: Set(disablePass)).run(ShapeInference.infer(optimized).0)
            } catch {
                throw CommandFailure(file: model, error)
            }
        }
        let (typed, _) = ShapeInference.infer(optimized)
        lap("optimize")
        var properties = shapes.sorted { $0.key < $1.key }.map { OnnxcFormat.StringPair("input_shape", "\($0.key)=\($0.value.map(String.init).joined(separator: "x"))") }
        if let threads { properties.append(OnnxcFormat.StringPair("threads", String(threads))) }
        let metadata = ProgramMetadata(compiler: "onnxc \(Onnxc.version)", sourceSHA256: hash, sourceName: Text.lastPathComponent(model),
                                       producer: [source.producerName, source.producerVersion].filter { !$0.isEmpty }.joined(separator: " "),
                                       optimization: levelName, properties: properties)
        let program: Program, report: Emitter.Report
        do throws(EmitError) {
            (program, report) = try Emitter.emit(typed, metadata: metadata, prepackWeights: !noPrepack, winograd: !noWinograd,
                                                 channelWindows: !noChannelWindows, halfPrecisionWeights: fp16)
        } catch {
            throw CommandFailure(file: model, error)
        }
        lap("emit")
        try CompiledFile.write(program, to: output)
        lap("write")

        var kernels: [String: Int] = [:]
        for graph in program.graphs {
            for op in graph.ops {
                let name = (op.opcode.domain.isEmpty ? "" : op.opcode.domain + "::") + op.opcode.opType
                kernels[name + (KernelSelection.variant(op).map { "/" + $0 } ?? ""), default: 0] += 1
            }
        }
        let kernelList = kernels.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        let fileBytes = FileInfo.size(output)
        var variants: [DeploymentSummary.Variant] = []
        if let quantized {
            variants = try DeploymentSummary.measure(float: floatModel, floatFile: model, compiled: output, quantized: quantized,
                                                     shapes: shapes, disabled: disablePass, metadata: metadata,
                                                     original: pruned.map { (source, $0.accuracyBefore) })
        }
        if json {
            Output.write(JSON.object([
                ("model", .string(model)), ("output", .string(output)), ("optimization", .string(levelName)),
                ("nodes_before", .int(Int64(source.graph.nodeCountIncludingSubgraphs))), ("ops", .int(Int64(report.ops))),
                ("kernels", .object(kernelList.map { ($0.key, .int(Int64($0.value))) })),
                ("arena_bytes", .int(Int64(report.arenaBytes))), ("intermediate_bytes", .int(Int64(report.intermediateBytes))),
                ("constant_bytes", .int(Int64(report.constantBytes))), ("dynamic_tensors", .int(Int64(report.dynamicTensors))),
                ("prepacked_weights", .int(Int64(report.prepackedWeights))),
                ("file_bytes", fileBytes.map { .int(Int64($0)) } ?? .null),
                ("seconds", .object(stages.map { ($0.0, .double($0.1)) })),
                ("passes", OptimizationLevel.statisticsJSON(passStatistics)),
                ("quantization", quantized.map(QuantizationDriver.summaryJSON) ?? .null),
                ("pruning", pruned.map(PruningDriver.json) ?? .null),
                ("variants", variants.isEmpty ? .null : DeploymentSummary.json(variants)),
            ]).serialized() + "\n")
            return
        }
        func mb(_ bytes: Int) -> String { Text.format("%.2f MB", Double(bytes) / 1e6) }
        var text = "\(model) → \(output) (\(levelName))\n"
        if let pruned { text += PruningDriver.describe(pruned) }
        if let quantized { text += QuantizationDriver.describe(quantized) }
        text += "  nodes     \(source.graph.nodeCountIncludingSubgraphs) → \(report.ops) ops\n"
        text += "  kernels   " + kernelList.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + "\n"
        text += "  arena     \(mb(report.arenaBytes)) for \(mb(report.intermediateBytes)) of planned intermediates"
        if report.intermediateBytes > 0 { text += Text.format(" (%.0f%%)", 100 * Double(report.arenaBytes) / Double(report.intermediateBytes)) }
        text += "; \(report.dynamicTensors) \(report.dynamicTensors == 1 ? "tensor" : "tensors") sized at run time\n"
        text += "  constants \(mb(report.constantBytes)), \(report.prepackedWeights) weights prepacked for the GEMM kernel"
            + (fileBytes.map { ", file \(mb($0))" } ?? "") + "\n"
        text += "  time      " + stages.map { "\($0.0) " + Text.format("%.3f s", $0.1) }.joined(separator: ", ") + "\n"
        if report.dynamicTensors > 0 && shapes.isEmpty {
            text += "  note: some sizes depend on the inputs; --input-shape NAME=DIMS pins them so they are planned too\n"
        }
        if !variants.isEmpty { text += "\n" + DeploymentSummary.table(variants) }
        Output.write(text)
    }
}
