import Foundation
import OnnxcCore
import OnnxcFrontend
import OnnxcIR
import OnnxcPasses
import OnnxcRuntime
import OnnxcTestSupport
import Testing

/// Builders for the decomposed patterns exporters emit.
enum DecomposedPatterns {
    static func int64s(_ name: String, _ values: [Int64]) throws -> OnnxcIR.Tensor {
        var bytes: [UInt8] = []
        for v in values { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
        return OnnxcIR.Tensor(name: name, data: try TensorData(dtype: .int64, dims: [Int64(values.count)], payload: .bytes(ByteSlice(copying: bytes))))
    }

    /// Deterministic, not-too-regular values.
    static func values(_ count: Int, seed: Int = 1) -> [Float] {
        (0..<count).map { i in Float(((i * 37 + seed * 11) % 23) - 11) / 7 }
    }

    struct LayerNormOptions {
        var opset: Int64 = 17
        var squareWithMul = false
        var reciprocal = false
        var axes: [Int64] = [-1]
        var epsilonConstantNode = false
        var swapOperands = false
        var gammaIsInput = false
        var gammaDims: [Int64] = [4]
        var betaIsInput = false
        var extraReaderOfStd = false
        var dIsOutput = false
    }

    /// y = LayerNorm(x) over the last axis of x: [2, 3, 4], spelled out the way exporters do.
    static func layerNorm(_ o: LayerNormOptions = LayerNormOptions()) throws -> Model {
        var initializers = [try Build.floatTensor("two", [], [2])]
        var inputs = [Build.input("x", [.fixed(2), .fixed(3), .fixed(4)])]
        var outputs = [ValueInfo(name: "y", type: nil)]
        var nodes: [Node] = []
        let gammaCount = Int(o.gammaDims.reduce(1, *))
        if o.gammaIsInput { inputs.append(Build.input("gamma", o.gammaDims.map(Dim.fixed))) } else {
            initializers.append(try Build.floatTensor("gamma", o.gammaDims, values(gammaCount, seed: 3)))
        }
        if o.betaIsInput { inputs.append(Build.input("beta", [.fixed(4)])) } else {
            initializers.append(try Build.floatTensor("beta", [4], values(4, seed: 5)))
        }
        if o.epsilonConstantNode {
            nodes.append(Build.node("Constant", [], ["eps"], [Attribute("value_float", .float(1e-5))]))
        } else {
            initializers.append(try Build.floatTensor("eps", [], [1e-5]))
        }
        func reduceMean(_ input: String, _ output: String) throws -> Node {
            if o.opset >= 18 {
                return Build.node("ReduceMean", [input, "axes"], [output])
            }
            return Build.node("ReduceMean", [input], [output], [Attribute("axes", .ints(o.axes))])
        }
        if o.opset >= 18 { initializers.append(try int64s("axes", o.axes)) }
        func pair(_ a: String, _ b: String) -> [String] { o.swapOperands ? [b, a] : [a, b] }
        nodes.append(try reduceMean("x", "mean"))
        nodes.append(Build.node("Sub", ["x", "mean"], ["d"]))
        nodes.append(o.squareWithMul ? Build.node("Mul", ["d", "d"], ["sq"]) : Build.node("Pow", ["d", "two"], ["sq"]))
        nodes.append(try reduceMean("sq", "var"))
        nodes.append(Build.node("Add", pair("var", "eps"), ["ve"]))
        nodes.append(Build.node("Sqrt", ["ve"], ["std"]))
        if o.reciprocal {
            nodes.append(Build.node("Reciprocal", ["std"], ["inv"]))
            nodes.append(Build.node("Mul", pair("d", "inv"), ["n"]))
        } else {
            nodes.append(Build.node("Div", ["d", "std"], ["n"]))
        }
        nodes.append(Build.node("Mul", pair("n", "gamma"), ["s"]))
        nodes.append(Build.node("Add", pair("s", "beta"), ["y"]))
        if o.extraReaderOfStd {
            nodes.append(Build.node("Neg", ["std"], ["z"]))
            outputs.append(ValueInfo(name: "z", type: nil))
        }
        if o.dIsOutput { outputs.append(ValueInfo(name: "d", type: nil)) }
        let graph = Graph(inputs: inputs, outputs: outputs, initializers: initializers, nodes: nodes)
        return Build.model(graph, opset: o.opset)
    }

    enum GeluOrder: CaseIterable {
        /// (x · p) · 0.5 — PyTorch's export of F.gelu.
        case torch
        /// (0.5 · x) · p — Hugging Face's `0.5 * x * (1 + erf(x / sqrt(2)))`.
        case halfFirst
        /// x · (p · 0.5)
        case halfInner
        /// (x · p) / 2 with u = x · (1/√2)
        case divideByTwo
    }

    /// y = Gelu(x) for x: [2, 3], spelled out; `extraReaderOfErf` also makes the Erf output a graph output.
    static func gelu(_ order: GeluOrder, opset: Int64 = 20, extraReaderOfErf: Bool = false,
                     rootDims: [Int64] = [], rootIsInput: Bool = false) throws -> Model {
        var initializers = [try Build.floatTensor("half", [], [0.5]), try Build.floatTensor("one", [], [1]),
                            try Build.floatTensor("twoC", [], [2])]
        var inputs = [Build.input("x", [.fixed(2), .fixed(3)])]
        var nodes: [Node] = []
        if order == .divideByTwo {
            initializers.append(try Build.floatTensor("invroot", rootDims, [Float(0.5).squareRoot()]))
            nodes.append(Build.node("Mul", ["invroot", "x"], ["u"]))
        } else {
            if rootIsInput { inputs.append(Build.input("root", rootDims.map(Dim.fixed))) } else {
                initializers.append(try Build.floatTensor("root", rootDims, [Float(2).squareRoot()]))
            }
            nodes.append(Build.node("Div", ["x", "root"], ["u"]))
        }
        nodes.append(Build.node("Erf", ["u"], ["e"]))
        nodes.append(Build.node("Add", order == .halfFirst ? ["one", "e"] : ["e", "one"], ["p"]))
        switch order {
        case .torch:
            nodes.append(Build.node("Mul", ["x", "p"], ["m"]))
            nodes.append(Build.node("Mul", ["m", "half"], ["y"]))
        case .halfFirst:
            nodes.append(Build.node("Mul", ["half", "x"], ["h"]))
            nodes.append(Build.node("Mul", ["h", "p"], ["y"]))
        case .halfInner:
            nodes.append(Build.node("Mul", ["p", "half"], ["m"]))
            nodes.append(Build.node("Mul", ["x", "m"], ["y"]))
        case .divideByTwo:
            nodes.append(Build.node("Mul", ["p", "x"], ["m"]))
            nodes.append(Build.node("Div", ["m", "twoC"], ["y"]))
        }
        var outputs = [ValueInfo(name: "y", type: nil)]
        if extraReaderOfErf { outputs.append(ValueInfo(name: "e", type: nil)) }
        let graph = Graph(inputs: inputs, outputs: outputs, initializers: initializers, nodes: nodes)
        return Build.model(graph, opset: opset)
    }

    /// y = 0.5·x·(1 + Tanh(√(2/π)·(x + 0.044715·x³))) for x: [2, 3] as Hugging Face's gelu_new exports it (x³ as
    /// Pow, or as x·x·x with `cubeByMul`); `coefficient` replaces 0.044715; `extraReaderOfTanh` makes the Tanh output
    /// a graph output.
    static func geluTanh(opset: Int64 = 20, cubeByMul: Bool = false, coefficient: Float = 0.044715,
                         extraReaderOfTanh: Bool = false) throws -> Model {
        let initializers = [try Build.floatTensor("half", [], [0.5]), try Build.floatTensor("one", [], [1]),
                            try Build.floatTensor("three", [], [3]), try Build.floatTensor("k", [], [coefficient]),
                            try Build.floatTensor("scale", [], [Float((2 / Double.pi).squareRoot())])]
        var nodes = [Build.node("Mul", ["half", "x"], ["h"])]
        if cubeByMul {
            nodes += [Build.node("Mul", ["x", "x"], ["sq"]), Build.node("Mul", ["sq", "x"], ["cube"])]
        } else {
            nodes.append(Build.node("Pow", ["x", "three"], ["cube"]))
        }
        nodes += [Build.node("Mul", ["k", "cube"], ["c"]), Build.node("Add", ["x", "c"], ["s"]),
                  Build.node("Mul", ["scale", "s"], ["u"]), Build.node("Tanh", ["u"], ["e"]),
                  Build.node("Add", ["one", "e"], ["p"]), Build.node("Mul", ["h", "p"], ["y"])]
        var outputs = [ValueInfo(name: "y", type: nil)]
        if extraReaderOfTanh { outputs.append(ValueInfo(name: "e", type: nil)) }
        let graph = Graph(inputs: [Build.input("x", [.fixed(2), .fixed(3)])], outputs: outputs, initializers: initializers, nodes: nodes)
        return Build.model(graph, opset: opset)
    }

    static func ops(_ model: Model) -> [String] { model.graph.nodes.map(\.opType).filter { $0 != "Constant" } }
}

@Suite struct LayerNormFusionTests {
    let x = DecomposedPatterns.values(24)

    private func fused(_ options: DecomposedPatterns.LayerNormOptions, extraInputs: [String: OnnxcRuntime.Tensor] = [:]) throws -> Model {
        let model = try DecomposedPatterns.layerNorm(options)
        let result = try PassTesting.apply(LayerNormFusion(), to: model)
        var inputs = extraInputs
        inputs["x"] = try PassTesting.input(x, [2, 3, 4])
        try PassTesting.expectSameOutputs(model, result, inputs)
        return result
    }

    @Test func fusesThePowDivPattern() throws {
        let result = try fused(DecomposedPatterns.LayerNormOptions())
        #expect(DecomposedPatterns.ops(result) == ["LayerNormalization"])
        let node = try #require(result.graph.nodes.first)
        #expect(node.inputs == ["x", "gamma", "beta"])
        #expect(node.outputs == ["y"])
        #expect(node.attribute("axis") == .int(-1))
        #expect(node.attribute("epsilon") == .float(1e-5))
    }

    @Test func fusesTheMulReciprocalPatternWithSwappedOperandsAndAConstantNode() throws {
        var options = DecomposedPatterns.LayerNormOptions()
        options.squareWithMul = true
        options.reciprocal = true
        options.swapOperands = true
        options.epsilonConstantNode = true
        let result = try fused(options)
        #expect(DecomposedPatterns.ops(result) == ["LayerNormalization"])
    }

    @Test func fusesOpset18AxesInputs() throws {
        var options = DecomposedPatterns.LayerNormOptions()
        options.opset = 18
        let result = try fused(options)
        #expect(DecomposedPatterns.ops(result) == ["LayerNormalization"])
    }

    @Test func fusesPositiveAxesAndLeavesANonConstantBiasOutside() throws {
        var options = DecomposedPatterns.LayerNormOptions()
        options.axes = [2]
        options.betaIsInput = true
        let result = try fused(options, extraInputs: ["beta": try PassTesting.input([1, 2, 3, 4], [4])])
        #expect(DecomposedPatterns.ops(result) == ["LayerNormalization", "Add"])
        #expect(result.graph.nodes.first { $0.opType == "LayerNormalization" }?.inputs == ["x", "gamma"])
    }

    @Test func leavesTheDecompositionBelowOpset17() throws {
        var options = DecomposedPatterns.LayerNormOptions()
        options.opset = 16
        #expect(!DecomposedPatterns.ops(try fused(options)).contains("LayerNormalization"))
    }

    @Test func leavesMultiUseIntermediatesAndGraphOutputs() throws {
        var options = DecomposedPatterns.LayerNormOptions()
        options.extraReaderOfStd = true
        #expect(!DecomposedPatterns.ops(try fused(options)).contains("LayerNormalization"))
        options = DecomposedPatterns.LayerNormOptions()
        options.dIsOutput = true
        #expect(!DecomposedPatterns.ops(try fused(options)).contains("LayerNormalization"))
    }

    @Test func leavesOtherAxes() throws {
        var options = DecomposedPatterns.LayerNormOptions()
        options.axes = [1]
        #expect(!DecomposedPatterns.ops(try fused(options)).contains("LayerNormalization"))
        options.axes = [0, -1]
        #expect(!DecomposedPatterns.ops(try fused(options)).contains("LayerNormalization"))
    }

    @Test func leavesNonConstantAndBroadcastScales() throws {
        var options = DecomposedPatterns.LayerNormOptions()
        options.gammaIsInput = true
        let gamma = try PassTesting.input([0.5, 1, 2, -1], [4])
        #expect(!DecomposedPatterns.ops(try fused(options, extraInputs: ["gamma": gamma])).contains("LayerNormalization"))
        // γ of shape [1] broadcasts in Mul but is not LayerNormalization's [4]; [3, 4] would also scale per row.
        options = DecomposedPatterns.LayerNormOptions()
        options.gammaDims = [1]
        #expect(!DecomposedPatterns.ops(try fused(options)).contains("LayerNormalization"))
        options.gammaDims = [3, 4]
        #expect(!DecomposedPatterns.ops(try fused(options)).contains("LayerNormalization"))
    }
}

@Suite struct GeluFusionTests {
    let x = try? PassTesting.input([-3, -1, -0.25, 0, 0.5, 2.5], [2, 3])

    private func fused(_ model: Model, root: [Float]? = nil, target: OptimizationTarget = .onnx) throws -> Model {
        let result = try PassTesting.apply(GeluFusion(), to: model, target: target)
        var inputs = ["x": try #require(x)]
        if let root { inputs["root"] = try PassTesting.input(root, [root.count]) }
        try PassTesting.expectSameOutputs(model, result, inputs)
        return result
    }

    @Test(arguments: DecomposedPatterns.GeluOrder.allCases) func fusesTheCommonOrderings(_ order: DecomposedPatterns.GeluOrder) throws {
        let result = try fused(try DecomposedPatterns.gelu(order))
        #expect(DecomposedPatterns.ops(result) == ["Gelu"])
        #expect(result.graph.nodes.first?.inputs == ["x"])
        #expect(result.graph.nodes.first?.outputs == ["y"])
    }

    @Test func leavesTheDecompositionBelowOpset20() throws {
        for order in DecomposedPatterns.GeluOrder.allCases {
            let result = try fused(try DecomposedPatterns.gelu(order, opset: 19))
            #expect(!DecomposedPatterns.ops(result).contains("Gelu"))
            #expect(result.graph.nodes.count == 5)
        }
    }

    @Test func leavesMultiUseIntermediates() throws {
        let result = try fused(try DecomposedPatterns.gelu(.torch, extraReaderOfErf: true))
        #expect(!DecomposedPatterns.ops(result).contains("Gelu"))
    }

    @Test func leavesConstantsThatBroadcastOrAreNotConstant() throws {
        // A [1, 1, 1] divisor raises [2, 3] to [1, 2, 3]: Gelu(x) would have the wrong rank.
        #expect(!DecomposedPatterns.ops(try PassTesting.apply(GeluFusion(), to: try DecomposedPatterns.gelu(.torch, rootDims: [1, 1, 1]))).contains("Gelu"))
        // A [1] divisor is still a scalar for a rank-2 x.
        #expect(DecomposedPatterns.ops(try fused(try DecomposedPatterns.gelu(.torch, rootDims: [1]))) == ["Gelu"])
        let result = try fused(try DecomposedPatterns.gelu(.torch, rootDims: [1], rootIsInput: true), root: [2])
        #expect(!DecomposedPatterns.ops(result).contains("Gelu"))
    }
}

extension GeluFusionTests {
    @Test func fusesTheTanhApproximation() throws {
        for cubeByMul in [false, true] {
            let result = try fused(try DecomposedPatterns.geluTanh(cubeByMul: cubeByMul))
            let node = try #require(result.graph.nodes.first)
            #expect(DecomposedPatterns.ops(result) == ["Gelu"])
            #expect(node.inputs == ["x"] && node.outputs == ["y"] && node.domain.isEmpty)
            #expect(node.attribute("approximate") == .string(Array("tanh".utf8)))
        }
    }

    @Test func producesTheRuntimeGeluBelowOpset20ForTheRuntimeTarget() throws {
        for model in [try DecomposedPatterns.geluTanh(opset: 17), try DecomposedPatterns.gelu(.torch, opset: 17)] {
            let result = try fused(model, target: .runtime)
            #expect(DecomposedPatterns.ops(result) == ["Gelu"])
            #expect(result.graph.nodes.first?.domain == RuntimeOps.domain)
            #expect(DecomposedPatterns.ops(try fused(model)).count == model.graph.nodes.count)
        }
        // From opset 20 the runtime target also gets the standard op.
        #expect(try fused(try DecomposedPatterns.geluTanh(), target: .runtime).graph.nodes.first?.domain.isEmpty == true)
    }

    @Test func leavesTanhFormsWithMultiUseIntermediatesOrOtherConstants() throws {
        #expect(!DecomposedPatterns.ops(try fused(try DecomposedPatterns.geluTanh(extraReaderOfTanh: true))).contains("Gelu"))
        #expect(!DecomposedPatterns.ops(try fused(try DecomposedPatterns.geluTanh(coefficient: 0.05))).contains("Gelu"))
    }
}

@Suite struct PatternFusionModelTests {
    /// bert_tiny (opset 17) already has LayerNormalization, and its Erf GELUs must stay at opset 17; declared at
    /// opset 20 (its ops mean the same there), both GELUs fuse and the outputs do not change.
    @Test func bertTiny() throws {
        let path = Fixtures.testdata.appendingPathComponent("exported/bert_tiny.onnx").path
        var model = try ONNXImporter.load(path: path)
        model = ShapeInference.infer(model).0
        let passes: [any Pass] = [LayerNormFusion(), GeluFusion()]
        let same = try PassManager(passes: passes).run(model)
        #expect(same.graph.nodes.count == model.graph.nodes.count)

        var newer = model
        newer.opsetImports = [OpsetImport(domain: "", version: 20)]
        let result = try PassManager(passes: passes).run(newer)
        #expect(result.graph.nodes.filter { $0.opType == "Gelu" }.count == 2)
        #expect(!result.graph.nodes.contains { $0.opType == "Erf" })
        let ids = (0..<16).map { Float($0 % 7 + 1) }
        let inputs = ["input_ids": try OnnxcRuntime.Tensor(ids.map { Int64($0) }, shape: [2, 8]),
                      "attention_mask": try OnnxcRuntime.Tensor([Int64](repeating: 1, count: 16), shape: [2, 8])]
        try PassTesting.expectSameOutputs(newer, result, inputs)
    }
}
