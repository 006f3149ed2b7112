import OnnxcCore
import OnnxcIR
import OnnxcPasses
import OnnxcRuntime
import OnnxcTestSupport
import Testing

@Suite struct DeadCodeEliminationTests {
    @Test func removesUnreadNodesAndInitializers() throws {
        let graph = Graph(inputs: [Build.input("x", [.fixed(2)])], outputs: [ValueInfo(name: "y", type: nil)],
                          initializers: [try PassTesting.floats("unused", [1], [1]), try PassTesting.floats("w", [2], [1, 2])],
                          nodes: [Build.node("Relu", ["x"], ["dead"]), Build.node("Add", ["x", "w"], ["y"]), Build.node("Neg", ["dead"], ["dead2"])])
        let model = Build.model(graph)
        let result = try PassTesting.apply(DeadCodeElimination(), to: model)
        #expect(result.graph.nodes.map(\.opType) == ["Add"])
        #expect(result.graph.initializers.map(\.name) == ["w"])
        try PassTesting.expectSameOutputs(model, result, ["x": try PassTesting.input([1, -2], [2])])
    }

    @Test func keepsValuesReadBySubgraphsAndOverridableInitializers() throws {
        let branch = Graph(name: "b", outputs: [ValueInfo(name: "t", type: nil)], nodes: [Build.node("Identity", ["captured"], ["t"])])
        let graph = Graph(inputs: [Build.input("c", [], .bool), Build.input("w", [.fixed(1)])],
                          outputs: [ValueInfo(name: "z", type: nil)],
                          initializers: [try PassTesting.floats("w", [1], [3])],
                          nodes: [Build.node("Relu", ["w"], ["captured"]),
                                  Build.node("If", ["c"], ["z"], [Attribute("then_branch", .graph(branch)), Attribute("else_branch", .graph(branch))])])
        let result = try PassTesting.apply(DeadCodeElimination(), to: Build.model(graph))
        #expect(result.graph.nodes.count == 2)
        #expect(result.graph.initializers.count == 1)
    }
}

@Suite struct IdentityEliminationTests {
    @Test func readsThroughIdentityAndInferenceDropout() throws {
        let graph = Graph(inputs: [Build.input("x", [.fixed(3)])], outputs: [ValueInfo(name: "y", type: nil)],
                          nodes: [Build.node("Identity", ["x"], ["a"]), Build.node("Dropout", ["a"], ["b"]), Build.node("Relu", ["b"], ["y"])])
        let model = Build.model(graph)
        let result = try PassTesting.apply(IdentityElimination(), to: model)
        #expect(result.graph.nodes.map(\.opType) == ["Relu"])
        #expect(result.graph.nodes[0].inputs == ["x"])
        try PassTesting.expectSameOutputs(model, result, ["x": try PassTesting.input([1, -2, 3], [3])])
    }

    @Test func keepsGraphOutputsUsedMasksAndTrainingDropout() throws {
        let graph = Graph(inputs: [Build.input("x", [.fixed(3)]), Build.input("train", [], .bool)],
                          outputs: [ValueInfo(name: "y", type: nil), ValueInfo(name: "m", type: nil), ValueInfo(name: "d", type: nil)],
                          nodes: [Build.node("Identity", ["x"], ["y"]),
                                  Build.node("Dropout", ["x"], ["a", "m"]),
                                  Build.node("Dropout", ["x", "", "train"], ["d"])])
        #expect(try PassTesting.apply(IdentityElimination(), to: Build.model(graph)).graph.nodes.count == 3)
    }
}

@Suite struct CommonSubexpressionEliminationTests {
    @Test func mergesEqualNodesAndConstants() throws {
        let graph = Graph(inputs: [Build.input("x", [.fixed(2)])], outputs: [ValueInfo(name: "y", type: nil)],
                          initializers: [try PassTesting.floats("one", [2], [1, 1]), try PassTesting.floats("uno", [2], [1, 1])],
                          nodes: [Build.node("Add", ["x", "one"], ["a"]), Build.node("Add", ["x", "uno"], ["b"]),
                                  Build.node("LeakyRelu", ["a"], ["c"], [Attribute("alpha", .float(0.1))]),
                                  Build.node("LeakyRelu", ["b"], ["d"], [Attribute("alpha", .float(0.1))]),
                                  Build.node("Mul", ["c", "d"], ["y"])])
        let model = Build.model(graph)
        let result = try PassTesting.apply(CommonSubexpressionElimination(), to: model)
        #expect(result.graph.nodes.map(\.opType) == ["Add", "LeakyRelu", "Mul"])
        #expect(result.graph.nodes[2].inputs == ["c", "c"])
        #expect(result.graph.initializers.map(\.name) == ["one"])
        try PassTesting.expectSameOutputs(model, result, ["x": try PassTesting.input([0.5, -2], [2])])
    }

    @Test func keepsDifferentAttributesAndRandomOps() throws {
        let graph = Graph(inputs: [Build.input("x", [.fixed(2)])], outputs: [ValueInfo(name: "y", type: nil), ValueInfo(name: "r", type: nil)],
                          nodes: [Build.node("LeakyRelu", ["x"], ["c"], [Attribute("alpha", .float(0.1))]),
                                  Build.node("LeakyRelu", ["x"], ["d"], [Attribute("alpha", .float(0.2))]),
                                  Build.node("Add", ["c", "d"], ["y"]),
                                  Build.node("RandomUniformLike", ["x"], ["r1"]), Build.node("RandomUniformLike", ["x"], ["r2"]),
                                  Build.node("Add", ["r1", "r2"], ["r"])])
        #expect(try PassTesting.apply(CommonSubexpressionElimination(), to: Build.model(graph)).graph.nodes.count == 6)
    }
}

@Suite struct ConstantFoldingTests {
    @Test func foldsConstantChainsWithTheRuntimeKernels() throws {
        let graph = Graph(inputs: [Build.input("x", [.fixed(2)])], outputs: [ValueInfo(name: "y", type: nil)],
                          initializers: [try PassTesting.floats("a", [2], [1, 4])],
                          nodes: [Build.node("Sqrt", ["a"], ["s"]), Build.node("Neg", ["s"], ["n"]), Build.node("Add", ["x", "n"], ["y"])])
        let model = Build.model(graph)
        let result = try PassTesting.apply(ConstantFolding(), to: model)
        #expect(result.graph.nodes.map(\.opType) == ["Add"])
        #expect(result.graph.initializer(named: "n")?.data.numericValue(at: 1) == -2)
        try PassTesting.expectSameOutputs(model, result, ["x": try PassTesting.input([3, 5], [2])])
    }

    @Test func resolvesStaticShapesButNotSymbolicOnes() throws {
        let graph = Graph(inputs: [Build.input("x", [.symbolic("batch"), .fixed(4)])], outputs: [ValueInfo(name: "y", type: nil), ValueInfo(name: "z", type: nil)],
                          initializers: [try Build.floatTensor("unused", [0], [])],
                          nodes: [Build.node("Shape", ["x"], ["shape"], [Attribute("start", .int(1))]),
                                  Build.node("Cast", ["shape"], ["y"], [Attribute("to", .int(1))]),
                                  Build.node("Shape", ["x"], ["full"]), Build.node("Cast", ["full"], ["z"], [Attribute("to", .int(1))])])
        let model = Build.model(graph)
        let result = try PassTesting.apply(ConstantFolding(), to: model)
        // Shape(start=1) of [batch, 4] is [4]: folded; the full shape still depends on the batch.
        #expect(result.graph.nodes.map(\.opType) == ["Cast", "Shape", "Cast"])
        try PassTesting.expectSameOutputs(model, result, ["x": try PassTesting.input([Float](repeating: 1, count: 8), [2, 4])])
    }

    @Test func foldsStaticDimsPickedFromSymbolicShapes() throws {
        let index = try TensorData(dtype: .int64, dims: [], payload: .bytes(ByteSlice(copying: [1, 0, 0, 0, 0, 0, 0, 0])))
        let first = try TensorData(dtype: .int64, dims: [], payload: .bytes(ByteSlice(copying: [0, 0, 0, 0, 0, 0, 0, 0])))
        let graph = Graph(inputs: [Build.input("x", [.symbolic("batch"), .fixed(4)])],
                          outputs: [ValueInfo(name: "y", type: nil), ValueInfo(name: "z", type: nil)],
                          initializers: [Tensor(name: "one", data: index), Tensor(name: "zero", data: first)],
                          nodes: [Build.node("Shape", ["x"], ["s"]),
                                  Build.node("Gather", ["s", "one"], ["d1"], [Attribute("axis", .int(0))]),
                                  Build.node("Cast", ["d1"], ["y"], [Attribute("to", .int(1))]),
                                  Build.node("Gather", ["s", "zero"], ["d0"]),
                                  Build.node("Cast", ["d0"], ["z"], [Attribute("to", .int(1))])])
        let model = Build.model(graph)
        let result = try PassTesting.apply(ConstantFolding(), to: model)
        // Dim 1 is 4 whatever the batch: that Gather folds (the Casts produce graph outputs and stay); dim 0 is
        // the batch: its Gather is kept.
        #expect(result.graph.nodes.map(\.opType) == ["Shape", "Cast", "Gather", "Cast"])
        #expect(result.graph.initializer(named: "d1")?.data.numericValue(at: 0) == 4)
        try PassTesting.expectSameOutputs(model, result, ["x": try PassTesting.input([Float](repeating: 1, count: 12), [3, 4])])
    }

    @Test func foldsStaticDimsSlicedFromSymbolicShapes() throws {
        // torch's attention scale: Slice(Shape(q), [-1], [INT64_MAX]) of q: [batch, 3, 4] is [4]; [0:1] is the batch.
        let graph = Graph(inputs: [Build.input("x", [.symbolic("batch"), .fixed(3), .fixed(4)])],
                          outputs: [ValueInfo(name: "y", type: nil), ValueInfo(name: "z", type: nil), ValueInfo(name: "w", type: nil)],
                          initializers: [try DecomposedPatterns.int64s("last", [-1]), try DecomposedPatterns.int64s("end", [Int64.max]),
                                         try DecomposedPatterns.int64s("zero", [0]), try DecomposedPatterns.int64s("one", [1]),
                                         try DecomposedPatterns.int64s("back", [-1])],
                          nodes: [Build.node("Shape", ["x"], ["s"]),
                                  Build.node("Slice", ["s", "last", "end"], ["d"]),
                                  Build.node("Cast", ["d"], ["y"], [Attribute("to", .int(1))]),
                                  Build.node("Slice", ["s", "zero", "one"], ["b"]),
                                  Build.node("Cast", ["b"], ["z"], [Attribute("to", .int(1))]),
                                  Build.node("Slice", ["s", "last", "one", "zero", "back"], ["r"]),
                                  Build.node("Cast", ["r"], ["w"], [Attribute("to", .int(1))])])
        let model = Build.model(graph)
        let result = try PassTesting.apply(ConstantFolding(), to: model)
        // [-1:] and the reversed [-1:1:-1] (= [4]) fold; [0:1] is the batch and stays.
        #expect(result.graph.nodes.map(\.opType) == ["Shape", "Cast", "Slice", "Cast", "Cast"])
        #expect(result.graph.initializer(named: "d")?.data.numericValue(at: 0) == 4)
        #expect(result.graph.initializer(named: "r")?.data.elementCount == 1)
        try PassTesting.expectSameOutputs(model, result, ["x": try PassTesting.input([Float](repeating: 1, count: 24), [2, 3, 4])])
    }

    @Test func respectsTheSizeLimitAndOverridableInputs() throws {
        let shape = try TensorData(dtype: .int64, dims: [1], payload: .bytes(ByteSlice(copying: [0, 1, 0, 0, 0, 0, 0, 0])))
        let graph = Graph(inputs: [Build.input("w", [.fixed(1)])], outputs: [ValueInfo(name: "big", type: nil), ValueInfo(name: "v", type: nil)],
                          initializers: [Tensor(name: "n", data: shape), try PassTesting.floats("w", [1], [2])],
                          nodes: [Build.node("ConstantOfShape", ["n"], ["b"]), Build.node("Relu", ["b"], ["big"]),
                                  Build.node("Neg", ["w"], ["v0"]), Build.node("Relu", ["v0"], ["v"])])
        let options = PassOptions(constantFoldingByteLimit: 64)
        let result = try PassManager(passes: [ConstantFolding()], options: options).run(Build.model(graph))
        // 256 floats exceed 64 bytes; `w` is also an input, so its value is not known until run time.
        #expect(result.graph.nodes.count == 4)
    }
}
