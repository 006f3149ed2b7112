import OnnxcCore
public import OnnxcIR

/// Fuses an activation (and, after MatMul, a bias Add) into the Conv, Gemm or MatMul before it, as the runtime
/// ops `ai.onnxc::FusedConv`, `FusedGemm` and `FusedMatMul` (see `FusedActivationKind`).
///
/// Matches: Conv → act, Conv → Add(residual) [→ act], Gemm → act, MatMul → act, MatMul → Add(bias) → act and
/// MatMul → Add(bias), where act
/// is Relu, Clip with constant bounds (inputs from opset 11, attributes before), Sigmoid, HardSigmoid,
/// HardSwish, LeakyRelu, Tanh, Gelu (opset ≥ 20), `ai.onnxc::Silu` or `ai.onnxc::Gelu`, and bias is a constant
/// with one value per column of the product: N elements of shape [N] or [1, …, 1, N], no larger in rank than
/// the product (Add operands in either order), and residual is a non-constant value of exactly the Conv output's
/// declared shape. Produces: the fused op with the base op's inputs (plus bias as FusedMatMul's third input, the
/// residual as FusedConv's fourth) and attributes, plus `activation` and `activation_params`, writing the last
/// matched node's output so graph outputs keep their names. Preconditions: the runtime target; every
/// intermediate has exactly one consumer and is not a graph output; the element type is floating (known from a
/// declared type or constant for Gemm and MatMul, which also take integers); Clip's bounds are single-element
/// floating constants that a Float holds exactly. Numerics: the fused kernels run the base op, then the
/// standalone kernels' formulas in place on its output: equal to the unfused sequence. Tested by:
/// ActivationFusionTests.
public struct ActivationFusion: Pass {
    public let id = "fuse-activation"
    public let summary = "fuse Conv/Gemm/MatMul with bias and activation into ai.onnxc fused ops (runtime target)"

    public init() {}

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        guard context.allowsRuntimeOps else { return nil }
        let matcher = ActivationMatcher(pattern: PatternGraph(graph), opset: context.opset(for: defaultDomain))
        return matcher.pattern.fuse(anchoredAt: ["Conv", "Gemm", "MatMul"]) { matcher.match(from: $0) }
    }
}

private struct ActivationMatcher {
    let pattern: PatternGraph
    let opset: Int64

    /// The bounds Clip takes as attributes before opset 11 (and the defaults the Clip kernel uses there).
    static let clipInputsOpset: Int64 = 11
    /// Gelu's first default-domain opset.
    static let geluOpset: Int64 = 20

    func match(from n: Int) -> FusionMatch? {
        let base = pattern.node(n)
        guard base.outputs.count == 1, base.inputs.count >= 2, !pattern.output(n).isEmpty,
              case let dtype = elementType(base), PatternGraph.floatTypes.contains(dtype) || (dtype == .undefined && base.opType == "Conv") else { return nil }
        var nodes = [n], last = n, inputs = base.inputs
        let product = pattern.output(n)
        if base.opType == "MatMul", let add = pattern.soleConsumer(of: product)?.node,
           let bias = pattern.operand(of: add, "Add", besides: { $0 == product }), bias != product, isColumnBias(bias, of: base, dtype: dtype) {
            nodes.append(add)
            last = add
            inputs = Array(inputs.prefix(2)) + [bias]
        }
        // Conv → Add(residual): the sum joins the epilogue as FusedConv's fourth input (ONNX Runtime's `Z`).
        if base.opType == "Conv", let add = pattern.soleConsumer(of: product)?.node,
           let residual = pattern.operand(of: add, "Add", besides: { $0 == product }), residual != product,
           pattern.constants[residual] == nil, sameShape(residual, product) {
            nodes.append(add)
            last = add
            inputs = [inputs[0], inputs[1], inputs.count > 2 ? inputs[2] : "", residual]
        }
        var attributes = base.attributes
        if let consumer = pattern.soleConsumer(of: pattern.output(last)), consumer.input == 0,
           let (kind, parameters) = activation(consumer.node, dtype: dtype) {
            nodes.append(consumer.node)
            last = consumer.node
            attributes.append(Attribute("activation", .string(Array(kind.rawValue.utf8))))
            if !parameters.isEmpty { attributes.append(Attribute("activation_params", .floats(parameters))) }
        }
        guard nodes.count > 1 else { return nil }
        let fused = Node(name: base.name, opType: "Fused" + base.opType, domain: RuntimeOps.domain, inputs: inputs,
                         outputs: [pattern.output(last)], attributes: attributes)
        return FusionMatch(nodes: nodes, last: last, fused: fused)
    }

    /// True when both values have the same declared shape, every dim static or the same named symbol: a residual
    /// that would broadcast is not a per-element sum the epilogue can add.
    func sameShape(_ a: String, _ b: String) -> Bool {
        guard let x = graph.declaredType(of: a)?.tensorType?.shape, let y = graph.declaredType(of: b)?.tensorType?.shape,
              x.rank == y.rank else { return false }
        return zip(x.dims, y.dims).allSatisfy { p, q in
            switch (p, q) {
            case (.fixed(let u), .fixed(let v)): u == v
            case (.symbolic(let u), .symbolic(let v)): u == v
            default: false
            }
        }
    }

    var graph: Graph { pattern.graph }

    /// The element type of the base op's operands: a declared type or constant of A or B (`.undefined` when none
    /// is known).
    func elementType(_ base: Node) -> DType {
        for name in base.inputs.prefix(2) {
            if let dtype = pattern.typeOf(name).dtype, dtype != .undefined { return dtype }
            if let data = pattern.constants[name] { return data.dtype }
        }
        return .undefined
    }

    /// True when `bias` is a constant of `dtype` with one value per column of the MatMul's product: N elements
    /// (N = B's last dim, B of rank ≥ 2), every dim 1 but the last, and no larger in rank than the product can be.
    func isColumnBias(_ bias: String, of matMul: Node, dtype: DType) -> Bool {
        guard let data = pattern.constants[bias], data.dtype == dtype, let bDims = dims(matMul.inputs[1]), bDims.count >= 2,
              let n = bDims.last, n > 0, data.elementCount == Int(n) else { return false }
        // The product has B's rank - 1 dims at least (A 1-D), max(rank A, rank B) when A's rank is known.
        var productRank = bDims.count - 1
        if let aRank = dims(matMul.inputs[0])?.count ?? pattern.typeOf(matMul.inputs[0]).rank {
            productRank = aRank == 1 ? bDims.count - 1 : max(aRank, bDims.count)
        }
        return data.dims.count <= productRank && data.dims.dropLast().allSatisfy { $0 == 1 } && (data.dims.last ?? n) == n
    }

    /// The static dims of a constant or of a value with a fully known declared shape.
    func dims(_ name: String) -> [Int64]? {
        if let data = pattern.constants[name] { return data.dims }
        guard let shape = pattern.graph.declaredType(of: name)?.tensorType?.shape else { return nil }
        let fixed = shape.dims.compactMap(\.fixedValue)
        return fixed.count == shape.rank ? fixed : nil
    }

    /// The node as a fused activation with its parameters, when it is one applied to its first input alone.
    func activation(_ n: Int, dtype: DType) -> (FusedActivationKind, [Float])? {
        let node = pattern.node(n)
        guard node.outputs.count == 1, !pattern.output(n).isEmpty else { return nil }
        let domain = canonicalDomain(node.domain)
        if domain == RuntimeOps.domain {
            guard node.inputs.count == 1 else { return nil }
            switch node.opType {
            case "Silu": return (.silu, [])
            case "Gelu": return gelu(node)
            default: return nil
            }
        }
        guard domain.isEmpty else { return nil }
        if node.opType == "Clip" { return clip(node, dtype: dtype) }
        guard node.inputs.count == 1 else { return nil }
        switch node.opType {
        case "Relu": return (.relu, [])
        case "Sigmoid": return (.sigmoid, [])
        case "HardSwish": return (.hardSwish, [])
        case "Tanh": return (.tanh, [])
        case "LeakyRelu": return (.leakyRelu, [float(node, "alpha", 0.01)])
        case "HardSigmoid": return (.hardSigmoid, [float(node, "alpha", 0.2), float(node, "beta", 0.5)])
        case "Gelu" where opset >= ActivationMatcher.geluOpset: return gelu(node)
        default: return nil
        }
    }

    func float(_ node: Node, _ name: String, _ fallback: Float) -> Float {
        if case .float(let value)? = node.attribute(name) { return value }
        return fallback
    }

    func gelu(_ node: Node) -> (FusedActivationKind, [Float])? {
        switch FusionSupport.string(node, "approximate") ?? "none" {
        case "none": (.gelu, [])
        case "tanh": (.geluTanh, [])
        default: nil
        }
    }

    /// Clip's bounds as Floats: attributes before opset 11 (defaults ∓FLT_MAX, as the kernel), inputs from 11
    /// (an omitted bound is open, ∓∞); a bound that is not a single-element constant of the operands' floating
    /// type held exactly by a Float leaves the Clip alone.
    func clip(_ node: Node, dtype: DType) -> (FusedActivationKind, [Float])? {
        if opset < ActivationMatcher.clipInputsOpset {
            guard node.inputs.count == 1 else { return nil }
            return (.clip, [float(node, "min", -.greatestFiniteMagnitude), float(node, "max", .greatestFiniteMagnitude)])
        }
        guard (1...3).contains(node.inputs.count) else { return nil }
        var bounds: [Float] = [-.infinity, .infinity]
        for i in 1..<node.inputs.count where !node.inputs[i].isEmpty {
            guard let data = pattern.constants[node.inputs[i]], data.elementCount == 1,
                  PatternGraph.floatTypes.contains(data.dtype), dtype == .undefined || data.dtype == dtype, let value = data.numericValue(at: 0),
                  Double(Float(value)) == value else { return nil }
            bounds[i - 1] = Float(value)
        }
        return (.clip, bounds)
    }
}
