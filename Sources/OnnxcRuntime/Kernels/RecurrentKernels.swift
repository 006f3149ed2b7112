import Foundation
import OnnxcCore

/// Recurrent operators (RNN, GRU, LSTM) sharing one driver: the input projection is computed for every time
/// step up front as one matrix product; only the recurrent product runs step by step.
enum RecurrentKernels {
    static let table: [String: Kernel] = [
        "RNN": { inputs, context throws(RuntimeError) in try run(.rnn, inputs, context) },
        "GRU": { inputs, context throws(RuntimeError) in try run(.gru, inputs, context) },
        "LSTM": { inputs, context throws(RuntimeError) in try run(.lstm, inputs, context) },
    ]

    private static func run(_ cell: Cell, _ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let x = try context.tensor(inputs, 0)
        switch x.dtype {
        case .float: return try Recurrence<Float>(cell: cell, inputs: inputs, context: context).run()
        case .float16: return try Recurrence<Float>(cell: cell, inputs: inputs, context: context).run()
        case .double: return try Recurrence<Double>(cell: cell, inputs: inputs, context: context).run()
        default: throw .unsupportedType(op: context.node.opType, dtype: x.dtype.onnxName)
        }
    }
}

private enum Cell {
    case rnn, gru, lstm

    var gates: Int {
        switch self {
        case .rnn: 1
        case .gru: 3
        case .lstm: 4
        }
    }

    var defaultActivations: [String] {
        switch self {
        case .rnn: ["Tanh"]
        case .gru: ["Sigmoid", "Tanh"]
        case .lstm: ["Sigmoid", "Tanh", "Tanh"]
        }
    }
}

/// The computation type: Float for float/float16 data, Double for double.
private protocol RecurrentScalar: BinaryFloatingPoint {
    static func exponential(_ x: Self) -> Self
    static func hyperbolicTangent(_ x: Self) -> Self
    static func logarithm1p(_ x: Self) -> Self
}

extension Float: RecurrentScalar {
    static func exponential(_ x: Float) -> Float { Foundation.exp(x) }
    static func hyperbolicTangent(_ x: Float) -> Float { Foundation.tanh(x) }
    static func logarithm1p(_ x: Float) -> Float { Foundation.log1p(x) }
}

extension Double: RecurrentScalar {
    static func exponential(_ x: Double) -> Double { Foundation.exp(x) }
    static func hyperbolicTangent(_ x: Double) -> Double { Foundation.tanh(x) }
    static func logarithm1p(_ x: Double) -> Double { Foundation.log1p(x) }
}

/// One activation function of the `activations` attribute with its alpha/beta.
private struct Activation<C: RecurrentScalar> {
    enum Kind { case relu, tanh, sigmoid, affine, leakyRelu, thresholdedRelu, scaledTanh, hardSigmoid, elu, softsign, softplus }
    let kind: Kind
    let alpha: C
    let beta: C

    /// Parses `name`, taking alpha/beta from the attribute lists only for functions that use them (as ORT does).
    init(_ name: String, alphas: [Float], betas: [Float], alphaIndex: inout Int, betaIndex: inout Int) throws(RuntimeError) {
        var usesAlpha = false, usesBeta = false
        var a: Float = 0, b: Float = 0
        switch name.lowercased() {
        case "relu": kind = .relu
        case "tanh": kind = .tanh
        case "sigmoid": kind = .sigmoid
        case "affine": kind = .affine; usesAlpha = true; usesBeta = true; a = 1; b = 0
        case "leakyrelu": kind = .leakyRelu; usesAlpha = true; a = 0.01
        case "thresholdedrelu": kind = .thresholdedRelu; usesAlpha = true; a = 1
        case "scaledtanh": kind = .scaledTanh; usesAlpha = true; usesBeta = true; a = 1; b = 1
        case "hardsigmoid": kind = .hardSigmoid; usesAlpha = true; usesBeta = true; a = 0.2; b = 0.5
        case "elu": kind = .elu; usesAlpha = true; a = 1
        case "softsign": kind = .softsign
        case "softplus": kind = .softplus
        default: throw .invalidArgument("unknown recurrent activation function \(name)")
        }
        if usesAlpha && alphaIndex < alphas.count { a = alphas[alphaIndex]; alphaIndex += 1 }
        if usesBeta && betaIndex < betas.count { b = betas[betaIndex]; betaIndex += 1 }
        alpha = C(a)
        beta = C(b)
    }

    @inline(__always) func callAsFunction(_ x: C) -> C {
        switch kind {
        case .relu: return max(x, 0)
        case .tanh: return C.hyperbolicTangent(x)
        case .sigmoid: return x >= 0 ? 1 / (1 + C.exponential(-x)) : C.exponential(x) / (1 + C.exponential(x))
        case .affine: return alpha * x + beta
        case .leakyRelu: return x >= 0 ? x : alpha * x
        case .thresholdedRelu: return x > alpha ? x : 0
        case .scaledTanh: return alpha * C.hyperbolicTangent(beta * x)
        case .hardSigmoid: return min(max(alpha * x + beta, 0), 1)
        case .elu: return x >= 0 ? x : alpha * (C.exponential(x) - 1)
        case .softsign: return x / (1 + abs(x))
        case .softplus: return x > 20 ? x : C.logarithm1p(C.exponential(x))
        }
    }
}

private struct Recurrence<C: RecurrentScalar> {
    let cell: Cell
    let inputs: [Value?]
    let context: KernelContext

    init(cell: Cell, inputs: [Value?], context: KernelContext) {
        self.cell = cell
        self.inputs = inputs
        self.context = context
    }

    func run() throws(RuntimeError) -> [Value?] {
        let op = context.node.opType
        let attributes = context.attributes
        let x = try context.tensor(inputs, 0)
        let w = try context.tensor(inputs, 1)
        let r = try context.tensor(inputs, 2)
        let dtype = x.dtype
        for (name, t) in [("W", w), ("R", r)] where t.dtype != dtype {
            throw .invalidArgument("\(op): \(name) is \(t.dtype.onnxName) but X is \(dtype.onnxName)")
        }
        let layout = attributes.int("layout", 0)
        guard x.rank == 3, w.rank == 3, r.rank == 3 else { throw .invalidShape("\(op): X, W and R must have rank 3") }
        let seqLength = layout == 0 ? x.shape[0] : x.shape[1]
        let batch = layout == 0 ? x.shape[1] : x.shape[0]
        let inputSize = x.shape[2]
        let directionName = attributes.string("direction", "forward")
        let directions: Int
        switch directionName {
        case "forward", "reverse": directions = 1
        case "bidirectional": directions = 2
        default: throw .invalidArgument("\(op): unknown direction \(directionName)")
        }
        let gates = cell.gates
        let hidden = r.shape[2]
        if let declared = attributes.int("hidden_size"), Int(declared) != hidden {
            throw .invalidShape("\(op): hidden_size \(declared) does not match R's shape \(r.shape)")
        }
        guard w.shape == [directions, gates * hidden, inputSize], r.shape == [directions, gates * hidden, hidden] else {
            throw .invalidShape("\(op): W \(w.shape) and R \(r.shape) do not match \(directions) direction(s), hidden size \(hidden), input size \(inputSize)")
        }
        let stateShape = layout == 0 ? [directions, batch, hidden] : [batch, directions, hidden]

        // Activations: one group per direction; a single group is reused for both directions.
        let perDirection = cell.defaultActivations.count
        var names = attributes.strings("activations") ?? []
        if names.isEmpty { names = Array(repeating: cell.defaultActivations, count: directions).flatMap { $0 } }
        if names.count == perDirection && directions == 2 { names += names }
        guard names.count == perDirection * directions else {
            throw .invalidArgument("\(op): expected \(perDirection * directions) activations, got \(names.count)")
        }
        let alphas = attributes.floats("activation_alpha") ?? []
        let betas = attributes.floats("activation_beta") ?? []
        var alphaIndex = 0, betaIndex = 0
        var activations: [Activation<C>] = []
        for name in names { activations.append(try Activation<C>(name, alphas: alphas, betas: betas, alphaIndex: &alphaIndex, betaIndex: &betaIndex)) }
        let clip: C? = attributes.has("clip") ? C(attributes.float("clip", 0)) : nil
        let linearBeforeReset = attributes.int("linear_before_reset", 0) != 0
        let inputForget = attributes.int("input_forget", 0) != 0

        // Inputs widened to the computation type; X and states brought to sequence-major layout.
        var xs = try load(x)
        if layout != 0 { xs = transpose01(xs, batch, seqLength, inputSize) }
        let ws = try load(w), rs = try load(r)
        var bias = [C](repeating: 0, count: directions * 2 * gates * hidden)
        if let b = try context.optionalTensor(inputs, 3) {
            guard b.shape == [directions, 2 * gates * hidden], b.dtype == dtype else { throw .invalidShape("\(op): B has shape \(b.shape)") }
            bias = try load(b)
        }
        var lengths = [Int](repeating: seqLength, count: batch)
        if let lens = try context.optionalTensor(inputs, 4) {
            let values = lens.int64s()
            guard values.count == batch, values.allSatisfy({ $0 >= 0 && $0 <= Int64(seqLength) }) else {
                throw .invalidArgument("\(op): sequence_lens \(values) must have \(batch) entries in 0...\(seqLength)")
            }
            lengths = values.map { Int($0) }
        }
        func state(_ index: Int) throws(RuntimeError) -> [C] {
            guard let t = try context.optionalTensor(inputs, index) else { return [C](repeating: 0, count: directions * batch * hidden) }
            guard t.shape == stateShape, t.dtype == dtype else { throw .invalidShape("\(op): initial state \(index) has shape \(t.shape), expected \(stateShape)") }
            let values = try load(t)
            return layout == 0 ? values : transpose01(values, batch, directions, hidden)
        }
        var h = try state(5)
        var c = cell == .lstm ? try state(6) : []
        var peepholes = [C](repeating: 0, count: directions * 3 * hidden)
        if cell == .lstm, let p = try context.optionalTensor(inputs, 7) {
            guard p.shape == [directions, 3 * hidden], p.dtype == dtype else { throw .invalidShape("\(op): P has shape \(p.shape)") }
            peepholes = try load(p)
        }

        var y = [C](repeating: 0, count: seqLength * directions * batch * hidden)
        let gh = gates * hidden
        var pre = [C](repeating: 0, count: seqLength * batch * gh)
        var recurrent = [C](repeating: 0, count: gh)
        var scratch = [C](repeating: 0, count: hidden)
        var z = [C](repeating: 0, count: hidden)
        var candidate = [C](repeating: 0, count: hidden)
        @inline(__always) func clipped(_ v: C) -> C { clip.map { min(max(v, -$0), $0) } ?? v }

        for d in 0..<directions {
            let reverse = directionName == "reverse" || d == 1
            let wd = d * gh * inputSize, rd = d * gh * hidden, bd = d * 2 * gh
            let f = activations[d * perDirection]
            let g = perDirection > 1 ? activations[d * perDirection + 1] : f
            let hAct = perDirection > 2 ? activations[d * perDirection + 2] : f
            // pre[t, b, :] = X[t, b] W^T + Wb + Rb (GRU's Rbh stays out: it may sit inside the reset product).
            ws.withUnsafeBufferPointer { wp in
                xs.withUnsafeBufferPointer { xp in
                    pre.withUnsafeMutableBufferPointer { pp in
                        for row in 0..<(seqLength * batch) {
                            for j in 0..<gh {
                                var sum: C = bias[bd + j]
                                if !(cell == .gru && j >= 2 * hidden) { sum += bias[bd + gh + j] }
                                let xr = row * inputSize, wr = wd + j * inputSize
                                for k in 0..<inputSize { sum += xp[xr + k] * wp[wr + k] }
                                pp[row * gh + j] = sum
                            }
                        }
                    }
                }
            }
            for b in 0..<batch {
                let length = lengths[b]
                let hs = (d * batch + b) * hidden
                for step in 0..<length {
                    let t = reverse ? length - 1 - step : step
                    let p = (t * batch + b) * gh
                    // recurrent = H R^T per gate; GRU's candidate gate waits for the reset gate unless linear_before_reset.
                    let projected = cell == .gru && !linearBeforeReset ? 2 * hidden : gh
                    rs.withUnsafeBufferPointer { rp in
                        h.withUnsafeBufferPointer { hp in
                            for j in 0..<projected {
                                var sum: C = 0
                                let rr = rd + j * hidden
                                for k in 0..<hidden { sum += hp[hs + k] * rp[rr + k] }
                                recurrent[j] = sum
                            }
                        }
                    }
                    switch cell {
                    case .rnn:
                        for j in 0..<hidden { h[hs + j] = f(clipped(pre[p + j] + recurrent[j])) }
                    case .gru:
                        // Gate order z, r, h.
                        for j in 0..<hidden {
                            z[j] = f(clipped(pre[p + j] + recurrent[j]))
                            let reset = f(clipped(pre[p + hidden + j] + recurrent[hidden + j]))
                            scratch[j] = reset
                        }
                        let rbh = bd + gh + 2 * hidden
                        if linearBeforeReset {
                            for j in 0..<hidden {
                                candidate[j] = g(clipped(pre[p + 2 * hidden + j] + scratch[j] * (recurrent[2 * hidden + j] + bias[rbh + j])))
                            }
                        } else {
                            for k in 0..<hidden { scratch[k] *= h[hs + k] }
                            for j in 0..<hidden {
                                var sum: C = 0
                                let rr = rd + (2 * hidden + j) * hidden
                                for k in 0..<hidden { sum += scratch[k] * rs[rr + k] }
                                candidate[j] = g(clipped(pre[p + 2 * hidden + j] + sum + bias[rbh + j]))
                            }
                        }
                        for j in 0..<hidden { h[hs + j] = (1 - z[j]) * candidate[j] + z[j] * h[hs + j] }
                    case .lstm:
                        // Gate order i, o, f, c; peepholes i, o, f.
                        let pd = d * 3 * hidden
                        for j in 0..<hidden {
                            let previous = c[hs + j]
                            let i = f(clipped(pre[p + j] + recurrent[j] + peepholes[pd + j] * previous))
                            let forget = inputForget ? 1 - i
                                : f(clipped(pre[p + 2 * hidden + j] + recurrent[2 * hidden + j] + peepholes[pd + 2 * hidden + j] * previous))
                            let candidate = g(clipped(pre[p + 3 * hidden + j] + recurrent[3 * hidden + j]))
                            let next = forget * previous + i * candidate
                            c[hs + j] = next
                            let o = f(clipped(pre[p + hidden + j] + recurrent[hidden + j] + peepholes[pd + hidden + j] * next))
                            h[hs + j] = o * hAct(next)
                        }
                    }
                    let yo = ((t * directions + d) * batch + b) * hidden
                    for j in 0..<hidden { y[yo + j] = h[hs + j] }
                }
            }
        }

        var results: [Value?] = []
        let count = context.node.outputs.count
        if count > 0 {
            let values = layout == 0 ? y : transpose01(y, seqLength, batch, directions * hidden, middleSplit: (directions, batch))
            let shape = layout == 0 ? [seqLength, directions, batch, hidden] : [batch, seqLength, directions, hidden]
            results.append(.tensor(try store(values, dtype: dtype, shape: shape)))
        }
        if count > 1 {
            results.append(.tensor(try store(layout == 0 ? h : transpose01(h, directions, batch, hidden), dtype: dtype, shape: stateShape)))
        }
        if count > 2 && cell == .lstm {
            results.append(.tensor(try store(layout == 0 ? c : transpose01(c, directions, batch, hidden), dtype: dtype, shape: stateShape)))
        }
        return results
    }

    /// [a, b, inner] → [b, a, inner]. With `middleSplit` (for Y in layout 1), [S, D, B, H] → [B, S, D, H].
    private func transpose01(_ values: [C], _ a: Int, _ b: Int, _ inner: Int, middleSplit: (Int, Int)? = nil) -> [C] {
        var out = [C](repeating: 0, count: values.count)
        if let (directions, batch) = middleSplit {
            let hidden = directions == 0 ? 0 : inner / directions
            let seq = a
            for s in 0..<seq {
                for d in 0..<directions {
                    for bb in 0..<batch {
                        let from = ((s * directions + d) * batch + bb) * hidden
                        let to = ((bb * seq + s) * directions + d) * hidden
                        for j in 0..<hidden { out[to + j] = values[from + j] }
                    }
                }
            }
            return out
        }
        for i in 0..<a {
            for j in 0..<b {
                let from = (i * b + j) * inner, to = (j * a + i) * inner
                for k in 0..<inner { out[to + k] = values[from + k] }
            }
        }
        return out
    }

    private func load(_ t: Tensor) throws(RuntimeError) -> [C] {
        switch t.dtype {
        case .float: return t.withValues(Float.self) { $0.map { C($0) } }
        case .double: return t.withValues(Double.self) { $0.map { C($0) } }
        case .float16: return t.withValues(Float16.self) { $0.map { C(Float($0)) } }
        default: throw .unsupportedType(op: context.node.opType, dtype: t.dtype.onnxName)
        }
    }

    private func store(_ values: [C], dtype: DType, shape: [Int]) throws(RuntimeError) -> Tensor {
        switch dtype {
        case .float: return try Tensor(values.map { Float($0) }, shape: shape)
        case .double: return try Tensor(values.map { Double($0) }, shape: shape)
        case .float16: return try Tensor(values.map { Float16(Float($0)) }, shape: shape)
        default: throw .unsupportedType(op: context.node.opType, dtype: dtype.onnxName)
        }
    }
}
