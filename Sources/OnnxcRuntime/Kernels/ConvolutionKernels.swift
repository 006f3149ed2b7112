import Dispatch
import OnnxcCore

/// Convolution operators: Conv, ConvTranspose, ConvInteger (QLinearConv lives with quantization and reuses
/// `ConvolutionKernels.convolve`).
enum ConvolutionKernels {
    static let table: [String: Kernel] = [
        "Conv": { inputs, context throws(RuntimeError) in outputs(try conv(inputs, context)) },
        "ConvTranspose": { inputs, context throws(RuntimeError) in outputs(try conv(inputs, context, transposed: true)) },
        "ConvInteger": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let w = try context.tensor(inputs, 1)
            let geometry = try Geometry(x: x.shape, w: w.shape, attributes: context.attributes, transposed: false)
            let xs = try integerOperand(x, zeroPoint: context.optionalTensor(inputs, 2), channels: 0, op: "ConvInteger")
            let ws = try integerOperand(w, zeroPoint: context.optionalTensor(inputs, 3), channels: geometry.outChannels, op: "ConvInteger")
            let result = try Tensor(zeros: .int32, shape: geometry.outShape)
            xs.withUnsafeBufferPointer { xb in
                ws.withUnsafeBufferPointer { wb in
                    let acc = convolve(x: xb, w: wb, bias: nil, geometry: geometry)
                    result.withMutableValues(Int32.self) { out in
                        for i in 0..<out.count { out[i] = Int32(clamping: Int64(acc[i].rounded())) }
                    }
                }
            }
            return outputs(result)
        },
    ]

    /// Conv (or ConvTranspose) of the node's inputs X, W and optional B, then `activation` (FusedConv's epilogue;
    /// FusedConv reads the same inputs and attributes). float32 forward convolutions run on the packed GEMM with the
    /// bias and, where the kernel has it, the activation in its epilogue; everything else applies the activation
    /// in place after.
    static func conv(_ inputs: [Value?], _ context: KernelContext, transposed: Bool = false, activation: FusedActivation? = nil) throws(RuntimeError) -> Tensor {
        let op = context.node.opType
        let x = try context.tensor(inputs, 0)
        let w = try context.tensor(inputs, 1)
        let b = try context.optionalTensor(inputs, 2)
        guard w.dtype == x.dtype, b == nil || b?.dtype == x.dtype else {
            throw .invalidArgument("\(op) inputs must share one element type, got \(x.dtype.onnxName), \(w.dtype.onnxName)")
        }
        let geometry = try Geometry(x: x.shape, w: w.shape, attributes: context.attributes, transposed: transposed)
        if let b, b.count != geometry.outChannels { throw .invalidShape("\(op) bias has \(b.count) elements for \(geometry.outChannels) output channels") }
        if x.dtype == .float, !transposed, let (y, activated) = try convolveFloat(x: x, w: w, b: b, geometry: geometry, activation: activation) {
            return activated ? y : try FusedKernels.epilogue(y, bias: nil, activation, op: op)
        }
        if w.packing != nil {
            throw .invalidArgument("\(op): weights prepacked at compile time cannot run this convolution (\(x.dtype.onnxName) \(x.shape)); recompile the model")
        }
        let y = try dispatchFloat(x.dtype, op: op, ConvVisitor(x: x, w: w, b: b, geometry: geometry))
        guard activation != nil else { return y }
        return try FusedKernels.epilogue(y, bias: nil, activation, op: op)
    }

    /// float32 forward convolution on the packed GEMM (`PackedGemm`): per (batch, group)
    /// Y[mg × outVol] = W[mg × k] · col[k × outVol], col the im2col matrix (X itself for a 1×1, stride-1, unpadded
    /// kernel; for other 2-D kernels the GEMM packs it from X block by block without building it), with the bias per row and the activation (when the kernel has it) in the GEMM's epilogue;
    /// 2-D depthwise kernels run CKernels' direct depthwise convolution with the same epilogue. Returns nil where the
    /// generic path runs instead (other depthwise ranks, empty tensors); `activated` says whether `activation` was
    /// applied.
    private static func convolveFloat(x: Tensor, w: Tensor, b: Tensor?, geometry g: Geometry,
                                      activation: FusedActivation?) throws(RuntimeError) -> (Tensor, activated: Bool)? {
        let inVol = g.inSpatial.reduce(1, *), outVol = g.outSpatial.reduce(1, *), kVol = g.kernel.reduce(1, *)
        let cg = g.inChannels / g.groups, mg = g.outChannels / g.groups
        let k = cg * kVol
        let pointwise = kVol == 1 && g.strides.allSatisfy { $0 == 1 } && g.padsBegin.allSatisfy { $0 == 0 } && g.padsEnd.allSatisfy { $0 == 0 }
        let depthwise = cg == 1 && mg == 1 && !pointwise
        guard g.outCount > 0, x.count > 0, w.count > 0, k > 0, !depthwise || g.inSpatial.count == 2,
              PackedGemm.fits(m: mg, n: outVol, k: k) else { return nil }
        // Prepacked weights are one group's M × K A panels (the compiler packs nothing else).
        if case .gemmA(let rows, let columns)? = w.packing, rows != mg || columns != k || g.groups != 1 || depthwise { return nil }
        let fused = PackedGemm.kernelActivation(activation) != nil
        let result = try Tensor(zeros: .float, shape: g.outShape)
        let bias = b?.array(Float.self)
        if depthwise {
            x.withValues(Float.self) { xb in
                w.withValues(Float.self) { wb in
                    result.withMutableValues(Float.self) { ob in
                        bias.withOptionalBuffer { bb in
                            PackedGemm.depthwise2D(x: xb, w: wb, bias: bb, y: ob, geometry: g, activation: fused ? activation : nil)
                        }
                    }
                }
            }
            return (result, fused)
        }
        x.withValues(Float.self) { xb in
            w.withValues(Float.self) { wb in
                result.withMutableValues(Float.self) { ob in
                    bias.withOptionalBuffer { bb in
                        guard let xBase = xb.baseAddress, let wBase = wb.baseAddress, let oBase = ob.baseAddress else { return }
                        // im2col (ranks other than 2) writes every element (zeros for padding): no initialization.
                        let col = UnsafeMutablePointer<Float>.allocate(capacity: pointwise || g.inSpatial.count == 2 ? 1 : k * outVol)
                        defer { col.deallocate() }
                        do {
                            for n in 0..<g.batch {
                                for group in 0..<g.groups {
                                    let xg = xBase + (n * g.inChannels + group * cg) * inVol
                                    let rowBias: PackedGemm.Bias = bb?.baseAddress.map { .perRow($0 + group * mg) } ?? .none
                                    let weights = w.packing == nil ? PackedGemm.Operand(data: wBase + group * mg * k, rowStride: k, columnStride: 1)
                                        : PackedGemm.Operand(data: wBase, rowStride: k, columnStride: 1, packed: true)
                                    let y = oBase + (n * g.outChannels + group * mg) * outVol
                                    if !pointwise && g.inSpatial.count == 2 {
                                        // 2-D: the GEMM packs its B straight from X, no im2col matrix.
                                        PackedGemm.convolution2D(m: mg, weights: weights, x: xg, channels: cg, geometry: g, y: y,
                                                                 bias: rowBias, activation: fused ? activation : nil)
                                        continue
                                    }
                                    let columns: UnsafePointer<Float>
                                    if pointwise {
                                        columns = xg
                                    } else {
                                        im2col(x: xg, channels: cg, g: g, col: col)
                                        columns = UnsafePointer(col)
                                    }
                                    PackedGemm.multiply(
                                        m: mg, n: outVol, k: k, a: weights,
                                        b: .init(data: columns, rowStride: outVol, columnStride: 1),
                                        c: y, ldc: outVol, bias: rowBias, activation: fused ? activation : nil)
                                }
                            }
                        }
                    }
                }
            }
        }
        return (result, fused)
    }

    /// Integer data minus its zero point (scalar, or per output channel along axis 0 for weights), as Double so
    /// the float convolution sums exactly (every int8/uint8 product sum below 2^53 is exact).
    static func integerOperand(_ t: Tensor, zeroPoint: Tensor?, channels: Int, op: String) throws(RuntimeError) -> [Double] {
        guard t.dtype == .uint8 || t.dtype == .int8 else { throw .unsupportedType(op: op, dtype: t.dtype.onnxName) }
        var values = t.doubles()
        guard let zeroPoint else { return values }
        let zp = zeroPoint.doubles()
        if zp.count == 1 {
            for i in values.indices { values[i] -= zp[0] }
        } else if channels > 0, zp.count == channels, t.count % channels == 0 {
            let per = t.count / channels
            for i in values.indices { values[i] -= zp[i / max(per, 1)] }
        } else {
            throw .invalidShape("\(op) zero point has \(zp.count) elements; expected 1\(channels > 0 ? " or \(channels)" : "")")
        }
        return values
    }

    private struct ConvVisitor: FloatVisitor {
        let x: Tensor, w: Tensor, b: Tensor?, geometry: Geometry
        func visit<T: FloatElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            let result = try Tensor(zeros: x.dtype, shape: geometry.outShape)
            if T.self == Float16.self {
                // Half precision accumulates in Float.
                let xf = x.array(Float16.self).map(Float.init), wf = w.array(Float16.self).map(Float.init)
                let bf = b?.array(Float16.self).map(Float.init)
                let acc = xf.withUnsafeBufferPointer { xb in
                    wf.withUnsafeBufferPointer { wb in
                        bf.withOptionalBuffer { bb in ConvolutionKernels.run(x: xb, w: wb, bias: bb, geometry: geometry) }
                    }
                }
                result.withMutableValues(Float16.self) { out in
                    for i in 0..<out.count { out[i] = Float16(acc[i]) }
                }
                return result
            }
            let bias = b?.array(T.self)
            let acc: [T] = x.withValues(T.self) { xb in
                w.withValues(T.self) { wb in
                    bias.withOptionalBuffer { bb in ConvolutionKernels.run(x: xb, w: wb, bias: bb, geometry: geometry) }
                }
            }
            result.withMutableValues(T.self) { out in
                acc.withUnsafeBufferPointer { a in
                    guard let src = a.baseAddress, let dst = out.baseAddress else { return }
                    dst.update(from: src, count: min(a.count, out.count))
                }
            }
            return result
        }
    }

    private static func run<T: FloatElement>(x: UnsafeBufferPointer<T>, w: UnsafeBufferPointer<T>, bias: UnsafeBufferPointer<T>?, geometry: Geometry) -> [T] {
        geometry.transposed ? convolveTransposed(x: x, w: w, bias: bias, geometry: geometry) : convolve(x: x, w: w, bias: bias, geometry: geometry)
    }

    /// Forward convolution: per (batch, group) an im2col matrix times the group's weights, or direct paths for
    /// 1x1 stride-1 unpadded kernels (the input already is the column matrix) and depthwise kernels.
    static func convolve<T: FloatElement>(x: UnsafeBufferPointer<T>, w: UnsafeBufferPointer<T>, bias: UnsafeBufferPointer<T>?, geometry g: Geometry) -> [T] {
        var out = [T](repeating: 0, count: g.outCount)
        guard g.outCount > 0, let xBase = x.baseAddress, let wBase = w.baseAddress else {
            if let bias { addBias(&out, bias, g) }
            return out
        }
        let inVol = g.inSpatial.reduce(1, *), outVol = g.outSpatial.reduce(1, *), kVol = g.kernel.reduce(1, *)
        let cg = g.inChannels / g.groups, mg = g.outChannels / g.groups
        let k = cg * kVol
        let pointwise = kVol == 1 && g.strides.allSatisfy { $0 == 1 } && g.padsBegin.allSatisfy { $0 == 0 } && g.padsEnd.allSatisfy { $0 == 0 }
        out.withUnsafeMutableBufferPointer { ob in
            guard let oBase = ob.baseAddress else { return }
            if cg == 1 && mg == 1 && !pointwise {
                depthwise(x: xBase, w: wBase, out: oBase, g: g, inVol: inVol, outVol: outVol, kVol: kVol)
                return
            }
            var col = [T](repeating: 0, count: pointwise ? 0 : k * outVol)
            col.withUnsafeMutableBufferPointer { colBuffer in
                for n in 0..<g.batch {
                    for group in 0..<g.groups {
                        let xg = xBase + (n * g.inChannels + group * cg) * inVol
                        let b: UnsafePointer<T>
                        if pointwise {
                            b = xg
                        } else {
                            guard let c = colBuffer.baseAddress else { return }
                            im2col(x: xg, channels: cg, g: g, col: c)
                            b = UnsafePointer(c)
                        }
                        gemm(m: mg, n: outVol, k: k, a: wBase + group * mg * k, b: b, c: oBase + (n * g.outChannels + group * mg) * outVol)
                    }
                }
            }
        }
        if let bias { addBias(&out, bias, g) }
        return out
    }

    private static func addBias<T: FloatElement>(_ out: inout [T], _ bias: UnsafeBufferPointer<T>, _ g: Geometry) {
        let outVol = g.outSpatial.reduce(1, *)
        guard bias.count == g.outChannels else { return }
        out.withUnsafeMutableBufferPointer { o in
            for n in 0..<g.batch {
                for m in 0..<g.outChannels {
                    let base = (n * g.outChannels + m) * outVol, value = bias[m]
                    for i in 0..<outVol { o[base + i] += value }
                }
            }
        }
    }

    /// One input channel per output channel: a direct sliding window by rows, parallel over planes.
    private static func depthwise<T: FloatElement>(x: UnsafePointer<T>, w: UnsafePointer<T>, out: UnsafeMutablePointer<T>, g: Geometry, inVol: Int, outVol: Int, kVol: Int) {
        let rows = RowWindows(g: g)
        let planes = g.batch * g.outChannels
        let stride = rows.lastStride, outLast = rows.outLast
        rows.entries.withUnsafeBufferPointer { entries in
            parallelFor(planes, work: outVol * kVol) { plane in
                let channel = plane % g.outChannels
                let xp = x + plane * inVol, wp = w + channel * kVol, op = out + plane * outVol
                for e in entries {
                    let weight = wp[e.tap], dst = op + e.outRow * outLast, src = xp + e.inRow + e.inStart
                    if stride == 1 {
                        for ow in e.lo..<e.hi { dst[ow] += weight * src[ow] }
                    } else {
                        for ow in e.lo..<e.hi { dst[ow] += weight * src[ow * stride] }
                    }
                }
            }
        }
    }

    /// Lays out the receptive fields of `channels` input planes as a (channels·kVol) × outVol row-major matrix,
    /// zero where the window reads padding.
    private static func im2col<T: FloatElement>(x: UnsafePointer<T>, channels: Int, g: Geometry, col: UnsafeMutablePointer<T>) {
        let dims = g.inSpatial.count
        let inVol = g.inSpatial.reduce(1, *), outVol = g.outSpatial.reduce(1, *), kVol = g.kernel.reduce(1, *)
        let inStrides = Broadcast.strides(g.inSpatial)
        // coordinate[d][kd * out_d + od] = input coordinate along d, or -1 in padding.
        var coordinate = [[Int]]()
        for d in 0..<dims {
            var table = [Int](repeating: -1, count: g.kernel[d] * g.outSpatial[d])
            for kd in 0..<g.kernel[d] {
                for od in 0..<g.outSpatial[d] {
                    let i = od * g.strides[d] - g.padsBegin[d] + kd * g.dilations[d]
                    if i >= 0 && i < g.inSpatial[d] { table[kd * g.outSpatial[d] + od] = i * inStrides[d] }
                }
            }
            coordinate.append(table)
        }
        let last = dims - 1
        let outLast = g.outSpatial[last]
        let outerCount = outVol / max(outLast, 1)
        parallelFor(channels * kVol, work: outVol) { row in
            let c = row / kVol
            var kIndex = [Int](repeating: 0, count: dims)
            var rest = row % kVol
            for d in stride(from: dims - 1, through: 0, by: -1) {
                kIndex[d] = rest % g.kernel[d]
                rest /= g.kernel[d]
            }
            let xc = x + c * inVol
            let dst = col + row * outVol
            var oIndex = [Int](repeating: 0, count: dims)
            coordinate.withUnsafeBufferPointer { tables in
                let lastTable = tables[last]
                lastTable.withUnsafeBufferPointer { lt in
                    let ltBase = kIndex[last] * outLast
                    for outer in 0..<outerCount {
                        var offset = 0, valid = true
                        for d in 0..<last {
                            let v = tables[d][kIndex[d] * g.outSpatial[d] + oIndex[d]]
                            if v < 0 { valid = false; break }
                            offset += v
                        }
                        let rowDst = dst + outer * outLast
                        if valid {
                            for o in 0..<outLast {
                                let v = lt[ltBase + o]
                                rowDst[o] = v < 0 ? 0 : xc[offset + v]
                            }
                        } else {
                            rowDst.update(repeating: 0, count: outLast)
                        }
                        var d = last - 1
                        while d >= 0 {
                            oIndex[d] += 1
                            if oIndex[d] < g.outSpatial[d] { break }
                            oIndex[d] = 0
                            d -= 1
                        }
                    }
                }
            }
        }
    }

    /// Transposed convolution: per (batch, group) the column matrix Wᵀ·X, scattered back onto the output (col2im).
    private static func convolveTransposed<T: FloatElement>(x: UnsafeBufferPointer<T>, w: UnsafeBufferPointer<T>, bias: UnsafeBufferPointer<T>?, geometry g: Geometry) -> [T] {
        var out = [T](repeating: 0, count: g.outCount)
        let inVol = g.inSpatial.reduce(1, *), outVol = g.outSpatial.reduce(1, *), kVol = g.kernel.reduce(1, *)
        let cg = g.inChannels / g.groups, mg = g.outChannels / g.groups
        let dims = g.inSpatial.count
        guard g.outCount > 0, inVol > 0, let xBase = x.baseAddress else {
            if let bias { addBias(&out, bias, g) }
            return out
        }
        let rows = mg * kVol
        var a = [T](repeating: 0, count: rows * cg)
        var col = [T](repeating: 0, count: rows * inVol)
        let outStrides = Broadcast.strides(g.outSpatial)
        // target[d][kd * in_d + id] = output offset along d, or -1 outside the output.
        var target = [[Int]]()
        for d in 0..<dims {
            var table = [Int](repeating: -1, count: g.kernel[d] * g.inSpatial[d])
            for kd in 0..<g.kernel[d] {
                for id in 0..<g.inSpatial[d] {
                    let o = id * g.strides[d] - g.padsBegin[d] + kd * g.dilations[d]
                    if o >= 0 && o < g.outSpatial[d] { table[kd * g.inSpatial[d] + id] = o * outStrides[d] }
                }
            }
            target.append(table)
        }
        out.withUnsafeMutableBufferPointer { ob in
            guard let oBase = ob.baseAddress else { return }
            for group in 0..<g.groups {
                // A[(m, k), c] = W[group·cg + c, m, k]
                for c in 0..<cg {
                    for r in 0..<rows { a[r * cg + c] = w[(group * cg + c) * rows + r] }
                }
                for n in 0..<g.batch {
                    a.withUnsafeBufferPointer { ab in
                        col.withUnsafeMutableBufferPointer { cb in
                            guard let ap = ab.baseAddress, let cp = cb.baseAddress else { return }
                            cp.update(repeating: 0, count: rows * inVol)
                            gemm(m: rows, n: inVol, k: cg, a: ap, b: xBase + (n * g.inChannels + group * cg) * inVol, c: cp)
                            let yg = oBase + (n * g.outChannels + group * mg) * outVol
                            // col2im: output channels in parallel; along the last axis a strided row add.
                            let last = dims - 1
                            let inLast = g.inSpatial[last], outLast = g.outSpatial[last], strideLast = g.strides[last]
                            let outerCount = inVol / inLast
                            parallelFor(mg, work: kVol * inVol) { m in
                                var kIndex = [Int](repeating: 0, count: dims), iIndex = [Int](repeating: 0, count: dims)
                                let dst = yg + m * outVol
                                for kk in 0..<kVol {
                                    var rest = kk
                                    for d in stride(from: dims - 1, through: 0, by: -1) {
                                        kIndex[d] = rest % g.kernel[d]
                                        rest /= g.kernel[d]
                                    }
                                    // Output column = i·stride + shift must fall in [0, outLast).
                                    let shift = kIndex[last] * g.dilations[last] - g.padsBegin[last]
                                    let lo = shift >= 0 ? 0 : (-shift + strideLast - 1) / strideLast
                                    let hi = outLast - 1 - shift < 0 ? 0 : min(inLast, (outLast - 1 - shift) / strideLast + 1)
                                    guard lo < hi else { continue }
                                    let src = cp + (m * kVol + kk) * inVol
                                    for i in 0..<last { iIndex[i] = 0 }
                                    for q in 0..<outerCount {
                                        var offset = 0, valid = true
                                        for d in 0..<last {
                                            let v = target[d][kIndex[d] * g.inSpatial[d] + iIndex[d]]
                                            if v < 0 { valid = false; break }
                                            offset += v
                                        }
                                        if valid {
                                            let row = dst + offset + shift, values = src + q * inLast
                                            for i in lo..<hi { row[i * strideLast] += values[i] }
                                        }
                                        var d = last - 1
                                        while d >= 0 {
                                            iIndex[d] += 1
                                            if iIndex[d] < g.inSpatial[d] { break }
                                            iIndex[d] = 0
                                            d -= 1
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if let bias { addBias(&out, bias, g) }
        return out
    }

    // MARK: - GEMM

    private static let blockK = 256
    private static let blockN = 512

    /// C[m×n] += A[m×k] · B[k×n], all row-major and dense. The product splits into tasks of (column block ×
    /// row chunk) that run in parallel; each task walks k in blocks, packs its k×n panel of B contiguously and
    /// runs the micro-kernel over its rows. Every C element accumulates over k in the same order whatever the
    /// thread count, so results are deterministic.
    static func gemm<T: FloatElement>(m: Int, n: Int, k: Int, a: UnsafePointer<T>, b: UnsafePointer<T>, c: UnsafeMutablePointer<T>) {
        guard m > 0, n > 0, k > 0 else { return }
        let kb = min(blockK, k), nb = min(blockN, n)
        let columnBlocks = (n + nb - 1) / nb
        let rowChunk = min(m, columnBlocks >= 8 ? 64 : 16)
        let rowChunks = (m + rowChunk - 1) / rowChunk
        parallelFor(columnBlocks * rowChunks, work: rowChunk * k * nb) { task in
            let j0 = (task / rowChunks) * nb, nc = min(nb, n - j0)
            let start = (task % rowChunks) * rowChunk, end = min(m, start + rowChunk)
            let panel = UnsafeMutablePointer<T>.allocate(capacity: kb * nc)
            defer { panel.deallocate() }
            let p = UnsafePointer(panel)
            var k0 = 0
            while k0 < k {
                let kc = min(kb, k - k0)
                for kk in 0..<kc {
                    (panel + kk * nc).update(from: b + (k0 + kk) * n + j0, count: nc)
                }
                var i = start
                if T.self == Float.self {
                    // Register-tiled 4×16 micro-kernel for Float (the common case).
                    let pf = UnsafeRawPointer(p).assumingMemoryBound(to: Float.self)
                    let af = UnsafeRawPointer(a).assumingMemoryBound(to: Float.self)
                    let cf = UnsafeMutableRawPointer(c).assumingMemoryBound(to: Float.self)
                    while i + 4 <= end {
                        microKernel4x16(kc: kc, nc: nc, a: af + i * k + k0, lda: k, panel: pf, c: cf + i * n + j0, ldc: n)
                        i += 4
                    }
                }
                while i < end {
                    let crow = c + i * n + j0, arow = a + i * k + k0
                    for kk in 0..<kc {
                        let av = arow[kk]
                        if av == 0 { continue }
                        let prow = p + kk * nc
                        for j in 0..<nc { crow[j] += av * prow[j] }
                    }
                    i += 1
                }
                k0 += kc
            }
        }
    }

    /// C[4×nc] += A[4×kc] · panel[kc×nc]: accumulators for a 4×16 tile stay in vector registers across the
    /// whole kc loop, so each panel load feeds eight FMAs; leftover columns take a scalar loop.
    @inline(__always)
    private static func microKernel4x16(kc: Int, nc: Int, a: UnsafePointer<Float>, lda: Int, panel: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let a0 = a, a1 = a + lda, a2 = a + 2 * lda, a3 = a + 3 * lda
        var j = 0
        while j + 16 <= nc {
            var c00 = SIMD8<Float>(), c01 = SIMD8<Float>(), c10 = SIMD8<Float>(), c11 = SIMD8<Float>()
            var c20 = SIMD8<Float>(), c21 = SIMD8<Float>(), c30 = SIMD8<Float>(), c31 = SIMD8<Float>()
            var b = UnsafeRawPointer(panel + j)
            let step = nc * MemoryLayout<Float>.stride
            for kk in 0..<kc {
                let b0 = b.loadUnaligned(as: SIMD8<Float>.self)
                let b1 = b.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self)
                let v0 = a0[kk], v1 = a1[kk], v2 = a2[kk], v3 = a3[kk]
                c00 += v0 * b0; c01 += v0 * b1
                c10 += v1 * b0; c11 += v1 * b1
                c20 += v2 * b0; c21 += v2 * b1
                c30 += v3 * b0; c31 += v3 * b1
                b += step
            }
            func add(_ row: Int, _ lo: SIMD8<Float>, _ hi: SIMD8<Float>) {
                let target = UnsafeMutableRawPointer(c + row * ldc + j)
                target.storeBytes(of: target.loadUnaligned(as: SIMD8<Float>.self) + lo, as: SIMD8<Float>.self)
                target.storeBytes(of: target.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self) + hi, toByteOffset: 32, as: SIMD8<Float>.self)
            }
            add(0, c00, c01); add(1, c10, c11); add(2, c20, c21); add(3, c30, c31)
            j += 16
        }
        if j < nc {
            for row in 0..<4 {
                let arow = a + row * lda, crow = c + row * ldc
                for kk in 0..<kc {
                    let av = arow[kk], prow = panel + kk * nc
                    for jj in j..<nc { crow[jj] += av * prow[jj] }
                }
            }
        }
    }

    /// Runs `body` for 0..<count, on all cores when the total work (count × `work` per item) is worth it.
    static func parallelFor(_ count: Int, work: Int, _ body: (Int) -> Void) {
        if count > 1 && count.multipliedReportingOverflow(by: max(work, 1)).partialValue > 1 << 16 {
            withoutActuallyEscaping(body) { escaping in
                let box = UncheckedWork(run: escaping)
                DispatchQueue.concurrentPerform(iterations: count) { box.run($0) }
            }
        } else {
            for i in 0..<count { body(i) }
        }
    }
}

/// A loop body shared by `concurrentPerform` workers. `@unchecked`: every caller writes disjoint parts of
/// buffers it owns, and the body does not outlive `parallelFor`.
private struct UncheckedWork: @unchecked Sendable {
    let run: (Int) -> Void
}

extension ConvolutionKernels {
/// A sliding window walked row by row: for each output row (all spatial axes but the last) and kernel tap, the
/// input row it reads and the range of output columns whose input column is inside the tensor. Kernels then run a
/// contiguous (vectorizable) loop per entry: `out[outRow·outLast + ow] ⊕= in[inRow + inStart + ow·lastStride]`.
/// Entries come in output-row order, then kernel order, so each output sees its taps in row-major kernel order.
struct RowWindows {
    struct Entry {
        var outRow: Int, inRow: Int, tap: Int, lo: Int, hi: Int, inStart: Int
    }
    var entries: [Entry] = []
    var outLast = 1, lastStride = 1

    init(g: Geometry) {
        let dims = g.inSpatial.count
        guard dims > 0 else { return }
        let last = dims - 1
        outLast = g.outSpatial[last]
        lastStride = g.strides[last]
        let inStrides = Broadcast.strides(g.inSpatial)
        let outRows = g.outSpatial[..<last].reduce(1, *), kOuter = g.kernel[..<last].reduce(1, *), kLast = g.kernel[last]
        let inLast = g.inSpatial[last], padLast = g.padsBegin[last], dilLast = g.dilations[last]
        // Output column range per last-axis tap.
        var ranges: [(lo: Int, hi: Int, start: Int)] = []
        for kl in 0..<kLast {
            let shift = kl * dilLast - padLast  // input column = ow·stride + shift
            var lo = shift >= 0 ? 0 : (-shift + lastStride - 1) / lastStride
            var hi = inLast - 1 - shift < 0 ? 0 : (inLast - 1 - shift) / lastStride + 1
            lo = min(lo, outLast)
            hi = max(lo, min(hi, outLast))
            ranges.append((lo, hi, shift))
        }
        var o = [Int](repeating: 0, count: last), k = [Int](repeating: 0, count: last)
        for r in 0..<outRows {
            for i in 0..<last { k[i] = 0 }
            for q in 0..<kOuter {
                var inRow = 0, valid = true
                for d in 0..<last {
                    let i = o[d] * g.strides[d] - g.padsBegin[d] + k[d] * g.dilations[d]
                    if i < 0 || i >= g.inSpatial[d] { valid = false; break }
                    inRow += i * inStrides[d]
                }
                if valid {
                    for kl in 0..<kLast where ranges[kl].lo < ranges[kl].hi {
                        entries.append(Entry(outRow: r, inRow: inRow, tap: q * kLast + kl, lo: ranges[kl].lo, hi: ranges[kl].hi, inStart: ranges[kl].start))
                    }
                }
                var d = last - 1
                while d >= 0 {
                    k[d] += 1
                    if k[d] < g.kernel[d] { break }
                    k[d] = 0
                    d -= 1
                }
            }
            var d = last - 1
            while d >= 0 {
                o[d] += 1
                if o[d] < g.outSpatial[d] { break }
                o[d] = 0
                d -= 1
            }
        }
    }
}

/// Shapes, strides, dilations and resolved padding of one (transposed) convolution, validated up front so the
/// loops can index without checks.
struct Geometry: Sendable {
    var batch = 0, inChannels = 0, outChannels = 0, groups = 1
    var inSpatial: [Int] = [], outSpatial: [Int] = [], kernel: [Int] = []
    var strides: [Int] = [], dilations: [Int] = [], padsBegin: [Int] = [], padsEnd: [Int] = []
    var transposed = false

    var outShape: [Int] { [batch, outChannels] + outSpatial }

    /// An empty geometry that pooling fills in field by field.
    init() {}
    var outCount: Int { outShape.reduce(1, *) }

    init(x: [Int], w: [Int], attributes: Attributes, transposed: Bool) throws(RuntimeError) {
        self.transposed = transposed
        guard x.count >= 3, w.count == x.count else {
            throw .invalidShape("convolution needs input and weights of equal rank ≥ 3, got \(x) and \(w)")
        }
        let dims = x.count - 2
        batch = x[0]
        inChannels = x[1]
        inSpatial = Array(x[2...])
        let groupValue = attributes.int("group", 1)
        guard groupValue >= 1, groupValue <= Int64(Int32.max) else { throw .invalidArgument("group must be ≥ 1, got \(groupValue)") }
        groups = Int(groupValue)
        guard inChannels % groups == 0 else { throw .invalidShape("input channels \(inChannels) not divisible by group \(groups)") }
        if transposed {
            guard w[0] == inChannels else { throw .invalidShape("ConvTranspose weights \(w) do not match input channels \(inChannels)") }
            outChannels = w[1] * groups
        } else {
            guard w[1] * groups == inChannels else { throw .invalidShape("Conv weights \(w) do not match input channels \(inChannels) with group \(groups)") }
            outChannels = w[0]
            guard outChannels % groups == 0 else { throw .invalidShape("output channels \(outChannels) not divisible by group \(groups)") }
        }
        kernel = Array(w[2...])
        guard kernel.allSatisfy({ $0 >= 1 }) else { throw .invalidShape("convolution kernel \(kernel) must be non-empty along every axis") }
        if let ks = attributes.ints("kernel_shape") {
            guard ks.count == dims, ks.map({ Int($0) }) == kernel else { throw .invalidShape("kernel_shape \(ks) does not match weights \(w)") }
        }
        func list(_ name: String, _ count: Int, _ fallback: Int, minimum: Int) throws(RuntimeError) -> [Int] {
            guard let values = attributes.ints(name) else { return [Int](repeating: fallback, count: count) }
            guard values.count == count, values.allSatisfy({ $0 >= minimum && $0 <= Int64(Int32.max) }) else {
                throw .invalidArgument("\(name) \(values) must have \(count) values ≥ \(minimum)")
            }
            return values.map { Int($0) }
        }
        strides = try list("strides", dims, 1, minimum: 1)
        dilations = try list("dilations", dims, 1, minimum: 1)
        let pads = try list("pads", 2 * dims, 0, minimum: 0)
        padsBegin = Array(pads[..<dims])
        padsEnd = Array(pads[dims...])
        let autoPad = attributes.string("auto_pad", "NOTSET")
        let window = (0..<dims).map { (kernel[$0] - 1) * dilations[$0] + 1 }
        if transposed {
            let outputPadding = try list("output_padding", dims, 0, minimum: 0)
            let explicitShape = attributes.ints("output_shape").map { $0.map { Int($0) } }
            if let explicitShape, !(explicitShape.count == dims || explicitShape.count == dims + 2) {
                throw .invalidArgument("output_shape \(explicitShape) must have \(dims) values")
            }
            let requested = explicitShape.map { Array($0.suffix(dims)) }
            if autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" {
                let target = requested ?? (0..<dims).map { inSpatial[$0] * strides[$0] }
                for d in 0..<dims {
                    let total = strides[d] * (inSpatial[d] - 1) + outputPadding[d] + window[d] - target[d]
                    if autoPad == "SAME_UPPER" {
                        padsBegin[d] = total / 2
                        padsEnd[d] = total - total / 2
                    } else {
                        padsBegin[d] = total - total / 2
                        padsEnd[d] = total / 2
                    }
                }
                outSpatial = target
            } else {
                if autoPad == "VALID" {
                    padsBegin = [Int](repeating: 0, count: dims)
                    padsEnd = padsBegin
                }
                // With explicit pads an output_shape only fixes the extent (as the reference implementation does);
                // positions past the natural extent stay zero plus bias.
                outSpatial = requested ?? (0..<dims).map { strides[$0] * (inSpatial[$0] - 1) + outputPadding[$0] + window[$0] - padsBegin[$0] - padsEnd[$0] }
            }
        } else {
            switch autoPad {
            case "SAME_UPPER", "SAME_LOWER":
                outSpatial = (0..<dims).map { (inSpatial[$0] + strides[$0] - 1) / strides[$0] }
                for d in 0..<dims {
                    let total = max(0, (outSpatial[d] - 1) * strides[d] + window[d] - inSpatial[d])
                    padsBegin[d] = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2
                    padsEnd[d] = total - padsBegin[d]
                }
            case "VALID":
                padsBegin = [Int](repeating: 0, count: dims)
                padsEnd = padsBegin
                outSpatial = (0..<dims).map { max(0, (inSpatial[$0] - window[$0]) / strides[$0] + 1) }
            default:
                outSpatial = (0..<dims).map { d in
                    let span = inSpatial[d] + padsBegin[d] + padsEnd[d] - window[d]
                    return span < 0 ? 0 : span / strides[d] + 1
                }
            }
        }
        guard outSpatial.allSatisfy({ $0 >= 0 }), let _ = CheckedSize.elementCount(outShape.map(Int64.init)) else {
            throw .invalidShape("convolution output shape \(outShape) is invalid")
        }
    }
}

}

extension Optional {
    /// The buffer of an optional array, for kernels whose bias input may be absent.
    fileprivate func withOptionalBuffer<T, R>(_ body: (UnsafeBufferPointer<T>?) -> R) -> R where Wrapped == [T] {
        switch self {
        case .some(let array): return array.withUnsafeBufferPointer { body($0) }
        case .none: return body(nil)
        }
    }
}
