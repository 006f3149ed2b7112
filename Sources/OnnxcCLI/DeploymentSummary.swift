import OnnxcCore
import OnnxcEmitter
import OnnxcFormat
import OnnxcIR
import OnnxcRuntime

/// The table `compile -O int8` ends with — variant, size, accuracy, size reduction, latency — so the trade-off
/// is on screen without a separate benchmark: the fp32 model is compiled in memory and both run on the same
/// generated inputs (a median of 10 runs after 2 warm-ups: indicative on a shared machine; `onnxc bench` and
/// scripts/bench_int8.py measure properly).
enum DeploymentSummary {
    struct Variant {
        var name: String
        var bytes: Int
        var accuracy: Double?
        var reduction: Double
        var latencyMs: Double?
    }

    /// `original`: the unpruned model and its accuracy, when `float` is the pruned one (`compile --prune`).
    static func measure(float: Model, floatFile: String, compiled: String, quantized: QuantizationDriver.Result, shapes: [String: [Int64]],
                        disabled: [String], metadata: ProgramMetadata, original: (model: Model, accuracy: Double?)? = nil) throws(CommandFailure) -> [Variant] {
        let fileBytes = FileInfo.size(floatFile) ?? 0
        let int8Bytes = FileInfo.size(compiled) ?? 0
        let int8Model = try CompiledFile.load(compiled)
        let int8Latency = latency(int8Model, shapes: shapes)
        func floatLatency(_ model: Model) throws(CommandFailure) -> Double? {
            let (optimized, _) = try OptimizationLevel.optimize(model, level: 2, target: .runtime, disabled: disabled, file: floatFile)
            guard let (program, _) = try? Emitter.emit(ShapeInference.infer(optimized).0, metadata: metadata, prepackWeights: true, winograd: true),
                  let compiled = try? CompiledModel(program: program) else { return nil }
            return latency(compiled, shapes: shapes)
        }
        let name = Text.lastPathComponent(floatFile)
        var variants: [Variant] = []
        if let original {
            variants.append(Variant(name: "fp32 (\(name))", bytes: fileBytes, accuracy: original.accuracy, reduction: 1, latencyMs: try floatLatency(original.model)))
            // The pruned model exists only in memory: its weights are what its file would hold.
            let weights = float.graph.initializers.reduce(0) { $0 + $1.data.byteCount }
            variants.append(Variant(name: "fp32 pruned", bytes: weights, accuracy: quantized.floatAccuracy,
                                    reduction: weights > 0 ? Double(fileBytes) / Double(weights) : 0, latencyMs: try floatLatency(float)))
        } else {
            variants.append(Variant(name: "fp32 (\(name))", bytes: fileBytes, accuracy: quantized.floatAccuracy, reduction: 1, latencyMs: try floatLatency(float)))
        }
        variants.append(Variant(name: "int8 (\(Text.lastPathComponent(compiled)))", bytes: int8Bytes, accuracy: quantized.quantizedAccuracy,
                                reduction: int8Bytes > 0 ? Double(fileBytes) / Double(int8Bytes) : 0, latencyMs: int8Latency))
        return variants
    }

    private static func latency(_ model: CompiledModel, shapes: [String: [Int64]]) -> Double? {
        guard let executor = try? model.makeExecutor(),
              let inputs = try? GeneratedInputs.make(for: executor.graph, given: [:], shapes: shapes) else { return nil }
        var times: [Double] = []
        for i in 0..<12 {
            let start = ContinuousClock.now
            guard (try? executor.run(inputs)) != nil else { return nil }
            if i >= 2 { times.append(Stopwatch.seconds(since: start) * 1e3) }
        }
        return times.sorted()[times.count / 2]
    }

    static func table(_ variants: [Variant]) -> String {
        var text = "| variant | size MB | accuracy | size reduction | latency ms |\n| --- | --- | --- | --- | --- |\n"
        for v in variants {
            let accuracy = v.accuracy.map { Text.format("%.2f %%", $0 * 100) } ?? "—"
            let latency = v.latencyMs.map { Text.format("%.2f", $0) } ?? "—"
            text += "| \(v.name) | " + Text.format("%.2f", Double(v.bytes) / 1e6) + " | \(accuracy) | " + Text.format("%.2f×", v.reduction) + " | \(latency) |\n"
        }
        return text
    }

    static func json(_ variants: [Variant]) -> JSON {
        .array(variants.map { v in
            .object([("variant", .string(v.name)), ("bytes", .int(Int64(v.bytes))), ("accuracy", v.accuracy.map { .double($0) } ?? .null),
                     ("size_reduction", .double(v.reduction)), ("latency_ms", v.latencyMs.map { .double($0) } ?? .null)])
        })
    }
}
