import Foundation
import OnnxcCore
import OnnxcFrontend
import OnnxcIR
import OnnxcPasses
import OnnxcRuntime
import OnnxcTestSupport
import Testing

private func int64s(_ name: String, _ values: [Int64], dims: [Int64]? = nil) throws -> OnnxcIR.Tensor {
    var bytes: [UInt8] = []
    for v in values { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    let data = try TensorData(dtype: .int64, dims: dims ?? [Int64(values.count)], payload: .bytes(ByteSlice(copying: bytes)))
    return OnnxcIR.Tensor(name: name, data: data)
}

private func output(_ name: String) -> ValueInfo { ValueInfo(name: name, type: nil) }

private func to(_ dtype: DType) -> [Attribute] { [Attribute("to", .int(Int64(dtype.rawValue)))] }

private let six: [Float] = [1, -2, 3.5, -0.25, 5, 6]

@Suite struct NoOpEliminationTests {
    @Test func removesEveryKindOfNoOp() throws {
        let graph = Graph(inputs: [Build.input("x", [.fixed(2), .fixed(3)])], outputs: [output("y"), output("y2")],
                          initializers: [try int64s("shape", [2, 3]), try int64s("expand", [1, 3]), try int64s("pads", [0, 0, 0, 0]),
                                         try int64s("s0", [0]), try int64s("sEnd", [Int64.max]), try int64s("sAxis", [1]),
                                         try int64s("minus1", [-1, 3]),
                                         try PassTesting.floats("zero", [3], [0, 0, 0]), try PassTesting.floats("one", [1], [1]),
                                         try PassTesting.floats("zeroScalar", [], [0]), try PassTesting.floats("one11", [1, 1], [1])],
                          nodes: [Build.node("Cast", ["x"], ["a"], to(.float)),
                                  Build.node("Reshape", ["a", "shape"], ["b"]),
                                  Build.node("Expand", ["b", "expand"], ["c"]),
                                  Build.node("Pad", ["c", "pads"], ["d"]),
                                  Build.node("Transpose", ["d"], ["e"], [Attribute("perm", .ints([0, 1]))]),
                                  Build.node("Slice", ["e", "s0", "sEnd", "sAxis"], ["f"]),
                                  Build.node("Split", ["f"], ["g"], [Attribute("axis", .int(1))]),
                                  Build.node("Concat", ["g"], ["h"], [Attribute("axis", .int(0))]),
                                  Build.node("Add", ["h", "zero"], ["i"]),
                                  Build.node("Mul", ["one", "i"], ["j"]),
                                  Build.node("Sub", ["j", "zeroScalar"], ["k"]),
                                  Build.node("Div", ["k", "one11"], ["l"]),
                                  Build.node("Reshape", ["l", "minus1"], ["m"]),
                                  Build.node("Relu", ["m"], ["y"]),
                                  Build.node("Neg", ["m"], ["y2"])])
        let model = ShapeInference.infer(Build.model(graph)).0
        let result = try PassTesting.apply(NoOpElimination(), to: model)
        #expect(result.graph.nodes.map(\.opType) == ["Relu", "Neg"])
        #expect(result.graph.nodes.allSatisfy { $0.inputs == ["x"] })
        try PassTesting.expectSameOutputs(model, result, ["x": try PassTesting.input(six, [2, 3])])
    }

    @Test func keepsOpsThatChangeSomething() throws {
        // Each candidate feeds a Relu so that only the no-op proof, not the graph interface, decides.
        let graph = Graph(inputs: [Build.input("x", [.fixed(3)]), Build.input("z", [.fixed(3)]), Build.input("over", [.fixed(3)]),
                                   Build.input("m", [.fixed(2), .fixed(3)]), Build.input("b", [.symbolic("batch"), .fixed(3)]),
                                   Build.input("shp", [.fixed(2)], .int64)],
                          outputs: (0..<14).map { output("y\($0)") } + [output("direct")],
                          initializers: [try PassTesting.floats("zero13", [1, 3], [0, 0, 0]), try PassTesting.floats("twos", [3], [1, 2, 1]),
                                         try PassTesting.floats("zero3", [3], [0, 0, 0]), try PassTesting.floats("over", [3], [0, 0, 0]),
                                         try int64s("r32", [3, 2]), try int64s("e223", [2, 2, 3]), try int64s("e23", [2, 3]),
                                         try int64s("pads", [0, 1, 0, 0]), try int64s("s1", [1]), try int64s("sEnd", [Int64.max]),
                                         try int64s("sAxis", [1]), try int64s("step2", [2]), try int64s("s0", [0])],
                          nodes: [Build.node("Add", ["x", "zero13"], ["t0"]),                    // broadcasts [3] to [1,3]
                                  Build.node("Mul", ["x", "twos"], ["t1"]),                      // not all ones
                                  Build.node("Sub", ["zero3", "x"], ["t2"]),                     // 0 - x is a negation
                                  Build.node("Add", ["x", "z"], ["t3"]),                         // run-time operand
                                  Build.node("Add", ["x", "over"], ["t4"]),                      // overridable initializer
                                  Build.node("Cast", ["x"], ["t5"], to(.double)),
                                  Build.node("Reshape", ["m", "r32"], ["t6"]),
                                  Build.node("Expand", ["m", "e223"], ["t7"]),
                                  Build.node("Pad", ["m", "pads"], ["t8"]),
                                  Build.node("Transpose", ["m"], ["t9"], [Attribute("perm", .ints([1, 0]))]),
                                  Build.node("Slice", ["m", "s1", "sEnd", "sAxis"], ["t10"]),
                                  Build.node("Slice", ["m", "s0", "sEnd", "sAxis", "step2"], ["t11"]),
                                  Build.node("Expand", ["b", "e23"], ["t12"]),                   // batch may be 1
                                  Build.node("Cast", ["x"], ["direct"], to(.float)),             // a graph output
                                  Build.node("Reshape", ["m", "shp"], ["t13"])]                  // run-time shape
                              + (0..<14).map { Build.node("Relu", ["t\($0)"], ["y\($0)"]) })
        let model = ShapeInference.infer(Build.model(graph)).0
        let result = try PassTesting.apply(NoOpElimination(), to: model)
        #expect(result.graph.nodes.count == graph.nodes.count)
        let m = try PassTesting.input(six, [2, 3])
        try PassTesting.expectSameOutputs(model, result, ["x": try PassTesting.input([1, -2, 3], [3]), "z": try PassTesting.input([0, 0, 0], [3]),
                                                          "m": m,
                                                          "b": try PassTesting.input([1, 2, 3], [1, 3]),
                                                          "shp": try OnnxcRuntime.Tensor([Int64(2), 3], shape: [2])])
    }

    @Test func collapsesExactCastChains() throws {
        let graph = Graph(inputs: [Build.input("x", [.fixed(4)])], outputs: [output("y"), output("lossy"), output("half"), output("wide"), output("back")],
                          nodes: [Build.node("Cast", ["x"], ["d"], to(.double)), Build.node("Cast", ["d"], ["f"], to(.float)),
                                  Build.node("Relu", ["f"], ["y"]),
                                  // float → int32 → float truncates: not exact.
                                  Build.node("Cast", ["x"], ["i"], to(.int32)), Build.node("Cast", ["i"], ["lossy"], to(.float)),
                                  // float → double → float16 → float: the first pair collapses, the second does not.
                                  Build.node("Cast", ["x"], ["d2"], to(.double)), Build.node("Cast", ["d2"], ["h"], to(.float16)),
                                  Build.node("Cast", ["h"], ["half"], to(.float)),
                                  // The double is read elsewhere too: it stays.
                                  Build.node("Cast", ["x"], ["d3"], to(.double)), Build.node("Cast", ["d3"], ["f3"], to(.float)),
                                  Build.node("Neg", ["d3"], ["wide"]), Build.node("Add", ["f3", "y"], ["unused"]),
                                  // A graph output keeps its node: one Cast from x.
                                  Build.node("Cast", ["x"], ["d4"], to(.double)), Build.node("Cast", ["d4"], ["back"], to(.float))])
        let model = ShapeInference.infer(Build.model(graph)).0
        let result = try PassTesting.apply(CastChainElimination(), to: model)
        let ops = result.graph.nodes.map(\.opType)
        #expect(ops.filter { $0 == "Cast" }.count == 6)
        #expect(result.graph.nodes.first { $0.outputs == ["back"] }?.inputs == ["x"])
        #expect(result.graph.nodes.first { $0.outputs == ["y"] }?.inputs == ["x"])
        #expect(result.graph.nodes.first { $0.outputs == ["h"] }?.inputs == ["x"])
        #expect(result.graph.nodes.first { $0.outputs == ["lossy"] }?.inputs == ["i"])
        try PassTesting.expectSameOutputs(model, result, ["x": try PassTesting.input([1.5, -2.7, 1e-3, 70000], [4])])
    }

    @Test func fusesTransposes() throws {
        let graph = Graph(inputs: [Build.input("x", [.fixed(2), .fixed(3), .fixed(4)])], outputs: [output("y"), output("d"), output("r"), output("kept")],
                          nodes: [Build.node("Transpose", ["x"], ["a"], [Attribute("perm", .ints([1, 2, 0]))]),
                                  Build.node("Transpose", ["a"], ["b"], [Attribute("perm", .ints([2, 0, 1]))]),
                                  Build.node("Relu", ["b"], ["y"]),
                                  Build.node("Transpose", ["x"], ["c"], [Attribute("perm", .ints([1, 0, 2]))]),
                                  Build.node("Transpose", ["c"], ["d"], [Attribute("perm", .ints([0, 2, 1]))]),
                                  Build.node("Relu", ["c"], ["r"]),
                                  // Two default (reversing) perms cancel, but the result is a graph output.
                                  Build.node("Transpose", ["x"], ["e"]), Build.node("Transpose", ["e"], ["kept"])])
        let model = ShapeInference.infer(Build.model(graph)).0
        let result = try PassTesting.apply(ConsecutiveTransposeFusion(), to: model)
        #expect(result.graph.nodes.first { $0.outputs == ["y"] }?.inputs == ["x"])
        #expect(result.graph.nodes.first { $0.outputs == ["d"] }?.attribute("perm") == .ints([1, 2, 0]))
        #expect(result.graph.nodes.first { $0.outputs == ["kept"] }?.attribute("perm") == .ints([0, 1, 2]))
        #expect(result.graph.nodes.count == 5)  // Relu, Transpose c (read by Relu r), d, r, kept
        try PassTesting.expectSameOutputs(model, result, ["x": try PassTesting.input((0..<24).map { Float($0) }, [2, 3, 4])])
    }

    @Test func fusesReshapesAndCancelsSqueezePairs() throws {
        let graph = Graph(inputs: [Build.input("x", [.fixed(2), .fixed(3), .fixed(4)]), Build.input("v", [.fixed(3), .fixed(1)]),
                                   Build.input("shp", [.fixed(2)], .int64),
                                   Build.input("sym", [.symbolic("n"), .fixed(2)])],
                          outputs: [output("flat"), output("flatSym"), output("rt"), output("b"), output("copy"), output("y"), output("w"), output("z"), output("s2")],
                          initializers: [try int64s("s64", [6, 4]), try int64s("s46", [4, 6]), try int64s("s0", [0, -1]),
                                         try int64s("ax0", [0]), try int64s("ax2", [2]), try int64s("axm1", [-1])],
                          nodes: [Build.node("Reshape", ["x", "s64"], ["a"]), Build.node("Reshape", ["a", "s46"], ["b"]),
                                  // [0, -1] copies a dim of the intermediate shape: kept.
                                  Build.node("Reshape", ["a", "s0"], ["copy"]),
                                  // Flatten of a static reshaped value becomes one Reshape of x.
                                  Build.node("Unsqueeze", ["x", "ax0"], ["uf"]), Build.node("Flatten", ["uf"], ["flat"], [Attribute("axis", .int(-2))]),
                                  // A symbolic intermediate shape: kept.
                                  Build.node("Reshape", ["sym", "s0"], ["rs"]), Build.node("Flatten", ["rs"], ["flatSym"]),
                                  // A run-time target may hold 0s: kept.
                                  Build.node("Reshape", ["a", "shp"], ["rt"]),
                                  Build.node("Unsqueeze", ["x", "ax0"], ["u"]), Build.node("Squeeze", ["u", "ax0"], ["s"]),
                                  Build.node("Relu", ["s"], ["y"]),
                                  // Squeeze without axes removes only the added dim: x has no other 1s.
                                  Build.node("Unsqueeze", ["x", "axm1"], ["u2"]), Build.node("Squeeze", ["u2"], ["s2"]),
                                  // Different axes: kept.
                                  Build.node("Unsqueeze", ["v", "ax0"], ["uv"]), Build.node("Squeeze", ["uv", "ax2"], ["sv"]),
                                  Build.node("Relu", ["sv"], ["w"]),
                                  // Squeeze then Unsqueeze of the same axis cancels.
                                  Build.node("Squeeze", ["v", "axm1"], ["q"]), Build.node("Unsqueeze", ["q", "axm1"], ["uq"]),
                                  Build.node("Relu", ["uq"], ["z"])])
        let model = ShapeInference.infer(Build.model(graph)).0
        let result = try PassTesting.apply(ConsecutiveReshapeFusion(), to: model)
        #expect(result.graph.nodes.first { $0.outputs == ["b"] }?.inputs == ["x", "s46"])
        #expect(result.graph.nodes.first { $0.outputs == ["copy"] }?.inputs == ["a", "s0"])
        #expect(result.graph.nodes.first { $0.outputs == ["rt"] }?.inputs == ["a", "shp"])
        #expect(result.graph.nodes.first { $0.outputs == ["flat"] }?.opType == "Reshape")
        #expect(result.graph.nodes.first { $0.outputs == ["flat"] }?.inputs.first == "x")
        #expect(result.graph.nodes.first { $0.outputs == ["flatSym"] }?.opType == "Flatten")
        #expect(result.graph.nodes.first { $0.outputs == ["y"] }?.inputs == ["x"])
        #expect(result.graph.nodes.first { $0.outputs == ["z"] }?.inputs == ["v"])
        #expect(result.graph.nodes.contains { $0.outputs == ["sv"] })
        // s2 is a graph output, so its pair stays.
        #expect(result.graph.nodes.contains { $0.outputs == ["s2"] })
        try PassTesting.expectSameOutputs(model, result, ["x": try PassTesting.input((0..<24).map { Float($0) }, [2, 3, 4]),
                                                          "v": try PassTesting.input([1, 2, 3], [3, 1]),
                                                          "shp": try OnnxcRuntime.Tensor([Int64(4), 6], shape: [2]),
                                                          "sym": try PassTesting.input([1, 2, 3, 4], [2, 2])])
    }

    @Test(arguments: [Int64(13), 11])
    func mergesUnsqueezeChains(opset: Int64) throws {
        // mask[b, s] → [b, 1, s] → [b, 1, 1, s], as BERT exports build the attention mask; and axes that
        // interleave: [2, 3] → unsqueeze 0, 2 → [1, 2, 1, 3] → unsqueeze 1, 4 → [1, 1, 2, 1, 1, 3].
        func unsqueeze(_ x: String, _ axes: [Int64], _ y: String) -> Node {
            opset >= 13 ? Build.node("Unsqueeze", [x, "axes_\(axes.map(String.init).joined(separator: "_"))"], [y])
                : Build.node("Unsqueeze", [x], [y], [Attribute("axes", .ints(axes))])
        }
        var initializers: [OnnxcIR.Tensor] = []
        for axes: [Int64] in [[1], [-3], [0, 2], [1, 4]] {
            initializers.append(try Build.int64Tensor("axes_\(axes.map(String.init).joined(separator: "_"))", [Int64(axes.count)], axes))
        }
        let graph = Graph(inputs: [Build.input("m", [.symbolic("b"), .symbolic("s")]), Build.input("x", [.fixed(2), .fixed(3)])],
                          outputs: [output("y"), output("z")], initializers: opset >= 13 ? initializers : [],
                          nodes: [unsqueeze("m", [1], "m1"), unsqueeze("m1", [-3], "y"),
                                  unsqueeze("x", [0, 2], "x1"), unsqueeze("x1", [1, 4], "z")])
        let model = ShapeInference.infer(Build.model(graph, opset: opset)).0
        let result = try PassManager(passes: [ConsecutiveReshapeFusion(), DeadCodeElimination()]).run(model)
        #expect(result.graph.nodes.count == 2)
        func axes(_ node: Node?) -> [Int64]? {
            guard let node else { return nil }
            if case .ints(let a)? = node.attribute("axes") { return a }
            return result.graph.initializer(named: node.inputs[1])?.data.integers()
        }
        #expect(axes(result.graph.nodes.first { $0.outputs == ["y"] }) == [1, 2])
        #expect(axes(result.graph.nodes.first { $0.outputs == ["z"] }) == [0, 1, 3, 4])
        try PassTesting.expectSameOutputs(model, result, ["m": try PassTesting.input([1, 0, 1, 1, 0, 1], [2, 3]),
                                                          "x": try PassTesting.input([1, 2, 3, 4, 5, 6], [2, 3])])
    }

    @Test func foldsTransposesIntoGemm() throws {
        let graph = Graph(inputs: [Build.input("x", [.fixed(3), .fixed(2)])], outputs: [output("y"), output("y2"), output("r")],
                          initializers: [try PassTesting.floats("w", [4, 3], (0..<12).map { Float($0) / 4 }), try PassTesting.floats("c", [4], [1, 2, 3, 4])],
                          nodes: [Build.node("Transpose", ["x"], ["xt"], [Attribute("perm", .ints([1, 0]))]),
                                  Build.node("Transpose", ["w"], ["wt"]),
                                  Build.node("Gemm", ["xt", "wt", "c"], ["y"], [Attribute("alpha", .float(0.5))]),
                                  // wt2 is w again: after two folds the Gemm reads w with transB set as before.
                                  // xt is also read by Relu: it stays.
                                  Build.node("Transpose", ["wt"], ["wt2"]),
                                  Build.node("Gemm", ["xt", "wt2", "c"], ["y2"], [Attribute("transB", .int(1))]),
                                  Build.node("Relu", ["xt"], ["r"])])
        let model = ShapeInference.infer(Build.model(graph)).0
        let result = try PassTesting.apply(TransposeIntoGemm(), to: model)
        let gemm = result.graph.nodes.first { $0.outputs == ["y"] }
        #expect(gemm?.inputs == ["x", "w", "c"])
        #expect(gemm?.attribute("transA") == .int(1) && gemm?.attribute("transB") == .int(1))
        let second = result.graph.nodes.first { $0.outputs == ["y2"] }
        #expect(second?.inputs == ["x", "w", "c"] && second?.attribute("transB") == .int(1))
        #expect(result.graph.nodes.map(\.opType).sorted() == ["Gemm", "Gemm", "Relu", "Transpose"])
        try PassTesting.expectSameOutputs(model, result, ["x": try PassTesting.input(six, [3, 2])])
    }

    static let allPasses: [any Pass] = [ConstantFolding(), SymbolicShapeResolution(), IdentityElimination(), NoOpElimination(), CastChainElimination(),
                                        ConsecutiveTransposeFusion(), ConsecutiveReshapeFusion(), TransposeIntoGemm(),
                                        CommonSubexpressionElimination(), DeadCodeElimination()]

    @Test func exportedTransformerKeepsItsOutputs() throws {
        let model = try ONNXImporter.load(path: Fixtures.testdata.appendingPathComponent("exported/bert_tiny.onnx").path)
        let (inferred, _) = ShapeInference.infer(model)
        let base = try PassManager(passes: Pipelines.passes(level: 1)).run(inferred)
        let optimized = try PassManager(passes: Self.allPasses).run(inferred)
        try Verifier.verify(optimized)
        print("bert_tiny nodes: \(model.graph.nodes.count) original, \(base.graph.nodes.count) at -O1, \(optimized.graph.nodes.count) with these passes")
        #expect(optimized.graph.nodes.count <= base.graph.nodes.count)
        let ids = try OnnxcRuntime.Tensor((0..<16).map { Int64($0 * 7 % 1000) }, shape: [2, 8])
        let mask = try OnnxcRuntime.Tensor([Int64](repeating: 1, count: 16), shape: [2, 8])
        try PassTesting.expectSameOutputs(model, optimized, ["input_ids": ids, "attention_mask": mask])
    }

    /// resnet18 lives in the developer model cache, which CI does not have: skipped when missing.
    @Test func resnetKeepsItsOutputs() throws {
        let path = Fixtures.repositoryRoot.appendingPathComponent(".cache/models/resnet18.onnx").path
        let fallback = "/work/main/.cache/models/resnet18.onnx"
        let found = [path, fallback].first { FileManager.default.fileExists(atPath: $0) }
        guard let found else { return }
        let model = try ONNXImporter.load(path: found)
        let (inferred, _) = ShapeInference.infer(model)
        let optimized = try PassManager(passes: Self.allPasses).run(inferred)
        print("resnet18 nodes: \(model.graph.nodes.count) original, \(optimized.graph.nodes.count) with these passes")
        try Verifier.verify(optimized)
        // Running resnet twice in a debug build takes about a minute: compare only when something changed.
        guard optimized.graph.nodes.map(\.opType) != inferred.graph.nodes.map(\.opType), let input = model.graph.runtimeInputs.first else { return }
        let x = try PassTesting.input((0..<(3 * 224 * 224)).map { Float($0 % 17) / 17 }, [1, 3, 224, 224])
        try PassTesting.expectSameOutputs(model, optimized, [input.name: x])
    }
}
