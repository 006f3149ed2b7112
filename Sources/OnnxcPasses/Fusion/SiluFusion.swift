import OnnxcCore
public import OnnxcIR

/// Fuses SiLU (Swish), x·Sigmoid(x), into the runtime op `ai.onnxc::Silu`.
///
/// Matches: s = Sigmoid(x) whose only reader is Mul(x, s) or Mul(s, x). Produces: `ai.onnxc::Silu(x)` writing
/// the Mul's output, so graph outputs keep their names. Preconditions: the runtime target (standard ONNX has no
/// Silu); s has exactly one consumer and is not a graph output; x's declared type, when known, is floating.
/// Numerics: x·sigmoid(x) with the Sigmoid kernel's formula, without rounding the sigmoid to the element type
/// first: equal for float and double, within one rounding for float16. Tested by: SiluFusionTests.
public struct SiluFusion: Pass {
    public let id = "fuse-silu"
    public let summary = "fuse x*Sigmoid(x) into ai.onnxc::Silu (runtime target)"

    public init() {}

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        guard context.allowsRuntimeOps else { return nil }
        let pattern = PatternGraph(graph)
        return pattern.fuse(anchoredAt: ["Sigmoid"]) { n in
            let sigmoid = pattern.node(n)
            guard sigmoid.inputs.count == 1, let x = sigmoid.inputs.first, !x.isEmpty, sigmoid.outputs.count == 1 else { return nil }
            if let dtype = pattern.typeOf(x).dtype, !PatternGraph.floatTypes.contains(dtype) { return nil }
            let s = pattern.output(n)
            guard let mul = pattern.soleConsumer(of: s)?.node, pattern.operand(of: mul, "Mul", besides: { $0 == s }) == x else { return nil }
            let fused = Node(name: sigmoid.name.isEmpty ? "" : sigmoid.name + "/Silu", opType: "Silu", domain: RuntimeOps.domain,
                             inputs: [x], outputs: [pattern.output(mul)])
            return FusionMatch(nodes: [n, mul], last: mul, fused: fused)
        }
    }
}
