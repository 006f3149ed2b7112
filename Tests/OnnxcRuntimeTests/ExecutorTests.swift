import OnnxcCore
import OnnxcRuntime
import Testing

@Suite struct ExecutorTests {
    func node(_ op: String, _ inputs: [String], _ outputs: [String], name: String = "", domain: String = "") -> RuntimeNode {
        RuntimeNode(name: name, opType: op, domain: domain, opset: 17, inputs: inputs, outputs: outputs, attributes: Attributes())
    }

    @Test func reportsEveryUnsupportedOperatorAtOnce() {
        let inner = RuntimeGraph(name: "body", inputs: [], outputs: [], initializers: [:],
                                 nodes: [node("NoSuchOp", [], ["z"], name: "deep")])
        var withBranch = node("NoSuchOp", ["x"], ["y"], name: "first")
        withBranch.attributes = Attributes(["then_branch": .graph(inner)])
        let graph = RuntimeGraph(name: "g", inputs: [], outputs: [], initializers: [:], nodes: [
            withBranch,
            node("Frobnicate", ["y"], ["w"], name: "second", domain: "com.example"),
        ])
        do {
            _ = try Executor(graph: graph)
            Issue.record("expected unsupported operators")
        } catch {
            guard case .unsupportedOps(let ops) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(ops.map(\.opType) == ["NoSuchOp", "Frobnicate"])
            #expect(ops[0].nodes == ["first", "deep"])
            #expect(ops[1].domain == "com.example")
            #expect(error.description.contains("com.example::Frobnicate (opset 17) at second"))
        }
    }

    @Test func missingInputsAreNamed() throws {
        let graph = RuntimeGraph(name: "g", inputs: [RuntimeValueInfo(name: "x", dtype: .float, shape: [2], shapeText: "f32[2]")],
                                 outputs: [RuntimeValueInfo(name: "x", dtype: .float, shape: [2], shapeText: "f32[2]")],
                                 initializers: [:], nodes: [])
        let executor = try Executor(graph: graph)
        #expect(throws: RuntimeError.missingInput("model input x was not given")) { try executor.run([:]) }
        let x = try Tensor([Float(1), 2], shape: [2])
        #expect(try executor.run(["x": .tensor(x)])["x"]?.tensor?.array(Float.self) == [1, 2])
    }

    @Test func broadcastingFollowsNumPy() throws {
        #expect(try Broadcast.shape([[2, 1, 3], [4, 1]]) == [2, 4, 3])
        #expect(throws: RuntimeError.self) { try Broadcast.shape([[2, 3], [4]]) }
        let a = try Tensor([Float(1), 2, 3, 4, 5, 6], shape: [2, 3])
        let b = try Tensor([Float(10), 20], shape: [2, 1])
        let sum = try Broadcast.binary(a, b, as: Float.self, Float.self, to: Float.self, +)
        #expect(sum.shape == [2, 3])
        #expect(sum.array(Float.self) == [11, 12, 13, 24, 25, 26])
        let c = try Tensor([Float(1), 2, 3], shape: [3])
        let d = try Tensor([Float(10), 20], shape: [2, 1])
        #expect(try Broadcast.binary(c, d, as: Float.self, Float.self, to: Float.self, +).array(Float.self) == [11, 12, 13, 21, 22, 23])
    }
}

@Suite struct TensorAllocationTests {
    @Test func hugeShapesAreErrorsNotAborts() {
        #expect(throws: RuntimeError.self) { try Tensor(zeros: .float, shape: [1 << 20, 1 << 20, 1 << 10]) }
        #expect(throws: RuntimeError.self) { try Tensor(zeros: .float, shape: [Int.max, 2]) }
        #expect(throws: RuntimeError.self) { try Tensor(zeros: .float, shape: [-1]) }
        #expect(Tensor.allocationLimit > 1 << 30)
    }
}

/// `onnxc verify`'s comparison: rtol against each element, or against the output's largest magnitude.
@Suite struct TensorComparisonTests {
    @Test func outputScaleForgivesRoundingOfSmallElementsOnly() throws {
        let expected = try Tensor([1000, 0.001, -3] as [Float], shape: [3])
        let rounded = try Tensor([1000.0001, 0.0010002, -3] as [Float], shape: [3])
        #expect(TensorComparison.difference(rounded, expected, rtol: 1e-4, atol: 0) != nil)
        #expect(TensorComparison.difference(rounded, expected, rtol: 1e-4, atol: 0, scale: .output) == nil)
        let wrong = try Tensor([1000, 0.2, -3] as [Float], shape: [3])
        #expect(TensorComparison.difference(wrong, expected, rtol: 1e-4, atol: 0, scale: .output) != nil)
        let errors = TensorComparison.maximumErrors(rounded, expected)
        #expect(errors.relative > 1e-4 && errors.ofOutput < 1e-6)
        // NaN matches NaN, and an infinite expected value does not set the scale.
        let special = try Tensor([.nan, .infinity, 1] as [Float], shape: [3])
        #expect(TensorComparison.difference(special, special, rtol: 1e-4, atol: 0, scale: .output) == nil)
        #expect(TensorComparison.maximumErrors(special, special).ofOutput == 0)
    }
}
