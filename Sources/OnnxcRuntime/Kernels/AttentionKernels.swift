import OnnxcCore
import Dispatch

/// onnxc's runtime-only attention op (domain `ai.onnxc`, created by the `fuse-attention` pass).
///
/// `ai.onnxc::Attention(Q, Kt, V[, mask])`, attribute `scale` (float, default 1):
/// Y = Softmax(scale · MatMul(Q, Kt) + mask, axis = -1) · V, i.e. exactly
/// MatMul(Softmax(Add(Mul(MatMul(Q, Kt), scale), mask)), V).
/// - Q: [..., Sq, D]; Kt: [..., D, Sk] — K already transposed, the second operand of the first MatMul;
///   V: [..., Sk, Dv]; all of rank ≥ 2.
/// - mask (optional): additive, broadcastable (NumPy rules) against the scores [..., Sq, Sk]. Like Add, it may
///   also broadcast the scores up: a mask with more rows than a one-row Q repeats that row.
/// - Y: [..., Sq, Dv]; the leading (batch) dims of Q, Kt, V and mask broadcast together, as MatMul's do.
/// - T: float, double; float16 and bfloat16 compute in float.
///
/// The kernel never materializes the [Sq, Sk] score matrix: per batch entry it takes `rowBlock` query rows at a
/// time — scores = Q rows · Kt, then per row scale, + mask, max-subtracted softmax (the Softmax kernel's own
/// `softmaxRow`), then the probabilities · V straight into Y. Both products run through MatMul's
/// `multiplyAccumulate`, so the sums are formed in the same order as the unfused MatMuls, and the row blocks run
/// on all cores. Numerics: equal to the unfused ops within float rounding; a `Div` by c in the original graph
/// becomes a multiplication by 1/c (one rounding). A row whose mask is -inf everywhere gives NaN, as Softmax does
/// (exp(-inf - (-inf))).
enum AttentionKernels {
    static let table: [String: Kernel] = [
        KernelRegistry.key(RuntimeOps.domain, "Attention"): { inputs, context throws(RuntimeError) in
            let q = try context.tensor(inputs, 0), kt = try context.tensor(inputs, 1), v = try context.tensor(inputs, 2)
            let mask = try context.optionalTensor(inputs, 3)
            for operand in [kt, v] + (mask.map { [$0] } ?? []) where operand.dtype != q.dtype {
                throw .invalidArgument("Attention: Q is \(q.dtype.onnxName) but another input is \(operand.dtype.onnxName)")
            }
            let plan = try AttentionPlan(q: q.shape, kt: kt.shape, v: v.shape, mask: mask?.shape)
            let scale = context.attributes.float("scale", 1)
            let wide = try [q, kt, v].map { (t) throws(RuntimeError) in try widenedToFloat(t) ?? t }
            let wideMask = try mask.map { (t) throws(RuntimeError) in try widenedToFloat(t) ?? t }
            let result: Tensor
            switch wide[0].dtype {
            case .float: result = try attend(Float.self, wide[0], wide[1], wide[2], wideMask, plan: plan, scale: Float(scale))
            case .double: result = try attend(Double.self, wide[0], wide[1], wide[2], wideMask, plan: plan, scale: Double(scale))
            default: throw .unsupportedType(op: "Attention", dtype: q.dtype.onnxName)
            }
            return outputs(try narrowed(result, to: q.dtype))
        },
    ]

    /// Query rows per block: the scores of one block (rowBlock × Sk) are all the kernel holds at a time, and one
    /// block is enough rows for the products' 4-row register tiles while Kt and V stay in cache across it. 32
    /// keeps a block's scores in L1/L2 up to Sk ≈ 8k.
    static let rowBlock = 32
}

/// Shapes of one Attention call: the broadcast batch, the per-batch offsets of each operand and the mask's
/// strides over [rows, Sk].
private struct AttentionPlan {
    let sq: Int, d: Int, sk: Int, dv: Int
    /// Rows of Y per batch entry: Sq, or the mask's row count when a one-row Q is broadcast up by it.
    let rows: Int
    let outShape: [Int]
    let qOffsets: [Int], ktOffsets: [Int], vOffsets: [Int], maskOffsets: [Int]
    let maskRowStride: Int, maskColumnStride: Int

    init(q: [Int], kt: [Int], v: [Int], mask: [Int]?) throws(RuntimeError) {
        guard q.count >= 2, kt.count >= 2, v.count >= 2 else {
            throw .invalidShape("Attention: Q, Kt and V must have rank 2 or more, got \(q), \(kt) and \(v)")
        }
        sq = q[q.count - 2]
        d = q[q.count - 1]
        sk = kt[kt.count - 1]
        dv = v[v.count - 1]
        guard kt[kt.count - 2] == d else { throw .invalidShape("Attention: Q \(q) and Kt \(kt) differ in the contracted dim") }
        guard v[v.count - 2] == sk else { throw .invalidShape("Attention: Kt \(kt) and V \(v) differ in the key dim") }
        let m = mask.map { $0.count >= 2 ? $0 : [Int](repeating: 1, count: 2 - $0.count) + $0 } ?? [1, 1]
        let maskRows = m[m.count - 2], maskColumns = m[m.count - 1]
        guard maskColumns == 1 || maskColumns == sk, maskRows == 1 || maskRows == sq || sq == 1 else {
            throw .invalidShape("Attention: mask \(mask ?? []) does not broadcast to the scores [\(sq), \(sk)]")
        }
        rows = sq == 1 ? maskRows : sq
        let batches = [q.dropLast(2), kt.dropLast(2), v.dropLast(2), m.dropLast(2)].map(Array.init)
        let batch = try Broadcast.shape(batches)
        let offsets = Broadcast.offsets(of: batches, target: batch)
        let (qSize, ktSize, vSize, maskSize) = (sq * d, d * sk, sk * dv, maskRows * maskColumns)
        qOffsets = offsets[0].map { $0 * qSize }
        ktOffsets = offsets[1].map { $0 * ktSize }
        vOffsets = offsets[2].map { $0 * vSize }
        maskOffsets = offsets[3].map { $0 * maskSize }
        maskRowStride = maskRows == 1 ? 0 : maskColumns
        maskColumnStride = maskColumns == 1 ? 0 : 1
        outShape = batch + [rows, dv]
    }
}

/// The operands' memory, shared read-only (Y: written in disjoint row blocks) by the worker threads.
private struct AttentionOperands<T>: @unchecked Sendable {
    let q: UnsafePointer<T>, kt: UnsafePointer<T>, v: UnsafePointer<T>, mask: UnsafePointer<T>?
    let y: UnsafeMutablePointer<T>
}

private func attend<T: MatrixElement & ExponentialElement>(_: T.Type, _ q: Tensor, _ kt: Tensor, _ v: Tensor, _ mask: Tensor?,
                                                    plan: AttentionPlan, scale: T) throws(RuntimeError) -> Tensor {
    let out = try Tensor(zeros: q.dtype, shape: plan.outShape)
    guard out.count > 0, plan.sk > 0 else { return out }
    // The float path writes every element; the zeros above are for the double path's accumulation.
    q.withValues(T.self) { pq in
        kt.withValues(T.self) { pk in
            v.withValues(T.self) { pv in
                out.withMutableValues(T.self) { py in
                    guard let pq = pq.baseAddress, let pk = pk.baseAddress, let pv = pv.baseAddress,
                          let py = py.baseAddress else { return }
                    if let mask {
                        mask.withValues(T.self) { pm in
                            run(AttentionOperands(q: pq, kt: pk, v: pv, mask: pm.baseAddress, y: py), plan, scale)
                        }
                    } else {
                        run(AttentionOperands(q: pq, kt: pk, v: pv, mask: nil, y: py), plan, scale)
                    }
                }
            }
        }
    }
    return out
}

/// float32 runs in CKernels (`ck_attention`: Kt and V packed once, row blocks on the pool); double here: every
/// (batch entry, row block) as one task, on all cores when the products are large enough to pay for it.
private func run<T: MatrixElement & ExponentialElement>(_ operands: AttentionOperands<T>, _ plan: AttentionPlan, _ scale: T) {
    if T.self == Float.self, let scale = scale as? Float,
       [plan.qOffsets.count, plan.sq, plan.rows, plan.d, plan.sk, plan.dv].allSatisfy({ $0 <= Int(Int32.max) }) {
        func floats(_ p: UnsafePointer<T>) -> UnsafePointer<Float> { UnsafeRawPointer(p).assumingMemoryBound(to: Float.self) }
        PackedGemm.attention(batch: plan.qOffsets.count, sq: plan.sq, rows: plan.rows, d: plan.d, sk: plan.sk, dv: plan.dv,
                             maskRowStride: plan.maskRowStride, maskColumnStride: plan.maskColumnStride,
                             q: floats(operands.q), qOffsets: plan.qOffsets, kt: floats(operands.kt), ktOffsets: plan.ktOffsets,
                             v: floats(operands.v), vOffsets: plan.vOffsets, mask: operands.mask.map(floats), maskOffsets: plan.maskOffsets,
                             scale: scale, y: UnsafeMutableRawPointer(operands.y).assumingMemoryBound(to: Float.self))
        return
    }
    let blocks = (plan.rows + AttentionKernels.rowBlock - 1) / AttentionKernels.rowBlock
    let tasks = plan.qOffsets.count * blocks
    let work = Double(plan.qOffsets.count) * Double(plan.rows) * Double(plan.sk) * Double(plan.d + plan.dv)
    let task: @Sendable (Int) -> Void = { index in
        let batch = index / blocks, first = (index % blocks) * AttentionKernels.rowBlock
        attendBlock(operands, plan, scale, batch: batch, rows: first..<min(plan.rows, first + AttentionKernels.rowBlock))
    }
    if work < parallelWorkThreshold || processorCount == 1 || tasks == 1 {
        for index in 0..<tasks { task(index) }
    } else {
        DispatchQueue.concurrentPerform(iterations: tasks, execute: task)
    }
}

/// Rows `rows` of Y for one batch entry: scores for the block, then scale, mask and softmax per row, then · V.
private func attendBlock<T: MatrixElement & ExponentialElement>(_ operands: AttentionOperands<T>, _ plan: AttentionPlan, _ scale: T,
                                                         batch: Int, rows: Range<Int>) {
    let (sk, d, dv) = (plan.sk, plan.d, plan.dv)
    let scores = UnsafeMutablePointer<T>.allocate(capacity: rows.count * sk)
    defer { scores.deallocate() }
    scores.initialize(repeating: 0, count: rows.count * sk)
    // A one-row Q broadcast up by the mask reads its one row for every output row.
    let qRow = plan.sq == 1 ? 0 : d
    accumulateProduct(a: operands.q + plan.qOffsets[batch] + rows.lowerBound * qRow, aRow: qRow,
                      b: operands.kt + plan.ktOffsets[batch], bRow: sk, c: scores, m: rows.count, n: sk, k: d)
    for (i, row) in rows.enumerated() {
        let s = scores + i * sk
        if scale != 1 {
            for j in 0..<sk { s[j] *= scale }
        }
        if let mask = operands.mask {
            let m = mask + plan.maskOffsets[batch] + row * plan.maskRowStride
            let step = plan.maskColumnStride
            for j in 0..<sk { s[j] += m[j * step] }
        }
        var maximum = s[0]
        for j in 1..<sk where s[j] > maximum { maximum = s[j] }
        softmaxRow(s, s, count: sk, stride: 1, maximum: maximum)
    }
    accumulateProduct(a: scores, aRow: sk, b: operands.v + plan.vOffsets[batch], bRow: dv,
                      c: operands.y + (batch * plan.rows + rows.lowerBound) * dv, m: rows.count, n: dv, k: sk)
}

/// c += a · b for one block: float32 on the packed GEMM (single-threaded: the blocks already run in parallel), as
/// the unfused MatMuls do; other types through `multiplyAccumulate`.
private func accumulateProduct<T: MatrixElement>(a: UnsafePointer<T>, aRow: Int, b: UnsafePointer<T>, bRow: Int,
                                                 c: UnsafeMutablePointer<T>, m: Int, n: Int, k: Int) {
    guard T.self == Float.self, PackedGemm.fits(m: m, n: n, k: k) else {
        multiplyAccumulate(a: a, aRow: aRow, b: b, bRow: bRow, c: c, m: m, n: n, k: k)
        return
    }
    let af = UnsafeRawPointer(a).assumingMemoryBound(to: Float.self), bf = UnsafeRawPointer(b).assumingMemoryBound(to: Float.self)
    let cf = UnsafeMutableRawPointer(c).assumingMemoryBound(to: Float.self)
    PackedGemm.multiply(m: m, n: n, k: k, a: .init(data: af, rowStride: aRow, columnStride: 1),
                        b: .init(data: bf, rowStride: bRow, columnStride: 1), c: cf, ldc: n, accumulate: true, threaded: false)
}
