import OnnxcCore
public import OnnxcIR

/// Fuses scaled dot-product attention, MatMul → scale → + mask → Softmax → MatMul, into one `ai.onnxc::Attention`.
///
/// Matches: S = MatMul(Q, Kt); optionally S·c or c·S (Mul) or S/c (Div); optionally Add(·, mask) in either
/// order; P = Softmax over the last axis; Y = MatMul(P, V). The scale may also sit on the MatMul's operands
/// — Q·c, c·Q or Q/c, and likewise on Kt, each folded only when that product feeds nothing but the MatMul
/// (torch's scaled_dot_product_attention export scales both by √c) — and every scale found multiplies into one.
/// Produces: `ai.onnxc::Attention(Q, Kt, V[, mask], scale)` writing Y's name, so graph outputs keep their names.
/// Preconditions: the runtime target (`PassContext.allowsRuntimeOps`; `onnxc optimize` output stays standard
/// ONNX); S, the scaled and masked scores and P each have exactly one consumer and are not graph outputs; Q, Kt
/// and V have known rank ≥ 2 (MatMul's 1-D promotion has no Attention form); Softmax normalizes the last axis —
/// from opset 13 its `axis` is -1 or rank-1 of a known rank, before 13 only `axis` = rank-1, where the 2-D
/// coercion is the same thing; every scale is a finite, non-zero single-element floating constant that cannot
/// raise its operand's rank. The mask may be any value broadcastable against the scores. Numerics: the same
/// products and softmax in one kernel (see AttentionKernels); scales combine into one factor, so a Div by c
/// becomes a multiplication by 1/c and scales on Q and Kt are applied to the scores: equal within float rounding.
/// Tested by: AttentionFusionTests.
public struct AttentionFusion: Pass {
    public let id = "fuse-attention"
    public let summary = "fuse MatMul-scale-mask-Softmax-MatMul attention into ai.onnxc::Attention (runtime target)"

    /// Softmax normalizes along one axis (rather than a 2-D coercion) from opset 13.
    static let softmaxAxisOpset: Int64 = 13

    public init() {}

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        guard context.allowsRuntimeOps else { return nil }
        let matcher = AttentionMatcher(pattern: PatternGraph(graph), opset: context.opset(for: defaultDomain))
        return matcher.pattern.fuse(anchoredAt: ["Softmax"]) { matcher.match(fromSoftmax: $0) }
    }
}

private struct AttentionMatcher {
    static let floatTypes: Set<DType> = [.float, .double, .float16, .bfloat16]

    /// One scale node: the operand it scales, the factor it contributes (1/c for a Div) and the constant's rank.
    struct Scale {
        var operand: String
        var factor: Double
        var constantRank: Int
    }

    let pattern: PatternGraph
    let opset: Int64
    var graph: Graph { pattern.graph }
    var index: GraphIndex { pattern.index }

    func node(_ n: Int) -> Node { pattern.node(n) }

    func output(_ n: Int) -> String { node(n).outputs.first ?? "" }

    func rank(_ name: String) -> Int? { graph.declaredType(of: name)?.tensorType?.shape?.rank }

    /// The node's two inputs when it is the binary default-domain `op` with one output.
    func binary(_ n: Int, _ op: String) -> (String, String)? {
        let candidate = node(n)
        guard pattern.isOp(n, op), candidate.inputs.count == 2, !output(n).isEmpty else { return nil }
        return (candidate.inputs[0], candidate.inputs[1])
    }

    /// The node producing `value` when `reader` is its only reader and it is not a graph output.
    func soleProducer(of value: String, readBy reader: Int) -> Int? {
        guard let producer = index.producer(of: value)?.node, pattern.soleConsumer(of: value)?.node == reader else { return nil }
        return producer
    }

    /// A finite, non-zero, single-element floating constant: its value and rank.
    func constant(_ name: String) -> (value: Double, rank: Int)? {
        guard let data = pattern.constants[name], data.elementCount == 1, AttentionMatcher.floatTypes.contains(data.dtype),
              let value = data.numericValue(at: 0), value.isFinite, value != 0 else { return nil }
        return (value, data.dims.count)
    }

    /// Node `n` read as `x · c`, `c · x` or `x / c` (every reading, for Mul of two constants).
    func scales(_ n: Int) -> [Scale] {
        var found: [Scale] = []
        if let (a, b) = binary(n, "Mul"), a != b {
            if let c = constant(b) { found.append(Scale(operand: a, factor: c.value, constantRank: c.rank)) }
            if let c = constant(a) { found.append(Scale(operand: b, factor: c.value, constantRank: c.rank)) }
        }
        if let (a, b) = binary(n, "Div"), a != b, let c = constant(b) {
            found.append(Scale(operand: a, factor: 1 / c.value, constantRank: c.rank))
        }
        return found
    }

    /// A MatMul operand with its scale folded in when it is a scaled value read only by that MatMul and the
    /// constant does not raise the operand's rank.
    func unscaled(_ operand: String, matmul: Int) -> (value: String, factor: Double, node: Int?) {
        if let producer = soleProducer(of: operand, readBy: matmul),
           let scale = scales(producer).first(where: { s in rank(s.operand).map { s.constantRank <= $0 } ?? false }) {
            return (scale.operand, scale.factor, producer)
        }
        return (operand, 1, nil)
    }

    /// The scores: `value` is S, or S·c, c·S, S/c, with S = MatMul(Q, Kt), read only along the chain to `reader`.
    func scores(_ value: String, readBy reader: Int) -> (matmul: Int, nodes: [Int], scale: Scale?)? {
        guard let producer = soleProducer(of: value, readBy: reader) else { return nil }
        if pattern.isOp(producer, "MatMul") { return (producer, [producer], nil) }
        for scale in scales(producer) {
            guard let matmul = soleProducer(of: scale.operand, readBy: producer), pattern.isOp(matmul, "MatMul") else { continue }
            return (matmul, [matmul, producer], scale)
        }
        return nil
    }

    /// Whether Softmax node `n` normalizes the last axis of its rank-`rank` input (nil: unknown rank).
    func normalizesLastAxis(_ n: Int, rank: Int?) -> Bool {
        // Before opset 13 the input is coerced to 2-D at `axis`; at the last axis that is the same normalization.
        let axis = FusionSupport.int(node(n), "axis") ?? (opset >= AttentionFusion.softmaxAxisOpset ? -1 : 1)
        if axis == -1 { return true }
        guard let rank else { return false }
        return (axis < 0 ? axis + Int64(rank) : axis) == Int64(rank - 1)
    }

    func match(fromSoftmax softmaxNode: Int) -> FusionMatch? {
        let softmax = node(softmaxNode)
        guard softmax.inputs.count == 1, let x = softmax.inputs.first, !x.isEmpty, !output(softmaxNode).isEmpty,
              let (outputMatMul, slot) = pattern.soleConsumer(of: output(softmaxNode)), slot == 0,
              let (_, v) = binary(outputMatMul, "MatMul"), let rankV = rank(v), rankV >= 2 else { return nil }

        // x = (scaled) scores + mask in either order, or the (scaled) scores themselves.
        var chain = scores(x, readBy: softmaxNode)
        var mask: String?
        if chain == nil, let addNode = soleProducer(of: x, readBy: softmaxNode), let (a, b) = binary(addNode, "Add"), a != b {
            for (candidate, other) in [(a, b), (b, a)] {
                guard let found = scores(candidate, readBy: addNode) else { continue }
                chain = (found.matmul, found.nodes + [addNode], found.scale)
                mask = other
                break
            }
        }
        guard let chain, let (q0, kt0) = binary(chain.matmul, "MatMul") else { return nil }

        // Scales on Q and Kt; the kernel needs Q, Kt (and V) of rank ≥ 2, and the scores' scale must not raise
        // the scores' rank, max(rank Q, rank Kt).
        let q = unscaled(q0, matmul: chain.matmul), kt = unscaled(kt0, matmul: chain.matmul)
        guard let rankQ = rank(q.value), let rankKt = rank(kt.value), rankQ >= 2, rankKt >= 2 else { return nil }
        let scoresRank = max(rankQ, rankKt)
        if let scale = chain.scale, scale.constantRank > scoresRank { return nil }
        let softmaxRank: Int? = if let mask { rank(mask).map { max($0, scoresRank) } } else { scoresRank }
        guard normalizesLastAxis(softmaxNode, rank: softmaxRank) else { return nil }

        let scale = (chain.scale?.factor ?? 1) * q.factor * kt.factor
        guard Float(scale).isFinite, Float(scale) != 0 else { return nil }
        var inputs = [q.value, kt.value, v]
        if let mask { inputs.append(mask) }
        let attributes = scale == 1 ? [] : [Attribute("scale", .float(Float(scale)))]
        let fused = Node(name: softmax.name.isEmpty ? "" : softmax.name + "/Attention", opType: "Attention",
                         domain: RuntimeOps.domain, inputs: inputs, outputs: [output(outputMatMul)], attributes: attributes)
        let nodes = [q.node, kt.node].compactMap { $0 } + chain.nodes + [softmaxNode, outputMatMul]
        return FusionMatch(nodes: nodes, last: outputMatMul, fused: fused)
    }
}
