import OnnxcCore
@testable import OnnxcRuntime
import OnnxcTestSupport
import Testing

/// Reference permutations for the layout tests: plain index arithmetic, independent of the runtime's Transpose.
enum Permutation {
    /// `bytes` (elements of `width` bytes, row-major `shape`) with output axis i = input axis perm[i].
    static func apply(_ bytes: [UInt8], width: Int, shape: [Int], perm: [Int]) -> [UInt8] {
        let rank = shape.count
        var strides = [Int](repeating: 1, count: rank)
        for d in stride(from: rank - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * shape[d + 1] }
        let outShape = perm.map { shape[$0] }
        let count = shape.reduce(1, *)
        var out = [UInt8](repeating: 0, count: count * width)
        var index = [Int](repeating: 0, count: rank)
        for o in 0..<count {
            var offset = 0
            for d in 0..<rank { offset += index[d] * strides[perm[d]] }
            for b in 0..<width { out[o * width + b] = bytes[offset * width + b] }
            var d = rank - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < outShape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return out
    }

    static func apply(_ t: Tensor, _ perm: [Int]) throws -> Tensor {
        let bytes = t.withBytes { Array($0) }
        let out = apply(bytes, width: t.dtype.storageBytes, shape: t.shape, perm: perm)
        let result = try Tensor(zeros: t.dtype, shape: perm.map { t.shape[$0] })
        result.withMutableBytes { target in target.copyBytes(from: out) }
        return result
    }

    static let toNHWC = [0, 2, 3, 1], toNCHW = [0, 3, 1, 2]

    /// Every permutation of 0..<rank, in lexicographic order.
    static func all(_ rank: Int) -> [[Int]] {
        guard rank > 0 else { return [[]] }
        return all(rank - 1).flatMap { smaller in (0...smaller.count).map { i in
            var p = smaller
            p.insert(rank - 1, at: i)
            return p
        } }
    }
}

/// The `ai.onnxc::Nhwc*` kernels on channels-last inputs against the standard ops (Conv, FusedConv with activation and
/// residual, MaxPool, AveragePool, the global pools) on the same data in NCHW, through the interpreter, with plain
/// weights and with weights packed by `PrepackedWeights.packNHWCConvolutionWeights`; their errors (rank, dtype,
/// residual and bias shape, weights packed for another convolution).
@Suite struct ChannelsLastOpTests {
    // MARK: - Running one node

    /// Runs one node reading x0, x1, … (nil: an omitted input, "") into "y".
    static func run(_ op: String, domain: String = "", _ inputs: [Tensor?], _ attributes: [String: AttributeValue] = [:],
                    opset: Int = 17) throws -> Tensor {
        let names = inputs.indices.map { inputs[$0] == nil ? "" : "x\($0)" }
        let node = RuntimeNode(name: op, opType: op, domain: domain, opset: opset, inputs: names, outputs: ["y"],
                               attributes: Attributes(attributes))
        let graph = RuntimeGraph(name: "test", inputs: names.filter { !$0.isEmpty }.map { RuntimeValueInfo(name: $0, dtype: nil, shape: nil, shapeText: "") },
                                 outputs: [RuntimeValueInfo(name: "y", dtype: nil, shape: nil, shapeText: "")], initializers: [:], nodes: [node])
        var feeds: [String: Value] = [:]
        for (name, tensor) in zip(names, inputs) where !name.isEmpty { feeds[name] = tensor.map { .tensor($0) } }
        return try #require(try Executor(graph: graph).run(feeds)["y"]?.tensor)
    }

    /// The channels-last op on NHWC views of the 4-D inputs at `layoutSlots`, its result back in NCHW.
    static func runNHWC(_ op: String, _ inputs: [Tensor?], _ attributes: [String: AttributeValue], layoutSlots: Set<Int> = [0]) throws -> Tensor {
        let transposed = try inputs.enumerated().map { slot, t in try t.map { layoutSlots.contains(slot) ? try Permutation.apply($0, Permutation.toNHWC) : $0 } }
        return try Permutation.apply(try run(op, domain: RuntimeOps.domain, transposed, attributes), Permutation.toNCHW)
    }

    static func tensor(_ shape: [Int], seed: Int, scale: Float = 1) throws -> Tensor {
        try Tensor(Pseudorandom.floats(shape.reduce(1, *), seed: seed).map { $0 * scale }, shape: shape)
    }

    static func absolute(_ t: Tensor?) throws -> Tensor? {
        guard let t else { return nil }
        return try Tensor(t.array(Float.self).map(abs), shape: t.shape)
    }

    /// |actual − expected| ≤ tolerance·(1 + magnitude) elementwise, where magnitude is Σ|terms| of each output (the
    /// same op on |inputs|): float rounding is relative to it, not to the result, which may cancel to ~0.
    static func expectClose(_ actual: Tensor, _ expected: Tensor, magnitude: Tensor, tolerance: Double = 2e-5, _ comment: String,
                            sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(actual.shape == expected.shape, "\(comment)", sourceLocation: sourceLocation)
        guard actual.shape == expected.shape else { return }
        let a = actual.doubles(), e = expected.doubles(), m = magnitude.doubles()
        let bad = a.indices.filter { !(abs(a[$0] - e[$0]) <= tolerance * (1 + m[$0])) }
        #expect(bad.isEmpty, "\(comment): \(bad.count) of \(a.count) differ, first at \(bad.first ?? 0): \(bad.first.map { "\(a[$0]) vs \(e[$0])" } ?? "")",
                sourceLocation: sourceLocation)
    }

    /// Weights in the indirect GEMM's (or, for depthwise, the depthwise kernel's) layout, as the compiler stores them.
    static func packed(_ w: Tensor, groups: Int, depthwise: Bool) throws -> Tensor {
        let bytes = w.withBytes { Array($0) }
        let data = try TensorData(dtype: .float, dims: w.shape.map(Int64.init), payload: .bytes(ByteSlice(copying: bytes)))
        let packed = try #require(PrepackedWeights.packNHWCConvolutionWeights(data, groups: groups, depthwise: depthwise))
        return try Tensor(packed: packed, shape: w.shape, packing: depthwise ? .nhwcDepthwise : .nhwcConvolution(groups: groups))
    }

    // MARK: - Convolution

    struct ConvCase: CustomStringConvertible, Sendable {
        var x: [Int], w: [Int]
        var attributes: [String: AttributeValue] = [:]
        var bias = true
        var groups: Int { if case .int(let g)? = attributes["group"] { Int(g) } else { 1 } }
        var depthwise: Bool { groups > 1 && w[1] == 1 && w[0] == groups }
        var description: String { "x \(x) w \(w) \(attributes.keys.sorted())" }
    }

    /// Padding (symmetric, asymmetric, auto_pad SAME_UPPER/SAME_LOWER/VALID), strides, dilations, kernel_shape,
    /// groups, depthwise (the depthwise kernel) and channel multipliers (the grouped GEMM with one input channel),
    /// output channels that do and do not fill 16-wide panels, no bias, batches.
    static let convolutions: [ConvCase] = [
        ConvCase(x: [1, 3, 5, 5], w: [4, 3, 3, 3], attributes: ["pads": .ints([1, 1, 1, 1])]),
        ConvCase(x: [2, 5, 7, 6], w: [17, 5, 3, 3], attributes: ["strides": .ints([2, 2]), "pads": .ints([1, 0, 0, 1])]),
        ConvCase(x: [1, 4, 9, 9], w: [8, 2, 3, 3], attributes: ["group": .int(2), "dilations": .ints([2, 2]), "pads": .ints([2, 2, 2, 2])]),
        ConvCase(x: [2, 8, 6, 6], w: [8, 1, 3, 3], attributes: ["group": .int(8), "pads": .ints([1, 1, 1, 1])]),
        ConvCase(x: [1, 6, 5, 7], w: [12, 1, 3, 3], attributes: ["group": .int(6), "pads": .ints([1, 1, 1, 1])]),
        ConvCase(x: [1, 3, 11, 11], w: [16, 3, 7, 7], attributes: ["strides": .ints([2, 2]), "auto_pad": .string("SAME_UPPER")]),
        ConvCase(x: [1, 3, 8, 8], w: [5, 3, 2, 2], attributes: ["strides": .ints([2, 2]), "auto_pad": .string("SAME_LOWER")]),
        ConvCase(x: [1, 16, 4, 4], w: [40, 16, 1, 1], attributes: ["auto_pad": .string("VALID")], bias: false),
        ConvCase(x: [2, 3, 6, 6], w: [3, 3, 5, 5], attributes: ["kernel_shape": .ints([5, 5]), "pads": .ints([2, 2, 2, 2]), "strides": .ints([3, 3])]),
        ConvCase(x: [1, 17, 3, 3], w: [17, 1, 3, 3], attributes: ["group": .int(17), "pads": .ints([0, 1, 2, 1])], bias: false),
        ConvCase(x: [1, 2, 4, 9], w: [3, 2, 1, 5], attributes: ["pads": .ints([0, 2, 0, 2]), "dilations": .ints([1, 2])]),
    ]

    /// NhwcConv equals Conv, with the weights given plain (packed by the kernel on each call) and prepacked.
    @Test(arguments: 0..<convolutions.count, [false, true]) func nhwcConvEqualsConv(_ i: Int, _ prepacked: Bool) throws {
        let c = Self.convolutions[i]
        let x = try Self.tensor(c.x, seed: i), w = try Self.tensor(c.w, seed: i + 100)
        let b = c.bias ? try Self.tensor([c.w[0]], seed: i + 200) : nil
        let expected = try Self.run("Conv", [x, w, b], c.attributes)
        let magnitude = try Self.run("Conv", [try Self.absolute(x), try Self.absolute(w), try Self.absolute(b)], c.attributes)
        let weights = prepacked ? try Self.packed(w, groups: c.groups, depthwise: c.depthwise) : w
        let actual = try Self.runNHWC("NhwcConv", [x, weights, b], c.attributes)
        Self.expectClose(actual, expected, magnitude: magnitude, "\(c) prepacked \(prepacked)")
    }

    /// Every fused activation with a residual, after FusedConv's own kernel: the ones CKernels' epilogue applies and
    /// Tanh/Gelu/GeluTanh, which the Swift epilogue applies after it; on the GEMM path and the depthwise path, plain
    /// and prepacked.
    @Test(arguments: FusedActivationKind.allCases, [false, true]) func nhwcConvEqualsFusedConv(_ kind: FusedActivationKind, _ depthwise: Bool) throws {
        let params: [FusedActivationKind: [Float]] = [.clip: [-0.5, 0.75], .hardSigmoid: [0.2, 0.5], .leakyRelu: [0.1]]
        var attributes: [String: AttributeValue] = ["pads": .ints([1, 1, 1, 1]), "activation": .string(kind.rawValue)]
        if let p = params[kind] { attributes["activation_params"] = .floats(p) }
        let (xShape, wShape) = depthwise ? ([1, 16, 5, 6], [16, 1, 3, 3]) : ([2, 4, 5, 5], [17, 4, 3, 3])
        if depthwise { attributes["group"] = .int(16) }
        let x = try Self.tensor(xShape, seed: 1), w = try Self.tensor(wShape, seed: 2), b = try Self.tensor([wShape[0]], seed: 3)
        let z = try Self.tensor([xShape[0], wShape[0], xShape[2], xShape[3]], seed: 4)
        let expected = try Self.run("FusedConv", domain: RuntimeOps.domain, [x, w, b, z], attributes)
        var plain = attributes
        plain["activation"] = nil
        plain["activation_params"] = nil
        let magnitude = try Self.run("FusedConv", domain: RuntimeOps.domain,
                                     [try Self.absolute(x), try Self.absolute(w), try Self.absolute(b), try Self.absolute(z)], plain)
        for prepacked in [false, true] {
            let weights = prepacked ? try Self.packed(w, groups: depthwise ? 16 : 1, depthwise: depthwise) : w
            let actual = try Self.runNHWC("NhwcConv", [x, weights, b, z], attributes, layoutSlots: [0, 3])
            Self.expectClose(actual, expected, magnitude: magnitude, tolerance: 3e-5, "\(kind) depthwise \(depthwise) prepacked \(prepacked)")
        }
        // A residual without a bias.
        let noBias = try Self.run("FusedConv", domain: RuntimeOps.domain, [x, w, nil, z], attributes)
        Self.expectClose(try Self.runNHWC("NhwcConv", [x, w, nil, z], attributes, layoutSlots: [0, 3]), noBias, magnitude: magnitude,
                         tolerance: 3e-5, "\(kind) without bias")
    }

    // MARK: - Pools

    static let pools: [(x: [Int], attributes: [String: AttributeValue])] = [
        ([1, 3, 6, 6], ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])]),
        ([2, 17, 7, 7], ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "ceil_mode": .int(1)]),
        ([1, 40, 8, 7], ["kernel_shape": .ints([3, 2]), "dilations": .ints([2, 1]), "pads": .ints([1, 0, 2, 1])]),
        ([1, 8, 7, 9], ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "auto_pad": .string("SAME_UPPER")]),
        ([2, 5, 6, 5], ["kernel_shape": .ints([2, 2]), "auto_pad": .string("SAME_LOWER")]),
        ([1, 33, 7, 7], ["kernel_shape": .ints([3, 3]), "strides": .ints([3, 3]), "pads": .ints([1, 1, 1, 1]), "ceil_mode": .int(1)]),
        ([1, 4, 5, 5], ["kernel_shape": .ints([5, 5]), "auto_pad": .string("VALID")]),
    ]

    /// NhwcMaxPool equals MaxPool exactly (a max has no rounding).
    @Test(arguments: 0..<pools.count) func nhwcMaxPoolEqualsMaxPool(_ i: Int) throws {
        let (shape, attributes) = Self.pools[i]
        let x = try Self.tensor(shape, seed: i)
        let expected = try Self.run("MaxPool", [x], attributes, opset: 12)
        let actual = try Self.runNHWC("NhwcMaxPool", [x], attributes)
        #expect(actual.shape == expected.shape)
        #expect(actual.array(Float.self) == expected.array(Float.self))
    }

    /// NhwcAveragePool equals AveragePool with and without count_include_pad (ceil-mode overhang included).
    @Test(arguments: 0..<pools.count, [0, 1]) func nhwcAveragePoolEqualsAveragePool(_ i: Int, _ includePad: Int64) throws {
        var (shape, attributes) = Self.pools[i]
        attributes["count_include_pad"] = .int(includePad)
        let x = try Self.tensor(shape, seed: i)
        let expected = try Self.run("AveragePool", [x], attributes, opset: 19)  // dilations from opset 19
        let actual = try Self.runNHWC("NhwcAveragePool", [x], attributes)
        Self.expectClose(actual, expected, magnitude: try Self.run("AveragePool", [try Self.absolute(x)], attributes, opset: 19),
                         tolerance: 1e-6, "\(shape) \(attributes.keys.sorted())")
    }

    /// The global pools' [N, 1, 1, C] output is GlobalAveragePool/GlobalMaxPool's [N, C, 1, 1], channels around the
    /// 8-wide block and a single pixel.
    @Test(arguments: [[2, 17, 5, 3], [1, 1, 1, 1], [3, 40, 7, 7], [1, 8, 1, 9]]) func nhwcGlobalPoolsEqualGlobalPools(_ shape: [Int]) throws {
        let x = try Self.tensor(shape, seed: shape.reduce(0, +))
        let maxima = try Self.runNHWC("NhwcGlobalMaxPool", [x], [:])
        #expect(maxima.array(Float.self) == (try Self.run("GlobalMaxPool", [x])).array(Float.self))
        #expect(maxima.shape == [shape[0], shape[1], 1, 1])
        let means = try Self.runNHWC("NhwcGlobalAveragePool", [x], [:])
        let expected = try Self.run("GlobalAveragePool", [x])
        Self.expectClose(means, expected, magnitude: try Self.run("GlobalAveragePool", [try Self.absolute(x)]), tolerance: 1e-6, "\(shape)")
    }

    /// NaN taps: NhwcMaxPool skips them (`x > m ? x : m`, as ONNX Runtime), and so do the NCHW MaxPool and
    /// GlobalMaxPool it replaces (both seed their windows with −∞; they used to seed with the tensor's minimum, or a
    /// plane's first element, so a leading NaN made every output NaN). Smallest case: [NaN, 1, 2, 3], 1×2 windows.
    @Test func maxPoolsWithNaN() throws {
        let x = try Tensor([Float.nan, 1, 2, 3], shape: [1, 1, 1, 4])
        let attributes: [String: AttributeValue] = ["kernel_shape": .ints([1, 2]), "strides": .ints([1, 2])]
        let nhwc = try Self.runNHWC("NhwcMaxPool", [x], attributes)
        #expect(nhwc.array(Float.self) == [1, 3])
        #expect(try Self.runNHWC("NhwcGlobalMaxPool", [x], [:]).array(Float.self) == [3])
        let nchw = try Self.run("MaxPool", [x], attributes, opset: 12)
        #expect(nchw.array(Float.self) == [1, 3])
        #expect(try Self.run("GlobalMaxPool", [x]).array(Float.self) == [3])
    }

    // MARK: - Errors

    /// The innermost error of a failed run (the executor wraps kernel errors with the node).
    static func failure(_ body: () throws -> Tensor) -> RuntimeError? {
        do {
            _ = try body()
            return nil
        } catch let error as RuntimeError {
            var inner = error
            while case .atNode(_, _, let wrapped) = inner { inner = wrapped }
            return inner
        } catch {
            return nil
        }
    }

    static func isShapeError(_ error: RuntimeError?, containing text: String) -> Bool {
        if case .invalidShape(let message)? = error { return message.contains(text) }
        return false
    }

    static func isArgumentError(_ error: RuntimeError?, containing text: String) -> Bool {
        if case .invalidArgument(let message)? = error { return message.contains(text) }
        return false
    }

    /// Inputs that are not [N, H, W, C], not float32, or whose weights do not fit: each an error naming the problem.
    @Test func nhwcOpsRejectWrongRanksAndTypes() throws {
        let x3 = try Self.tensor([1, 5, 3], seed: 1), w = try Self.tensor([4, 3, 3, 3], seed: 2)
        let pool: [String: AttributeValue] = ["kernel_shape": .ints([2, 2])]
        #expect(Self.isShapeError(Self.failure { try Self.run("NhwcConv", domain: RuntimeOps.domain, [x3, w]) }, containing: "[N, H, W, C]"))
        #expect(Self.isShapeError(Self.failure { try Self.run("NhwcMaxPool", domain: RuntimeOps.domain, [x3], pool) }, containing: "[N, H, W, C]"))
        let x5 = try Self.tensor([1, 2, 2, 2, 3], seed: 1)
        #expect(Self.isShapeError(Self.failure { try Self.run("NhwcGlobalAveragePool", domain: RuntimeOps.domain, [x5]) }, containing: "[N, H, W, C]"))
        #expect(Self.isShapeError(Self.failure { try Self.run("NhwcAveragePool", domain: RuntimeOps.domain, [x5], pool) }, containing: "[N, H, W, C]"))

        let doubles = try Tensor([Double](repeating: 1, count: 75), shape: [1, 5, 5, 3])
        if case .unsupportedType(let op, let dtype)? = Self.failure({ try Self.run("NhwcConv", domain: RuntimeOps.domain, [doubles, w]) }) {
            #expect(op == "NhwcConv" && dtype == DType.double.onnxName)
        } else {
            Issue.record("a float64 input is not an unsupported-type error")
        }
        let x = try Self.tensor([1, 5, 5, 3], seed: 3)
        let doubleWeights = try Tensor([Double](repeating: 1, count: 108), shape: [4, 3, 3, 3])
        #expect(Self.isArgumentError(Self.failure { try Self.run("NhwcConv", domain: RuntimeOps.domain, [x, doubleWeights]) }, containing: "float32"))
        let w3 = try Self.tensor([4, 3, 9], seed: 2)
        #expect(Self.isShapeError(Self.failure { try Self.run("NhwcConv", domain: RuntimeOps.domain, [x, w3]) }, containing: "4-D weights"))
        // Weights for 4 input channels on a 3-channel input.
        let w4 = try Self.tensor([4, 4, 3, 3], seed: 2)
        #expect(Self.isShapeError(Self.failure { try Self.run("NhwcConv", domain: RuntimeOps.domain, [x, w4]) }, containing: "do not match input channels"))
    }

    /// A residual that is not the output's shape and a bias that is not one value per output channel are errors.
    @Test func nhwcConvRejectsMismatchedBiasAndResidual() throws {
        let x = try Self.tensor([1, 5, 5, 3], seed: 1), w = try Self.tensor([4, 3, 3, 3], seed: 2), b = try Self.tensor([4], seed: 3)
        let pads: [String: AttributeValue] = ["pads": .ints([1, 1, 1, 1])]
        let wrongResidual = try Self.tensor([1, 4, 5, 5], seed: 4)  // NCHW, not the NHWC output [1, 5, 5, 4]
        #expect(Self.isShapeError(Self.failure { try Self.run("NhwcConv", domain: RuntimeOps.domain, [x, w, b, wrongResidual], pads) },
                                  containing: "residual"))
        #expect(Self.isShapeError(Self.failure { try Self.run("NhwcConv", domain: RuntimeOps.domain, [x, w, try Self.tensor([5], seed: 3)], pads) },
                                  containing: "bias"))
        // The right residual runs.
        let residual = try Self.tensor([1, 5, 5, 4], seed: 4)
        #expect(try Self.run("NhwcConv", domain: RuntimeOps.domain, [x, w, b, residual], pads).shape == [1, 5, 5, 4])
    }

    /// Prepacked weights name the convolution they were packed for; another one (other groups, depthwise vs GEMM
    /// layout) is an error that says to recompile, never a wrong read.
    @Test func nhwcConvRejectsWeightsPackedForAnotherConvolution() throws {
        let x = try Self.tensor([1, 4, 4, 8], seed: 1)
        let conv = "NhwcConv", domain = RuntimeOps.domain
        // [8, 8, 3, 3] packed as two groups (a 16-channel input's) read by a one-group conv of 8 channels, and
        // [8, 4, 3, 3] packed as one group (a 4-channel input's) read by a two-group conv of 8 channels.
        let wide = try Self.tensor([8, 8, 3, 3], seed: 2), narrow = try Self.tensor([8, 4, 3, 3], seed: 2)
        let grouped: [String: AttributeValue] = ["group": .int(2)]
        #expect(Self.isArgumentError(Self.failure { try Self.run(conv, domain: domain, [x, try Self.packed(wide, groups: 2, depthwise: false)]) },
                                     containing: "packed for another convolution"))
        #expect(Self.isArgumentError(Self.failure { try Self.run(conv, domain: domain, [x, try Self.packed(narrow, groups: 1, depthwise: false)], grouped) },
                                     containing: "packed for another convolution"))
        #expect(try Self.run(conv, domain: domain, [x, try Self.packed(wide, groups: 1, depthwise: false)]).shape == [1, 2, 2, 8])
        #expect(try Self.run(conv, domain: domain, [x, try Self.packed(narrow, groups: 2, depthwise: false)], grouped).shape == [1, 2, 2, 8])
        // Depthwise weights [8, 1, 3, 3]: packed as a GEMM for the depthwise kernel, and depthwise-packed for an
        // 8-group conv that has 2 output channels per group.
        let dw = try Self.tensor([8, 1, 3, 3], seed: 3)
        let depthwise: [String: AttributeValue] = ["group": .int(8)]
        #expect(Self.isArgumentError(Self.failure { try Self.run("NhwcConv", domain: RuntimeOps.domain, [x, try Self.packed(dw, groups: 8, depthwise: false)], depthwise) },
                                     containing: "packed for another convolution"))
        let x4 = try Self.tensor([1, 4, 4, 4], seed: 1)
        let multiplier = try Self.tensor([8, 1, 3, 3], seed: 3)
        #expect(Self.isArgumentError(Self.failure { try Self.run("NhwcConv", domain: RuntimeOps.domain, [x4, try Self.packed(multiplier, groups: 8, depthwise: true)], ["group": .int(4)]) },
                                     containing: "packed for another convolution"))
        #expect(try Self.run("NhwcConv", domain: RuntimeOps.domain, [x, try Self.packed(dw, groups: 8, depthwise: true)], depthwise).shape == [1, 2, 2, 8])
    }

    /// packNHWCConvolutionWeights refuses what it cannot pack: non-float, non-4-D, groups that do not divide the
    /// output channels, depthwise packing of weights with more than one input channel.
    @Test func packingRejectsUnpackableWeights() throws {
        let w = try TensorData(dtype: .float, dims: [6, 2, 3, 3], payload: .bytes(ByteSlice(copying: [UInt8](repeating: 0, count: 6 * 2 * 9 * 4))))
        #expect(PrepackedWeights.packNHWCConvolutionWeights(w, groups: 1, depthwise: false) != nil)
        #expect(PrepackedWeights.packNHWCConvolutionWeights(w, groups: 4, depthwise: false) == nil)
        #expect(PrepackedWeights.packNHWCConvolutionWeights(w, groups: 6, depthwise: true) == nil)
        let w3 = try TensorData(dtype: .float, dims: [6, 2, 9], payload: .bytes(ByteSlice(copying: [UInt8](repeating: 0, count: 6 * 2 * 9 * 4))))
        #expect(PrepackedWeights.packNHWCConvolutionWeights(w3, groups: 1, depthwise: false) == nil)
        let ints = try TensorData(int64s: [Int64](repeating: 0, count: 36), dims: [2, 2, 3, 3])
        #expect(PrepackedWeights.packNHWCConvolutionWeights(ints, groups: 1, depthwise: false) == nil)
        #expect(PrepackedWeights.nhwcPackedFloats(dims: [17, 3, 3, 3], groups: 1, depthwise: false) == 32 * 27)
        #expect(PrepackedWeights.nhwcPackedFloats(dims: [17, 1, 3, 3], groups: 17, depthwise: true) == 32 * 9)
    }

    // MARK: - Transpose fast path

    /// (shape, perm) → the batch of row × column transposes the fast path runs, or nil for the generic path: NCHW ↔
    /// NHWC, merged adjacent axes, size-1 axes dropped, block transposes (a moved axis that carries a trailing
    /// one), identities, reversals, empty tensors.
    static let batchedCases: [(shape: [Int], perm: [Int], expected: [Int]?)] = [
        ([2, 3], [1, 0], [1, 2, 3]),
        ([2, 3, 4, 5], [0, 2, 3, 1], [2, 3, 20]),
        ([2, 4, 5, 3], [0, 3, 1, 2], [2, 20, 3]),
        ([1, 3, 4, 5], [0, 2, 3, 1], [1, 3, 20]),
        ([2, 3, 1, 1], [0, 2, 3, 1], nil),
        ([2, 1, 1, 3], [0, 3, 1, 2], nil),
        ([2, 3, 4], [0, 2, 1], [2, 3, 4]),
        ([2, 3, 4], [1, 2, 0], [1, 2, 12]),
        ([2, 3, 4], [2, 0, 1], [1, 6, 4]),
        ([2, 3, 4], [1, 0, 2], nil),
        ([2, 3, 4], [2, 1, 0], nil),
        ([2, 3, 4], [0, 1, 2], nil),
        ([2, 3, 4, 5, 6], [0, 1, 3, 4, 2], [6, 4, 30]),
        ([2, 3, 4, 5], [2, 3, 0, 1], [1, 6, 20]),
        ([2, 3, 4, 5], [0, 2, 1, 3], nil),
        ([2, 3, 4, 5], [1, 0, 3, 2], nil),
        ([1, 5, 1, 7], [3, 1, 2, 0], [1, 5, 7]),
        ([4, 1, 6], [2, 1, 0], [1, 4, 6]),
        ([1, 1, 1], [2, 0, 1], nil),
        ([3], [0], nil),
        ([0, 3], [1, 0], nil),
        ([2, 0, 3], [0, 2, 1], nil),
    ]

    @Test func batchedTransposeRecognizesBatchesOfTransposes() {
        for c in Self.batchedCases {
            let found = ShapeKernels.batchedTranspose(c.shape, c.perm).map { [$0.0, $0.1, $0.2] }
            #expect(found == c.expected, "\(c.shape) perm \(c.perm)")
        }
    }

    /// Shapes of rank 2–5 with and without size-1 axes, for every permutation of their rank.
    static let permutedShapes: [[Int]] = [
        [3, 5], [1, 4], [4, 1], [2, 3, 4], [3, 1, 5], [1, 6, 1], [2, 3, 4, 5], [1, 3, 1, 4], [2, 1, 33, 1],
        [2, 3, 1, 4, 2], [1, 2, 1, 3, 1], [3, 2, 2, 1, 5],
    ]

    /// The Transpose kernel (the tiled fast path for 4-byte types where `batchedTranspose` applies, the generic one
    /// otherwise) equals index arithmetic, bit for bit, for float, int32 and (always generic) int64.
    @Test(arguments: 0..<permutedShapes.count) func transposeEqualsGenericPermutation(_ i: Int) throws {
        let shape = Self.permutedShapes[i]
        let count = shape.reduce(1, *)
        let floats = try Tensor(Pseudorandom.floats(count, seed: i), shape: shape)
        let ints = try Tensor((0..<count).map { Int32($0 * 7 - 50) }, shape: shape)
        let longs = try Tensor((0..<count).map { Int64($0) << 33 | Int64($0) }, shape: shape)
        var fast = 0
        for perm in Permutation.all(shape.count) {
            if ShapeKernels.batchedTranspose(shape, perm) != nil { fast += 1 }
            for t in [floats, ints, longs] {
                let expected = try Permutation.apply(t, perm)
                let actual = try ShapeKernels.permuted(t, perm)
                #expect(actual.shape == expected.shape, "\(shape) perm \(perm) \(t.dtype)")
                #expect(actual.withBytes { Array($0) } == expected.withBytes { Array($0) }, "\(shape) perm \(perm) \(t.dtype)")
            }
        }
        // Every shape with two axes longer than 1 has permutations that are a batch of transposes.
        #expect((fast > 0) == (shape.filter { $0 > 1 }.count >= 2), "\(shape): \(fast) permutations took the fast path")
    }

    /// The Transpose op (and so NCHW ↔ NHWC in a converted graph) on a tensor large enough for the tiled copy to
    /// run on the thread pool, with tile-ragged sizes.
    @Test func transposeOpOnLargeTensors() throws {
        let x = try Self.tensor([2, 37, 45, 41], seed: 5)
        for perm in [Permutation.toNHWC, [0, 3, 1, 2], [3, 0, 1, 2], [1, 2, 3, 0]] {
            let y = try Self.run("Transpose", [x], ["perm": .ints(perm.map(Int64.init))], opset: 13)
            #expect(y.shape == perm.map { x.shape[$0] })
            #expect(y.array(Float.self) == (try Permutation.apply(x, perm)).array(Float.self), "perm \(perm)")
        }
        // Images' three channels to channels-last (the 3-row interleave: 8 columns at a time, tile and image tails).
        for shape in [[2, 3, 40, 41], [1, 3, 5, 3], [3, 3, 224, 224]] {
            let image = try Self.tensor(shape, seed: shape[2])
            let y = try Self.run("Transpose", [image], ["perm": .ints(Permutation.toNHWC.map(Int64.init))], opset: 13)
            #expect(y.array(Float.self) == (try Permutation.apply(image, Permutation.toNHWC)).array(Float.self), "\(shape)")
        }
    }
}
