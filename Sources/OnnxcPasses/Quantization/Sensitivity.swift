import OnnxcCore
public import OnnxcIR
import OnnxcLowering
public import OnnxcRuntime

/// How much each quantized layer loses, measured as ORT's qdq_loss_debug and TFLite's debugger do: the float and
/// the quantized model run on the same samples, and every layer's output is compared. `sqnr` is the whole
/// chain's error at that point; `introduced` is how much of it the layer adds (its output's SQNR below the worst
/// of the inputs it reads), which is what picks the layers to keep in float.
public struct LayerSensitivity: Sendable {
    public var node: String
    public var opType: String
    /// 10·log10(Σ ref² / Σ (ref − q)²) over all samples, in dB (higher is better; ∞ when equal).
    public var sqnr: Double
    public var cosine: Double
    /// dB lost in this layer: min over its inputs' SQNR − its output's (≥ 0 in practice).
    public var introduced: Double
}

public enum Sensitivity {
    /// Runs both models on `batches` and scores every layer, sorted worst first (most dB introduced).
    public static func analyze(float: Model, quantized: Model, layers: [QuantizedLayer], batches: [[String: Value]]) throws(RuntimeError) -> [LayerSensitivity] {
        var floatNames: [String] = [], quantizedNames: [String] = []
        for layer in layers {
            floatNames += [layer.output] + layer.floatInputs
            quantizedNames += [layer.output] + layer.quantizedInputs
        }
        let pairs = Array(Set(zip(floatNames, quantizedNames).map { Pair(reference: $0, candidate: $1) }))
        let a = try runner(float, pairs.map(\.reference)), b = try runner(quantized, pairs.map(\.candidate))
        var sums: [Pair: Sums] = [:]
        for batch in batches {
            let x = try a.run(batch), y = try b.run(batch)
            for pair in pairs {
                guard let r = x[pair.reference]?.tensor, let q = y[pair.candidate]?.tensor, r.dtype == .float, q.dtype == .float, r.count == q.count else { continue }
                var s = sums[pair] ?? Sums()
                r.withValues(Float.self) { rv in
                    q.withValues(Float.self) { qv in
                        for i in 0..<rv.count {
                            let u = Double(rv[i]), v = Double(qv[i])
                            s.reference += u * u
                            s.candidate += v * v
                            s.product += u * v
                            s.error += (u - v) * (u - v)
                        }
                    }
                }
                sums[pair] = s
            }
        }
        func score(_ reference: String, _ candidate: String) -> Sums? { sums[Pair(reference: reference, candidate: candidate)] }
        var result: [LayerSensitivity] = []
        for layer in layers {
            guard let out = score(layer.output, layer.output) else { continue }
            let inputs = zip(layer.floatInputs, layer.quantizedInputs).compactMap { score($0, $1)?.sqnr }
            let worstInput = inputs.min() ?? .infinity
            let introduced = worstInput.isInfinite && out.sqnr.isInfinite ? 0 : max(0, min(worstInput, 200) - min(out.sqnr, 200))
            result.append(LayerSensitivity(node: layer.node, opType: layer.opType, sqnr: out.sqnr, cosine: out.cosine, introduced: introduced))
        }
        return result.sorted { $0.introduced != $1.introduced ? $0.introduced > $1.introduced : $0.sqnr < $1.sqnr }
    }

    /// Top-1 accuracy of `model`'s first output (argmax over the last axis) against `labels`, over `batches`
    /// (labels in batch order).
    public static func accuracy(_ model: Model, batches: [[String: Value]], labels: [Int64]) throws(RuntimeError) -> Double {
        guard let output = model.graph.outputs.first?.name else { return 0 }
        let executor = try runner(model, [])
        var correct = 0, seen = 0
        for batch in batches {
            guard let logits = try executor.run(batch)[output]?.tensor, logits.dtype == .float, let classes = logits.shape.last, classes > 0 else { continue }
            logits.withValues(Float.self) { v in
                for row in 0..<(v.count / classes) where seen < labels.count {
                    var best = 0
                    for c in 1..<classes where v[row * classes + c] > v[row * classes + best] { best = c }
                    if Int64(best) == labels[seen] { correct += 1 }
                    seen += 1
                }
            }
        }
        return seen == 0 ? 0 : Double(correct) / Double(seen)
    }

    private static func runner(_ model: Model, _ extra: [String]) throws(RuntimeError) -> Executor {
        var probe = model
        let declared = Set(model.graph.outputs.map(\.name))
        probe.graph.outputs += Set(extra).subtracting(declared).sorted().map { ValueInfo(name: $0, type: nil) }
        return try Executor(graph: try Lowering.lower(probe))
    }

    private struct Pair: Hashable {
        var reference: String
        var candidate: String
    }

    private struct Sums {
        var reference = 0.0, candidate = 0.0, product = 0.0, error = 0.0
        var sqnr: Double { error == 0 ? .infinity : 10 * log10(max(reference, .leastNormalMagnitude) / error) }
        var cosine: Double { reference == 0 || candidate == 0 ? (reference == candidate ? 1 : 0) : product / (reference.squareRoot() * candidate.squareRoot()) }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
