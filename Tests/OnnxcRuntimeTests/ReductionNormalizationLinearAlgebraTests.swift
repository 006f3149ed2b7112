import OnnxcCore
import OnnxcRuntime
import Testing

/// Runs one node through the executor and returns its outputs.
private func run(
    _ op: String, _ inputs: [Tensor?], attributes: [String: AttributeValue] = [:], opset: Int = 18, outputs count: Int = 1,
    domain: String = ""
) throws -> [Tensor] {
    let names = inputs.indices.map { inputs[$0] == nil ? "" : "x\($0)" }
    let outputNames = (0..<count).map { "y\($0)" }
    let node = RuntimeNode(
        name: "n", opType: op, domain: domain, opset: opset, inputs: names, outputs: outputNames, attributes: Attributes(attributes))
    let info = { (name: String) in RuntimeValueInfo(name: name, dtype: nil, shape: nil, shapeText: "?") }
    let graph = RuntimeGraph(
        name: "g", inputs: names.filter { !$0.isEmpty }.map(info), outputs: outputNames.map(info), initializers: [:], nodes: [node])
    var feeds: [String: Value] = [:]
    for (name, tensor) in zip(names, inputs) { if let tensor { feeds[name] = .tensor(tensor) } }
    let result = try Executor(graph: graph).run(feeds)
    return outputNames.compactMap { result[$0]?.tensor }
}

/// A deterministic pseudo-random float in [-1, 1).
private func noise(_ i: Int) -> Float { Float((i &* 1_103_515_245 &+ 12345) % 2001) / 1000 - 1 }

private func floats(_ shape: [Int], seed: Int) throws -> Tensor {
    let count = shape.reduce(1, *)
    return try Tensor((0..<count).map { noise($0 + seed * 7919) }, shape: shape)
}

@Suite struct LinearAlgebraKernelTests {
    /// Large enough to take the multithreaded packed path, with odd sizes (row and panel remainders) and a broadcast batch.
    @Test func matMulMatchesNaiveProduct() throws {
        let (m, k, n) = (131, 301, 263)
        let a = try floats([2, 1, m, k], seed: 1), b = try floats([3, k, n], seed: 2)
        let y = try #require(try run("MatMul", [a, b], opset: 13).first)
        #expect(y.shape == [2, 3, m, n])
        let pa = a.array(Float.self), pb = b.array(Float.self), py = y.array(Float.self)
        for (batchA, batchB, batchY) in [(0, 0, 0), (1, 2, 5)] {
            for (i, j) in [(0, 0), (m - 1, n - 1), (64, 257), (130, 3)] {
                var expected = 0.0
                for p in 0..<k { expected += Double(pa[batchA * m * k + i * k + p]) * Double(pb[batchB * k * n + p * n + j]) }
                #expect(abs(Double(py[batchY * m * n + i * n + j]) - expected) < 1e-3)
            }
        }
    }

    @Test func matMulVectorOperandsDropTheirDim() throws {
        let v = try Tensor([Float(1), 2, 3], shape: [3])
        let m = try Tensor((0..<6).map(Float.init), shape: [3, 2])
        let left = try #require(try run("MatMul", [v, m], opset: 13).first)
        #expect(left.shape == [2])
        #expect(left.array(Float.self) == [16, 22])
        let dot = try #require(try run("MatMul", [v, v], opset: 13).first)
        #expect(dot.shape == [])
        #expect(dot.array(Float.self) == [14])
    }

    @Test func matMulRejectsMismatchedShapes() throws {
        #expect(throws: RuntimeError.self) { try run("MatMul", [try floats([2, 3], seed: 1), try floats([4, 2], seed: 2)], opset: 13) }
    }

    @Test func gemmTransposesScalesAndBroadcastsC() throws {
        let a = try Tensor((0..<6).map(Float.init), shape: [3, 2])  // Aᵀ is 2×3
        let b = try Tensor((0..<12).map(Float.init), shape: [4, 3])  // Bᵀ is 3×4
        let c = try Tensor([Float(1), 2, 3, 4], shape: [4])
        let y = try #require(try run("Gemm", [a, b, c], attributes: [
            "transA": .int(1), "transB": .int(1), "alpha": .float(0.5), "beta": .float(2),
        ], opset: 13).first)
        let pa = a.array(Float.self), pb = b.array(Float.self), py = y.array(Float.self)
        #expect(y.shape == [2, 4])
        for i in 0..<2 {
            for j in 0..<4 {
                var dot: Float = 0
                for p in 0..<3 { dot += pa[p * 2 + i] * pb[j * 3 + p] }
                #expect(py[i * 4 + j] == 0.5 * dot + 2 * Float(j + 1))
            }
        }
    }

    @Test func matMulIntegerSubtractsZeroPoints() throws {
        let a = try Tensor([UInt8(10), 20, 30, 40], shape: [2, 2])
        let b = try Tensor([UInt8(1), 2, 3, 4], shape: [2, 2])
        let y = try #require(try run("MatMulInteger", [a, b, Tensor.scalar(UInt8(10)), Tensor([UInt8(1), 2], shape: [2])], opset: 10).first)
        // (A - 10) · (B - [1, 2]) = [[0, 10], [20, 30]] · [[0, 0], [2, 2]]
        #expect(y.dtype == .int32)
        #expect(y.array(Int32.self) == [20, 20, 60, 60])
    }

    @Test func einsumProductAndDiagonalAgree() throws {
        let x = try floats([2, 3, 4], seed: 3), w = try floats([2, 4, 5], seed: 4)
        let fast = try #require(try run("Einsum", [x, w], attributes: ["equation": .string("bij,bjk->bik")], opset: 12).first)
        let viaMatMul = try #require(try run("MatMul", [x, w], opset: 13).first)
        #expect(fast.shape == [2, 3, 5])
        for (p, q) in zip(fast.array(Float.self), viaMatMul.array(Float.self)) { #expect(abs(p - q) < 1e-5) }
        let square = try Tensor((0..<9).map(Float.init), shape: [3, 3])
        let trace = try #require(try run("Einsum", [square], attributes: ["equation": .string("ii")], opset: 12).first)
        #expect(trace.shape == [])
        #expect(trace.array(Float.self) == [12])
    }
}

@Suite struct ReductionKernelTests {
    @Test func integerSumsWrapAndEmptyReductionsGiveIdentities() throws {
        let x = try Tensor([Int32.max, 1, 5, 6], shape: [2, 2])
        let sum = try #require(try run("ReduceSum", [x, Tensor([Int64(1)], shape: [1])], attributes: ["keepdims": .int(0)], opset: 13).first)
        #expect(sum.array(Int32.self) == [Int32.min, 11])
        let empty = try Tensor(zeros: .int32, shape: [2, 0])
        let minimum = try #require(try run("ReduceMin", [empty, Tensor([Int64(1)], shape: [1])]).first)
        #expect(minimum.shape == [2, 1])
        #expect(minimum.array(Int32.self) == [Int32.max, Int32.max])
        let product = try #require(try run("ReduceProd", [empty], attributes: ["axes": .ints([1])], opset: 13).first)
        #expect(product.array(Int32.self) == [1, 1])
    }

    @Test func axesAttributeBeforeOpset18AndNoopAfter() throws {
        let x = try floats([2, 3, 4], seed: 5)
        let mean = try #require(try run("ReduceMean", [x], attributes: ["axes": .ints([-1, 0])], opset: 13).first)
        #expect(mean.shape == [1, 3, 1])
        let noop = try #require(try run("ReduceMax", [x, Tensor(zeros: .int64, shape: [0])], attributes: ["noop_with_empty_axes": .int(1)]).first)
        #expect(noop.shape == x.shape)
    }

    @Test func topKBreaksTiesByLowerIndex() throws {
        let x = try Tensor([Float(1), 3, 3, 2, 3], shape: [5])
        let result = try run("TopK", [x, Tensor([Int64(3)], shape: [1])], opset: 11, outputs: 2)
        #expect(result[0].array(Float.self) == [3, 3, 3])
        #expect(result[1].array(Int64.self) == [1, 2, 4])
        #expect(throws: RuntimeError.self) { try run("TopK", [x, Tensor([Int64(6)], shape: [1])], opset: 11, outputs: 2) }
    }

    @Test func softmaxAxisSemanticsChangeAtOpset13() throws {
        let x = try floats([2, 2, 3], seed: 6)
        let old = try #require(try run("Softmax", [x], opset: 11).first)  // normalizes over 6 values per batch
        let new = try #require(try run("Softmax", [x], opset: 13).first)  // over the last 3
        let o = old.array(Float.self), n = new.array(Float.self)
        #expect(abs(o[0..<6].reduce(0, +) - 1) < 1e-5)
        #expect(abs(n[0..<3].reduce(0, +) - 1) < 1e-5)
    }
}

@Suite struct NormalizationKernelTests {
    /// Opset 18 scales per group, opset 21 per channel: equal parameters per group must give equal results.
    @Test func groupNormalizationParametersPerGroupAndPerChannel() throws {
        let x = try floats([1, 4, 3], seed: 7)
        let perGroup = try #require(try run("GroupNormalization", [
            x, Tensor([Float(2), 3], shape: [2]), Tensor([Float(0.5), -1], shape: [2]),
        ], attributes: ["num_groups": .int(2)], opset: 18).first)
        let perChannel = try #require(try run("GroupNormalization", [
            x, Tensor([Float(2), 2, 3, 3], shape: [4]), Tensor([Float(0.5), 0.5, -1, -1], shape: [4]),
        ], attributes: ["num_groups": .int(2)], opset: 21).first)
        for (p, q) in zip(perGroup.array(Float.self), perChannel.array(Float.self)) { #expect(abs(p - q) < 1e-6) }
    }

    @Test func layerNormalizationStatistics() throws {
        let x = try Tensor([Float(1), 2, 3, 4, 6, 8], shape: [2, 3])
        let result = try run("LayerNormalization", [x, Tensor([Float(1), 1, 1], shape: [3]), nil], opset: 17, outputs: 3)
        #expect(result[1].shape == [2, 1])
        #expect(result[1].array(Float.self) == [2, 6])
        let y = result[0].array(Float.self)
        #expect(abs(y[0] + y[2]) < 1e-6 && abs(y[1]) < 1e-6)
    }
}

@Suite struct AttentionKernelTests {
    /// The unfused graph the kernel replaces: MatMul(Softmax(MatMul(Q, Kt) · scale + mask), V).
    private func reference(_ q: Tensor, _ kt: Tensor, _ v: Tensor, mask: Tensor?, scale: Float) throws -> Tensor {
        var scores = try #require(try run("MatMul", [q, kt], opset: 13).first)
        if scale != 1 {
            scores = try #require(try run("Mul", [scores, try Tensor([scale], shape: [])], opset: 13).first)
        }
        if let mask { scores = try #require(try run("Add", [scores, mask], opset: 13).first) }
        let probabilities = try #require(try run("Softmax", [scores], opset: 13).first)
        return try #require(try run("MatMul", [probabilities, v], opset: 13).first)
    }

    private func attention(_ q: Tensor, _ kt: Tensor, _ v: Tensor, mask: Tensor?, scale: Float) throws -> Tensor {
        let attributes: [String: AttributeValue] = scale == 1 ? [:] : ["scale": .float(scale)]
        return try #require(try run("Attention", [q, kt, v] + (mask.map { [$0] } ?? []), attributes: attributes,
                                    opset: 1, domain: RuntimeOps.domain).first)
    }

    private func expectMatchesUnfused(q: [Int], kt: [Int], v: [Int], mask: [Int]? = nil, scale: Float = 1,
                                      sourceLocation: SourceLocation = #_sourceLocation) throws {
        let (tq, tk, tv) = (try floats(q, seed: 1), try floats(kt, seed: 2), try floats(v, seed: 3))
        let tm = try mask.map { shape in try Tensor(try floats(shape, seed: 4).array(Float.self).map { $0 * 4 }, shape: shape) }
        let expected = try reference(tq, tk, tv, mask: tm, scale: scale)
        let actual = try attention(tq, tk, tv, mask: tm, scale: scale)
        #expect(TensorComparison.difference(actual, expected, rtol: 1e-5, atol: 1e-6) == nil, sourceLocation: sourceLocation)
    }

    @Test func matchesTheUnfusedOpsWithoutMaskOrScale() throws {
        try expectMatchesUnfused(q: [5, 8], kt: [8, 5], v: [5, 8])
    }

    @Test func matchesWithScaleAndBatchHeadDims() throws {
        try expectMatchesUnfused(q: [2, 3, 7, 16], kt: [2, 3, 16, 7], v: [2, 3, 7, 16], scale: 0.25)
    }

    @Test func matchesWithABroadcastPaddingMaskAndSqDifferentFromSk() throws {
        // BERT's mask [B, 1, 1, Sk]; Sq ≠ Sk and Dv ≠ D; more rows than one row block.
        try expectMatchesUnfused(q: [2, 4, 45, 8], kt: [2, 4, 8, 13], v: [2, 4, 13, 6], mask: [2, 1, 1, 13], scale: 0.125)
    }

    @Test func matchesWithAFullMaskAndBroadcastOperands() throws {
        // K and V shared by every head, a per-query mask, a one-row Q broadcast up by the mask's rows.
        try expectMatchesUnfused(q: [3, 6, 4], kt: [4, 9], v: [9, 5], mask: [6, 9])
        try expectMatchesUnfused(q: [2, 1, 4], kt: [2, 4, 9], v: [2, 9, 5], mask: [2, 6, 9], scale: 2)
    }

    @Test(arguments: [1, 7, 8, 15, 16, 24, 31, 40, 64])
    func matchesForEveryKeyCountThroughTheVectorBlocksAndTheTail(keys: Int) throws {
        // The softmax row runs 16 scores at a time, then one block of 8, then a masked tail.
        try expectMatchesUnfused(q: [2, 9, 8], kt: [2, 8, keys], v: [2, keys, 5], mask: [2, 1, keys], scale: 0.35)
        try expectMatchesUnfused(q: [2, 9, 8], kt: [2, 8, keys], v: [2, keys, 5], scale: 0.35)
    }

    @Test func matchesWithAMaskBroadcastOverTheKeys() throws {
        // A mask of one column per query row: read with column stride 0.
        try expectMatchesUnfused(q: [2, 3, 5, 8], kt: [2, 3, 8, 21], v: [2, 3, 21, 4], mask: [2, 1, 5, 1], scale: 0.5)
    }

    @Test func takesTheParallelPathForLargeProducts() throws {
        try expectMatchesUnfused(q: [2, 4, 130, 64], kt: [2, 4, 64, 130], v: [2, 4, 130, 64], mask: [2, 1, 1, 130], scale: 0.125)
    }

    @Test func maskedKeysGetZeroWeightAndFullyMaskedRowsAreNaNLikeSoftmax() throws {
        let q = try floats([2, 3], seed: 1), kt = try floats([3, 4], seed: 2), v = try floats([4, 2], seed: 3)
        let inf = -Float.infinity
        let mask = try Tensor([0, inf, 0, -1e9, inf, inf, inf, inf], shape: [2, 4])
        let expected = try reference(q, kt, v, mask: mask, scale: 1)
        let actual = try attention(q, kt, v, mask: mask, scale: 1)
        #expect(TensorComparison.difference(actual, expected, rtol: 1e-5, atol: 1e-6) == nil)
        let values = actual.array(Float.self)
        #expect(values[0...1].allSatisfy { $0.isFinite })
        #expect(values[2...3].allSatisfy { $0.isNaN })
    }

    @Test func computesFloat16AndDoubleThroughTheDtypeDispatch() throws {
        let q = try floats([2, 5, 4], seed: 1), kt = try floats([2, 4, 5], seed: 2), v = try floats([2, 5, 3], seed: 3)
        let expected = try attention(q, kt, v, mask: nil, scale: 0.5)
        for dtype in [DType.double, .float16] {
            let cast = { (t: Tensor) throws -> Tensor in
                try #require(try run("Cast", [t], attributes: ["to": .int(Int64(dtype.rawValue))], opset: 13).first)
            }
            let result = try attention(try cast(q), try cast(kt), try cast(v), mask: nil, scale: 0.5)
            #expect(result.dtype == dtype)
            #expect(TensorComparison.difference(try cast(expected), result, rtol: 2e-3, atol: 2e-3) == nil)
        }
    }

    @Test func rejectsMismatchedShapes() throws {
        #expect(throws: RuntimeError.self) { try attention(try floats([3, 4], seed: 1), try floats([5, 3], seed: 2), try floats([3, 2], seed: 3), mask: nil, scale: 1) }
        #expect(throws: RuntimeError.self) { try attention(try floats([3, 4], seed: 1), try floats([4, 3], seed: 2), try floats([3, 2], seed: 3), mask: try floats([2, 3], seed: 4), scale: 1) }
    }
}
