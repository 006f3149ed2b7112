import OnnxcCore
public import OnnxcIR

/// Fuses the decomposed layer normalization that exporters emit into one LayerNormalization.
///
/// Matches: mean = ReduceMean(x) over the last k axes with keepdims, d = Sub(x, mean), Pow(d, 2) or Mul(d, d),
/// var = ReduceMean over the same axes, Add(var, ε), Sqrt, then Div(d, std) or Mul(d, Reciprocal(std)), then
/// Mul(·, γ) and, when present, Add(·, β) — Add and Mul operands in either order; ReduceMean axes as the
/// attribute (before opset 18) or as a constant input (from 18). Produces: LayerNormalization(x, γ[, β],
/// axis = -k, epsilon = ε) writing the last matched node's output, so graph outputs keep their names.
/// Below default-domain opset 17 (LayerNormalization's first version) the runtime target gets the same op as
/// `ai.onnxc::LayerNormalization`. Preconditions: default-domain opset ≥ 17 or the runtime target (otherwise the
/// pattern stays);
/// every intermediate has exactly one consumer (d exactly the squaring and the normalizing node) and is not a
/// graph output; x's normalized dims are static and γ, β are constants of exactly that shape (ONNX Runtime
/// does not broadcast them); ε and the exponent are constant single-element tensors that do not raise the rank.
/// Numerics: the same formula in one kernel; statistics are accumulated in float (stash_type 1), which for
/// float16 inputs is more accurate than the decomposed graph. Tested by: LayerNormFusionTests.
public struct LayerNormFusion: Pass {
    public let id = "fuse-layernorm"
    public let summary = "fuse decomposed layer normalization into LayerNormalization (opset >= 17; ai.onnxc below it for the runtime)"

    /// LayerNormalization entered the default domain in opset 17.
    static let firstOpset: Int64 = 17

    public init() {}

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        let standard = context.opset(for: defaultDomain) >= LayerNormFusion.firstOpset
        guard standard || context.allowsRuntimeOps else { return nil }
        let matcher = LayerNormMatcher(pattern: PatternGraph(graph))
        return matcher.pattern.fuse(anchoredAt: ["ReduceMean"]) { n in
            let found = matcher.match(from: n)
            return standard ? found : found?.inRuntimeDomain()
        }
    }
}

private struct LayerNormMatcher {
    /// LayerNormalization's T.
    static let floatTypes: Set<DType> = [.float, .float16, .double, .bfloat16]

    let pattern: PatternGraph
    var graph: Graph { pattern.graph }
    var index: GraphIndex { pattern.index }
    var constants: [String: TensorData] { pattern.constants }

    func node(_ n: Int) -> Node { pattern.node(n) }

    func isOp(_ n: Int, _ op: String) -> Bool { pattern.isOp(n, op) }

    func soleConsumer(of value: String) -> (node: Int, input: Int)? { pattern.soleConsumer(of: value) }

    /// The single-element constant `name` as a number, if it cannot raise a rank-`rank` operand's rank.
    func scalar(_ name: String, rank: Int) -> (value: Double, dtype: DType)? {
        guard let data = constants[name], data.elementCount == 1, data.dims.count <= rank,
              let value = data.numericValue(at: 0), value.isFinite else { return nil }
        return (value, data.dtype)
    }

    /// The reduced axes of a ReduceMean node as a count k when they are exactly the last k of a rank-`rank`
    /// input and keepdims is on; nil for any other reduction.
    func trailingAxes(_ n: Int, rank: Int) -> Int? {
        let reduce = node(n)
        if case .int(let keep)? = reduce.attribute("keepdims"), keep == 0 { return nil }
        var axes: [Int64]
        if reduce.inputs.count > 1, !reduce.inputs[1].isEmpty {
            guard let data = constants[reduce.inputs[1]], data.dims.count == 1 else { return nil }
            axes = []
            for i in 0..<data.elementCount {
                guard let value = data.numericValue(at: i) else { return nil }
                axes.append(Int64(value))
            }
        } else if case .ints(let values)? = reduce.attribute("axes") {
            axes = values
        } else {
            return nil
        }
        let normalized = axes.map { $0 < 0 ? Int($0) + rank : Int($0) }
        guard !normalized.isEmpty, normalized.allSatisfy({ $0 >= 0 && $0 < rank }) else { return nil }
        let k = normalized.count
        guard Set(normalized) == Set((rank - k)..<rank) else { return nil }
        return k
    }

    /// A constant usable as LayerNormalization's Scale or B: exactly the normalized dims, of x's element type.
    func affine(_ name: String, normalized: [Int64], dtype: DType) -> Bool {
        guard let data = constants[name] else { return false }
        return data.dims == normalized && data.dtype == dtype
    }

    func match(from meanNode: Int) -> FusionMatch? {
        let reduceMean = node(meanNode)
        guard let x = reduceMean.inputs.first, !x.isEmpty, let mean = reduceMean.outputs.first, !mean.isEmpty,
              let type = graph.declaredType(of: x)?.tensorType, let dims = type.shape?.dims, !dims.isEmpty,
              LayerNormMatcher.floatTypes.contains(type.elementType) else { return nil }
        let rank = dims.count
        guard let k = trailingAxes(meanNode, rank: rank) else { return nil }
        var normalized: [Int64] = []
        for dim in dims.suffix(k) {
            guard case .fixed(let size) = dim else { return nil }
            normalized.append(size)
        }

        // d = x - mean, read by exactly the squaring node and the normalizing node.
        guard let (subNode, subSlot) = soleConsumer(of: mean), isOp(subNode, "Sub"), subSlot == 1,
              node(subNode).inputs.first == x, let d = node(subNode).outputs.first, !d.isEmpty,
              !index.isGraphOutput(d) else { return nil }
        let dUses = index.consumers(of: d)
        guard dUses.allSatisfy({ $0.input != nil }) else { return nil }
        let readers = Set(dUses.map(\.node))
        guard readers.count == 2 else { return nil }
        var squareNode: Int?
        for r in readers.sorted() {
            let candidate = node(r)
            guard candidate.inputs.count == 2, canonicalDomain(candidate.domain).isEmpty else { continue }
            if candidate.opType == "Mul", candidate.inputs == [d, d] { squareNode = r }
            if candidate.opType == "Pow", candidate.inputs[0] == d, candidate.inputs[1] != d,
               scalar(candidate.inputs[1], rank: rank)?.value == 2 { squareNode = r }
        }
        guard let squareNode, let normalizeNode = readers.first(where: { $0 != squareNode }),
              dUses.count == (node(squareNode).opType == "Mul" ? 3 : 2) else { return nil }

        // var = ReduceMean(d²) over the same axes; std = Sqrt(var + ε).
        guard let square = node(squareNode).outputs.first, let (varNode, _) = soleConsumer(of: square),
              isOp(varNode, "ReduceMean"), node(varNode).inputs.first == square,
              trailingAxes(varNode, rank: rank) == k, let variance = node(varNode).outputs.first,
              let (epsNode, epsSlot) = soleConsumer(of: variance), isOp(epsNode, "Add"), node(epsNode).inputs.count == 2,
              let epsilon = scalar(node(epsNode).inputs[1 - epsSlot], rank: rank), epsilon.dtype == type.elementType,
              let shifted = node(epsNode).outputs.first, let (sqrtNode, _) = soleConsumer(of: shifted), isOp(sqrtNode, "Sqrt"),
              let std = node(sqrtNode).outputs.first, let (stdReader, stdSlot) = soleConsumer(of: std) else { return nil }

        // n = d / std, or d * Reciprocal(std).
        var nodes = [meanNode, subNode, squareNode, varNode, epsNode, sqrtNode]
        if isOp(stdReader, "Div") {
            guard stdReader == normalizeNode, stdSlot == 1, node(stdReader).inputs.first == d else { return nil }
        } else if isOp(stdReader, "Reciprocal") {
            guard let inverse = node(stdReader).outputs.first, let (mulNode, mulSlot) = soleConsumer(of: inverse),
                  mulNode == normalizeNode, isOp(mulNode, "Mul"), node(mulNode).inputs.count == 2,
                  node(mulNode).inputs[1 - mulSlot] == d else { return nil }
            nodes.append(stdReader)
        } else {
            return nil
        }
        nodes.append(normalizeNode)

        // y = n * γ (+ β).
        guard let normed = node(normalizeNode).outputs.first, let (scaleNode, scaleSlot) = soleConsumer(of: normed),
              isOp(scaleNode, "Mul"), node(scaleNode).inputs.count == 2 else { return nil }
        let gamma = node(scaleNode).inputs[1 - scaleSlot]
        guard affine(gamma, normalized: normalized, dtype: type.elementType),
              let scaled = node(scaleNode).outputs.first, !scaled.isEmpty else { return nil }
        nodes.append(scaleNode)
        var inputs = [x, gamma]
        var last = scaleNode
        if let (biasNode, biasSlot) = soleConsumer(of: scaled), isOp(biasNode, "Add"), node(biasNode).inputs.count == 2,
           affine(node(biasNode).inputs[1 - biasSlot], normalized: normalized, dtype: type.elementType),
           let biased = node(biasNode).outputs.first, !biased.isEmpty {
            inputs.append(node(biasNode).inputs[1 - biasSlot])
            nodes.append(biasNode)
            last = biasNode
        }
        guard let output = node(last).outputs.first, !output.isEmpty else { return nil }
        let fused = Node(name: reduceMean.name.isEmpty ? "" : reduceMean.name + "/LayerNormalization",
                         opType: "LayerNormalization", inputs: inputs, outputs: [output],
                         attributes: [Attribute("axis", .int(Int64(-k))), Attribute("epsilon", .float(Float(epsilon.value)))])
        return FusionMatch(nodes: nodes, last: last, fused: fused)
    }
}
