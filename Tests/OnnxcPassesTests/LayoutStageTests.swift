import OnnxcCore
import OnnxcFrontend
import OnnxcIR
import OnnxcPasses
import OnnxcRuntime
import OnnxcTestSupport
import Testing

/// The whole layout stage (`Pipelines.layoutDrivers`: `layout`, then `layoutCleanup`, shapes re-inferred, as
/// `OptimizationLevel.optimize` runs it after -O2 for the runtime) on small CNN-shaped graphs: every convolution and pool ends up channels last,
/// one Transpose converts the input, none is left between the ops of the trunk (only one back to NCHW where a 4-D
/// result leaves the graph), and the outputs equal the original's through the interpreter.
@Suite struct LayoutStageTests {
    typealias L = LayoutTesting

    /// Collects nodes and weights while a test graph is written.
    struct Builder {
        var nodes: [Node] = []
        var initializers: [OnnxcIR.Tensor] = []
        var seed = 1

        mutating func conv(_ x: String, _ y: String, in inChannels: Int64, out: Int64, kernel: Int64 = 3, strides: Int64 = 1) throws {
            let (node, weights) = try L.conv(x, y, name: y, in: inChannels, out: out, kernel: kernel, strides: strides, seed: seed)
            seed += 2
            nodes.append(node)
            initializers += weights
        }

        mutating func add(_ op: String, _ inputs: [String], _ outputs: [String], _ attributes: [Attribute] = []) {
            nodes.append(L.node(op, inputs, outputs, name: outputs[0], attributes))
        }

        func model(input: [Int64] = [2, 3, 12, 12], outputs: [String] = ["y"]) -> Model {
            L.model(inputs: [L.input("x", input)], outputs: outputs, initializers: initializers, nodes: nodes)
        }
    }

    /// Runs the stage and checks the trunk: the `converted` channels-last ops (by qualified type) and no standard
    /// Conv or pool left, exactly one Transpose reading the input x (to NHWC), every other Transpose writing a graph
    /// output (back to NCHW, `outputTransposes` of them), and the outputs unchanged.
    @discardableResult
    static func expectChannelsLast(_ model: Model, converted: [String: Int], outputTransposes: Int,
                                   sourceLocation: SourceLocation = #_sourceLocation) throws -> Model {
        let result = try L.layoutStage(model)
        let ops = result.graph.nodes.map(\.qualifiedOpType)
        for (op, count) in converted {
            #expect(ops.filter { $0 == RuntimeOps.domain + "::" + op }.count == count, "\(op) in \(ops)", sourceLocation: sourceLocation)
        }
        let standard: Set<String> = ["Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ai.onnxc::FusedConv"]
        #expect(!ops.contains(where: standard.contains), "\(ops)", sourceLocation: sourceLocation)
        let transposes = L.nodes(result, "Transpose")
        let outputs = Set(result.graph.outputs.map(\.name))
        let atInput = transposes.filter { $0.inputs == ["x"] }
        #expect(atInput.count == 1 && atInput.first.map(L.perm) == L.nhwc, "input Transposes \(atInput.map(\.name)) in \(ops)",
                sourceLocation: sourceLocation)
        let atOutputs = transposes.filter { $0.inputs != ["x"] }
        #expect(atOutputs.allSatisfy { outputs.contains($0.outputs[0]) && L.perm($0) == L.nchw },
                "Transposes inside the trunk: \(atOutputs.map(\.name)) in \(ops)", sourceLocation: sourceLocation)
        #expect(atOutputs.count == outputTransposes, "\(ops)", sourceLocation: sourceLocation)
        try L.expectSameOutputs(model, result, sourceLocation: sourceLocation)
        return result
    }

    @Test func convReluConv() throws {
        var b = Builder()
        try b.conv("x", "c1", in: 3, out: 8)
        b.add("Relu", ["c1"], ["r1"])
        try b.conv("r1", "y", in: 8, out: 17)
        let result = try Self.expectChannelsLast(b.model(), converted: ["NhwcConv": 2], outputTransposes: 1)
        #expect(result.graph.nodes.map(\.opType) == ["Transpose", "NhwcConv", "Relu", "NhwcConv", "Transpose"])
    }

    /// y = Relu(Conv(Relu(Conv(x))) + Relu(Conv(x))), as ResNet's basic block; and the same after the runtime's -O2
    /// pipeline (FusedConv with the residual and the Relu), which the stage turns into NhwcConv with a residual input.
    @Test func residualBlock() throws {
        var b = Builder()
        try b.conv("x", "c1", in: 3, out: 8)
        b.add("Relu", ["c1"], ["r1"])
        try b.conv("r1", "c2", in: 8, out: 8)
        b.add("Add", ["c2", "r1"], ["s"])
        b.add("Relu", ["s"], ["y"])
        try Self.expectChannelsLast(b.model(), converted: ["NhwcConv": 2], outputTransposes: 1)

        let o2 = try PassManager(passes: Pipelines.passes(level: 2, target: .runtime), options: PassOptions(target: .runtime))
            .run(L.inferred(b.model()))
        #expect(L.nodes(o2, "ai.onnxc::FusedConv").count == 2)
        let result = try Self.expectChannelsLast(o2, converted: ["NhwcConv": 2], outputTransposes: 1)
        let withResidual = L.nodes(result, "ai.onnxc::NhwcConv").filter { $0.inputs.count == 4 && !$0.inputs[3].isEmpty }
        #expect(withResidual.count == 1)
        #expect(result.graph.nodes.count == 4)
    }

    /// Two convolutions of x concatenated along the channels, then a third: Concat's axis becomes 3, and x is
    /// converted once for both branches.
    @Test func concatOfTwoConvBranches() throws {
        var b = Builder()
        try b.conv("x", "a", in: 3, out: 4, kernel: 1)
        try b.conv("x", "c", in: 3, out: 6)
        b.add("Concat", ["a", "c"], ["cat"], [Attribute("axis", .int(1))])
        try b.conv("cat", "y", in: 10, out: 8)
        let result = try Self.expectChannelsLast(b.model(), converted: ["NhwcConv": 3], outputTransposes: 1)
        #expect(L.nodes(result, "Concat").first?.attribute("axis") == .int(3))
    }

    /// A conv split along the channels into two convs whose results are added.
    @Test func splitIntoTwoConvs() throws {
        var b = Builder()
        try b.conv("x", "c", in: 3, out: 8)
        b.nodes.append(L.node("Split", ["c", "sizes"], ["s0", "s1"], name: "split", [Attribute("axis", .int(1))]))
        b.initializers.append(try Build.int64Tensor("sizes", [2], [5, 3]))
        try b.conv("s0", "d0", in: 5, out: 4)
        try b.conv("s1", "d1", in: 3, out: 4)
        b.add("Add", ["d0", "d1"], ["y"])
        let result = try Self.expectChannelsLast(b.model(), converted: ["NhwcConv": 3], outputTransposes: 1)
        #expect(L.nodes(result, "Split").first?.attribute("axis") == .int(3))
    }

    /// Squeeze-and-excitation: GlobalAveragePool → 1×1 Conv → Relu → 1×1 Conv → Sigmoid scales the trunk (Mul), then
    /// a conv; everything, the [N, 1, 1, C] gate included, stays channels last.
    @Test func squeezeAndExcitationBlock() throws {
        var b = Builder()
        try b.conv("x", "c", in: 3, out: 8)
        b.add("Relu", ["c"], ["r"])
        b.add("GlobalAveragePool", ["r"], ["g"])
        try b.conv("g", "f1", in: 8, out: 2, kernel: 1)
        b.add("Relu", ["f1"], ["f1r"])
        try b.conv("f1r", "f2", in: 2, out: 8, kernel: 1)
        b.add("Sigmoid", ["f2"], ["gate"])
        b.add("Mul", ["r", "gate"], ["m"])
        try b.conv("m", "y", in: 8, out: 4)
        try Self.expectChannelsLast(b.model(), converted: ["NhwcConv": 4, "NhwcGlobalAveragePool": 1], outputTransposes: 1)
    }

    /// Resize ×2 (nearest, scales as an input) between two convs: the scales become [1, 2, 2, 1].
    @Test func resizeBetweenConvs() throws {
        var b = Builder()
        try b.conv("x", "c", in: 3, out: 6, strides: 2)
        b.nodes.append(L.node("Resize", ["c", "", "scales"], ["up"], name: "resize", [Attribute("mode", .string(Array("nearest".utf8)))]))
        b.initializers.append(try Build.floatTensor("scales", [4], [1, 1, 2, 2]))
        try b.conv("up", "y", in: 6, out: 5)
        let result = try Self.expectChannelsLast(b.model(), converted: ["NhwcConv": 2], outputTransposes: 1)
        let resize = try #require(L.nodes(result, "Resize").first)
        #expect(L.floats(result, resize.inputs[2]) == [1, 2, 2, 1])
    }

    /// A classifier: stem conv, MaxPool, conv, GlobalAveragePool → Flatten → Gemm. The [N, 1, 1, C] → [N, C, 1, 1]
    /// Transpose at the end becomes a Reshape, so the only Transpose left is the input's.
    @Test func classifierHead() throws {
        var b = Builder()
        try b.conv("x", "stem", in: 3, out: 8, kernel: 7, strides: 2)
        b.add("Relu", ["stem"], ["r"])
        b.add("MaxPool", ["r"], ["p"], [Attribute("kernel_shape", .ints([3, 3])), Attribute("strides", .ints([2, 2])),
                                         Attribute("pads", .ints([1, 1, 1, 1]))])
        try b.conv("p", "c", in: 8, out: 16)
        b.add("GlobalAveragePool", ["c"], ["g"])
        b.add("Flatten", ["g"], ["f"])
        b.nodes.append(L.node("Gemm", ["f", "fc_w", "fc_b"], ["y"], name: "fc", [Attribute("transB", .int(1))]))
        b.initializers += [try L.weights("fc_w", [10, 16], seed: 40), try L.weights("fc_b", [10], seed: 41)]
        let result = try Self.expectChannelsLast(b.model(input: [2, 3, 16, 16]),
                                                 converted: ["NhwcConv": 2, "NhwcMaxPool": 1, "NhwcGlobalAveragePool": 1], outputTransposes: 0)
        #expect(L.nodes(result, "Transpose").count == 1)
    }

    /// Pad (constant pads as an input) and a channel Slice between convs move into channels last with their pads and
    /// axes reordered.
    @Test func padAndSliceBetweenConvs() throws {
        var b = Builder()
        try b.conv("x", "c1", in: 3, out: 8)
        b.add("Pad", ["c1", "pads"], ["padded"])
        b.initializers.append(try Build.int64Tensor("pads", [8], [0, 0, 1, 2, 0, 0, 2, 1]))
        try b.conv("padded", "c2", in: 8, out: 8)
        b.add("Slice", ["c2", "starts", "ends", "axes"], ["sliced"])
        b.initializers += [try Build.int64Tensor("starts", [1], [2]), try Build.int64Tensor("ends", [1], [7]),
                           try Build.int64Tensor("axes", [1], [1])]
        try b.conv("sliced", "y", in: 5, out: 4)
        let result = try Self.expectChannelsLast(b.model(), converted: ["NhwcConv": 3], outputTransposes: 1)
        let pad = try #require(L.nodes(result, "Pad").first), slice = try #require(L.nodes(result, "Slice").first)
        #expect(L.ints(result, pad.inputs[1]) == [0, 1, 2, 0, 0, 2, 1, 0])
        #expect(L.ints(result, slice.inputs[3]) == [3])
    }

    /// A conv result that is also a graph output keeps its NCHW value (a Transpose writes it), and the trunk still
    /// runs channels last past it.
    @Test func intermediateGraphOutputsStayNCHW() throws {
        var b = Builder()
        try b.conv("x", "c1", in: 3, out: 8)
        b.add("Relu", ["c1"], ["r"])
        try b.conv("r", "y", in: 8, out: 4)
        let result = try Self.expectChannelsLast(b.model(outputs: ["r", "y"]), converted: ["NhwcConv": 2], outputTransposes: 2)
        // Relu runs on the first conv's NHWC result; the second conv and the Transpose writing r both read it.
        let relu = try #require(L.nodes(result, "Relu").first)
        #expect(L.producer(result, relu.inputs[0])?.opType == "NhwcConv")
        #expect(L.producer(result, "r")?.inputs == relu.outputs)
        #expect(L.nodes(result, "ai.onnxc::NhwcConv").last?.inputs.first == relu.outputs[0])
    }

    /// A symbolic batch: the layout stage needs only ranks and channel counts, and the converted graph runs at any
    /// batch size.
    @Test func symbolicBatch() throws {
        var b = Builder()
        try b.conv("x", "c1", in: 3, out: 8)
        b.add("Relu", ["c1"], ["r"])
        b.add("MaxPool", ["r"], ["p"], [Attribute("kernel_shape", .ints([2, 2])), Attribute("strides", .ints([2, 2]))])
        try b.conv("p", "y", in: 8, out: 4)
        let model = L.model(inputs: [Build.input("x", [.symbolic("n"), .fixed(3), .fixed(8), .fixed(8)])], outputs: ["y"],
                            initializers: b.initializers, nodes: b.nodes)
        let result = try L.layoutStage(model)
        #expect(result.graph.nodes.map(\.opType) == ["Transpose", "NhwcConv", "Relu", "NhwcMaxPool", "NhwcConv", "Transpose"])
        for batch in [1, 3] {
            let x = try OnnxcRuntime.Tensor(Pseudorandom.floats(batch * 3 * 64, seed: batch), shape: [batch, 3, 8, 8])
            let expected = try #require(try PassTesting.outputs(model, ["x": x])["y"])
            let actual = try #require(try PassTesting.outputs(result, ["x": x])["y"])
            let scale = expected.doubles().map(abs).max() ?? 0
            #expect(TensorComparison.difference(actual, expected, rtol: 0, atol: 2e-5 * (1 + scale)) == nil, "batch \(batch)")
        }
    }

    /// A convolution inside an If branch on a value of the branch is converted there (the driver runs the passes on
    /// subgraphs too), with the same outputs for either branch taken.
    @Test func convolutionsInsideSubgraphs() throws {
        let (outer, outerWeights) = try L.conv("x", "a", name: "outer", in: 3, out: 4, seed: 1)
        let (inner, innerWeights) = try L.conv("r_in", "b", name: "inner", in: 3, out: 4, seed: 5)
        let then = Graph(name: "then", outputs: [ValueInfo(name: "b", type: nil)], initializers: innerWeights,
                         nodes: [L.node("Relu", ["x"], ["r_in"], name: "relu_in"), inner])
        let otherwise = Graph(name: "else", outputs: [ValueInfo(name: "e", type: nil)], nodes: [L.node("Identity", ["a"], ["e"], name: "id")])
        let branch = L.node("If", ["cond"], ["y"], name: "if", [Attribute("then_branch", .graph(then)), Attribute("else_branch", .graph(otherwise))])
        let model = L.model(inputs: [L.input("x", [1, 3, 5, 5]), L.input("cond", [], .bool)], outputs: ["y", "a"],
                            initializers: outerWeights, nodes: [outer, branch])
        let result = try L.layoutStage(model)
        let converted = try #require(result.graph.nodes.first { $0.opType == "If" }).attributes.flatMap(\.value.subgraphs)
            .flatMap(\.nodes).filter { $0.opType == "NhwcConv" }
        #expect(converted.count == 1)
        #expect(L.nodes(result, "ai.onnxc::NhwcConv").count == 1)
        for taken in [true, false] {
            let feeds = ["x": try OnnxcRuntime.Tensor(Pseudorandom.floats(75, seed: 3), shape: [1, 3, 5, 5]),
                         "cond": try OnnxcRuntime.Tensor([taken], shape: [])]
            let expected = try PassTesting.outputs(model, feeds), actual = try PassTesting.outputs(result, feeds)
            for name in ["y", "a"] {
                let e = try #require(expected[name]), a = try #require(actual[name])
                #expect(TensorComparison.difference(a, e, rtol: 0, atol: 2e-5 * (1 + (e.doubles().map(abs).max() ?? 0))) == nil, "\(name) cond \(taken)")
            }
        }
    }

    /// Without convolutions the stage changes nothing, and on the ONNX target it never runs onnxc's ops.
    @Test func leavesGraphsWithoutConvolutions() throws {
        var b = Builder()
        b.add("Relu", ["x"], ["r"])
        b.add("Softmax", ["r"], ["y"], [Attribute("axis", .int(1))])
        let model = b.model()
        #expect(try L.layoutStage(model).graph.nodes == model.graph.nodes)
        var c = Builder()
        try c.conv("x", "y", in: 3, out: 4)
        #expect(try L.layoutStage(c.model(), target: .onnx).graph.nodes == c.nodes)
    }
}

/// -O2 for the runtime and then the layout stage, as `onnxc compile` and `run -O2` on a compiled file see it, on every
/// shipped model with ONNX Runtime reference outputs (tiny_cnn is the one with convolutions; the others must pass
/// through unchanged in meaning).
@Suite struct LayoutStageReferenceTests {
    @Test(arguments: References.folders) func layoutStageMatchesONNXRuntime(_ name: String) throws {
        let folder = Fixtures.testdata.appendingPathComponent("reference/\(name)")
        let meta = try References.meta(name)
        let model = try ONNXImporter.load(path: Fixtures.testdata.appendingPathComponent(meta.model).path)
        let options = PassOptions(target: .runtime)
        var current = try PassManager(passes: Pipelines.passes(level: 2, target: .runtime), options: options).run(ShapeInference.infer(model).0)
        current = ShapeInference.infer(current).0
        for driver in Pipelines.layoutDrivers(options: options) { current = try driver.run(current) }
        if name == "tiny_cnn" {
            // Its batch is symbolic, so the [batch, 1, 1, 16] → [batch, 16, 1, 1] Transpose before Flatten stays one
            // (transpose-to-reshape needs a static shape); the other converts the input.
            #expect(current.graph.nodes.filter { $0.opType == "NhwcConv" }.count == 2)
            #expect(current.graph.nodes.filter { $0.opType == "Transpose" }.map(\.inputs) == [["input"], ["gap_out_nhwc"]])
        }
        var inputs: [String: OnnxcRuntime.Tensor] = [:]
        for (k, input) in meta.inputs.enumerated() { inputs[input.name] = try References.readNPY("\(folder.path)/input_\(k).npy") }
        let outputs = try PassTesting.outputs(current, inputs)
        for (k, entry) in meta.outputs.enumerated() {
            let expected = try References.readNPY("\(folder.path)/output_\(k).npy")
            // Through .npy and back, as the reference went (NumPy's fixed-width strings end at a NUL).
            let actual = try NPY.read(try NPY.write(try #require(outputs[entry.name], "\(name) output \(entry.name)")))
            #expect(TensorComparison.difference(actual, expected, rtol: 1e-4, atol: 1e-5) == nil, "\(name) output \(entry.name)")
        }
    }
}
