import OnnxcCore
import OnnxcEmitter
import OnnxcFormat
import OnnxcIR
import OnnxcLowering
import OnnxcPasses
import OnnxcRuntime
import OnnxcTestSupport
import Testing

/// Add and Mul of two quantized activations whose shapes differ (NumPy broadcasting) lower to
/// ai.onnxc::QLinearAdd / QLinearMul, agree with the QDQ model to a step, and the compiled kernel
/// (`ck_qbinary_u8`) gives the interpreter's bytes.
@Suite struct QuantizedBroadcastCompileTests {
    /// x [2, 2, 4, 4] → Conv → c [2, 3, 4, 4]; op(MaxPool 1×4 of c [2, 3, 4, 1], MaxPool 4×1 of c [2, 3, 1, 4]) (both
    /// operands broadcast); op(GlobalAveragePool(c) [2, 3, 1, 1], c) (a per-channel gate as the first operand); op of a
    /// [3, 1, 1] slice of the first gate's batch 0 by c (lower rank); their sum → Conv → y.
    static func model(_ op: String) throws -> Model {
        let graph = Graph(
            name: "g", inputs: [Build.input("x", [.fixed(2), .fixed(2), .fixed(4), .fixed(4)])], outputs: [ValueInfo(name: "y", type: nil)],
            initializers: [try Build.floatTensor("W", [3, 2, 1, 1], Pseudorandom.floats(6, seed: 3)),
                           try Build.floatTensor("W2", [2, 3, 1, 1], Pseudorandom.floats(6, seed: 4)),
                           try Build.int64Tensor("axes", [1], [0]), try Build.int64Tensor("zero", [1], [0]), try Build.int64Tensor("one", [1], [1])],
            nodes: [Build.node("Conv", ["x", "W"], ["c"]),
                    Build.node("MaxPool", ["c"], ["r"], [Attribute("kernel_shape", .ints([1, 4])), Attribute("strides", .ints([1, 4]))]),
                    Build.node("MaxPool", ["c"], ["s"], [Attribute("kernel_shape", .ints([4, 1])), Attribute("strides", .ints([4, 1]))]),
                    Build.node(op, ["r", "s"], ["m1"]),
                    Build.node("GlobalAveragePool", ["c"], ["g"]),
                    Build.node(op, ["g", "c"], ["m2"]),
                    Build.node("Slice", ["g", "zero", "one", "axes"], ["g0"]),
                    Build.node("Squeeze", ["g0", "axes"], ["g3"]),
                    Build.node(op, ["c", "g3"], ["m3"]),
                    Build.node("Add", ["m1", "m2"], ["t"]),
                    Build.node("Add", ["t", "m3"], ["u"]),
                    Build.node("Conv", ["u", "W2"], ["y"])])
        return Build.model(graph, opset: 18)
    }

    static func interpreted(_ model: Model, _ inputs: [String: Value]) throws -> OnnxcRuntime.Tensor? {
        try Executor(graph: try Lowering.lower(model)).run(inputs)["y"]?.tensor
    }

    @Test(arguments: ["Add", "Mul"])
    func broadcastOperandsRunOnTheIntegersInBothPaths(_ op: String) throws {
        let model = try Self.model(op)
        let inputs: [String: Value] = ["x": .tensor(try OnnxcRuntime.Tensor(Pseudorandom.floats(64, seed: 8).map { $0 * 4 }, shape: [2, 2, 4, 4]))]
        let options = QuantizationOptions()
        let ranges = try Calibration.ranges(model: model, tensors: QDQInsertion.calibrationTensors(model, options: options),
                                            batches: [inputs], method: .minMax)
        let (quantized, _) = try QDQInsertion.insert(model, ranges: ranges, options: options)
        let lowered = try Pipelines.quantizedLowering().run(ShapeInference.infer(quantized).0)
        let ops = lowered.graph.nodes.map(\.qualifiedOpType)
        // The three broadcast ops and the two same-shape Adds, none left in float.
        #expect(ops.filter { $0 == "ai.onnxc::QLinearMul" }.count == (op == "Mul" ? 3 : 0), "\(ops)")
        #expect(ops.filter { $0 == "ai.onnxc::QLinearAdd" }.count == (op == "Add" ? 5 : 2) && !ops.contains(op) && !ops.contains("Add"), "\(ops)")
        let qdq = try #require(try Self.interpreted(quantized, inputs)).array(Float.self)
        let interpreted = try #require(try Self.interpreted(lowered, inputs))
        let scale = qdq.map(abs).max() ?? 1
        #expect((zip(qdq, interpreted.array(Float.self)).map { abs($0 - $1) }.max() ?? 1) <= 0.03 * scale)
        // Compiled through the file format, as `onnxc compile` and `onnxc run` go.
        let metadata = ProgramMetadata(compiler: "test", sourceSHA256: [], sourceName: "m", producer: "", optimization: "-O int8")
        let (program, _) = try Emitter.emit(ShapeInference.infer(lowered).0, metadata: metadata)
        let compiled = try CompiledModel(program: try OXCReader.read(ByteStorage(copying: try OXCWriter.serialize(program))))
        let y = try #require(try compiled.run(inputs)["y"]?.tensor)
        #expect(TensorComparison.difference(y, interpreted, rtol: 1e-5, atol: 1e-6) == nil)
    }
}
