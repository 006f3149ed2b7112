import OnnxcCore
import OnnxcEmitter
import OnnxcFormat
import OnnxcIR
import OnnxcLowering
import OnnxcPasses
import OnnxcRuntime
import OnnxcTestSupport
import Testing

/// Integer ops through `compile -O int8`'s passes and the compiled path: each lowered group agrees with the QDQ
/// model to a step, and the compiled kernels give the interpreter's reference bytes — to a step after the layout
/// stage, where the channels-last integer convolution's fixed-point requantization rounds a few outputs the other
/// way than the reference's exact one (the pools' own bytes are compared in QuantizeLinearKernelTests).
@Suite struct QuantizedCompileTests {
    struct Compiled {
        var ops: [String]
        var qdq: [Float]
        var interpreted: OnnxcRuntime.Tensor
        var compiled: OnnxcRuntime.Tensor
    }

    /// `model` quantized (min-max on `inputs`) and lowered, with `layout` the -O2 runtime pipeline and its layout
    /// stage between two lowerings (as `onnxc compile -O int8` runs them); output "y" of the QDQ model, of the
    /// lowered one in the interpreter and compiled through the file format.
    static func compile(_ model: Model, _ inputs: [String: Value], layout: Bool) throws -> Compiled {
        let options = QuantizationOptions()
        let ranges = try Calibration.ranges(model: model, tensors: QDQInsertion.calibrationTensors(model, options: options),
                                            batches: [inputs], method: .minMax)
        let (quantized, _) = try QDQInsertion.insert(model, ranges: ranges, options: options)
        var lowered = try Pipelines.quantizedLowering().run(ShapeInference.infer(quantized).0)
        if layout {
            let passOptions = PassOptions(target: .runtime)
            lowered = try PassManager(passes: Pipelines.passes(level: 2, target: .runtime), options: passOptions).run(ShapeInference.infer(lowered).0)
            for driver in Pipelines.layoutDrivers(options: passOptions) { lowered = try driver.run(ShapeInference.infer(lowered).0) }
            lowered = try Pipelines.quantizedLowering().run(ShapeInference.infer(lowered).0)
        }
        func interpreted(_ model: Model) throws -> OnnxcRuntime.Tensor {
            try #require(try Executor(graph: try Lowering.lower(model)).run(inputs)["y"]?.tensor)
        }
        let metadata = ProgramMetadata(compiler: "test", sourceSHA256: [], sourceName: "m", producer: "", optimization: "-O int8")
        let (program, _) = try Emitter.emit(ShapeInference.infer(lowered).0, metadata: metadata)
        let compiled = try CompiledModel(program: try OXCReader.read(ByteStorage(copying: try OXCWriter.serialize(program))))
        return Compiled(ops: lowered.graph.nodes.map(\.qualifiedOpType), qdq: try interpreted(quantized).array(Float.self),
                        interpreted: try interpreted(lowered), compiled: try #require(try compiled.run(inputs)["y"]?.tensor))
    }

    /// The largest difference of a and b relative to a's magnitude.
    static func deviation(_ a: [Float], _ b: [Float]) -> Float {
        (zip(a, b).map { abs($0 - $1) }.max() ?? 1) / (a.map(abs).max() ?? 1)
    }

    static func input(_ shape: [Int], seed: Int) throws -> [String: Value] {
        ["x": .tensor(try OnnxcRuntime.Tensor(Pseudorandom.floats(shape.reduce(1, *), seed: seed).map { $0 * 4 }, shape: shape))]
    }

    /// x [2, 2, 4, 4] → Conv → c [2, 3, 4, 4]; op(MaxPool 1×4 of c [2, 3, 4, 1], MaxPool 4×1 of c [2, 3, 1, 4]) (both
    /// operands broadcast); op(GlobalAveragePool(c) [2, 3, 1, 1], c) (a per-channel gate as the first operand); op of c
    /// by a [3, 1, 1] slice of the gates' batch 0 (lower rank); their sum → Conv → y.
    static func broadcastModel(_ op: String) throws -> Model {
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

    /// Add and Mul of two quantized activations whose shapes differ (NumPy broadcasting) become
    /// ai.onnxc::QLinearAdd / QLinearMul (`ck_qbinary_u8` compiled), NCHW as lowered and channels last after the layout stage.
    @Test(arguments: ["Add", "Mul"], [false, true])
    func broadcastOperandsRunOnTheIntegers(_ op: String, _ layout: Bool) throws {
        let r = try Self.compile(try Self.broadcastModel(op), try Self.input([2, 2, 4, 4], seed: 8), layout: layout)
        // The three broadcast ops and the two same-shape Adds, none left in float.
        #expect(r.ops.filter { $0 == "ai.onnxc::QLinearMul" }.count == (op == "Mul" ? 3 : 0), "\(r.ops)")
        #expect(r.ops.filter { $0 == "ai.onnxc::QLinearAdd" }.count == (op == "Add" ? 5 : 2) && !r.ops.contains(op) && !r.ops.contains("Add"), "\(r.ops)")
        #expect(Self.deviation(r.qdq, r.interpreted.array(Float.self)) <= 0.03)
        if layout {
            #expect(Self.deviation(r.interpreted.array(Float.self), r.compiled.array(Float.self)) <= 0.03)
        } else {
            #expect(TensorComparison.difference(r.compiled, r.interpreted, rtol: 1e-5, atol: 1e-6) == nil)
        }
    }

    /// Conv → AveragePool (3×3, stride 2, pad 1; with and without count_include_pad; a 2×2 ceil-mode one) → Conv:
    /// after the layout stage the pool runs on uint8 (ai.onnxc::NhwcQAveragePool), no float island around it.
    @Test(arguments: [(3, 2, 1, 0, 0), (3, 2, 1, 1, 0), (2, 2, 0, 0, 1)] as [(Int64, Int64, Int64, Int64, Int64)])
    func averagePoolRunsOnTheIntegers(_ kernel: Int64, _ stride: Int64, _ pad: Int64, _ includePad: Int64, _ ceil: Int64) throws {
        let graph = Graph(
            name: "g", inputs: [Build.input("x", [.fixed(2), .fixed(3), .fixed(7), .fixed(7)])], outputs: [ValueInfo(name: "y", type: nil)],
            initializers: [try Build.floatTensor("W", [5, 3, 1, 1], Pseudorandom.floats(15, seed: 3)),
                           try Build.floatTensor("W2", [4, 5, 1, 1], Pseudorandom.floats(20, seed: 4))],
            nodes: [Build.node("Conv", ["x", "W"], ["c"]),
                    Build.node("AveragePool", ["c"], ["p"], [Attribute("kernel_shape", .ints([kernel, kernel])), Attribute("strides", .ints([stride, stride])),
                                                              Attribute("pads", .ints([pad, pad, pad, pad])), Attribute("count_include_pad", .int(includePad)),
                                                              Attribute("ceil_mode", .int(ceil))]),
                    Build.node("Conv", ["p", "W2"], ["y"])])
        let r = try Self.compile(Build.model(graph, opset: 19), try Self.input([2, 3, 7, 7], seed: 5), layout: true)
        #expect(r.ops.contains("ai.onnxc::NhwcQAveragePool") && !r.ops.contains("ai.onnxc::NhwcAveragePool") && !r.ops.contains("DequantizeLinear")
                && r.ops.filter { $0 == "QuantizeLinear" }.count == 1, "\(r.ops)")
        #expect(Self.deviation(r.qdq, r.interpreted.array(Float.self)) <= 0.03)
        #expect(Self.deviation(r.interpreted.array(Float.self), r.compiled.array(Float.self)) <= 0.03)
    }
}
