import OnnxcCore
import OnnxcEmitter
import OnnxcFormat
import OnnxcIR
import OnnxcLowering
import OnnxcPasses
import OnnxcRuntime
import OnnxcTestSupport
import Testing

/// LSTM, GRU and RNN through the compiled path (projections made once at load, `RecurrentSteps`) against the
/// interpreter (made per run), in float and in `-O int8-dynamic`'s integer form (ai.onnxc::QLSTM/QGRU/QRNN),
/// whose outputs must stay close to the float model's.
@Suite struct RecurrentCompileTests {
    struct Case: CustomStringConvertible, Sendable {
        var op: String
        var direction = "forward"
        var linearBeforeReset = false
        var peepholes = false
        var lengths: [Int64]? = nil
        var initialState = false
        var description: String { "\(op) \(direction)\(linearBeforeReset ? " lbr" : "")\(peepholes ? " peepholes" : "")\(lengths.map { " lens \($0)" } ?? "")" }
    }

    static let cases: [Case] = [
        Case(op: "LSTM"),
        Case(op: "LSTM", direction: "bidirectional", peepholes: true, lengths: [7, 4, 0], initialState: true),
        Case(op: "GRU"),
        Case(op: "GRU", direction: "reverse", linearBeforeReset: true, lengths: [5, 7, 2]),
        Case(op: "GRU", direction: "bidirectional", initialState: true),
        Case(op: "RNN", direction: "bidirectional", lengths: [3, 7, 6]),
    ]

    static let (steps, batch, inputSize, hidden) = (7, 3, 5, 16)

    /// X [7, 3, 5] → op → Y and Y_h (and LSTM's Y_c), weights scaled as a trained layer's (≈ 1/√fan-in).
    static func model(_ c: Case) throws -> Model {
        let gates: Int64 = c.op == "LSTM" ? 4 : c.op == "GRU" ? 3 : 1
        let d: Int64 = c.direction == "bidirectional" ? 2 : 1
        let h = Int64(hidden), gh = gates * h
        func weights(_ name: String, _ dims: [Int64], seed: Int, scale: Float) throws -> OnnxcIR.Tensor {
            let count = dims.reduce(1, *)
            return try Build.floatTensor(name, dims, Pseudorandom.floats(Int(count), seed: seed).map { $0 * scale })
        }
        var initializers = [try weights("W", [d, gh, Int64(inputSize)], seed: 1, scale: 0.6), try weights("R", [d, gh, h], seed: 2, scale: 0.3),
                            try weights("B", [d, 2 * gh], seed: 3, scale: 0.2)]
        var inputs = ["x", "W", "R", "B", "", ""]
        if let lengths = c.lengths {
            initializers.append(try Build.int64Tensor("lens", [Int64(batch)], lengths))
            inputs[4] = "lens"
        }
        if c.initialState {
            initializers.append(try weights("h0", [d, Int64(batch), h], seed: 4, scale: 0.5))
            inputs[5] = "h0"
        }
        var outputs = ["y", "y_h"]
        if c.op == "LSTM" {
            inputs += ["", ""]
            if c.initialState {
                initializers.append(try weights("c0", [d, Int64(batch), h], seed: 5, scale: 0.5))
                inputs[6] = "c0"
            }
            if c.peepholes {
                initializers.append(try weights("P", [d, 3 * h], seed: 6, scale: 0.3))
                inputs[7] = "P"
            }
            outputs.append("y_c")
        }
        while inputs.last == "" { inputs.removeLast() }
        var attributes = [Attribute("hidden_size", .int(h)), Attribute("direction", .string(Array(c.direction.utf8)))]
        if c.linearBeforeReset { attributes.append(Attribute("linear_before_reset", .int(1))) }
        let graph = Graph(name: "recurrent", inputs: [Build.input("x", [.fixed(Int64(steps)), .fixed(Int64(batch)), .fixed(Int64(inputSize))])],
                          outputs: outputs.map { ValueInfo(name: $0, type: nil) }, initializers: initializers,
                          nodes: [Build.node(c.op, inputs, outputs, name: "rnn", attributes)])
        return Build.model(graph)
    }

    static func inputs() throws -> [String: Value] {
        ["x": .tensor(try OnnxcRuntime.Tensor(Pseudorandom.floats(steps * batch * inputSize, seed: 9).map { $0 * 2 }, shape: [steps, batch, inputSize]))]
    }

    static func interpreted(_ model: Model) throws -> [String: OnnxcRuntime.Tensor] {
        try Executor(graph: try Lowering.lower(model)).run(try inputs()).compactMapValues(\.tensor)
    }

    static func compiled(_ model: Model) throws -> [String: OnnxcRuntime.Tensor] {
        let (typed, _) = ShapeInference.infer(model)
        let metadata = ProgramMetadata(compiler: "test", sourceSHA256: [], sourceName: "recurrent", producer: "", optimization: "-O0")
        let (program, _) = try Emitter.emit(typed, metadata: metadata)
        // Through the file format, as `onnxc compile` and `onnxc run` go.
        let bytes = try OXCWriter.serialize(program)
        return try CompiledModel(program: try OXCReader.read(ByteStorage(copying: bytes))).run(try inputs()).compactMapValues(\.tensor)
    }

    @Test(arguments: cases)
    func compiledFloatMatchesTheInterpreter(_ c: Case) throws {
        let model = try Self.model(c)
        let expected = try Self.interpreted(model), actual = try Self.compiled(model)
        #expect(Set(expected.keys) == Set(actual.keys))
        for (name, tensor) in expected {
            let other = try #require(actual[name])
            #expect(TensorComparison.difference(other, tensor, rtol: 1e-5, atol: 1e-6) == nil, "\(c) output \(name)")
        }
    }

    @Test(arguments: cases)
    func dynamicInt8RunsOnTheIntegersCloseToFloat(_ c: Case) throws {
        let model = try Self.model(c)
        let (quantized, summary) = try QDQInsertion.insert(model, ranges: [:], options: QuantizationOptions(dynamic: true))
        #expect(summary.quantizedWeights == 2, "\(c): W and R")
        // Standard ONNX: W and R dequantize int8 constants (a Reshape after a two-direction one), the op stays.
        #expect(quantized.graph.nodes.filter { $0.opType == "DequantizeLinear" }.count == 2)
        #expect(!quantized.graph.initializers.contains { ["W", "R"].contains($0.name) })
        let lowered = try Pipelines.quantizedLowering().run(ShapeInference.infer(quantized).0)
        let ops = lowered.graph.nodes.map(\.qualifiedOpType)
        #expect(ops == [RuntimeOps.domain + "::Q" + c.op], "\(c): \(ops)")
        let reference = try Self.interpreted(model)
        let perRun = try Self.interpreted(lowered), atLoad = try Self.compiled(lowered)
        for (name, expected) in reference {
            let e = expected.array(Float.self)
            let q = try #require(perRun[name]).array(Float.self), l = try #require(atLoad[name]).array(Float.self)
            // The projections made at load compute what the per-run ones do (to float rounding: another suite's
            // test may switch the process-wide instruction set, and with it the vector activations, between the two).
            #expect(zip(q, l).allSatisfy { abs($0 - $1) <= 1e-5 }, "\(c) output \(name): compiled and interpreted int8 differ")
            // Hidden states lie in (−1, 1); X and each step's h are quantized to 255 steps of their range.
            let error = zip(e, q).map { abs($0 - $1) }.max() ?? 1
            #expect(error < 0.03, "\(c) output \(name): int8 is \(error) from float")
        }
    }

    /// A sequence of no steps: Y is empty and Y_h the initial state (zeros), through both paths (not an error).
    @Test func emptySequence() throws {
        var model = try Self.model(Case(op: "LSTM"))
        model.graph.inputs = [Build.input("x", [.fixed(0), .fixed(Int64(Self.batch)), .fixed(Int64(Self.inputSize))])]
        let x = try OnnxcRuntime.Tensor([Float](), shape: [0, Self.batch, Self.inputSize])
        let interpreted = try Executor(graph: try Lowering.lower(model)).run(["x": .tensor(x)]).compactMapValues(\.tensor)
        #expect(interpreted["y"]?.shape == [0, 1, Self.batch, Self.hidden])
        #expect(interpreted["y_h"].map { $0.array(Float.self).allSatisfy { $0 == 0 } } == true)
        let (typed, _) = ShapeInference.infer(model)
        let (program, _) = try Emitter.emit(typed, metadata: ProgramMetadata(compiler: "test", sourceSHA256: [], sourceName: "empty", producer: "", optimization: "-O0"))
        let compiled = try CompiledModel(program: program).run(["x": .tensor(x)]).compactMapValues(\.tensor)
        #expect(compiled["y"]?.shape == [0, 1, Self.batch, Self.hidden] && compiled["y_c"]?.shape == [1, Self.batch, Self.hidden])
    }
}

/// Transposes that move blocks (the innermost axes stay): the compiled step's block copies against the
/// interpreter's element-by-element permutation, for float and int8 elements.
@Suite struct BlockTransposeTests {
    @Test(arguments: [([2, 3, 4, 5], [0, 2, 1, 3]), ([1, 6, 2, 8], [0, 2, 1, 3]), ([1, 2, 6, 8], [0, 2, 1, 3]), ([3, 4, 5], [1, 0, 2]),
                      ([2, 1, 3, 1, 4], [0, 3, 2, 1, 4])] as [([Int64], [Int64])])
    func blockTransposeMatchesThePermutation(_ shape: [Int64], _ perm: [Int64]) throws {
        for dtype in [DType.float, .int8] {
            let count = shape.reduce(1, *)
            var graph = Graph(name: "t", inputs: [Build.input("x", shape.map { .fixed($0) }, dtype)], outputs: [ValueInfo(name: "y", type: nil)],
                              nodes: [Build.node("Transpose", ["x"], ["y"], [Attribute("perm", .ints(perm))])])
            graph.outputs = [ValueInfo(name: "y", type: nil)]
            let model = Build.model(graph)
            let x: OnnxcRuntime.Tensor = dtype == .float
                ? try OnnxcRuntime.Tensor((0..<Int(count)).map { Float($0) }, shape: shape.map { Int($0) })
                : try OnnxcRuntime.Tensor((0..<Int(count)).map { Int8(truncatingIfNeeded: $0) }, shape: shape.map { Int($0) })
            let expected = try #require(try Executor(graph: try Lowering.lower(model)).run(["x": .tensor(x)])["y"]?.tensor)
            let (program, _) = try Emitter.emit(ShapeInference.infer(model).0,
                                                metadata: ProgramMetadata(compiler: "test", sourceSHA256: [], sourceName: "t", producer: "", optimization: "-O0"))
            let actual = try #require(try CompiledModel(program: program).run(["x": .tensor(x)])["y"]?.tensor)
            #expect(actual.shape == expected.shape && TensorComparison.difference(actual, expected, rtol: 0, atol: 0) == nil, "\(shape) \(perm) \(dtype)")
        }
    }
}
