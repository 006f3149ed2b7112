import OnnxcCore
import OnnxcIR
import OnnxcPasses
import OnnxcRuntime
import OnnxcTestSupport
import Testing

@Suite struct SiluFusionTests {
    let x = DecomposedPatterns.values(6)

    /// y = x · Sigmoid(x) for x: [2, 3], with the Mul's operands in the given order.
    private func silu(sigmoidFirst: Bool = false, sigmoidIsOutput: Bool = false, otherOperand: String = "x") -> Model {
        var outputs = [ValueInfo(name: "y", type: nil)]
        if sigmoidIsOutput { outputs.append(ValueInfo(name: "s", type: nil)) }
        let nodes = [Build.node("Sigmoid", ["x"], ["s"]), Build.node("Mul", sigmoidFirst ? ["s", otherOperand] : [otherOperand, "s"], ["y"])]
        let inputs = [Build.input("x", [.fixed(2), .fixed(3)])] + (otherOperand == "x" ? [] : [Build.input(otherOperand, [.fixed(2), .fixed(3)])])
        return Build.model(Graph(inputs: inputs, outputs: outputs, nodes: nodes))
    }

    private func fused(_ model: Model, target: OptimizationTarget = .runtime) throws -> Model {
        let result = try PassTesting.apply(SiluFusion(), to: model, target: target)
        var inputs = ["x": try PassTesting.input(x, [2, 3])]
        if model.graph.inputs.count > 1 { inputs["z"] = try PassTesting.input(x.reversed(), [2, 3]) }
        try PassTesting.expectSameOutputs(model, result, inputs)
        return result
    }

    @Test func fusesBothOperandOrders() throws {
        for sigmoidFirst in [false, true] {
            let result = try fused(silu(sigmoidFirst: sigmoidFirst))
            let node = try #require(result.graph.nodes.first)
            #expect(result.graph.nodes.count == 1)
            #expect(node.opType == "Silu" && node.domain == RuntimeOps.domain && node.inputs == ["x"] && node.outputs == ["y"])
            #expect(result.opsetImports.contains { $0.domain == RuntimeOps.domain })
        }
    }

    @Test func leavesOtherProductsGraphOutputsAndTheOnnxTarget() throws {
        #expect(try fused(silu(otherOperand: "z")).graph.nodes.count == 2)
        #expect(try fused(silu(sigmoidIsOutput: true)).graph.nodes.count == 2)
        let standard = try fused(silu(), target: .onnx)
        #expect(standard.graph.nodes.count == 2 && !standard.opsetImports.contains { $0.domain == RuntimeOps.domain })
    }
}
