import OnnxcCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Normalization operators: BatchNormalization, LayerNormalization, InstanceNormalization, GroupNormalization,
/// LRN, MeanVarianceNormalization. float16/bfloat16 inputs compute in float32.
enum NormalizationKernels {
    static let table: [String: Kernel] = [
        "BatchNormalization": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let params = try (1...4).map { (i) throws(RuntimeError) in try context.tensor(inputs, i).doubles() }
            let attributes = context.attributes
            guard x.rank >= 2 else { throw .invalidShape("BatchNormalization: X must have rank >= 2, got \(x.shape)") }
            let channels = x.shape[1]
            guard params.allSatisfy({ $0.count == channels }) else {
                throw .invalidShape("BatchNormalization: scale, B, mean and var must each have \(channels) values (X is \(x.shape))")
            }
            // Training: opset 14+ says so with training_mode; before, a node asking for the running statistics is training.
            let training = context.opset >= 14
                ? attributes.int("training_mode", 0) != 0
                : context.node.outputs.dropFirst().contains { !$0.isEmpty } && attributes.int("is_test", 0) == 0
            let op = BatchNorm(
                x: x, scale: params[0], bias: params[1], mean: params[2], variance: params[3],
                epsilon: Double(attributes.float("epsilon", 1e-5)), momentum: Double(attributes.float("momentum", 0.9)),
                training: training)
            let (y, stats) = try viaFloat(x) { (t) throws(RuntimeError) in try dispatchReal(t.dtype, op: "BatchNormalization", BatchNormVisitor(x: t, op: op)) }
            guard training, let stats else { return outputs(y) }
            // Statistics take the type of the mean/var inputs.
            let statsType = try context.tensor(inputs, 3).dtype
            var result: [Value?] = [.tensor(y)]
            let momentum = op.momentum
            let runningMean = zip(op.mean, stats.mean).map { $0 * momentum + $1 * (1 - momentum) }
            let runningVar = zip(op.variance, stats.variance).map { $0 * momentum + $1 * (1 - momentum) }
            result.append(.tensor(try vectorTensor(runningMean, statsType)))
            result.append(.tensor(try vectorTensor(runningVar, statsType)))
            if context.opset < 14 {
                result.append(.tensor(try vectorTensor(stats.mean, statsType)))
                result.append(.tensor(try vectorTensor(stats.variance, statsType)))
            }
            return Array(result.prefix(context.node.outputs.count))
        },
        "LayerNormalization": layerNormalization,
        "InstanceNormalization": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let scale = try context.tensor(inputs, 1).doubles(), bias = try context.tensor(inputs, 2).doubles()
            guard x.rank >= 2 else { throw .invalidShape("InstanceNormalization: input must have rank >= 2, got \(x.shape)") }
            let channels = x.shape[1]
            guard scale.count == channels, bias.count == channels else {
                throw .invalidShape("InstanceNormalization: scale and B must have \(channels) values")
            }
            let epsilon = Double(context.attributes.float("epsilon", 1e-5))
            let (y, _, _) = try viaFloat(x) { (t) throws(RuntimeError) in
                try dispatchReal(t.dtype, op: "InstanceNormalization", RowNormVisitor(
                    x: t, rows: x.shape[0] * channels, scale: scale, bias: bias, parameterPeriod: channels, rowsPerParameter: 1,
                    epsilon: epsilon, mode: .perRow))
            }
            return outputs(y)
        },
        "GroupNormalization": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let scale = try context.tensor(inputs, 1).doubles(), bias = try context.tensor(inputs, 2).doubles()
            guard x.rank >= 2 else { throw .invalidShape("GroupNormalization: input must have rank >= 2, got \(x.shape)") }
            guard let groupsAttribute = context.attributes.int("num_groups") else {
                throw .invalidArgument("GroupNormalization: num_groups is required")
            }
            let channels = x.shape[1], groups = Int(groupsAttribute)
            guard groups > 0, channels % groups == 0 else {
                throw .invalidArgument("GroupNormalization: \(channels) channels cannot be split into \(groups) groups")
            }
            // Opset 18 has one scale/bias per group; opset 21 one per channel.
            let perChannel = context.opset >= 21
            let expected = perChannel ? channels : groups
            guard scale.count == expected, bias.count == expected else {
                throw .invalidShape("GroupNormalization (opset \(context.opset)): scale and bias must have \(expected) values")
            }
            let epsilon = Double(context.attributes.float("epsilon", 1e-5))
            let spatial = x.shape[2...].reduce(1, *)
            let (y, _, _) = try viaFloat(x) { (t) throws(RuntimeError) in
                try dispatchReal(t.dtype, op: "GroupNormalization", RowNormVisitor(
                    x: t, rows: x.shape[0] * groups, scale: scale, bias: bias, parameterPeriod: expected,
                    rowsPerParameter: perChannel ? 1 : spatial * (channels / groups),
                    epsilon: epsilon, mode: .group(channelLength: spatial, perChannel: perChannel)))
            }
            return outputs(y)
        },
        "LRN": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            guard x.rank >= 2 else { throw .invalidShape("LRN: input must have rank >= 2, got \(x.shape)") }
            guard let size = context.attributes.int("size"), size > 0 else { throw .invalidArgument("LRN: size must be a positive integer") }
            let a = context.attributes
            let (alpha, beta, bias) = (Double(a.float("alpha", 1e-4)), Double(a.float("beta", 0.75)), Double(a.float("bias", 1)))
            return outputs(try viaFloat(x) { (t) throws(RuntimeError) in
                try dispatchReal(t.dtype, op: "LRN", LRNVisitor(x: t, size: Int(size), alpha: alpha, beta: beta, bias: bias))
            })
        },
        "MeanVarianceNormalization": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            var reduced = [Bool](repeating: false, count: x.rank)
            for raw in context.attributes.ints("axes") ?? [0, 2, 3] {
                reduced[try Broadcast.axis(raw, rank: x.rank, op: "MeanVarianceNormalization")] = true
            }
            return outputs(try viaFloat(x) { (t) throws(RuntimeError) in
                try dispatchReal(t.dtype, op: "MeanVarianceNormalization", MVNVisitor(x: t, reduced: reduced))
            })
        },
    ]

    /// LayerNormalization, also registered as `ai.onnxc::LayerNormalization` (the same op below opset 17).
    static let layerNormalization: Kernel = { inputs, context throws(RuntimeError) in
        let x = try context.tensor(inputs, 0)
        let scale = try context.tensor(inputs, 1)
        let bias = try context.optionalTensor(inputs, 2)
        guard x.rank > 0 else { throw .invalidShape("LayerNormalization: X must have rank >= 1") }
        let axis = try Broadcast.axis(context.attributes.int("axis", -1), rank: x.rank, op: "LayerNormalization")
        let inner = Array(x.shape[axis...])
        let scaleValues = try broadcastParameter(scale, to: inner, what: "Scale")
        let biasValues = try bias.map { (b) throws(RuntimeError) in try broadcastParameter(b, to: inner, what: "B") }
        let rows = x.shape[..<axis].reduce(1, *)
        let statsShape = Array(x.shape[..<axis]) + Array(repeating: 1, count: x.rank - axis)
        let length = inner.reduce(1, *)
        if x.dtype == .float, scale.dtype == .float, scale.count == length, bias.map({ $0.dtype == .float && $0.count == length }) ?? true,
           context.attributes.int("stash_type", 1) == Int64(DType.float.rawValue), rows > 0, length > 0,
           rows <= Int(Int32.max), length <= Int(Int32.max) {
            // float32 rows in CKernels (vectorized, on the pool for large inputs), statistics in float as the stash type says.
            let y = try Tensor(uninitialized: .float, shape: x.shape)
            let mean = try Tensor(uninitialized: .float, shape: statsShape), invStd = try Tensor(uninitialized: .float, shape: statsShape)
            x.withValues(Float.self) { xb in
                scale.withValues(Float.self) { sb in
                    y.withMutableValues(Float.self) { yb in
                        mean.withMutableValues(Float.self) { mb in
                            invStd.withMutableValues(Float.self) { ib in
                                guard let xp = xb.baseAddress, let sp = sb.baseAddress, let yp = yb.baseAddress else { return }
                                let epsilon = context.attributes.float("epsilon", 1e-5)
                                if let bias {
                                    bias.withValues(Float.self) { bb in
                                        PackedGemm.layerNorm(rows: rows, length: length, x: xp, scale: sp, bias: bb.baseAddress, epsilon: epsilon,
                                                             y: yp, mean: mb.baseAddress, invStd: ib.baseAddress)
                                    }
                                } else {
                                    PackedGemm.layerNorm(rows: rows, length: length, x: xp, scale: sp, bias: nil, epsilon: epsilon,
                                                         y: yp, mean: mb.baseAddress, invStd: ib.baseAddress)
                                }
                            }
                        }
                    }
                }
            }
            return [.tensor(y), .tensor(mean), .tensor(invStd)]
        }
        let epsilon = Double(context.attributes.float("epsilon", 1e-5))
        let (y, mean, invStd) = try viaFloat(x) { (t) throws(RuntimeError) in
            try dispatchReal(t.dtype, op: "LayerNormalization", RowNormVisitor(
                x: t, rows: rows, scale: scaleValues, bias: biasValues, parameterPeriod: scaleValues.count, rowsPerParameter: 1,
                epsilon: epsilon, mode: .layer))
        }
        // Mean and InvStdDev use the stash type (float unless stash_type says otherwise).
        let stashType = DType(rawValue: Int32(context.attributes.int("stash_type", 1))) ?? .float
        let statsType: DType = [.float, .double, .float16, .bfloat16].contains(stashType) ? stashType : .float
        return [
            .tensor(y),
            .tensor(try vectorTensor(mean, statsType).reshaped(statsShape)),
            .tensor(try vectorTensor(invStd, statsType).reshaped(statsShape)),
        ]
    }
}

// MARK: - BatchNormalization

private struct BatchNorm {
    let x: Tensor
    let scale: [Double], bias: [Double], mean: [Double], variance: [Double]
    let epsilon: Double, momentum: Double, training: Bool
}

private struct BatchStats {
    var mean: [Double], variance: [Double]
}

private struct BatchNormVisitor: RealVisitor {
    let x: Tensor, op: BatchNorm

    /// y = x·a[c] + b[c], with a and b folded from the statistics (the batch's own when training).
    func visit<T: RealElement>(_: T.Type) throws(RuntimeError) -> (Tensor, BatchStats?) {
        let out = try Tensor(zeros: x.dtype, shape: x.shape)
        let batch = x.shape[0], channels = x.shape[1], spatial = x.shape[2...].reduce(1, *)
        var stats: BatchStats? = nil
        var mean = op.mean, variance = op.variance
        x.withValues(T.self) { src in
            if op.training {
                // Population statistics over N and the spatial dims, in Double.
                let count = Double(batch * spatial)
                for c in 0..<channels {
                    var sum = 0.0
                    for n in 0..<batch {
                        let base = (n * channels + c) * spatial
                        for s in 0..<spatial { sum += src[base + s].asDouble }
                    }
                    let m = count > 0 ? sum / count : 0
                    var squares = 0.0
                    for n in 0..<batch {
                        let base = (n * channels + c) * spatial
                        for s in 0..<spatial {
                            let d = src[base + s].asDouble - m
                            squares += d * d
                        }
                    }
                    mean[c] = m
                    variance[c] = count > 0 ? squares / count : 0
                }
                stats = BatchStats(mean: mean, variance: variance)
            }
            out.withMutableValues(T.self) { dst in
                for c in 0..<channels {
                    let scale = op.scale[c] / (variance[c] + op.epsilon).squareRoot()
                    let a = T(scale), b = T(op.bias[c] - mean[c] * scale)
                    for n in 0..<batch {
                        let base = (n * channels + c) * spatial
                        for s in 0..<spatial { dst[base + s] = src[base + s] * a + b }
                    }
                }
            }
        }
        return (out, stats)
    }
}

// MARK: - Row normalizations (Layer, Instance, Group)

private enum RowNormMode {
    /// Layer: the parameters follow the position within a row.
    case layer
    /// Instance: one scale/bias per row (row = (n, c)).
    case perRow
    /// Group: a row is one group of channels; parameters are per channel or per group.
    case group(channelLength: Int, perChannel: Bool)
}

private struct RowNormVisitor: RealVisitor {
    let x: Tensor, rows: Int
    let scale: [Double], bias: [Double]?
    /// How many parameters there are (they repeat with this period).
    let parameterPeriod: Int
    let rowsPerParameter: Int
    let epsilon: Double, mode: RowNormMode

    /// Normalizes each contiguous row to zero mean and unit variance, then applies scale and bias.
    /// Returns Y and the per-row mean and 1/sqrt(var + epsilon).
    func visit<T: RealElement>(_: T.Type) throws(RuntimeError) -> (Tensor, [Double], [Double]) {
        let out = try Tensor(zeros: x.dtype, shape: x.shape)
        let length = rows > 0 ? x.count / rows : 0
        var means = [Double](repeating: 0, count: rows), invStds = [Double](repeating: 0, count: rows)
        let scaleT = scale.map { T($0) }, biasT = bias?.map { T($0) } ?? [T](repeating: 0, count: scale.count)
        x.withValues(T.self) { src in
            out.withMutableValues(T.self) { dst in
                scaleT.withUnsafeBufferPointer { sc in
                    biasT.withUnsafeBufferPointer { bi in
                        for r in 0..<rows {
                            let base = r * length
                            var sum = T.zero
                            for j in 0..<length { sum += src[base + j] }
                            let mean = length > 0 ? sum / T(length) : 0
                            var squares = T.zero
                            for j in 0..<length {
                                let d = src[base + j] - mean
                                squares += d * d
                            }
                            let variance = length > 0 ? squares / T(length) : 0
                            let inv = 1 / (variance + T(epsilon)).squareRoot()
                            means[r] = Double(mean)
                            invStds[r] = Double(inv)
                            switch mode {
                            case .layer:
                                for j in 0..<length { dst[base + j] = (src[base + j] - mean) * inv * sc[j] + bi[j] }
                            case .perRow:
                                let p = r % parameterPeriod
                                let a = inv * sc[p], b = bi[p] - mean * inv * sc[p]
                                for j in 0..<length { dst[base + j] = src[base + j] * a + b }
                            case .group(let channelLength, let perChannel):
                                if perChannel {
                                    let channelsPerGroup = channelLength > 0 ? length / channelLength : 0
                                    let firstChannel = (r * channelsPerGroup) % parameterPeriod
                                    for c in 0..<channelsPerGroup {
                                        let p = firstChannel + c
                                        let a = inv * sc[p], b = bi[p] - mean * inv * sc[p]
                                        let start = base + c * channelLength
                                        for j in 0..<channelLength { dst[start + j] = src[start + j] * a + b }
                                    }
                                } else {
                                    let p = r % parameterPeriod
                                    let a = inv * sc[p], b = bi[p] - mean * inv * sc[p]
                                    for j in 0..<length { dst[base + j] = src[base + j] * a + b }
                                }
                            }
                        }
                    }
                }
            }
        }
        return (out, means, invStds)
    }
}

/// A Scale/B input as one value per position of the normalized shape, broadcasting it (right-aligned).
private func broadcastParameter(_ p: Tensor, to inner: [Int], what: String) throws(RuntimeError) -> [Double] {
    var shape = p.shape
    while shape.count > inner.count, shape.first == 1 { shape.removeFirst() }
    guard shape.count <= inner.count,
          zip(shape.reversed(), inner.reversed()).allSatisfy({ $0 == $1 || $0 == 1 }) else {
        throw .invalidShape("LayerNormalization: \(what) \(p.shape) cannot be broadcast to the normalized shape \(inner)")
    }
    let values = p.doubles()
    if shape == inner { return values }
    let offsets = Broadcast.offsets(of: [shape], target: inner)[0]
    return offsets.map { values[$0] }
}

// MARK: - LRN

private struct LRNVisitor: RealVisitor {
    let x: Tensor, size: Int, alpha: Double, beta: Double, bias: Double

    /// y = x / (bias + alpha/size · Σ x² over the channel window)^beta.
    func visit<T: RealElement>(_: T.Type) throws(RuntimeError) -> Tensor {
        let out = try Tensor(zeros: x.dtype, shape: x.shape)
        let batch = x.shape[0], channels = x.shape[1], spatial = x.shape[2...].reduce(1, *)
        let before = (size - 1) / 2, after = size - 1 - before
        let scale = T(alpha / Double(size)), biasT = T(bias), betaT = T(beta)
        var squares = [T](repeating: 0, count: spatial)
        x.withValues(T.self) { src in
            out.withMutableValues(T.self) { dst in
                for n in 0..<batch {
                    for c in 0..<channels {
                        for s in 0..<spatial { squares[s] = 0 }
                        for k in max(0, c - before)...min(channels - 1, c + after) {
                            let base = (n * channels + k) * spatial
                            for s in 0..<spatial { squares[s] += src[base + s] * src[base + s] }
                        }
                        let base = (n * channels + c) * spatial
                        for s in 0..<spatial { dst[base + s] = src[base + s] / (biasT + scale * squares[s]).power(betaT) }
                    }
                }
            }
        }
        return out
    }
}

// MARK: - MeanVarianceNormalization

private struct MVNVisitor: RealVisitor {
    let x: Tensor, reduced: [Bool]

    /// (x - E[x]) / (sqrt(E[x²] - E[x]²) + 1e-9) over the reduced axes, as the op's function body defines it.
    func visit<T: RealElement>(_: T.Type) throws(RuntimeError) -> Tensor {
        let out = try Tensor(zeros: x.dtype, shape: x.shape)
        let keptShape = x.shape.enumerated().map { reduced[$0.offset] ? 1 : $0.element }
        let keptCount = keptShape.reduce(1, *)
        let groupSize = keptCount > 0 ? x.count / keptCount : 0
        // Output position of every input element in the kept-dims statistics.
        let index = Broadcast.offsets(of: [keptShape], target: x.shape)[0]
        var sums = [Double](repeating: 0, count: keptCount), squares = [Double](repeating: 0, count: keptCount)
        x.withValues(T.self) { src in
            for i in 0..<src.count {
                let v = src[i].asDouble
                sums[index[i]] += v
                squares[index[i]] += v * v
            }
            let mean = sums.map { groupSize > 0 ? $0 / Double(groupSize) : 0 }
            let denominator = zip(squares, mean).map { s, m in
                (max(0, (groupSize > 0 ? s / Double(groupSize) : 0) - m * m)).squareRoot() + 1e-9
            }
            out.withMutableValues(T.self) { dst in
                for i in 0..<src.count { dst[i] = T((src[i].asDouble - mean[index[i]]) / denominator[index[i]]) }
            }
        }
        return out
    }
}

// MARK: - Element types and helpers

private protocol RealElement: FloatElement {
    func power(_ exponent: Self) -> Self
}

extension Float: RealElement {
    func power(_ exponent: Float) -> Float { powf(self, exponent) }
}

extension Double: RealElement {
    func power(_ exponent: Double) -> Double { pow(self, exponent) }
}

private protocol RealVisitor {
    associatedtype Output
    func visit<T: RealElement>(_ type: T.Type) throws(RuntimeError) -> Output
}

private func dispatchReal<V: RealVisitor>(_ dtype: DType, op: String, _ visitor: V) throws(RuntimeError) -> V.Output {
    switch dtype {
    case .float: return try visitor.visit(Float.self)
    case .double: return try visitor.visit(Double.self)
    default: throw .unsupportedType(op: op, dtype: dtype.onnxName)
    }
}

/// A 1-D tensor of `dtype` (a float type) from Double values.
private func vectorTensor(_ values: [Double], _ dtype: DType) throws(RuntimeError) -> Tensor {
    switch dtype {
    case .double: return try Tensor(values, shape: [values.count])
    case .float16: return try Tensor(values.map { Float16(Float($0)) }, shape: [values.count])
    case .bfloat16: return try narrowed(try Tensor(values.map { Float($0) }, shape: [values.count]), to: .bfloat16)
    default: return try Tensor(values.map { Float($0) }, shape: [values.count])
    }
}



/// Runs `body` on `x`, widening float16/bfloat16 to float32 around it; the first tensor of the result is narrowed back.

private func viaFloat<Extra>(_ x: Tensor, _ body: (Tensor) throws(RuntimeError) -> (Tensor, Extra)) throws(RuntimeError) -> (Tensor, Extra) {
    guard let wide = try widenedToFloat(x) else { return try body(x) }
    let (y, extra) = try body(wide)
    return (try narrowed(y, to: x.dtype), extra)
}

private func viaFloat<A, B>(_ x: Tensor, _ body: (Tensor) throws(RuntimeError) -> (Tensor, A, B)) throws(RuntimeError) -> (Tensor, A, B) {
    guard let wide = try widenedToFloat(x) else { return try body(x) }
    let (y, a, b) = try body(wide)
    return (try narrowed(y, to: x.dtype), a, b)
}
