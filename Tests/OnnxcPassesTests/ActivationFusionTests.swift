import OnnxcCore
import OnnxcIR
import OnnxcPasses
import OnnxcRuntime
import OnnxcTestSupport
import Testing

/// Small graphs of a base op (Conv, Gemm, MatMul) followed by an activation, for the runtime-op fusions.
enum ActivationPatterns {
    static let x = DecomposedPatterns.values(2 * 3 * 4 * 4)

    /// y = act(Conv(x, w, b)), x: [2, 3, 4, 4]; `convIsOutput` also makes the conv output a graph output.
    static func conv(_ activation: [Node], opset: Int64 = 17, extraInitializers: [OnnxcIR.Tensor] = [],
                     convIsOutput: Bool = false) throws -> Model {
        let initializers = [try Build.floatTensor("w", [4, 3, 3, 3], DecomposedPatterns.values(108, seed: 2).map { $0 / 4 }),
                            try Build.floatTensor("b", [4], DecomposedPatterns.values(4, seed: 3))] + extraInitializers
        let nodes = [Build.node("Conv", ["x", "w", "b"], ["t"], [Attribute("pads", .ints([1, 1, 1, 1]))])] + activation
        var outputs = [ValueInfo(name: "y", type: nil)]
        if convIsOutput { outputs.append(ValueInfo(name: "t", type: nil)) }
        let graph = Graph(inputs: [Build.input("x", [.fixed(2), .fixed(3), .fixed(4), .fixed(4)])], outputs: outputs,
                          initializers: initializers, nodes: nodes)
        return Build.model(graph, opset: opset)
    }

    /// y = act(MatMul(x, w) + bias) for x: [2, 4, 6] and w: [6, 5]; `bias` nil leaves out the Add.
    static func matMul(_ activation: [Node], bias: OnnxcIR.Tensor?, biasFirst: Bool = false,
                       extraInputs: [ValueInfo] = []) throws -> Model {
        var initializers = [try Build.floatTensor("w", [6, 5], DecomposedPatterns.values(30, seed: 2))]
        var nodes = [Build.node("MatMul", ["x", "w"], [bias == nil ? "t" : "m"])]
        if let bias {
            initializers.append(bias)
            nodes.append(Build.node("Add", biasFirst ? [bias.name, "m"] : ["m", bias.name], ["t"]))
        }
        let graph = Graph(inputs: [Build.input("x", [.fixed(2), .fixed(4), .fixed(6)])] + extraInputs,
                          outputs: [ValueInfo(name: activation.isEmpty ? "t" : "y", type: nil)],
                          initializers: initializers, nodes: nodes + activation)
        return Build.model(graph, opset: 17)
    }

    static func act(_ op: String, _ inputs: [String] = ["t"], _ attributes: [Attribute] = [], domain: String = "") -> Node {
        Node(name: "", opType: op, domain: domain, inputs: inputs, outputs: ["y"], attributes: attributes)
    }

    static func fused(_ model: Model) -> [Node] { model.graph.nodes.filter { $0.domain == RuntimeOps.domain } }
}

@Suite struct ActivationFusionTests {
    private func fused(_ model: Model, _ inputs: [String: OnnxcRuntime.Tensor] = [:]) throws -> Model {
        var model = model
        if model.graph.nodes.contains(where: { $0.domain == RuntimeOps.domain }) {
            model.opsetImports.append(OpsetImport(domain: RuntimeOps.domain, version: RuntimeOps.version))
        }
        let result = try PassTesting.apply(ActivationFusion(), to: model, target: .runtime)
        var feeds = inputs
        let x = model.graph.inputs[0]
        let count = x.type?.tensorType?.shape?.dims.compactMap(\.fixedValue).reduce(1, *) ?? 0
        let shape = x.type?.tensorType?.shape?.dims.compactMap(\.fixedValue).map { Int($0) } ?? []
        feeds["x"] = try PassTesting.input(Array(ActivationPatterns.x.prefix(Int(count))), shape)
        try PassTesting.expectSameOutputs(model, result, feeds)
        #expect(try PassTesting.apply(ActivationFusion(), to: model, target: .onnx).graph.nodes == model.graph.nodes)
        return result
    }

    static let simple: [(op: String, attributes: [Attribute], kind: String, params: [Float])] = [
        ("Relu", [], "Relu", []), ("Sigmoid", [], "Sigmoid", []), ("Tanh", [], "Tanh", []), ("HardSwish", [], "HardSwish", []),
        ("LeakyRelu", [Attribute("alpha", .float(0.1))], "LeakyRelu", [0.1]), ("LeakyRelu", [], "LeakyRelu", [0.01]),
        ("HardSigmoid", [Attribute("beta", .float(0.25))], "HardSigmoid", [0.2, 0.25]),
    ]

    @Test(arguments: 0..<simple.count) func fusesConvWithEachActivation(_ i: Int) throws {
        let entry = ActivationFusionTests.simple[i]
        let result = try fused(try ActivationPatterns.conv([ActivationPatterns.act(entry.op, ["t"], entry.attributes)]))
        let node = try #require(ActivationPatterns.fused(result).first)
        #expect(result.graph.nodes.count == 1)
        #expect(node.opType == "FusedConv" && node.inputs == ["x", "w", "b"] && node.outputs == ["y"])
        #expect(node.attribute("pads") == .ints([1, 1, 1, 1]))
        #expect(node.attribute("activation") == .string(Array(entry.kind.utf8)))
        #expect(node.attribute("activation_params") == (entry.params.isEmpty ? nil : .floats(entry.params)))
    }

    @Test func fusesGemm() throws {
        let graph = Graph(inputs: [Build.input("x", [.fixed(4), .fixed(6)])], outputs: [ValueInfo(name: "y", type: nil)],
                          initializers: [try Build.floatTensor("w", [5, 6], DecomposedPatterns.values(30, seed: 2)),
                                         try Build.floatTensor("c", [5], DecomposedPatterns.values(5, seed: 3))],
                          nodes: [Build.node("Gemm", ["x", "w", "c"], ["t"], [Attribute("transB", .int(1))]), ActivationPatterns.act("Sigmoid")])
        let node = try #require(ActivationPatterns.fused(try fused(Build.model(graph))).first)
        #expect(node.opType == "FusedGemm" && node.inputs == ["x", "w", "c"] && node.attribute("transB") == .int(1))
    }

    @Test func fusesClipWithConstantBoundsInBothForms() throws {
        let bounds = [try Build.floatTensor("lo", [], [0]), try Build.floatTensor("hi", [], [6])]
        var result = try fused(try ActivationPatterns.conv([ActivationPatterns.act("Clip", ["t", "lo", "hi"])], extraInitializers: bounds))
        #expect(ActivationPatterns.fused(result).first?.attribute("activation_params") == .floats([0, 6]))
        result = try fused(try ActivationPatterns.conv([ActivationPatterns.act("Clip", ["t", "", "hi"])], extraInitializers: bounds))
        #expect(ActivationPatterns.fused(result).first?.attribute("activation_params") == .floats([-.infinity, 6]))
        let old = [Attribute("min", .float(-1)), Attribute("max", .float(1))]
        result = try fused(try ActivationPatterns.conv([ActivationPatterns.act("Clip", ["t"], old)], opset: 10))
        #expect(ActivationPatterns.fused(result).first?.attribute("activation_params") == .floats([-1, 1]))
    }

    @Test func leavesClipWithNonConstantBounds() throws {
        var model = try ActivationPatterns.conv([ActivationPatterns.act("Clip", ["t", "lo", "hi"])],
                                                extraInitializers: [try Build.floatTensor("lo", [], [0])])
        model.graph.inputs.append(Build.input("hi", []))
        let result = try fused(model, ["hi": try OnnxcRuntime.Tensor([Float(2)], shape: [])])
        #expect(ActivationPatterns.fused(result).isEmpty)
    }

    @Test func leavesMultiUseAndGraphOutputIntermediates() throws {
        let twoReaders = try ActivationPatterns.conv([ActivationPatterns.act("Relu"),
                                                      Node(name: "", opType: "Neg", inputs: ["t"], outputs: ["z"])])
        var model = twoReaders
        model.graph.outputs.append(ValueInfo(name: "z", type: nil))
        #expect(ActivationPatterns.fused(try fused(model)).isEmpty)
        #expect(ActivationPatterns.fused(try fused(try ActivationPatterns.conv([ActivationPatterns.act("Relu")], convIsOutput: true))).isEmpty)
    }

    @Test func fusesRuntimeSiluAndGelu() throws {
        for (op, attributes, kind) in [("Silu", [Attribute](), "Silu"), ("Gelu", [Attribute("approximate", .string(Array("tanh".utf8)))], "GeluTanh")] {
            let model = try ActivationPatterns.matMul([ActivationPatterns.act(op, ["t"], attributes, domain: RuntimeOps.domain)], bias: nil)
            let node = try #require(ActivationPatterns.fused(try fused(model)).first)
            #expect(node.opType == "FusedMatMul" && node.inputs == ["x", "w"])
            #expect(node.attribute("activation") == .string(Array(kind.utf8)))
        }
    }

    @Test func fusesMatMulBiasWithAndWithoutActivation() throws {
        let bias = try Build.floatTensor("bias", [5], DecomposedPatterns.values(5, seed: 4))
        var result = try fused(try ActivationPatterns.matMul([ActivationPatterns.act("Relu")], bias: bias))
        #expect(result.graph.nodes.count == 1)
        #expect(ActivationPatterns.fused(result).first?.inputs == ["x", "w", "bias"])
        result = try fused(try ActivationPatterns.matMul([], bias: bias, biasFirst: true))
        let node = try #require(ActivationPatterns.fused(result).first)
        #expect(result.graph.nodes.count == 1 && node.attribute("activation") == nil && node.outputs == ["t"])
        // [1, 1, 5] still adds one value per column of the rank-3 product.
        let broadcast = try Build.floatTensor("bias", [1, 1, 5], DecomposedPatterns.values(5, seed: 4))
        #expect(try fused(try ActivationPatterns.matMul([], bias: broadcast)).graph.nodes.count == 1)
    }

    @Test func leavesBiasesThatAreNotOnePerColumn() throws {
        let fullBias = try Build.floatTensor("bias", [4, 5], DecomposedPatterns.values(20, seed: 4))
        // A [4, 5] bias varies per row: the Add stays, and the Relu after it reads the Add, not the MatMul.
        var result = try fused(try ActivationPatterns.matMul([ActivationPatterns.act("Relu")], bias: fullBias))
        #expect(ActivationPatterns.fused(result).isEmpty)
        // [1, 1, 1, 5] would raise the product's rank.
        let higher = try Build.floatTensor("bias", [1, 1, 1, 5], DecomposedPatterns.values(5, seed: 4))
        result = try fused(try ActivationPatterns.matMul([], bias: higher))
        #expect(ActivationPatterns.fused(result).isEmpty)
        // A bias given as a graph input is not constant.
        var model = try ActivationPatterns.matMul([], bias: try Build.floatTensor("bias", [5], DecomposedPatterns.values(5)))
        model.graph.initializers.removeAll { $0.name == "bias" }
        model.graph.inputs.append(Build.input("bias", [.fixed(5)]))
        result = try fused(model, ["bias": try PassTesting.input(DecomposedPatterns.values(5), [5])])
        #expect(ActivationPatterns.fused(result).isEmpty)
    }
}

/// Conv + Add(residual) [+ activation], as ResNet blocks end.
@Suite struct ResidualFusionTests {
    /// y = act(Conv(x, w, b) + r) with r = Relu(x) ([2, 3, 4, 4] → conv to [2, 3, 4, 4]), residual first or second.
    func model(activation: Bool, residualFirst: Bool, residualShape: [Dim] = [.fixed(2), .fixed(3), .fixed(4), .fixed(4)]) throws -> Model {
        let initializers = [try Build.floatTensor("w", [3, 3, 3, 3], DecomposedPatterns.values(81, seed: 2).map { $0 / 4 }),
                            try Build.floatTensor("b", [3], DecomposedPatterns.values(3, seed: 3))]
        var nodes = [Build.node("Relu", ["x"], ["r"]),
                     Build.node("Conv", ["x", "w", "b"], ["t"], [Attribute("pads", .ints([1, 1, 1, 1]))]),
                     Build.node("Add", residualFirst ? ["r", "t"] : ["t", "r"], [activation ? "s" : "y"])]
        if activation { nodes.append(Build.node("Relu", ["s"], ["y"])) }
        let graph = Graph(inputs: [Build.input("x", [.fixed(2), .fixed(3), .fixed(4), .fixed(4)])], outputs: [ValueInfo(name: "y", type: nil)],
                          initializers: initializers, nodes: nodes)
        return ShapeInference.infer(Build.model(graph)).0
    }

    @Test(arguments: [(true, false), (true, true), (false, false)])
    func fusesTheResidualSumBeforeTheActivation(_ activation: Bool, _ residualFirst: Bool) throws {
        let original = try model(activation: activation, residualFirst: residualFirst)
        let result = try PassTesting.apply(ActivationFusion(), to: original, target: .runtime)
        let fused = try #require(result.graph.nodes.first { $0.opType == "FusedConv" })
        #expect(fused.inputs == ["x", "w", "b", "r"])
        #expect(result.graph.nodes.count == 2)
        #expect((fused.attribute("activation") != nil) == activation)
        try PassTesting.expectSameOutputs(original, result, ["x": try PassTesting.input(ActivationPatterns.x.map { $0 * 2 }, [2, 3, 4, 4])])
    }

    @Test func leavesBroadcastingAndConstantAddends() throws {
        // A per-channel constant is a bias (fuse-conv-add-mul's job), not a residual.
        var constant = try model(activation: false, residualFirst: false)
        constant.graph.initializers.append(try Build.floatTensor("c", [3, 1, 1], [1, 2, 3]))
        constant.graph.nodes[2].inputs = ["t", "c"]
        #expect(try PassTesting.apply(ActivationFusion(), to: constant, target: .runtime).graph.nodes.allSatisfy { $0.opType != "FusedConv" })
        // A residual that broadcasts ([2, 3, 1, 1]) is not per element.
        var broadcast = try model(activation: false, residualFirst: false)
        broadcast.graph.nodes.insert(Build.node("GlobalAveragePool", ["r"], ["g"]), at: 1)
        broadcast.graph.nodes[3].inputs = ["t", "g"]
        broadcast = ShapeInference.infer(broadcast).0
        #expect(try PassTesting.apply(ActivationFusion(), to: broadcast, target: .runtime).graph.nodes.allSatisfy { $0.opType != "FusedConv" })
    }
}
