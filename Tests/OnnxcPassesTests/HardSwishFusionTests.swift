import OnnxcCore
import OnnxcIR
import OnnxcPasses
import OnnxcRuntime
import OnnxcTestSupport
import Testing

@Suite struct HardSwishFusionTests {
    let x: [Float] = [-5, -3, -1.5, 0, 0.5, 2, 3, 4.5]

    enum Form: CaseIterable {
        /// x · HardSigmoid(x, 1/6, 0.5)
        case hardSigmoid
        /// (x · Clip(x + 3, 0, 6)) / 6 — PyTorch's export below opset 14.
        case divideLast
        /// x · (Clip(3 + x, 0, 6) · (1/6))
        case sixthFirst
    }

    private func hardSwish(_ form: Form, opset: Int64 = 14, six: Float = 6, extraReader: Bool = false) throws -> Model {
        let initializers = [try Build.floatTensor("three", [], [3]), try Build.floatTensor("zero", [], [0]),
                            try Build.floatTensor("six", [], [six]), try Build.floatTensor("sixth", [], [1.0 / 6])]
        var nodes: [Node]
        switch form {
        case .hardSigmoid:
            nodes = [Build.node("HardSigmoid", ["x"], ["h"], [Attribute("alpha", .float(1.0 / 6))]), Build.node("Mul", ["h", "x"], ["y"])]
        case .divideLast:
            nodes = [Build.node("Add", ["x", "three"], ["a"]), Build.node("Clip", ["a", "zero", "six"], ["c"]),
                     Build.node("Mul", ["x", "c"], ["m"]), Build.node("Div", ["m", "six"], ["y"])]
        case .sixthFirst:
            nodes = [Build.node("Add", ["three", "x"], ["a"]), Build.node("Clip", ["a", "zero", "six"], ["c"]),
                     Build.node("Mul", ["c", "sixth"], ["m"]), Build.node("Mul", ["m", "x"], ["y"])]
        }
        var outputs = [ValueInfo(name: "y", type: nil)]
        if extraReader { outputs.append(ValueInfo(name: form == .hardSigmoid ? "h" : "c", type: nil)) }
        return Build.model(Graph(inputs: [Build.input("x", [.fixed(2), .fixed(4)])], outputs: outputs,
                                 initializers: initializers, nodes: nodes), opset: opset)
    }

    private func fused(_ model: Model) throws -> Model {
        let result = try PassTesting.apply(HardSwishFusion(), to: model)
        try PassTesting.expectSameOutputs(model, result, ["x": try PassTesting.input(x, [2, 4])])
        return result
    }

    @Test(arguments: Form.allCases) func fusesEachForm(_ form: Form) throws {
        let result = try fused(try hardSwish(form))
        #expect(DecomposedPatterns.ops(result) == ["HardSwish"])
        #expect(result.graph.nodes.first?.inputs == ["x"] && result.graph.nodes.first?.outputs == ["y"])
    }

    @Test(arguments: Form.allCases) func leavesOldOpsetsMultiUseIntermediatesAndWrongConstants(_ form: Form) throws {
        #expect(!DecomposedPatterns.ops(try fused(try hardSwish(form, opset: 13))).contains("HardSwish"))
        #expect(!DecomposedPatterns.ops(try fused(try hardSwish(form, extraReader: true))).contains("HardSwish"))
        if form != .hardSigmoid {
            #expect(!DecomposedPatterns.ops(try fused(try hardSwish(form, six: 5))).contains("HardSwish"))
        }
    }

    @Test func leavesHardSigmoidWithOtherSlopes() throws {
        var model = try hardSwish(.hardSigmoid)
        model.graph.nodes[0].attributes = [Attribute("alpha", .float(0.2))]
        #expect(!DecomposedPatterns.ops(try fused(model)).contains("HardSwish"))
    }
}
