import CKernels

/// float32 products through CKernels (`Sources/CKernels`): packed operands, a 6×16 AVX2/FMA microkernel chosen at
/// run time (scalar fallback elsewhere), a persistent thread pool, and an epilogue that adds a bias and applies an
/// activation while the tile is still in registers. Conv, Gemm, MatMul and the fused ops run their float32
/// products here; float64 and float16 stay on the Swift kernels. docs/benchmarks.md ("GEMM kernels") has the
/// measurements behind the choice of this kernel over OpenBLAS, BLIS and oneDNN.
enum PackedGemm {
    /// Where a bias vector goes in C = A·B: one value per row (a Conv's output channels) or per column.
    enum Bias {
        case none
        case perRow(UnsafePointer<Float>)
        case perColumn(UnsafePointer<Float>)
    }

    /// A strided operand: element (i, j) at `data[i·rowStride + j·columnStride]`.
    struct Operand {
        let data: UnsafePointer<Float>
        let rowStride: Int, columnStride: Int
        /// The data is already in the kernel's packed layout for its side (compile-time prepacked weights).
        var packed = false
    }

    /// The epilogue form of `activation` (every activation onnxc fuses: the transcendental ones with CKernels' vector
    /// exp, tanh and erf). Optional so that callers keep a path for an activation the kernel may one day lack.
    static func kernelActivation(_ activation: FusedActivation?) -> (kind: ck_activation, p0: Float, p1: Float)? {
        guard let activation else { return (CK_ACT_NONE, 0, 0) }
        let p = activation.parameters
        switch activation.kind {
        case .relu: return (CK_ACT_RELU, 0, 0)
        case .clip: return (CK_ACT_CLIP, p[0], p[1])
        case .leakyRelu: return (CK_ACT_LEAKY_RELU, p[0], 0)
        case .hardSigmoid: return (CK_ACT_HARD_SIGMOID, p[0], p[1])
        case .hardSwish: return (CK_ACT_HARD_SWISH, 0, 0)
        case .sigmoid: return (CK_ACT_SIGMOID, 0, 0)
        case .silu: return (CK_ACT_SILU, 0, 0)
        case .tanh: return (CK_ACT_TANH, 0, 0)
        case .gelu: return (CK_ACT_GELU, 0, 0)
        case .geluTanh: return (CK_ACT_GELU_TANH, 0, 0)
        }
    }

    /// C[m×n] (row-major, rows `ldc` apart) = activation(A·B (+ C's contents if `accumulate`) + bias), with
    /// `activation` one `kernelActivation` accepts (pass nil for none). Runs on the CKernels pool unless `threaded`
    /// is false.
    static func multiply(m: Int, n: Int, k: Int, a: Operand, b: Operand, c: UnsafeMutablePointer<Float>, ldc: Int,
                         bias: Bias = .none, activation: FusedActivation? = nil, accumulate: Bool = false, threaded: Bool = true) {
        guard m > 0, n > 0 else { return }
        var epilogue = makeEpilogue(bias: bias, activation: activation, accumulate: accumulate)
        let aOperand = ck_operand(data: a.data, rs: a.rowStride, cs: a.columnStride, packed: a.packed ? 1 : 0)
        let bOperand = ck_operand(data: b.data, rs: b.rowStride, cs: b.columnStride, packed: b.packed ? 1 : 0)
        if threaded {
            ck_sgemm(Int32(m), Int32(n), Int32(k), aOperand, bOperand, c, ldc, &epilogue)
        } else {
            ck_sgemm_serial(Int32(m), Int32(n), Int32(k), aOperand, bOperand, c, ldc, &epilogue)
        }
    }

    /// One group of one image of a 2-D convolution, Y[m × outVol] (rows outVol apart) = activation(W · im2col(X) +
    /// bias), with the GEMM packing its B operand straight from X (`ck_sconv2d`).
    static func convolution2D(m: Int, weights: Operand, x: UnsafePointer<Float>, channels: Int, geometry g: ConvolutionKernels.Geometry,
                              y: UnsafeMutablePointer<Float>, bias: Bias, activation: FusedActivation?) {
        var epilogue = makeEpilogue(bias: bias, activation: activation, accumulate: false)
        var input = ck_conv2d_input(
            x: x, channels: Int32(channels), in_h: Int32(g.inSpatial[0]), in_w: Int32(g.inSpatial[1]),
            out_h: Int32(g.outSpatial[0]), out_w: Int32(g.outSpatial[1]), kernel_h: Int32(g.kernel[0]), kernel_w: Int32(g.kernel[1]),
            stride_h: Int32(g.strides[0]), stride_w: Int32(g.strides[1]), pad_top: Int32(g.padsBegin[0]), pad_left: Int32(g.padsBegin[1]),
            dilation_h: Int32(g.dilations[0]), dilation_w: Int32(g.dilations[1]))
        let a = ck_operand(data: weights.data, rs: weights.rowStride, cs: weights.columnStride, packed: weights.packed ? 1 : 0)
        ck_sconv2d(Int32(m), a, &input, y, g.outSpatial[0] * g.outSpatial[1], &epilogue)
    }

    private static func makeEpilogue(bias: Bias, activation: FusedActivation?, accumulate: Bool) -> ck_epilogue {
        let act = kernelActivation(activation) ?? (CK_ACT_NONE, 0, 0)
        var epilogue = ck_epilogue(bias_kind: CK_BIAS_NONE, bias: nil, activation: act.kind, param0: act.p0, param1: act.p1, accumulate: accumulate ? 1 : 0, wide: 0)
        switch bias {
        case .none: break
        case .perRow(let pointer): epilogue.bias_kind = CK_BIAS_ROW; epilogue.bias = pointer
        case .perColumn(let pointer): epilogue.bias_kind = CK_BIAS_COLUMN; epilogue.bias = pointer
        }
        return epilogue
    }

    /// Depthwise 2-D convolution (one input channel per output channel) with the bias and `activation` (one
    /// `kernelActivation` accepts, or nil) applied per output row: CKernels' direct kernel, planes in parallel.
    static func depthwise2D(x: UnsafeBufferPointer<Float>, w: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>?,
                            y: UnsafeMutableBufferPointer<Float>, geometry g: ConvolutionKernels.Geometry, activation: FusedActivation?) {
        let act = kernelActivation(activation) ?? (CK_ACT_NONE, 0, 0)
        var epilogue = ck_epilogue(bias_kind: CK_BIAS_NONE, bias: nil, activation: act.kind, param0: act.p0, param1: act.p1, accumulate: 0, wide: 0)
        ck_depthwise_conv2d(
            Int32(g.batch), Int32(g.outChannels), Int32(g.inSpatial[0]), Int32(g.inSpatial[1]),
            Int32(g.outSpatial[0]), Int32(g.outSpatial[1]), Int32(g.kernel[0]), Int32(g.kernel[1]),
            Int32(g.strides[0]), Int32(g.strides[1]), Int32(g.padsBegin[0]), Int32(g.padsBegin[1]),
            Int32(g.dilations[0]), Int32(g.dilations[1]),
            x.baseAddress, w.baseAddress, bias?.baseAddress, y.baseAddress, &epilogue)
    }

    /// Packs B (k × n; element (p, j) at b[p·rowStride + j·columnStride]) into CKernels' B panels.
    static func packB(k: Int, n: Int, b: UnsafePointer<Float>, rowStride: Int, columnStride: Int, into packed: UnsafeMutablePointer<Float>) {
        ck_sgemm_pack_b(Int32(k), Int32(n), b, rowStride, columnStride, packed)
    }

    /// Fused attention on float32 operands (see `ck_attention`); offsets in floats per broadcast batch entry.
    static func attention(batch: Int, sq: Int, rows: Int, d: Int, sk: Int, dv: Int, maskRowStride: Int, maskColumnStride: Int,
                          q: UnsafePointer<Float>, qOffsets: [Int], kt: UnsafePointer<Float>, ktOffsets: [Int],
                          v: UnsafePointer<Float>, vOffsets: [Int], mask: UnsafePointer<Float>?, maskOffsets: [Int],
                          scale: Float, y: UnsafeMutablePointer<Float>) {
        var shape = ck_attention_shape(batch: Int32(batch), sq: Int32(sq), rows: Int32(rows), d: Int32(d), sk: Int32(sk), dv: Int32(dv),
                                       mask_row_stride: maskRowStride, mask_column_stride: maskColumnStride)
        qOffsets.withUnsafeBufferPointer { qo in
            ktOffsets.withUnsafeBufferPointer { ko in
                vOffsets.withUnsafeBufferPointer { vo in
                    maskOffsets.withUnsafeBufferPointer { mo in
                        ck_attention(&shape, q, qo.baseAddress, kt, ko.baseAddress, v, vo.baseAddress, mask, mo.baseAddress, scale, y)
                    }
                }
            }
        }
    }

    /// Layer normalization of `rows` rows of `length` floats (see `ck_layernorm`).
    static func layerNorm(rows: Int, length: Int, x: UnsafePointer<Float>, scale: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                          epsilon: Float, y: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>?, invStd: UnsafeMutablePointer<Float>?) {
        ck_layernorm(Int32(rows), Int32(length), x, scale, bias, epsilon, y, mean, invStd)
    }

    /// Whether a product of these sizes fits the C API's 32-bit dimensions.
    static func fits(m: Int, n: Int, k: Int) -> Bool {
        m <= Int(Int32.max) && n <= Int(Int32.max) && k <= Int(Int32.max)
    }

    /// Sigmoid or Silu over a float32 buffer in place, with CKernels' vector exp (the standalone Sigmoid kernel and
    /// the fused epilogues both go through here, so fused and unfused graphs compute the same values).
    static func logistic(_ values: UnsafeMutableBufferPointer<Float>, silu: Bool) {
        guard let base = values.baseAddress, !values.isEmpty else { return }
        if silu { ck_silu_inplace(base, values.count) } else { ck_sigmoid_inplace(base, values.count) }
    }

    /// An activation over float32 values in place, with the epilogues' own formulas (nil: the kernel lacks it).
    @discardableResult
    static func activate(_ values: UnsafeMutableBufferPointer<Float>, _ activation: FusedActivation) -> Bool {
        guard let (kind, p0, p1) = kernelActivation(activation) else { return false }
        guard let base = values.baseAddress, !values.isEmpty else { return true }
        ck_activation_inplace(base, values.count, kind, p0, p1)
        return true
    }

    /// values[i] = e^(values[i] − maximum) in place, with the vector exp; returns the sum (a softmax row's).
    static func softmaxExponentials(_ values: UnsafeMutablePointer<Float>, count: Int, maximum: Float) -> Float {
        ck_softmax_exp(values, count, maximum)
    }
}
