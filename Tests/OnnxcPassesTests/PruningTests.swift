import CKernels
import OnnxcCore
import OnnxcIR
@testable import OnnxcPasses
import OnnxcRuntime
import OnnxcTestSupport
import Testing

/// Small graphs for channel pruning, and the oracle every test uses: removing a channel must equal the original
/// model with that channel zeroed in each consumer's weight slice (the positions the summary reports).
enum PruningTesting {
    struct Graph {
        var nodes: [Node] = []
        var initializers: [OnnxcIR.Tensor] = []
        var seed = 1

        mutating func conv(_ x: String, _ y: String, _ name: String, in c: Int64, out: Int64, kernel: Int64 = 3, group: Int64 = 1) throws {
            let (node, weights) = try LayoutTesting.conv(x, y, name: name, in: c, out: out, kernel: kernel, group: group, seed: seed)
            seed += 7
            nodes.append(node)
            initializers += weights
        }

        mutating func op(_ op: String, _ inputs: [String], _ outputs: [String], _ attributes: [Attribute] = []) {
            nodes.append(LayoutTesting.node(op, inputs, outputs, name: outputs[0] + "_node", attributes))
        }

        func model(input: [Int64] = [2, 3, 6, 6], outputs: [String] = ["y"]) -> Model {
            LayoutTesting.model(inputs: [LayoutTesting.input("x", input)], outputs: outputs, initializers: initializers, nodes: nodes)
        }
    }

    static func prune(_ model: Model, ratio: Double = 0.25, minimum: Int = 1) throws -> (Model, PruningSummary) {
        try ChannelPruning.prune(model, options: PruningOptions(ratio: ratio, minimumChannels: minimum))
    }

    /// The original with every removed input position zeroed in its consumer's weights.
    static func masked(_ model: Model, _ summary: PruningSummary) throws -> Model {
        var result = model
        for entry in summary.removedChannels where !entry.inputs.isEmpty {
            guard let n = result.graph.nodes.firstIndex(where: { $0.name == entry.layer }) else { continue }
            let node = result.graph.nodes[n]
            if case .int(let g)? = node.attribute("group"), g != 1 { continue }
            guard let w = result.graph.initializer(named: node.inputs[1]) else { continue }
            var values = w.data.bytes.map { bytes in bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) } } ?? []
            let dims = w.dims.map(Int.init)
            let transB: Bool = { if case .int(let t)? = node.attribute("transB") { return t != 0 }; return false }()
            // The axis of the weight that meets the input's channels.
            let axis = node.opType == "Conv" || (node.opType == "Gemm" && transB) ? 1 : 0
            let inner = dims[(axis + 1)...].reduce(1, *), count = dims[axis]
            for i in values.indices where entry.inputs.contains((i / inner) % count) { values[i] = 0 }
            let name = w.name + "_masked"
            result.graph.initializers.append(try Build.floatTensor(name, w.dims, values))
            result.graph.nodes[n].inputs[1] = name
        }
        return result
    }

    static func expectPrunedEqualsMasked(_ model: Model, _ pruned: Model, _ summary: PruningSummary,
                                         sourceLocation: SourceLocation = #_sourceLocation) throws {
        try LayoutTesting.expectSameOutputs(try masked(model, summary), pruned, sourceLocation: sourceLocation)
    }

    static func dims(_ model: Model, weightOf node: String) -> [Int64]? {
        guard let n = model.graph.nodes.first(where: { $0.name == node }) else { return nil }
        return model.graph.initializer(named: n.inputs[1])?.dims
    }
}

@Suite struct ChannelPruningTests {
    @Test func residualAddTiesItsProducersIntoOneGroup() throws {
        var g = PruningTesting.Graph()
        try g.conv("x", "a", "a", in: 3, out: 8)
        g.op("Relu", ["a"], ["ra"])
        try g.conv("ra", "b", "b", in: 8, out: 8)
        g.op("Add", ["ra", "b"], ["s"])
        try g.conv("s", "y", "c", in: 8, out: 4)
        let model = g.model()
        let (pruned, summary) = try PruningTesting.prune(model)
        let residual = try #require(summary.groups.first { $0.layers.contains("a") })
        #expect(Set(residual.layers) == ["a", "b"])
        #expect(residual.channelsBefore == 8 && residual.channelsAfter == 6)
        // The last layer feeds the graph output: its channels stay, with the reason.
        let head = try #require(summary.groups.first { $0.layers == ["c"] })
        #expect(head.channelsAfter == 4 && head.reasons.contains { $0.contains("graph output") })
        #expect(PruningTesting.dims(pruned, weightOf: "a") == [6, 3, 3, 3])
        #expect(PruningTesting.dims(pruned, weightOf: "b") == [6, 6, 3, 3])
        #expect(PruningTesting.dims(pruned, weightOf: "c") == [4, 6, 3, 3])
        try PruningTesting.expectPrunedEqualsMasked(model, pruned, summary)
    }

    @Test func concatAndSplitKeepTheirOffsets() throws {
        var g = PruningTesting.Graph()
        try g.conv("x", "a", "a", in: 3, out: 6)
        try g.conv("x", "b", "b", in: 3, out: 4, kernel: 1)
        g.op("Concat", ["a", "b"], ["ab"], [Attribute("axis", .int(1))])
        try g.conv("ab", "c", "c", in: 10, out: 8)
        g.op("Sigmoid", ["c"], ["sc"])
        g.op("Split", ["sc"], ["s0", "s1"], [Attribute("axis", .int(1)), Attribute("split", .ints([3, 5]))])
        try g.conv("s1", "d", "d", in: 5, out: 3, kernel: 1)
        // The first half rejoins after the second one: positions 0..<3 of the Concat are c's channels 0..<3 again.
        g.op("Concat", ["s0", "d", "s0"], ["cat"], [Attribute("axis", .int(1))])
        try g.conv("cat", "y", "e", in: 9, out: 2)
        var model = g.model()
        model.opsetImports = [OpsetImport(domain: "", version: 11)]
        let (pruned, summary) = try PruningTesting.prune(model, ratio: 0.5)
        #expect(PruningTesting.dims(pruned, weightOf: "a") == [3, 3, 3, 3])
        #expect(PruningTesting.dims(pruned, weightOf: "b") == [2, 3, 1, 1])
        #expect(PruningTesting.dims(pruned, weightOf: "c")?.prefix(2) == [4, 5])
        let split = try #require(pruned.graph.nodes.first { $0.opType == "Split" })
        guard case .ints(let sizes)? = split.attribute("split") else { Issue.record("split sizes"); return }
        #expect(sizes.reduce(0, +) == 4 && sizes.allSatisfy { $0 >= 1 })
        try PruningTesting.expectPrunedEqualsMasked(model, pruned, summary)
    }

    @Test func splitSizesAsAnInputAreRewritten() throws {
        var g = PruningTesting.Graph()
        try g.conv("x", "a", "a", in: 3, out: 8)
        g.initializers.append(try OnnxcIR.Tensor(name: "sizes", data: TensorData(int64s: [4, 4], dims: [2])))
        g.op("Split", ["a", "sizes"], ["p", "q"], [Attribute("axis", .int(1))])
        g.op("Add", ["p", "q"], ["pq"])
        try g.conv("pq", "y", "b", in: 4, out: 2)
        let model = g.model()
        let (pruned, summary) = try PruningTesting.prune(model, ratio: 0.5)
        // The halves are tied by the Add: the same positions go from both.
        #expect(PruningTesting.dims(pruned, weightOf: "a")?.first == 4)
        try PruningTesting.expectPrunedEqualsMasked(model, pruned, summary)
    }

    @Test func depthwiseCouplesInputAndOutputChannels() throws {
        var g = PruningTesting.Graph()
        try g.conv("x", "a", "a", in: 3, out: 8, kernel: 1)
        g.op("Clip", ["a"], ["ca"])
        try g.conv("ca", "dw", "dw", in: 8, out: 8, group: 8)
        try g.conv("dw", "y", "b", in: 8, out: 4, kernel: 1)
        let model = g.model()
        let (pruned, summary) = try PruningTesting.prune(model, ratio: 0.5)
        let dw = try #require(pruned.graph.nodes.first { $0.name == "dw" })
        #expect(dw.attribute("group") == .int(4))
        #expect(PruningTesting.dims(pruned, weightOf: "dw") == [4, 1, 3, 3])
        #expect(PruningTesting.dims(pruned, weightOf: "b") == [4, 4, 1, 1])
        #expect(summary.groups.first { $0.layers == ["a"] }?.members.contains("dw") == true)
        try PruningTesting.expectPrunedEqualsMasked(model, pruned, summary)
    }

    @Test func flattenIntoGemmRemovesWholeChannelBlocks() throws {
        var g = PruningTesting.Graph()
        try g.conv("x", "a", "a", in: 3, out: 4)
        g.op("MaxPool", ["a"], ["p"], [Attribute("kernel_shape", .ints([2, 2])), Attribute("strides", .ints([2, 2]))])
        g.op("Flatten", ["p"], ["f"])
        g.initializers.append(try LayoutTesting.weights("fc_w", [5, 36], seed: 90))
        g.initializers.append(try LayoutTesting.weights("fc_b", [5], seed: 91))
        g.nodes.append(LayoutTesting.node("Gemm", ["f", "fc_w", "fc_b"], ["y"], name: "fc", [Attribute("transB", .int(1))]))
        let model = g.model()
        let (pruned, summary) = try PruningTesting.prune(model, ratio: 0.5)
        #expect(PruningTesting.dims(pruned, weightOf: "fc") == [5, 18])
        let cut = try #require(summary.removedChannels.first { $0.layer == "fc" })
        #expect(cut.inputs.count == 18 && Set(cut.inputs.map { $0 / 9 }).count == 2)
        try PruningTesting.expectPrunedEqualsMasked(model, pruned, summary)
    }

    @Test func reshapeThatMixesChannelsWithTheBatchIsReported() throws {
        var g = PruningTesting.Graph()
        try g.conv("x", "a", "a", in: 3, out: 8)
        try g.conv("x", "b", "b", in: 3, out: 8)
        g.initializers.append(try OnnxcIR.Tensor(name: "shape", data: TensorData(int64s: [16, 36], dims: [2])))
        g.op("Reshape", ["a", "shape"], ["r"])
        g.op("Relu", ["r"], ["y1"])
        try g.conv("b", "y2", "c", in: 8, out: 2)
        let (pruned, summary) = try PruningTesting.prune(g.model(outputs: ["y1", "y2"]))
        let group = try #require(summary.groups.first { $0.layers == ["a"] })
        #expect(group.channelsAfter == 8 && group.reasons.contains { $0.contains("does not follow") }, "\(group.reasons)")
        #expect(PruningTesting.dims(pruned, weightOf: "a") == [8, 3, 3, 3])
        #expect(PruningTesting.dims(pruned, weightOf: "b") == [6, 3, 3, 3])
    }

    @Test func reshapeIntoHeadsPrunesWholeHeads() throws {
        // [2, 8, 6, 6] → [2, 2, 4, 36]: 2 "heads" of 4 channels; the merge back to 8 channels feeds a conv.
        var g = PruningTesting.Graph()
        try g.conv("x", "a", "a", in: 3, out: 8)
        g.initializers.append(try OnnxcIR.Tensor(name: "split", data: TensorData(int64s: [2, 2, 4, 36], dims: [4])))
        g.initializers.append(try OnnxcIR.Tensor(name: "merge", data: TensorData(int64s: [2, 8, 6, 6], dims: [4])))
        g.op("Reshape", ["a", "split"], ["heads"])
        g.op("Sigmoid", ["heads"], ["s"])
        g.op("Reshape", ["s", "merge"], ["m"])
        try g.conv("m", "y", "b", in: 8, out: 2)
        let model = g.model()
        let (pruned, summary) = try PruningTesting.prune(model, ratio: 0.5)
        #expect(PruningTesting.dims(pruned, weightOf: "a") == [4, 3, 3, 3])
        let cut = try #require(summary.removedChannels.first { $0.layer == "b" })
        #expect(cut.inputs == [0, 1, 2, 3] || cut.inputs == [4, 5, 6, 7])
        #expect(summary.groups.first { $0.layers == ["a"] }?.blockSize == 4)
        try PruningTesting.expectPrunedEqualsMasked(model, pruned, summary)
    }

    @Test func convTransposeResizePadAndChannelSlicesFollow() throws {
        var g = PruningTesting.Graph()
        try g.conv("x", "a", "a", in: 3, out: 8)
        g.initializers.append(try LayoutTesting.weights("up_w", [8, 6, 2, 2], seed: 70))
        g.nodes.append(LayoutTesting.node("ConvTranspose", ["a", "up_w"], ["u"], name: "up", [Attribute("strides", .ints([2, 2]))]))
        g.initializers.append(try Build.floatTensor("scales", [4], [1, 1, 2, 2]))
        g.op("Resize", ["u", "", "scales"], ["r"], [Attribute("mode", .string(Array("nearest".utf8)))])
        g.initializers.append(try OnnxcIR.Tensor(name: "pads", data: TensorData(int64s: [0, 0, 1, 1, 0, 0, 1, 1], dims: [8])))
        g.op("Pad", ["r", "pads"], ["p"])
        for (name, values) in [("starts", [Int64(1)]), ("ends", [5]), ("axes", [1])] {
            g.initializers.append(try OnnxcIR.Tensor(name: name, data: TensorData(int64s: values, dims: [1])))
        }
        g.op("Slice", ["p", "starts", "ends", "axes"], ["s"])
        try g.conv("s", "y", "b", in: 4, out: 2)
        let model = g.model()
        let (pruned, summary) = try PruningTesting.prune(model, ratio: 0.5)
        #expect(PruningTesting.dims(pruned, weightOf: "a")?.first == 4)
        #expect(PruningTesting.dims(pruned, weightOf: "up")?.prefix(2) == [4, 3])
        // b reads the Slice's channels 1 ..< 5 of the 6 the transposed conv makes; 3 are left in total.
        let slice = try #require(pruned.graph.nodes.first { $0.opType == "Slice" })
        let starts = try #require(pruned.graph.initializer(named: slice.inputs[1])?.data.integers())
        let ends = try #require(pruned.graph.initializer(named: slice.inputs[2])?.data.integers())
        #expect(PruningTesting.dims(pruned, weightOf: "b")?[1] == ends[0] - starts[0])
        try PruningTesting.expectPrunedEqualsMasked(model, pruned, summary)
    }

    @Test func ratioZeroChangesNothing() throws {
        var g = PruningTesting.Graph()
        try g.conv("x", "a", "a", in: 3, out: 8)
        try g.conv("a", "y", "b", in: 8, out: 4)
        let model = g.model()
        let (pruned, summary) = try PruningTesting.prune(model, ratio: 0)
        #expect(summary.parametersAfter == summary.parametersBefore && summary.removedChannels.isEmpty)
        #expect(pruned.graph.nodes == model.graph.nodes)
        try LayoutTesting.expectSameOutputs(model, pruned)
    }

    @Test func noLayerIsLeftWithoutChannels() throws {
        var g = PruningTesting.Graph()
        try g.conv("x", "a", "a", in: 3, out: 2)
        try g.conv("a", "b", "b", in: 2, out: 5)
        try g.conv("b", "y", "c", in: 5, out: 2)
        let model = g.model()
        let (pruned, summary) = try PruningTesting.prune(model, ratio: 0.99)
        #expect(PruningTesting.dims(pruned, weightOf: "a")?.first == 1)
        #expect(PruningTesting.dims(pruned, weightOf: "b")?.first == 1)
        let (kept, _) = try PruningTesting.prune(model, ratio: 0.99, minimum: 3)
        #expect(PruningTesting.dims(kept, weightOf: "a")?.first == 2)
        #expect(PruningTesting.dims(kept, weightOf: "b")?.first == 3)
        try PruningTesting.expectPrunedEqualsMasked(model, pruned, summary)
    }

    @Test func excludedLayersKeepTheirOutputs() throws {
        var g = PruningTesting.Graph()
        try g.conv("x", "a", "a", in: 3, out: 8)
        try g.conv("a", "b", "b", in: 8, out: 8)
        try g.conv("b", "y", "c", in: 8, out: 2)
        let model = g.model()
        let (pruned, summary) = try ChannelPruning.prune(model, options: PruningOptions(ratio: 0.5, excludedNodes: ["b"]))
        #expect(PruningTesting.dims(pruned, weightOf: "b") == [8, 4, 3, 3])
        #expect(summary.unpruned.contains { $0.layer == "b" })
        #expect(throws: PruningError.self) { try ChannelPruning.prune(model, options: PruningOptions(ratio: 0.5, excludedNodes: ["nope"])) }
        #expect(throws: PruningError.self) { try ChannelPruning.prune(model, options: PruningOptions(ratio: 1)) }
    }

    @Test func roundingKeepsMultiplesOfTheBlock() throws {
        var g = PruningTesting.Graph()
        try g.conv("x", "a", "a", in: 3, out: 20)
        try g.conv("a", "y", "b", in: 20, out: 2)
        let (pruned, _) = try ChannelPruning.prune(g.model(), options: PruningOptions(ratio: 0.3, roundTo: 8))
        #expect(PruningTesting.dims(pruned, weightOf: "a")?.first == 16)
    }

    @Test func elementwiseConstantsAndBatchNormAreCut() throws {
        var g = PruningTesting.Graph()
        try g.conv("x", "a", "a", in: 3, out: 6)
        for (i, name) in ["scale", "bias", "mean", "var"].enumerated() {
            g.initializers.append(try Build.floatTensor(name, [6], (0..<6).map { Float($0 + i) * 0.1 + 0.5 }))
        }
        g.op("BatchNormalization", ["a", "scale", "bias", "mean", "var"], ["bn"])
        g.initializers.append(try Build.floatTensor("gain", [1, 6, 1, 1], (0..<6).map { Float($0) + 1 }))
        g.op("Mul", ["bn", "gain"], ["m"])
        g.op("PRelu", ["m", "gain"], ["pr"])
        try g.conv("pr", "y", "b", in: 6, out: 2)
        let model = g.model()
        let (pruned, summary) = try ChannelPruning.prune(model, options: PruningOptions(ratio: 0.5, criterion: .bnScale))
        let bn = try #require(pruned.graph.nodes.first { $0.opType == "BatchNormalization" })
        #expect(bn.inputs.dropFirst().allSatisfy { pruned.graph.initializer(named: $0)?.dims == [3] })
        // bn-scale keeps the channels with the largest |γ|: 3, 4, 5.
        #expect(summary.removedChannels.first { $0.layer == "a" }?.outputs == [0, 1, 2])
        try PruningTesting.expectPrunedEqualsMasked(model, pruned, summary)
    }

    /// Squared error of `model`'s output against the original's on fresh inputs, plain and refitted.
    func refitErrors(_ model: Model, ratio: Double) throws -> (plain: Double, refit: Double, summary: PruningSummary) {
        let batches: [[String: Value]] = try (0..<4).map { i in
            ["x": .tensor(try OnnxcRuntime.Tensor(Pseudorandom.floats(4 * 3 * 36, seed: 200 + i), shape: [4, 3, 6, 6]))]
        }
        let (plain, _) = try ChannelPruning.prune(model, options: PruningOptions(ratio: ratio))
        let (refit, summary) = try ChannelPruning.prune(model, options: PruningOptions(ratio: ratio), calibration: batches)
        let feeds = try LayoutTesting.feeds(model)
        let reference = try #require(try PassTesting.outputs(model, feeds)["y"])
        func error(_ m: Model) throws -> Double {
            let t = try #require(try PassTesting.outputs(m, feeds)["y"])
            return zip(t.doubles(), reference.doubles()).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        }
        return (try error(plain), try error(refit), summary)
    }

    @Test func refittingIsExactWhenTheKeptChannelsSpanTheRemovedOnes() throws {
        // a is a 1×1 map of 3 input channels to 12: any 6 of its outputs (and the bias column) span all 12, so
        // least squares reproduces b's output from them to rounding, where plain removal loses half of it.
        var g = PruningTesting.Graph()
        try g.conv("x", "a", "a", in: 3, out: 12, kernel: 1)
        try g.conv("a", "y", "b", in: 12, out: 4)
        let (plain, refit, summary) = try refitErrors(g.model(input: [4, 3, 6, 6]), ratio: 0.5)
        #expect(summary.reconstructed == ["b"])
        #expect(plain > 1 && refit < 1e-3 * plain)
    }

    @Test func refittingAfterAReluReducesTheError() throws {
        var g = PruningTesting.Graph()
        try g.conv("x", "a", "a", in: 3, out: 12)
        g.op("Relu", ["a"], ["ra"])
        try g.conv("ra", "y", "b", in: 12, out: 4)
        let (plain, refit, _) = try refitErrors(g.model(input: [4, 3, 6, 6]), ratio: 0.5)
        #expect(refit < 0.8 * plain)
    }
}

@Suite struct LowRankTests {
    @Test func factorsALowRankWeightExactly() throws {
        // W = u·vᵀ + p·qᵀ (rank 2), 16 × 12.
        let u = Pseudorandom.floats(16, seed: 1), v = Pseudorandom.floats(12, seed: 2), p = Pseudorandom.floats(16, seed: 3), q = Pseudorandom.floats(12, seed: 4)
        let w = (0..<16).flatMap { i in (0..<12).map { j in u[i] * v[j] + p[i] * q[j] } }
        let graph = Graph(inputs: [LayoutTesting.input("x", [3, 16])], outputs: [ValueInfo(name: "y", type: nil)],
                          initializers: [try Build.floatTensor("w", [16, 12], w)], nodes: [LayoutTesting.node("MatMul", ["x", "w"], ["y"], name: "mm")])
        let model = Build.model(graph)
        let (factored, summary) = LowRankFactorization.factorize(model, energy: 0.9999)
        #expect(summary.factored.count == 1 && summary.factored.first?.rank == 2)
        #expect(factored.graph.nodes.count == 2 && summary.parametersAfter == 2 * (16 + 12))
        try LayoutTesting.expectSameOutputs(model, factored)
    }

    @Test func leavesFullRankWeightsAlone() throws {
        let graph = Graph(inputs: [LayoutTesting.input("x", [3, 8])], outputs: [ValueInfo(name: "y", type: nil)],
                          initializers: [try LayoutTesting.weights("w", [8, 8], seed: 5)], nodes: [LayoutTesting.node("MatMul", ["x", "w"], ["y"], name: "mm")])
        let (factored, summary) = LowRankFactorization.factorize(Build.model(graph), energy: 0.999)
        #expect(summary.factored.isEmpty && factored.graph.nodes.count == 1)
    }

    @Test func factorsGemmAndPointwiseConv() throws {
        let u = Pseudorandom.floats(10, seed: 1), v = Pseudorandom.floats(24, seed: 2)
        let w = (0..<10).flatMap { i in (0..<24).map { j in u[i] * v[j] } }  // [N=10, K=24] with transB
        let gemm = Graph(inputs: [LayoutTesting.input("x", [2, 24])], outputs: [ValueInfo(name: "y", type: nil)],
                         initializers: [try Build.floatTensor("w", [10, 24], w), try LayoutTesting.weights("b", [10], seed: 3)],
                         nodes: [LayoutTesting.node("Gemm", ["x", "w", "b"], ["y"], name: "fc", [Attribute("transB", .int(1)), Attribute("alpha", .float(0.5))])])
        let (g, gs) = LowRankFactorization.factorize(Build.model(gemm), energy: 0.999)
        #expect(gs.factored.first?.rank == 1)
        try LayoutTesting.expectSameOutputs(Build.model(gemm), g)
        let conv = Graph(inputs: [LayoutTesting.input("x", [1, 24, 3, 3])], outputs: [ValueInfo(name: "y", type: nil)],
                         initializers: [try Build.floatTensor("w", [10, 24, 1, 1], w), try LayoutTesting.weights("b", [10], seed: 3)],
                         nodes: [LayoutTesting.node("Conv", ["x", "w", "b"], ["y"], name: "pw", [Attribute("strides", .ints([2, 2]))])])
        let (c, cs) = LowRankFactorization.factorize(Build.model(conv), energy: 0.999)
        #expect(cs.factored.first?.rank == 1)
        try LayoutTesting.expectSameOutputs(Build.model(conv), c)
    }
}

@Suite struct CholeskyKernelTests {
    @Test func solvesSymmetricPositiveDefiniteSystems() {
        // A = MᵀM + I (n = 37: not a multiple of the 16-row blocks or the 4 lanes), B random; check A·X = B.
        for n in [1, 5, 37] {
            let m = 3
            let g = Pseudorandom.floats(n * n, seed: 9).map(Double.init)
            var a = [Double](repeating: 0, count: n * n)
            for i in 0..<n { for j in 0..<n { a[i * n + j] = (0..<n).reduce(0) { $0 + g[$1 * n + i] * g[$1 * n + j] } + (i == j ? 1 : 0) } }
            let b = Pseudorandom.floats(n * m, seed: 10).map(Double.init)
            var l = a, x = b
            #expect(ck_cholesky_f64(Int32(n), &l) == 1)
            ck_cholesky_solve_f64(Int32(n), l, Int32(m), &x)
            for i in 0..<n {
                for c in 0..<m {
                    let r = (0..<n).reduce(0) { $0 + a[i * n + $1] * x[$1 * m + c] }
                    #expect(abs(r - b[i * m + c]) < 1e-9)
                }
            }
        }
        var indefinite: [Double] = [1, 2, 2, 1]
        #expect(ck_cholesky_f64(2, &indefinite) == 0)
    }
}

@Suite struct SymmetricEigenTests {
    @Test func reconstructsTheMatrix() throws {
        for n in [1, 2, 7, 40] {
            let g = Pseudorandom.floats(n * n, seed: 21).map(Double.init)
            var a = [Double](repeating: 0, count: n * n)
            for i in 0..<n { for j in 0..<n { a[i * n + j] = g[i * n + j] + g[j * n + i] } }
            let (values, vectors) = try #require(SymmetricEigen.decompose(a, n))
            for i in 0..<n {
                for j in 0..<n {
                    let r = (0..<n).reduce(0.0) { $0 + vectors[i * n + $1] * values[$1] * vectors[j * n + $1] }
                    #expect(abs(r - a[i * n + j]) < 1e-9)
                }
            }
        }
    }
}
