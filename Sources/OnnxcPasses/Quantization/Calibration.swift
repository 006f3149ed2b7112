import OnnxcCore
public import OnnxcIR
import OnnxcLowering
public import OnnxcRuntime

/// How a tensor's quantization range is chosen from the values calibration observed.
public enum CalibrationMethod: Sendable, Equatable {
    /// The smallest and largest value seen: nothing clips, but one outlier stretches the grid for all values.
    case minMax
    /// The given percentile of the values on each side (99.99: 0.005 % of the mass clipped on each tail).
    case percentile(Double)
    /// The clipping threshold that minimizes the KL divergence between the observed distribution and its
    /// 128-level quantized form (TensorRT's entropy calibration, ORT's `CalibrationMethod.Entropy`).
    case entropy
}

/// An observed (or chosen) real range of one tensor.
public struct TensorRange: Sendable, Equatable {
    public var low: Double
    public var high: Double

    public init(low: Double, high: Double) {
        self.low = low
        self.high = high
    }
}

/// Collects the ranges of a model's float tensors by running it on calibration samples with the interpreter.
/// Percentile and entropy need a histogram over a known span, so they take two passes over the samples: the
/// first finds each tensor's extremes, the second fills 2048-bin histograms over them.
public enum Calibration {
    /// Bins of the histograms percentile and entropy calibration read (ORT's default is 2048 as well).
    static let histogramBins = 2048
    /// Levels the entropy method compares against (ORT's num_quantized_bins).
    static let entropyLevels = 128

    /// Runs `model` once per batch (each a complete set of inputs) and returns the range of each of `tensors`
    /// that is a float tensor in every run. `progress(done, total)` is called after each run.
    public static func ranges(model: Model, tensors: [String], batches: [[String: Value]], method: CalibrationMethod,
                              progress: (Int, Int) -> Void = { _, _ in }) throws(RuntimeError) -> [String: TensorRange] {
        var probe = model
        let declared = Set(model.graph.outputs.map(\.name))
        probe.graph.outputs += tensors.filter { !declared.contains($0) }.map { ValueInfo(name: $0, type: nil) }
        let executor = try Executor(graph: try Lowering.lower(probe))
        let passes = method == .minMax ? 1 : 2
        let total = passes * batches.count
        var extremes: [String: TensorRange] = [:]
        for (b, batch) in batches.enumerated() {
            let values = try executor.run(batch)
            for name in tensors {
                guard let t = values[name]?.tensor, t.dtype == .float, t.count > 0 else { continue }
                let (lo, hi) = t.withValues(Float.self) { v -> (Float, Float) in
                    var lo = Float.infinity, hi = -Float.infinity
                    for x in v where x.isFinite {
                        lo = min(lo, x)
                        hi = max(hi, x)
                    }
                    return (lo, hi)
                }
                guard lo <= hi else { continue }
                if let old = extremes[name] {
                    extremes[name] = TensorRange(low: min(old.low, Double(lo)), high: max(old.high, Double(hi)))
                } else {
                    extremes[name] = TensorRange(low: Double(lo), high: Double(hi))
                }
            }
            progress(b + 1, total)
        }
        if method == .minMax { return extremes }

        // Percentile: a histogram of the values over [low, high]; entropy: of |values| over [0, max |x|].
        let symmetric = method == .entropy
        var histograms: [String: [Double]] = [:]
        let graphInputs = Set(model.graph.inputs.map(\.name))
        for (b, batch) in batches.enumerated() {
            let values = try executor.run(batch)
            for (name, range) in extremes where !graphInputs.contains(name) {
                guard let t = values[name]?.tensor, t.dtype == .float else { continue }
                let low = symmetric ? 0 : range.low
                let high = symmetric ? max(abs(range.low), abs(range.high)) : range.high
                guard high > low else { continue }
                var histogram = histograms[name] ?? [Double](repeating: 0, count: histogramBins)
                let width = (high - low) / Double(histogramBins)
                t.withValues(Float.self) { v in
                    // Exact zeros (a ReLU output's spike) are exact on every grid, so they do not vote on the
                    // threshold; in the entropy method they would make every candidate's level 0 look lossy.
                    for x in v where x.isFinite && !(symmetric && x == 0) {
                        let value = symmetric ? abs(Double(x)) : Double(x)
                        let bin = min(histogramBins - 1, max(0, Int((value - low) / width)))
                        histogram[bin] += 1
                    }
                }
                histograms[name] = histogram
            }
            progress(batches.count + b + 1, total)
        }
        var result = extremes
        // Graph inputs keep their full range: preprocessed data has hard bounds that it reaches (pixels at 0 and
        // 1), and clipping them costs every layer after (the digits CNN: 35 dB → 8 dB logit SQNR under entropy).
        let inputs = Set(model.graph.inputs.map(\.name))
        for (name, range) in extremes where !inputs.contains(name) {
            guard let histogram = histograms[name] else { continue }
            switch method {
            case .minMax:
                break
            case .percentile(let p):
                let tail = max(0, min(50, (100 - p) / 2)) / 100
                let width = (range.high - range.low) / Double(histogramBins)
                let (lo, hi) = percentileBins(histogram, tail: tail)
                result[name] = TensorRange(low: max(range.low, range.low + Double(lo) * width),
                                           high: min(range.high, range.low + Double(hi + 1) * width))
            case .entropy:
                let top = max(abs(range.low), abs(range.high))
                let threshold = Double(entropyThresholdBins(histogram, levels: entropyLevels)) * top / Double(histogramBins)
                result[name] = TensorRange(low: max(range.low, -threshold), high: min(range.high, threshold))
            }
        }
        return result
    }

    /// The first and last bins inside the central (1 − 2·tail) of the mass.
    static func percentileBins(_ histogram: [Double], tail: Double) -> (Int, Int) {
        let total = histogram.reduce(0, +)
        guard total > 0 else { return (0, histogram.count - 1) }
        var lo = 0, hi = histogram.count - 1
        var sum = 0.0
        for (i, h) in histogram.enumerated() {
            sum += h
            if sum > tail * total { lo = i; break }
        }
        sum = 0
        for i in stride(from: histogram.count - 1, through: 0, by: -1) {
            sum += histogram[i]
            if sum > tail * total { hi = i; break }
        }
        return (lo, max(lo, hi))
    }

    /// TensorRT's entropy calibration: for each candidate count of bins kept (outliers folded into the last), the
    /// KL divergence between that distribution P and Q, P merged into `levels` levels and spread back over the
    /// bins that were non-zero. Returns the count of bins (the threshold, in bins) with the smallest divergence.
    static func entropyThresholdBins(_ histogram: [Double], levels: Int) -> Int {
        let bins = histogram.count
        guard bins > levels else { return bins }
        var best = bins, bestDivergence = Double.infinity
        // Every 8th candidate: the divergence is smooth in the threshold, and resnet50 has ~150 tensors.
        for kept in stride(from: levels, through: bins, by: 8) {
            var p = Array(histogram[0..<kept])
            p[kept - 1] += histogram[kept...].reduce(0, +)
            var q = [Double](repeating: 0, count: kept)
            let perLevel = Double(kept) / Double(levels)
            for level in 0..<levels {
                let start = Int(Double(level) * perLevel), end = max(start + 1, Int(Double(level + 1) * perLevel))
                var sum = 0.0, nonZero = 0
                for i in start..<min(end, kept) {
                    sum += histogram[i]
                    if histogram[i] != 0 { nonZero += 1 }
                }
                guard nonZero > 0 else { continue }
                for i in start..<min(end, kept) where histogram[i] != 0 { q[i] = sum / Double(nonZero) }
            }
            let pSum = p.reduce(0, +), qSum = q.reduce(0, +)
            guard pSum > 0, qSum > 0 else { continue }
            var divergence = 0.0
            for i in 0..<kept where p[i] > 0 {
                let pi = p[i] / pSum
                // Q is zero where P has only the folded outliers: smoothed, as TensorRT does, rather than infinite.
                let qi = max(q[i] / qSum, 1e-12)
                divergence += pi * log(pi / qi)
            }
            if divergence < bestDivergence {
                bestDivergence = divergence
                best = kept
            }
        }
        return best
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
