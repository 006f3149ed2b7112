import OnnxcCore
public import OnnxcIR

/// Fuses the GELUs that exporters spell out — the exact x·0.5·(1 + Erf(x/√2)) and the tanh approximation
/// 0.5·x·(1 + Tanh(√(2/π)·(x + 0.044715·x³))) — into one Gelu.
///
/// Matches: the exact form: u = Div(x, √2) or Mul(x, 1/√2); e = Erf(u). The tanh form: x³ as Pow(x, 3) or
/// Mul(Mul(x, x), x); c = Mul(x³, 0.044715); s = Add(x, c); u = Mul(s, √(2/π)); e = Tanh(u). Both then
/// p = Add(e, 1) and the product of x, p and one half in the orderings exporters use — (x·p)·0.5 (PyTorch),
/// (0.5·x)·p and (x·0.5)·p (Hugging Face, TensorFlow), x·(p·0.5) — with Div(·, 2) accepted for ·0.5 and
/// Add/Mul operands in either order. Produces: Gelu(x) (approximate "none" or "tanh") writing the last matched
/// node's output, so graph outputs keep their names; below opset 20 for the runtime target, the same op as
/// `ai.onnxc::Gelu`. Preconditions: default-domain opset ≥ 20 (Gelu's first version) or the runtime target;
/// otherwise the pattern stays. Every intermediate has exactly one consumer and is not a graph output; the
/// constants are single-element, of a floating type (the exponent 3 may be an integer), equal to √2, 1/√2,
/// √(2/π), 0.044715, 3, 1, 0.5 or 2 within that type's rounding, and no larger in rank than x (so they do not
/// broadcast x up). Numerics: the same function in one kernel; equal within float rounding. Tested by:
/// GeluFusionTests.
public struct GeluFusion: Pass {
    public let id = "fuse-gelu"
    public let summary = "fuse Erf- and Tanh-based GELU into Gelu (opset >= 20; ai.onnxc::Gelu below it for the runtime)"

    /// Gelu entered the default domain in opset 20.
    static let firstOpset: Int64 = 20

    public init() {}

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        let standard = context.opset(for: defaultDomain) >= GeluFusion.firstOpset
        guard standard || context.allowsRuntimeOps else { return nil }
        let matcher = GeluMatcher(pattern: PatternGraph(graph))
        return matcher.pattern.fuse(anchoredAt: ["Erf", "Tanh"]) { n in
            let found = matcher.pattern.isOp(n, "Erf") ? matcher.match(fromErf: n) : matcher.match(fromTanh: n)
            return standard ? found : found?.inRuntimeDomain()
        }
    }
}

private struct GeluMatcher {
    /// √(2/π), the tanh approximation's scale.
    static let tanhScale = (2 / Double.pi).squareRoot()
    /// The tanh approximation's cubic coefficient.
    static let cubicCoefficient = 0.044715

    let pattern: PatternGraph
    var index: GraphIndex { pattern.index }

    func node(_ n: Int) -> Node { pattern.node(n) }
    func output(_ n: Int) -> String { pattern.output(n) }
    func binary(_ n: Int, _ op: String) -> (String, String)? { pattern.binary(n, op) }
    func producer(_ value: String) -> Int? { index.producer(of: value)?.node }

    /// The single node reading `value` through an input slot, when `value` is not a graph output either.
    func soleConsumer(of value: String) -> Int? { pattern.soleConsumer(of: value)?.node }

    /// x · ½ spelled Mul(x, 0.5) in either order or Div(x, 2): the operand that is not the constant.
    func halved(_ n: Int, rank: Int?, dtype: DType?) -> String? {
        if let a = pattern.operand(of: n, "Mul", besides: { pattern.isConstant($0, 0.5, rank: rank, dtype: dtype) }) { return a }
        if let (a, b) = binary(n, "Div"), pattern.isConstant(b, 2, rank: rank, dtype: dtype) { return a }
        return nil
    }

    /// x's rank and element type when x may be Gelu's input (nil: its declared type is not a float).
    func gelusInput(_ x: String) -> (rank: Int?, dtype: DType?)? {
        let type = pattern.typeOf(x)
        if let dtype = type.dtype, !PatternGraph.floatTypes.contains(dtype) { return nil }
        return type
    }

    func match(fromErf erfNode: Int) -> FusionMatch? {
        guard let u = node(erfNode).inputs.first, !u.isEmpty, let scaleNode = producer(u),
              soleConsumer(of: u) == erfNode else { return nil }
        // u = x / √2 or x · (1/√2); x's declared type (when known) fixes the rank and type the constants may have.
        let x: String
        if let (a, b) = binary(scaleNode, "Div"), a != b, isConstant(b, 2.0.squareRoot(), for: a) {
            x = a
        } else if let (a, b) = binary(scaleNode, "Mul"), a != b, isConstant(b, 0.5.squareRoot(), for: a) {
            x = a
        } else if let (a, b) = binary(scaleNode, "Mul"), a != b, isConstant(a, 0.5.squareRoot(), for: b) {
            x = b
        } else {
            return nil
        }
        return product(of: x, erfOrTanh: erfNode, leading: [scaleNode], approximate: "none")
    }

    func match(fromTanh tanhNode: Int) -> FusionMatch? {
        guard let u = node(tanhNode).inputs.first, !u.isEmpty, let scaleNode = producer(u),
              soleConsumer(of: u) == tanhNode, let (k0, k1) = binary(scaleNode, "Mul"), k0 != k1 else { return nil }
        // u = s · √(2/π) with s = x + 0.044715·x³, each in either order.
        for (s, scale) in [(k0, k1), (k1, k0)] {
            guard let addNode = producer(s), soleConsumer(of: s) == scaleNode, let (a0, a1) = binary(addNode, "Add") else { continue }
            for (x, c) in [(a0, a1), (a1, a0)] {
                guard let cubic = scaledCube(c, of: x), isConstant(cubic.coefficient, GeluMatcher.cubicCoefficient, for: x),
                      isConstant(scale, GeluMatcher.tanhScale, for: x) else { continue }
                return product(of: x, erfOrTanh: tanhNode, leading: cubic.nodes + [addNode, scaleNode], approximate: "tanh")
            }
        }
        return nil
    }

    /// A constant equal to `value` that, given x's declared rank and type, cannot change x's rank or type.
    func isConstant(_ name: String, _ value: Double, for x: String, integral: Bool = false) -> Bool {
        let type = pattern.typeOf(x)
        return pattern.isConstant(name, value, rank: type.rank, dtype: type.dtype, integral: integral)
    }

    /// c = Mul(x³, k) in either order, where x³ is Pow(x, 3) or Mul(Mul(x, x), x) in either order and every
    /// intermediate is read once: the nodes and the constant operand k.
    func scaledCube(_ c: String, of x: String) -> (nodes: [Int], coefficient: String)? {
        guard let mulNode = producer(c), let (m0, m1) = binary(mulNode, "Mul"), m0 != m1 else { return nil }
        for (cube, k) in [(m0, m1), (m1, m0)] {
            guard let cubeNodes = self.cube(cube, of: x), soleConsumer(of: cube) == mulNode else { continue }
            return (cubeNodes + [mulNode], k)
        }
        return nil
    }

    /// The nodes computing x³ into `value`: Pow(x, 3) or Mul(Mul(x, x), x) with the operands in either order.
    func cube(_ value: String, of x: String) -> [Int]? {
        guard let n = producer(value) else { return nil }
        if let (base, exponent) = binary(n, "Pow") {
            return base == x && isConstant(exponent, 3, for: x, integral: true) ? [n] : nil
        }
        guard let square = pattern.operand(of: n, "Mul", besides: { $0 == x }), let squareNode = producer(square),
              soleConsumer(of: square) == n, binary(squareNode, "Mul").map({ $0 == (x, x) }) == true else { return nil }
        return [squareNode, n]
    }

    /// From e = Erf(u) or Tanh(u): p = Add(e, 1), then x·p·½ in one of the orderings exporters use.
    func product(of x: String, erfOrTanh eNode: Int, leading: [Int], approximate: String) -> FusionMatch? {
        guard let (rank, dtype) = gelusInput(x) else { return nil }
        let e = output(eNode)
        guard let addNode = soleConsumer(of: e),
              pattern.operand(of: addNode, "Add", besides: { $0 != e && pattern.isConstant($0, 1, rank: rank, dtype: dtype) }) == e,
              let firstMul = soleConsumer(of: output(addNode)), let (m0, m1) = binary(firstMul, "Mul"), m0 != m1 else { return nil }
        let p = output(addNode)
        let other = m0 == p ? m1 : m0
        var nodes = leading + [eNode, addNode, firstMul]
        let last: Int
        if other == x {
            // (x · p) · ½
            guard let half = soleConsumer(of: output(firstMul)), halved(half, rank: rank, dtype: dtype) == output(firstMul) else { return nil }
            last = half
        } else if pattern.isConstant(other, 0.5, rank: rank, dtype: dtype) {
            // x · (p · ½)
            guard let outer = soleConsumer(of: output(firstMul)),
                  pattern.operand(of: outer, "Mul", besides: { $0 == x }) == output(firstMul) else { return nil }
            last = outer
        } else if let half = producer(other), soleConsumer(of: other) == firstMul, halved(half, rank: rank, dtype: dtype) == x {
            // (x · ½) · p
            nodes.append(half)
            last = firstMul
        } else {
            return nil
        }
        if last != firstMul { nodes.append(last) }
        let result = output(last)
        guard !result.isEmpty else { return nil }
        var attributes: [Attribute] = []
        if approximate != "none" { attributes.append(Attribute("approximate", .string(Array(approximate.utf8)))) }
        let fused = Node(name: node(eNode).name.isEmpty ? "" : node(eNode).name + "/Gelu", opType: "Gelu",
                         inputs: [x], outputs: [result], attributes: attributes)
        return FusionMatch(nodes: nodes, last: last, fused: fused)
    }
}
