import OnnxcCore
public import OnnxcIR

/// Fuses the spelled-out hard swish, x·HardSigmoid(x) or x·Clip(x + 3, 0, 6)/6, into one HardSwish.
///
/// Matches: h = HardSigmoid(x, alpha = 1/6, beta = 0.5) read only by Mul(x, h); or a = Add(x, 3), c = Clip(a, 0, 6),
/// then either Mul(x, c) followed by Div(·, 6) or Mul(·, 1/6), or Div(c, 6) / Mul(c, 1/6) followed by Mul(x, ·) —
/// Add and Mul operands in either order. Produces: HardSwish(x) writing the last matched node's output, so
/// graph outputs keep their names. Preconditions: default-domain opset ≥ 14 (HardSwish's first version);
/// every intermediate has exactly one consumer and is not a graph output; Clip's bounds are its inputs
/// (opset ≥ 11 form); the constants are single-element, floating, equal to 3, 0, 6 or 1/6 within their type's
/// rounding and no larger in rank than x. Numerics: x·max(0, min(1, x/6 + 0.5)) in one kernel: equal within
/// float rounding (x/6 + 0.5 rounds differently from (x + 3)/6). Tested by: HardSwishFusionTests.
public struct HardSwishFusion: Pass {
    public let id = "fuse-hardswish"
    public let summary = "fuse x*HardSigmoid(x) and x*Clip(x+3,0,6)/6 into HardSwish (opset >= 14)"

    /// HardSwish entered the default domain in opset 14.
    static let firstOpset: Int64 = 14

    public init() {}

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        guard context.opset(for: defaultDomain) >= HardSwishFusion.firstOpset else { return nil }
        let matcher = HardSwishMatcher(pattern: PatternGraph(graph))
        return matcher.pattern.fuse(anchoredAt: ["HardSigmoid", "Clip"]) { n in
            matcher.pattern.isOp(n, "Clip") ? matcher.match(fromClip: n) : matcher.match(fromHardSigmoid: n)
        }
    }
}

private struct HardSwishMatcher {
    let pattern: PatternGraph

    func producer(_ value: String) -> Int? { pattern.index.producer(of: value)?.node }
    func soleConsumer(of value: String) -> Int? { pattern.soleConsumer(of: value)?.node }

    func isConstant(_ name: String, _ value: Double, for x: String) -> Bool {
        let type = pattern.typeOf(x)
        return pattern.isConstant(name, value, rank: type.rank, dtype: type.dtype)
    }

    /// Whether x may be HardSwish's input: its declared type, when known, is floating.
    func isFloat(_ x: String) -> Bool { pattern.typeOf(x).dtype.map { PatternGraph.floatTypes.contains($0) } ?? true }

    func match(fromHardSigmoid n: Int) -> FusionMatch? {
        let node = pattern.node(n)
        guard node.inputs.count == 1, let x = node.inputs.first, !x.isEmpty, isFloat(x), node.outputs.count == 1,
              case .float(let alpha)? = node.attribute("alpha"), abs(Double(alpha) - 1.0 / 6) <= 1e-6 / 6 else { return nil }
        if let beta = node.attribute("beta") {
            guard case .float(let value) = beta, value == 0.5 else { return nil }
        }
        let h = pattern.output(n)
        guard let mul = soleConsumer(of: h), pattern.operand(of: mul, "Mul", besides: { $0 == h }) == x else { return nil }
        return fused(x, nodes: [n, mul], last: mul)
    }

    func match(fromClip n: Int) -> FusionMatch? {
        let clip = pattern.node(n)
        guard clip.inputs.count == 3, clip.outputs.count == 1, let addNode = producer(clip.inputs[0]),
              soleConsumer(of: clip.inputs[0]) == n, let (a0, a1) = pattern.binary(addNode, "Add"), a0 != a1 else { return nil }
        let x = isConstant(a1, 3, for: a0) ? a0 : a1
        guard isFloat(x), isConstant(x == a0 ? a1 : a0, 3, for: x), isConstant(clip.inputs[1], 0, for: x),
              isConstant(clip.inputs[2], 6, for: x), let next = soleConsumer(of: pattern.output(n)) else { return nil }
        let c = pattern.output(n)
        if pattern.operand(of: next, "Mul", besides: { $0 == c }) == x {
            // (x · c) / 6
            guard let last = soleConsumer(of: pattern.output(next)), sixth(last) == pattern.output(next) else { return nil }
            return fused(x, nodes: [addNode, n, next, last], last: last)
        }
        // x · (c / 6)
        guard sixth(next) == c, let last = soleConsumer(of: pattern.output(next)),
              pattern.operand(of: last, "Mul", besides: { $0 == x }) == pattern.output(next) else { return nil }
        return fused(x, nodes: [addNode, n, next, last], last: last)
    }

    /// v / 6 spelled Div(v, 6) or Mul(v, 1/6) in either order: v.
    func sixth(_ n: Int) -> String? {
        if let (a, b) = pattern.binary(n, "Div"), a != b, isConstant(b, 6, for: a) { return a }
        guard let (a, b) = pattern.binary(n, "Mul"), a != b else { return nil }
        if isConstant(b, 1.0 / 6, for: a) { return a }
        if isConstant(a, 1.0 / 6, for: b) { return b }
        return nil
    }

    func fused(_ x: String, nodes: [Int], last: Int) -> FusionMatch {
        let name = pattern.node(nodes[0]).name
        let node = Node(name: name.isEmpty ? "" : name + "/HardSwish", opType: "HardSwish", inputs: [x], outputs: [pattern.output(last)])
        return FusionMatch(nodes: nodes, last: last, fused: node)
    }
}
