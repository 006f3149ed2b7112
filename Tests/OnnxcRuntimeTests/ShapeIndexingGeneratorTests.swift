import OnnxcCore
@testable import OnnxcRuntime
import Testing

/// Runs one node through the executor, as a model would.
private func run(_ op: String, _ inputs: [Tensor?], attributes: [String: AttributeValue] = [:], opset: Int = 21, outputs: Int = 1) throws -> [Tensor] {
    let names = inputs.indices.map { inputs[$0] == nil ? "" : "in\($0)" }
    let outputNames = (0..<outputs).map { "out\($0)" }
    let node = RuntimeNode(name: "n", opType: op, domain: "", opset: opset, inputs: names, outputs: outputNames, attributes: Attributes(attributes))
    let infos = names.filter { !$0.isEmpty }.map { RuntimeValueInfo(name: $0, dtype: nil, shape: nil, shapeText: "") }
    let graph = RuntimeGraph(name: "g", inputs: infos, outputs: outputNames.map { RuntimeValueInfo(name: $0, dtype: nil, shape: nil, shapeText: "") },
                             initializers: [:], nodes: [node])
    var feeds: [String: Value] = [:]
    for (i, t) in inputs.enumerated() { if let t { feeds["in\(i)"] = .tensor(t) } }
    let results = try Executor(graph: graph).run(feeds)
    return outputNames.compactMap { results[$0]?.tensor }
}

private func int4(_ values: [Int], shape: [Int]) throws -> Tensor {
    let t = try Tensor(zeros: .int4, shape: shape)
    t.withMutableBytes { raw in
        for (i, v) in values.enumerated() { raw[i / 2] |= (UInt8(truncatingIfNeeded: v) & 0x0F) << (i % 2 == 0 ? 0 : 4) }
    }
    return t
}

@Suite struct ShapeKernelTests {
    @Test func identityPassesSequencesAndEmptyOptionalsThrough() throws {
        let node = RuntimeNode(name: "n", opType: "Identity", domain: "", opset: 21, inputs: ["s"], outputs: ["t"], attributes: Attributes())
        let info = { (name: String) in RuntimeValueInfo(name: name, dtype: nil, shape: nil, shapeText: "") }
        let graph = RuntimeGraph(name: "g", inputs: [info("s")], outputs: [info("t")], initializers: [:], nodes: [node])
        let sequence = Value.sequence(elementType: .float, [Tensor.scalar(Float(1)), Tensor.scalar(Float(2))])
        guard case .sequence(_, let items)? = try Executor(graph: graph).run(["s": sequence])["t"] else { Issue.record("not a sequence"); return }
        #expect(items.count == 2)
        guard case .none(let type)? = try Executor(graph: graph).run(["s": .none(.tensor(.int64))])["t"] else { Issue.record("not empty"); return }
        #expect(type == .tensor(.int64))
    }

    @Test func transposeMovesStrings() throws {
        let x = Tensor(strings: ["a", "b", "c", "d", "e", "f"], shape: [2, 3])
        let y = try run("Transpose", [x])[0]
        #expect(y.shape == [3, 2])
        #expect(y.strings == ["a", "d", "b", "e", "c", "f"])
    }

    @Test func fourBitTensorsKeepTheirPacking() throws {
        let x = try int4([1, -2, 3, -8, 7, 0], shape: [2, 3])
        let y = try run("Transpose", [x])[0]
        #expect(y.dtype == .int4)
        #expect(y.doubles() == [1, -8, -2, 7, 3, 0])
    }

    @Test func padCropsWithNegativePadsThenReflects() throws {
        let x = try Tensor([Float](arrayLiteral: 1, 2, 3, 4, 5), shape: [5])
        let y = try run("Pad", [x, try Tensor([Int64](arrayLiteral: -1, 3), shape: [2])], attributes: ["mode": .string("reflect")])[0]
        // Cropped to [2, 3, 4, 5], then reflected three past the end.
        #expect(y.doubles() == [2, 3, 4, 5, 4, 3, 2])
    }

    @Test func reshapeRejectsImpossibleShapes() throws {
        let x = try Tensor([Float](repeating: 0, count: 6), shape: [2, 3])
        #expect(throws: RuntimeError.self) { try run("Reshape", [x, try Tensor([Int64](arrayLiteral: -1, 4), shape: [2])]) }
        #expect(throws: RuntimeError.self) { try run("Reshape", [x, try Tensor([Int64](arrayLiteral: -1, -1), shape: [2])]) }
        #expect(try run("Reshape", [x, try Tensor([Int64](arrayLiteral: 0, -1), shape: [2])])[0].shape == [2, 3])
    }

    @Test func splitGivesTheLastChunkTheRemainder() throws {
        let x = try Tensor((0..<7).map(Float.init), shape: [7])
        let parts = try run("Split", [x], attributes: ["num_outputs": .int(3)], opset: 18, outputs: 3)
        #expect(parts.map(\.shape) == [[3], [3], [1]])
    }
}

@Suite struct IndexingKernelTests {
    @Test func gatherWrapsNegativeIndicesOnceAndRejectsTheRest() throws {
        let x = try Tensor([Float](arrayLiteral: 10, 20, 30), shape: [3])
        #expect(try run("Gather", [x, try Tensor([Int64](arrayLiteral: -1, 0), shape: [2])])[0].doubles() == [30, 10])
        #expect(throws: RuntimeError.self) { try run("Gather", [x, try Tensor([Int64](arrayLiteral: -4), shape: [1])]) }
        #expect(throws: RuntimeError.self) { try run("Gather", [x, try Tensor([Int64](arrayLiteral: 3), shape: [1])]) }
    }

    @Test func sliceSurvivesExtremeStartsAndSteps() throws {
        let x = try Tensor((0..<5).map(Float.init), shape: [5])
        let extreme = { (v: Int64) in try Tensor([v], shape: [1]) }
        let y = try run("Slice", [x, try extreme(.max), try extreme(.min), nil, try extreme(.min)])[0]
        #expect(y.doubles() == [4])
        let z = try run("Slice", [x, try extreme(.min), try extreme(.max), nil, try extreme(.max)])[0]
        #expect(z.doubles() == [0])
    }

    @Test func scatterNDAddsDuplicates() throws {
        let data = try Tensor([Int32](repeating: 1, count: 4), shape: [4])
        let indices = try Tensor([Int64](arrayLiteral: 1, 1, 3), shape: [3, 1])
        let updates = try Tensor([Int32](arrayLiteral: 5, 6, .max), shape: [3])
        let y = try run("ScatterND", [data, indices, updates], attributes: ["reduction": .string("add")])[0]
        #expect(y.array(Int32.self) == [1, 12, 1, .min])  // wraps like NumPy
    }

    @Test func uniqueCountsNaNOnce() throws {
        let x = try Tensor([Float](arrayLiteral: 2, .nan, 1, .nan, 2), shape: [5])
        let out = try run("Unique", [x], outputs: 4)
        #expect(out[0].count == 3)
        #expect(out[3].array(Int64.self) == [1, 2, 2])
    }
}

@Suite struct GeneratorKernelTests {
    @Test func mersenneTwisterMatchesNumPyRandomState() {
        var rng = GeneratorKernels.MersenneTwister(seed: 0)
        #expect(rng.nextDouble() == 0.5488135039273248)
        var normal = GeneratorKernels.MersenneTwister(seed: 5)
        #expect(abs(normal.nextGaussian() - 0.44122748688504143) < 1e-15)
    }

    @Test func rangeCountsIntegerStepsExactly() throws {
        let y = try run("Range", [Tensor.scalar(Int64(10)), Tensor.scalar(Int64(-3)), Tensor.scalar(Int64(-4))])[0]
        #expect(y.array(Int64.self) == [10, 6, 2, -2])
    }

    @Test func dropoutIsIdentityAtInferenceWithAnAllTrueMask() throws {
        let x = try Tensor([Float](arrayLiteral: 1, -2, 3), shape: [3])
        let out = try run("Dropout", [x], opset: 13, outputs: 2)
        #expect(out[0].doubles() == [1, -2, 3])
        #expect(out[1].array(Bool.self) == [true, true, true])
    }
}
