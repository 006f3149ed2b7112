import OnnxcCore
@testable import OnnxcRuntime
import Testing

/// The fused `ai.onnxc` kernels against the unfused sequences they replace: same inputs, same outputs.
@Suite struct FusedKernelTests {
    /// Runs `nodes` (inputs x0, x1, …; result "y") and returns y.
    private func run(_ nodes: [RuntimeNode], _ inputs: [Tensor]) throws -> Tensor {
        let names = inputs.indices.map { "x\($0)" }
        let graph = RuntimeGraph(
            name: "test",
            inputs: names.map { RuntimeValueInfo(name: $0, dtype: nil, shape: nil, shapeText: "") },
            outputs: [RuntimeValueInfo(name: "y", dtype: nil, shape: nil, shapeText: "")],
            initializers: [:], nodes: nodes)
        var feeds: [String: Value] = [:]
        for (name, tensor) in zip(names, inputs) { feeds[name] = .tensor(tensor) }
        return try #require(try Executor(graph: graph).run(feeds)["y"]?.tensor)
    }

    private func node(_ op: String, _ inputs: [String], _ output: String, domain: String = "", opset: Int = 17,
                      _ attributes: [String: AttributeValue] = [:]) -> RuntimeNode {
        RuntimeNode(name: output, opType: op, domain: domain, opset: opset, inputs: inputs, outputs: [output], attributes: Attributes(attributes))
    }

    private func values(_ count: Int, seed: Int = 1) -> [Float] {
        (0..<count).map { i in Float(((i * 37 + seed * 11) % 23) - 11) / 5 }
    }

    /// Each activation as its standalone node(s) reading `t` into "y", with the fused attributes that mean the same.
    private static let activations: [(name: String, params: [Float], nodes: @Sendable (String) -> [(String, [String], [String: AttributeValue])])] = [
        ("Relu", [], { t in [("Relu", [t], [:])] }),
        ("Clip", [-0.5, 1.5], { t in [("Clip", [t, "x3", "x4"], [:])] }),
        ("Sigmoid", [], { t in [("Sigmoid", [t], [:])] }),
        ("HardSigmoid", [0.3, 0.4], { t in [("HardSigmoid", [t], ["alpha": .float(0.3), "beta": .float(0.4)])] }),
        ("HardSwish", [], { t in [("HardSwish", [t], [:])] }),
        ("LeakyRelu", [0.2], { t in [("LeakyRelu", [t], ["alpha": .float(0.2)])] }),
        ("Tanh", [], { t in [("Tanh", [t], [:])] }),
        ("Silu", [], { t in [("Sigmoid", [t], [:]), ("Mul", [t, "s"], [:])] }),
        ("Gelu", [], { t in [("Gelu", [t], [:])] }),
        ("GeluTanh", [], { t in [("Gelu", [t], ["approximate": .string("tanh")])] }),
    ]

    /// The unfused activation nodes after the base op wrote "t"; Clip's bounds are the inputs after the base op's
    /// three (x3, x4).
    private func unfused(_ activation: Int) -> [RuntimeNode] {
        let steps = FusedKernelTests.activations[activation].nodes("t")
        return steps.enumerated().map { i, step in
            node(step.0, step.1, i == steps.count - 1 ? "y" : "s", opset: 20, step.2)
        }
    }

    private func fusedAttributes(_ activation: Int) -> [String: AttributeValue] {
        let entry = FusedKernelTests.activations[activation]
        var attributes: [String: AttributeValue] = ["activation": .string(entry.name)]
        if !entry.params.isEmpty { attributes["activation_params"] = .floats(entry.params) }
        return attributes
    }

    private var bounds: [Tensor] { [Tensor.scalar(Float(-0.5)), Tensor.scalar(Float(1.5))] }

    @Test(arguments: 0..<activations.count) func fusedConvEqualsConvThenActivation(_ activation: Int) throws {
        let x = try Tensor(values(2 * 3 * 5 * 5), shape: [2, 3, 5, 5])
        let w = try Tensor(values(4 * 3 * 3 * 3, seed: 2).map { $0 / 4 }, shape: [4, 3, 3, 3])
        let b = try Tensor(values(4, seed: 3), shape: [4])
        let conv: [String: AttributeValue] = ["pads": .ints([1, 1, 1, 1]), "strides": .ints([2, 1])]
        let reference = [node("Conv", ["x0", "x1", "x2"], "t", conv)] + unfused(activation)
        let expected = try run(reference, [x, w, b] + bounds)
        let fused = try run([node("FusedConv", ["x0", "x1", "x2"], "y", domain: RuntimeOps.domain,
                                  conv.merging(fusedAttributes(activation)) { a, _ in a })], [x, w, b])
        #expect(fused.shape == expected.shape)
        #expect(fused.array(Float.self) == expected.array(Float.self))
    }

    @Test(arguments: 0..<activations.count) func fusedGemmEqualsGemmThenActivation(_ activation: Int) throws {
        let a = try Tensor(values(3 * 4), shape: [4, 3])
        let b = try Tensor(values(4 * 5, seed: 2), shape: [5, 4])
        let c = try Tensor(values(5, seed: 3), shape: [5])
        let gemm: [String: AttributeValue] = ["transA": .int(1), "transB": .int(1), "alpha": .float(0.5), "beta": .float(2)]
        let reference = [node("Gemm", ["x0", "x1", "x2"], "t", gemm)] + unfused(activation)
        let expected = try run(reference, [a, b, c] + bounds)
        let fused = try run([node("FusedGemm", ["x0", "x1", "x2"], "y", domain: RuntimeOps.domain,
                                  gemm.merging(fusedAttributes(activation)) { a, _ in a })], [a, b, c])
        #expect(fused.array(Float.self) == expected.array(Float.self))
    }

    @Test(arguments: 0..<activations.count) func fusedMatMulEqualsMatMulAddThenActivation(_ activation: Int) throws {
        let a = try Tensor(values(2 * 3 * 4), shape: [2, 3, 4])
        let b = try Tensor(values(4 * 5, seed: 2), shape: [4, 5])
        let bias = try Tensor(values(5, seed: 3), shape: [1, 5])
        let reference = [node("MatMul", ["x0", "x1"], "m"), node("Add", ["m", "x2"], "t")] + unfused(activation)
        let expected = try run(reference, [a, b, bias] + bounds)
        let fused = try run([node("FusedMatMul", ["x0", "x1", "x2"], "y", domain: RuntimeOps.domain, fusedAttributes(activation))], [a, b, bias])
        #expect(fused.shape == [2, 3, 5])
        #expect(fused.array(Float.self) == expected.array(Float.self))
    }

    @Test func fusedMatMulWithoutBiasOrActivationIsMatMul() throws {
        let a = try Tensor(values(2 * 3 * 4), shape: [2, 3, 4]), b = try Tensor(values(2 * 4 * 2, seed: 2), shape: [2, 4, 2])
        let expected = try run([node("MatMul", ["x0", "x1"], "y")], [a, b])
        let fused = try run([node("FusedMatMul", ["x0", "x1"], "y", domain: RuntimeOps.domain)], [a, b])
        #expect(fused.array(Float.self) == expected.array(Float.self))
    }

    @Test func fusedMatMulInDoubleAndFloat16() throws {
        for dtype in [DType.double, .float16] {
            let a = try CastKernels.convert(try Tensor(values(6), shape: [2, 3]), to: dtype)
            let b = try CastKernels.convert(try Tensor(values(6, seed: 2), shape: [3, 2]), to: dtype)
            let bias = try CastKernels.convert(try Tensor(values(2, seed: 3), shape: [2]), to: dtype)
            let expected = try run([node("MatMul", ["x0", "x1"], "m"), node("Add", ["m", "x2"], "t"), node("Relu", ["t"], "y")], [a, b, bias])
            let fused = try run([node("FusedMatMul", ["x0", "x1", "x2"], "y", domain: RuntimeOps.domain, ["activation": .string("Relu")])], [a, b, bias])
            #expect(fused.dtype == dtype)
            #expect(fused.doubles() == expected.doubles())
        }
    }

    @Test func siluAndGeluRuntimeOpsEqualTheirDecompositions() throws {
        let x = try Tensor(values(12), shape: [3, 4])
        let silu = try run([node("Silu", ["x0"], "y", domain: RuntimeOps.domain)], [x])
        let reference = try run([node("Sigmoid", ["x0"], "s"), node("Mul", ["x0", "s"], "y")], [x])
        #expect(silu.array(Float.self) == reference.array(Float.self))
        for approximate in ["none", "tanh"] {
            let gelu = try run([node("Gelu", ["x0"], "y", domain: RuntimeOps.domain, ["approximate": .string(approximate)])], [x])
            let standard = try run([node("Gelu", ["x0"], "y", opset: 20, ["approximate": .string(approximate)])], [x])
            #expect(gelu.array(Float.self) == standard.array(Float.self))
        }
    }

    @Test func unknownActivationsAndWrongParameterCountsAreClearErrors() throws {
        let a = try Tensor(values(4), shape: [2, 2])
        #expect(throws: RuntimeError.self) {
            try run([node("FusedMatMul", ["x0", "x1"], "y", domain: RuntimeOps.domain, ["activation": .string("Swoosh")])], [a, a])
        }
        #expect(throws: RuntimeError.self) {
            try run([node("FusedMatMul", ["x0", "x1"], "y", domain: RuntimeOps.domain,
                          ["activation": .string("Clip"), "activation_params": .floats([0])])], [a, a])
        }
        #expect(throws: RuntimeError.self) {
            try run([node("FusedMatMul", ["x0", "x1", "x0"], "y", domain: RuntimeOps.domain)], [a, a])
        }
        do {
            _ = try FusedActivation(name: "Clip", parameters: [1], op: "FusedConv")
            Issue.record("expected an error")
        } catch {
            #expect(error.what.contains("Clip takes 2 activation_params (min, max), got 1"))
        }
    }
}
