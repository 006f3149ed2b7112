import OnnxcCore
import OnnxcIR
import OnnxcLowering
import OnnxcPasses
import OnnxcRuntime
import OnnxcTestSupport
import Testing

@Suite struct QuantizationParametersTests {
    @Test func activationGridsMatchHandComputedCases() {
        // [0, 2.55]: scale 0.01, zero point 0 (ReLU outputs).
        let relu = QuantizationParameters.activation(low: 0, high: 2.55)
        #expect(abs(relu.scale - 0.01) < 1e-9 && relu.zeroPoint == 0)
        // [-1, 1]: scale 2/255, zero point 1/scale ≈ 127.5, which the float scale rounds to one side.
        let symmetric = QuantizationParameters.activation(low: -1, high: 1)
        #expect(abs(symmetric.scale - 2 / 255) < 1e-9 && symmetric.zeroPoint == UInt8((1 / Double(symmetric.scale)).rounded(.toNearestOrEven)))
        // [-1, 3]: scale 4/255, zero point 63.75 → 64.
        #expect(QuantizationParameters.activation(low: -1, high: 3).zeroPoint == 64)
        // A range that excludes 0 is widened to include it: [1, 3] → [0, 3].
        let positive = QuantizationParameters.activation(low: 1, high: 3)
        #expect(abs(positive.scale - 3 / 255) < 1e-9 && positive.zeroPoint == 0)
        // [-3, -1] → [-3, 0]: zero point 255.
        #expect(QuantizationParameters.activation(low: -3, high: -1).zeroPoint == 255)
        // Degenerate and non-finite ranges do not divide by zero.
        #expect(QuantizationParameters.activation(low: 0, high: 0) == .init(scale: 1, zeroPoint: 0))
        #expect(QuantizationParameters.activation(low: -.infinity, high: .nan).scale == 1)
        // 0 is exactly representable on every grid.
        for (lo, hi) in [(-0.37, 5.1), (-10.0, 0.01), (-1e-3, 1e3)] {
            let grid = QuantizationParameters.activation(low: lo, high: hi)
            #expect(grid.dequantize(grid.quantize(0)) == 0)
            #expect(grid.quantize(Float(hi) * 2) == 255 && grid.quantize(Float(lo) * 2) == 0)
        }
    }

    @Test func weightsArePerChannelSymmetricAndHandleZeroChannels() {
        // Two channels of three: [1, -0.5, 0.25] and all zero; a third constant channel.
        let w: [Double] = [1, -0.5, 0.25, 0, 0, 0, 0.3, 0.3, 0.3]
        let (q, scales) = QuantizationParameters.weights(w, channels: 3) { $0 / 3 }
        #expect(scales[0] == Float(1.0 / 127) && scales[1] == 1 && scales[2] == Float(0.3 / 127))
        #expect(Array(q[0..<3]) == [127, -64, 32])  // −63.5 and 31.75 round to even/nearest
        #expect(Array(q[3..<6]) == [0, 0, 0] && Array(q[6..<9]) == [127, 127, 127])
        #expect(!q.contains(-128))
        let (qt, st) = QuantizationParameters.weights([2, -4, 1], channels: 1) { _ in 0 }
        #expect(st == [Float(4.0 / 127)] && qt == [64, -127, 32])
    }

    @Test func biasesUseTheProductOfScalesAndClamp() {
        let (q, scales, clamped) = QuantizationParameters.bias([0.5, -1, 1e30], inputScale: 0.1, weightScales: [0.01, 0.02, 0.01])
        #expect(scales == [Float(0.1 * 0.01), Float(0.1 * 0.02), Float(0.1 * 0.01)])
        #expect(q[0] == 500 && q[1] == -500 && q[2] == Int32.max)
        #expect(clamped == 1)
    }
}

@Suite struct CalibrationTests {
    /// y = x · 2 as a graph, observed on two batches.
    private func doubling() throws -> Model {
        let graph = Graph(name: "g", inputs: [Build.input("x", [.symbolic("n"), .fixed(4)])], outputs: [ValueInfo(name: "y", type: nil)],
                          initializers: [try Build.floatTensor("two", [], [2])], nodes: [Build.node("Mul", ["x", "two"], ["y"])])
        return Build.model(graph)
    }

    private func batch(_ values: [Float]) throws -> [String: Value] {
        ["x": .tensor(try OnnxcRuntime.Tensor(values, shape: [values.count / 4, 4]))]
    }

    @Test func minMaxSpansEverySample() throws {
        let batches = [try batch([0, 1, 2, 3]), try batch([-1, 0.5, 4, 0, 0, 0, 0, 0])]
        var calls = 0
        let ranges = try Calibration.ranges(model: try doubling(), tensors: ["x", "y"], batches: batches, method: .minMax) { _, _ in calls += 1 }
        #expect(ranges["x"] == TensorRange(low: -1, high: 4))
        #expect(ranges["y"] == TensorRange(low: -2, high: 8))
        #expect(calls == 2)
    }

    @Test func percentileClipsOutliersAndEntropyKeepsTheBulk() throws {
        // 10,000 values uniform in [0, 1] plus one outlier at 100.
        var values = (0..<10_000).map { Float($0) / 10_000 }
        values += [100, 0, 0, 0]
        let batches = [try batch(values)]
        let model = try doubling()
        // y = 2x is an intermediate (a graph input keeps its full range under every method).
        let minMax = try Calibration.ranges(model: model, tensors: ["x", "y"], batches: batches, method: .minMax)
        #expect(minMax["y"]?.high == 200)
        let percentile = try Calibration.ranges(model: model, tensors: ["x", "y"], batches: batches, method: .percentile(99.9))
        #expect((percentile["y"]?.high ?? 200) < 2.2 && (percentile["y"]?.high ?? 0) > 1.8)
        #expect(percentile["x"]?.high == 100)
        let entropy = try Calibration.ranges(model: model, tensors: ["y"], batches: batches, method: .entropy)
        #expect((entropy["y"]?.high ?? 200) < 20 && (entropy["y"]?.high ?? 0) >= 1.8)
    }
}

@Suite struct QDQInsertionTests {
    /// x → Conv(W, B) → Relu → Conv(W2) → Add(residual from the first Relu) → GlobalAveragePool → Flatten → Gemm → y.
    private func network() throws -> Model {
        let w1 = Pseudorandom.floats(4 * 3 * 9, seed: 1), w2 = Pseudorandom.floats(4 * 4 * 9, seed: 2)
        let fc = Pseudorandom.floats(5 * 4, seed: 3)
        let graph = Graph(
            name: "g", inputs: [Build.input("x", [.symbolic("n"), .fixed(3), .fixed(6), .fixed(6)])], outputs: [ValueInfo(name: "y", type: nil)],
            initializers: [try Build.floatTensor("W", [4, 3, 3, 3], w1), try Build.floatTensor("B", [4], [0.1, -0.2, 0.3, 0]),
                           try Build.floatTensor("W2", [4, 4, 3, 3], w2), try Build.floatTensor("F", [5, 4], fc),
                           try Build.floatTensor("C", [5], [0.5, 0, -0.5, 1, 0])],
            nodes: [Build.node("Conv", ["x", "W", "B"], ["c1"], name: "conv1", [Attribute("pads", .ints([1, 1, 1, 1]))]),
                    Build.node("Relu", ["c1"], ["r1"], name: "relu1"),
                    Build.node("Conv", ["r1", "W2"], ["c2"], name: "conv2", [Attribute("pads", .ints([1, 1, 1, 1]))]),
                    Build.node("Add", ["c2", "r1"], ["a"], name: "add"),
                    Build.node("GlobalAveragePool", ["a"], ["p"], name: "gap"),
                    Build.node("Flatten", ["p"], ["f"], name: "flatten"),
                    Build.node("Gemm", ["f", "F", "C"], ["y"], name: "fc", [Attribute("transB", .int(1))])])
        return Build.model(graph)
    }

    private func samples(_ count: Int, seed: Int) throws -> [String: Value] {
        ["x": .tensor(try OnnxcRuntime.Tensor(Pseudorandom.floats(count * 108, seed: seed), shape: [count, 3, 6, 6]))]
    }

    private func quantized(_ options: QuantizationOptions = QuantizationOptions()) throws -> (Model, QuantizationSummary) {
        let model = try network()
        let tensors = QDQInsertion.calibrationTensors(model, options: options)
        let ranges = try Calibration.ranges(model: model, tensors: tensors, batches: [try samples(8, seed: 5)], method: .minMax)
        return try QDQInsertion.insert(model, ranges: ranges, options: options)
    }

    @Test func insertsPairsWhereQuantizedOpsReadAndStaysCloseToFloat() throws {
        let (model, summary) = try quantized()
        let ops = model.graph.nodes.map(\.opType)
        // x, r1 (read by conv2 and add), c2 (read by add), a, p, f: six activations; W, W2, F: three weights.
        #expect(summary.quantizedTensors == 6 && summary.quantizedWeights == 3)
        #expect(ops.filter { $0 == "QuantizeLinear" }.count == 6)
        // Weights and biases dequantize int8 / int32 constants; no float weight is left.
        for name in ["W", "W2", "F", "B", "C"] { #expect(model.graph.initializer(named: name) == nil) }
        let weightDQ = model.graph.nodes.filter { $0.opType == "DequantizeLinear" && $0.inputs[0].hasPrefix("W") }
        #expect(weightDQ.count == 2 && weightDQ.allSatisfy { model.graph.initializer(named: $0.inputs[0])?.dtype == .int8 })
        #expect(model.graph.initializers.contains { $0.dtype == .int32 })
        // conv1's output is read only by Relu: fused, no pair; the logits stay float.
        #expect(!model.graph.nodes.contains { $0.opType == "QuantizeLinear" && ($0.inputs[0] == "c1" || $0.inputs[0] == "y") })
        // Numerically within a few quantization steps of the float model.
        let inputs = try samples(2, seed: 9).compactMapValues(\.tensor)
        let reference = try PassTesting.outputs(try network(), inputs)["y"]
        let result = try PassTesting.outputs(model, inputs)["y"]
        let r = try #require(reference).array(Float.self), q = try #require(result).array(Float.self)
        let scale = r.map(abs).max() ?? 1
        #expect(zip(r, q).map { abs($0 - $1) }.max() ?? 1 < 0.05 * scale)
    }

    @Test func concatAndMaxPoolShareTheirInputsGrid() throws {
        let graph = Graph(
            name: "g", inputs: [Build.input("a", [.fixed(1), .fixed(2), .fixed(4), .fixed(4)]), Build.input("b", [.fixed(1), .fixed(2), .fixed(4), .fixed(4)])],
            outputs: [ValueInfo(name: "y", type: nil)], initializers: [try Build.floatTensor("W", [1, 4, 1, 1], [1, 1, 1, 1])],
            nodes: [Build.node("MaxPool", ["a"], ["m"], [Attribute("kernel_shape", .ints([2, 2]))]),
                    Build.node("MaxPool", ["b"], ["n"], [Attribute("kernel_shape", .ints([2, 2]))]),
                    Build.node("Concat", ["m", "n"], ["c"], [Attribute("axis", .int(1))]),
                    Build.node("Conv", ["c", "W"], ["y"])])
        let model = Build.model(graph)
        let ranges: [String: TensorRange] = ["a": .init(low: -1, high: 1), "b": .init(low: 0, high: 4), "m": .init(low: -0.5, high: 1),
                                             "n": .init(low: 0, high: 3), "c": .init(low: -0.5, high: 3)]
        let (q, _) = try QDQInsertion.insert(model, ranges: ranges, options: QuantizationOptions())
        func scale(of value: String) -> Float? {
            guard let node = q.graph.nodes.first(where: { $0.opType == "QuantizeLinear" && $0.inputs[0] == value }),
                  let t = q.graph.initializer(named: node.inputs[1]) else { return nil }
            return t.data.numericValue(at: 0).map { Float($0) }
        }
        // The Concat's members get the union grid [-1, 4]; MaxPool outputs take their input's grid, which the
        // Concat widened.
        let union = QuantizationParameters.activation(low: -1, high: 4).scale
        #expect(scale(of: "m") == union && scale(of: "n") == union && scale(of: "c") == union)
    }

    /// A Concat whose output stays float (a graph output: a detector's boxes and class scores) runs in float: an input
    /// only it reads keeps its float value (no Q/DQ), and one that a quantized op also reads keeps its own grid — the
    /// union would quantize the [0, 1] scores on the boxes' ±60 range. Likewise a data-movement chain that ends in
    /// float (Transpose → Reshape → float op) carries no pairs.
    @Test func floatDataMovementKeepsItsInputsFloat() throws {
        let graph = Graph(
            name: "g", inputs: [Build.input("x", [.fixed(1), .fixed(2), .fixed(4), .fixed(4)])],
            outputs: [ValueInfo(name: "y", type: nil), ValueInfo(name: "z", type: nil), ValueInfo(name: "s", type: nil)],
            initializers: [try Build.floatTensor("W", [2, 2, 1, 1], [1, 0, 0, 1]), try Build.floatTensor("W2", [2, 2, 1, 1], [0, 1, 1, 0]),
                           try Build.int64Tensor("shape", [2], [1, 32])],
            nodes: [Build.node("Conv", ["x", "W"], ["boxes"]), Build.node("Sigmoid", ["x"], ["scores"]),
                    Build.node("Concat", ["boxes", "scores"], ["y"], [Attribute("axis", .int(1))]), Build.node("Conv", ["scores", "W2"], ["z"]),
                    Build.node("Conv", ["x", "W2"], ["c"]), Build.node("Transpose", ["c"], ["t"], [Attribute("perm", .ints([0, 2, 3, 1]))]),
                    Build.node("Reshape", ["t", "shape"], ["r"]), Build.node("Softmax", ["r"], ["s"])])
        let ranges: [String: TensorRange] = ["x": .init(low: -60, high: 60), "boxes": .init(low: -60, high: 60), "scores": .init(low: 0, high: 1),
                                             "y": .init(low: -60, high: 60), "c": .init(low: -60, high: 60), "t": .init(low: -60, high: 60),
                                             "r": .init(low: -60, high: 60)]
        let (q, _) = try QDQInsertion.insert(Build.model(graph), ranges: ranges, options: QuantizationOptions())
        func scale(of value: String) -> Float? {
            guard let node = q.graph.nodes.first(where: { $0.opType == "QuantizeLinear" && $0.inputs[0] == value }),
                  let t = q.graph.initializer(named: node.inputs[1]) else { return nil }
            return t.data.numericValue(at: 0).map { Float($0) }
        }
        #expect(scale(of: "scores") == QuantizationParameters.activation(low: 0, high: 1).scale)
        let quantizedValues = Set(q.graph.nodes.filter { $0.opType == "QuantizeLinear" }.map { $0.inputs[0] })
        #expect(quantizedValues == ["x", "scores"], "\(quantizedValues)")
    }

    @Test func exclusionsAndPerTensorAreHonoured() throws {
        let (model, summary) = try quantized(QuantizationOptions(perChannel: false, excludedNodes: ["conv2"], excludedOpTypes: ["Gemm"]))
        #expect(summary.skipped.contains { $0.node.contains("conv2") } && summary.skipped.contains { $0.node.contains("fc") })
        #expect(model.graph.initializer(named: "W2") != nil && model.graph.initializer(named: "F") != nil)
        let dq = model.graph.nodes.filter { $0.opType == "DequantizeLinear" && $0.inputs[0].hasPrefix("W_") }
        #expect(dq.count == 1 && dq[0].attribute("axis") == nil)
        #expect(model.graph.initializer(named: dq[0].inputs[1])?.dims == [])
    }

    /// `quantize`'s default encoding: every Conv/Gemm weight and its zero point as uint8 + 128; the outputs keep
    /// every bit, and biases (int32) and activation grids (uint8) are untouched.
    @Test func unsignedWeightsKeepEveryDequantizedValue() throws {
        let (model, _) = try quantized()
        let (unsigned, changed) = UnsignedWeightEncoding.apply(model)
        #expect(changed == 3)
        func bytes(_ graph: Graph, _ name: String) -> [UInt8] {
            graph.initializer(named: name)?.data.bytes?.withUnsafeBytes { Array($0) } ?? []
        }
        for dq in model.graph.nodes where dq.opType == "DequantizeLinear" {
            for name in [dq.inputs[0], dq.inputs[2]] where model.graph.initializer(named: name) != nil {
                let before = try #require(model.graph.initializer(named: name)), after = try #require(unsigned.graph.initializer(named: name))
                if before.dtype == .int8 {
                    #expect(after.dtype == .uint8 && after.dims == before.dims)
                    let expected = bytes(model.graph, name).map { UInt8(Int(Int8(bitPattern: $0)) + 128) }
                    #expect(bytes(unsigned.graph, name) == expected)
                } else {
                    #expect(after == before)
                }
            }
        }
        let weightZeros = unsigned.graph.nodes.filter { dq in
            dq.opType == "DequantizeLinear" && ["W_", "W2_", "F_"].contains { dq.inputs[0].hasPrefix($0) }
        }
        #expect(weightZeros.count == 3 && weightZeros.allSatisfy { dq in bytes(unsigned.graph, dq.inputs[2]).allSatisfy { $0 == 128 } })
        let inputs = try samples(2, seed: 9).compactMapValues(\.tensor)
        let reference = try #require(try PassTesting.outputs(model, inputs)["y"]).array(Float.self)
        let result = try #require(try PassTesting.outputs(unsigned, inputs)["y"]).array(Float.self)
        #expect(reference.map(\.bitPattern) == result.map(\.bitPattern))
    }

    /// A weight that anything but a GEMM's weight input reads keeps int8: a dequantized W2 that is also a graph output,
    /// and W's integers read by a second DequantizeLinear whose output is not a weight.
    @Test func weightsOtherOpsReadKeepInt8() throws {
        var (model, _) = try quantized()
        let dq = model.graph.nodes.filter { $0.opType == "DequantizeLinear" }
        let w = try #require(dq.first { $0.inputs[0].hasPrefix("W_") }), w2 = try #require(dq.first { $0.inputs[0].hasPrefix("W2_") })
        model.graph.nodes.append(Build.node("Identity", [w2.outputs[0]], ["w2_copy"], name: "copy"))
        model.graph.nodes.append(Build.node("DequantizeLinear", w.inputs, ["w_values"], name: "w_dq", w.attributes))
        model.graph.outputs += [ValueInfo(name: "w2_copy", type: nil), ValueInfo(name: "w_values", type: nil)]
        let (unsigned, changed) = UnsignedWeightEncoding.apply(model)
        #expect(changed == 1)
        for name in [w.inputs[0], w.inputs[2], w2.inputs[0], w2.inputs[2]] { #expect(unsigned.graph.initializer(named: name)?.dtype == .int8) }
        let f = try #require(dq.first { $0.inputs[0].hasPrefix("F_") })
        #expect(unsigned.graph.initializer(named: f.inputs[0])?.dtype == .uint8)
        let inputs = try samples(2, seed: 9).compactMapValues(\.tensor)
        let before = try PassTesting.outputs(model, inputs), after = try PassTesting.outputs(unsigned, inputs)
        for name in ["y", "w2_copy", "w_values"] {
            let a = try #require(before[name]).array(Float.self), b = try #require(after[name]).array(Float.self)
            #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "\(name)")
        }
    }

    @Test func oldOpsetsAreRefusedForPerChannel() throws {
        var model = try network()
        model.opsetImports = [OpsetImport(domain: "", version: 11)]
        #expect(throws: QuantizationError.self) { try QDQInsertion.insert(model, ranges: [:], options: QuantizationOptions()) }
    }
}

@Suite struct QuantizedLoweringTests {
    /// The QDQInsertionTests network with its first Add fed by a Relu'd residual, quantized on 8 samples.
    private func qdq() throws -> Model {
        let w1 = Pseudorandom.floats(4 * 3 * 9, seed: 1), w2 = Pseudorandom.floats(4 * 4 * 9, seed: 2)
        let graph = Graph(
            name: "g", inputs: [Build.input("x", [.symbolic("n"), .fixed(3), .fixed(6), .fixed(6)])], outputs: [ValueInfo(name: "y", type: nil)],
            initializers: [try Build.floatTensor("W", [4, 3, 3, 3], w1), try Build.floatTensor("B", [4], [0.1, -0.2, 0.3, 0]),
                           try Build.floatTensor("W2", [4, 4, 3, 3], w2), try Build.floatTensor("F", [4, 5], Pseudorandom.floats(20, seed: 3))],
            nodes: [Build.node("Conv", ["x", "W", "B"], ["c1"], name: "conv1", [Attribute("pads", .ints([1, 1, 1, 1]))]),
                    Build.node("Relu", ["c1"], ["r1"]),
                    Build.node("MaxPool", ["r1"], ["m"], [Attribute("kernel_shape", .ints([2, 2])), Attribute("strides", .ints([2, 2]))]),
                    Build.node("Conv", ["m", "W2"], ["c2"], name: "conv2", [Attribute("pads", .ints([1, 1, 1, 1]))]),
                    Build.node("Add", ["c2", "m"], ["a"]),
                    Build.node("Relu", ["a"], ["ra"]),
                    Build.node("GlobalAveragePool", ["ra"], ["p"]),
                    Build.node("Flatten", ["p"], ["f"]),
                    Build.node("MatMul", ["f", "F"], ["y"], name: "fc")])
        let model = Build.model(graph)
        let options = QuantizationOptions()
        let batches: [[String: Value]] = [["x": .tensor(try OnnxcRuntime.Tensor(Pseudorandom.floats(8 * 108, seed: 5), shape: [8, 3, 6, 6]))]]
        let ranges = try Calibration.ranges(model: model, tensors: QDQInsertion.calibrationTensors(model, options: options), batches: batches, method: .minMax)
        return try QDQInsertion.insert(model, ranges: ranges, options: options).0
    }

    /// `model` quantized (min-max, on `inputs`) and lowered: the QDQ model's output "y", the lowered op types and the
    /// largest difference of the two models' outputs relative to the QDQ output's magnitude.
    private func lower(_ model: Model, _ inputs: [String: OnnxcRuntime.Tensor]) throws -> (qdqOutput: [Float], ops: [String], deviation: Float) {
        let options = QuantizationOptions()
        let ranges = try Calibration.ranges(model: model, tensors: QDQInsertion.calibrationTensors(model, options: options),
                                            batches: [inputs.mapValues { .tensor($0) }], method: .minMax)
        let (quantized, _) = try QDQInsertion.insert(model, ranges: ranges, options: options)
        let lowered = try Pipelines.quantizedLowering().run(ShapeInference.infer(quantized).0)
        let a = try #require(try PassTesting.outputs(quantized, inputs)["y"]).array(Float.self)
        let b = try #require(try PassTesting.outputs(lowered, inputs)["y"]).array(Float.self)
        let scale = a.map(abs).max() ?? 1
        return (a, lowered.graph.nodes.map(\.qualifiedOpType), (zip(a, b).map { abs($0 - $1) }.max() ?? 1) / scale)
    }

    @Test func lowersEveryGroupAndAgreesWithQDQToAStep() throws {
        let quantized = try qdq()
        let lowered = try Pipelines.quantizedLowering().run(ShapeInference.infer(quantized).0)
        let ops = lowered.graph.nodes.map(\.qualifiedOpType)
        #expect(ops.filter { $0 == "QLinearConv" }.count == 2, "\(ops)")
        #expect(ops.contains("ai.onnxc::QLinearAdd") && ops.contains("ai.onnxc::QGemm"), "\(ops)")
        // Relu, MaxPool and Flatten run on the integers: no float Relu, MaxPool reads uint8.
        #expect(!ops.contains("Relu") && !ops.contains("Conv") && !ops.contains("Add") && !ops.contains("MatMul"), "\(ops)")
        // The only float islands left: the input's Q, GlobalAveragePool's DQ → Q.
        #expect(ops.filter { $0 == "QuantizeLinear" }.count == 2 && ops.filter { $0 == "DequantizeLinear" }.count == 1, "\(ops)")
        let inputs = ["x": try OnnxcRuntime.Tensor(Pseudorandom.floats(2 * 108, seed: 11), shape: [2, 3, 6, 6])]
        let a = try #require(try PassTesting.outputs(quantized, inputs)["y"]).array(Float.self)
        let b = try #require(try PassTesting.outputs(lowered, inputs)["y"]).array(Float.self)
        let scale = a.map(abs).max() ?? 1
        #expect(zip(a, b).map { abs($0 - $1) }.max() ?? 1 <= 0.02 * scale)
    }

    @Test(arguments: ["Sigmoid", "Tanh", "HardSwish", "Gelu", "LeakyRelu"])
    func tabulatesElementwiseActivations(_ op: String) throws {
        let graph = Graph(
            name: "g", inputs: [Build.input("x", [.fixed(2), .fixed(2), .fixed(4), .fixed(4)])], outputs: [ValueInfo(name: "y", type: nil)],
            initializers: [try Build.floatTensor("W", [3, 2, 1, 1], Pseudorandom.floats(6, seed: 3)), try Build.floatTensor("W2", [2, 3, 1, 1], Pseudorandom.floats(6, seed: 4))],
            nodes: [Build.node("Conv", ["x", "W"], ["c"]), Build.node(op, ["c"], ["a"]), Build.node("Conv", ["a", "W2"], ["y"])])
        let model = Build.model(graph, opset: 20)
        let inputs = ["x": try OnnxcRuntime.Tensor(Pseudorandom.floats(64, seed: 8).map { $0 * 4 }, shape: [2, 2, 4, 4])]
        let (_, ops, deviation) = try lower(model, inputs)
        #expect(ops.contains("ai.onnxc::QLookup") && !ops.contains(op), "\(ops)")
        #expect(deviation <= 0.02)
    }

    /// Conv → Pad (constant 0, constant 1.5, reflect, edge) → Conv: each Pad moves onto the integers, a constant
    /// one padding with its value's quantized form, and the lowered model agrees with the QDQ one to a step.
    @Test(arguments: [("constant", nil), ("constant", 1.5), ("reflect", nil), ("edge", nil)] as [(String, Float?)])
    func padsRunOnTheIntegers(_ mode: String, _ value: Float?) throws {
        var initializers = [try Build.floatTensor("W", [3, 2, 1, 1], Pseudorandom.floats(6, seed: 3)),
                            try Build.floatTensor("W2", [2, 3, 3, 3], Pseudorandom.floats(54, seed: 4)),
                            try Build.int64Tensor("pads", [8], [0, 0, 1, 2, 0, 0, 2, 1])]
        var padInputs = ["c", "pads"]
        if let value {
            initializers.append(try Build.floatTensor("v", [], [value]))
            padInputs.append("v")
        }
        let graph = Graph(
            name: "g", inputs: [Build.input("x", [.fixed(1), .fixed(2), .fixed(5), .fixed(5)])], outputs: [ValueInfo(name: "y", type: nil)],
            initializers: initializers,
            nodes: [Build.node("Conv", ["x", "W"], ["c"]), Build.node("Pad", padInputs, ["p"], [Attribute("mode", .string(Array(mode.utf8)))]),
                    Build.node("Conv", ["p", "W2"], ["y"])])
        let model = Build.model(graph, opset: 18)
        let inputs = ["x": try OnnxcRuntime.Tensor(Pseudorandom.floats(50, seed: 8).map { $0 * 4 }, shape: [1, 2, 5, 5])]
        let (qdqOutput, ops, deviation) = try lower(model, inputs)
        // The Pad reads the first convolution's uint8 output: no DQ before it, no Q after it.
        #expect(ops.contains("Pad") && !ops.contains("DequantizeLinear") && ops.filter { $0 == "QuantizeLinear" }.count == 1, "\(ops)")
        #expect(deviation <= 0.02)
        // And the QDQ model itself stays close to the float one (the pad value is on the grid).
        let f = try #require(try PassTesting.outputs(model, inputs)["y"]).array(Float.self)
        #expect(zip(f, qdqOutput).map { abs($0 - $1) }.max() ?? 1 <= 0.05 * (qdqOutput.map(abs).max() ?? 1))
    }

    /// x → Conv → a, x → Conv → b, a · b → Conv → y: the product of two activations of one shape runs on the integers.
    @Test func elementwiseMulOfTwoActivationsRunsOnTheIntegers() throws {
        let graph = Graph(
            name: "g", inputs: [Build.input("x", [.fixed(1), .fixed(2), .fixed(4), .fixed(4)])], outputs: [ValueInfo(name: "y", type: nil)],
            initializers: [try Build.floatTensor("W", [3, 2, 1, 1], Pseudorandom.floats(6, seed: 3)), try Build.floatTensor("V", [3, 2, 1, 1], Pseudorandom.floats(6, seed: 5)),
                           try Build.floatTensor("W2", [2, 3, 1, 1], Pseudorandom.floats(6, seed: 4))],
            nodes: [Build.node("Conv", ["x", "W"], ["a"]), Build.node("Conv", ["x", "V"], ["b"]), Build.node("Mul", ["a", "b"], ["m"]),
                    Build.node("Conv", ["m", "W2"], ["y"])])
        let model = Build.model(graph, opset: 18)
        let inputs = ["x": try OnnxcRuntime.Tensor(Pseudorandom.floats(32, seed: 8).map { $0 * 4 }, shape: [1, 2, 4, 4])]
        let (_, ops, deviation) = try lower(model, inputs)
        #expect(ops.contains("ai.onnxc::QLinearMul") && !ops.contains("Mul") && !ops.contains("DequantizeLinear"), "\(ops)")
        #expect(deviation <= 0.02)
    }

    /// Arithmetic with a one-value constant on a quantized tensor is a table: Conv → ·1.5 → +0.25 → Conv (a chain of x
    /// alone: quantized at its ends only, one table), and in a QDQ model written by hand (as another quantizer may,
    /// a Q/DQ pair after every op), 0.5 − x and x ÷ 4 one table each.
    @Test func scalarArithmeticIsATable() throws {
        let graph = Graph(
            name: "g", inputs: [Build.input("x", [.fixed(1), .fixed(2), .fixed(4), .fixed(4)])], outputs: [ValueInfo(name: "y", type: nil)],
            initializers: [try Build.floatTensor("W", [3, 2, 1, 1], Pseudorandom.floats(6, seed: 3)), try Build.floatTensor("W2", [2, 3, 1, 1], Pseudorandom.floats(6, seed: 4)),
                           try Build.floatTensor("k1", [], [1.5]), try Build.floatTensor("k2", [1], [0.25])],
            nodes: [Build.node("Conv", ["x", "W"], ["c"]), Build.node("Mul", ["k1", "c"], ["m"]), Build.node("Add", ["m", "k2"], ["a"]),
                    Build.node("Conv", ["a", "W2"], ["y"])])
        let inputs = ["x": try OnnxcRuntime.Tensor(Pseudorandom.floats(32, seed: 8).map { $0 * 4 }, shape: [1, 2, 4, 4])]
        let (_, ops, deviation) = try lower(Build.model(graph, opset: 18), inputs)
        #expect(ops.filter { $0 == "ai.onnxc::QLookup" }.count == 1 && !ops.contains("Mul") && !ops.contains("Add"), "\(ops)")
        #expect(deviation <= 0.02)

        let s = 8.0 / 255, grids: [(String, Float, UInt8)] = [("s0", Float(s), 128), ("s1", Float(s), 100), ("s2", Float(s / 4), 128)]
        var initializers = [try Build.floatTensor("k3", [], [0.5]), try Build.floatTensor("k4", [], [4])]
        for (name, scale, zero) in grids {
            initializers.append(try Build.floatTensor(name + "_scale", [], [scale]))
            initializers.append(OnnxcIR.Tensor(name: name + "_zero", data: try TensorData(dtype: .uint8, dims: [], payload: .bytes(ByteSlice(copying: [zero])))))
        }
        func qdq(_ x: String, _ grid: String, _ out: String) -> [Node] {
            [Build.node("QuantizeLinear", [x, grid + "_scale", grid + "_zero"], [out + "_q"]), Build.node("DequantizeLinear", [out + "_q", grid + "_scale", grid + "_zero"], [out])]
        }
        let handWritten = Graph(
            name: "h", inputs: [Build.input("x", [.fixed(1), .fixed(8)])], outputs: [ValueInfo(name: "y", type: nil)], initializers: initializers,
            nodes: qdq("x", "s0", "x0") + [Build.node("Sub", ["k3", "x0"], ["d"])] + qdq("d", "s1", "d0") + [Build.node("Div", ["d0", "k4"], ["e"])] + qdq("e", "s2", "y"))
        let model = Build.model(handWritten, opset: 18)
        let lowered = try Pipelines.quantizedLowering().run(ShapeInference.infer(model).0)
        let loweredOps = lowered.graph.nodes.map(\.qualifiedOpType)
        #expect(loweredOps == ["QuantizeLinear", "ai.onnxc::QLookup", "ai.onnxc::QLookup", "DequantizeLinear"], "\(loweredOps)")
        let x = ["x": try OnnxcRuntime.Tensor((0..<8).map { Float($0) - 3.7 }, shape: [1, 8])]
        let a = try #require(try PassTesting.outputs(model, x)["y"]).array(Float.self), b = try #require(try PassTesting.outputs(lowered, x)["y"]).array(Float.self)
        // A table computes exactly what the float QDQ islands do.
        #expect(a == b)
    }

    /// x → Conv → c; SiLU(c) = c · Sigmoid(c); Split(SiLU) → Concat(s1, s0, c) → Conv → y.
    @Test func siluIsOneTableAndSplitConcatShareAGrid() throws {
        let graph = Graph(
            name: "g", inputs: [Build.input("x", [.fixed(1), .fixed(2), .fixed(4), .fixed(4)])], outputs: [ValueInfo(name: "y", type: nil)],
            initializers: [try Build.floatTensor("W", [4, 2, 1, 1], Pseudorandom.floats(8, seed: 3)), try Build.floatTensor("W2", [2, 8, 1, 1], Pseudorandom.floats(16, seed: 4)),
                           try Build.int64Tensor("parts", [2], [2, 2])],
            nodes: [Build.node("Conv", ["x", "W"], ["c"]), Build.node("Sigmoid", ["c"], ["g"]), Build.node("Mul", ["c", "g"], ["silu"]),
                    Build.node("Split", ["silu", "parts"], ["s0", "s1"], [Attribute("axis", .int(1))]),
                    Build.node("Concat", ["s1", "s0", "c"], ["k"], [Attribute("axis", .int(1))]), Build.node("Conv", ["k", "W2"], ["y"])])
        let model = Build.model(graph, opset: 18)
        let inputs = ["x": try OnnxcRuntime.Tensor(Pseudorandom.floats(32, seed: 8).map { $0 * 4 }, shape: [1, 2, 4, 4])]
        let (_, ops, deviation) = try lower(model, inputs)
        // One table for SiLU, the Split and Concat on uint8: only the input's Q is left of the float boundary.
        #expect(ops.filter { $0 == "ai.onnxc::QLookup" }.count == 1 && !ops.contains("Mul") && !ops.contains("Sigmoid"), "\(ops)")
        #expect(!ops.contains("DequantizeLinear") && ops.filter { $0 == "QuantizeLinear" }.count == 1, "\(ops)")
        #expect(deviation <= 0.03)
    }

    /// x → MatMul → h; GELU as exporters write it below opset 20, h · 0.5 · (1 + erf(h / √2)) → MatMul → y: the chain
    /// is quantized at its ends only and lowered to one table — no Erf, Div or Mul left, no Q/DQ inside it — and the
    /// lowered model stays within a step of the float one.
    @Test func elementwiseChainOfOneInputIsOneTable() throws {
        let graph = Graph(
            name: "g", inputs: [Build.input("x", [.fixed(2), .fixed(6), .fixed(8)])], outputs: [ValueInfo(name: "y", type: nil)],
            initializers: [try Build.floatTensor("W", [8, 16], Pseudorandom.floats(128, seed: 3)), try Build.floatTensor("W2", [16, 4], Pseudorandom.floats(64, seed: 4)),
                           try Build.floatTensor("root2", [], [Float(2).squareRoot()]), try Build.floatTensor("one", [], [1]), try Build.floatTensor("half", [], [0.5])],
            nodes: [Build.node("MatMul", ["x", "W"], ["h"]), Build.node("Div", ["h", "root2"], ["d"]), Build.node("Erf", ["d"], ["e"]),
                    Build.node("Add", ["e", "one"], ["p"]), Build.node("Mul", ["h", "p"], ["m"]), Build.node("Mul", ["m", "half"], ["g"]),
                    Build.node("MatMul", ["g", "W2"], ["y"])])
        let model = Build.model(graph, opset: 18)
        let inputs = ["x": try OnnxcRuntime.Tensor(Pseudorandom.floats(96, seed: 8).map { $0 * 3 }, shape: [2, 6, 8])]
        let options = QuantizationOptions()
        let ranges = try Calibration.ranges(model: model, tensors: QDQInsertion.calibrationTensors(model, options: options),
                                            batches: [inputs.mapValues { .tensor($0) }], method: .minMax)
        let (quantized, _) = try QDQInsertion.insert(model, ranges: ranges, options: options)
        // Q/DQ pairs on x, h and g only.
        #expect(quantized.graph.nodes.filter { $0.opType == "QuantizeLinear" }.count == 3, "\(quantized.graph.nodes.map(\.opType))")
        let (_, ops, deviation) = try lower(model, inputs)
        #expect(ops.filter { $0 == "ai.onnxc::QLookup" }.count == 1 && !ops.contains("Erf") && !ops.contains("Div") && !ops.contains("Mul"), "\(ops)")
        #expect(deviation <= 0.02)
        let f = try #require(try PassTesting.outputs(model, inputs)["y"]).array(Float.self)
        let lowered = try Pipelines.quantizedLowering().run(ShapeInference.infer(quantized).0)
        let q = try #require(try PassTesting.outputs(lowered, inputs)["y"]).array(Float.self)
        #expect((zip(f, q).map { abs($0 - $1) }.max() ?? 1) <= 0.05 * (f.map(abs).max() ?? 1))
    }

    /// Attention's shape: MatMul(x, Wq) · MatMul(x, Wk)ᵀ + mask → Softmax → · MatMul(x, Wv) → MatMul(Wo). The product
    /// of two activations has no integer kernel and the scores' Add feeds a float Softmax: neither gets Q/DQ on its
    /// inputs (the float chain can still fuse into one attention op); the projections' MatMuls are quantized.
    @Test func attentionProductsAndScoresStayFloat() throws {
        let d: Int64 = 8
        var weights: [OnnxcIR.Tensor] = []
        for (i, name) in ["Wq", "Wk", "Wv", "Wo"].enumerated() { weights.append(try Build.floatTensor(name, [d, d], Pseudorandom.floats(Int(d * d), seed: 10 + i))) }
        let graph = Graph(
            name: "g", inputs: [Build.input("x", [.fixed(1), .fixed(5), .fixed(d)]), Build.input("mask", [.fixed(1), .fixed(1), .fixed(5)])],
            outputs: [ValueInfo(name: "y", type: nil)],
            initializers: weights,
            nodes: [Build.node("MatMul", ["x", "Wq"], ["q"]), Build.node("MatMul", ["x", "Wk"], ["k"]), Build.node("MatMul", ["x", "Wv"], ["v"]),
                    Build.node("Transpose", ["k"], ["kt"], [Attribute("perm", .ints([0, 2, 1]))]),
                    Build.node("MatMul", ["q", "kt"], ["s"]), Build.node("Add", ["s", "mask"], ["sm"]),
                    Build.node("Softmax", ["sm"], ["p"], [Attribute("axis", .int(-1))]), Build.node("MatMul", ["p", "v"], ["o"]),
                    Build.node("MatMul", ["o", "Wo"], ["y"])])
        let model = Build.model(graph, opset: 18)
        let inputs = ["x": try OnnxcRuntime.Tensor(Pseudorandom.floats(40, seed: 8), shape: [1, 5, Int(d)]),
                      "mask": try OnnxcRuntime.Tensor([Float](arrayLiteral: 0, 0, 0, -10000, -10000), shape: [1, 1, 5])]
        let options = QuantizationOptions()
        let ranges = try Calibration.ranges(model: model, tensors: QDQInsertion.calibrationTensors(model, options: options),
                                            batches: [inputs.mapValues { .tensor($0) }], method: .minMax)
        let (quantized, summary) = try QDQInsertion.insert(model, ranges: ranges, options: options)
        let producers = Dictionary(quantized.graph.nodes.flatMap { n in n.outputs.map { ($0, n.opType) } }, uniquingKeysWith: { a, _ in a })
        for node in quantized.graph.nodes where ["Add", "Softmax"].contains(node.opType) || (node.opType == "MatMul" && !node.inputs[1].hasPrefix("W")) {
            #expect(node.inputs.allSatisfy { producers[$0] != "DequantizeLinear" }, "\(node.opType) \(node.inputs)")
        }
        #expect(quantized.graph.nodes.filter { $0.opType == "MatMul" && $0.inputs[1].contains("W") && producers[$0.inputs[0]] == "DequantizeLinear" }.count == 4)
        #expect(summary.skipped.filter { $0.1.contains("two activations") }.count == 2, "\(summary.skipped)")
    }

    /// Gather(table, ids) → MatMul: the 40 × 32 embedding table is stored int8 (per tensor, symmetric), dequantized
    /// before the Gather in the QDQ model and after it once lowered (only the gathered rows widened), each value within
    /// half a step of the float table; a table under `minimumTableElements` stays float.
    @Test func embeddingTablesAreInt8() throws {
        let table = Pseudorandom.floats(40 * 32, seed: 5).map { $0 * 2 }
        let graph = Graph(
            name: "g", inputs: [ValueInfo(name: "ids", type: .tensor(.int64, Shape(fixed: [2, 3])))], outputs: [ValueInfo(name: "y", type: nil), ValueInfo(name: "p", type: nil)],
            initializers: [try Build.floatTensor("E", [40, 32], table), try Build.floatTensor("P", [40, 8], Pseudorandom.floats(320, seed: 6)),
                           try Build.floatTensor("W", [32, 4], Pseudorandom.floats(128, seed: 7))],
            nodes: [Build.node("Gather", ["E", "ids"], ["e"]), Build.node("MatMul", ["e", "W"], ["y"]), Build.node("Gather", ["P", "ids"], ["p"])])
        let model = Build.model(graph, opset: 18)
        let ids = try OnnxcRuntime.Tensor([Int64](arrayLiteral: 0, 39, 7, 3, 3, 21), shape: [2, 3])
        let options = QuantizationOptions()
        let ranges = try Calibration.ranges(model: model, tensors: QDQInsertion.calibrationTensors(model, options: options), batches: [["ids": .tensor(ids)]],
                                            method: .minMax)
        let (quantized, summary) = try QDQInsertion.insert(model, ranges: ranges, options: options)
        #expect(!quantized.graph.initializers.contains { $0.name == "E" } && quantized.graph.initializers.contains { $0.name == "P" })
        #expect(summary.quantizedWeights == 2)  // the table and W
        let lowered = try Pipelines.quantizedLowering().run(ShapeInference.infer(quantized).0)
        let gather = try #require(lowered.graph.nodes.first { $0.opType == "Gather" && $0.outputs != ["p"] })
        #expect(lowered.graph.initializer(named: gather.inputs[0])?.dtype == .int8, "\(gather.inputs)")
        let floatRows = try #require(try Executor(graph: try Lowering.lower(Model(opsetImports: model.opsetImports, graph: Graph(
            name: "e", inputs: graph.inputs, outputs: [ValueInfo(name: "e", type: nil)], initializers: graph.initializers, nodes: [graph.nodes[0]])))).run(["ids": .tensor(ids)])["e"]?.tensor)
        var probe = lowered
        probe.graph.outputs.append(ValueInfo(name: "e", type: nil))
        let rows = try #require(try PassTesting.outputs(probe, ["ids": ids])["e"])
        let step = (table.map(abs).max() ?? 1) / 127
        #expect(zip(rows.array(Float.self), floatRows.array(Float.self)).allSatisfy { abs($0 - $1) <= step / 2 + 1e-6 })
    }

    /// A Linear layer on a 3-D input as exporters write it, MatMul(x, W) + B → Relu → MatMul + B2: in both modes each
    /// bias Add folds into its QGemm (static: B int32 at s_x·s_w, behind a DequantizeLinear in the QDQ model; dynamic:
    /// the float B), no Add left, and the result stays within a step of the float model.
    @Test(arguments: [false, true])
    func matMulBiasAddsFoldIntoTheirQGemm(_ dynamic: Bool) throws {
        let graph = Graph(
            name: "g", inputs: [Build.input("x", [.fixed(2), .fixed(6), .fixed(8)])], outputs: [ValueInfo(name: "y", type: nil)],
            initializers: [try Build.floatTensor("W", [8, 16], Pseudorandom.floats(128, seed: 3)), try Build.floatTensor("B", [16], Pseudorandom.floats(16, seed: 5)),
                           try Build.floatTensor("W2", [16, 4], Pseudorandom.floats(64, seed: 4)), try Build.floatTensor("B2", [4], Pseudorandom.floats(4, seed: 6))],
            nodes: [Build.node("MatMul", ["x", "W"], ["m"]), Build.node("Add", ["m", "B"], ["a"]), Build.node("Relu", ["a"], ["r"]),
                    Build.node("MatMul", ["r", "W2"], ["m2"]), Build.node("Add", ["B2", "m2"], ["y"])])
        let model = Build.model(graph, opset: 18)
        let inputs = ["x": try OnnxcRuntime.Tensor(Pseudorandom.floats(96, seed: 8).map { $0 * 3 }, shape: [2, 6, 8])]
        let options = QuantizationOptions(dynamic: dynamic)
        let ranges = dynamic ? [:] : try Calibration.ranges(model: model, tensors: QDQInsertion.calibrationTensors(model, options: options),
                                                           batches: [inputs.mapValues { .tensor($0) }], method: .minMax)
        let (quantized, _) = try QDQInsertion.insert(model, ranges: ranges, options: options)
        let int32Biases = quantized.graph.initializers.filter { $0.dtype == .int32 && $0.name.hasSuffix("_quantized") }.count
        #expect(int32Biases == (dynamic ? 0 : 2), "\(quantized.graph.initializers.map(\.name))")
        let lowered = try Pipelines.quantizedLowering().run(ShapeInference.infer(quantized).0)
        let ops = lowered.graph.nodes.map(\.qualifiedOpType)
        #expect(ops.filter { $0 == "ai.onnxc::QGemm" }.count == 2 && !ops.contains("Add") && !ops.contains("MatMul"), "\(ops)")
        let f = try #require(try PassTesting.outputs(model, inputs)["y"]).array(Float.self)
        let q = try #require(try PassTesting.outputs(quantized, inputs)["y"]).array(Float.self)
        let l = try #require(try PassTesting.outputs(lowered, inputs)["y"]).array(Float.self)
        let scale = f.map(abs).max() ?? 1
        #expect((zip(f, l).map { abs($0 - $1) }.max() ?? 1) <= 0.05 * scale)
        #expect((zip(q, l).map { abs($0 - $1) }.max() ?? 1) <= 0.02 * scale)
    }

    @Test func keepsActivationsTheGridCannotComputeAndFloatTargets() throws {
        // Clip(-1, 0.5) after a Conv whose quantized output spans past 0.5 is kept in float.
        let graph = Graph(
            name: "g", inputs: [Build.input("x", [.fixed(1), .fixed(1), .fixed(3), .fixed(3)])], outputs: [ValueInfo(name: "y", type: nil)],
            initializers: [try Build.floatTensor("W", [1, 1, 1, 1], [1]), try Build.floatTensor("lo", [], [-1]), try Build.floatTensor("hi", [], [0.5]),
                           try Build.floatTensor("W2", [1, 1, 1, 1], [2])],
            nodes: [Build.node("Conv", ["x", "W"], ["c"]), Build.node("Clip", ["c", "lo", "hi"], ["k"]), Build.node("Conv", ["k", "W2"], ["y"])])
        let model = Build.model(graph)
        let ranges: [String: TensorRange] = ["x": .init(low: -2, high: 2), "c": .init(low: -2, high: 2), "k": .init(low: -2, high: 2)]
        let (quantized, _) = try QDQInsertion.insert(model, ranges: ranges, options: QuantizationOptions())
        let lowered = try Pipelines.quantizedLowering().run(ShapeInference.infer(quantized).0)
        let ops = lowered.graph.nodes.map(\.qualifiedOpType)
        #expect(ops.contains("Clip") && ops.contains("ai.onnxc::QLinearConv"), "\(ops)")
    }
}
