import OnnxcCore
public import OnnxcIR

/// Moves Transposes below the ops that do not care about the order of axes, so that a Transpose meets its
/// inverse and `fuse-transposes` removes both — what ONNX Runtime's transpose optimizer does after its layout
/// transformation. After `convert-to-nhwc` every channels-last op sits between two Transposes; pushing the
/// Transpose after one op through the element-wise ops, Concat, Split, Slice, Pad, Resize, Softmax and
/// reductions that follow cancels it against the Transpose before the next one.
///
/// Matches: an op of the tables below whose data inputs are Transposes of one permutation P (and, for
/// broadcasting ops, constants of no higher rank, or values of all-1 shape).
/// Produces: the op on the Transposes' inputs — axis attributes, axes/pads/scales/sizes/roi constants and
/// broadcast constants permuted to match — followed by Transpose(P) on each output.
/// Preconditions: a push never adds Transposes: the Transposes it removes (those read by this op only) are at
/// least as many as it creates, counting an output read only by Transposes of P's inverse as free (they cancel).
/// Numerics: unchanged (the same operations on the same values in another memory order).
/// Tested by: TransposePushingTests.
public struct TransposePushing: Pass {
    public let id = "push-transposes"
    public let summary = "move Transposes below layout-agnostic ops so that inverse pairs meet and cancel"

    public init() {}

    /// Ops with one data input and no axes (extra inputs, such as Clip's bounds, must be all-1).
    static let unary: Set<String> = [
        "Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu", "Celu", "Softplus", "Softsign",
        "Exp", "Log", "Abs", "Neg", "Sqrt", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Erf", "Sin", "Cos", "Not",
        "IsNaN", "Cast", "Identity", "Clip", "Mish", "ThresholdedRelu", "Shrink", "Gelu",
        RuntimeOps.domain + "::Silu", RuntimeOps.domain + "::Gelu",
    ]

    /// Ops that broadcast all their inputs against each other.
    static let broadcasting: Set<String> = [
        "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Equal", "Greater", "Less", "GreaterOrEqual",
        "LessOrEqual", "And", "Or", "Xor", "Where", "PRelu", "Mod", "BitShift",
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
        for (n, node) in graph.nodes.enumerated() where !touched.contains(n) {
            guard let plan = Self.plan(node, at: n, graph: graph, types: types, index: index, context: context),
                  !plan.removable.contains(where: touched.contains) else { continue }
            var pushed = plan.node
            for (name, data) in plan.constants {
                let fresh = FusionSupport.freshName(name, &taken)
                patch.addedInitializers.append(Tensor(name: fresh, data: data))
                pushed.inputs = pushed.inputs.map { $0 == name ? fresh : $0 }
            }
            var after: [Node] = []
            for (i, output) in node.outputs.enumerated() where !output.isEmpty {
                let inner = FusionSupport.freshName(output + "_t", &taken)
                pushed.outputs[i] = inner
                after.append(LayoutSupport.transpose(inner, to: output, perm: plan.perm.map(Int64.init), name: "\(node.name)_pushed_\(i)"))
            }
            patch.replace(n, with: [pushed] + after)
            touched.insert(n)
            for t in plan.removable {
                patch.remove(t)
                touched.insert(t)
            }
        }
        return patch.isEmpty ? nil : patch
    }

    /// A push: the op rewritten to read the Transposes' inputs (constant inputs under placeholder names, replaced by
    /// fresh initializers), the permutation, and the Transposes that become dead.
    struct Plan {
        var node: Node
        var perm: [Int]
        var constants: [(String, TensorData)]
        var removable: Set<Int>
    }

    static func plan(_ node: Node, at n: Int, graph: Graph, types: [String: TensorType], index: GraphIndex, context: PassContext) -> Plan? {
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
        // The permutation: the first data input that a Transpose produces.
        var perm: [Int]?
        for slot in dataSlots where slot < node.inputs.count && !node.inputs[slot].isEmpty {
            if let p = transposeProducer(node.inputs[slot], graph, index)?.perm { perm = p; break }
        }
        guard let perm else { return nil }
        let rank = perm.count
        let inverse = LayoutSupport.inverse(perm)
        var rewritten = node
        var constants: [(String, TensorData)] = []
        var producers = Set<Int>()
        for slot in node.inputs.indices where !node.inputs[slot].isEmpty {
            let name = node.inputs[slot]
            let isData = dataSlots.contains(slot)
            if let producer = transposeProducer(name, graph, index), producer.perm == perm, isData {
                rewritten.inputs[slot] = producer.input
                producers.insert(producer.node)
            } else if LayoutSupport.isScalarLike(types[name], rank: rank) || (!isData && !broadcasting.contains(op) && op != "Concat") {
                continue  // all-1 values broadcast the same way in any order; control inputs are handled per op below
            } else if isData, broadcasting.contains(op), let constant = FusionSupport.constant(name, in: graph),
                      let data = LayoutSupport.permuted(constant.data, rank: rank, perm: inverse) {
                constants.append((name, data))
            } else {
                return nil
            }
        }
        // Every data input now has rank ≤ `rank` (transposed inputs have exactly `rank`), so outputs have `rank` too.
        guard remap(&rewritten, op: op, opset: opset, perm: perm, graph: graph, constants: &constants) else { return nil }
        // Cost: Transposes that die against Transposes this push creates.
        let removable = producers.filter { t in
            let output = graph.nodes[t].outputs[0]
            return !index.isGraphOutput(output) && index.consumers(of: output).allSatisfy { $0.node == n && $0.input != nil }
        }
        var added = 0
        for output in node.outputs where !output.isEmpty {
            let consumers = index.consumers(of: output)
            let cancels = !index.isGraphOutput(output) && !consumers.isEmpty && consumers.allSatisfy { use in
                let consumer = graph.nodes[use.node]
                return LayoutSupport.perm(consumer) == inverse
            }
            if !cancels && (index.isGraphOutput(output) || !consumers.isEmpty) { added += 1 }
        }
        guard added <= removable.count else { return nil }
        return Plan(node: rewritten, perm: perm, constants: constants, removable: removable)
    }

    /// The Transpose producing `name`, its input and permutation.
    static func transposeProducer(_ name: String, _ graph: Graph, _ index: GraphIndex) -> (node: Int, input: String, perm: [Int])? {
        guard let (t, _) = index.producer(of: name) else { return nil }
        let node = graph.nodes[t]
        guard let perm = LayoutSupport.perm(node), let input = node.inputs.first, !input.isEmpty else { return nil }
        return (t, input, perm)
    }

    /// Adapts axis attributes and axis-indexed constant inputs to the untransposed input: the op's axis a (of
    /// the transposed tensor) is axis perm[a] of its input. False when the op cannot be pushed (an attribute or
    /// input that is not constant, keepdims = 0, a pre-13 Softmax).
    static func remap(_ node: inout Node, op: String, opset: Int64, perm: [Int], graph: Graph,
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
            node.inputs[slot] = placeholder
            constants.append((placeholder, data))
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
            setInts(3, mapped, placeholder: node.name + "_slice_axes")
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
                let placeholder = node.inputs[slot] + "_perm"
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
