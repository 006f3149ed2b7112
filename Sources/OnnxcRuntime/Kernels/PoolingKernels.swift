#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import OnnxcCore

/// Pooling operators: windowed (MaxPool, AveragePool, LpPool), global, and MaxUnpool.
enum PoolingKernels {
    static let table: [String: Kernel] = [
        "MaxPool": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let g = try geometry(x.shape, context.attributes)
            let storageOrder = context.attributes.int("storage_order", 0)
            guard storageOrder == 0 || storageOrder == 1 else { throw .invalidArgument("storage_order must be 0 or 1, got \(storageOrder)") }
            let outputNames = context.node.outputs
            let wantsIndices = outputNames.count > 1 && !outputNames[1].isEmpty
            let (y, indices) = try dispatchArithmetic(x.dtype, op: "MaxPool", MaxPoolVisitor(x: x, g: g, columnMajor: storageOrder == 1, wantsIndices: wantsIndices))
            guard let indices else { return outputs(y) }
            return outputs(y, indices)
        },
        "AveragePool": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let g = try geometry(x.shape, context.attributes)
            let includePad = context.attributes.int("count_include_pad", 0) != 0
            return outputs(try dispatchFloat(x.dtype, op: "AveragePool", WindowVisitor(x: x, g: g, kind: includePad ? .averageIncludingPad : .average)))
        },
        "LpPool": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let g = try geometry(x.shape, context.attributes)
            let p = context.attributes.int("p", 2)
            guard p >= 1, p <= 1 << 20 else { throw .invalidArgument("LpPool p must be ≥ 1, got \(p)") }
            return outputs(try dispatchFloat(x.dtype, op: "LpPool", WindowVisitor(x: x, g: g, kind: .lp(Double(p)))))
        },
        "GlobalAveragePool": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            return outputs(try dispatchFloat(x.dtype, op: "GlobalAveragePool", GlobalVisitor(x: x, kind: .average)))
        },
        "GlobalLpPool": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let p = context.attributes.int("p", 2)
            guard p >= 1, p <= 1 << 20 else { throw .invalidArgument("GlobalLpPool p must be ≥ 1, got \(p)") }
            return outputs(try dispatchFloat(x.dtype, op: "GlobalLpPool", GlobalVisitor(x: x, kind: .lp(Double(p)))))
        },
        "GlobalMaxPool": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            return outputs(try dispatchArithmetic(x.dtype, op: "GlobalMaxPool", GlobalMaxVisitor(x: x)))
        },
        "MaxUnpool": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let indices = try context.tensor(inputs, 1)
            let requested = try context.optionalTensor(inputs, 2)
            return outputs(try maxUnpool(x, indices, requested, context.attributes))
        },
        "RoiAlign": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let rois = try context.tensor(inputs, 1)
            let batchIndices = try context.tensor(inputs, 2)
            return outputs(try dispatchFloat(x.dtype, op: "RoiAlign", RoiAlignVisitor(x: x, rois: rois, batchIndices: batchIndices, attributes: context.attributes, opset: context.opset)))
        },
        "MaxRoiPool": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let rois = try context.tensor(inputs, 1)
            return outputs(try dispatchFloat(x.dtype, op: "MaxRoiPool", MaxRoiPoolVisitor(x: x, rois: rois, attributes: context.attributes)))
        },
    ]

    /// RoiAlign as in `onnx/reference/ops/op_roi_align.py` (the Detectron/ONNX Runtime algorithm): bilinear samples on a
    /// regular grid in each bin, averaged or maxed (max takes the largest weighted corner, as ONNX Runtime does).
    private struct RoiAlignVisitor: FloatVisitor {
        let x: Tensor, rois: Tensor, batchIndices: Tensor, attributes: Attributes, opset: Int
        func visit<T: FloatElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            guard x.rank == 4, rois.rank == 2, rois.shape[1] == 4, batchIndices.rank == 1, batchIndices.shape[0] == rois.shape[0] else {
                throw .invalidShape("RoiAlign needs X [N,C,H,W], rois [R,4] and batch_indices [R], got \(x.shape), \(rois.shape), \(batchIndices.shape)")
            }
            let outH = Int(attributes.int("output_height", 1)), outW = Int(attributes.int("output_width", 1))
            guard outH >= 1, outW >= 1, outH <= 1 << 20, outW <= 1 << 20 else { throw .invalidArgument("RoiAlign output size must be positive") }
            let samplingRatio = Int(clamping: attributes.int("sampling_ratio", 0))
            let scale = Double(attributes.float("spatial_scale", 1))
            let halfPixel = attributes.string("coordinate_transformation_mode", opset >= 16 ? "half_pixel" : "output_half_pixel") == "half_pixel"
            let isMax = attributes.string("mode", "avg").lowercased() == "max"
            let channels = x.shape[1], height = x.shape[2], width = x.shape[3]
            let roiCount = rois.shape[0]
            let boxes: [T] = rois.dtype == x.dtype ? rois.array(T.self) : rois.doubles().map { T($0) }
            let batches = batchIndices.int64s()
            let y = try Tensor(zeros: x.dtype, shape: [roiCount, channels, outH, outW])
            guard height > 0, width > 0 else { return y }
            try x.withValues(T.self) { xb throws(RuntimeError) in
                try y.withMutableValues(T.self) { yb throws(RuntimeError) in
                    for r in 0..<roiCount {
                        let batch = Int(batches[r])
                        guard batch >= 0, batch < x.shape[0] else { continue }
                        // In the element type, as the reference and ONNX Runtime compute it (float32 for float data).
                        let offset: T = halfPixel ? 0.5 : 0, scale = T(scale)
                        let startW = boxes[r * 4] * scale - offset, startH = boxes[r * 4 + 1] * scale - offset
                        var roiW = boxes[r * 4 + 2] * scale - offset - startW, roiH = boxes[r * 4 + 3] * scale - offset - startH
                        if !halfPixel {
                            roiW = max(roiW, 1)
                            roiH = max(roiH, 1)
                        }
                        let binH = roiH / T(outH), binW = roiW / T(outW)
                        func gridSize(_ bin: T) -> Int? {
                            if samplingRatio > 0 { return samplingRatio }
                            let size = bin.rounded(.up)
                            return size.isFinite && size >= 0 && size <= T(1 << 16) ? Int(size) : nil
                        }
                        guard let gridH = gridSize(binH), let gridW = gridSize(binW), samplingRatio <= 1 << 16 else { continue }
                        let (bins, binOverflow) = (outH * outW).multipliedReportingOverflow(by: gridH * gridW)
                        guard !binOverflow, bins <= 1 << 26 else {
                            throw .invalidArgument("RoiAlign needs \(outH)×\(outW) bins of \(gridH)×\(gridW) samples: too many")
                        }
                        let count = T(max(gridH * gridW, 1))
                        // Bilinear corners and weights of every sample, shared by all channels.
                        var positions = [Int](), weights = [T]()
                        positions.reserveCapacity(outH * outW * gridH * gridW * 4)
                        for ph in 0..<outH {
                            for pw in 0..<outW {
                                for iy in 0..<gridH {
                                    let yy = startH + T(ph) * binH + (T(iy) + 0.5) * binH / T(gridH)
                                    for ix in 0..<gridW {
                                        let xx = startW + T(pw) * binW + (T(ix) + 0.5) * binW / T(gridW)
                                        guard yy >= -1, yy <= T(height), xx >= -1, xx <= T(width) else {
                                            positions += [0, 0, 0, 0]
                                            weights += [0, 0, 0, 0]
                                            continue
                                        }
                                        var sy = max(yy, 0), sx = max(xx, 0)
                                        var yLow = Int(sy), xLow = Int(sx), yHigh = yLow + 1, xHigh = xLow + 1
                                        if yLow >= height - 1 { yLow = height - 1; yHigh = yLow; sy = T(yLow) }
                                        if xLow >= width - 1 { xLow = width - 1; xHigh = xLow; sx = T(xLow) }
                                        let ly = sy - T(yLow), lx = sx - T(xLow), hy = 1 - ly, hx = 1 - lx
                                        positions += [yLow * width + xLow, yLow * width + xHigh, yHigh * width + xLow, yHigh * width + xHigh]
                                        weights += [hy * hx, hy * lx, ly * hx, ly * lx]
                                    }
                                }
                            }
                        }
                        let samples = gridH * gridW
                        for c in 0..<channels {
                            let plane = (batch * channels + c) * height * width
                            for bin in 0..<(outH * outW) {
                                var value: T = 0
                                for s in 0..<samples {
                                    let p = (bin * samples + s) * 4
                                    if isMax {
                                        var v = weights[p] * xb[plane + positions[p]]
                                        for k in 1..<4 { v = max(v, weights[p + k] * xb[plane + positions[p + k]]) }
                                        value = s == 0 ? v : max(value, v)
                                    } else {
                                        for k in 0..<4 { value += weights[p + k] * xb[plane + positions[p + k]] }
                                    }
                                }
                                yb[((r * channels + c) * outH * outW) + bin] = isMax ? value : value / count
                            }
                        }
                    }
                }
            }
            return y
        }
    }

    /// MaxRoiPool (Fast R-CNN): each ROI, rounded to pixels, is split into pooled_shape bins; each bin takes its max.
    private struct MaxRoiPoolVisitor: FloatVisitor {
        let x: Tensor, rois: Tensor, attributes: Attributes
        func visit<T: FloatElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            guard x.rank == 4, rois.rank == 2, rois.shape[1] == 5 else {
                throw .invalidShape("MaxRoiPool needs X [N,C,H,W] and rois [R,5], got \(x.shape) and \(rois.shape)")
            }
            guard let pooled = attributes.ints("pooled_shape"), pooled.count == 2, pooled.allSatisfy({ $0 >= 1 && $0 <= 1 << 20 }) else {
                throw .invalidArgument("MaxRoiPool needs pooled_shape with two positive values")
            }
            let outH = Int(pooled[0]), outW = Int(pooled[1])
            let scale = Double(attributes.float("spatial_scale", 1))
            let channels = x.shape[1], height = x.shape[2], width = x.shape[3]
            let boxes = rois.doubles()
            let y = try Tensor(zeros: x.dtype, shape: [rois.shape[0], channels, outH, outW])
            x.withValues(T.self) { xb in
                y.withMutableValues(T.self) { yb in
                    for r in 0..<rois.shape[0] {
                        let rawBatch = boxes[r * 5]
                        guard rawBatch >= 0, rawBatch < Double(x.shape[0]) else { continue }
                        let batch = Int(rawBatch)
                        guard batch >= 0, batch < x.shape[0] else { continue }
                        func pixel(_ v: Double) -> Int { v.isFinite ? Int(clamping: Int64(max(-1e9, min(1e9, (v * scale).rounded())))) : 0 }
                        let startW = pixel(boxes[r * 5 + 1]), startH = pixel(boxes[r * 5 + 2])
                        let endW = pixel(boxes[r * 5 + 3]), endH = pixel(boxes[r * 5 + 4])
                        let binH = Double(max(endH - startH + 1, 1)) / Double(outH), binW = Double(max(endW - startW + 1, 1)) / Double(outW)
                        for c in 0..<channels {
                            let plane = (batch * channels + c) * height * width
                            for ph in 0..<outH {
                                let h0 = min(max(Int((Double(ph) * binH).rounded(.down)) + startH, 0), height)
                                let h1 = min(max(Int((Double(ph + 1) * binH).rounded(.up)) + startH, 0), height)
                                for pw in 0..<outW {
                                    let w0 = min(max(Int((Double(pw) * binW).rounded(.down)) + startW, 0), width)
                                    let w1 = min(max(Int((Double(pw + 1) * binW).rounded(.up)) + startW, 0), width)
                                    var best: T = 0, found = false
                                    for h in h0..<max(h0, h1) {
                                        for w in w0..<max(w0, w1) {
                                            let v = xb[plane + h * width + w]
                                            if !found || v > best { best = v; found = true }
                                        }
                                    }
                                    yb[((r * channels + c) * outH + ph) * outW + pw] = best
                                }
                            }
                        }
                    }
                }
            }
            return y
        }
    }

    typealias Geometry = ConvolutionKernels.Geometry

    /// Resolves output size and padding of a pooling window the way ONNX Runtime and PyTorch do: ceil_mode
    /// drops a last window that would start inside the end padding.
    static func geometry(_ x: [Int], _ attributes: Attributes) throws(RuntimeError) -> Geometry {
        guard x.count >= 3 else { throw .invalidShape("pooling needs an input of rank ≥ 3, got \(x)") }
        let dims = x.count - 2
        guard let kernel = attributes.ints("kernel_shape"), kernel.count == dims, kernel.allSatisfy({ $0 >= 1 && $0 <= Int64(Int32.max) }) else {
            throw .invalidArgument("kernel_shape must list \(dims) positive sizes")
        }
        func list(_ name: String, _ count: Int, _ fallback: Int, minimum: Int64) throws(RuntimeError) -> [Int] {
            guard let values = attributes.ints(name) else { return [Int](repeating: fallback, count: count) }
            guard values.count == count, values.allSatisfy({ $0 >= minimum && $0 <= Int64(Int32.max) }) else {
                throw .invalidArgument("\(name) \(values) must have \(count) values ≥ \(minimum)")
            }
            return values.map { Int($0) }
        }
        var g = Geometry()
        g.batch = x[0]
        g.inChannels = x[1]
        g.outChannels = x[1]
        g.inSpatial = Array(x[2...])
        g.kernel = kernel.map { Int($0) }
        var kernelVolume = 1
        for size in g.kernel {
            let (product, overflow) = kernelVolume.multipliedReportingOverflow(by: size)
            guard !overflow, product <= Int(Int32.max) else { throw .invalidArgument("kernel_shape \(kernel) is too large") }
            kernelVolume = product
        }
        g.strides = try list("strides", dims, 1, minimum: 1)
        g.dilations = try list("dilations", dims, 1, minimum: 1)
        let pads = try list("pads", 2 * dims, 0, minimum: 0)
        g.padsBegin = Array(pads[..<dims])
        g.padsEnd = Array(pads[dims...])
        let ceil = attributes.int("ceil_mode", 0) != 0
        let window = (0..<dims).map { (g.kernel[$0] - 1) * g.dilations[$0] + 1 }
        switch attributes.string("auto_pad", "NOTSET") {
        case "SAME_UPPER", "SAME_LOWER":
            let upper = attributes.string("auto_pad", "NOTSET") == "SAME_UPPER"
            g.outSpatial = (0..<dims).map { (g.inSpatial[$0] + g.strides[$0] - 1) / g.strides[$0] }
            for d in 0..<dims {
                let total = max(0, (g.outSpatial[d] - 1) * g.strides[d] + window[d] - g.inSpatial[d])
                g.padsBegin[d] = upper ? total / 2 : total - total / 2
                g.padsEnd[d] = total - g.padsBegin[d]
            }
        case "VALID":
            g.padsBegin = [Int](repeating: 0, count: dims)
            g.padsEnd = g.padsBegin
            g.outSpatial = (0..<dims).map { max(0, (g.inSpatial[$0] - window[$0]) / g.strides[$0] + 1) }
        default:
            g.outSpatial = (0..<dims).map { d in
                let span = g.inSpatial[d] + g.padsBegin[d] + g.padsEnd[d] - window[d]
                if span < 0 { return 0 }
                var out = (ceil ? (span + g.strides[d] - 1) : span) / g.strides[d] + 1
                if ceil && (out - 1) * g.strides[d] >= g.inSpatial[d] + g.padsBegin[d] { out -= 1 }
                return out
            }
        }
        guard CheckedSize.elementCount(g.outShape.map(Int64.init)) != nil else { throw .invalidShape("pooling output \(g.outShape) is too large") }
        return g
    }

    private struct MaxPoolVisitor: ArithmeticVisitor {
        let x: Tensor, g: Geometry, columnMajor: Bool, wantsIndices: Bool
        func visit<T: ArithmeticElement>(_: T.Type) throws(RuntimeError) -> (Tensor, Tensor?) {
            let y = try Tensor(zeros: x.dtype, shape: g.outShape)
            let rows = ConvolutionKernels.RowWindows(g: g)
            if !wantsIndices { return (valuesOnly(y, rows, T.self), nil) }
            let indices = try Tensor(zeros: .int64, shape: g.outShape)
            let inVol = g.inSpatial.reduce(1, *), outVol = g.outSpatial.reduce(1, *)
            let stride = rows.lastStride, outLast = rows.outLast
            let rowStrides = Broadcast.strides(g.inSpatial)
            var colStrides = [Int](repeating: 1, count: g.inSpatial.count)
            for d in 1..<max(g.inSpatial.count, 1) { colStrides[d] = colStrides[d - 1] * g.inSpatial[d - 1] }
            let columnMajor = columnMajor
            x.withValues(T.self) { xb in
                y.withMutableValues(T.self) { yb in
                    indices.withMutableValues(Int64.self) { ib in
                        rows.entries.withUnsafeBufferPointer { entries in
                            guard let xp0 = xb.baseAddress, let yp0 = yb.baseAddress, let ip0 = ib.baseAddress else { return }
                            ConvolutionKernels.parallelFor(g.batch * g.inChannels, work: outVol * g.kernel.reduce(1, *)) { plane in
                                let xp = xp0 + plane * inVol, yp = yp0 + plane * outVol, ip = ip0 + plane * outVol
                                ip.update(repeating: -1, count: outVol)
                                for e in entries {
                                    let dst = yp + e.outRow * outLast, idx = ip + e.outRow * outLast, src = xp + e.inRow + e.inStart
                                    for ow in e.lo..<e.hi {
                                        let v = src[ow * stride]
                                        if idx[ow] < 0 || v > dst[ow] {
                                            dst[ow] = v
                                            idx[ow] = Int64(e.inRow + e.inStart + ow * stride)
                                        }
                                    }
                                }
                                // Indices address the whole tensor; storage_order 1 numbers each plane column-major.
                                let base = Int64(plane * inVol)
                                for o in 0..<outVol {
                                    var offset = Int(max(ip[o], 0))
                                    if columnMajor {
                                        var index = 0
                                        for d in 0..<rowStrides.count {
                                            index += (offset / rowStrides[d]) * colStrides[d]
                                            offset %= rowStrides[d]
                                        }
                                        offset = index
                                    }
                                    ip[o] = base + Int64(offset)
                                }
                            }
                        }
                    }
                }
            }
            return (y, indices)
        }

        /// Without indices the window max is a branch-free running max per row, seeded with −∞; outputs no tap
        /// reaches are reset to zero.
        private func valuesOnly<T: ArithmeticElement>(_ y: Tensor, _ rows: ConvolutionKernels.RowWindows, _: T.Type) -> Tensor {
            let inVol = g.inSpatial.reduce(1, *), outVol = g.outSpatial.reduce(1, *)
            let stride = rows.lastStride, outLast = rows.outLast
            var covered = [Bool](repeating: false, count: outVol)
            for e in rows.entries {
                for ow in e.lo..<e.hi { covered[e.outRow * outLast + ow] = true }
            }
            let allCovered = !covered.contains(false)
            // Every window starts at −∞ (the type's lowest value for integers), so a NaN tap is skipped (`v > m` is false)
            // as in the channels-last kernel, rather than seeding every window with a NaN minimum.
            let lowest = T.from(-Double.infinity)
            x.withValues(T.self) { xb in
                y.withMutableValues(T.self) { yb in
                    rows.entries.withUnsafeBufferPointer { entries in
                        covered.withUnsafeBufferPointer { cover in
                            guard let xp0 = xb.baseAddress, let yp0 = yb.baseAddress else { return }
                            ConvolutionKernels.parallelFor(g.batch * g.inChannels, work: outVol * g.kernel.reduce(1, *)) { plane in
                                let xp = xp0 + plane * inVol, yp = yp0 + plane * outVol
                                yp.update(repeating: lowest, count: outVol)
                                for e in entries {
                                    let dst = yp + e.outRow * outLast, src = xp + e.inRow + e.inStart
                                    if stride == 1 {
                                        for ow in e.lo..<e.hi { let v = src[ow]; if v > dst[ow] { dst[ow] = v } }
                                    } else {
                                        for ow in e.lo..<e.hi { let v = src[ow * stride]; if v > dst[ow] { dst[ow] = v } }
                                    }
                                }
                                if !allCovered {
                                    for o in 0..<outVol where !cover[o] { yp[o] = 0 }
                                }
                            }
                        }
                    }
                }
            }
            return y
        }
    }

    enum WindowKind { case average, averageIncludingPad, lp(Double) }

    private struct WindowVisitor: FloatVisitor {
        let x: Tensor, g: Geometry, kind: WindowKind
        func visit<T: FloatElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            let y = try Tensor(zeros: x.dtype, shape: g.outShape)
            let rows = ConvolutionKernels.RowWindows(g: g)
            let inVol = g.inSpatial.reduce(1, *), outVol = g.outSpatial.reduce(1, *)
            let stride = rows.lastStride, outLast = rows.outLast
            var divisors = [T](repeating: 1, count: outVol)
            switch kind {
            case .average:
                var counts = [Int](repeating: 0, count: outVol)
                for e in rows.entries {
                    for ow in e.lo..<e.hi { counts[e.outRow * outLast + ow] += 1 }
                }
                divisors = counts.map { T(max($0, 1)) }
            case .averageIncludingPad:
                // As the reference implementation: padding, including what ceil_mode adds past the end, counts.
                divisors = [T](repeating: T(g.kernel.reduce(1, *)), count: outVol)
            case .lp: break
            }
            let kind = kind
            x.withValues(T.self) { xb in
                y.withMutableValues(T.self) { yb in
                    rows.entries.withUnsafeBufferPointer { entries in
                        divisors.withUnsafeBufferPointer { div in
                            guard let xp0 = xb.baseAddress, let yp0 = yb.baseAddress else { return }
                            ConvolutionKernels.parallelFor(g.batch * g.inChannels, work: outVol * g.kernel.reduce(1, *)) { plane in
                                let xp = xp0 + plane * inVol, yp = yp0 + plane * outVol
                                switch kind {
                                case .average, .averageIncludingPad:
                                    for e in entries {
                                        let dst = yp + e.outRow * outLast, src = xp + e.inRow + e.inStart
                                        for ow in e.lo..<e.hi { dst[ow] += src[ow * stride] }
                                    }
                                    for o in 0..<outVol { yp[o] /= div[o] }
                                case .lp(let p) where p == 1:
                                    for e in entries {
                                        let dst = yp + e.outRow * outLast, src = xp + e.inRow + e.inStart
                                        for ow in e.lo..<e.hi { dst[ow] += abs(src[ow * stride]) }
                                    }
                                case .lp(let p) where p == 2:
                                    for e in entries {
                                        let dst = yp + e.outRow * outLast, src = xp + e.inRow + e.inStart
                                        for ow in e.lo..<e.hi { let v = src[ow * stride]; dst[ow] += v * v }
                                    }
                                    for o in 0..<outVol { yp[o] = yp[o].squareRoot() }
                                case .lp(let p):
                                    for e in entries {
                                        let dst = yp + e.outRow * outLast, src = xp + e.inRow + e.inStart
                                        for ow in e.lo..<e.hi { dst[ow] += T.from(Glibc.pow(abs(src[ow * stride].asDouble), p)) }
                                    }
                                    for o in 0..<outVol { yp[o] = T.from(Glibc.pow(yp[o].asDouble, 1 / p)) }
                                }
                            }
                        }
                    }
                }
            }
            return y
        }
    }

    /// (Σ|v|^p)^(1/p) over `count` values; p = 1 and 2 avoid `pow`.
    private static func lpNorm<T: FloatElement>(count: Int, p: Double, _ value: (Int) -> T) -> T {
        if p == 2 {
            var sum: T = 0
            for i in 0..<count { let v = value(i); sum += v * v }
            return sum.squareRoot()
        }
        if p == 1 {
            var sum: T = 0
            for i in 0..<count { sum += abs(value(i)) }
            return sum
        }
        var sum = 0.0
        for i in 0..<count { sum += Glibc.pow(abs(value(i).asDouble), p) }
        return T.from(Glibc.pow(sum, 1 / p))
    }

    private struct GlobalVisitor: FloatVisitor {
        let x: Tensor, kind: WindowKind
        func visit<T: FloatElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            guard x.rank >= 2 else { throw .invalidShape("global pooling needs rank ≥ 2, got \(x.shape)") }
            let planes = x.shape[0] * x.shape[1], size = x.shape[2...].reduce(1, *)
            let y = try Tensor(zeros: x.dtype, shape: Array(x.shape[..<2]) + [Int](repeating: 1, count: x.rank - 2))
            x.withValues(T.self) { xb in
                y.withMutableValues(T.self) { yb in
                    for plane in 0..<planes {
                        let base = plane * size
                        switch kind {
                        case .lp(let p):
                            yb[plane] = lpNorm(count: size, p: p) { xb[base + $0] }
                        default:
                            var sum: T = 0
                            for i in 0..<size { sum += xb[base + i] }
                            yb[plane] = size > 0 ? sum / T(size) : T.nan
                        }
                    }
                }
            }
            return y
        }
    }

    private struct GlobalMaxVisitor: ArithmeticVisitor {
        let x: Tensor
        func visit<T: ArithmeticElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            guard x.rank >= 2 else { throw .invalidShape("GlobalMaxPool needs rank ≥ 2, got \(x.shape)") }
            let planes = x.shape[0] * x.shape[1], size = x.shape[2...].reduce(1, *)
            let y = try Tensor(zeros: x.dtype, shape: Array(x.shape[..<2]) + [Int](repeating: 1, count: x.rank - 2))
            guard size > 0 else { return y }
            x.withValues(T.self) { xb in
                y.withMutableValues(T.self) { yb in
                    for plane in 0..<planes {
                        // −∞ first, so NaN elements are skipped as MaxPool skips them.
                        let base = plane * size
                        var best = T.from(-Double.infinity)
                        for i in 0..<size where xb[base + i] > best { best = xb[base + i] }
                        yb[plane] = best
                    }
                }
            }
            return y
        }
    }

    /// Scatters X into a zero tensor at the flat positions MaxPool reported.
    private static func maxUnpool(_ x: Tensor, _ indices: Tensor, _ requested: Tensor?, _ attributes: Attributes) throws(RuntimeError) -> Tensor {
        guard x.rank >= 3, indices.shape == x.shape else { throw .invalidShape("MaxUnpool needs X of rank ≥ 3 and indices of the same shape, got \(x.shape) and \(indices.shape)") }
        let dims = x.rank - 2
        guard let kernel = attributes.ints("kernel_shape"), kernel.count == dims else { throw .invalidArgument("MaxUnpool needs kernel_shape with \(dims) values") }
        let strides = attributes.ints("strides") ?? [Int64](repeating: 1, count: dims)
        let pads = attributes.ints("pads") ?? [Int64](repeating: 0, count: 2 * dims)
        guard strides.count == dims, pads.count == 2 * dims else { throw .invalidArgument("MaxUnpool strides/pads do not match rank") }
        let limit = Int64(Int32.max)
        guard (kernel + strides).allSatisfy({ $0 >= 1 && $0 <= limit }), pads.allSatisfy({ $0 >= 0 && $0 <= limit }) else {
            throw .invalidArgument("MaxUnpool kernel_shape, strides and pads must be positive (pads non-negative) and below 2^31")
        }
        // Indices address the inferred shape; a requested output_shape pads (or crops) it at the end of each axis.
        var inferred = Array(x.shape[..<2])
        for d in 0..<dims {
            let size = (Int64(x.shape[d + 2]) - 1) * strides[d] + kernel[d] - pads[d] - pads[d + dims]
            guard size >= 0, size <= Int64(Int32.max) else { throw .invalidShape("MaxUnpool output size \(size) is invalid") }
            inferred.append(Int(size))
        }
        var outShape = inferred
        if let requested {
            outShape = requested.int64s().map { Int(clamping: $0) }
            guard outShape.count == x.rank, outShape[0] == x.shape[0], outShape[1] == x.shape[1], outShape.allSatisfy({ $0 >= 0 }) else {
                throw .invalidShape("MaxUnpool output_shape \(outShape) does not fit input \(x.shape)")
            }
        }
        let inferredCount = inferred.reduce(1, *)
        let outStrides = Broadcast.strides(outShape), inferredStrides = Broadcast.strides(inferred)
        let y = try Tensor(zeros: x.dtype, shape: outShape)
        let positions = indices.int64s()
        let width = x.dtype.storageBytes
        guard width > 0 else { throw .unsupportedType(op: "MaxUnpool", dtype: x.dtype.onnxName) }
        guard positions.count <= x.count else { throw .invalidShape("MaxUnpool indices do not match X") }
        var targets = [Int](repeating: -1, count: positions.count)
        for i in positions.indices {
            guard positions[i] >= 0, positions[i] < Int64(inferredCount) else {
                throw .invalidArgument("MaxUnpool index \(positions[i]) is outside the unpooled tensor of \(inferredCount) elements")
            }
            var rest = Int(positions[i]), offset = 0
            for d in 0..<inferred.count {
                let coordinate = rest / inferredStrides[d]
                rest %= inferredStrides[d]
                if coordinate >= outShape[d] { offset = -1; break }
                offset += coordinate * outStrides[d]
            }
            targets[i] = offset
        }
        x.withBytes { src in
            y.withMutableBytes { dst in
                for i in targets.indices where targets[i] >= 0 {
                    let to = targets[i] * width
                    for b in 0..<width { dst[to + b] = src[i * width + b] }
                }
            }
        }
        return y
    }
}
