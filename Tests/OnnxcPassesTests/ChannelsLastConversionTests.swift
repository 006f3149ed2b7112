import OnnxcCore
import OnnxcIR
import OnnxcPasses
import OnnxcRuntime
import OnnxcTestSupport
import Testing

/// `convert-to-nhwc`: float32 2-D Conv/FusedConv and pools become Transpose → ai.onnxc::Nhwc<Op> (same inputs and
/// attributes) → Transpose writing the original output, with the same results through the interpreter; what has no
/// channels-last kernel (other element types, 1-D and 3-D convolutions and pools, MaxPool's Indices, unknown shapes,
/// the ONNX target) is left alone.
@Suite struct ChannelsLastConversionTests {
    typealias L = LayoutTesting

    static func converted(_ model: Model, target: OptimizationTarget = .runtime) throws -> Model {
        try L.apply([ChannelsLastConversion()], to: model, target: target)
    }

    /// The [Transpose, Nhwc op, Transpose] sandwich that replaces `original`, checked and returned (nil if absent).
    static func expectSandwich(_ result: Model, replacing original: Node, as op: String, layoutInputs: [Int] = [0],
                               sourceLocation: SourceLocation = #_sourceLocation) -> Node? {
        guard let converted = result.graph.nodes.first(where: { $0.domain == RuntimeOps.domain && $0.opType == op }) else {
            Issue.record("no ai.onnxc::\(op) in \(result.graph.nodes.map(\.qualifiedOpType))", sourceLocation: sourceLocation)
            return nil
        }
        #expect(converted.attributes == original.attributes, sourceLocation: sourceLocation)
        #expect(converted.outputs.count == 1, sourceLocation: sourceLocation)
        for slot in original.inputs.indices {
            if layoutInputs.contains(slot) {
                let before = L.producer(result, converted.inputs[slot])
                #expect(before?.opType == "Transpose" && before.map(L.perm) == L.nhwc, "input \(slot)", sourceLocation: sourceLocation)
                #expect(before?.inputs == [original.inputs[slot]], "input \(slot)", sourceLocation: sourceLocation)
            } else {
                #expect(converted.inputs[slot] == original.inputs[slot], "input \(slot)", sourceLocation: sourceLocation)
            }
        }
        let after = result.graph.nodes.filter { $0.inputs == converted.outputs }
        #expect(after.count == 1 && after.first?.opType == "Transpose" && after.first.map(L.perm) == L.nchw, sourceLocation: sourceLocation)
        #expect(after.first?.outputs == [original.outputs[0]], sourceLocation: sourceLocation)
        return converted
    }

    /// A Conv with every attribute a 2-D convolution can have keeps them all on NhwcConv, with W and B untouched.
    @Test(arguments: [
        [Attribute("pads", .ints([1, 0, 2, 1])), Attribute("strides", .ints([1, 2])), Attribute("dilations", .ints([2, 1]))],
        [Attribute("auto_pad", .string(Array("SAME_UPPER".utf8))), Attribute("strides", .ints([2, 2])), Attribute("kernel_shape", .ints([3, 3]))],
        [Attribute("group", .int(3)), Attribute("pads", .ints([1, 1, 1, 1]))],
    ])
    func convertsConv(_ attributes: [Attribute]) throws {
        var group: Int64 = 1
        if case .int(let g)? = attributes.first(where: { $0.name == "group" })?.value { group = g }
        let conv = L.node("Conv", ["x", "w", "b"], ["y"], name: "conv", attributes)
        let model = L.model(inputs: [L.input("x", [2, 6, 7, 7])], outputs: ["y"],
                            initializers: [try L.weights("w", [9, 6 / group, 3, 3], seed: 1), try L.weights("b", [9], seed: 2)], nodes: [conv])
        let result = try Self.converted(model)
        #expect(result.graph.nodes.map(\.opType) == ["Transpose", "NhwcConv", "Transpose"])
        _ = Self.expectSandwich(result, replacing: conv, as: "NhwcConv")
        #expect(result.opsetImports.contains { $0.domain == RuntimeOps.domain })
        try L.expectSameOutputs(model, result)
    }

    /// Depthwise (group = channels) and channel-multiplier convolutions, and a Conv without bias.
    @Test func convertsDepthwiseAndBiasFreeConvs() throws {
        let depthwise = L.node("Conv", ["x", "dw"], ["d"], name: "dw", [Attribute("group", .int(8)), Attribute("pads", .ints([1, 1, 1, 1]))])
        let multiplier = L.node("Conv", ["d", "mw"], ["y"], name: "mw", [Attribute("group", .int(8)), Attribute("pads", .ints([1, 1, 1, 1]))])
        let model = L.model(inputs: [L.input("x", [1, 8, 6, 5])], outputs: ["y"],
                            initializers: [try L.weights("dw", [8, 1, 3, 3], seed: 3), try L.weights("mw", [16, 1, 3, 3], seed: 4)],
                            nodes: [depthwise, multiplier])
        let result = try Self.converted(model)
        #expect(L.nodes(result, "ai.onnxc::NhwcConv").count == 2)
        #expect(L.nodes(result, "Transpose").count == 4)
        try L.expectSameOutputs(model, result)
    }

    /// FusedConv (from fuse-activation) keeps its activation attributes; its residual gets its own Transpose.
    @Test func convertsFusedConvWithResidual() throws {
        let fused = L.node("FusedConv", ["x", "w", "b", "r"], ["y"], name: "fused", domain: RuntimeOps.domain,
                           [Attribute("pads", .ints([1, 1, 1, 1])), Attribute("activation", .string(Array("LeakyRelu".utf8))),
                            Attribute("activation_params", .floats([0.1]))])
        let model = L.model(inputs: [L.input("x", [2, 3, 5, 6]), L.input("r", [2, 17, 5, 6])], outputs: ["y"],
                            initializers: [try L.weights("w", [17, 3, 3, 3], seed: 5), try L.weights("b", [17], seed: 6)], nodes: [fused])
        let result = try Self.converted(model)
        #expect(result.graph.nodes.map(\.opType).filter { $0 == "Transpose" }.count == 3)
        _ = Self.expectSandwich(result, replacing: fused, as: "NhwcConv", layoutInputs: [0, 3])
        try L.expectSameOutputs(model, result)
    }

    /// MaxPool (its Indices output named but unused is dropped), AveragePool with count_include_pad and ceil_mode,
    /// GlobalAveragePool and GlobalMaxPool, each with its attributes.
    @Test(arguments: [
        ("MaxPool", [Attribute("kernel_shape", .ints([3, 3])), Attribute("strides", .ints([2, 2])), Attribute("pads", .ints([1, 1, 1, 1]))], 2),
        ("MaxPool", [Attribute("kernel_shape", .ints([2, 3])), Attribute("dilations", .ints([2, 1])), Attribute("ceil_mode", .int(1))], 1),
        ("AveragePool", [Attribute("kernel_shape", .ints([3, 3])), Attribute("strides", .ints([2, 2])), Attribute("pads", .ints([1, 1, 1, 1])),
                         Attribute("count_include_pad", .int(1)), Attribute("ceil_mode", .int(1))], 1),
        ("GlobalAveragePool", [], 1),
        ("GlobalMaxPool", [], 1),
    ])
    func convertsPools(_ op: String, _ attributes: [Attribute], _ outputs: Int) throws {
        let pool = L.node(op, ["x"], outputs == 2 ? ["y", "unused_indices"] : ["y"], name: "pool", attributes)
        let model = L.model(inputs: [L.input("x", [2, 17, 7, 8])], outputs: ["y"], nodes: [pool])
        let result = try Self.converted(model)
        #expect(result.graph.nodes.map(\.opType) == ["Transpose", "Nhwc" + op, "Transpose"])
        _ = Self.expectSandwich(result, replacing: pool, as: "Nhwc" + op)
        try L.expectSameOutputs(model, result)
    }

    /// The ONNX target never gets onnxc's ops.
    @Test func leavesTheOnnxTarget() throws {
        let (conv, weights) = try L.conv("x", "y", name: "conv", in: 3, out: 4, seed: 1)
        let model = L.model(inputs: [L.input("x", [1, 3, 5, 5])], outputs: ["y"], initializers: weights, nodes: [conv])
        #expect(try Self.converted(model, target: .onnx).graph.nodes == [conv])
    }

    /// Float64 and float16 Convs and pools: the channels-last kernels are float32 only.
    @Test(arguments: [DType.double, .float16]) func leavesOtherElementTypes(_ dtype: DType) throws {
        let width = dtype == .double ? 8 : 2
        func zeros(_ name: String, _ dims: [Int64]) throws -> OnnxcIR.Tensor {
            let count = Int(dims.reduce(1, *))
            return OnnxcIR.Tensor(name: name, data: try TensorData(dtype: dtype, dims: dims, payload: .bytes(ByteSlice(copying: [UInt8](repeating: 0, count: count * width)))))
        }
        let nodes = [L.node("Conv", ["x", "w"], ["c"], name: "conv"),
                     L.node("MaxPool", ["c"], ["p"], name: "pool", [Attribute("kernel_shape", .ints([2, 2]))]),
                     L.node("GlobalAveragePool", ["p"], ["y"], name: "gap")]
        let model = L.model(inputs: [L.input("x", [1, 3, 5, 5], dtype)], outputs: ["y"], initializers: [try zeros("w", [4, 3, 3, 3])], nodes: nodes)
        #expect(try Self.converted(model).graph.nodes == nodes)
    }

    /// 1-D and 3-D convolutions and pools have no channels-last kernel.
    @Test func leavesOneAndThreeDimensionalOps() throws {
        let conv1 = L.node("Conv", ["x1", "w1"], ["a"], name: "conv1")
        let pool1 = L.node("MaxPool", ["a"], ["y1"], name: "pool1", [Attribute("kernel_shape", .ints([2]))])
        let conv3 = L.node("Conv", ["x3", "w3"], ["b"], name: "conv3")
        let pool3 = L.node("AveragePool", ["b"], ["c"], name: "pool3", [Attribute("kernel_shape", .ints([2, 2, 2]))])
        let global3 = L.node("GlobalAveragePool", ["c"], ["y3"], name: "gap3")
        let model = L.model(inputs: [L.input("x1", [1, 2, 9]), L.input("x3", [1, 2, 5, 5, 5])], outputs: ["y1", "y3"],
                            initializers: [try L.weights("w1", [3, 2, 3], seed: 1), try L.weights("w3", [3, 2, 3, 3, 3], seed: 2)],
                            nodes: [conv1, pool1, conv3, pool3, global3])
        #expect(try Self.converted(model).graph.nodes == model.graph.nodes)
    }

    /// A MaxPool whose Indices are read (by a node, or as a graph output) stays NCHW; an unused one is converted.
    @Test func leavesMaxPoolWithUsedIndices() throws {
        let attributes = [Attribute("kernel_shape", .ints([2, 2]))]
        let pool = L.node("MaxPool", ["x"], ["y", "i"], name: "pool", attributes)
        let asOutput = L.model(inputs: [L.input("x", [1, 3, 4, 4])], outputs: ["y", "i"], nodes: [pool])
        #expect(try Self.converted(asOutput).graph.nodes == [pool])
        let cast = L.node("Cast", ["i"], ["f"], name: "cast", [Attribute("to", .int(1))])
        let read = L.model(inputs: [L.input("x", [1, 3, 4, 4])], outputs: ["y", "f"], nodes: [pool, cast])
        #expect(try Self.converted(read).graph.nodes == [pool, cast])
    }

    /// Without a known rank-4 float input type (no shape, or only a rank), nothing is converted.
    @Test func leavesUnknownShapes() throws {
        let (conv, weights) = try L.conv("x", "y", name: "conv", in: 3, out: 4, seed: 1)
        let noShape = L.model(inputs: [ValueInfo(name: "x", type: ValueType(.tensor(TensorType(.float, nil))))], outputs: ["y"],
                              initializers: weights, nodes: [conv])
        #expect(try Self.converted(noShape).graph.nodes == [conv])
        // Weights that are a graph input without a shape.
        let plainConv = L.node("Conv", ["x", "w"], ["y"], name: "conv")
        let unknownWeights = L.model(inputs: [L.input("x", [1, 3, 5, 5]), ValueInfo(name: "w", type: ValueType(.tensor(TensorType(.float, nil))))],
                                     outputs: ["y"], nodes: [plainConv])
        #expect(try Self.converted(unknownWeights).graph.nodes == [plainConv])
    }

    /// Weights that are a graph input with a known shape (computed at run time) are converted: the kernel packs them
    /// per call.
    @Test func convertsRuntimeWeights() throws {
        let conv = L.node("Conv", ["x", "w"], ["y"], name: "conv", [Attribute("pads", .ints([1, 1, 1, 1]))])
        let model = L.model(inputs: [L.input("x", [1, 3, 5, 5]), L.input("w", [4, 3, 3, 3])], outputs: ["y"], nodes: [conv])
        let result = try Self.converted(model)
        _ = Self.expectSandwich(result, replacing: conv, as: "NhwcConv")
        try L.expectSameOutputs(model, result)
    }
}
