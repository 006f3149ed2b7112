import OnnxcCore
public import OnnxcIR

/// Removes Transposes by moving whole regions of layout-agnostic ops into the Transposes' input order, so that a
/// Transpose and its inverse meet and vanish — what ONNX Runtime's transpose optimizer does after its layout
/// transformation. After `convert-to-nhwc` every channels-last op sits between two Transposes; the element-wise
/// ops, Concat, Split, Slice, Pad, Resize, Softmax and reductions between two such ops then run channels last too.
///
/// Matches: a region grown from a Transpose of permutation P: the ops of the tables below reached from its output
/// whose data inputs are all in the region (values that would be stored permuted), outputs of other Transposes of
/// P, constants of no higher rank (broadcasting ops), or all-1 values. Its boundary: Transposes of P's inverse
/// (they cancel), and every other reader or graph output of a region value (it gets a Transpose(P) back).
/// Produces: each region op on the untransposed values — axis attributes, axes/pads/scales/sizes/roi constants and
/// broadcast constants permuted to match —, inverse Transposes read through, Transpose(P) where the region is
/// read from outside.
/// Preconditions: a region is converted only when the Transposes it removes (its sources and the inverse
/// Transposes it reads through) move more elements than those it adds at its exits (symbolic dims count as 1,
/// which compares tensors sharing a batch dimension correctly).
/// Numerics: unchanged (the same operations on the same values in another memory order).
/// Tested by: TransposePushingTests.
public struct TransposePushing: Pass {
    public let id = "push-transposes"
    public let summary = "run regions of layout-agnostic ops in their Transposes' input order, so inverse pairs cancel"

    public init() {}

    /// Ops with one data input and no axes (extra inputs, such as Clip's bounds, must be all-1).
    static let unary: Set<String> = [
        "Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu", "Celu", "Softplus", "Softsign",
        "Exp", "Log", "Abs", "Neg", "Sqrt", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Erf", "Sin", "Cos", "Not",
        "IsNaN", "Cast", "Identity", "Clip", "Mish", "ThresholdedRelu", "Shrink", "Gelu",
        RuntimeOps.domain + "::Silu", RuntimeOps.domain + "::Gelu",
        // Per-tensor (de)quantization: scalar scale and zero point (per-axis forms have non-1 extra inputs).
        "QuantizeLinear", "DequantizeLinear", RuntimeOps.domain + "::QLookup",  // QLookup's table is [256]: see admit
    ]

    /// Ops that broadcast all their inputs against each other.
    static let broadcasting: Set<String> = [
        "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Equal", "Greater", "Less", "GreaterOrEqual",
        "LessOrEqual", "And", "Or", "Xor", "Where", "PRelu", "Mod", "BitShift",
        // Inputs 0 and 3 broadcast; the scales and zero points are scalars.
        RuntimeOps.domain + "::QLinearAdd", RuntimeOps.domain + "::QLinearMul",
    ]

    static let reductions: Set<String> = [
        "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
        "ReduceLogSumExp", "ReduceSumSquare",
    ]

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        let types = LayoutSupport.tensorTypes(graph)
        let index = GraphIndex(graph)
        var taken = FusionSupport.takenNames(graph)
        var patch = GraphPatch()
        var touched = Set<Int>()
        for (t, seed) in graph.nodes.enumerated() where !touched.contains(t) {
            guard let perm = LayoutSupport.perm(seed), seed.inputs.first?.isEmpty == false, !seed.outputs[0].isEmpty,
                  let region = Region.grow(from: t, perm: perm, graph: graph, types: types, index: index, context: context),
                  region.benefit > 0, region.nodes.isDisjoint(with: touched) else { continue }
            region.apply(to: &patch, graph: graph, index: index, taken: &taken)
            touched.formUnion(region.nodes)
        }
        return patch.isEmpty ? nil : patch
    }

    /// A connected set of ops that can run on untransposed values, with what converting it costs.
    struct Region {
        let perm: [Int]
        /// Transposes of `perm` whose outputs the region reads (sources), and the region's ops, by node index.
        var sources: Set<Int> = []
        var ops: [Int: Node] = [:]
        /// Values of the region: stored permuted today, untransposed after the rewrite.
        var values: Set<String> = []
        /// Region values read from outside (or graph outputs): they get a Transpose(perm) back.
        var exits: Set<String> = []
        /// Inverse Transposes reading region values: read through.
        var cancelled: Set<Int> = []
        var constants: [(String, TensorData)] = []
        var benefit = 0.0

        var nodes: Set<Int> { sources.union(ops.keys).union(cancelled) }

        static func grow(from seed: Int, perm: [Int], graph: Graph, types: [String: TensorType], index: GraphIndex,
                         context: PassContext) -> Region? {
            var region = Region(perm: perm)
            let inverse = LayoutSupport.inverse(perm)
            var queue: [String] = []
            func addSource(_ t: Int) {
                guard region.sources.insert(t).inserted else { return }
                let output = graph.nodes[t].outputs[0]
                region.values.insert(output)
                region.benefit += LayoutSupport.approximateElements(types[output])
                queue.append(output)
            }
            addSource(seed)
            while let value = queue.popLast() {
                if index.isGraphOutput(value) { region.exits.insert(value) }
                for use in index.consumers(of: value) {
                    if region.ops[use.node] != nil || region.cancelled.contains(use.node) { continue }
                    let consumer = graph.nodes[use.node]
                    if use.input != nil, LayoutSupport.perm(consumer) == inverse {
                        // The pair cancels: this Transpose goes too.
                        if region.cancelled.insert(use.node).inserted {
                            region.benefit += LayoutSupport.approximateElements(types[consumer.outputs[0]])
                        }
                        continue
                    }
                    guard use.input != nil, let admitted = TransposePushing.admit(consumer, at: use.node, perm: perm, graph: graph, types: types,
                                                                                 index: index, context: context, values: region.values) else {
                        region.exits.insert(value)
                        continue
                    }
                    region.ops[use.node] = admitted.node
                    region.constants += admitted.constants
                    for t in admitted.sources { addSource(t) }
                    for output in consumer.outputs where !output.isEmpty {
                        region.values.insert(output)
                        queue.append(output)
                    }
                }
            }
            // A source whose output leaves the region stays; its Transpose is then not saved.
            for t in region.sources where region.exits.contains(graph.nodes[t].outputs[0]) {
                region.benefit -= LayoutSupport.approximateElements(types[graph.nodes[t].outputs[0]])
            }
            for value in region.exits where !region.sources.contains(where: { graph.nodes[$0].outputs[0] == value }) {
                region.benefit -= LayoutSupport.approximateElements(types[value])
            }
            return region.ops.isEmpty && region.cancelled.isEmpty ? nil : region
        }

        func apply(to patch: inout GraphPatch, graph: Graph, index: GraphIndex, taken: inout Set<String>) {
            // Each region value's untransposed name: a source's input, or a fresh name for an op's output.
            var untransposed: [String: String] = [:]
            for t in sources { untransposed[graph.nodes[t].outputs[0]] = graph.nodes[t].inputs[0] }
            for (_, node) in ops {
                for output in node.outputs where !output.isEmpty { untransposed[output] = FusionSupport.freshName(output + "_t", &taken) }
            }
            var constantNames: [String: String] = [:]
            for (placeholder, data) in constants {
                let fresh = FusionSupport.freshName(placeholder, &taken)
                constantNames[placeholder] = fresh
                patch.addedInitializers.append(Tensor(name: fresh, data: data))
            }
            for (n, node) in ops {
                var rewritten = node
                rewritten.inputs = node.inputs.map { untransposed[$0] ?? constantNames[$0] ?? $0 }
                rewritten.outputs = node.outputs.map { $0.isEmpty ? $0 : untransposed[$0] ?? $0 }
                var replacement = [rewritten]
                for output in node.outputs where exits.contains(output) {
                    replacement.append(LayoutSupport.transpose(untransposed[output] ?? output, to: output, perm: perm.map(Int64.init),
                                                               name: "\(node.name)_to_\(output)"))
                }
                patch.replace(n, with: replacement)
            }
            for t in sources where !exits.contains(graph.nodes[t].outputs[0]) { patch.remove(t) }
            for c in cancelled {
                let node = graph.nodes[c]
                guard let source = untransposed[node.inputs[0]] else { continue }
                if index.isGraphOutput(node.outputs[0]) {
                    patch.replace(c, with: [Node(name: node.name, opType: "Identity", inputs: [source], outputs: node.outputs)])
                } else {
                    patch.remove(c)
                    patch.redirects[node.outputs[0]] = source
                }
            }
        }
    }

    /// The Transpose producing `name`, its input and permutation.
    static func transposeProducer(_ name: String, _ graph: Graph, _ index: GraphIndex) -> (node: Int, input: String, perm: [Int])? {
        guard let (t, _) = index.producer(of: name) else { return nil }
        let node = graph.nodes[t]
        guard let perm = LayoutSupport.perm(node), let input = node.inputs.first, !input.isEmpty else { return nil }
        return (t, input, perm)
    }

    /// `node` rewritten to run on untransposed values, when it can join the region: every data input is a region
    /// value, the output of another Transpose of `perm` (which joins as a source), a broadcast constant or all-1;
    /// its axis-dependent attributes and inputs can be remapped. Returns it with the constants it needs (under
    /// placeholder names) and the Transposes that join as sources; nil when it cannot join (it reads the region from
    /// outside).
    static func admit(_ node: Node, at n: Int, perm: [Int], graph: Graph, types: [String: TensorType], index: GraphIndex, context: PassContext,
                      values: Set<String>) -> (node: Node, constants: [(String, TensorData)], sources: [Int])? {
        let op = node.qualifiedOpType
        let opset = context.opset(for: node.domain)
        let dataSlots: [Int]
        switch op {
        case _ where unary.contains(op): dataSlots = [0]
        case _ where broadcasting.contains(op), "Concat": dataSlots = Array(node.inputs.indices)
        case "Split", "Slice", "Pad", "Resize", "Softmax", "LogSoftmax", "Hardmax": dataSlots = [0]
        case _ where reductions.contains(op): dataSlots = [0]
        default: return nil
        }
        let rank = perm.count
        // Per-axis (de)quantization names an axis through its scale's shape: only the per-tensor form moves.
        if op == "QuantizeLinear" || op == "DequantizeLinear" {
            guard node.inputs.count > 1, LayoutSupport.isScalarLike(types[node.inputs[1]], rank: rank) else { return nil }
        }
        let inverse = LayoutSupport.inverse(perm)
        var rewritten = node
        var constants: [(String, TensorData)] = []
        var newSources: [Int] = []
        for slot in node.inputs.indices where !node.inputs[slot].isEmpty {
            let name = node.inputs[slot]
            let isData = dataSlots.contains(slot)
            if !isData {
                continue  // control inputs (bounds, axes, pads, scales, split sizes): remapped below where they name axes
            }
            if values.contains(name) {
                continue
            } else if let producer = transposeProducer(name, graph, index), producer.perm == perm {
                newSources.append(producer.node)
            } else if LayoutSupport.isScalarLike(types[name], rank: rank) {
                continue  // all-1 values broadcast the same way in any order
            } else if broadcasting.contains(op), let constant = FusionSupport.constant(name, in: graph),
                      let data = LayoutSupport.permuted(constant.data, rank: rank, perm: inverse) {
                let placeholder = "\(name)_perm_n\(n)"
                rewritten.inputs[slot] = placeholder
                constants.append((placeholder, data))
            } else {
                return nil
            }
        }
        guard remap(&rewritten, op: op, opset: opset, perm: perm, graph: graph, tag: "_n\(n)", constants: &constants) else { return nil }
        return (rewritten, constants, newSources)
    }

    /// Adapts axis attributes and axis-indexed constant inputs to the untransposed input: the op's axis a (of
    /// the transposed tensor) is axis perm[a] of its input. False when the op cannot be pushed (an attribute or
    /// input that is not constant, keepdims = 0, a pre-13 Softmax).
    static func remap(_ node: inout Node, op: String, opset: Int64, perm: [Int], graph: Graph, tag: String,
                      constants: inout [(String, TensorData)]) -> Bool {
        let rank = perm.count
        func axis(_ a: Int64) -> Int64? {
            let normalized = a < 0 ? a + Int64(rank) : a
            guard normalized >= 0, normalized < Int64(rank) else { return nil }
            return Int64(perm[Int(normalized)])
        }
        func setAxis(default fallback: Int64?) -> Bool {
            guard let a = FusionSupport.int(node, "axis") ?? fallback, let mapped = axis(a) else { return false }
            node = FusionSupport.setting("axis", .int(mapped), on: node)
            return true
        }
        /// A constant integer input, or nil.
        func ints(_ slot: Int) -> [Int64]? {
            guard slot < node.inputs.count, !node.inputs[slot].isEmpty,
                  let tensor = FusionSupport.constant(node.inputs[slot], in: graph) else { return nil }
            return tensor.data.integers()
        }
        /// Replaces input `slot` with a new int64 constant.
        func setInts(_ slot: Int, _ values: [Int64], placeholder: String) {
            guard let data = try? TensorData(int64s: values, dims: [Int64(values.count)]) else { return }
            while node.inputs.count <= slot { node.inputs.append("") }
            node.inputs[slot] = placeholder + tag
            constants.append((placeholder + tag, data))
        }
        /// Values per axis of the transposed tensor, reordered for the input (`width` values per axis, axis-major
        /// blocks: pads and roi are [begins…, ends…]).
        func perAxis<T>(_ values: [T], blocks: Int) -> [T]? {
            guard values.count == blocks * rank else { return nil }
            var out = values
            for b in 0..<blocks {
                for i in 0..<rank { out[b * rank + perm[i]] = values[b * rank + i] }
            }
            return out
        }
        switch op {
        case _ where unary.contains(op), _ where broadcasting.contains(op):
            return true
        case "Concat":
            return setAxis(default: nil)
        case "Split":
            return setAxis(default: 0)
        case "Softmax", "LogSoftmax", "Hardmax":
            return opset >= 13 && setAxis(default: -1)
        case _ where reductions.contains(op):
            guard FusionSupport.int(node, "keepdims") ?? 1 == 1 else { return false }
            if let axes = FusionSupport.ints(node, "axes") {
                let mapped = axes.compactMap(axis)
                guard mapped.count == axes.count else { return false }
                node = FusionSupport.setting("axes", .ints(mapped), on: node)
                return true
            }
            if node.inputs.count > 1, !node.inputs[1].isEmpty {
                guard let axes = ints(1) else { return false }
                let mapped = axes.compactMap(axis)
                guard mapped.count == axes.count else { return false }
                setInts(1, mapped, placeholder: node.inputs[1] + "_axes")
            }
            return true  // no axes: every axis, in any order
        case "Slice":
            guard opset >= 10, node.inputs.count >= 3, let starts = ints(1) else { return false }
            let axes: [Int64]
            if node.inputs.count > 3, !node.inputs[3].isEmpty {
                guard let given = ints(3) else { return false }
                axes = given
            } else {
                axes = (0..<Int64(starts.count)).map { $0 }
            }
            let mapped = axes.compactMap(axis)
            guard mapped.count == axes.count else { return false }
            setInts(3, mapped, placeholder: node.inputs[1] + "_axes")
            return true
        case "Pad":
            guard opset >= 11, node.inputs.count >= 2 else { return false }
            if node.inputs.count > 3, !node.inputs[3].isEmpty {
                guard let axes = ints(3) else { return false }
                let mapped = axes.compactMap(axis)
                guard mapped.count == axes.count else { return false }
                setInts(3, mapped, placeholder: node.inputs[3] + "_axes")
                return true
            }
            guard let pads = ints(1), let permuted = perAxis(pads, blocks: 2) else { return false }
            setInts(1, permuted, placeholder: node.inputs[1] + "_pads")
            return true
        case "Resize":
            if let axes = FusionSupport.ints(node, "axes") {
                let mapped = axes.compactMap(axis)
                guard mapped.count == axes.count else { return false }
                node = FusionSupport.setting("axes", .ints(mapped), on: node)
                return true
            }
            guard opset >= 11 else { return false }
            // roi [starts…, ends…], scales and sizes per axis; absent inputs stay absent.
            for (slot, blocks) in [(1, 2), (2, 1), (3, 1)] where slot < node.inputs.count && !node.inputs[slot].isEmpty {
                guard let tensor = FusionSupport.constant(node.inputs[slot], in: graph) else { return false }
                if tensor.data.elementCount == 0 { continue }
                guard let reordered = permutedVector(tensor.data, blocks: blocks, rank: rank, perAxis: { perAxis($0, blocks: blocks) }) else { return false }
                let placeholder = node.inputs[slot] + "_perm" + tag
                node.inputs[slot] = placeholder
                constants.append((placeholder, reordered))
            }
            return true
        default:
            return false
        }
    }

    /// A 1-D float or int64 constant with `blocks · rank` entries reordered per axis.
    private static func permutedVector(_ data: TensorData, blocks: Int, rank: Int, perAxis: ([Double]) -> [Double]?) -> TensorData? {
        guard data.dims.count == 1, data.elementCount == blocks * rank else { return nil }
        if data.dtype == .int64, let values = data.integers() {
            guard let reordered = perAxis(values.map(Double.init)) else { return nil }
            return try? TensorData(int64s: reordered.map { Int64($0) }, dims: data.dims)
        }
        guard data.dtype == .float, let bytes = data.bytes else { return nil }
        let values: [Double] = bytes.withUnsafeBytes { raw in
            (0..<data.elementCount).map { Double(Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)))) }
        }
        guard let reordered = perAxis(values) else { return nil }
        var out: [UInt8] = []
        for v in reordered { withUnsafeBytes(of: Float(v).bitPattern.littleEndian) { out.append(contentsOf: $0) } }
        return try? TensorData(dtype: .float, dims: data.dims, payload: .bytes(ByteSlice(copying: out)))
    }
}
