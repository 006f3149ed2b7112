#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
internal import CKernels
import OnnxcCore

/// Recurrent operators (RNN, GRU, LSTM) and their `-O int8-dynamic` forms (ai.onnxc::QRNN, QGRU, QLSTM: int8 W and
/// R with row scales) sharing one driver: the input projection of every time step is one matrix product up front;
/// per step, one product of the whole batch's hidden state with R, then the gates, vectorized over the hidden size.
enum RecurrentKernels {
    static let table: [String: Kernel] = [
        "RNN": { inputs, context throws(RuntimeError) in try run(.rnn, quantized: false, inputs, context) },
        "GRU": { inputs, context throws(RuntimeError) in try run(.gru, quantized: false, inputs, context) },
        "LSTM": { inputs, context throws(RuntimeError) in try run(.lstm, quantized: false, inputs, context) },
        KernelRegistry.key(RuntimeOps.domain, "QRNN"): { inputs, context throws(RuntimeError) in try run(.rnn, quantized: true, inputs, context) },
        KernelRegistry.key(RuntimeOps.domain, "QGRU"): { inputs, context throws(RuntimeError) in try run(.gru, quantized: true, inputs, context) },
        KernelRegistry.key(RuntimeOps.domain, "QLSTM"): { inputs, context throws(RuntimeError) in try run(.lstm, quantized: true, inputs, context) },
    ]

    /// The op a node runs: its cell and whether it is the int8 form; nil for other ops.
    static func cell(of node: RuntimeNode) -> (cell: Cell, quantized: Bool)? {
        let quantized = node.domain == RuntimeOps.domain
        guard quantized || node.domain.isEmpty || node.domain == "ai.onnx" else { return nil }
        switch node.opType {
        case "RNN", "QRNN": return (.rnn, quantized)
        case "GRU", "QGRU": return (.gru, quantized)
        case "LSTM", "QLSTM": return (.lstm, quantized)
        default: return nil
        }
    }

    /// Runs the op; `prepared` (float32 recurrences only) holds the projections of its constant W and R, made once
    /// when a compiled model loads (RecurrentSteps) instead of on every run.
    static func run(_ cell: Cell, quantized: Bool, _ inputs: [Value?], _ context: KernelContext,
                    prepared: [RecurrentProjections<Float>]? = nil) throws(RuntimeError) -> [Value?] {
        let x = try context.tensor(inputs, 0)
        if quantized {
            guard x.dtype == .float else { throw .unsupportedType(op: context.node.opType, dtype: x.dtype.onnxName) }
            return try Recurrence<Float>(cell: cell, quantized: true, inputs: inputs, context: context, prepared: prepared).run()
        }
        switch x.dtype {
        case .float, .float16: return try Recurrence<Float>(cell: cell, quantized: false, inputs: inputs, context: context, prepared: prepared).run()
        case .double: return try Recurrence<Double>(cell: cell, quantized: false, inputs: inputs, context: context, prepared: nil).run()
        default: throw .unsupportedType(op: context.node.opType, dtype: x.dtype.onnxName)
        }
    }

    /// The float32 projections of a node whose W and R (and, for the int8 forms, their scales) are these constants;
    /// nil when they do not fit the node's attributes (the run then reports why).
    static func prepare(_ node: RuntimeNode, cell: Cell, quantized: Bool, w: Tensor, r: Tensor, wScale: Tensor?, rScale: Tensor?) throws(RuntimeError) -> [RecurrentProjections<Float>]? {
        let directions = node.attributes.string("direction", "forward") == "bidirectional" ? 2 : 1
        guard w.rank == 3, r.rank == 3, w.shape[0] == directions, r.shape[0] == directions, w.shape[1] == r.shape[1],
              w.dtype == (quantized ? .int8 : .float), r.dtype == w.dtype else { return nil }
        let hidden = r.shape[2], gh = cell.gates * hidden
        guard r.shape[1] == gh else { return nil }
        let projected = cell.projectedRows(hidden: hidden, linearBeforeReset: node.attributes.int("linear_before_reset", 0) != 0)
        return try Recurrence<Float>.projections(cell: cell, w: w, r: r, wScale: wScale, rScale: rScale, directions: directions, gh: gh,
                                                 inputSize: w.shape[2], hidden: hidden, projected: projected, op: node.opType)
    }
}

extension RecurrentKernels {
    enum Cell: Sendable {
        case rnn, gru, lstm

        /// Rows of R the per-step product computes before the gates: GRU's candidate waits for the reset gate
        /// unless linear_before_reset.
        func projectedRows(hidden: Int, linearBeforeReset: Bool) -> Int {
            self == .gru && !linearBeforeReset ? 2 * hidden : gates * hidden
        }

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
}

/// One direction's products: X·Wᵀ, H·Rᵀ for the gates a step needs first, and GRU's (r ⊙ H)·R_hᵀ when the
/// candidate's product waits for the reset gate (linear_before_reset = 0).
struct RecurrentProjections<C>: Sendable {
    let input: any RecurrentProjection<C>
    let recurrent: any RecurrentProjection<C>
    let candidate: (any RecurrentProjection<C>)?
}

/// The computation type: Float for float/float16 data (the GEMM and the vector activations), Double for double.
private protocol RecurrentScalar: BinaryFloatingPoint {
    static func exponential(_ x: Self) -> Self
    static func hyperbolicTangent(_ x: Self) -> Self
    static func logarithm1p(_ x: Self) -> Self
    /// The projection by `matrix` (n rows of k values).
    static func projection(_ matrix: UnsafePointer<Self>, n: Int, k: Int) -> any RecurrentProjection<Self>
    /// activation(x) over n values in place with a vector kernel, or false where there is none for it.
    static func activateInPlace(_ x: UnsafeMutablePointer<Self>, _ n: Int, _ activation: Activation<Self>) -> Bool
    /// One LSTM step's gates for one batch row with the default activations (ck_lstm_gates), or false where the
    /// type has no such kernel.
    static func lstmGates(hidden: Int, pre: UnsafePointer<Self>, recurrent: UnsafePointer<Self>, cell: UnsafeMutablePointer<Self>,
                          hiddenState: UnsafeMutablePointer<Self>) -> Bool
    /// The `-O int8-dynamic` projection by int8 `matrix` with its row scales (float32 recurrences only).
    static func quantizedProjection(_ matrix: UnsafePointer<Int8>, n: Int, k: Int, scales: [Float], op: String) throws(RuntimeError) -> any RecurrentProjection<Self>
}

extension Float: RecurrentScalar {
    static func exponential(_ x: Float) -> Float { Glibc.exp(x) }
    static func hyperbolicTangent(_ x: Float) -> Float { Glibc.tanh(x) }
    static func logarithm1p(_ x: Float) -> Float { Glibc.log1p(x) }
    static func projection(_ matrix: UnsafePointer<Float>, n: Int, k: Int) -> any RecurrentProjection<Float> {
        PackedFloatProjection(matrix, n: n, k: k)
    }
    static func quantizedProjection(_ matrix: UnsafePointer<Int8>, n: Int, k: Int, scales: [Float], op: String) throws(RuntimeError) -> any RecurrentProjection<Float> {
        try DynamicQuantizedProjection(matrix, n: n, k: k, scales: scales, op: op)
    }
    static func lstmGates(hidden: Int, pre: UnsafePointer<Float>, recurrent: UnsafePointer<Float>, cell: UnsafeMutablePointer<Float>,
                          hiddenState: UnsafeMutablePointer<Float>) -> Bool {
        guard hidden <= Int(Int32.max) else { return false }
        ck_lstm_gates(Int32(hidden), pre, recurrent, cell, hiddenState)
        return true
    }
    fileprivate static func activateInPlace(_ x: UnsafeMutablePointer<Float>, _ n: Int, _ activation: Activation<Float>) -> Bool {
        let kind: ck_activation
        switch activation.kind {
        case .relu: kind = CK_ACT_RELU
        case .tanh: kind = CK_ACT_TANH
        case .sigmoid: kind = CK_ACT_SIGMOID
        case .leakyRelu: kind = CK_ACT_LEAKY_RELU
        case .hardSigmoid: kind = CK_ACT_HARD_SIGMOID
        case .affine, .thresholdedRelu, .scaledTanh, .elu, .softsign, .softplus: return false
        }
        ck_activation_inplace(x, n, kind, activation.alpha, activation.beta)
        return true
    }
}

extension Double: RecurrentScalar {
    static func exponential(_ x: Double) -> Double { Glibc.exp(x) }
    static func hyperbolicTangent(_ x: Double) -> Double { Glibc.tanh(x) }
    static func logarithm1p(_ x: Double) -> Double { Glibc.log1p(x) }
    static func projection(_ matrix: UnsafePointer<Double>, n: Int, k: Int) -> any RecurrentProjection<Double> {
        LoopProjection(matrix, n: n, k: k)
    }
    fileprivate static func activateInPlace(_ x: UnsafeMutablePointer<Double>, _ n: Int, _ activation: Activation<Double>) -> Bool { false }
    static func lstmGates(hidden: Int, pre: UnsafePointer<Double>, recurrent: UnsafePointer<Double>, cell: UnsafeMutablePointer<Double>,
                          hiddenState: UnsafeMutablePointer<Double>) -> Bool { false }
    static func quantizedProjection(_ matrix: UnsafePointer<Int8>, n: Int, k: Int, scales: [Float], op: String) throws(RuntimeError) -> any RecurrentProjection<Double> {
        throw .unsupportedType(op: op, dtype: "double")
    }
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

    /// The function over n values in place: the vector kernel where there is one, else element by element.
    func apply(_ x: UnsafeMutablePointer<C>, _ n: Int) {
        if C.activateInPlace(x, n, self) { return }
        for i in 0..<n { x[i] = self(x[i]) }
    }
}

private struct Recurrence<C: RecurrentScalar> {
    typealias Cell = RecurrentKernels.Cell
    let cell: Cell
    let quantized: Bool
    let inputs: [Value?]
    let context: KernelContext
    let prepared: [RecurrentProjections<C>]?

    func run() throws(RuntimeError) -> [Value?] {
        let op = context.node.opType
        let attributes = context.attributes
        let x = try context.tensor(inputs, 0)
        let w = try context.tensor(inputs, 1)
        let r = try context.tensor(inputs, 2)
        let dtype = x.dtype
        for (name, t) in [("W", w), ("R", r)] where t.dtype != (quantized ? .int8 : dtype) {
            throw .invalidArgument("\(op): \(name) is \(t.dtype.onnxName) but \(quantized ? "int8" : "X's type, \(dtype.onnxName),") is needed")
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
        var peepholes: [C]? = nil
        if cell == .lstm, let p = try context.optionalTensor(inputs, 7) {
            guard p.shape == [directions, 3 * hidden], p.dtype == dtype else { throw .invalidShape("\(op): P has shape \(p.shape)") }
            peepholes = try load(p)
        }

        let gh = gates * hidden
        // The gates the per-step product feeds: GRU's candidate waits for the reset gate unless linear_before_reset.
        let projected = cell.projectedRows(hidden: hidden, linearBeforeReset: linearBeforeReset)
        let scaleSlot = cell == .lstm ? 8 : 6
        let projections: [RecurrentProjections<C>]
        if let prepared {
            projections = prepared
        } else {
            let wScale = quantized ? try context.tensor(inputs, scaleSlot) : nil, rScale = quantized ? try context.tensor(inputs, scaleSlot + 1) : nil
            projections = try Self.projections(cell: cell, w: w, r: r, wScale: wScale, rScale: rScale, directions: directions, gh: gh,
                                               inputSize: inputSize, hidden: hidden, projected: projected, op: op)
        }
        guard projections.count == directions else { throw .invalidShape("\(op): W \(w.shape) and R \(r.shape) are empty") }
        // One workspace: the input projections of every step, the per-step product, each row's gates, GRU's
        // r ⊙ h and its product, a cell's activation, and Y.
        let stepRows = seqLength * batch
        let shapes = [[stepRows, gh], [batch, projected], [batch, gh], [cell == .gru ? batch : 0, hidden], [cell == .gru ? batch : 0, hidden],
                      [hidden], [seqLength, directions, batch, hidden]]
        var sizes: [Int] = []
        var total = 0
        for shape in shapes {
            guard let size = CheckedSize.elementCount(shape.map(Int64.init)), case let (sum, false) = total.addingReportingOverflow(size),
                  sum <= Int.max / MemoryLayout<C>.stride else {
                throw .invalidShape("\(op): X \(x.shape) with hidden size \(hidden) needs more memory than can be addressed")
            }
            sizes.append(size)
            total = sum
        }
        let workspace = UnsafeMutablePointer<C>.allocate(capacity: max(total, 1))
        defer { workspace.deallocate() }
        workspace.initialize(repeating: 0, count: max(total, 1))
        var offsets: [Int] = []
        var offset = 0
        for size in sizes { offsets.append(offset); offset += size }
        let pre = workspace + offsets[0], recurrent = workspace + offsets[1], work = workspace + offsets[2]
        let resetHidden = workspace + offsets[3], candidateProduct = workspace + offsets[4], scratch = workspace + offsets[5]
        let y = workspace + offsets[6]
        let longest = lengths.max() ?? 0

        try xs.withUnsafeBufferPointer { xp throws(RuntimeError) in
        try h.withUnsafeMutableBufferPointer { hp throws(RuntimeError) in
        try c.withUnsafeMutableBufferPointer { cp throws(RuntimeError) in
            // An empty X (no steps, no batch or no features) has nothing to read: any valid pointer serves.
            let x0 = xp.baseAddress ?? UnsafePointer(scratch)
            let hs0 = hp.baseAddress ?? scratch, cs0 = cp.baseAddress ?? scratch
            for d in 0..<directions {
                let reverse = directionName == "reverse" || d == 1
                let bd = d * 2 * gh
                let f = activations[d * perDirection]
                let g = perDirection > 1 ? activations[d * perDirection + 1] : f
                let hAct = perDirection > 2 ? activations[d * perDirection + 2] : f
                let project = projections[d]
                project.input.apply(m: stepRows, x: x0, y: pre, ldy: gh)
                // pre[t, b, :] += Wb + Rb (GRU's Rbh stays out: it may sit inside the reset product).
                var rowBias = [C](repeating: 0, count: gh)
                for j in 0..<gh { rowBias[j] = bias[bd + j] + (cell == .gru && j >= 2 * hidden ? 0 : bias[bd + gh + j]) }
                rowBias.withUnsafeBufferPointer { rb in
                    for row in 0..<stepRows {
                        let p = pre + row * gh
                        for j in 0..<gh { p[j] += rb[j] }
                    }
                }
                // GRU's Rbh: added to the candidate's recurrent product (inside the reset product when linear_before_reset).
                let rbh = cell == .gru ? Array(bias[(bd + gh + 2 * hidden)..<(bd + 2 * gh)]) : []
                let peep = peepholes.map { Array($0[(d * 3 * hidden)..<((d + 1) * 3 * hidden)]) }
                // The common LSTM (default activations, no peepholes, clip or input_forget) runs its gates in one pass.
                let fusedGates = cell == .lstm && peep == nil && clip == nil && !inputForget && f.kind == .sigmoid && g.kind == .tanh
                    && hAct.kind == .tanh
                let hd = hs0 + d * batch * hidden, cd = cs0 + d * batch * hidden
                for step in 0..<longest {
                    /// The time index of batch row b at this step, nil once its sequence has ended.
                    func time(_ b: Int) -> Int? { step < lengths[b] ? (reverse ? lengths[b] - 1 - step : step) : nil }
                    project.recurrent.apply(m: batch, x: hd, y: recurrent, ldy: projected)
                    for b in 0..<batch {
                        guard let t = time(b) else { continue }
                        let gate = work + b * gh, p = pre + (t * batch + b) * gh, rec = recurrent + b * projected
                        let hb = hd + b * hidden, cb = cd + b * hidden
                        if fusedGates, C.lstmGates(hidden: hidden, pre: p, recurrent: rec, cell: cb, hiddenState: hb) { continue }
                        for j in 0..<projected { gate[j] = p[j] + rec[j] }
                        switch cell {
                        case .rnn:
                            clipped(gate, hidden, clip)
                            f.apply(gate, hidden)
                            hb.update(from: gate, count: hidden)
                        case .gru:
                            // Gate order z, r, h: z and r now, the candidate once every row's r ⊙ h is known.
                            clipped(gate, 2 * hidden, clip)
                            f.apply(gate, 2 * hidden)
                            if linearBeforeReset {
                                for j in 0..<hidden { gate[2 * hidden + j] = p[2 * hidden + j] + gate[hidden + j] * (rec[2 * hidden + j] + rbh[j]) }
                            } else {
                                let rh = resetHidden + b * hidden
                                for j in 0..<hidden { rh[j] = gate[hidden + j] * hb[j] }
                            }
                        case .lstm:
                            // Gate order i, o, f, c; peepholes i, o, f. Without peepholes i, o and f are one stretch for
                            // f; with them the output gate sees the new cell, so it is clipped and activated last.
                            if let peep {
                                for j in 0..<hidden {
                                    gate[j] += peep[j] * cb[j]
                                    gate[2 * hidden + j] += peep[2 * hidden + j] * cb[j]
                                }
                            }
                            clipped(gate, gh, clip)
                            if peep == nil {
                                f.apply(gate, 3 * hidden)
                            } else {
                                f.apply(gate, hidden)
                                f.apply(gate + 2 * hidden, hidden)
                            }
                            if inputForget { for j in 0..<hidden { gate[2 * hidden + j] = 1 - gate[j] } }
                            g.apply(gate + 3 * hidden, hidden)
                            for j in 0..<hidden { cb[j] = gate[2 * hidden + j] * cb[j] + gate[j] * gate[3 * hidden + j] }
                            if let peep {
                                for j in 0..<hidden { gate[hidden + j] = p[hidden + j] + rec[hidden + j] + peep[hidden + j] * cb[j] }
                                clipped(gate + hidden, hidden, clip)
                                f.apply(gate + hidden, hidden)
                            }
                            scratch.update(from: cb, count: hidden)
                            hAct.apply(scratch, hidden)
                            for j in 0..<hidden { hb[j] = gate[hidden + j] * scratch[j] }
                        }
                    }
                    if cell == .gru {
                        project.candidate?.apply(m: batch, x: resetHidden, y: candidateProduct, ldy: hidden)
                        for b in 0..<batch {
                            guard let t = time(b) else { continue }
                            let gate = work + b * gh, p = pre + (t * batch + b) * gh, hb = hd + b * hidden
                            if !linearBeforeReset {
                                let product = candidateProduct + b * hidden
                                for j in 0..<hidden { gate[2 * hidden + j] = p[2 * hidden + j] + product[j] + rbh[j] }
                            }
                            clipped(gate + 2 * hidden, hidden, clip)
                            g.apply(gate + 2 * hidden, hidden)
                            for j in 0..<hidden { hb[j] = (1 - gate[j]) * gate[2 * hidden + j] + gate[j] * hb[j] }
                        }
                    }
                    for b in 0..<batch {
                        guard let t = time(b) else { continue }
                        (y + ((t * directions + d) * batch + b) * hidden).update(from: hd + b * hidden, count: hidden)
                    }
                }
            }
        }
        }
        }
        let ys = Array(UnsafeBufferPointer(start: y, count: seqLength * directions * batch * hidden))

        var results: [Value?] = []
        let count = context.node.outputs.count
        let outputType: DType = quantized ? .float : dtype
        if count > 0 {
            let values = layout == 0 ? ys : transpose01(ys, seqLength, batch, directions * hidden, middleSplit: (directions, batch))
            let shape = layout == 0 ? [seqLength, directions, batch, hidden] : [batch, seqLength, directions, hidden]
            results.append(.tensor(try store(values, dtype: outputType, shape: shape)))
        }
        if count > 1 {
            results.append(.tensor(try store(layout == 0 ? h : transpose01(h, directions, batch, hidden), dtype: outputType, shape: stateShape)))
        }
        if count > 2 && cell == .lstm {
            results.append(.tensor(try store(layout == 0 ? c : transpose01(c, directions, batch, hidden), dtype: outputType, shape: stateShape)))
        }
        return results
    }

    /// values[0 ..< n] clamped to ±clip, when the op has a clip.
    private func clipped(_ values: UnsafeMutablePointer<C>, _ n: Int, _ clip: C?) {
        guard let clip else { return }
        for j in 0..<n { values[j] = min(max(values[j], -clip), clip) }
    }

    /// Each direction's products from W and R: float (or double) matrices, or int8 (`wScale` given) with the scales
    /// of the Q forms' last two inputs (one, one per row shared by the directions, or one per direction and row).
    static func projections(cell: Cell, w: Tensor, r: Tensor, wScale: Tensor?, rScale: Tensor?, directions: Int, gh: Int, inputSize: Int,
                            hidden: Int, projected: Int, op: String) throws(RuntimeError) -> [RecurrentProjections<C>] {
        let candidateRows = cell == .gru && projected < gh
        guard let wScale, let rScale else {
            // One spare element keeps the base pointers valid when a size is 0 (then nothing is read).
            let ws = try load(w, op: op) + [0], rs = try load(r, op: op) + [0]
            return ws.withUnsafeBufferPointer { wp in
                rs.withUnsafeBufferPointer { rp in
                    guard let w0 = wp.baseAddress, let r0 = rp.baseAddress else { return [] }
                    return (0..<directions).map { d in
                        let rd = r0 + d * gh * hidden
                        return RecurrentProjections(input: C.projection(w0 + d * gh * inputSize, n: gh, k: inputSize),
                                                    recurrent: C.projection(rd, n: projected, k: hidden),
                                                    candidate: candidateRows ? C.projection(rd + 2 * hidden * hidden, n: hidden, k: hidden) : nil)
                    }
                }
            }
        }
        func scales(_ t: Tensor, _ name: String) throws(RuntimeError) -> [[Float]] {
            guard t.dtype == .float else { throw .invalidArgument("\(op): \(name) must be float, got \(t.dtype.onnxName)") }
            let values = t.array(Float.self)
            switch values.count {
            case 1: return Array(repeating: Array(repeating: values[0], count: gh), count: directions)
            case gh: return Array(repeating: values, count: directions)
            case directions * gh: return (0..<directions).map { Array(values[($0 * gh)..<(($0 + 1) * gh)]) }
            default: throw .invalidShape("\(op): \(name) has \(values.count) values; expected 1, \(gh) or \(directions * gh)")
            }
        }
        let wScales = try scales(wScale, "W_scale"), rScales = try scales(rScale, "R_scale")
        var result: [RecurrentProjections<C>] = []
        for d in 0..<directions {
            let made = try w.withValues(Int8.self) { wb throws(RuntimeError) -> RecurrentProjections<C> in
                try r.withValues(Int8.self) { rb throws(RuntimeError) -> RecurrentProjections<C> in
                    guard let w0 = wb.baseAddress, let r0 = rb.baseAddress else { throw .invalidShape("\(op): empty W or R") }
                    let rd = r0 + d * gh * hidden
                    return RecurrentProjections(
                        input: try C.quantizedProjection(w0 + d * gh * inputSize, n: gh, k: inputSize, scales: wScales[d], op: op),
                        recurrent: try C.quantizedProjection(rd, n: projected, k: hidden, scales: Array(rScales[d][..<projected]), op: op),
                        candidate: candidateRows
                            ? try C.quantizedProjection(rd + 2 * hidden * hidden, n: hidden, k: hidden, scales: Array(rScales[d][(2 * hidden)...]), op: op)
                            : nil)
                }
            }
            result.append(made)
        }
        return result
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

    private func load(_ t: Tensor) throws(RuntimeError) -> [C] { try Self.load(t, op: context.node.opType) }

    private static func load(_ t: Tensor, op: String) throws(RuntimeError) -> [C] {
        switch t.dtype {
        // Same type: a copy, not an element-by-element conversion through the generic initializer.
        case .float: return t.withValues(Float.self) { b in (Array(b) as? [C]) ?? b.map { C($0) } }
        case .double: return t.withValues(Double.self) { b in (Array(b) as? [C]) ?? b.map { C($0) } }
        case .float16: return t.withValues(Float16.self) { $0.map { C(Float($0)) } }
        default: throw .unsupportedType(op: op, dtype: t.dtype.onnxName)
        }
    }

    private func store(_ values: [C], dtype: DType, shape: [Int]) throws(RuntimeError) -> Tensor {
        switch dtype {
        case .float: return try Tensor((values as? [Float]) ?? values.map { Float($0) }, shape: shape)
        case .double: return try Tensor((values as? [Double]) ?? values.map { Double($0) }, shape: shape)
        case .float16: return try Tensor(values.map { Float16(Float($0)) }, shape: shape)
        default: throw .unsupportedType(op: context.node.opType, dtype: dtype.onnxName)
        }
    }
}
