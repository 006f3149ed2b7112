import OnnxcCore
import OnnxcRuntime
import Testing

/// Control-flow, sequence and optional kernels, run through `Executor` on hand-built graphs. The graphs use
/// only operators of these families (StringConcat stands in for arithmetic) so they run without the others.
@Suite struct ControlFlowTests {
    private func node(_ op: String, _ inputs: [String], _ outputs: [String], opset: Int = 17, _ attributes: [String: AttributeValue] = [:]) -> RuntimeNode {
        RuntimeNode(name: "", opType: op, domain: "", opset: opset, inputs: inputs, outputs: outputs, attributes: Attributes(attributes))
    }

    private func info(_ name: String, _ dtype: DType? = nil, _ shape: [Int?]? = nil) -> RuntimeValueInfo {
        RuntimeValueInfo(name: name, dtype: dtype, shape: shape, shapeText: "")
    }

    private func graph(_ nodes: [RuntimeNode], inputs: [String] = [], outputs: [String], initializers: [String: Tensor] = [:]) -> RuntimeGraph {
        RuntimeGraph(name: "g", inputs: inputs.map { info($0) }, outputs: outputs.map { info($0) }, initializers: initializers, nodes: nodes)
    }

    private func run(_ g: RuntimeGraph, _ inputs: [String: Value] = [:]) throws -> [String: Value] {
        try Executor(graph: g).run(inputs)
    }

    private func strings(_ value: Value?) -> [String]? { value?.tensor?.strings }

    private func sequence(_ value: Value?) -> [Tensor]? {
        if case .sequence(_, let items)? = value { return items }
        return nil
    }

    // MARK: - Loop

    /// Body: (i, cond, seq) → (cond, SequenceInsert(seq, i), scan i). Cond passes straight through.
    private var insertBody: RuntimeGraph {
        RuntimeGraph(
            name: "body", inputs: [info("i", .int64, []), info("cond_in", .bool, []), info("seq_in")],
            outputs: [info("cond_in"), info("seq_out"), info("i", .int64, [])], initializers: [:],
            nodes: [node("SequenceInsert", ["seq_in", "i"], ["seq_out"])])
    }

    @Test func loopCarriesASequenceAndStacksScanOutputs() throws {
        let g = graph([
            node("SequenceEmpty", [], ["empty"], ["dtype": .int(Int64(DType.int64.rawValue))]),
            node("Loop", ["M", "", "empty"], ["seq", "scan"], ["body": .graph(insertBody)]),
        ], inputs: ["M"], outputs: ["seq", "scan"])
        let out = try run(g, ["M": .tensor(.scalar(Int64(3)))])
        let items = try #require(sequence(out["seq"]))
        #expect(items.map { $0.array(Int64.self) } == [[0], [1], [2]])
        let scan = try #require(out["scan"]?.tensor)
        #expect(scan.shape == [3])
        #expect(scan.array(Int64.self) == [0, 1, 2])
    }

    @Test func loopWithFalseConditionRunsZeroTimes() throws {
        let g = graph([
            node("SequenceEmpty", [], ["empty"], ["dtype": .int(Int64(DType.int64.rawValue))]),
            node("Loop", ["", "cond", "empty"], ["seq", "scan"], ["body": .graph(insertBody)]),
        ], inputs: ["cond"], outputs: ["seq", "scan"])
        let out = try run(g, ["cond": .tensor(.scalar(false))])
        #expect(sequence(out["seq"])?.count == 0)
        let scan = try #require(out["scan"]?.tensor)
        #expect(scan.shape == [0])
        #expect(scan.dtype == .int64)
    }

    // MARK: - If

    @Test func ifBranchesSeeOuterValuesAndMayReturnSequencesOrEmptyOptionals() throws {
        let thenBranch = graph([node("SequenceConstruct", ["x", "x"], ["pair"])], outputs: ["pair"])
        let elseBranch = graph([node("Optional", [], ["nothing"], ["type": .type(.sequence(.string))])], outputs: ["nothing"])
        let g = graph([
            node("If", ["c"], ["r"], ["then_branch": .graph(thenBranch), "else_branch": .graph(elseBranch)]),
            node("OptionalHasElement", ["r"], ["has"]),
        ], inputs: ["c", "x"], outputs: ["r", "has"])
        let x = Value.tensor(Tensor(strings: ["a"], shape: [1]))
        let taken = try run(g, ["c": .tensor(.scalar(true)), "x": x])
        #expect(sequence(taken["r"])?.map { $0.strings ?? [] } == [["a"], ["a"]])
        #expect(taken["has"]?.tensor?.array(Bool.self) == [true])
        let skipped = try run(g, ["c": .tensor(.scalar(false)), "x": x])
        if case .none(let type)? = skipped["r"] { #expect(type == .sequence(.string)) } else { Issue.record("expected an empty optional") }
        #expect(skipped["has"]?.tensor?.array(Bool.self) == [false])
    }

    @Test func ifRejectsAConditionWithSeveralElements() throws {
        let branch = graph([], inputs: [], outputs: ["x"])
        let g = graph([node("If", ["c"], ["r"], ["then_branch": .graph(branch), "else_branch": .graph(branch)])],
                      inputs: ["c", "x"], outputs: ["r"])
        #expect(throws: RuntimeError.self) {
            try run(g, ["c": .tensor(try Tensor([true, false], shape: [2])), "x": .tensor(.scalar(Int64(1)))])
        }
    }

    // MARK: - Scan

    /// Body: (state, x) → (state + x, state + x) with string concatenation.
    private var concatBody: RuntimeGraph {
        RuntimeGraph(name: "body", inputs: [info("s"), info("x")], outputs: [info("s2"), info("s2")], initializers: [:],
                     nodes: [node("StringConcat", ["s", "x"], ["s2"])])
    }

    @Test func scanHonoursInputAxesDirectionsAndOutputAxes() throws {
        let g = graph([
            node("Scan", ["init", "xs"], ["final", "steps"], ["body": .graph(concatBody), "num_scan_inputs": .int(1),
                 "scan_input_axes": .ints([1]), "scan_input_directions": .ints([1]), "scan_output_axes": .ints([-1])]),
        ], inputs: ["init", "xs"], outputs: ["final", "steps"])
        let out = try run(g, [
            "init": .tensor(Tensor(strings: ["", ""], shape: [2])),
            "xs": .tensor(Tensor(strings: ["a", "b", "c", "d"], shape: [2, 2])),
        ])
        #expect(strings(out["final"]) == ["ba", "dc"])
        #expect(out["steps"]?.tensor?.shape == [2, 2])
        #expect(strings(out["steps"]) == ["b", "ba", "d", "dc"])
    }

    @Test func scanOpset8IteratesEachBatchEntryAndPadsShortSequences() throws {
        let g = graph([
            node("Scan", ["lens", "init", "xs"], ["final", "steps"], opset: 8,
                 ["body": .graph(concatBody), "num_scan_inputs": .int(1), "directions": .ints([1])]),
        ], inputs: ["lens", "init", "xs"], outputs: ["final", "steps"])
        let out = try run(g, [
            "lens": .tensor(try Tensor([Int32(2), 1], shape: [2])),
            "init": .tensor(Tensor(strings: ["", ""], shape: [2])),
            "xs": .tensor(Tensor(strings: ["a", "b", "c", "d"], shape: [2, 2])),
        ])
        #expect(strings(out["final"]) == ["ba", "c"])
        #expect(out["steps"]?.tensor?.shape == [2, 2])
        #expect(strings(out["steps"]) == ["b", "ba", "c", ""])
    }

    // MARK: - Sequences

    @Test func splitToSequenceAndConcatFromSequenceRoundTrip() throws {
        let g = graph([
            node("SplitToSequence", ["x", "two"], ["parts"], ["axis": .int(1)]),
            node("SequenceLength", ["parts"], ["n"]),
            node("ConcatFromSequence", ["parts"], ["back"], ["axis": .int(-1)]),
            node("SplitToSequence", ["x"], ["rows"], ["axis": .int(0), "keepdims": .int(0)]),
            node("ConcatFromSequence", ["rows"], ["stacked"], ["axis": .int(1), "new_axis": .int(1)]),
        ], inputs: ["x"], outputs: ["parts", "n", "back", "rows", "stacked"], initializers: ["two": .scalar(Int64(2))])
        let x = try Tensor([Int32(1), 2, 3, 4, 5, 6], shape: [2, 3])
        let out = try run(g, ["x": .tensor(x)])
        #expect(sequence(out["parts"])?.map(\.shape) == [[2, 2], [2, 1]])
        #expect(out["n"]?.tensor?.array(Int64.self) == [2])
        #expect(out["back"]?.tensor?.shape == [2, 3])
        #expect(out["back"]?.tensor?.array(Int32.self) == [1, 2, 3, 4, 5, 6])
        #expect(sequence(out["rows"])?.map(\.shape) == [[3], [3]])
        #expect(out["stacked"]?.tensor?.shape == [3, 2])
        #expect(out["stacked"]?.tensor?.array(Int32.self) == [1, 4, 2, 5, 3, 6])
    }

    @Test func sequencePositionsAcceptNegativesAndRejectOutOfRange() throws {
        let g = graph([
            node("SequenceConstruct", ["a", "b"], ["s"]),
            node("SequenceInsert", ["s", "c", "zero"], ["s2"]),
            node("SequenceAt", ["s2", "minusOne"], ["last"]),
            node("SequenceErase", ["s2", "zero"], ["s3"]),
        ], inputs: ["a", "b", "c"], outputs: ["s2", "last", "s3"],
           initializers: ["zero": .scalar(Int64(0)), "minusOne": .scalar(Int64(-1))])
        let t = { (s: String) in Value.tensor(Tensor(strings: [s], shape: [1])) }
        let out = try run(g, ["a": t("a"), "b": t("b"), "c": t("c")])
        #expect(sequence(out["s2"])?.compactMap { $0.strings?.first } == ["c", "a", "b"])
        #expect(strings(out["last"]) == ["b"])
        #expect(sequence(out["s3"])?.compactMap { $0.strings?.first } == ["a", "b"])

        let bad = graph([
            node("SequenceConstruct", ["a"], ["s"]),
            node("SequenceAt", ["s", "five"], ["x"]),
        ], inputs: ["a"], outputs: ["x"], initializers: ["five": .scalar(Int64(5))])
        #expect(throws: RuntimeError.self) { try run(bad, ["a": t("a")]) }
    }

    @Test func sequenceMapRunsTheBodyPerElementWithSharedTensors() throws {
        let body = RuntimeGraph(name: "body", inputs: [info("e"), info("suffix")], outputs: [info("r")], initializers: [:],
                                nodes: [node("StringConcat", ["e", "suffix"], ["r"])])
        let g = graph([
            node("SequenceConstruct", ["a", "b"], ["s"]),
            node("SequenceMap", ["s", "bang"], ["mapped"], ["body": .graph(body)]),
        ], inputs: ["a", "b", "bang"], outputs: ["mapped"])
        let out = try run(g, [
            "a": .tensor(Tensor(strings: ["x", "y"], shape: [2])),
            "b": .tensor(Tensor(strings: ["z"], shape: [1])),
            "bang": .tensor(Tensor(strings: ["!"], shape: [])),
        ])
        #expect(sequence(out["mapped"])?.map { $0.strings ?? [] } == [["x!", "y!"], ["z!"]])
    }

    @Test func optionalGetElementOfAnEmptyOptionalThrows() throws {
        let g = graph([
            node("Optional", [], ["o"], ["type": .type(.tensor(.float))]),
            node("OptionalGetElement", ["o"], ["x"]),
        ], outputs: ["x"])
        #expect(throws: RuntimeError.self) { try run(g) }
        let present = graph([
            node("Optional", ["v"], ["o"]),
            node("OptionalGetElement", ["o"], ["x"]),
        ], inputs: ["v"], outputs: ["x"])
        let out = try run(present, ["v": .tensor(.scalar(Float(2)))])
        #expect(out["x"]?.tensor?.array(Float.self) == [2])
    }
    @Test func splitAndConcatKeepPackedFourBitElements() throws {
        let x = try Tensor(zeros: .int4, shape: [2, 3])
        x.withMutableBytes { raw in
            raw[0] = 0x21; raw[1] = 0x43; raw[2] = 0x65  // 1...6, low nibble first
        }
        let g = graph([
            node("SplitToSequence", ["x", "two"], ["parts"], ["axis": .int(1)]),
            node("ConcatFromSequence", ["parts"], ["back"], ["axis": .int(1)]),
        ], inputs: ["x"], outputs: ["parts", "back"], initializers: ["two": .scalar(Int64(2))])
        let out = try run(g, ["x": .tensor(x)])
        #expect(sequence(out["parts"])?.map { $0.doubles() } == [[1, 2, 4, 5], [3, 6]])
        #expect(out["back"]?.tensor?.doubles() == [1, 2, 3, 4, 5, 6])
    }

    /// A linear RNN with unit weights sums its inputs, which makes directions and sequence_lens easy to check.
    @Test func bidirectionalRNNHonoursSequenceLengths() throws {
        let g = graph([
            node("RNN", ["x", "w", "r", "", "lens"], ["y", "yh"], ["hidden_size": .int(1), "direction": .string("bidirectional"),
                 "activations": .strings(["Affine", "Affine"]), "activation_alpha": .floats([1, 1]), "activation_beta": .floats([0, 0])]),
        ], inputs: ["x", "lens"], outputs: ["y", "yh"],
           initializers: ["w": try Tensor([Float(1), 1], shape: [2, 1, 1]), "r": try Tensor([Float(1), 1], shape: [2, 1, 1])])
        let x = Value.tensor(try Tensor([Float(1), 2, 3], shape: [3, 1, 1]))
        let full = try run(g, ["x": x, "lens": .tensor(try Tensor([Int32(3)], shape: [1]))])
        #expect(full["y"]?.tensor?.shape == [3, 2, 1, 1])
        #expect(full["y"]?.tensor?.array(Float.self) == [1, 6, 3, 5, 6, 3])
        #expect(full["yh"]?.tensor?.array(Float.self) == [6, 6])
        let short = try run(g, ["x": x, "lens": .tensor(try Tensor([Int32(2)], shape: [1]))])
        #expect(short["y"]?.tensor?.array(Float.self) == [1, 3, 3, 2, 0, 0])
        #expect(short["yh"]?.tensor?.array(Float.self) == [3, 3])
    }

    @Test func recurrentShapesAreValidatedInsteadOfTrapping() throws {
        let g = graph([node("LSTM", ["x", "w", "r"], ["y"], ["hidden_size": .int(2)])], inputs: ["x", "w", "r"], outputs: ["y"])
        #expect(throws: RuntimeError.self) {
            try run(g, [
                "x": .tensor(try Tensor(zeros: .float, shape: [2, 1, 3])),
                "w": .tensor(try Tensor(zeros: .float, shape: [1, 8, 4])),
                "r": .tensor(try Tensor(zeros: .float, shape: [1, 8, 2])),
            ])
        }
    }
}
