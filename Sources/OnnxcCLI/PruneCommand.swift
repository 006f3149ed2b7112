import ArgumentParser
import OnnxcCore
import OnnxcFrontend
import OnnxcIR
import OnnxcPasses
import OnnxcRuntime

/// `onnxc prune MODEL --ratio R -o OUT.onnx`: structured channel pruning, standard ONNX out.
struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Remove channels from a model's layers and write standard ONNX with the same inputs and outputs.",
        discussion: """
            Layers coupled by a channel (a convolution and its BatchNormalization, activations, pools, the next \
            layers' inputs, residual Adds, Concat/Split, depthwise convolutions, Flatten into a Gemm) form one \
            group; each group loses --ratio of its channels, the least important by the criterion summed over \
            the group. Graph outputs and ops pruning cannot follow keep their channels; the report says why. With \
            --calibration-data, every layer whose inputs lost channels is refitted by least squares to reproduce \
            its original output on those samples (no training loop).
            """)

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(name: .shortAndLong, help: "Where to write the pruned model (.onnx).")
    var output: String

    @OptionGroup var pruning: PruningArguments

    @Option(help: ArgumentHelp("Also factor Gemm/MatMul/1×1 Conv weights by SVD, keeping this fraction of the singular-value energy (e.g. 0.99).", valueName: "energy"))
    var lowRank: Double?

    @Flag(help: "Print the report as JSON.")
    var json = false

    func validate() throws {
        guard output != model else { throw ValidationError("the output must not overwrite the input model") }
        try pruning.check()
        if let e = lowRank, !(e > 0 && e <= 1) { throw ValidationError("--low-rank takes an energy fraction in (0, 1]") }
    }

    func run() throws {
        let loaded = try ModelLoading.load(model, inlineFunctions: true)
        var result = try PruningDriver.prune(loaded, file: model, request: pruning.request, quiet: json)
        if let energy = lowRank {
            let (factored, summary) = LowRankFactorization.factorize(result.model, energy: energy)
            result.model = factored
            result.lowRank = summary
            result.accuracyAfter = try PruningDriver.accuracy(result.model, evaluation: result.evaluation, file: pruning.evalData)
        }
        do {
            try ONNXExporter.write(result.model, to: output, options: ExportOptions(externalData: .automatic))
        } catch {
            throw CommandFailure(file: output, error)
        }
        if json {
            Output.write(JSON.object([("model", .string(model)), ("output", .string(output)),
                                      ("pruning", PruningDriver.json(result))]).serialized() + "\n")
        } else {
            Output.write("\(model) → \(output) (channel pruning, ratio \(pruning.ratio), \(pruning.criterion))\n" + PruningDriver.describe(result))
        }
    }
}

/// `onnxc compress MODEL --low-rank ENERGY -o OUT.onnx`: SVD factorization only.
struct Compress: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compress",
        abstract: "Factor Gemm/MatMul/1×1 Conv weights into two thin factors by SVD where that saves FLOPs; standard ONNX out.")

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(name: .shortAndLong, help: "Where to write the compressed model (.onnx).")
    var output: String

    @Option(help: ArgumentHelp("Fraction of each weight's singular-value energy to keep (e.g. 0.99).", valueName: "energy"))
    var lowRank: Double

    @Option(help: ArgumentHelp("Inputs and `labels` to report top-1 accuracy before and after.", valueName: "npz"))
    var evalData: String?

    @Flag(help: "Print the report as JSON.")
    var json = false

    func validate() throws {
        guard output != model else { throw ValidationError("the output must not overwrite the input model") }
        guard lowRank > 0, lowRank <= 1 else { throw ValidationError("--low-rank takes an energy fraction in (0, 1]") }
    }

    func run() throws {
        let loaded = try ModelLoading.load(model, inlineFunctions: true)
        let (canonical, _) = try OptimizationLevel.optimize(loaded, level: 1, target: .onnx, disabled: [], file: model)
        var result = PruningDriver.Result(model: canonical, summary: PruningSummary())
        if let path = evalData {
            result.evaluation = try QuantizationDriver.evaluationSet(path, model: canonical)
            result.accuracyBefore = try PruningDriver.accuracy(canonical, evaluation: result.evaluation, file: path)
        }
        let (factored, summary) = LowRankFactorization.factorize(canonical, energy: lowRank)
        result.model = factored
        result.lowRank = summary
        result.accuracyAfter = try PruningDriver.accuracy(factored, evaluation: result.evaluation, file: evalData)
        do {
            try ONNXExporter.write(factored, to: output, options: ExportOptions(externalData: .automatic))
        } catch {
            throw CommandFailure(file: output, error)
        }
        if json {
            Output.write(JSON.object([("model", .string(model)), ("output", .string(output)),
                                      ("compression", PruningDriver.json(result))]).serialized() + "\n")
        } else {
            Output.write("\(model) → \(output) (low rank, energy \(lowRank))\n" + PruningDriver.describe(result))
        }
    }
}

/// The options `prune` and `compile --prune` share.
struct PruningArguments: ParsableArguments {
    @Option(help: ArgumentHelp("Fraction of each group's channels to remove, in [0, 1).", valueName: "R"))
    var ratio: Double = 0.3

    @Option(help: ArgumentHelp("Channel importance: l1, l2 or bn-scale (|γ| of the BatchNormalization after a layer).", valueName: "criterion"))
    var criterion: String = "l1"

    @Option(help: ArgumentHelp("Samples (.npz, one array per input, samples along axis 0) to refit pruned layers on by least squares.", valueName: "npz"))
    var calibrationData: String?

    @Option(help: ArgumentHelp("Layers whose output channels stay (comma-separated, repeatable).", valueName: "names"))
    var excludeNodes: [String] = []

    @Option(help: ArgumentHelp("Inputs and `labels` to report top-1 accuracy before and after.", valueName: "npz"))
    var evalData: String?

    @Option(help: ArgumentHelp("Every pruned layer keeps at least this many channels.", valueName: "n"))
    var minChannels = 1

    @Option(help: ArgumentHelp("Round kept channel counts up to a multiple of n (8 or 16 suit the vector kernels).", valueName: "n"))
    var roundTo = 1

    func check() throws {
        guard ratio >= 0, ratio < 1 else { throw ValidationError("--ratio takes a fraction in [0, 1), e.g. 0.3") }
        guard minChannels >= 1 else { throw ValidationError("--min-channels must be at least 1") }
        guard roundTo >= 1 else { throw ValidationError("--round-to must be at least 1") }
        guard PruningCriterion(rawValue: criterion) != nil else {
            throw ValidationError("--criterion is one of \(PruningCriterion.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    var request: PruningDriver.Request { PruningDriver.Request(options: options, calibrationData: calibrationData, evalData: evalData) }

    var options: PruningOptions {
        let excluded = Set(excludeNodes.flatMap { $0.split(separator: ",").map { $0.trimmingWhitespace() } }.filter { !$0.isEmpty })
        return PruningOptions(ratio: ratio, criterion: PruningCriterion(rawValue: criterion) ?? .l1, excludedNodes: excluded, minimumChannels: minChannels, roundTo: roundTo)
    }
}

enum PruningDriver {
    /// A pruning job: the options and the sample files.
    struct Request {
        var options: PruningOptions
        var calibrationData: String?
        var evalData: String?
    }

    struct Result {
        var model: Model
        var summary: PruningSummary
        var lowRank: LowRankSummary?
        var evaluation: (batches: [[String: Value]], labels: [Int64])?
        var accuracyBefore: Double?
        var accuracyAfter: Double?
        var seconds = 0.0
    }

    /// Canonicalizes (-O1: constants folded into initializers, shapes resolved), then prunes.
    static func prune(_ model: Model, file: String, request: Request, quiet: Bool) throws -> Result {
        let start = ContinuousClock.now
        let (canonical, _) = try OptimizationLevel.optimize(model, level: 1, target: .onnx, disabled: [], file: file)
        var batches: [[String: Value]] = []
        if let path = request.calibrationData { batches = try QuantizationDriver.calibrationBatches(path, model: canonical).0 }
        var result = Result(model: canonical, summary: PruningSummary())
        if let path = request.evalData {
            result.evaluation = try QuantizationDriver.evaluationSet(path, model: canonical)
            result.accuracyBefore = try accuracy(canonical, evaluation: result.evaluation, file: path)
        }
        let progress = ProgressBar(label: "refitting", unit: "steps", quiet: quiet || batches.isEmpty)
        do {
            (result.model, result.summary) = try ChannelPruning.prune(canonical, options: request.options, calibration: batches) { done, total in
                progress.update(done, total)
            }
        } catch let error as any UserFacingError {
            progress.finish()
            throw CommandFailure(file: file, error)
        }
        progress.finish()
        result.accuracyAfter = try accuracy(result.model, evaluation: result.evaluation, file: request.evalData)
        result.seconds = Stopwatch.seconds(since: start)
        return result
    }

    static func accuracy(_ model: Model, evaluation: (batches: [[String: Value]], labels: [Int64])?, file: String?) throws(CommandFailure) -> Double? {
        guard let evaluation else { return nil }
        do throws(RuntimeError) {
            return try Sensitivity.accuracy(model, batches: evaluation.batches, labels: evaluation.labels)
        } catch {
            throw CommandFailure(file: file, error)
        }
    }

    static func millions(_ v: Double) -> String { v >= 1e9 ? Text.format("%.2f G", v / 1e9) : v >= 1e6 ? Text.format("%.2f M", v / 1e6) : Text.format("%.1f k", v / 1e3) }

    static func describe(_ result: Result) -> String {
        let s = result.summary
        var text = ""
        let pruned = s.groups.filter { $0.channelsAfter < $0.channelsBefore }
        if !s.groups.isEmpty {
            text += "  group  channels     params              FLOPs                 layers\n"
            for (i, g) in s.groups.enumerated() {
                let layers = g.layers.count > 3 ? g.layers.prefix(3).joined(separator: ", ") + " +\(g.layers.count - 3)" : g.layers.joined(separator: ", ")
                func pad(_ text: String, _ width: Int) -> String { text.count >= width ? text : text + String(repeating: " ", count: width - text.count) }
                text += Text.format("  %-5ld  %4ld → %-4ld  ", i, g.channelsBefore, g.channelsAfter)
                    + pad("\(millions(Double(g.parametersBefore))) → \(millions(Double(g.parametersAfter)))", 20)
                    + pad("\(millions(g.flopsBefore)) → \(millions(g.flopsAfter))", 22) + layers
                    + (g.blockSize > 1 ? " (a unit is a block of \(g.blockSize) channels, e.g. a head)" : "") + "\n"
                if g.channelsAfter == g.channelsBefore, let why = g.reasons.first { text += "         kept: \(why)\n" }
            }
            text += "  \(pruned.count) of \(s.groups.count) groups pruned\n"
        }
        if s.parametersBefore > 0 {
            text += "  params   \(millions(Double(s.parametersBefore))) → \(millions(Double(s.parametersAfter))) "
                + Text.format("(−%.1f %%)\n", 100 * (1 - Double(s.parametersAfter) / Double(s.parametersBefore)))
        }
        if s.flopsBefore > 0 {
            text += "  FLOPs    \(millions(s.flopsBefore)) → \(millions(s.flopsAfter)) " + Text.format("(−%.1f %%)\n", 100 * (1 - s.flopsAfter / s.flopsBefore))
        }
        if !s.reconstructed.isEmpty { text += "  refitted \(s.reconstructed.count) layers by least squares on the calibration set\n" }
        if let low = result.lowRank {
            text += "  low rank: \(low.factored.count) weights factored, params \(millions(Double(low.parametersBefore))) → \(millions(Double(low.parametersAfter)))\n"
            for f in low.factored { text += "    \(f.layer): rank \(f.rank) of \(f.fullRank)\n" }
        }
        if let a = result.accuracyBefore, let b = result.accuracyAfter {
            text += Text.format("  accuracy %.2f %% → %.2f %% (%+.2f points)\n", a * 100, b * 100, (b - a) * 100)
        }
        for note in s.unpruned { text += "  kept \(note.layer): \(note.reason)\n" }
        return text
    }

    static func json(_ result: Result) -> JSON {
        let s = result.summary
        func number(_ v: Double?) -> JSON { v.map { $0.isFinite ? .double($0) : .null } ?? .null }
        var fields: [(String, JSON)] = [
            ("groups", .array(s.groups.map { g in
                .object([("layers", .array(g.layers.map(JSON.string))), ("members", .array(g.members.map(JSON.string))),
                         ("channels_before", .int(Int64(g.channelsBefore))), ("channels_after", .int(Int64(g.channelsAfter))),
                         ("block_size", .int(Int64(g.blockSize))),
                         ("reasons", .array(g.reasons.map(JSON.string))),
                         ("params_before", .int(Int64(g.parametersBefore))), ("params_after", .int(Int64(g.parametersAfter))),
                         ("flops_before", .double(g.flopsBefore)), ("flops_after", .double(g.flopsAfter))])
            })),
            ("params_before", .int(Int64(s.parametersBefore))), ("params_after", .int(Int64(s.parametersAfter))),
            ("flops_before", .double(s.flopsBefore)), ("flops_after", .double(s.flopsAfter)),
            ("reconstructed", .array(s.reconstructed.map(JSON.string))),
            ("removed_channels", .array(s.removedChannels.map { r in
                .object([("layer", .string(r.layer)), ("inputs", .array(r.inputs.map { .int(Int64($0)) })),
                         ("outputs", .array(r.outputs.map { .int(Int64($0)) }))])
            })),
            ("unpruned", .array(s.unpruned.map { JSON.object([("layer", .string($0.layer)), ("reason", .string($0.reason))]) })),
            ("accuracy_before", number(result.accuracyBefore)), ("accuracy_after", number(result.accuracyAfter)),
        ]
        if let low = result.lowRank {
            fields.append(("low_rank", .object([("factored", .array(low.factored.map { f in
                .object([("layer", .string(f.layer)), ("rank", .int(Int64(f.rank))), ("full_rank", .int(Int64(f.fullRank)))])
            })), ("params_before", .int(Int64(low.parametersBefore))), ("params_after", .int(Int64(low.parametersAfter)))])))
        }
        return .object(fields)
    }
}
