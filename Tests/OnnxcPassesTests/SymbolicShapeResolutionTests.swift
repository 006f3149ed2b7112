import OnnxcCore
import OnnxcIR
@testable import OnnxcPasses
import OnnxcRuntime
import OnnxcTestSupport
import Testing

@Suite struct SymbolicShapeResolutionTests {
    /// x.view(x.size(0), ...) as exporters write it, on x: [batch, 4, 2, 3].
    func viewModel(target extra: [Int64], allowzero: Int64 = 0) throws -> Model {
        let graph = Graph(inputs: [Build.input("x", [.symbolic("batch"), .fixed(4), .fixed(2), .fixed(3)])],
                          outputs: [ValueInfo(name: "y", type: nil)],
                          initializers: [try Build.int64Tensor("zero", [], [0]), try Build.int64Tensor("axes", [1], [0]),
                                         try Build.int64Tensor("rest", [Int64(extra.count)], extra)],
                          nodes: [Build.node("Shape", ["x"], ["s"]),
                                  Build.node("Gather", ["s", "zero"], ["b"], [Attribute("axis", .int(0))]),
                                  Build.node("Unsqueeze", ["b", "axes"], ["b1"]),
                                  Build.node("Concat", ["b1", "rest"], ["target"], [Attribute("axis", .int(0))]),
                                  Build.node("Reshape", ["x", "target"], ["y"], [Attribute("allowzero", .int(allowzero))])])
        return Build.model(graph)
    }

    func batch(_ n: Int) throws -> OnnxcRuntime.Tensor {
        try PassTesting.input((0..<(n * 24)).map(Float.init), [n, 4, 2, 3])
    }

    @Test func copiesTheInputsOwnSymbolicDim() throws {
        let model = try viewModel(target: [2, 2, 6])
        let result = try PassManager(passes: [SymbolicShapeResolution(), DeadCodeElimination()]).run(model)
        #expect(result.graph.nodes.map(\.opType) == ["Reshape"])
        let target = try #require(result.graph.initializer(named: result.graph.nodes[0].inputs[1]))
        #expect(target.data.integers() == [0, 2, 2, 6])
        for n in [1, 3] { try PassTesting.expectSameOutputs(model, result, ["x": try batch(n)]) }
    }

    @Test func infersTheOneProductOfSymbolicDims() throws {
        // x.view(x.size(0) * 4, 6): the first entry is batch·4, not a dim of x, and the rest is a positive constant.
        var model = try viewModel(target: [6])
        model.graph.initializers.append(try Build.int64Tensor("four", [], [4]))
        model.graph.nodes.insert(Build.node("Mul", ["b", "four"], ["b4"]), at: 2)
        model.graph.nodes[3].inputs = ["b4", "axes"]
        let result = try PassManager(passes: [SymbolicShapeResolution(), DeadCodeElimination()]).run(model)
        #expect(result.graph.nodes.map(\.opType) == ["Reshape"])
        #expect(result.graph.initializer(named: result.graph.nodes[0].inputs[1])?.data.integers() == [-1, 6])
        for n in [1, 2] { try PassTesting.expectSameOutputs(model, result, ["x": try batch(n)]) }
    }

    @Test func matchesSymbolicDimsThroughInferredShapes() throws {
        // Reshape(Transpose(x), [x.size(0), 3, 8]): the data is not x, but its inferred dim 0 is the same "batch".
        var model = try viewModel(target: [3, 8])
        model.graph.nodes.insert(Build.node("Transpose", ["x"], ["t"], [Attribute("perm", .ints([0, 3, 2, 1]))]), at: 0)
        model.graph.nodes[5].inputs[0] = "t"
        let (inferred, _) = ShapeInference.infer(model)
        let result = try PassManager(passes: [SymbolicShapeResolution(), DeadCodeElimination()]).run(inferred)
        #expect(result.graph.initializer(named: result.graph.nodes.last?.inputs[1] ?? "")?.data.integers() == [0, 3, 8])
        for n in [1, 2] { try PassTesting.expectSameOutputs(model, result, ["x": try batch(n)]) }
    }

    @Test func foldsStaticSlicesOfSymbolicShapes() throws {
        // Slice(Shape(x), -1, INT64_MAX) of [batch, 4, 2, 3] is [3] whatever the batch.
        let graph = Graph(inputs: [Build.input("x", [.symbolic("batch"), .fixed(4), .fixed(2), .fixed(3)])],
                          outputs: [ValueInfo(name: "y", type: nil)],
                          initializers: [try Build.int64Tensor("start", [1], [-1]), try Build.int64Tensor("end", [1], [Int64.max])],
                          nodes: [Build.node("Shape", ["x"], ["s"]), Build.node("Slice", ["s", "start", "end"], ["last"]),
                                  Build.node("Cast", ["last"], ["y"], [Attribute("to", .int(1))])])
        let (model, _) = ShapeInference.infer(Build.model(graph))
        let result = try PassManager(passes: [SymbolicShapeResolution(), DeadCodeElimination()]).run(model)
        #expect(result.graph.nodes.map(\.opType) == ["Cast"])
        #expect(result.graph.initializer(named: "last")?.data.integers() == [3])
        try PassTesting.expectSameOutputs(model, result, ["x": try batch(2)])
    }

    @Test func foldsStaticDimsSlicedFromSymbolicShapes() throws {
        // torch's attention scale: Slice(Shape(q), [-1], [INT64_MAX]) of q: [batch, 3, 4] is [4]; [0:1] is the
        // batch and stays; the reversed [-1:1:-1] is [4] too.
        let graph = Graph(inputs: [Build.input("x", [.symbolic("batch"), .fixed(3), .fixed(4)])],
                          outputs: [ValueInfo(name: "y", type: nil), ValueInfo(name: "z", type: nil), ValueInfo(name: "w", type: nil)],
                          initializers: [try Build.int64Tensor("last", [1], [-1]), try Build.int64Tensor("end", [1], [Int64.max]),
                                         try Build.int64Tensor("zero", [1], [0]), try Build.int64Tensor("one", [1], [1]),
                                         try Build.int64Tensor("back", [1], [-1])],
                          nodes: [Build.node("Shape", ["x"], ["s"]),
                                  Build.node("Slice", ["s", "last", "end"], ["d"]),
                                  Build.node("Cast", ["d"], ["y"], [Attribute("to", .int(1))]),
                                  Build.node("Slice", ["s", "zero", "one"], ["b"]),
                                  Build.node("Cast", ["b"], ["z"], [Attribute("to", .int(1))]),
                                  Build.node("Slice", ["s", "last", "one", "zero", "back"], ["r"]),
                                  Build.node("Cast", ["r"], ["w"], [Attribute("to", .int(1))])])
        let (model, _) = ShapeInference.infer(Build.model(graph))
        let result = try PassManager(passes: [SymbolicShapeResolution(), DeadCodeElimination()]).run(model)
        #expect(result.graph.nodes.map(\.opType).sorted() == ["Cast", "Cast", "Cast", "Shape", "Slice"])
        #expect(result.graph.initializer(named: "d")?.data.integers() == [4])
        #expect(result.graph.initializer(named: "r")?.data.integers() == [4])
        try PassTesting.expectSameOutputs(model, result, ["x": try PassTesting.input([Float](repeating: 1, count: 24), [2, 3, 4])])
        #expect(ShapeTracer.sliceIndices(start: -1, end: Int64.min, step: -1, count: 3) == [2, 1, 0])
        #expect(ShapeTracer.sliceIndices(start: 0, end: Int64.max, step: 2, count: 5) == [0, 2, 4])
    }

    @Test func leavesTargetsItCannotPin() throws {
        // allowzero=1 gives 0 another meaning.
        let strict = try viewModel(target: [2, 2, 6], allowzero: 1)
        #expect(try PassTesting.apply(SymbolicShapeResolution(), to: strict).graph == strict.graph)
        // x: [?, ?, 4] to [x.size(0), x.size(1) * 4]: unknown dims match nothing, and -1 cannot stand for the
        // product while another entry is not a positive constant.
        let graph = Graph(inputs: [Build.input("x", [.unknown, .unknown, .fixed(4)])], outputs: [ValueInfo(name: "y", type: nil)],
                          initializers: [try Build.int64Tensor("i0", [1], [0]), try Build.int64Tensor("i1", [1], [1]),
                                         try Build.int64Tensor("four", [1], [4])],
                          nodes: [Build.node("Shape", ["x"], ["s"]), Build.node("Gather", ["s", "i0"], ["d0"]),
                                  Build.node("Gather", ["s", "i1"], ["d1"]), Build.node("Mul", ["d1", "four"], ["d14"]),
                                  Build.node("Concat", ["d0", "d14"], ["target"], [Attribute("axis", .int(0))]),
                                  Build.node("Reshape", ["x", "target"], ["y"])])
        let unknown = Build.model(graph)
        #expect(try PassTesting.apply(SymbolicShapeResolution(), to: unknown).graph == unknown.graph)
        // A copied dim may be 0 (an empty batch), so [batch, batch·…] keeps its computed second entry.
        var copied = try viewModel(target: [])
        copied.graph.nodes.insert(Build.node("Mul", ["b1", "b1"], ["bb"]), at: 3)
        copied.graph.nodes[4].inputs = ["b1", "bb"]
        #expect(try PassTesting.apply(SymbolicShapeResolution(), to: copied).graph.nodes.count == copied.graph.nodes.count)
    }
}
