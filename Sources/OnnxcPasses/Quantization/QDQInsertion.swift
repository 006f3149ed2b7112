public import OnnxcCore
public import OnnxcIR

/// What to quantize and how.
public struct QuantizationOptions: Sendable {
    /// Per output channel weight scales (the default, as ORT's and TFLite's); false: one scale per weight.
    public var perChannel = true
    /// Nodes (by name) and op types left in float.
    public var excludedNodes: Set<String> = []
    public var excludedOpTypes: Set<String> = []
    /// `-O int8-dynamic`: only Conv/Gemm/MatMul inputs are quantized, by DynamicQuantizeLinear (a grid computed
    /// per run from the tensor's own range: no calibration), and biases stay float; LSTM/GRU/RNN get int8 W and R
    /// (weights only in the ONNX output, which has no op for a per-step grid; the compiled model quantizes X and
    /// the hidden state per run, as ORT's DynamicQuantizeLSTM does). Calibrated int8 treats recurrent ops the same
    /// way: a per-step grid follows the hidden state better than one range fixed for every step.
    public var dynamic = false

    public init(perChannel: Bool = true, excludedNodes: Set<String> = [], excludedOpTypes: Set<String> = [], dynamic: Bool = false) {
        self.perChannel = perChannel
        self.excludedNodes = excludedNodes
        self.excludedOpTypes = excludedOpTypes
        self.dynamic = dynamic
    }
}

/// Why quantization cannot proceed (nothing is written).
public enum QuantizationError: Error, Sendable, UserFacingError {
    case opsetTooOld(Int64)
    case invalidGraph(IRError)
    case tensor(String, TensorDataError)

    public var what: String {
        switch self {
        case .opsetTooOld(let v): "the model imports ONNX opset \(v); per-channel QuantizeLinear/DequantizeLinear need opset 13 or later"
        case .invalidGraph(let e): "quantization produced an invalid graph: \(e.what)"
        case .tensor(let name, let e): "cannot make quantized tensor \(name): \(e)"
        }
    }

    public var location: String? {
        if case .invalidGraph(let e) = self { return e.location }
        return nil
    }

    public var hint: String? {
        switch self {
        case .opsetTooOld: "pass --per-tensor, or re-export the model at opset 13 or later"
        case .invalidGraph, .tensor: "this is an onnxc bug; rerun with --exclude-nodes for the node named and report the model"
        }
    }
}

/// What insertion did, for the compile report and `--json`.
public struct QuantizationSummary: Sendable {
    /// Nodes that now read quantized inputs, by op type.
    public var quantizedNodes: [String: Int] = [:]
    /// Nodes of quantizable types left in float, with the reason.
    public var skipped: [(node: String, reason: String)] = []
    public var quantizedTensors = 0
    public var quantizedWeights = 0
    /// Biases too large for int32 at scale s_x·s_w (clamped).
    public var clampedBiases = 0
    /// Every quantized node that writes a value, in graph order: what the sensitivity report compares.
    public var layers: [QuantizedLayer] = []
}

/// A quantized node, named as in both the float and the quantized model: its output keeps its name, and
/// `quantizedInputs[i]` is what it reads where the float model reads `floatInputs[i]`.
public struct QuantizedLayer: Sendable {
    public var node: String
    public var opType: String
    public var output: String
    public var floatInputs: [String]
    public var quantizedInputs: [String]
}

/// Inserts QuantizeLinear → DequantizeLinear pairs (QDQ, the format ONNX Runtime recommends) into a float model:
/// the result is standard ONNX that ORT runs, and the input of onnxc's integer lowering.
///
/// Quantized: Conv, Gemm and MatMul with constant float weights (int8 symmetric per output channel, bias int32 at
/// s_x·s_w — a MatMul's bias Add too), the element-wise and data-movement ops in `activationOps`, embedding tables
/// (a Gather's float constant, int8 per tensor), and element-wise chains of one input (`ElementwiseRegion`, at their
/// two ends only). Each float tensor such an op reads gets one Q/DQ pair (uint8, the calibrated range widened to
/// include 0), and every reader reads the dequantized value, so ORT and onnxc's integer kernels see the same numbers
/// (in the dynamic form only the quantized op does). Not quantized: products of two activations (no integer kernel),
/// outputs only float ops read (or only ops without weights whose outputs stay float), graph outputs (a
/// classifier's logits lose nothing to a last rounding), and the output of a Conv/Gemm/MatMul/Add read only by a
/// Relu or Clip — the activation is fused into the producer's requantization, as ORT's QDQ quantizer does. Data-movement ops (MaxPool, Reshape, Transpose, …) give their
/// output their input's grid and a Concat with a quantized output gives its inputs and output one grid (the union
/// of the ranges of all the tensors so connected), so those ops run on the integers unchanged.
public enum QDQInsertion {
    /// Ops with weights: their input 1 (and Conv/Gemm's bias) are constants quantized here.
    static let weightOps: Set<String> = ["Conv", "Gemm", "MatMul"]
    /// Ops whose data inputs and output are quantized; the value is which inputs are data ("all" = every
    /// non-constant input, "first" = input 0).
    static let activationOps: [String: Bool] = [
        "Add": true, "Mul": true, "Concat": true,
        "MaxPool": false, "AveragePool": false, "GlobalAveragePool": false, "Relu": false, "Clip": false,
        "LeakyRelu": false, "Sigmoid": false, "HardSigmoid": false, "HardSwish": false, "Tanh": false, "Gelu": false,
        "Reshape": false, "Transpose": false, "Squeeze": false, "Unsqueeze": false, "Flatten": false,
        "Slice": false, "Split": false, "Pad": false, "Resize": false,
    ]
    /// Ops whose output holds only values of their input: the output takes the input's grid. (Not Relu: its
    /// own range starts at 0, which gives it zero point 0 and lets the producer's requantization compute it.) Pad
    /// adds its constant, which the class's range then spans (0 always is: every grid has it exactly).
    static let sameGridOps: Set<String> = [
        "MaxPool", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Slice", "Split", "Pad",
    ]
    /// Recurrent ops whose W and R are quantized (int8 per direction and gate row), in both modes.
    static let recurrentOps: Set<String> = ["LSTM", "GRU", "RNN"]
    /// Elements below which a Gather's table stays float (a handful of values saves nothing).
    static let minimumTableElements = 1024
    /// Activations a preceding quantized op absorbs into its requantization.
    static let fusedActivations: Set<String> = ["Relu", "Clip"]

    /// The float tensors calibration must observe for `model`: every non-constant input and output of the
    /// nodes `insert` would quantize.
    public static func calibrationTensors(_ model: Model, options: QuantizationOptions) -> [String] {
        let graph = model.graph
        let constants = Set(graph.initializers.map(\.name))
        var names: [String] = []
        var seen = Set<String>()
        // Recurrent ops need no ranges: their compiled form quantizes X and the hidden state per run.
        for node in graph.nodes where quantizable(node, options) != nil && !recurrentOps.contains(node.opType) {
            for name in node.inputs + node.outputs where !name.isEmpty && !constants.contains(name) && seen.insert(name).inserted {
                names.append(name)
            }
        }
        if !options.dynamic {
            for region in ElementwiseRegion.all(in: graph, index: GraphIndex(graph)) {
                for name in [region.input, region.output] where !constants.contains(name) && seen.insert(name).inserted { names.append(name) }
            }
        }
        return names
    }

    /// Why `node` is not quantized, or nil when it is (`.some(nil)`: quantizable; `nil`: not a candidate).
    static func quantizable(_ node: Node, _ options: QuantizationOptions) -> String?? {
        guard node.domain.isEmpty,
              weightOps.contains(node.opType) || recurrentOps.contains(node.opType) || (!options.dynamic && activationOps[node.opType] != nil)
        else { return nil }
        if options.excludedNodes.contains(node.name) { return .some("excluded by --exclude-nodes") }
        if options.excludedOpTypes.contains(node.opType) { return .some("excluded by --exclude-op-types") }
        return .some(nil)
    }

    public static func insert(_ model: Model, ranges calibrated: [String: TensorRange], options: QuantizationOptions) throws(QuantizationError) -> (Model, QuantizationSummary) {
        let opset = model.opsetImports.first { canonicalDomain($0.domain) == defaultDomain }?.version ?? 1
        if options.perChannel && opset < 13 { throw .opsetTooOld(opset) }
        var graph = model.graph
        let index = GraphIndex(graph)
        var summary = QuantizationSummary()
        var taken = FusionSupport.takenNames(graph)
        let constants = Dictionary(graph.initializers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let graphInputs = Set(graph.inputs.map(\.name))
        func isConstant(_ name: String) -> Bool { constants[name] != nil && !graphInputs.contains(name) }

        // 1. Which nodes read quantized inputs, and which of their inputs. An element-wise chain of one input
        // (ElementwiseRegion: GELU spelled out, x · sigmoid(x)) is quantized only at its ends, below.
        let regions = options.dynamic ? [] : ElementwiseRegion.all(in: graph, index: index)
        let inRegion = Set(regions.flatMap(\.nodes))
        var dataInputs: [Int: [Int]] = [:]
        for (n, node) in graph.nodes.enumerated() where !inRegion.contains(n) {
            guard let verdict = quantizable(node, options) else { continue }
            if let reason = verdict {
                summary.skipped.append((node.displayName, reason))
                continue
            }
            var slots: [Int] = []
            switch node.opType {
            case "Conv", "Gemm":
                guard node.inputs.count >= 2, let w = constants[node.inputs[1]], isConstant(w.name), w.dtype == .float else {
                    summary.skipped.append((node.displayName, "its weight is not a float constant"))
                    continue
                }
                if node.opType == "Gemm", FusionSupport.int(node, "transA") ?? 0 != 0 {
                    summary.skipped.append((node.displayName, "transA = 1"))
                    continue
                }
                slots = [0]
            case "MatMul":
                guard node.inputs.count == 2, isConstant(node.inputs[1]) else {
                    // Attention's products: no integer kernel to run them on (Q/DQ around them would only add
                    // roundings and keep the float chain from fusing into one attention op).
                    summary.skipped.append((node.displayName, "a product of two activations stays float"))
                    continue
                }
                slots = [0]
            case "LSTM", "GRU", "RNN":
                guard node.inputs.count >= 3, [1, 2].allSatisfy({ constants[node.inputs[$0]].map { isConstant($0.name) && $0.dtype == .float && $0.dims.count == 3 } ?? false })
                else {
                    summary.skipped.append((node.displayName, "its W or R is not a float constant"))
                    continue
                }
                // No Q/DQ on its inputs: the compiled op quantizes X and each step's hidden state on their own range.
                slots = []
            default:
                let all = activationOps[node.opType] ?? false
                slots = all ? node.inputs.indices.filter { !node.inputs[$0].isEmpty && !isConstant(node.inputs[$0]) } : [0]
            }
            if slots.allSatisfy({ node.inputs.indices.contains($0) && (options.dynamic || calibrated[node.inputs[$0]] != nil) }) {
                dataInputs[n] = slots
            } else {
                summary.skipped.append((node.displayName, "an input was not observed as a float tensor during calibration"))
            }
        }

        // A MatMul's bias Add (MatMul(x, W) + B, B a float [N] constant, the product read by the Add alone — how
        // exporters write a Linear layer on a 3-D input): one op with the MatMul, as Gemm's bias is. The product is
        // not quantized, the Add reads B quantized at s_x·s_w (step 4), and the lowering folds both into one QGemm.
        var biasAdds: [Int: Int] = [:]  // the Add → its MatMul
        for (n, node) in graph.nodes.enumerated() where node.opType == "MatMul" && node.domain.isEmpty && dataInputs[n] != nil {
            guard node.inputs.count == 2, let w = constants[node.inputs[1]], w.dims.count == 2, let out = node.outputs.first,
                  !index.isGraphOutput(out) else { continue }
            let uses = index.consumers(of: out)
            guard uses.count == 1, let use = uses.first, let slot = use.input, slot < 2 else { continue }
            let add = graph.nodes[use.node]
            guard add.opType == "Add", add.domain.isEmpty, add.inputs.count == 2, let b = constants[add.inputs[1 - slot]], isConstant(b.name),
                  b.dtype == .float, b.dims == [w.dims[1]] else { continue }
            biasAdds[use.node] = n
            dataInputs[use.node] = nil
        }

        // 2. Which tensors get a Q/DQ pair.
        var quantized = Set<String>()
        // A quantized op's output is quantized where a quantized op reads it; read only by float ops, it stays
        // float (a Conv or Gemm then writes float straight from its int32 sums: logits lose no last rounding).
        for (n, slots) in dataInputs {
            for s in slots { quantized.insert(graph.nodes[n].inputs[s]) }
        }
        /// The quantized Relu or Clip that alone reads `value` (as its input 0), if one does.
        func fusedActivation(reading value: String) -> Int? {
            let uses = index.consumers(of: value)
            guard uses.count == 1, let use = uses.first, use.input == 0, fusedActivations.contains(graph.nodes[use.node].opType),
                  dataInputs[use.node] != nil else { return nil }
            return use.node
        }
        for name in quantized {
            // The output of a producer read only by a fused activation is never materialized as integers.
            guard let (p, _) = index.producer(of: name), dataInputs[p] != nil || biasAdds[p] != nil,
                  ["Conv", "Gemm", "MatMul", "Add"].contains(graph.nodes[p].opType) else { continue }
            if !index.isGraphOutput(name), fusedActivation(reading: name) != nil { quantized.remove(name) }
        }
        quantized = quantized.filter { !isConstant($0) }
        // Only the ops with weights compute from integers into float (a Conv or Gemm writing float from its int32
        // sums); every other op gains from the integers only when its output stays quantized. A tensor that only
        // such ops read, all with float outputs (a Concat into a graph output, the Transpose/Reshape between two
        // recurrent layers, attention's score-plus-mask Add before its Softmax), keeps its float value — no rounding,
        // no Q/DQ pair — and so, in turn, may their inputs.
        func needsQuantizedOutput(_ node: Node) -> Bool { !weightOps.contains(node.opType) && !recurrentOps.contains(node.opType) }
        /// The outputs of node n as integers: its own, or (an Add into a fused Relu or Clip) the activation's.
        func results(_ n: Int) -> [String] {
            graph.nodes[n].outputs.flatMap { out in [out] + (fusedActivation(reading: out).map { graph.nodes[$0].outputs } ?? []) }
        }
        var pruned = true
        while pruned {
            pruned = false
            for name in quantized {
                let readers = index.consumers(of: name).filter { use in use.input.map { dataInputs[use.node]?.contains($0) == true } ?? false }
                guard !readers.isEmpty, readers.allSatisfy({ use in
                    needsQuantizedOutput(graph.nodes[use.node]) && !results(use.node).contains(where: quantized.contains)
                }) else { continue }
                quantized.remove(name)
                for use in readers where dataInputs[use.node]?.allSatisfy({ !quantized.contains(graph.nodes[use.node].inputs[$0]) }) == true {
                    dataInputs[use.node] = nil
                }
                pruned = true
            }
        }

        // A region whose output is quantized (its readers are) reads its input dequantized: the lowering makes the
        // chain one table. One whose output stays float stays float throughout.
        for region in regions where quantized.contains(region.output) && calibrated[region.input] != nil && !isConstant(region.input) {
            quantized.insert(region.input)
            for n in region.nodes {
                let slots = graph.nodes[n].inputs.indices.filter { graph.nodes[n].inputs[$0] == region.input }
                if !slots.isEmpty { dataInputs[n] = slots }
            }
        }

        // 3. Grids: tensors that data movement or a Concat connects form one class (union-find), and the class
        // takes the union of its members' calibrated ranges, so those ops run on the integers unchanged. (Copying
        // a range along each op instead makes a Split feeding a Concat, YOLO's C2f block, never settle.)
        var parent: [String: String] = [:]
        func root(_ v: String) -> String {
            var r = v
            while let p = parent[r], p != r { r = p }
            var c = v
            while let p = parent[c], p != r { parent[c] = r; c = p }
            return r
        }
        func join(_ a: String, _ b: String) {
            let (ra, rb) = (root(a), root(b))
            if ra != rb { parent[ra] = rb }
        }
        for (n, node) in graph.nodes.enumerated() where dataInputs[n] != nil {
            let nearest = node.opType == "Resize" && ["", "nearest"].contains(FusionSupport.string(node, "mode") ?? "")
            if sameGridOps.contains(node.opType) || nearest, let x = node.inputs.first, quantized.contains(x) {
                for y in node.outputs where !y.isEmpty && quantized.contains(y) { join(x, y) }
            } else if node.opType == "Concat", let out = node.outputs.first, quantized.contains(out) {
                // Only a Concat that runs on the integers needs one grid. One whose output stays float (a detector's
                // boxes and class scores joined into its output) keeps each input on its own range: the union of
                // ±60-pixel boxes and [0, 1] scores would quantize the scores in steps of 0.44.
                let members = (node.inputs + node.outputs).filter { quantized.contains($0) }
                for m in members.dropFirst() { join(members[0], m) }
            }
        }
        var classRanges: [String: TensorRange] = [:]
        for name in quantized {
            guard let r = calibrated[name] else { continue }
            let key = root(name)
            if let u = classRanges[key] {
                classRanges[key] = TensorRange(low: min(u.low, r.low), high: max(u.high, r.high))
            } else {
                classRanges[key] = r
            }
        }
        var ranges = calibrated
        for name in quantized { if let r = classRanges[root(name)] { ranges[name] = r } }
        var grids: [String: QuantizationParameters.Activation] = [:]
        for name in quantized {
            guard let r = ranges[name] else { continue }
            grids[name] = QuantizationParameters.activation(low: r.low, high: r.high)
        }

        // 4. The rewrite.
        var added: [Tensor] = []
        var newNodes: [Node] = []
        var pairs: [String: String] = [:]
        func pair(_ name: String) throws(QuantizationError) -> String? {
            if let dq = pairs[name] { return dq }
            let base = sanitized(name)
            if options.dynamic {
                let q = FusionSupport.freshName(base + "_quantized", &taken), scale = FusionSupport.freshName(base + "_scale", &taken)
                let zero = FusionSupport.freshName(base + "_zero_point", &taken), dq = FusionSupport.freshName(base + "_dequantized", &taken)
                newNodes.append(Node(name: base + "_DynamicQuantizeLinear", opType: "DynamicQuantizeLinear", inputs: [name], outputs: [q, scale, zero]))
                newNodes.append(Node(name: base + "_DequantizeLinear", opType: "DequantizeLinear", inputs: [q, scale, zero], outputs: [dq]))
                pairs[name] = dq
                summary.quantizedTensors += 1
                return dq
            }
            guard let grid = grids[name] else { return nil }
            let scale = FusionSupport.freshName(base + "_scale", &taken), zero = FusionSupport.freshName(base + "_zero_point", &taken)
            let q = FusionSupport.freshName(base + "_quantized", &taken), dq = FusionSupport.freshName(base + "_dequantized", &taken)
            added.append(try tensor(scale, .float, [], floats: [grid.scale]))
            added.append(try tensor(zero, .uint8, [], bytes: [grid.zeroPoint]))
            newNodes.append(Node(name: base + "_QuantizeLinear", opType: "QuantizeLinear", inputs: [name, scale, zero], outputs: [q]))
            newNodes.append(Node(name: base + "_DequantizeLinear", opType: "DequantizeLinear", inputs: [q, scale, zero], outputs: [dq]))
            pairs[name] = dq
            summary.quantizedTensors += 1
            return dq
        }
        var weightCache: [String: (dq: String, scales: [Float])] = [:]
        var recurrentCache: [String: String] = [:]
        /// Bias `values` (of constant b, read by node `owner`) as int32 at s_x·s_w per element, behind a DequantizeLinear
        /// along axis 0: the name of its output.
        func bias(_ b: Tensor, _ values: [Double], inputScale: Float, weightScales scales: [Float], of owner: String) throws(QuantizationError) -> String {
            let weightScales = scales.count == 1 ? [Float](repeating: scales[0], count: values.count) : scales
            let (q, biasScales, clamped) = QuantizationParameters.bias(values, inputScale: inputScale, weightScales: weightScales)
            summary.clampedBiases += clamped
            let base = sanitized(b.name) + "_" + sanitized(owner)
            let qName = FusionSupport.freshName(base + "_quantized", &taken), sName = FusionSupport.freshName(base + "_scale", &taken)
            let zName = FusionSupport.freshName(base + "_zero_point", &taken), dqName = FusionSupport.freshName(base + "_dequantized", &taken)
            added.append(try tensor(qName, .int32, b.dims, int32s: q))
            added.append(try tensor(sName, .float, b.dims, floats: biasScales))
            added.append(try tensor(zName, .int32, b.dims, int32s: [Int32](repeating: 0, count: q.count)))
            newNodes.append(Node(name: base + "_DequantizeLinear", opType: "DequantizeLinear", inputs: [qName, sName, zName], outputs: [dqName],
                                 attributes: [Attribute("axis", .int(0))]))
            return dqName
        }
        var tableCache: [String: String] = [:]
        var rewritten: [Node] = []
        for (n, original) in graph.nodes.enumerated() {
            var node = original
            // Static: every reader of a quantized tensor reads its dequantized value (one value per tensor, as ORT's
            // QDQ semantics and the integer kernels have it). Dynamic: only the quantized op's own inputs; the other
            // readers (a residual Add of a LayerNorm's output) keep the exact float, as ORT's dynamic quantizer does.
            for (i, input) in node.inputs.enumerated() where quantized.contains(input) && (!options.dynamic || dataInputs[n]?.contains(i) == true) {
                if let dq = try pair(input) { node.inputs[i] = dq }
            }
            // An embedding table (Gather of a float constant by computed indices): int8 symmetric per tensor, the
            // DequantizeLinear before the Gather, which the lowering moves after it (only the rows read get widened).
            if node.opType == "Gather", node.domain.isEmpty, node.inputs.count == 2, let w = constants[node.inputs[0]], isConstant(w.name),
               w.dtype == .float, w.data.elementCount >= minimumTableElements, !isConstant(node.inputs[1]),
               !options.excludedNodes.contains(node.name), !options.excludedOpTypes.contains("Gather") {
                if tableCache[w.name] == nil, let values = FusionSupport.doubles(w) {
                    let (q, scales) = QuantizationParameters.weights(values, channels: 1, channel: { _ in 0 })
                    let base = sanitized(w.name)
                    let qName = FusionSupport.freshName(base + "_quantized", &taken), sName = FusionSupport.freshName(base + "_scale", &taken)
                    let zName = FusionSupport.freshName(base + "_zero_point", &taken), dqName = FusionSupport.freshName(base + "_dequantized", &taken)
                    added.append(try tensor(qName, .int8, w.dims, bytes: q.map { UInt8(bitPattern: $0) }))
                    added.append(try tensor(sName, .float, [], floats: scales))
                    added.append(try tensor(zName, .int8, [], bytes: [0]))
                    newNodes.append(Node(name: base + "_DequantizeLinear", opType: "DequantizeLinear", inputs: [qName, sName, zName], outputs: [dqName]))
                    tableCache[w.name] = dqName
                    summary.quantizedWeights += 1
                }
                if let dq = tableCache[w.name] { node.inputs[0] = dq }
            }
            if dataInputs[n] != nil, recurrentOps.contains(node.opType) {
                for slot in [1, 2] {
                    guard let w = constants[original.inputs[slot]], let values = FusionSupport.doubles(w) else { continue }
                    if recurrentCache[w.name] == nil {
                        recurrentCache[w.name] = try recurrentWeight(w, values, perChannel: options.perChannel, &taken, &added, &newNodes)
                        summary.quantizedWeights += 1
                    }
                    if let dq = recurrentCache[w.name] { node.inputs[slot] = dq }
                }
            }
            if dataInputs[n] != nil, weightOps.contains(node.opType), node.inputs.count >= 2, let w = constants[node.inputs[1]], isConstant(w.name),
               options.dynamic || grids[original.inputs[0]] != nil {
                let inputScale = grids[original.inputs[0]]?.scale
                // Output channel axis of the weight: Conv [M, C/g, k…] axis 0; Gemm B [K, N] axis 1 or, transposed, [N, K] axis 0; MatMul [K, N] axis 1.
                let transB = node.opType == "Gemm" && (FusionSupport.int(node, "transB") ?? 0) != 0
                let axis = node.opType == "Conv" || transB ? 0 : w.dims.count - 1
                let alpha: Double = node.opType == "Gemm" ? FusionSupport.float(node, "alpha").map(Double.init) ?? 1 : 1
                let key = w.name + (alpha == 1 ? "" : "@\(alpha)")
                if weightCache[key] == nil, let values = FusionSupport.doubles(w), w.dims.count >= 2 || node.opType == "MatMul" {
                    let dims = w.dims.map { Int($0) }
                    let channels = dims.isEmpty ? 1 : dims[axis]
                    let inner = dims[(axis + 1)...].reduce(1, *)
                    let perChannel = options.perChannel && channels > 1
                    let scaled = alpha == 1 ? values : values.map { $0 * alpha }
                    let (q, scales) = QuantizationParameters.weights(scaled, channels: perChannel ? channels : 1,
                                                                     channel: { perChannel ? ($0 / inner) % channels : 0 })
                    let base = sanitized(w.name)
                    let qName = FusionSupport.freshName(base + "_quantized", &taken), sName = FusionSupport.freshName(base + "_scale", &taken)
                    let zName = FusionSupport.freshName(base + "_zero_point", &taken), dqName = FusionSupport.freshName(base + "_dequantized", &taken)
                    added.append(try tensor(qName, .int8, w.dims, bytes: q.map { UInt8(bitPattern: $0) }))
                    let parameterDims: [Int64] = perChannel ? [Int64(channels)] : []
                    added.append(try tensor(sName, .float, parameterDims, floats: scales))
                    added.append(try tensor(zName, .int8, parameterDims, bytes: [UInt8](repeating: 0, count: scales.count)))
                    var dq = Node(name: base + "_DequantizeLinear", opType: "DequantizeLinear", inputs: [qName, sName, zName], outputs: [dqName])
                    if perChannel { dq.attributes = [Attribute("axis", .int(Int64(axis)))] }
                    newNodes.append(dq)
                    weightCache[key] = (dqName, scales)
                    summary.quantizedWeights += 1
                }
                if let (dqName, scales) = weightCache[key] {
                    node.inputs[1] = dqName
                    if alpha != 1 { node = FusionSupport.setting("alpha", .float(1), on: node) }
                    // Bias: Conv input 2, Gemm C when it is one value per output column.
                    let beta: Double = node.opType == "Gemm" ? FusionSupport.float(node, "beta").map(Double.init) ?? 1 : 1
                    if node.opType != "MatMul", let inputScale, node.inputs.count > 2, let b = constants[node.inputs[2]], isConstant(b.name), b.dtype == .float,
                       b.data.elementCount == (scales.count == 1 ? b.data.elementCount : scales.count), b.dims.count == 1,
                       let values = FusionSupport.doubles(b) {
                        node.inputs[2] = try bias(b, beta == 1 ? values : values.map { $0 * beta }, inputScale: inputScale, weightScales: scales,
                                                  of: node.name.isEmpty ? "node\(n)" : node.name)
                        if beta != 1 { node = FusionSupport.setting("beta", .float(1), on: node) }
                    }
                }
            }
            if let m = biasAdds[n], !options.dynamic, let inputScale = grids[graph.nodes[m].inputs[0]]?.scale,
               let (_, scales) = weightCache[graph.nodes[m].inputs[1]], let slot = node.inputs.firstIndex(where: { constants[$0] != nil }),
               let b = constants[node.inputs[slot]], let values = FusionSupport.doubles(b) {
                node.inputs[slot] = try bias(b, values, inputScale: inputScale, weightScales: scales, of: node.name.isEmpty ? "node\(n)" : node.name)
            }
            if var slots = dataInputs[n] {
                summary.quantizedNodes[node.opType, default: 0] += 1
                // A recurrent op quantizes X itself; the report compares X as the op reads it in both models.
                if recurrentOps.contains(node.opType) { slots = [0] }
                if let output = node.outputs.first, !output.isEmpty {
                    summary.layers.append(QuantizedLayer(node: node.name.isEmpty ? output : node.name, opType: node.opType, output: output,
                                                         floatInputs: slots.map { original.inputs[$0] }, quantizedInputs: slots.map { node.inputs[$0] }))
                }
            }
            rewritten.append(node)
        }
        // Q/DQ of graph inputs and node outputs; nodes first so the sort below has the producers in place.
        graph.nodes = rewritten + newNodes
        graph.initializers += added
        // The float weights now quantized are read by nothing.
        var read = Set(graph.outputs.map(\.name)).union(graph.inputs.map(\.name))
        for node in graph.nodes { read.formUnion(node.inputs) }
        for node in graph.nodes where !node.subgraphs.isEmpty { for g in node.subgraphs { read.formUnion(g.capturedValues) } }
        graph.initializers.removeAll { !read.contains($0.name) }
        do throws(IRError) {
            graph = try TopologicalSort.sorted(graph)
            var result = model
            result.graph = graph
            try Verifier.verify(result)
            return (result, summary)
        } catch {
            throw .invalidGraph(error)
        }
    }

    /// A recurrent op's W or R ([D, G·H, K] float) as int8 with one scale per direction and gate row (or one for all
    /// with --per-tensor), behind a DequantizeLinear: standard ONNX that ORT folds back to float, and what
    /// QuantizedLowering turns into QLSTM/QGRU/QRNN. One direction dequantizes along axis 1; two store the rows
    /// as [D·G·H, K] (a per-axis scale is one-dimensional) and a Reshape restores [D, G·H, K]. Returns the name
    /// the op reads.
    static func recurrentWeight(_ w: Tensor, _ values: [Double], perChannel: Bool, _ taken: inout Set<String>, _ added: inout [Tensor],
                                _ nodes: inout [Node]) throws(QuantizationError) -> String {
        let dims = w.dims.map { Int($0) }
        let rows = dims[0] * dims[1], k = max(dims[2], 1)
        let perRow = perChannel && rows > 1
        let (q, scales) = QuantizationParameters.weights(values, channels: perRow ? rows : 1, channel: { perRow ? $0 / k : 0 })
        let base = sanitized(w.name)
        let qName = FusionSupport.freshName(base + "_quantized", &taken), sName = FusionSupport.freshName(base + "_scale", &taken)
        let zName = FusionSupport.freshName(base + "_zero_point", &taken), dqName = FusionSupport.freshName(base + "_dequantized", &taken)
        let split = perRow && dims[0] > 1
        added.append(try tensor(qName, .int8, split ? [Int64(rows), w.dims[2]] : w.dims, bytes: q.map { UInt8(bitPattern: $0) }))
        let parameterDims: [Int64] = perRow ? [Int64(scales.count)] : []
        added.append(try tensor(sName, .float, parameterDims, floats: scales))
        added.append(try tensor(zName, .int8, parameterDims, bytes: [UInt8](repeating: 0, count: scales.count)))
        var dq = Node(name: base + "_DequantizeLinear", opType: "DequantizeLinear", inputs: [qName, sName, zName], outputs: [dqName])
        if perRow { dq.attributes = [Attribute("axis", .int(split ? 0 : 1))] }
        nodes.append(dq)
        guard split else { return dqName }
        let shapeName = FusionSupport.freshName(base + "_shape", &taken), reshaped = FusionSupport.freshName(base + "_reshaped", &taken)
        added.append(try tensor(shapeName, .int64, [3], bytes: w.dims.flatMap { withUnsafeBytes(of: $0.littleEndian) { Array($0) } }))
        nodes.append(Node(name: base + "_Reshape", opType: "Reshape", inputs: [dqName, shapeName], outputs: [reshaped]))
        return reshaped
    }

    /// A value name usable as a prefix of new names (ONNX names are arbitrary strings; these stay readable).
    static func sanitized(_ name: String) -> String {
        String(name.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "/" || $0 == ":" ? $0 : "_" })
    }

    static func tensor(_ name: String, _ dtype: DType, _ dims: [Int64], bytes: [UInt8]) throws(QuantizationError) -> Tensor {
        do throws(TensorDataError) {
            return Tensor(name: name, data: try TensorData(dtype: dtype, dims: dims, payload: .bytes(ByteSlice(copying: bytes))))
        } catch {
            throw .tensor(name, error)
        }
    }

    static func tensor(_ name: String, _ dtype: DType, _ dims: [Int64], floats: [Float]) throws(QuantizationError) -> Tensor {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(floats.count * 4)
        for v in floats { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        return try tensor(name, dtype, dims, bytes: bytes)
    }

    static func tensor(_ name: String, _ dtype: DType, _ dims: [Int64], int32s: [Int32]) throws(QuantizationError) -> Tensor {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(int32s.count * 4)
        for v in int32s { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
        return try tensor(name, dtype, dims, bytes: bytes)
    }
}
