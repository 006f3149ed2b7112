import OnnxcCore
import OnnxcIR
import OnnxcPasses
import OnnxcRuntime
import OnnxcTestSupport
import Testing

/// `push-transposes`: an op reading Transpose(x, [0,3,1,2]) (NHWC → NCHW, as convert-to-nhwc leaves them) is
/// rewritten to read x, its axis attributes and axis-indexed constants (Concat/Split/Softmax axis, Slice axes, Pad
/// pads, Resize scales/sizes/roi, reduction axes) and broadcast constants permuted, so the Transpose moves below it
/// and cancels against the inverse one after (`fuse-transposes`); numerics unchanged. And the cases it must leave:
/// keepdims = 0, Softmax before opset 13, a Transpose with another reader where a push would add Transposes,
/// a non-constant non-transposed operand, constant inputs it cannot read.
@Suite struct TransposePushingTests {
    typealias L = LayoutTesting

    /// NHWC input x [2, 4, 5, 3] as NCHW t [2, 3, 4, 5] → `nodes` (reading t, writing o) → back to NHWC → Flatten → z.
    /// (Flatten keeps the inverse Transpose off the graph output, so a cancelled pair leaves nothing behind.)
    static func sandwich(_ nodes: [Node], initializers: [OnnxcIR.Tensor] = [], extraInputs: [ValueInfo] = [], opset: Int64 = 17,
                         second: Bool = false) -> Model {
        var all = [L.transpose("x", "t", L.nchw, name: "to_nchw")]
        if second { all.append(L.transpose("x2", "t2", L.nchw, name: "to_nchw_2")) }
        all += nodes
        all += [L.transpose("o", "back", L.nhwc, name: "to_nhwc"), L.node("Flatten", ["back"], ["z"], name: "flatten")]
        var inputs = [L.input("x", [2, 4, 5, 3])]
        if second { inputs.append(L.input("x2", [2, 4, 5, 3])) }
        return L.model(inputs: inputs + extraInputs, outputs: ["z"], initializers: initializers, nodes: all, opset: opset)
    }

    static func pushed(_ model: Model) throws -> Model {
        try L.apply([TransposePushing(), ConsecutiveTransposeFusion(), DeadCodeElimination()], to: model)
    }

    /// Pushes and cancels: no Transpose is left, the op (`op`) reads x directly, outputs unchanged. Returns the op.
    static func expectPushed(_ model: Model, _ op: String, readsXAt slot: Int = 0,
                             sourceLocation: SourceLocation = #_sourceLocation) throws -> (Model, Node)? {
        let result = try pushed(model)
        #expect(L.nodes(result, "Transpose").isEmpty, "\(result.graph.nodes.map(\.opType))", sourceLocation: sourceLocation)
        try L.expectSameOutputs(model, result, sourceLocation: sourceLocation)
        guard let node = L.nodes(result, op).first else {
            Issue.record("no \(op) left", sourceLocation: sourceLocation)
            return nil
        }
        #expect(node.inputs.count > slot && node.inputs[slot] == "x", "\(node.inputs)", sourceLocation: sourceLocation)
        return (result, node)
    }

    /// push-transposes changes nothing (the sandwich's nodes stay as they are).
    static func expectLeft(_ model: Model, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let result = try L.apply([TransposePushing()], to: model)
        #expect(result.graph.nodes == model.graph.nodes, "\(result.graph.nodes.map(\.opType))", sourceLocation: sourceLocation)
    }

    // MARK: - Element-wise

    /// Unary ops (with Clip's scalar bounds and Cast's type) and runtime Silu move past the Transpose unchanged.
    @Test func pushesUnaryOps() throws {
        let bounds = [try Build.floatTensor("lo", [], [-0.25]), try Build.floatTensor("hi", [], [0.5])]
        let chain = [L.node("Relu", ["t"], ["a"], name: "relu"), L.node("Clip", ["a", "lo", "hi"], ["b"], name: "clip"),
                     L.node("Silu", ["b"], ["c"], name: "silu", domain: RuntimeOps.domain),
                     L.node("Cast", ["c"], ["d"], name: "cast", [Attribute("to", .int(11))]),
                     L.node("Cast", ["d"], ["o"], name: "cast_back", [Attribute("to", .int(1))])]
        let (result, _) = try #require(try Self.expectPushed(Self.sandwich(chain, initializers: bounds), "Relu"))
        #expect(result.graph.nodes.map(\.opType) == ["Relu", "Clip", "Silu", "Cast", "Cast", "Flatten"])
        #expect(L.nodes(result, "Clip").first?.inputs.dropFirst() == ["lo", "hi"])
    }

    /// Add of two Transposes of one permutation reads both untransposed inputs.
    @Test func pushesBinaryOpOfTwoTransposes() throws {
        let model = Self.sandwich([L.node("Add", ["t", "t2"], ["o"], name: "add")], second: true)
        let (_, add) = try #require(try Self.expectPushed(model, "Add"))
        #expect(add.inputs == ["x", "x2"])
    }

    /// A per-channel constant [3, 1, 1] of the NCHW view becomes [1, 1, 1, 3] (same values); a full [1, 3, 4, 5]
    /// constant is permuted to [1, 4, 5, 3]; a scalar stays.
    @Test func permutesBroadcastConstants() throws {
        let channel = try Build.floatTensor("c", [3, 1, 1], [0.5, -1, 2])
        var (result, mul) = try #require(try Self.expectPushed(Self.sandwich([L.node("Mul", ["t", "c"], ["o"], name: "mul")],
                                                                             initializers: [channel]), "Mul"))
        var constant = try #require(result.graph.initializer(named: mul.inputs[1]))
        #expect(constant.data.dims == [1, 1, 1, 3])
        #expect(L.floats(result, mul.inputs[1]) == [0.5, -1, 2])

        let values = (0..<60).map { Float($0) }
        let full = try Build.floatTensor("f", [1, 3, 4, 5], values)
        (result, mul) = try #require(try Self.expectPushed(Self.sandwich([L.node("Sub", ["f", "t"], ["o"], name: "sub")], initializers: [full]), "Sub", readsXAt: 1))
        constant = try #require(result.graph.initializer(named: mul.inputs[0]))
        #expect(constant.data.dims == [1, 4, 5, 3])
        // Element (h, w, c) of the permuted constant is element (c, h, w) of the original.
        let permuted = try #require(L.floats(result, mul.inputs[0]))
        let expected: [Float] = (0..<60).map { (i: Int) -> Float in values[(i % 3) * 20 + i / 3] }
        #expect(permuted == expected)

        let scalar = try Build.floatTensor("s", [], [3])
        (result, mul) = try #require(try Self.expectPushed(Self.sandwich([L.node("Mul", ["t", "s"], ["o"], name: "mul")], initializers: [scalar]), "Mul"))
        #expect(mul.inputs == ["x", "s"])
    }

    // MARK: - Axis attributes and axis inputs

    /// Concat along NCHW's channel axis (1, or -3) is NHWC's axis 3.
    @Test(arguments: [Int64(1), -3]) func remapsConcatAxis(_ axis: Int64) throws {
        let model = Self.sandwich([L.node("Concat", ["t", "t2"], ["o"], name: "concat", [Attribute("axis", .int(axis))])], second: true)
        let (_, concat) = try #require(try Self.expectPushed(model, "Concat"))
        #expect(concat.attribute("axis") == .int(3))
        #expect(concat.inputs == ["x", "x2"])
    }

    /// Split along the channels (sizes as an input, opset 13) into two outputs, each transposed back: axis 3.
    @Test func remapsSplitAxis() throws {
        let split = try Build.int64Tensor("sizes", [2], [1, 2])
        let nodes = [L.node("Split", ["t", "sizes"], ["s0", "s1"], name: "split", [Attribute("axis", .int(1))]),
                     L.transpose("s0", "b0", L.nhwc, name: "back0"), L.transpose("s1", "b1", L.nhwc, name: "back1"),
                     L.node("Concat", ["b0", "b1"], ["cat"], name: "concat", [Attribute("axis", .int(3))]),
                     L.transpose("cat", "o", L.nchw, name: "to_nchw_again")]
        let (result, node) = try #require(try Self.expectPushed(Self.sandwich(nodes, initializers: [split]), "Split"))
        #expect(node.attribute("axis") == .int(3))
        #expect(node.inputs.dropFirst() == ["sizes"])
        #expect(L.nodes(result, "Concat").first?.attribute("axis") == .int(3))
    }

    /// Softmax from opset 13: axis 1 → 3, the default −1 (NCHW's W) → 2.
    @Test(arguments: [(Int64?.some(1), Int64(3)), (nil, 2)]) func remapsSoftmaxAxis(_ axis: Int64?, _ expected: Int64) throws {
        let attributes = axis.map { [Attribute("axis", .int($0))] } ?? []
        let model = Self.sandwich([L.node("Softmax", ["t"], ["o"], name: "softmax", attributes)], opset: 13)
        let (_, softmax) = try #require(try Self.expectPushed(model, "Softmax"))
        #expect(softmax.attribute("axis") == .int(expected))
    }

    /// Slice with axes [1] → [3] (starts and ends unchanged), and without axes (one per dim) → the permutation.
    @Test func remapsSliceAxes() throws {
        var initializers = [try Build.int64Tensor("starts", [1], [1]), try Build.int64Tensor("ends", [1], [3]),
                            try Build.int64Tensor("axes", [1], [1])]
        var (result, slice) = try #require(try Self.expectPushed(
            Self.sandwich([L.node("Slice", ["t", "starts", "ends", "axes"], ["o"], name: "slice")], initializers: initializers), "Slice"))
        #expect(Array(slice.inputs[1...2]) == ["starts", "ends"])
        #expect(L.ints(result, slice.inputs[3]) == [3])

        initializers = [try Build.int64Tensor("starts", [4], [0, 1, 1, 0]), try Build.int64Tensor("ends", [4], [2, 3, 4, 4])]
        (result, slice) = try #require(try Self.expectPushed(
            Self.sandwich([L.node("Slice", ["t", "starts", "ends"], ["o"], name: "slice")], initializers: initializers), "Slice"))
        #expect(L.ints(result, slice.inputs[3]) == [0, 3, 1, 2])
    }

    /// Pad's [begins…, ends…] per NCHW axis are reordered per NHWC axis; Pad with an axes input (opset 18) maps the axes.
    @Test func remapsPadPads() throws {
        var initializers = [try Build.int64Tensor("pads", [8], [0, 1, 2, 0, 0, 0, 1, 2]), try Build.floatTensor("value", [], [0.5])]
        var (result, pad) = try #require(try Self.expectPushed(
            Self.sandwich([L.node("Pad", ["t", "pads", "value"], ["o"], name: "pad")], initializers: initializers), "Pad"))
        #expect(L.ints(result, pad.inputs[1]) == [0, 2, 0, 1, 0, 1, 2, 0])
        #expect(pad.inputs[2] == "value")

        initializers = [try Build.int64Tensor("pads", [4], [1, 2, 0, 1]), try Build.int64Tensor("axes", [2], [1, 3])]
        (result, pad) = try #require(try Self.expectPushed(
            Self.sandwich([L.node("Pad", ["t", "pads", "", "axes"], ["o"], name: "pad")], initializers: initializers, opset: 18), "Pad"))
        #expect(pad.inputs[1] == "pads")
        #expect(L.ints(result, pad.inputs[3]) == [3, 2])
    }

    /// Resize's scales and sizes per NCHW axis are reordered (roi too, in its two blocks).
    @Test func remapsResizeScalesSizesAndRoi() throws {
        let nearest = [Attribute("mode", .string(Array("nearest".utf8)))]
        var (result, resize) = try #require(try Self.expectPushed(
            Self.sandwich([L.node("Resize", ["t", "", "scales"], ["o"], name: "resize", nearest)],
                          initializers: [try Build.floatTensor("scales", [4], [1, 1, 2, 3])]), "Resize"))
        #expect(L.floats(result, resize.inputs[2]) == [1, 2, 3, 1])

        (result, resize) = try #require(try Self.expectPushed(
            Self.sandwich([L.node("Resize", ["t", "", "", "sizes"], ["o"], name: "resize", nearest)],
                          initializers: [try Build.int64Tensor("sizes", [4], [2, 3, 8, 10])]), "Resize"))
        #expect(L.ints(result, resize.inputs[3]) == [2, 8, 10, 3])

        let crop = [Attribute("mode", .string(Array("linear".utf8))),
                    Attribute("coordinate_transformation_mode", .string(Array("tf_crop_and_resize".utf8)))]
        (result, resize) = try #require(try Self.expectPushed(
            Self.sandwich([L.node("Resize", ["t", "roi", "", "sizes"], ["o"], name: "resize", crop)],
                          initializers: [try Build.floatTensor("roi", [8], [0, 0, 0.25, 0.1, 1, 1, 0.75, 0.9]),
                                         try Build.int64Tensor("sizes", [4], [2, 3, 3, 4])]), "Resize"))
        #expect(L.floats(result, resize.inputs[1]) == [0, 0.25, 0.1, 0, 1, 0.75, 0.9, 1])
    }

    /// Reductions with keepdims: axes as an attribute ([2, 3] → [1, 2]), as an input (opset 18: [1] → [3]), or absent.
    @Test func remapsReductionAxes() throws {
        var (result, reduce) = try #require(try Self.expectPushed(
            Self.sandwich([L.node("ReduceMean", ["t"], ["o"], name: "mean", [Attribute("axes", .ints([2, 3]))])]), "ReduceMean"))
        #expect(reduce.attribute("axes") == .ints([1, 2]))

        (result, reduce) = try #require(try Self.expectPushed(
            Self.sandwich([L.node("ReduceSum", ["t", "axes"], ["o"], name: "sum")], initializers: [try Build.int64Tensor("axes", [1], [1])],
                          opset: 18), "ReduceSum"))
        #expect(L.ints(result, reduce.inputs[1]) == [3])

        (result, reduce) = try #require(try Self.expectPushed(Self.sandwich([L.node("ReduceMax", ["t"], ["o"], name: "max")]), "ReduceMax"))
        #expect(reduce.attribute("axes") == nil && reduce.inputs == ["x"])
    }

    /// Negative axes name the NCHW view's axes from the end: Slice axes [-3] → [3], ReduceMax axes [-1] → [2],
    /// Softmax axis -3 → 3.
    @Test func remapsNegativeAxes() throws {
        let initializers = [try Build.int64Tensor("starts", [1], [0]), try Build.int64Tensor("ends", [1], [2]),
                            try Build.int64Tensor("axes", [1], [-3])]
        var (result, node) = try #require(try Self.expectPushed(
            Self.sandwich([L.node("Slice", ["t", "starts", "ends", "axes"], ["o"], name: "slice")], initializers: initializers), "Slice"))
        #expect(L.ints(result, node.inputs[3]) == [3])
        (result, node) = try #require(try Self.expectPushed(
            Self.sandwich([L.node("ReduceMax", ["t"], ["o"], name: "max", [Attribute("axes", .ints([-1]))])]), "ReduceMax"))
        #expect(node.attribute("axes") == .ints([2]))
        (result, node) = try #require(try Self.expectPushed(
            Self.sandwich([L.node("LogSoftmax", ["t"], ["o"], name: "logsoftmax", [Attribute("axis", .int(-3))])]), "LogSoftmax"))
        #expect(node.attribute("axis") == .int(3))
    }

    /// Split into equal parts by num_outputs (opset 18, no sizes input) along the channels, each part read back in
    /// NHWC (as the next convolutions read them), then added.
    @Test func remapsSplitWithNumOutputs() throws {
        let nodes = [L.node("Split", ["t"], ["s0", "s1", "s2"], name: "split", [Attribute("axis", .int(1)), Attribute("num_outputs", .int(3))]),
                     L.transpose("s0", "b0", L.nhwc, name: "back0"), L.transpose("s1", "b1", L.nhwc, name: "back1"),
                     L.transpose("s2", "b2", L.nhwc, name: "back2"), L.node("Max", ["b0", "b1", "b2"], ["m"], name: "max"),
                     L.transpose("m", "o", L.nchw, name: "to_nchw_again")]
        let (_, split) = try #require(try Self.expectPushed(Self.sandwich(nodes, opset: 18), "Split"))
        #expect(split.attribute("axis") == .int(3) && split.attribute("num_outputs") == .int(3))
    }

    /// A Split whose three parts feed an element-wise op directly: the region holds the Split and the Max, so both
    /// Transposes go (a push one op at a time would have added three Transposes for the one it removes, and stopped).
    @Test func pushesSplitWhoseOutputsFeedOtherOps() throws {
        let nodes = [L.node("Split", ["t"], ["s0", "s1", "s2"], name: "split", [Attribute("axis", .int(1)), Attribute("num_outputs", .int(3))]),
                     L.node("Max", ["s0", "s1", "s2"], ["o"], name: "max")]
        let (_, split) = try #require(try Self.expectPushed(Self.sandwich(nodes, opset: 18), "Split"))
        #expect(split.attribute("axis") == .int(3))
    }

    /// Resize with an axes attribute (opset 18): the axes map, the per-axis scales stay in the listed order.
    @Test func remapsResizeAxes() throws {
        let attributes = [Attribute("mode", .string(Array("nearest".utf8))), Attribute("axes", .ints([2, 3]))]
        let (result, resize) = try #require(try Self.expectPushed(
            Self.sandwich([L.node("Resize", ["t", "", "scales"], ["o"], name: "resize", attributes)],
                          initializers: [try Build.floatTensor("scales", [2], [2, 3])], opset: 18), "Resize"))
        #expect(resize.attribute("axes") == .ints([1, 2]))
        #expect(L.floats(result, resize.inputs[2]) == [2, 3])
    }

    /// A per-W constant [5] of the NCHW view (right-aligned, as broadcasting reads it) becomes [1, 1, 5, 1].
    @Test func permutesLowerRankConstants() throws {
        let row = try Build.floatTensor("w", [5], [1, 2, 3, 4, 5])
        let (result, add) = try #require(try Self.expectPushed(Self.sandwich([L.node("Add", ["t", "w"], ["o"], name: "add")], initializers: [row]), "Add"))
        #expect(result.graph.initializer(named: add.inputs[1])?.data.dims == [1, 1, 5, 1])
        #expect(L.floats(result, add.inputs[1]) == [1, 2, 3, 4, 5])
    }

    // MARK: - What is left

    /// keepdims = 0 changes the rank, so the output's axes no longer line up with a permutation of the input's.
    @Test func leavesReductionsWithoutKeepdims() throws {
        let node = L.node("ReduceMean", ["t"], ["m"], name: "mean", [Attribute("axes", .ints([1])), Attribute("keepdims", .int(0))])
        let model = L.model(inputs: [L.input("x", [2, 4, 5, 3])], outputs: ["m"],
                            nodes: [L.transpose("x", "t", L.nchw, name: "to_nchw"), node])
        try Self.expectLeft(model)
    }

    /// Softmax before opset 13 flattens to 2-D around its axis: not a per-axis op.
    @Test func leavesSoftmaxBeforeOpset13() throws {
        try Self.expectLeft(Self.sandwich([L.node("Softmax", ["t"], ["o"], name: "softmax", [Attribute("axis", .int(1))])], opset: 11))
    }

    /// A Transpose that another op also reads stays; pushing past its other reader would then add one Transpose
    /// (after the op) without removing any.
    @Test func leavesTransposeWithAnotherReader() throws {
        let nodes = [L.transpose("x", "t", L.nchw, name: "to_nchw"), L.node("Relu", ["t"], ["r"], name: "relu"),
                     L.node("Flatten", ["t"], ["f"], name: "flatten_t"), L.node("Flatten", ["r"], ["g"], name: "flatten_r")]
        let model = L.model(inputs: [L.input("x", [2, 4, 5, 3])], outputs: ["f", "g"], nodes: nodes)
        try Self.expectLeft(model)
        // As a graph output the Transpose must stay, too.
        let output = L.model(inputs: [L.input("x", [2, 4, 5, 3])], outputs: ["t", "g"],
                             nodes: [nodes[0], nodes[1], nodes[3]])
        try Self.expectLeft(output)
    }

    /// With a second reader the push still happens when the op's result is transposed back (it cancels), so no
    /// Transpose is added and one pair goes away.
    @Test func pushesPastSharedTransposeWhenTheResultCancels() throws {
        let nodes = [L.transpose("x", "t", L.nchw, name: "to_nchw"), L.node("Relu", ["t"], ["r"], name: "relu"),
                     L.transpose("r", "back", L.nhwc, name: "to_nhwc"), L.node("Flatten", ["back"], ["g"], name: "flatten_r"),
                     L.node("Flatten", ["t"], ["f"], name: "flatten_t")]
        let model = L.model(inputs: [L.input("x", [2, 4, 5, 3])], outputs: ["f", "g"], nodes: nodes)
        let result = try Self.pushed(model)
        #expect(L.nodes(result, "Transpose").count == 1)
        #expect(L.nodes(result, "Relu").first?.inputs == ["x"])
        try L.expectSameOutputs(model, result)
    }

    /// A full-shape operand that is neither a constant nor transposed the same way blocks the push (it would need a
    /// Transpose of its own): a graph input, a Transpose of another permutation, a Concat partner.
    @Test func leavesNonTransposedOperands() throws {
        let y = L.input("y", [2, 3, 4, 5])
        try Self.expectLeft(Self.sandwich([L.node("Add", ["t", "y"], ["o"], name: "add")], extraInputs: [y]))
        try Self.expectLeft(Self.sandwich([L.node("Concat", ["t", "y"], ["o"], name: "concat", [Attribute("axis", .int(1))])], extraInputs: [y]))
        let other = L.model(inputs: [L.input("x", [2, 4, 5, 3]), L.input("w", [2, 5, 4, 3])], outputs: ["o"],
                            nodes: [L.transpose("x", "t", L.nchw, name: "a"), L.transpose("w", "u", [0, 3, 2, 1], name: "b"),
                                    L.node("Add", ["t", "u"], ["o"], name: "add")])
        try Self.expectLeft(other)
    }

    /// Axis inputs that are not constants cannot be remapped.
    @Test func leavesNonConstantAxisInputs() throws {
        let starts = L.input("starts", [1], .int64)
        try Self.expectLeft(Self.sandwich([L.node("Slice", ["t", "starts", "ends", "axes"], ["o"], name: "slice")],
                                          initializers: [try Build.int64Tensor("ends", [1], [3]), try Build.int64Tensor("axes", [1], [1])],
                                          extraInputs: [starts]))
        try Self.expectLeft(Self.sandwich([L.node("ReduceSum", ["t", "axes"], ["o"], name: "sum")], extraInputs: [L.input("axes", [1], .int64)],
                                          opset: 13))
        try Self.expectLeft(Self.sandwich([L.node("Pad", ["t", "pads"], ["o"], name: "pad")], extraInputs: [L.input("pads", [8], .int64)]))
    }

    /// Pad with its pads as an attribute (before opset 11) and Resize with scales as input 1 (opset 10) are left.
    @Test func leavesOldPadAndResize() throws {
        try Self.expectLeft(Self.sandwich([L.node("Pad", ["t"], ["o"], name: "pad", [Attribute("pads", .ints([0, 1, 0, 0, 0, 1, 0, 0]))])], opset: 10))
        try Self.expectLeft(Self.sandwich([L.node("Resize", ["t", "scales"], ["o"], name: "resize")],
                                          initializers: [try Build.floatTensor("scales", [4], [1, 1, 2, 2])], opset: 10))
    }

    /// An all-1 operand of higher rank than the Transpose broadcasts the op's result to that rank: a push would put
    /// a rank-4 Transpose on a rank-5 value (the bug this found: the pushed graph failed at run time with "perm
    /// [0, 3, 1, 2] does not match rank 5"), so it is left, constant or not. Rank ≤ 4 all-1 operands still push.
    @Test func leavesHigherRankAllOneOperands() throws {
        let one = try Build.floatTensor("one", [1, 1, 1, 1, 1], [2])
        let nodes = [L.transpose("x", "t", L.nchw, name: "to_nchw"), L.node("Mul", ["t", "one"], ["m"], name: "mul"),
                     L.node("Flatten", ["m"], ["z"], name: "flatten")]
        let constant = L.model(inputs: [L.input("x", [2, 4, 5, 3])], outputs: ["z"], initializers: [one], nodes: nodes)
        try Self.expectLeft(constant)
        try L.expectSameOutputs(constant, try Self.pushed(constant))
        let input = L.model(inputs: [L.input("x", [2, 4, 5, 3]), L.input("one", [1, 1, 1, 1, 1])], outputs: ["z"], nodes: nodes)
        try Self.expectLeft(input)
        // A region is only converted when it removes Transposes: here the one after the Mul cancels.
        let cancelling = [L.transpose("x", "t", L.nchw, name: "to_nchw"), L.node("Mul", ["t", "one"], ["m"], name: "mul"),
                          L.transpose("m", "back", L.nhwc, name: "to_nhwc"), L.node("Flatten", ["back"], ["z"], name: "flatten")]
        let lower = L.model(inputs: [L.input("x", [2, 4, 5, 3]), L.input("one", [1, 1, 1])], outputs: ["z"], nodes: cancelling)
        #expect(L.nodes(try Self.pushed(lower), "Mul").first?.inputs == ["x", "one"])
    }

    // MARK: - transpose-to-reshape

    static func reshaped(_ model: Model) throws -> Model { try L.apply([TransposeToReshape()], to: model) }

    /// A Transpose that only moves size-1 axes ([N, 1, 1, C] → [N, C, 1, 1], as a channels-last trunk ends) is a
    /// Reshape to the output shape, even when it writes a graph output.
    @Test(arguments: [([Int64(2), 1, 1, 5], [Int64(0), 3, 1, 2], [Int64(2), 5, 1, 1]), ([2, 3, 1], [2, 0, 1], [1, 2, 3]),
                      ([1, 4], [1, 0], [4, 1])])
    func turnsSizeOneTransposesIntoReshapes(_ shape: [Int64], _ perm: [Int64], _ expected: [Int64]) throws {
        let model = L.model(inputs: [L.input("x", shape)], outputs: ["y"], nodes: [L.transpose("x", "y", perm, name: "t")])
        let result = try Self.reshaped(model)
        let reshape = try #require(result.graph.nodes.first)
        #expect(result.graph.nodes.count == 1 && reshape.opType == "Reshape" && reshape.outputs == ["y"])
        #expect(reshape.inputs.first == "x" && L.ints(result, reshape.inputs[1]) == expected)
        try L.expectSameOutputs(model, result)
    }

    /// Transposes that reorder axes longer than 1, with an unknown or empty shape, or below opset 5 (Reshape's
    /// shape was an attribute) stay.
    @Test func leavesRealTransposes() throws {
        let reorder = L.model(inputs: [L.input("x", [2, 3, 4])], outputs: ["y"], nodes: [L.transpose("x", "y", [0, 2, 1], name: "t")])
        #expect(try Self.reshaped(reorder).graph.nodes == reorder.graph.nodes)
        let symbolic = L.model(inputs: [Build.input("x", [.symbolic("n"), .fixed(1), .fixed(3)])], outputs: ["y"],
                               nodes: [L.transpose("x", "y", [1, 0, 2], name: "t")])
        #expect(try Self.reshaped(symbolic).graph.nodes == symbolic.graph.nodes)
        let empty = L.model(inputs: [L.input("x", [0, 1, 3])], outputs: ["y"], nodes: [L.transpose("x", "y", [1, 0, 2], name: "t")])
        #expect(try Self.reshaped(empty).graph.nodes == empty.graph.nodes)
        let old = L.model(inputs: [L.input("x", [2, 1, 3])], outputs: ["y"], nodes: [L.transpose("x", "y", [1, 0, 2], name: "t")], opset: 4)
        #expect(try Self.reshaped(old).graph.nodes == old.graph.nodes)
    }
}
