import CKernels
import OnnxcCore
import OnnxcIR
import OnnxcLowering
import OnnxcRuntime

/// Accuracy without retraining (He et al. 2017, "Channel Pruning for Accelerating Very Deep Neural Networks"):
/// each layer that lost input channels is refitted so that, from the kept channels alone, it reproduces the
/// output the original layer computed on the calibration set. Per layer that is a ridge regression
///     min ‖Y − X·Θ‖² + λ‖Θ − Θ₀‖²
/// over sampled output positions (X: the kept input channels' im2col rows plus a 1 for the bias; Y: the original
/// outputs at the kept output channels; Θ₀: the original weights, so a layer with few samples stays near them).
/// The bias column absorbs the mean contribution of the removed channels, which is most of what plain magnitude
/// pruning loses after a ReLU.
enum Reconstruction {
    /// Rows sampled per layer: enough for a well-posed fit of the largest layers we meet, bounded in memory.
    static let maximumRows = 4096

    struct Layer {
        var node: Int
        var kind: Kind
        var keptInputs: [Int]
        var keptOutputs: [Int]
        var rows: [Float] = []
        var targets: [Float] = []
        var rowCount = 0
        var targetCount = 0
        var unknowns: Int
        enum Kind {
            case conv(kernel: [Int], strides: [Int], pads: [Int], dilations: [Int])
            case dense(bias: Bool, alpha: Double, beta: Double, transB: Bool)

            var isConv: Bool {
                if case .conv = self { return true }
                return false
            }
        }
    }

    static func refit(original: Model, pruned: Model, deps: ChannelDependencies, removed: Set<Int>, batches: [[String: Value]],
                      progress: (Int, Int) -> Void) throws -> (Model, [String]) {
        func kept(_ name: String, count: Int) -> [Int] { deps.positions(of: name, removed: removed)?.kept ?? Array(0..<count) }
        let graph = original.graph
        let view = PruningGraphView(graph)
        var layers: [Layer] = []
        for (n, node) in graph.nodes.enumerated() {
            guard let inMap = deps.maps[node.inputs.first ?? ""], node.inputs.count > 1,
                  let weight = view.constant(node.inputs[1]), weight.dtype == .float else { continue }
            let keptIn = kept(node.inputs[0], count: inMap.atoms.count)
            guard keptIn.count < inMap.atoms.count, !keptIn.isEmpty else { continue }
            let w = weight.dims.map(Int.init)
            switch node.opType {
            case "Conv" where (FusionSupport.int(node, "group") ?? 1) == 1 && w.count == 4 && view.rank(node.inputs[0]) == 4:
                let outputs = kept(node.outputs[0], count: w[0])
                let kernel = [w[2], w[3]]
                guard (FusionSupport.string(node, "auto_pad") ?? "NOTSET") == "NOTSET" else { continue }
                let pads = FusionSupport.ints(node, "pads")?.map(Int.init) ?? [0, 0, 0, 0]
                layers.append(Layer(node: n, kind: .conv(kernel: kernel, strides: FusionSupport.ints(node, "strides")?.map(Int.init) ?? [1, 1],
                                                          pads: pads.count == 4 ? pads : [0, 0, 0, 0],
                                                          dilations: FusionSupport.ints(node, "dilations")?.map(Int.init) ?? [1, 1]),
                                    keptInputs: keptIn, keptOutputs: outputs, unknowns: keptIn.count * kernel[0] * kernel[1] + 1))
            case "Gemm" where (FusionSupport.int(node, "transA") ?? 0) == 0 && w.count == 2:
                let transB = (FusionSupport.int(node, "transB") ?? 0) != 0
                let outputs = kept(node.outputs[0], count: transB ? w[0] : w[1])
                let beta = Double(FusionSupport.float(node, "beta") ?? 1), alpha = Double(FusionSupport.float(node, "alpha") ?? 1)
                var bias = false
                if node.inputs.count > 2, !node.inputs[2].isEmpty, let c = view.dims(node.inputs[2]), beta != 0 {
                    bias = c.count == 1 || (c.count == 2 && c[0] == .fixed(1))
                    if !bias { continue }
                }
                guard alpha != 0 else { continue }
                layers.append(Layer(node: n, kind: .dense(bias: bias || node.inputs.count <= 2 || node.inputs[2].isEmpty, alpha: alpha, beta: beta, transB: transB),
                                    keptInputs: keptIn, keptOutputs: outputs, unknowns: keptIn.count + 1))
            case "MatMul" where w.count == 2:
                let outputs = kept(node.outputs[0], count: w[1])
                layers.append(Layer(node: n, kind: .dense(bias: false, alpha: 1, beta: 0, transB: false),
                                    keptInputs: keptIn, keptOutputs: outputs, unknowns: keptIn.count))
            default:
                continue
            }
        }
        guard !layers.isEmpty else { return (pruned, []) }
        // One run of the original model per batch yields every layer's input and output.
        var probe = original
        let declared = Set(graph.outputs.map(\.name))
        let wanted = Set(layers.flatMap { [graph.nodes[$0.node].inputs[0], graph.nodes[$0.node].outputs[0]] }).subtracting(declared)
        probe.graph.outputs += wanted.sorted().map { ValueInfo(name: $0, type: nil) }
        let executor = try Executor(graph: try Lowering.lower(probe))
        // Targets: the original layers' outputs. Inputs: the pruned model's, each layer after the layers before
        // it were refitted (He et al.'s sequential order), so a layer also corrects what upstream pruning changed.
        let perBatch = max(1, maximumRows / max(1, batches.count))
        let total = batches.count * (layers.count + 1)
        var step = 0
        for batch in batches {
            let values = try executor.run(batch)
            for i in layers.indices {
                let node = graph.nodes[layers[i].node]
                guard let x = values[node.inputs[0]]?.tensor, let y = values[node.outputs[0]]?.tensor,
                      x.dtype == .float, y.dtype == .float else { continue }
                sample(&layers[i], input: nil, output: y, channels: [], budget: perBatch)
            }
            step += 1
            progress(step, total)
        }
        var result = pruned
        var refitted: [String] = []
        var taken = FusionSupport.takenNames(pruned.graph)
        for i in layers.indices {
            let node = result.graph.nodes[layers[i].node]
            let stage = try Executor(graph: try Lowering.lower(upTo([node.inputs[0], node.outputs[0]], in: result)))
            for batch in batches {
                let values = try stage.run(batch)
                if let x = values[node.inputs[0]]?.tensor, let y = values[node.outputs[0]]?.tensor, x.dtype == .float, y.dtype == .float {
                    let channels = layers[i].kind.isConv ? x.shape[1] : (x.shape.last ?? 0)
                    sample(&layers[i], input: x, output: y, channels: Array(0..<channels), budget: perBatch)
                }
                step += 1
                progress(step, total)
            }
            let layer = layers[i]
            guard layer.rowCount > 0, layer.rowCount == layer.targetCount,
                  let weight = result.graph.initializer(named: node.inputs[1]), let initial = FusionSupport.doubles(weight) else { continue }
            let bias = node.inputs.count > 2 ? result.graph.initializer(named: node.inputs[2]).flatMap(FusionSupport.doubles) : nil
            guard let solution = solve(layer, initial: initialParameters(layer, weight, initial, bias)) else { continue }
            write(solution, layer, node: layer.node, into: &result.graph, current: weight, taken: &taken)
            refitted.append(node.name.isEmpty ? node.displayName : node.name)
            layers[i].rows = []
        }
        result.graph.dropUnusedInitializers()
        return (result, refitted)
    }

    /// The model cut down to the nodes `outputs` depend on, with those as its outputs: a stage of the
    /// sequential refit needs one layer's input and output, not the rest of the network.
    static func upTo(_ outputs: [String], in model: Model) -> Model {
        var needed = Set(outputs)
        var keep = [Bool](repeating: false, count: model.graph.nodes.count)
        for (i, node) in model.graph.nodes.enumerated().reversed() where node.outputs.contains(where: needed.contains) {
            keep[i] = true
            needed.formUnion(node.inputs.filter { !$0.isEmpty })
            for subgraph in node.subgraphs { needed.formUnion(subgraph.capturedValues) }
        }
        var cut = model
        cut.graph.nodes = model.graph.nodes.indices.filter { keep[$0] }.map { model.graph.nodes[$0] }
        cut.graph.outputs = outputs.map { ValueInfo(name: $0, type: nil) }
        cut.graph.initializers = model.graph.initializers.filter { needed.contains($0.name) }
        return cut
    }

    // MARK: - Sampling

    /// Appends, from one batch, up to `budget` rows spread evenly over the output positions: with `input`, the
    /// im2col rows of its `channels` (and a 1 for the bias); otherwise the targets, the output's kept channels.
    /// The positions depend only on the output's shape, so rows and targets taken in two runs line up.
    static func sample(_ layer: inout Layer, input x: OnnxcRuntime.Tensor?, output y: OnnxcRuntime.Tensor, channels: [Int], budget: Int) {
        y.withValues(Float.self) { ys in
            switch layer.kind {
            case .conv(let kernel, let strides, let pads, let dilations):
                let (n, m, oh, ow) = (y.shape[0], y.shape[1], y.shape[2], y.shape[3])
                let positions = n * oh * ow, take = min(budget, positions)
                guard take > 0 else { return }
                let step = Double(positions) / Double(take)
                guard let x else {
                    for s in 0..<take {
                        let p = Int(Double(s) * step), img = p / (oh * ow), oy = (p / ow) % oh, ox = p % ow
                        for mo in layer.keptOutputs { layer.targets.append(ys[((img * m + mo) * oh + oy) * ow + ox]) }
                    }
                    layer.targetCount += take
                    return
                }
                let (c, h, w) = (x.shape[1], x.shape[2], x.shape[3])
                x.withValues(Float.self) { xs in
                    for s in 0..<take {
                        let p = Int(Double(s) * step), img = p / (oh * ow), oy = (p / ow) % oh, ox = p % ow
                        for ci in channels {
                            let plane = (img * c + ci) * h * w
                            for ky in 0..<kernel[0] {
                                let iy = oy * strides[0] - pads[0] + ky * dilations[0]
                                for kx in 0..<kernel[1] {
                                    let ix = ox * strides[1] - pads[1] + kx * dilations[1]
                                    layer.rows.append(iy >= 0 && iy < h && ix >= 0 && ix < w ? xs[plane + iy * w + ix] : 0)
                                }
                            }
                        }
                        layer.rows.append(1)
                    }
                }
                layer.rowCount += take
            case .dense(let bias, _, _, _):
                let m = y.shape.last ?? 1
                let positions = y.count / max(1, m), take = min(budget, positions)
                guard take > 0 else { return }
                let step = Double(positions) / Double(take)
                guard let x else {
                    for s in 0..<take {
                        let p = Int(Double(s) * step)
                        for mo in layer.keptOutputs { layer.targets.append(ys[p * m + mo]) }
                    }
                    layer.targetCount += take
                    return
                }
                let k = x.shape.last ?? 1
                x.withValues(Float.self) { xs in
                    for s in 0..<take {
                        let p = Int(Double(s) * step)
                        for ki in channels { layer.rows.append(xs[p * k + ki]) }
                        if bias { layer.rows.append(1) }
                    }
                }
                layer.rowCount += take
            }
        }
    }

    // MARK: - Solving

    /// Θ₀ in the fit's layout (unknowns × outputs): the pruned layer's weights, bias last.
    static func initialParameters(_ layer: Layer, _ weight: OnnxcIR.Tensor, _ values: [Double], _ bias: [Double]?) -> [Double] {
        let outputs = layer.keptOutputs.count, n = layer.unknowns
        var theta = [Double](repeating: 0, count: n * outputs)
        switch layer.kind {
        case .conv:
            let perOutput = values.count / max(1, outputs)
            for m in 0..<outputs {
                for j in 0..<perOutput { theta[j * outputs + m] = values[m * perOutput + j] }
                theta[(n - 1) * outputs + m] = bias.map { $0.count == outputs ? $0[m] : 0 } ?? 0
            }
        case .dense(let hasBias, let alpha, let beta, let transB):
            let k = layer.keptInputs.count
            for m in 0..<outputs {
                for j in 0..<k { theta[j * outputs + m] = alpha * values[transB ? m * k + j : j * outputs + m] }
                if hasBias { theta[k * outputs + m] = beta * (bias.map { $0.count == outputs ? $0[m] : 0 } ?? 0) }
            }
        }
        return theta
    }

    /// (XᵀX + λI) Θ = XᵀY + λΘ₀ by Cholesky; λ is 1e-3 of the mean diagonal, which keeps an under-sampled fit
    /// near the original weights and barely biases a well-sampled one.
    static func solve(_ layer: Layer, initial: [Double]) -> [Double]? {
        let n = layer.unknowns, m = layer.keptOutputs.count, rows = layer.rowCount
        guard layer.rows.count == rows * n, layer.targets.count == rows * m else { return nil }
        var gram = [Float](repeating: 0, count: n * n), cross = [Float](repeating: 0, count: n * m)
        layer.rows.withUnsafeBufferPointer { x in
            layer.targets.withUnsafeBufferPointer { y in
                gram.withUnsafeMutableBufferPointer { g in
                    let xt = ck_operand(data: x.baseAddress, rs: 1, cs: n, packed: 0)
                    let xo = ck_operand(data: x.baseAddress, rs: n, cs: 1, packed: 0)
                    ck_sgemm(Int32(n), Int32(n), Int32(rows), xt, xo, g.baseAddress, n, nil)
                }
                cross.withUnsafeMutableBufferPointer { c in
                    let xt = ck_operand(data: x.baseAddress, rs: 1, cs: n, packed: 0)
                    let yo = ck_operand(data: y.baseAddress, rs: m, cs: 1, packed: 0)
                    ck_sgemm(Int32(n), Int32(m), Int32(rows), xt, yo, c.baseAddress, m, nil)
                }
            }
        }
        var a = gram.map(Double.init)
        var trace = 0.0
        for i in 0..<n { trace += a[i * n + i] }
        let lambda = max(1e-8, 1e-3 * trace / Double(n))
        for i in 0..<n { a[i * n + i] += lambda }
        var b = [Double](repeating: 0, count: n * m)
        for i in 0..<(n * m) { b[i] = Double(cross[i]) + lambda * initial[i] }
        guard Cholesky.factor(&a, n) else { return nil }
        Cholesky.solve(a, n, &b, m)
        return b.allSatisfy(\.isFinite) ? b : nil
    }

    /// Writes Θ back as the layer's weight (and bias) tensors, under fresh names.
    static func write(_ theta: [Double], _ layer: Layer, node n: Int, into graph: inout Graph, current: OnnxcIR.Tensor, taken: inout Set<String>) {
        let outputs = layer.keptOutputs.count, unknowns = layer.unknowns
        var weight = [Double](repeating: 0, count: current.data.elementCount)
        var bias: [Double]?
        switch layer.kind {
        case .conv:
            let perOutput = weight.count / max(1, outputs)
            for m in 0..<outputs { for j in 0..<perOutput { weight[m * perOutput + j] = theta[j * outputs + m] } }
            bias = (0..<outputs).map { theta[(unknowns - 1) * outputs + $0] }
        case .dense(let hasBias, let alpha, let beta, let transB):
            let k = layer.keptInputs.count
            for m in 0..<outputs {
                for j in 0..<k { weight[transB ? m * k + j : j * outputs + m] = theta[j * outputs + m] / alpha }
            }
            if hasBias { bias = (0..<outputs).map { theta[k * outputs + $0] / (beta == 0 ? 1 : beta) } }
        }
        guard let w = FusionSupport.tensor(FusionSupport.freshName(current.name + "_refit", &taken), current.dtype, current.dims, weight) else { return }
        graph.initializers.append(w)
        graph.nodes[n].inputs[1] = w.name
        guard let bias else { return }
        let hasInput = graph.nodes[n].inputs.count > 2 && !graph.nodes[n].inputs[2].isEmpty
        let dims: [Int64] = hasInput ? (graph.initializer(named: graph.nodes[n].inputs[2])?.dims ?? [Int64(outputs)]) : [Int64(outputs)]
        guard let t = FusionSupport.tensor(FusionSupport.freshName(w.name + "_bias", &taken), current.dtype, dims, bias) else { return }
        graph.initializers.append(t)
        while graph.nodes[n].inputs.count < 3 { graph.nodes[n].inputs.append("") }
        graph.nodes[n].inputs[2] = t.name
        if case .dense = layer.kind, !hasInput {
            graph.nodes[n] = FusionSupport.setting("beta", .float(1), on: graph.nodes[n])
        }
    }
}

/// Dense symmetric positive-definite solves in double precision (the loops in C: `ck_cholesky_f64`, FMA lanes).
enum Cholesky {
    /// Overwrites the lower triangle of `a` (n × n, row-major) with L, A = L·Lᵀ. False if A is not positive definite.
    static func factor(_ a: inout [Double], _ n: Int) -> Bool {
        a.withUnsafeMutableBufferPointer { ck_cholesky_f64(Int32(n), $0.baseAddress) != 0 }
    }

    /// Solves L·Lᵀ·X = B in place for `m` right-hand sides (B is n × m, row-major).
    static func solve(_ l: [Double], _ n: Int, _ b: inout [Double], _ m: Int) {
        l.withUnsafeBufferPointer { lp in
            b.withUnsafeMutableBufferPointer { ck_cholesky_solve_f64(Int32(n), lp.baseAddress, Int32(m), $0.baseAddress) }
        }
    }
}
