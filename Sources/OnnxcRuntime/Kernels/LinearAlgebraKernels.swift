import OnnxcCore
import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Linear algebra operators: MatMul, Gemm, MatMulInteger, Einsum, Det.
enum LinearAlgebraKernels {
    static let table: [String: Kernel] = [
        "MatMul": { inputs, context throws(RuntimeError) in outputs(try matMul(inputs, context).product) },
        "Gemm": { inputs, context throws(RuntimeError) in outputs(try gemm(inputs, context).product) },
        "MatMulInteger": { inputs, context throws(RuntimeError) in
            let a = try context.tensor(inputs, 0), b = try context.tensor(inputs, 1)
            let plan = try MatMulPlan(a.shape, b.shape, op: "MatMulInteger")
            let aZero = try zeroPoints(try context.optionalTensor(inputs, 2), like: a, count: plan.m, what: "a_zero_point (per row)")
            let bZero = try zeroPoints(try context.optionalTensor(inputs, 3), like: b, count: plan.n, what: "b_zero_point (per column)")
            // Shift by the zero points into int32 once; the product then runs through the ordinary int32 kernel.
            let a32 = try shiftedInt32(a, zero: aZero, rows: plan.m, perRow: true)
            let b32 = try shiftedInt32(b, zero: bZero, rows: plan.n, perRow: false)
            return outputs(try BatchedMatMul(a: a32, b: b32, plan: plan).visit(Int32.self))
        },
        "Einsum": { inputs, context throws(RuntimeError) in
            let equation = context.attributes.string("equation", "")
            var operands: [Tensor] = []
            for i in inputs.indices { operands.append(try context.tensor(inputs, i)) }
            guard let first = operands.first else { throw .invalidArgument("Einsum needs at least one input") }
            guard operands.allSatisfy({ $0.dtype == first.dtype }) else { throw .invalidArgument("Einsum: inputs must share one element type") }
            let plan = try EinsumPlan(equation: equation, shapes: operands.map(\.shape))
            let wide = try operands.map { (t) throws(RuntimeError) in try widenedToFloat(t) ?? t }
            let result = try dispatchMatrix(wide[0].dtype, op: "Einsum", EinsumVisitor(operands: wide, plan: plan))
            return outputs(try narrowed(result, to: first.dtype))
        },
        "Det": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            guard x.rank >= 2, x.shape[x.rank - 1] == x.shape[x.rank - 2] else {
                throw .invalidShape("Det: input must be [..., M, M], got \(x.shape)")
            }
            let wide = try widenedToFloat(x) ?? x
            let result = try dispatchMatrix(wide.dtype, op: "Det", DetVisitor(x: wide))
            return outputs(try narrowed(result, to: x.dtype))
        },
    ]

    /// MatMul of the node's inputs A and B; FusedMatMul (`FusedKernels`) starts from the same product and passes its
    /// bias (one value per column) and activation. The float32 path applies both in the GEMM's epilogue when it can
    /// (`epilogueApplied`); otherwise the product comes back without them and the caller applies them.
    static func matMul(_ inputs: [Value?], _ context: KernelContext, bias: Tensor? = nil,
                       activation: FusedActivation? = nil) throws(RuntimeError) -> (product: Tensor, epilogueApplied: Bool) {
        let op = context.node.opType
        let a = try context.tensor(inputs, 0), b = try context.tensor(inputs, 1)
        guard a.dtype == b.dtype else { throw .invalidArgument("\(op): A is \(a.dtype.onnxName) but B is \(b.dtype.onnxName)") }
        if b.packing != nil { throw .invalidArgument("\(op): weights packed at compile time cannot run this product (A \(a.shape)); recompile the model") }
        let plan = try MatMulPlan(a.shape, b.shape, op: op)
        if a.dtype == .float, let result = try packedMatMul(a, b, plan: plan, bias: bias, activation: activation) {
            return result
        }
        let product = try viaFloat(a, b) { (x, y) throws(RuntimeError) in
            try dispatchMatrix(x.dtype, op: op, BatchedMatMul(a: x, b: y, plan: plan))
        }
        return (product, false)
    }

    /// float32 MatMul on the packed GEMM: one tall product when every batch shares B (x · W), else one product per
    /// batch. Products with fewer than 4 rows stay on the Swift vector × matrix loop (packing B would cost as much
    /// as the product). nil: not for this path.
    private static func packedMatMul(_ a: Tensor, _ b: Tensor, plan: MatMulPlan, bias: Tensor?,
                                     activation: FusedActivation?) throws(RuntimeError) -> (product: Tensor, epilogueApplied: Bool)? {
        let (m, k, n) = (plan.m, plan.k, plan.n)
        let sharedB = plan.bOffsets.allSatisfy { $0 == plan.bOffsets[0] }
            && plan.aOffsets.enumerated().allSatisfy { $0.element == $0.offset * m * k }
        let rows = sharedB ? m * plan.aOffsets.count : m
        guard k > 0, rows >= 4, PackedGemm.fits(m: rows, n: n, k: k) else { return nil }
        let out = try Tensor(zeros: .float, shape: plan.outShape)
        guard out.count > 0 else { return (out, false) }
        // The epilogue takes the bias only as one value per column, and the activation only if the kernel has it.
        let biasFits = bias.map { $0.dtype == .float && $0.count == n && $0.rank <= plan.outShape.count && ($0.rank == 0 || $0.shape.last == n) } ?? true
        let applied = biasFits && PackedGemm.kernelActivation(activation) != nil
        let biasValues = applied ? bias?.array(Float.self) : nil
        a.withValues(Float.self) { pa in
            b.withValues(Float.self) { pb in
                out.withMutableValues(Float.self) { po in
                    biasValues.withOptionalBuffer { bb in
                        guard let pa = pa.baseAddress, let pb = pb.baseAddress, let po = po.baseAddress else { return }
                        let columnBias: PackedGemm.Bias = bb?.baseAddress.map { .perColumn($0) } ?? .none
                        let act = applied ? activation : nil
                        if sharedB {
                            PackedGemm.multiply(m: rows, n: n, k: k, a: .init(data: pa, rowStride: k, columnStride: 1),
                                                b: .init(data: pb + plan.bOffsets[0], rowStride: n, columnStride: 1),
                                                c: po, ldc: n, bias: columnBias, activation: act)
                            return
                        }
                        for i in plan.aOffsets.indices {
                            PackedGemm.multiply(m: m, n: n, k: k, a: .init(data: pa + plan.aOffsets[i], rowStride: k, columnStride: 1),
                                                b: .init(data: pb + plan.bOffsets[i], rowStride: n, columnStride: 1),
                                                c: po + i * m * n, ldc: n, bias: columnBias, activation: act)
                        }
                    }
                }
            }
        }
        return (out, applied)
    }

    /// Gemm of the node's inputs A, B and optional C, then (FusedGemm) `activation`: the float32 path applies it in
    /// the GEMM's epilogue when it can (`epilogueApplied`); otherwise the caller applies it.
    static func gemm(_ inputs: [Value?], _ context: KernelContext,
                     activation: FusedActivation? = nil) throws(RuntimeError) -> (product: Tensor, epilogueApplied: Bool) {
        let op = context.node.opType
        let a = try context.tensor(inputs, 0), b = try context.tensor(inputs, 1)
        let c = try context.optionalTensor(inputs, 2)
        guard a.rank == 2, b.rank == 2 else { throw .invalidShape("\(op): A and B must be 2-D, got \(a.shape) and \(b.shape)") }
        guard a.dtype == b.dtype, c.map({ $0.dtype == a.dtype }) ?? true else {
            throw .invalidArgument("\(op): A, B and C must share one element type")
        }
        if b.packing != nil { throw .invalidArgument("\(op): weights packed at compile time cannot run this product (A \(a.shape)); recompile the model") }
        let attributes = context.attributes
        let gemm = GemmOp(
            transA: attributes.int("transA", 0) != 0, transB: attributes.int("transB", 0) != 0,
            alpha: Double(attributes.float("alpha", 1)), beta: Double(attributes.float("beta", 1)))
        if a.dtype == .float, let result = try packedGemm(a, b, c, gemm, activation: activation) {
            return result
        }
        return (try plainGemm(a, b, c, gemm, op: op), false)
    }

    private static func plainGemm(_ a: Tensor, _ b: Tensor, _ c: Tensor?, _ gemm: GemmOp, op: String) throws(RuntimeError) -> Tensor {
        if let c {
            return try viaFloat(a, b, c) { (x, y, z) throws(RuntimeError) in
                try dispatchMatrix(x.dtype, op: op, GemmVisitor(a: x, b: y, c: z, op: gemm))
            }
        }
        return try viaFloat(a, b) { (x, y) throws(RuntimeError) in
            try dispatchMatrix(x.dtype, op: op, GemmVisitor(a: x, b: y, c: nil, op: gemm))
        }
    }

    /// float32 Gemm on the packed GEMM when alpha is 1 and C is absent or, with beta 1, a row vector (bias per
    /// column), a column vector (bias per row) or a full [M, N] matrix (accumulated into). nil: the generic path.
    private static func packedGemm(_ a: Tensor, _ b: Tensor, _ c: Tensor?, _ op: GemmOp,
                                   activation: FusedActivation?) throws(RuntimeError) -> (product: Tensor, epilogueApplied: Bool)? {
        let (m, k) = op.transA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (kb, n) = op.transB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard k == kb, k > 0, m > 0, n > 0, op.alpha == 1, PackedGemm.fits(m: m, n: n, k: k) else { return nil }
        enum Addend { case none, perRow, perColumn, full }
        var addend = Addend.none
        if let c {
            guard c.dtype == .float, op.beta == 1, c.rank <= 2 else { return nil }
            let shape = Array(repeating: 1, count: 2 - c.rank) + c.shape
            switch (shape[0], shape[1]) {
            case (m, n): addend = .full
            case (1, n): addend = .perColumn
            case (m, 1): addend = .perRow
            default: return nil
            }
        }
        let out: Tensor
        if addend == .full, let c {
            out = try Tensor(zeros: .float, shape: [m, n])
            c.withValues(Float.self) { source in
                out.withMutableValues(Float.self) { target in
                    guard let from = source.baseAddress, let to = target.baseAddress else { return }
                    to.update(from: from, count: m * n)
                }
            }
        } else {
            out = try Tensor(zeros: .float, shape: [m, n])
        }
        let fused = PackedGemm.kernelActivation(activation) != nil
        let bias = addend == .perRow || addend == .perColumn ? c?.array(Float.self) : nil
        a.withValues(Float.self) { pa in
            b.withValues(Float.self) { pb in
                out.withMutableValues(Float.self) { po in
                    bias.withOptionalBuffer { bb in
                        guard let pa = pa.baseAddress, let pb = pb.baseAddress, let po = po.baseAddress else { return }
                        var epilogueBias = PackedGemm.Bias.none
                        if let pointer = bb?.baseAddress { epilogueBias = addend == .perRow ? .perRow(pointer) : .perColumn(pointer) }
                        PackedGemm.multiply(
                            m: m, n: n, k: k,
                            a: .init(data: pa, rowStride: op.transA ? 1 : k, columnStride: op.transA ? m : 1),
                            b: .init(data: pb, rowStride: op.transB ? 1 : n, columnStride: op.transB ? k : 1),
                            c: po, ldc: n, bias: epilogueBias, activation: fused ? activation : nil,
                            accumulate: addend == .full)
                    }
                }
            }
        }
        return (out, fused)
    }
}

extension Optional {
    /// The array's buffer, or nil, for the duration of `body`.
    fileprivate func withOptionalBuffer<T, R>(_ body: (UnsafeBufferPointer<T>?) -> R) -> R where Wrapped == [T] {
        switch self {
        case .some(let array): return array.withUnsafeBufferPointer { body($0) }
        case .none: return body(nil)
        }
    }
}

// MARK: - MatMul

/// Shapes of an N-D MatMul with NumPy semantics: 1-D operands are promoted (and the added dim dropped), batch dims broadcast.
private struct MatMulPlan {
    let m: Int, k: Int, n: Int
    let outShape: [Int]
    /// Per output batch, the element offset of its A and B matrices.
    let aOffsets: [Int], bOffsets: [Int]

    init(_ aShape: [Int], _ bShape: [Int], op: String) throws(RuntimeError) {
        guard !aShape.isEmpty, !bShape.isEmpty else { throw .invalidShape("\(op): operands must not be scalars, got \(aShape) and \(bShape)") }
        let a2 = aShape.count == 1 ? [1] + aShape : aShape
        let b2 = bShape.count == 1 ? bShape + [1] : bShape
        m = a2[a2.count - 2]
        k = a2[a2.count - 1]
        n = b2[b2.count - 1]
        guard b2[b2.count - 2] == k else { throw .invalidShape("\(op): inner dimensions differ: \(aShape) × \(bShape)") }
        let aBatch = Array(a2.dropLast(2)), bBatch = Array(b2.dropLast(2))
        let batch = try Broadcast.shape([aBatch, bBatch])
        let offsets = Broadcast.offsets(of: [aBatch, bBatch], target: batch)
        let (aSize, bSize) = (m * k, k * n)
        aOffsets = offsets[0].map { $0 * aSize }
        bOffsets = offsets[1].map { $0 * bSize }
        var shape = batch
        if aShape.count > 1 { shape.append(m) }
        if bShape.count > 1 { shape.append(n) }
        outShape = shape
    }
}

private struct BatchedMatMul: MatrixVisitor {
    let a: Tensor, b: Tensor, plan: MatMulPlan

    func visit<T: MatrixElement>(_: T.Type) throws(RuntimeError) -> Tensor {
        let out = try Tensor(zeros: a.dtype, shape: plan.outShape)
        let (m, k, n) = (plan.m, plan.k, plan.n)
        guard out.count > 0, k > 0 else { return out }
        a.withValues(T.self) { pa in
            b.withValues(T.self) { pb in
                out.withMutableValues(T.self) { po in
                    guard let pa = pa.baseAddress, let pb = pb.baseAddress, let po = po.baseAddress else { return }
                    // One B for every batch and A's batches back to back (x · W with a 2-D weight): one tall product.
                    let sharedB = plan.bOffsets.allSatisfy { $0 == plan.bOffsets[0] }
                    if sharedB, plan.aOffsets.enumerated().allSatisfy({ $0.element == $0.offset * m * k }) {
                        let job = GemmJob(a: pa, aRow: k, aCol: 1, b: pb + plan.bOffsets[0], bRow: n, bCol: 1, c: po)
                        multiply([job], m: m * plan.aOffsets.count, n: n, k: k)
                        return
                    }
                    let jobs = plan.aOffsets.indices.map { i in
                        GemmJob(a: pa + plan.aOffsets[i], aRow: k, aCol: 1, b: pb + plan.bOffsets[i], bRow: n, bCol: 1, c: po + i * m * n)
                    }
                    multiply(jobs, m: m, n: n, k: k)
                }
            }
        }
        return out
    }
}

/// One C = A·B product on raw pointers; strides allow transposed operands without copying.
private struct GemmJob<T: MatrixElement>: @unchecked Sendable {
    let a: UnsafePointer<T>, aRow: Int, aCol: Int
    let b: UnsafePointer<T>, bRow: Int, bCol: Int
    let c: UnsafeMutablePointer<T>
}

/// Read-only packed data shared by the worker threads of one product.
private struct SharedPointer<T>: @unchecked Sendable {
    let pointer: UnsafePointer<T>
}

/// Blocking: B panel width for the generic kernel, depth block (a block of packed B stays in L1/L2 while A rows
/// stream over it), and rows of C computed together.
private let panelColumns = 256
private let depthBlock = 256
private let rowBlock = 4

/// Multiply-adds below which a product stays on one thread: starting the workers costs about as much as ~2M
/// multiply-adds on one core (shared with the attention kernel, which splits its work the same way).
let parallelWorkThreshold: Double = 2_000_000

let processorCount: Int = {
    #if canImport(Glibc) || canImport(Darwin)
    return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    #else
    return 1
    #endif
}()

/// C += A·B for one product of dense row-major operands on raw pointers (A's rows `aRow` elements apart, B's rows
/// `bRow` apart, C dense m × n), on the calling thread only: for kernels that run many small products side by side
/// themselves (the attention kernel's row blocks), with the same blocking and the same summation order as MatMul.
func multiplyAccumulate<T: MatrixElement>(a: UnsafePointer<T>, aRow: Int, b: UnsafePointer<T>, bRow: Int,
                                          c: UnsafeMutablePointer<T>, m: Int, n: Int, k: Int) {
    multiply([GemmJob(a: a, aRow: aRow, aCol: 1, b: b, bRow: bRow, bCol: 1, c: c)], m: m, n: n, k: k, threaded: false)
}

/// Computes C += A·B for every job (C starts zeroed). B is packed once per distinct matrix (broadcast batches share
/// one) so the inner loops run over contiguous memory; large products run on all cores (unless `threaded` is
/// false), split by batch and row blocks.
private func multiply<T: MatrixElement>(_ jobs: [GemmJob<T>], m: Int, n: Int, k: Int, threaded: Bool = true) {
    guard m > 0, n > 0, k > 0, !jobs.isEmpty else { return }
    if m < rowBlock, jobs.allSatisfy({ $0.bCol == 1 }) {
        multiplyFewRows(jobs, m: m, n: n, k: k, threaded: threaded)
        return
    }
    var packedIndex: [Int] = []
    var packedStarts: [UnsafePointer<T>: Int] = [:]
    var distinct: [GemmJob<T>] = []
    for job in jobs {
        if let found = packedStarts[job.b] {
            packedIndex.append(found)
        } else {
            packedStarts[job.b] = distinct.count
            packedIndex.append(distinct.count)
            distinct.append(job)
        }
    }
    let panelOf = packedIndex
    if T.self == Float.self {
        // float32: register-tiled micro-kernel on B packed in slivers of `sliverWidth` columns.
        let floatJobs = jobs.map { unsafeBitCast($0, to: GemmJob<Float>.self) }
        let slivers = (n + sliverWidth - 1) / sliverWidth
        let packedSize = slivers * sliverWidth * k
        let packed = UnsafeMutablePointer<Float>.allocate(capacity: distinct.count * packedSize)
        defer { packed.deallocate() }
        for (d, job) in distinct.enumerated() {
            let b = unsafeBitCast(job, to: GemmJob<Float>.self)
            packSlivers(b, into: packed + d * packedSize, n: n, k: k)
        }
        let shared = SharedPointer(pointer: UnsafePointer(packed))
        forEachRowChunk(jobs: jobs.count, m: m, n: n, k: k, threaded: threaded) { jobIndex, rows in
            multiplyRowsFloat(floatJobs[jobIndex], shared.pointer + panelOf[jobIndex] * packedSize, rows: rows, n: n, k: k)
        }
        return
    }
    let panelSize = k * n
    let packed = UnsafeMutablePointer<T>.allocate(capacity: distinct.count * panelSize)
    defer { packed.deallocate() }
    for (d, job) in distinct.enumerated() {
        // Layout: for each column panel [jc, jc+nc), a k × nc row-major block.
        let base = packed + d * panelSize
        var jc = 0
        while jc < n {
            let nc = min(panelColumns, n - jc)
            let panel = base + jc * k
            for p in 0..<k {
                let src = job.b + p * job.bRow + jc * job.bCol
                let dst = panel + p * nc
                if job.bCol == 1 {
                    dst.update(from: src, count: nc)
                } else {
                    for j in 0..<nc { dst[j] = src[j * job.bCol] }
                }
            }
            jc += nc
        }
    }
    let packedB = SharedPointer(pointer: UnsafePointer(packed))
    forEachRowChunk(jobs: jobs.count, m: m, n: n, k: k, threaded: threaded) { jobIndex, rows in
        multiplyRows(jobs[jobIndex], packedB.pointer + panelOf[jobIndex] * panelSize, rows: rows, n: n, k: k)
    }
}

/// Products with fewer rows than a tile (vector × matrix): packing B would cost as much as the product, so each
/// row streams B's rows directly; large ones split the columns across cores.
private func multiplyFewRows<T: MatrixElement>(_ jobs: [GemmJob<T>], m: Int, n: Int, k: Int, threaded: Bool) {
    let work = Double(m) * Double(n) * Double(k) * Double(jobs.count)
    let columnChunk = 256
    let chunks = (n + columnChunk - 1) / columnChunk
    let tasks = !threaded || work < parallelWorkThreshold || processorCount == 1 ? 1 : jobs.count * chunks
    let run: @Sendable (Int) -> Void = { task in
        let (jobRange, columns): (Range<Int>, Range<Int>) = tasks == 1
            ? (0..<jobs.count, 0..<n)
            : (task / chunks..<(task / chunks + 1), (task % chunks) * columnChunk..<min(n, (task % chunks + 1) * columnChunk))
        for jobIndex in jobRange {
            let job = jobs[jobIndex]
            for i in 0..<m {
                let a = job.a + i * job.aRow, c = job.c + i * n
                for p in 0..<k {
                    let x = a[p * job.aCol], row = job.b + p * job.bRow
                    for j in columns { c[j] = T.multiplyAdd(c[j], x, row[j]) }
                }
            }
        }
    }
    if tasks == 1 {
        run(0)
    } else {
        DispatchQueue.concurrentPerform(iterations: tasks, execute: run)
    }
}

/// Splits `jobs` products of m rows into tasks (job, row range), enough to keep every core busy, and runs them
/// (concurrently when the product is large enough to pay for the threads).
private func forEachRowChunk(jobs: Int, m: Int, n: Int, k: Int, threaded: Bool,
                             _ body: @escaping @Sendable (Int, Range<Int>) -> Void) {
    let rowChunks = (m + rowBlock - 1) / rowBlock
    let work = Double(m) * Double(n) * Double(k) * Double(jobs)
    let threads = !threaded || work < parallelWorkThreshold ? 1 : processorCount
    let chunksPerJob = threads == 1 ? 1 : max(1, min(rowChunks, (threads * 4 + jobs - 1) / jobs))
    let blocksPerChunk = (rowChunks + chunksPerJob - 1) / chunksPerJob
    let taskCount = jobs * chunksPerJob
    let run: @Sendable (Int) -> Void = { task in
        let jobIndex = task / chunksPerJob, chunk = task % chunksPerJob
        let rowStart = chunk * blocksPerChunk * rowBlock
        let rowEnd = min(m, rowStart + blocksPerChunk * rowBlock)
        guard rowStart < rowEnd else { return }
        body(jobIndex, rowStart..<rowEnd)
    }
    if threads == 1 || taskCount == 1 {
        for task in 0..<taskCount { run(task) }
    } else {
        DispatchQueue.concurrentPerform(iterations: taskCount, execute: run)
    }
}

private let sliverWidth = 8
private typealias Sliver = SIMD8<Float>

/// B as consecutive slivers of `sliverWidth` columns, each k rows of `sliverWidth` floats (the last zero-padded).
private func packSlivers(_ job: GemmJob<Float>, into packed: UnsafeMutablePointer<Float>, n: Int, k: Int) {
    let slivers = (n + sliverWidth - 1) / sliverWidth
    for s in 0..<slivers {
        let first = s * sliverWidth, width = min(sliverWidth, n - first)
        let dst = packed + s * sliverWidth * k
        for p in 0..<k {
            let src = job.b + p * job.bRow + first * job.bCol
            let row = dst + p * sliverWidth
            for j in 0..<width { row[j] = src[j * job.bCol] }
            for j in width..<sliverWidth { row[j] = 0 }
        }
    }
}

/// Rows `rows` of C += A·B for float32: a 4 × 8 tile of C stays in SIMD registers over a depth block, A is read
/// in row blocks that stay in cache while every sliver of B passes over them.
private func multiplyRowsFloat(_ job: GemmJob<Float>, _ packed: UnsafePointer<Float>, rows: Range<Int>, n: Int, k: Int) {
    let slivers = (n + sliverWidth - 1) / sliverWidth
    let rowsPerBlock = 64
    var pc = 0
    while pc < k {
        let kc = min(depthBlock, k - pc)
        var ic = rows.lowerBound
        while ic < rows.upperBound {
            let icEnd = min(rows.upperBound, ic + rowsPerBlock)
            for s in 0..<slivers {
                let b = UnsafeRawPointer(packed + s * sliverWidth * k + pc * sliverWidth)
                let first = s * sliverWidth, width = min(sliverWidth, n - first)
                @inline(__always) func addTile(_ acc: Sliver, row: Int, _ isLive: Bool) {
                    guard isLive else { return }
                    let c = job.c + row * n + first
                    if width == sliverWidth {
                        let raw = UnsafeMutableRawPointer(c)
                        raw.storeBytes(of: raw.loadUnaligned(as: Sliver.self) + acc, as: Sliver.self)
                    } else {
                        for j in 0..<width { c[j] += acc[j] }
                    }
                }
                var i = ic
                while i < icEnd {
                    let live = min(rowBlock, icEnd - i)
                    // Rows past the end read the last live row again; their results are dropped.
                    let a0 = job.a + i * job.aRow + pc * job.aCol
                    let a1 = live > 1 ? a0 + job.aRow : a0
                    let a2 = live > 2 ? a0 + 2 * job.aRow : a0
                    let a3 = live > 3 ? a0 + 3 * job.aRow : a0
                    var c0 = Sliver(), c1 = Sliver(), c2 = Sliver(), c3 = Sliver()
                    let step = job.aCol
                    for p in 0..<kc {
                        let y = b.loadUnaligned(fromByteOffset: p * sliverWidth * 4, as: Sliver.self)
                        c0 += Sliver(repeating: a0[p * step]) * y
                        c1 += Sliver(repeating: a1[p * step]) * y
                        c2 += Sliver(repeating: a2[p * step]) * y
                        c3 += Sliver(repeating: a3[p * step]) * y
                    }
                    addTile(c0, row: i, live > 0)
                    addTile(c1, row: i + 1, live > 1)
                    addTile(c2, row: i + 2, live > 2)
                    addTile(c3, row: i + 3, live > 3)
                    i += rowBlock
                }
            }
            ic = icEnd
        }
        pc += kc
    }
}

/// Rows `rows` of C += A·B with B packed in panels.
@inline(__always)
private func multiplyRows<T: MatrixElement>(_ job: GemmJob<T>, _ packed: UnsafePointer<T>, rows: Range<Int>, n: Int, k: Int) {
    var jc = 0
    while jc < n {
        let nc = min(panelColumns, n - jc)
        let panel = packed + jc * k
        var pc = 0
        while pc < k {
            let kc = min(depthBlock, k - pc)
            var i = rows.lowerBound
            while i + rowBlock <= rows.upperBound {
                let a0 = job.a + i * job.aRow, a1 = a0 + job.aRow, a2 = a1 + job.aRow, a3 = a2 + job.aRow
                let c0 = job.c + i * n + jc, c1 = c0 + n, c2 = c1 + n, c3 = c2 + n
                for p in pc..<(pc + kc) {
                    let x0 = a0[p * job.aCol], x1 = a1[p * job.aCol], x2 = a2[p * job.aCol], x3 = a3[p * job.aCol]
                    let bRow = panel + p * nc
                    for j in 0..<nc {
                        let y = bRow[j]
                        c0[j] = T.multiplyAdd(c0[j], x0, y)
                        c1[j] = T.multiplyAdd(c1[j], x1, y)
                        c2[j] = T.multiplyAdd(c2[j], x2, y)
                        c3[j] = T.multiplyAdd(c3[j], x3, y)
                    }
                }
                i += rowBlock
            }
            while i < rows.upperBound {
                let a0 = job.a + i * job.aRow
                let c0 = job.c + i * n + jc
                for p in pc..<(pc + kc) {
                    let x0 = a0[p * job.aCol]
                    let bRow = panel + p * nc
                    for j in 0..<nc { c0[j] = T.multiplyAdd(c0[j], x0, bRow[j]) }
                }
                i += 1
            }
            pc += kc
        }
        jc += nc
    }
}

// MARK: - Gemm

private struct GemmOp {
    let transA: Bool, transB: Bool, alpha: Double, beta: Double
}

private struct GemmVisitor: MatrixVisitor {
    let a: Tensor, b: Tensor, c: Tensor?, op: GemmOp

    func visit<T: MatrixElement>(_: T.Type) throws(RuntimeError) -> Tensor {
        let (m, k) = op.transA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (kb, n) = op.transB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard k == kb else { throw .invalidShape("Gemm: inner dimensions differ: A\(op.transA ? "ᵀ" : "") \(a.shape), B\(op.transB ? "ᵀ" : "") \(b.shape)") }
        let out = try Tensor(zeros: a.dtype, shape: [m, n])
        var cStrides = [0, 0]
        if let c {
            guard c.rank <= 2 else { throw .invalidShape("Gemm: C must have rank <= 2, got \(c.shape)") }
            let shape = Array(repeating: 1, count: 2 - c.rank) + c.shape
            guard (shape[0] == 1 || shape[0] == m), (shape[1] == 1 || shape[1] == n) else {
                throw .invalidShape("Gemm: C \(c.shape) cannot be broadcast to [\(m), \(n)]")
            }
            cStrides = Broadcast.strides(of: shape, broadcastTo: [m, n])
        }
        let alpha = T.from(op.alpha), beta = T.from(op.beta)
        let exactScale = T.from(op.alpha).asDouble == op.alpha && T.from(op.beta).asDouble == op.beta
        a.withValues(T.self) { pa in
            b.withValues(T.self) { pb in
                out.withMutableValues(T.self) { po in
                    guard let pa = pa.baseAddress, let pb = pb.baseAddress, let pc = po.baseAddress, k > 0 else { return }
                    let job = GemmJob(
                        a: pa, aRow: op.transA ? 1 : k, aCol: op.transA ? m : 1,
                        b: pb, bRow: op.transB ? 1 : n, bCol: op.transB ? k : 1, c: pc)
                    multiply([job], m: m, n: n, k: k)
                }
                let add: (UnsafeBufferPointer<T>?) -> Void = { pcIn in
                    out.withMutableValues(T.self) { po in
                        for i in 0..<m {
                            for j in 0..<n {
                                let o = i * n + j
                                let bias = pcIn.map { $0[i * cStrides[0] + j * cStrides[1]] }
                                if exactScale || T.isFloatingPoint {
                                    var v = op.alpha == 1 ? po[o] : T.product(alpha, po[o])
                                    if let bias { v = T.multiplyAdd(v, beta, bias) }
                                    po[o] = v
                                } else {
                                    // Integer outputs with fractional alpha/beta: scale in Double, as the reference does.
                                    po[o] = T.from(op.alpha * po[o].asDouble + op.beta * (bias?.asDouble ?? 0))
                                }
                            }
                        }
                    }
                }
                if let c { c.withValues(T.self) { add($0) } } else if op.alpha != 1 { add(nil) }
            }
        }
        return out
    }
}

// MARK: - MatMulInteger

/// Zero points as Int32: nil (zero), one value, or `count` values (per row of A / per column of B).
private func zeroPoints(_ zero: Tensor?, like x: Tensor, count: Int, what: String) throws(RuntimeError) -> [Int32] {
    guard x.dtype == .uint8 || x.dtype == .int8 else { throw .unsupportedType(op: "MatMulInteger", dtype: x.dtype.onnxName) }
    guard let zero else { return [0] }
    guard zero.dtype == x.dtype else { throw .invalidArgument("MatMulInteger: \(what) must have the element type of its operand") }
    guard zero.count == 1 || zero.count == count else { throw .invalidShape("MatMulInteger: \(what) has \(zero.count) values, expected 1 or \(count)") }
    return zero.doubles().map { Int32($0) }
}

/// x - zero as int32; per-row zero points index the second-last dim (A), per-column ones the last (B).
private func shiftedInt32(_ x: Tensor, zero: [Int32], rows: Int, perRow: Bool) throws(RuntimeError) -> Tensor {
    let out = try Tensor(zeros: .int32, shape: x.shape)
    let last = x.shape.last ?? 1
    out.withMutableValues(Int32.self) { dst in
        x.withBytes { raw in
            for i in 0..<dst.count {
                let v = x.dtype == .int8 ? Int32(Int8(bitPattern: raw[i])) : Int32(raw[i])
                let z: Int32
                if zero.count == 1 {
                    z = zero[0]
                } else if perRow {
                    z = x.rank >= 2 ? zero[(i / last) % rows] : zero[0]
                } else {
                    z = zero[i % last]
                }
                dst[i] = v &- z
            }
        }
    }
    return out
}

// MARK: - Einsum

/// A parsed Einsum equation: each operand's labels (ellipsis dims become extra labels), the output labels,
/// the size of every label, and per operand the stride along each label (repeated labels add their strides:
/// that walks the diagonal).
private struct EinsumPlan {
    var sizes: [Int] = []
    var outputLabels: [Int] = []
    var operandStrides: [[Int]] = []
    var outShape: [Int] = []
    /// Set when the equation is a batched matrix product of two operands (see `MatMulForm`).
    var matmulForm: MatMulForm? = nil

    /// Two operands whose labels are batch (both and output), m (first and output), n (second and output) or
    /// k (both, summed): the product runs as a packed MatMul on operands gathered to [batch, m, k] and [batch, k, n].
    struct MatMulForm {
        let batch: [Int], m: [Int], n: [Int], k: [Int]
    }

    init(equation: String, shapes: [[Int]]) throws(RuntimeError) {
        let cleaned = equation.filter { !$0.isWhitespace }
        let parts = cleaned.split(separator: "->", omittingEmptySubsequences: false).map(String.init)
        guard parts.count <= 2 else { throw .invalidArgument("Einsum: equation \"\(equation)\" has more than one ->") }
        let inputs = parts[0].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard inputs.count == shapes.count else {
            throw .invalidArgument("Einsum: equation \"\(equation)\" names \(inputs.count) operands but \(shapes.count) were given")
        }
        // Ellipsis rank: the most dims any operand's "..." covers.
        var ellipsisRank = 0
        var parsed: [(labels: [Character], hasEllipsis: Bool)] = []
        for (term, shape) in zip(inputs, shapes) {
            let hasEllipsis = term.contains("...")
            let letters = Array(term.replacing("...", with: ""))
            guard letters.allSatisfy({ $0.isLetter && $0.isASCII }) else { throw .invalidArgument("Einsum: bad term \"\(term)\"") }
            if hasEllipsis {
                guard shape.count >= letters.count else { throw .invalidShape("Einsum: term \"\(term)\" has more labels than dims \(shape)") }
                ellipsisRank = max(ellipsisRank, shape.count - letters.count)
            } else {
                guard shape.count == letters.count else { throw .invalidShape("Einsum: term \"\(term)\" does not match shape \(shape)") }
            }
            parsed.append((Array(term), hasEllipsis))
        }
        // Label ids: ellipsis dims are 0..<ellipsisRank, letters follow.
        var letterIds: [Character: Int] = [:]
        var counts: [Int: Int] = [:]
        func id(_ c: Character) -> Int {
            if let v = letterIds[c] { return v }
            let v = ellipsisRank + letterIds.count
            letterIds[c] = v
            return v
        }
        var operandLabels: [[Int]] = []
        for (term, shape) in zip(inputs, shapes) {
            var labels: [Int] = []
            var rest = Substring(term)
            while let c = rest.first {
                if rest.hasPrefix("...") {
                    let covered = shape.count - term.replacing("...", with: "").count
                    labels += ((ellipsisRank - covered)..<ellipsisRank).map { $0 }
                    rest = rest.dropFirst(3)
                } else {
                    labels.append(id(c))
                    rest = rest.dropFirst()
                }
            }
            for l in Set(labels) { counts[l, default: 0] += 1 }
            for l in labels where labels.filter({ $0 == l }).count > 1 { counts[l, default: 0] += 1 }
            operandLabels.append(labels)
        }
        let labelCount = ellipsisRank + letterIds.count
        // -1: not yet seen. Size-1 dims broadcast against the others.
        sizes = [Int](repeating: -1, count: labelCount)
        for (labels, shape) in zip(operandLabels, shapes) {
            for (l, dim) in zip(labels, shape) {
                if dim == 1 && sizes[l] != -1 { continue }
                if sizes[l] == -1 || sizes[l] == 1 {
                    sizes[l] = dim
                } else if sizes[l] != dim {
                    throw .invalidShape("Einsum: dimension sizes disagree for a label in \"\(equation)\" (\(sizes[l]) vs \(dim))")
                }
            }
        }
        sizes = sizes.map { $0 == -1 ? 1 : $0 }
        if parts.count == 2 {
            var seen = Set<Int>()
            var rest = Substring(parts[1])
            while let c = rest.first {
                if rest.hasPrefix("...") {
                    outputLabels += Array(0..<ellipsisRank)
                    rest = rest.dropFirst(3)
                    continue
                }
                guard let l = letterIds[c] else { throw .invalidArgument("Einsum: output label \(c) does not appear in the inputs") }
                guard seen.insert(l).inserted else { throw .invalidArgument("Einsum: output label \(c) is repeated") }
                outputLabels.append(l)
                rest = rest.dropFirst()
            }
        } else {
            // Implicit output: ellipsis dims, then labels seen exactly once, alphabetically.
            outputLabels = Array(0..<ellipsisRank) + letterIds.filter { counts[$0.value] == 1 }.keys.sorted().compactMap { letterIds[$0] }
        }
        for (labels, shape) in zip(operandLabels, shapes) {
            var strides = [Int](repeating: 0, count: labelCount)
            let own = Broadcast.strides(shape)
            for (d, l) in labels.enumerated() where shape[d] != 1 { strides[l] += own[d] }
            operandStrides.append(strides)
        }
        outShape = outputLabels.map { sizes[$0] }
        if operandLabels.count == 2 {
            let (a, b) = (operandLabels[0], operandLabels[1])
            let plain = zip(operandLabels, shapes).allSatisfy { labels, shape in
                Set(labels).count == labels.count && zip(labels, shape).allSatisfy { sizes[$0] == $1 }
            }
            let out = Set(outputLabels), setA = Set(a), setB = Set(b)
            // Every summed label must be in both operands (no one-sided sums) for the product form.
            if plain, setA.union(setB).subtracting(out).allSatisfy({ setA.contains($0) && setB.contains($0) }) {
                matmulForm = MatMulForm(
                    batch: outputLabels.filter { setA.contains($0) && setB.contains($0) },
                    m: a.filter { out.contains($0) && !setB.contains($0) },
                    n: b.filter { out.contains($0) && !setA.contains($0) },
                    k: a.filter { !out.contains($0) })
            }
        }
    }
}

private struct EinsumVisitor: MatrixVisitor {
    let operands: [Tensor], plan: EinsumPlan

    /// Sums the product of the operands over every label assignment; output labels form the outer loops.
    /// Two-operand products take the MatMul kernel instead.
    func visit<T: MatrixElement>(_: T.Type) throws(RuntimeError) -> Tensor {
        if let form = plan.matmulForm { return try product(T.self, form) }
        let out = try Tensor(zeros: operands[0].dtype, shape: plan.outShape)
        let outSet = Set(plan.outputLabels)
        let order = plan.outputLabels + plan.sizes.indices.filter { !outSet.contains($0) }
        let sizes = order.map { plan.sizes[$0] }
        guard out.count > 0 else { return out }
        let total = sizes.reduce(1, *)
        let outStrides: [Int] = {
            var s = [Int](repeating: 0, count: order.count)
            let own = Broadcast.strides(plan.outShape)
            for i in plan.outputLabels.indices { s[i] = own[i] }
            return s
        }()
        let strides = plan.operandStrides.map { st in order.map { st[$0] } }
        let bases = operands.map { t in t.withValues(T.self) { UnsafePointer($0.baseAddress) } }
        try withExtendedLifetime(operands) { () throws(RuntimeError) in
            guard total > 0 else { return }
            var ptrs: [UnsafePointer<T>] = []
            for b in bases {
                guard let b else { return }
                ptrs.append(b)
            }
            out.withMutableValues(T.self) { po in
                let rank = order.count
                var index = [Int](repeating: 0, count: rank)
                var offsets = [Int](repeating: 0, count: ptrs.count)
                var o = 0
                for _ in 0..<total {
                    var product = T.one
                    for (j, p) in ptrs.enumerated() { product = T.product(product, p[offsets[j]]) }
                    po[o] = T.multiplyAdd(po[o], product, T.one)
                    var d = rank - 1
                    while d >= 0 {
                        index[d] += 1
                        o += outStrides[d]
                        for j in offsets.indices { offsets[j] += strides[j][d] }
                        if index[d] < sizes[d] { break }
                        o -= outStrides[d] * index[d]
                        for j in offsets.indices { offsets[j] -= strides[j][d] * index[d] }
                        index[d] = 0
                        d -= 1
                    }
                }
            }
        }
        return out
    }
}

extension EinsumVisitor {
    private func product<T: MatrixElement>(_: T.Type, _ form: EinsumPlan.MatMulForm) throws(RuntimeError) -> Tensor {
        let size = { (labels: [Int]) in labels.reduce(1) { $0 * plan.sizes[$1] } }
        let (batch, m, n, k) = (size(form.batch), size(form.m), size(form.n), size(form.k))
        let a = try gathered(operands[0], T.self, order: form.batch + form.m + form.k, strides: plan.operandStrides[0])
        let b = try gathered(operands[1], T.self, order: form.batch + form.k + form.n, strides: plan.operandStrides[1])
        let productLabels = form.batch + form.m + form.n
        let c = try Tensor(zeros: operands[0].dtype, shape: [batch, m, n])
        if c.count > 0, k > 0 {
            a.withValues(T.self) { pa in
                b.withValues(T.self) { pb in
                    c.withMutableValues(T.self) { pc in
                        guard let pa = pa.baseAddress, let pb = pb.baseAddress, let pc = pc.baseAddress else { return }
                        let jobs = (0..<batch).map { i in
                            GemmJob(a: pa + i * m * k, aRow: k, aCol: 1, b: pb + i * k * n, bRow: n, bCol: 1, c: pc + i * m * n)
                        }
                        multiply(jobs, m: m, n: n, k: k)
                    }
                }
            }
        }
        // The product's dims are in batch, m, n order; permute them into the output's order.
        let own = Broadcast.strides(productLabels.map { plan.sizes[$0] })
        var labelStrides = [Int](repeating: 0, count: plan.sizes.count)
        for (i, l) in productLabels.enumerated() { labelStrides[l] = own[i] }
        return try gathered(c, T.self, order: plan.outputLabels, strides: labelStrides).reshaped(plan.outShape)
    }

    /// A contiguous copy of `t` with dims in label order `order`, read through per-label strides.
    private func gathered<T: MatrixElement>(_ t: Tensor, _: T.Type, order: [Int], strides: [Int]) throws(RuntimeError) -> Tensor {
        let sizes = order.map { plan.sizes[$0] }
        let steps = order.map { strides[$0] }
        let out = try Tensor(zeros: t.dtype, shape: sizes)
        guard out.count > 0 else { return out }
        t.withValues(T.self) { src in
            out.withMutableValues(T.self) { dst in
                guard let last = sizes.last else { dst[0] = src[0]; return }
                let rank = sizes.count, inner = steps[rank - 1]
                var index = [Int](repeating: 0, count: rank)
                var offset = 0, o = 0
                while o < dst.count {
                    for j in 0..<last { dst[o + j] = src[offset + j * inner] }
                    o += last
                    var d = rank - 2
                    while d >= 0 {
                        index[d] += 1
                        offset += steps[d]
                        if index[d] < sizes[d] { break }
                        offset -= steps[d] * index[d]
                        index[d] = 0
                        d -= 1
                    }
                }
            }
        }
        return out
    }
}

// MARK: - Det

private struct DetVisitor: MatrixVisitor {
    let x: Tensor

    /// LU with partial pivoting in Double, one matrix at a time.
    func visit<T: MatrixElement>(_: T.Type) throws(RuntimeError) -> Tensor {
        guard T.isFloatingPoint else { throw .unsupportedType(op: "Det", dtype: x.dtype.onnxName) }
        let n = x.shape[x.rank - 1]
        let out = try Tensor(zeros: x.dtype, shape: Array(x.shape.dropLast(2)))
        var lu = [Double](repeating: 0, count: n * n)
        x.withValues(T.self) { src in
            out.withMutableValues(T.self) { dst in
                for batch in 0..<dst.count {
                    for i in 0..<(n * n) { lu[i] = src[batch * n * n + i].asDouble }
                    var det = 1.0
                    for col in 0..<n {
                        var pivot = col
                        for r in (col + 1)..<max(n, col + 1) where abs(lu[r * n + col]) > abs(lu[pivot * n + col]) { pivot = r }
                        if lu[pivot * n + col] == 0 { det = 0; break }
                        if pivot != col {
                            for j in 0..<n { lu.swapAt(pivot * n + j, col * n + j) }
                            det = -det
                        }
                        let p = lu[col * n + col]
                        det *= p
                        for r in (col + 1)..<max(n, col + 1) {
                            let f = lu[r * n + col] / p
                            if f == 0 { continue }
                            for j in col..<n { lu[r * n + j] -= f * lu[col * n + j] }
                        }
                    }
                    dst[batch] = T.from(det)
                }
            }
        }
        return out
    }
}

// MARK: - Element types

/// Element types the matrix kernels run on; integer arithmetic wraps like numpy.
protocol MatrixElement: ArithmeticElement {
    static func multiplyAdd(_ c: Self, _ a: Self, _ b: Self) -> Self
    static func product(_ a: Self, _ b: Self) -> Self
    static var one: Self { get }
    static var isFloatingPoint: Bool { get }
}

extension Float: MatrixElement {
    @inline(__always) static func multiplyAdd(_ c: Float, _ a: Float, _ b: Float) -> Float { c + a * b }
    @inline(__always) static func product(_ a: Float, _ b: Float) -> Float { a * b }
    static var one: Float { 1 }
    static var isFloatingPoint: Bool { true }
}

extension Double: MatrixElement {
    @inline(__always) static func multiplyAdd(_ c: Double, _ a: Double, _ b: Double) -> Double { c + a * b }
    @inline(__always) static func product(_ a: Double, _ b: Double) -> Double { a * b }
    static var one: Double { 1 }
    static var isFloatingPoint: Bool { true }
}

private protocol MatrixInteger: MatrixElement, FixedWidthInteger {}

extension MatrixInteger {
    @inline(__always) static func multiplyAdd(_ c: Self, _ a: Self, _ b: Self) -> Self { c &+ a &* b }
    static var one: Self { 1 }
    static var isFloatingPoint: Bool { false }
    @inline(__always) static func product(_ a: Self, _ b: Self) -> Self { a &* b }
}

extension Int8: MatrixInteger {}
extension Int16: MatrixInteger {}
extension Int32: MatrixInteger {}
extension Int64: MatrixInteger {}
extension UInt8: MatrixInteger {}
extension UInt16: MatrixInteger {}
extension UInt32: MatrixInteger {}
extension UInt64: MatrixInteger {}

private protocol MatrixVisitor {
    associatedtype Output
    func visit<T: MatrixElement>(_ type: T.Type) throws(RuntimeError) -> Output
}

/// Float16 and bfloat16 never reach this: they are widened to float32 first.
private func dispatchMatrix<V: MatrixVisitor>(_ dtype: DType, op: String, _ visitor: V) throws(RuntimeError) -> V.Output {
    switch dtype {
    case .float: return try visitor.visit(Float.self)
    case .double: return try visitor.visit(Double.self)
    case .int8: return try visitor.visit(Int8.self)
    case .int16: return try visitor.visit(Int16.self)
    case .int32: return try visitor.visit(Int32.self)
    case .int64: return try visitor.visit(Int64.self)
    case .uint8: return try visitor.visit(UInt8.self)
    case .uint16: return try visitor.visit(UInt16.self)
    case .uint32: return try visitor.visit(UInt32.self)
    case .uint64: return try visitor.visit(UInt64.self)
    default: throw .unsupportedType(op: op, dtype: dtype.onnxName)
    }
}

// MARK: - float16 / bfloat16



private func viaFloat(_ a: Tensor, _ b: Tensor, _ body: (Tensor, Tensor) throws(RuntimeError) -> Tensor) throws(RuntimeError) -> Tensor {
    guard let wa = try widenedToFloat(a), let wb = try widenedToFloat(b) else { return try body(a, b) }
    return try narrowed(try body(wa, wb), to: a.dtype)
}

private func viaFloat(_ a: Tensor, _ b: Tensor, _ c: Tensor, _ body: (Tensor, Tensor, Tensor) throws(RuntimeError) -> Tensor) throws(RuntimeError) -> Tensor {
    guard let wa = try widenedToFloat(a), let wb = try widenedToFloat(b), let wc = try widenedToFloat(c) else { return try body(a, b, c) }
    return try narrowed(try body(wa, wb, wc), to: a.dtype)
}
