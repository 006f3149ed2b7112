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
    }

    /// The epilogue form of `activation`, or nil when the kernel cannot apply it (Sigmoid, Tanh, Silu, Gelu and
    /// GeluTanh need transcendental functions: their callers apply them after the product, as before).
    static func kernelActivation(_ activation: FusedActivation?) -> (kind: ck_activation, p0: Float, p1: Float)? {
        guard let activation else { return (CK_ACT_NONE, 0, 0) }
        let p = activation.parameters
        switch activation.kind {
        case .relu: return (CK_ACT_RELU, 0, 0)
        case .clip: return (CK_ACT_CLIP, p[0], p[1])
        case .leakyRelu: return (CK_ACT_LEAKY_RELU, p[0], 0)
        case .hardSigmoid: return (CK_ACT_HARD_SIGMOID, p[0], p[1])
        case .hardSwish: return (CK_ACT_HARD_SWISH, 0, 0)
        case .sigmoid, .tanh, .silu, .gelu, .geluTanh: return nil
        }
    }

    /// C[m×n] (row-major, rows `ldc` apart) = activation(A·B (+ C's contents if `accumulate`) + bias), with
    /// `activation` one `kernelActivation` accepts (pass nil for none). Runs on the CKernels pool unless `threaded`
    /// is false.
    static func multiply(m: Int, n: Int, k: Int, a: Operand, b: Operand, c: UnsafeMutablePointer<Float>, ldc: Int,
                         bias: Bias = .none, activation: FusedActivation? = nil, accumulate: Bool = false, threaded: Bool = true) {
        guard m > 0, n > 0 else { return }
        let act = kernelActivation(activation) ?? (CK_ACT_NONE, 0, 0)
        var epilogue = ck_epilogue(bias_kind: CK_BIAS_NONE, bias: nil, activation: act.kind, param0: act.p0, param1: act.p1, accumulate: accumulate ? 1 : 0)
        switch bias {
        case .none: break
        case .perRow(let pointer): epilogue.bias_kind = CK_BIAS_ROW; epilogue.bias = pointer
        case .perColumn(let pointer): epilogue.bias_kind = CK_BIAS_COLUMN; epilogue.bias = pointer
        }
        let aOperand = ck_operand(data: a.data, rs: a.rowStride, cs: a.columnStride, packed: 0)
        let bOperand = ck_operand(data: b.data, rs: b.rowStride, cs: b.columnStride, packed: 0)
        if threaded {
            ck_sgemm(Int32(m), Int32(n), Int32(k), aOperand, bOperand, c, ldc, &epilogue)
        } else {
            ck_sgemm_serial(Int32(m), Int32(n), Int32(k), aOperand, bOperand, c, ldc, &epilogue)
        }
    }

    /// Whether a product of these sizes fits the C API's 32-bit dimensions.
    static func fits(m: Int, n: Int, k: Int) -> Bool {
        m <= Int(Int32.max) && n <= Int(Int32.max) && k <= Int(Int32.max)
    }
}
