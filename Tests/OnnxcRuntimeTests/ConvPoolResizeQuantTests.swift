import OnnxcCore
@testable import OnnxcRuntime
import Testing

/// Runs one node through the executor and returns its outputs.
private func run(_ op: String, _ inputs: [Tensor?], _ attributes: [String: AttributeValue] = [:], opset: Int = 21, outputs: Int = 1) throws -> [Tensor] {
    let inputNames = inputs.indices.map { inputs[$0] == nil ? "" : "i\($0)" }
    let outputNames = (0..<outputs).map { "o\($0)" }
    let node = RuntimeNode(name: "n", opType: op, domain: "", opset: opset, inputs: inputNames, outputs: outputNames, attributes: Attributes(attributes))
    let info = { (name: String) in RuntimeValueInfo(name: name, dtype: nil, shape: nil, shapeText: "?") }
    let graph = RuntimeGraph(name: "g", inputs: inputNames.filter { !$0.isEmpty }.map(info), outputs: outputNames.map(info), initializers: [:], nodes: [node])
    var feeds: [String: Value] = [:]
    for (name, tensor) in zip(inputNames, inputs) where !name.isEmpty {
        if let tensor { feeds[name] = .tensor(tensor) }
    }
    let results = try Executor(graph: graph).run(feeds)
    return try outputNames.map { name in
        guard let tensor = results[name]?.tensor else { throw RuntimeError.missingInput(name) }
        return tensor
    }
}

/// Deterministic pseudo-random floats in [-1, 1).
private func noise(_ count: Int, seed: UInt64) -> [Float] {
    var state = seed &* 6364136223846793005 &+ 1442695040888963407
    return (0..<count).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: state >> 11) % 2_000_000) / 1_000_000 - 1
    }
}

/// Direct N-D-free 2-D convolution for checking the im2col/GEMM and depthwise paths.
private func naiveConv2D(x: [Float], xShape: [Int], w: [Float], wShape: [Int], bias: [Float]?, group: Int, strides: [Int], pads: [Int], dilations: [Int]) -> ([Float], [Int]) {
    let (n, c, h, wd) = (xShape[0], xShape[1], xShape[2], xShape[3])
    let (m, cg, kh, kw) = (wShape[0], wShape[1], wShape[2], wShape[3])
    let oh = (h + pads[0] + pads[2] - ((kh - 1) * dilations[0] + 1)) / strides[0] + 1
    let ow = (wd + pads[1] + pads[3] - ((kw - 1) * dilations[1] + 1)) / strides[1] + 1
    var out = [Float](repeating: 0, count: n * m * oh * ow)
    let mg = m / group
    for b in 0..<n {
        for oc in 0..<m {
            let g = oc / mg
            for y in 0..<oh {
                for xx in 0..<ow {
                    var sum = bias?[oc] ?? 0
                    for ic in 0..<cg {
                        for ky in 0..<kh {
                            for kx in 0..<kw {
                                let iy = y * strides[0] - pads[0] + ky * dilations[0], ix = xx * strides[1] - pads[1] + kx * dilations[1]
                                guard iy >= 0, iy < h, ix >= 0, ix < wd else { continue }
                                sum += x[((b * c + g * cg + ic) * h + iy) * wd + ix] * w[((oc * cg + ic) * kh + ky) * kw + kx]
                            }
                        }
                    }
                    out[((b * m + oc) * oh + y) * ow + xx] = sum
                }
            }
        }
    }
    return (out, [n, m, oh, ow])
}

private func expectClose(_ a: [Float], _ b: [Float], tolerance: Float = 1e-3) {
    #expect(a.count == b.count)
    let worst = zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
    #expect(worst < tolerance, "worst relative difference \(worst)")
}

@Suite struct ConvolutionTests {
    @Test func gemmMatchesNaiveProductAcrossBlockEdges() {
        for (m, n, k) in [(7, 37, 300), (9, 530, 5), (4, 16, 1), (1, 1, 1)] {
            let a = noise(m * k, seed: 1), b = noise(k * n, seed: 2)
            var c = [Float](repeating: 0.5, count: m * n)
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    c.withUnsafeMutableBufferPointer { cp in
                        ConvolutionKernels.gemm(m: m, n: n, k: k, a: ap.baseAddress!, b: bp.baseAddress!, c: cp.baseAddress!)
                    }
                }
            }
            var expected = [Float](repeating: 0.5, count: m * n)
            for i in 0..<m {
                for j in 0..<n {
                    for p in 0..<k { expected[i * n + j] += a[i * k + p] * b[p * n + j] }
                }
            }
            expectClose(c, expected)
        }
    }

    @Test func groupedDilatedStridedConvMatchesDirectConvolution() throws {
        let xShape = [2, 6, 19, 17], wShape = [8, 3, 3, 2]
        let x = noise(xShape.reduce(1, *), seed: 3), w = noise(wShape.reduce(1, *), seed: 4), b = noise(8, seed: 5)
        let attributes: [String: AttributeValue] = ["group": .int(2), "strides": .ints([2, 1]), "pads": .ints([1, 0, 2, 1]), "dilations": .ints([1, 2])]
        let y = try run("Conv", [Tensor(x, shape: xShape), Tensor(w, shape: wShape), Tensor(b, shape: [8])], attributes)[0]
        let (expected, shape) = naiveConv2D(x: x, xShape: xShape, w: w, wShape: wShape, bias: b, group: 2, strides: [2, 1], pads: [1, 0, 2, 1], dilations: [1, 2])
        #expect(y.shape == shape)
        expectClose(y.array(Float.self), expected)
    }

    @Test func depthwiseAndPointwisePathsMatchDirectConvolution() throws {
        let xShape = [1, 16, 33, 31]
        let x = noise(xShape.reduce(1, *), seed: 6)
        let wd = noise(16 * 9, seed: 7)
        let depthwise = try run("Conv", [Tensor(x, shape: xShape), Tensor(wd, shape: [16, 1, 3, 3])], ["group": .int(16), "pads": .ints([1, 1, 1, 1]), "strides": .ints([1, 2])])[0]
        let (expectedDepthwise, _) = naiveConv2D(x: x, xShape: xShape, w: wd, wShape: [16, 1, 3, 3], bias: nil, group: 16, strides: [1, 2], pads: [1, 1, 1, 1], dilations: [1, 1])
        expectClose(depthwise.array(Float.self), expectedDepthwise)
        let wp = noise(24 * 16, seed: 8)
        let pointwise = try run("Conv", [Tensor(x, shape: xShape), Tensor(wp, shape: [24, 16, 1, 1])])[0]
        let (expectedPointwise, _) = naiveConv2D(x: x, xShape: xShape, w: wp, wShape: [24, 16, 1, 1], bias: nil, group: 1, strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1])
        expectClose(pointwise.array(Float.self), expectedPointwise)
    }

    @Test func convTransposeScattersWithStride() throws {
        // x = [1, 2], w = [1, 1], stride 2 → [1, 1, 2, 2]; output_padding adds a trailing zero.
        let y = try run("ConvTranspose", [Tensor([Float(1), 2], shape: [1, 1, 2]), Tensor([Float(1), 1], shape: [1, 1, 2])], ["strides": .ints([2]), "output_padding": .ints([1])])[0]
        #expect(y.shape == [1, 1, 5])
        #expect(y.array(Float.self) == [1, 1, 2, 2, 0])
    }

    @Test func mismatchedWeightsAreRejected() throws {
        #expect(throws: RuntimeError.self) {
            _ = try run("Conv", [Tensor(zeros: .float, shape: [1, 2, 4, 4]), Tensor(zeros: .float, shape: [3, 4, 3, 3])])
        }
    }
}

@Suite struct PoolingTests {
    @Test func maxPoolIndicesFollowStorageOrder() throws {
        let x = try Tensor((0..<12).map { Float($0) }, shape: [1, 1, 3, 4])
        let rowMajor = try run("MaxPool", [x], ["kernel_shape": .ints([2, 2]), "strides": .ints([1, 2])], opset: 12, outputs: 2)
        #expect(rowMajor[0].array(Float.self) == [5, 7, 9, 11])
        #expect(rowMajor[1].array(Int64.self) == [5, 7, 9, 11])
        let columnMajor = try run("MaxPool", [x], ["kernel_shape": .ints([2, 2]), "strides": .ints([1, 2]), "storage_order": .int(1)], opset: 12, outputs: 2)
        // Element (h, w) has column-major index w·3 + h.
        #expect(columnMajor[1].array(Int64.self) == [4, 10, 5, 11])
    }

    @Test func averagePoolExcludesPaddingByDefault() throws {
        let x = try Tensor([Float](repeating: 2, count: 9), shape: [1, 1, 3, 3])
        let y = try run("AveragePool", [x], ["kernel_shape": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]), "strides": .ints([2, 2])], opset: 19)[0]
        #expect(y.array(Float.self) == [2, 2, 2, 2])
        let included = try run("AveragePool", [x], ["kernel_shape": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]), "strides": .ints([2, 2]), "count_include_pad": .int(1)], opset: 19)[0]
        #expect(included.array(Float.self) == [0.5, 1, 1, 2])
    }

    @Test func maxUnpoolRejectsOutOfRangeIndices() throws {
        let x = try Tensor([Float(1)], shape: [1, 1, 1, 1]), indices = try Tensor([Int64(9)], shape: [1, 1, 1, 1])
        #expect(throws: RuntimeError.self) {
            _ = try run("MaxUnpool", [x, indices], ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])], opset: 11)
        }
    }
}

@Suite struct ResizeTests {
    @Test func nearestIntegerUpsampleRepeats() throws {
        let x = try Tensor([Float(1), 2, 3, 4], shape: [1, 1, 2, 2])
        let y = try run("Resize", [x, nil, Tensor([Float(1), 1, 2, 2], shape: [4])], ["mode": .string("nearest")], opset: 19)[0]
        #expect(y.shape == [1, 1, 4, 4])
        #expect(y.array(Float.self) == [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4])
    }

    @Test func hostileRoiExtrapolatesInsteadOfTrapping() throws {
        let x = try Tensor([Float](repeating: 1, count: 16), shape: [1, 1, 4, 4])
        let roi = try Tensor([Float(0), 0, .nan, .infinity, 1, 1, 1e30, -.infinity], shape: [8])
        let y = try run("Resize", [x, roi, nil, Tensor([Int64(1), 1, 3, 3], shape: [4])], ["mode": .string("cubic"), "coordinate_transformation_mode": .string("tf_crop_and_resize")], opset: 19)[0]
        #expect(y.shape == [1, 1, 3, 3])
    }
}

@Suite struct QuantizationTests {
    @Test func quantizeRoundsHalfToEvenAndSaturates() throws {
        let x = try Tensor([Float(0.5), 1.5, 2.5, -0.5, -1.5, 300, -300], shape: [7])
        let y = try run("QuantizeLinear", [x, Tensor.scalar(Float(1)), Tensor.scalar(Int8(0))])[0]
        #expect(y.array(Int8.self) == [0, 2, 2, 0, -2, 127, -128])
    }

    @Test func float8EncodingMatchesReference() {
        let e4m3 = QuantizationKernels.Float8Format(.float8e4m3fn)
        let e5m2 = QuantizationKernels.Float8Format(.float8e5m2)
        #expect(e4m3?.encode(1, saturate: true) == 0x38)
        #expect(e4m3?.encode(448, saturate: true) == 0x7E)
        #expect(e4m3?.encode(1000, saturate: true) == 0x7E)
        #expect(e4m3?.encode(1000, saturate: false) == 0x7F)
        #expect(e4m3?.encode(-.infinity, saturate: true) == 0xFE)
        #expect(e5m2?.encode(1, saturate: true) == 0x3C)
        #expect(e5m2?.encode(.infinity, saturate: false) == 0x7C)
    }

    @Test func int4QuantizationPacksTwoPerByte() throws {
        let x = try Tensor([Float(1), -2, 7, 9], shape: [4])
        let zero = try Tensor(zeros: .int4, shape: [])
        let y = try run("QuantizeLinear", [x, Tensor.scalar(Float(1)), zero])[0]
        #expect(y.dtype == .int4)
        #expect(y.doubles() == [1, -2, 7, 7])
    }

    @Test func nanScalesDoNotTrap() throws {
        let a = try Tensor([UInt8](repeating: 1, count: 4), shape: [2, 2])
        let y = try run("QLinearMatMul", [a, Tensor.scalar(Float.nan), Tensor.scalar(UInt8(0)), a, Tensor.scalar(Float(1)), Tensor.scalar(UInt8(0)), Tensor.scalar(Float(0)), Tensor.scalar(UInt8(0))], opset: 10)[0]
        #expect(y.shape == [2, 2])
    }
}
