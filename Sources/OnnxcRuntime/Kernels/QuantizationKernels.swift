import OnnxcCore

/// Linear quantization: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear and the quantized
/// QLinearConv / QLinearMatMul, following `onnx/reference/ops/op_*quantize_linear.py`.
enum QuantizationKernels {
    static let table: [String: Kernel] = [
        "QuantizeLinear": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let scale = try context.tensor(inputs, 1)
            let zeroPoint = try context.optionalTensor(inputs, 2)
            let a = context.attributes
            var target = DType.uint8
            if let zeroPoint {
                target = zeroPoint.dtype
            } else if let raw = a.int("output_dtype"), raw != 0 {
                guard let dtype = DType(rawValue: Int32(clamping: raw)) else { throw .invalidArgument("QuantizeLinear output_dtype \(raw) is unknown") }
                target = dtype
            }
            let layout = try ParameterLayout(x.shape, scale.shape, zeroPoint?.shape, axis: a.int("axis", 1), blockSize: a.int("block_size", 0), op: "QuantizeLinear")
            return outputs(try quantize(x, scale: scale, zeroPoint: zeroPoint, target: target, layout: layout, saturate: a.int("saturate", 1) != 0))
        },
        "DequantizeLinear": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let scale = try context.tensor(inputs, 1)
            let zeroPoint = try context.optionalTensor(inputs, 2)
            if let zeroPoint, zeroPoint.dtype != x.dtype {
                throw .invalidArgument("DequantizeLinear zero point type \(zeroPoint.dtype.onnxName) differs from input type \(x.dtype.onnxName)")
            }
            let a = context.attributes
            let layout = try ParameterLayout(x.shape, scale.shape, zeroPoint?.shape, axis: a.int("axis", 1), blockSize: a.int("block_size", 0), op: "DequantizeLinear")
            return outputs(try dequantize(x, scale: scale, zeroPoint: zeroPoint, layout: layout))
        },
        "DynamicQuantizeLinear": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            guard x.dtype == .float else { throw .unsupportedType(op: "DynamicQuantizeLinear", dtype: x.dtype.onnxName) }
            let values = x.array(Float.self)
            var low: Float = 0, high: Float = 0
            for v in values {
                low = min(low, v)
                high = max(high, v)
            }
            let scale: Float = (high == low ? 1 : high - low) / 255
            let initial = 0 - low / scale
            let zeroPoint = initial.isNaN ? 0 : min(255, max(0, initial)).rounded(.toNearestOrEven)
            let y = try Tensor(zeros: .uint8, shape: x.shape)
            y.withMutableValues(UInt8.self) { out in
                for i in values.indices {
                    let q = (values[i] / scale).rounded(.toNearestOrEven) + zeroPoint
                    out[i] = q.isNaN ? 0 : UInt8(min(255, max(0, q)))
                }
            }
            return outputs(y, .scalar(scale), .scalar(UInt8(zeroPoint)))
        },
        "QLinearMatMul": { inputs, context throws(RuntimeError) in
            try qlinearMatMul(inputs, context)
        },
        "QLinearConv": { inputs, context throws(RuntimeError) in
            try qlinearConv(inputs, context)
        },
        // onnxc's form writes float32 (acc · s_x · s_w) when y_scale is absent: a quantized layer read by float ops.
        KernelRegistry.key(RuntimeOps.domain, "QLinearConv"): { inputs, context throws(RuntimeError) in
            try qlinearConv(inputs, context)
        },
        // The reference form: QLinearConv between layout permutations (the compiled path has the integer kernel).
        KernelRegistry.key(RuntimeOps.domain, "NhwcQLinearConv"): { inputs, context throws(RuntimeError) in
            try nhwcQLinearConv(inputs, context)
        },
        KernelRegistry.key(RuntimeOps.domain, "QGemm"): { inputs, context throws(RuntimeError) in
            try qgemm(inputs, context)
        },
        // The reference form of the fused residual: the convolution, then QLinearAdd with the residual as the Add's
        // operand `residual_operand` (0: a, 1: b).
        KernelRegistry.key(RuntimeOps.domain, "NhwcQLinearConvAdd"): { inputs, context throws(RuntimeError) in
            guard inputs.count >= 16 else { throw .invalidArgument("NhwcQLinearConvAdd needs 16 inputs, got \(inputs.count)") }
            let y = try nhwcQLinearConv(Array(inputs[0..<9]), context).first ?? nil
            let residualIsA = context.attributes.int("residual_operand", 1) == 0
            let (r, c) = (Array(inputs[9..<12]), [y] + Array(inputs[12..<14]))
            return try qlinearAdd((residualIsA ? r + c : c + r) + Array(inputs[14..<16]), context)
        },
        // The reference forms of the uint8 Mul (any broadcast, the squeeze-excitation gate among them) and pool: the
        // compiled kernels' float arithmetic, as loops.
        KernelRegistry.key(RuntimeOps.domain, "QLinearMul"): { inputs, context throws(RuntimeError) in
            let a = try context.tensor(inputs, 0), g = try context.tensor(inputs, 3)
            guard a.dtype == .uint8, g.dtype == .uint8 else {
                throw .invalidArgument("QLinearMul takes two uint8 tensors, got \(a.dtype.onnxName) and \(g.dtype.onnxName)")
            }
            let s = try (1...7).filter { $0 != 3 }.map { i throws(RuntimeError) in Float(try context.tensor(inputs, i).doubles().first ?? 0) }
            let k = s[0] * s[2] / s[4]
            return outputs(try Broadcast.binary(a, g, as: UInt8.self, UInt8.self, to: UInt8.self) { x, gate in
                let q = Double(min(512, max(-512, (Float(x) - s[1]) * ((Float(gate) - s[3]) * k)))).rounded(.toNearestOrEven) + Double(s[5])
                return UInt8(min(255, max(0, q)))
            })
        },
        KernelRegistry.key(RuntimeOps.domain, "NhwcQGlobalAveragePool"): { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            guard x.dtype == .uint8, x.rank == 4 else { throw .invalidArgument("NhwcQGlobalAveragePool takes uint8 [N, H, W, C], got \(x.shape)") }
            let s = try (1...4).map { i throws(RuntimeError) in Float(try context.tensor(inputs, i).doubles().first ?? 0) }
            let (n, pixels, c) = (x.shape[0], x.shape[1] * x.shape[2], x.shape[3])
            let k = pixels > 0 ? s[0] / (s[2] * Float(pixels)) : 0
            let xv = x.array(UInt8.self)
            var y = [UInt8](repeating: 0, count: n * c)
            for b in 0..<n {
                for ch in 0..<c {
                    var sum = 0
                    for p in 0..<pixels { sum += Int(xv[(b * pixels + p) * c + ch]) }
                    let v = Float(sum - pixels * Int(s[1])) * k
                    y[b * c + ch] = UInt8(min(255, max(0, Double(min(512, max(-512, v))).rounded(.toNearestOrEven) + Double(s[3]))))
                }
            }
            return outputs(try Tensor(y, shape: [n, 1, 1, c]))
        },
        KernelRegistry.key(RuntimeOps.domain, "NhwcQAveragePool"): { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            guard x.dtype == .uint8, x.rank == 4 else { throw .invalidArgument("NhwcQAveragePool takes uint8 [N, H, W, C], got \(x.dtype.onnxName)\(x.shape)") }
            let s = try (1...4).map { i throws(RuntimeError) in Float(try context.tensor(inputs, i).doubles().first ?? 0) }
            let g = try ChannelsLastKernels.poolGeometry(x.shape, context.attributes, op: context.node.opType)
            let includePad = context.attributes.int("count_include_pad", 0) != 0
            let (h, w, c) = (x.shape[1], x.shape[2], x.shape[3]), (oh, ow) = (g.outSpatial[0], g.outSpatial[1])
            let xv = x.array(UInt8.self)
            var y = [UInt8](repeating: 0, count: g.batch * oh * ow * c)
            for b in 0..<g.batch {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var taps: [Int] = []
                        for ky in 0..<g.kernel[0] {
                            let iy = oy * g.strides[0] - g.padsBegin[0] + ky * g.dilations[0]
                            for kx in 0..<g.kernel[1] {
                                let ix = ox * g.strides[1] - g.padsBegin[1] + kx * g.dilations[1]
                                if iy >= 0, iy < h, ix >= 0, ix < w { taps.append(((b * h + iy) * w + ix) * c) }
                            }
                        }
                        let divisor = includePad ? g.kernel[0] * g.kernel[1] : taps.count
                        let k = divisor > 0 ? s[0] / (s[2] * Float(divisor)) : 0
                        for ch in 0..<c {
                            let sum = taps.reduce(0) { $0 + Int(xv[$1 + ch]) }
                            let v = Float(sum - taps.count * Int(s[1])) * k
                            y[((b * oh + oy) * ow + ox) * c + ch] = UInt8(min(255, max(0, Double(min(512, max(-512, v))).rounded(.toNearestOrEven) + Double(s[3]))))
                        }
                    }
                }
            }
            return outputs(try Tensor(y, shape: [g.batch, oh, ow, c]))
        },
        KernelRegistry.key(RuntimeOps.domain, "QLookup"): { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0), table = try context.tensor(inputs, 1)
            guard x.dtype == .uint8, table.dtype == .uint8, table.count == 256 else {
                throw .invalidArgument("QLookup takes uint8 x and a uint8 [256] table, got \(x.dtype.onnxName) and \(table.dtype.onnxName)\(table.shape)")
            }
            let t = table.array(UInt8.self)
            return outputs(try Tensor(x.array(UInt8.self).map { t[Int($0)] }, shape: x.shape))
        },
        KernelRegistry.key(RuntimeOps.domain, "QLinearAdd"): { inputs, context throws(RuntimeError) in
            try qlinearAdd(inputs, context)
        },
    ]

    /// ai.onnxc::QGemm(x u8 [..., K], x_scale, x_zero_point, w int8 [N, K], w_scale [N] or scalar, bias int32 [N]?,
    /// y_scale?, y_zero_point?): Y[..., n] = requantize(bias[n] + Σ_k (x − x_zp)·w[n, k]), or float32 without y_scale.
    /// The reference the compiled kernel is tested against.
    private static func qgemm(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let x = try context.tensor(inputs, 0), xScale = try context.tensor(inputs, 1), xZero = try context.tensor(inputs, 2)
        let w = try context.tensor(inputs, 3), wScale = try context.tensor(inputs, 4)
        let bias = try context.optionalTensor(inputs, 5), yScale = try context.optionalTensor(inputs, 6), yZero = try context.optionalTensor(inputs, 7)
        guard x.dtype == .uint8, w.dtype == .int8, w.rank == 2, x.rank >= 1 else {
            throw .invalidArgument("QGemm takes uint8 x and int8 [N, K] weights, got \(x.dtype.onnxName) \(x.shape) and \(w.dtype.onnxName) \(w.shape)")
        }
        let n = w.shape[0], k = w.shape[1]
        guard x.shape.last == k else { throw .invalidShape("QGemm x \(x.shape) does not end in K = \(k)") }
        let m = x.count / max(k, 1)
        let sx = try scalar(xScale, "x_scale", op: "QGemm"), xz = Int32(xZero.int64s().first ?? 0)
        let sw = try floats(wScale, op: "QGemm")
        guard sw.count == 1 || sw.count == n else { throw .invalidShape("QGemm w_scale must have 1 or \(n) elements") }
        var b = [Int32](repeating: 0, count: n)
        let floatBias = bias?.dtype == .float && yScale == nil ? bias?.array(Float.self) : nil
        if let bias, floatBias == nil {
            guard bias.dtype == .int32, bias.count == n else { throw .invalidShape("QGemm bias must be int32 with \(n) elements") }
            b = bias.array(Int32.self)
        }
        if let floatBias, floatBias.count != n { throw .invalidShape("QGemm bias must have \(n) elements") }
        let xv = x.array(UInt8.self), wv = w.array(Int8.self)
        var acc = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var sum = Int64(b[j])
                for kk in 0..<k { sum += Int64(Int32(xv[i * k + kk]) - xz) * Int64(wv[j * k + kk]) }
                acc[i * n + j] = Double(sum)
            }
        }
        let shape = Array(x.shape.dropLast()) + [n]
        guard let yScale else {
            let y = try Tensor((0..<m * n).map { Float(acc[$0] * Double(sx * sw[sw.count == 1 ? 0 : $0 % n])) + (floatBias?[$0 % n] ?? 0) }, shape: shape)
            return outputs(y)
        }
        let sy = try scalar(yScale, "y_scale", op: "QGemm")
        let y = try Tensor(zeros: .uint8, shape: shape)
        requantize(acc, multiplier: { i in Double(sx * sw[sw.count == 1 ? 0 : i % n] / sy) }, zeroPoint: yZero?.doubles().first ?? 0, into: y)
        return outputs(y)
    }

    /// ai.onnxc::NhwcQLinearConv: QLinearConv between layout permutations (the compiled path has the integer kernel).
    private static func nhwcQLinearConv(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let x = try context.tensor(inputs, 0)
        guard x.rank == 4 else { throw .invalidShape("NhwcQLinearConv needs an [N, H, W, C] input, got shape \(x.shape)") }
        var planar = inputs
        planar[0] = .tensor(try ShapeKernels.permuted(x, [0, 3, 1, 2]))
        guard let y = try qlinearConv(planar, context).first??.tensor else { throw .invalidArgument("NhwcQLinearConv produced no output") }
        return outputs(try ShapeKernels.permuted(y, [0, 2, 3, 1]))
    }

    /// ai.onnxc::QLinearAdd(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point) on uint8
    /// tensors that broadcast: Q(DQ(a) + DQ(b)), as (a − a_zp)·(a_scale/y_scale) + (b − b_zp)·(b_scale/y_scale) in float32.
    private static func qlinearAdd(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let a = try context.tensor(inputs, 0), b = try context.tensor(inputs, 3)
        guard a.dtype == .uint8, b.dtype == .uint8 else {
            throw .invalidArgument("QLinearAdd takes two uint8 tensors, got \(a.dtype.onnxName) and \(b.dtype.onnxName)")
        }
        let sa = Double(try scalar(try context.tensor(inputs, 1), "a_scale", op: "QLinearAdd")), za = Float(try context.tensor(inputs, 2).int64s().first ?? 0)
        let sb = Double(try scalar(try context.tensor(inputs, 4), "b_scale", op: "QLinearAdd")), zb = Float(try context.tensor(inputs, 5).int64s().first ?? 0)
        let sy = Double(try scalar(try context.tensor(inputs, 6), "y_scale", op: "QLinearAdd")), zy = Double(try context.tensor(inputs, 7).int64s().first ?? 0)
        // The compiled kernel's arithmetic (ck_qbinary_u8, ck_qadd_u8_float): float32, one fused multiply-add.
        let ka = Float(sa) / Float(sy), kb = Float(sb) / Float(sy)
        return outputs(try Broadcast.binary(a, b, as: UInt8.self, UInt8.self, to: UInt8.self) { x, z in
            let v = ((Float(x) - za) * ka).addingProduct(Float(z) - zb, kb)
            let q = Double(min(512, max(-512, v))).rounded(.toNearestOrEven) + zy
            return UInt8(q.isNaN ? 0 : min(255, max(0, q)))
        })
    }

    /// Which scale / zero-point element applies to each element of x: per tensor, per axis, or per block.
    struct ParameterLayout {
        enum Mode { case tensor, axis, blocked(Int) }
        var mode = Mode.tensor
        var dim = 1, inner = 1, parameterDim = 1

        init(_ x: [Int], _ scale: [Int], _ zeroPoint: [Int]?, axis rawAxis: Int64, blockSize: Int64, op: String) throws(RuntimeError) {
            if let zeroPoint, zeroPoint.reduce(1, *) != scale.reduce(1, *) { throw .invalidShape("\(op) zero point shape \(zeroPoint) differs from scale shape \(scale)") }
            let scaleCount = scale.reduce(1, *)
            if scaleCount == 1 { return }
            let rank = x.count
            guard rawAxis >= -Int64(rank), rawAxis < Int64(rank) else { throw .invalidArgument("\(op) axis \(rawAxis) is out of range for rank \(rank)") }
            let axis = Int(rawAxis < 0 ? rawAxis + Int64(rank) : rawAxis)
            dim = x[axis]
            inner = x[(axis + 1)...].reduce(1, *)
            if blockSize > 0 {
                guard blockSize <= Int64(Int32.max), scale.count == rank else { throw .invalidShape("\(op) blocked scale \(scale) must have rank \(rank)") }
                let blocks = (dim + Int(blockSize) - 1) / Int(blockSize)
                for d in 0..<rank where d != axis && scale[d] != x[d] {
                    throw .invalidShape("\(op) blocked scale \(scale) does not match input \(x) outside axis \(axis)")
                }
                guard scale[axis] == blocks || (dim == 0 && scale[axis] >= 0) else {
                    throw .invalidShape("\(op) blocked scale has \(scale[axis]) blocks along axis \(axis); expected \(blocks)")
                }
                parameterDim = scale[axis]
                mode = .blocked(Int(blockSize))
            } else {
                guard scale.count == 1, scale[0] == dim else { throw .invalidShape("\(op) per-axis scale \(scale) must have \(dim) elements (axis \(axis) of \(x))") }
                mode = .axis
            }
        }

        @inline(__always) func index(_ i: Int) -> Int {
            switch mode {
            case .tensor: return 0
            case .axis: return (i / inner) % dim
            case .blocked(let size):
                let r = i % inner, a = (i / inner) % dim, o = i / (inner * dim)
                return (o * parameterDim + a / size) * inner + r
            }
        }
    }

    /// Values of a float tensor (float, float16, bfloat16) widened to Float.
    static func floats(_ t: Tensor, op: String) throws(RuntimeError) -> [Float] {
        switch t.dtype {
        case .float: return t.array(Float.self)
        case .float16: return t.withValues(Float16.self) { $0.map(Float.init) }
        case .bfloat16: return t.withBytes { raw in (0..<t.count).map { NarrowFloat.bfloat16(raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) } }
        case .double: return t.withValues(Double.self) { $0.map(Float.init) }
        default: throw .unsupportedType(op: op, dtype: t.dtype.onnxName)
        }
    }

    private static func quantize(_ x: Tensor, scale: Tensor, zeroPoint: Tensor?, target: DType, layout: ParameterLayout, saturate: Bool) throws(RuntimeError) -> Tensor {
        let y = try Tensor(zeros: target, shape: x.shape)
        // x / scale as the reference computes it: in x's own precision (float16 rounds the quotient to half;
        // int32 input divides in double).
        if x.dtype == .int32 {
            let s = scale.doubles(), xs = x.doubles()
            guard s.count > 0 || xs.isEmpty else { throw .invalidShape("QuantizeLinear scale is empty") }
            try emit(xs.indices.map { xs[$0] / s[layout.index($0)] }, into: y, zeroPoint: zeroPoint, layout: layout, saturate: saturate)
        } else {
            let xs = try floats(x, op: "QuantizeLinear"), s = try floats(scale, op: "QuantizeLinear")
            guard s.count > 0 || xs.isEmpty else { throw .invalidShape("QuantizeLinear scale is empty") }
            let half = x.dtype == .float16
            try emit(xs.indices.map { i in
                let q = xs[i] / s[layout.index(i)]
                return half ? Float(Float16(q)) : q
            }, into: y, zeroPoint: zeroPoint, layout: layout, saturate: saturate)
        }
        return y
    }

    /// Rounds half to even, adds the zero point and saturates (integers), or encodes (float8).
    private static func emit<W: BinaryFloatingPoint>(_ scaled: [W], into y: Tensor, zeroPoint: Tensor?, layout: ParameterLayout, saturate: Bool) throws(RuntimeError) {
        let zp = zeroPoint?.doubles().map { W($0) } ?? [0]
        let perElement = zp.count > 1
        func integer(_ low: W, _ high: W) -> [W] {
            scaled.indices.map { i in
                let v = scaled[i].rounded(.toNearestOrEven) + zp[perElement ? layout.index(i) : 0]
                return v.isNaN ? 0 : min(high, max(low, v))
            }
        }
        switch y.dtype {
        case .uint8: y.withMutableValues(UInt8.self) { out in for (i, v) in integer(0, 255).enumerated() { out[i] = UInt8(v) } }
        case .int8: y.withMutableValues(Int8.self) { out in for (i, v) in integer(-128, 127).enumerated() { out[i] = Int8(v) } }
        case .uint16: y.withMutableValues(UInt16.self) { out in for (i, v) in integer(0, 65535).enumerated() { out[i] = UInt16(v) } }
        case .int16: y.withMutableValues(Int16.self) { out in for (i, v) in integer(-32768, 32767).enumerated() { out[i] = Int16(v) } }
        case .uint4, .int4:
            let values = y.dtype == .uint4 ? integer(0, 15) : integer(-8, 7)
            y.withMutableBytes { out in
                for (i, v) in values.enumerated() {
                    let nibble = UInt8(truncatingIfNeeded: Int(v)) & 0x0F
                    out[i / 2] |= i % 2 == 0 ? nibble : nibble << 4
                }
            }
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz:
            guard let format = Float8Format(y.dtype) else { throw .unsupportedType(op: "QuantizeLinear", dtype: y.dtype.onnxName) }
            y.withMutableBytes { out in
                for i in scaled.indices { out[i] = format.encode(Float(scaled[i]), saturate: saturate) }
            }
        default:
            throw .unsupportedType(op: "QuantizeLinear", dtype: y.dtype.onnxName)
        }
    }

    private static func dequantize(_ x: Tensor, scale: Tensor, zeroPoint: Tensor?, layout: ParameterLayout) throws(RuntimeError) -> Tensor {
        switch x.dtype {
        case .int8, .uint8, .int16, .uint16, .int32, .int4, .uint4, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz: break
        default: throw .unsupportedType(op: "DequantizeLinear", dtype: x.dtype.onnxName)
        }
        let isFloat8 = Float8Format(x.dtype) != nil
        let s = try floats(scale, op: "DequantizeLinear")
        guard s.count > 0 || x.count == 0 else { throw .invalidShape("DequantizeLinear scale is empty") }
        let xs: [Float]
        switch x.dtype {
        case .uint8: xs = x.withValues(UInt8.self) { $0.map(Float.init) }
        case .int8: xs = x.withValues(Int8.self) { $0.map(Float.init) }
        case .uint16: xs = x.withValues(UInt16.self) { $0.map(Float.init) }
        case .int16: xs = x.withValues(Int16.self) { $0.map(Float.init) }
        default: xs = x.doubles().map(Float.init)  // int32 as the reference (astype float32); float8, 4-bit
        }
        let zp = isFloat8 ? [Float(0)] : zeroPoint?.doubles().map(Float.init) ?? [0]
        var values = [Float](repeating: 0, count: xs.count)
        for i in xs.indices {
            values[i] = (xs[i] - zp[zp.count == 1 ? 0 : layout.index(i)]) * s[layout.index(i)]
        }
        let y = try Tensor(zeros: scale.dtype, shape: x.shape)
        try store(values, into: y, op: "DequantizeLinear")
        return y
    }

    /// Writes Float results into a float, float16 or bfloat16 tensor (round to nearest even).
    static func store(_ values: [Float], into y: Tensor, op: String) throws(RuntimeError) {
        switch y.dtype {
        case .float: y.withMutableValues(Float.self) { out in for i in values.indices { out[i] = values[i] } }
        case .float16: y.withMutableValues(Float16.self) { out in for i in values.indices { out[i] = Float16(values[i]) } }
        case .double: y.withMutableValues(Double.self) { out in for i in values.indices { out[i] = Double(values[i]) } }
        case .bfloat16:
            y.withMutableBytes { out in
                for i in values.indices {
                    let bits = values[i].bitPattern
                    let rounded: UInt16 = values[i].isNaN ? 0x7FC0 : UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
                    out.storeBytes(of: rounded, toByteOffset: i * 2, as: UInt16.self)
                }
            }
        default: throw .unsupportedType(op: op, dtype: y.dtype.onnxName)
        }
    }

    /// The four float8 encodings. Encoding is a bit-exact port of `onnx.helper.float32_to_float8e4m3/e5m2`,
    /// including its overflow quirks (e.g. e4m3fn maps [480, 496) to 448 without saturation), so QuantizeLinear
    /// matches the reference and ONNX Runtime.
    struct Float8Format {
        let dtype: DType

        init?(_ dtype: DType) {
            switch dtype {
            case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz: self.dtype = dtype
            default: return nil
            }
        }

        func encode(_ value: Float, saturate: Bool) -> UInt8 {
            let b = value.bitPattern
            var ret = UInt32((b & 0x8000_0000) >> 24)
            let e = Int((b & 0x7F80_0000) >> 23), m = b & 0x007F_FFFF
            let isNaN = (b & 0x7FC0_0000) == 0x7FC0_0000 || value.isNaN
            /// Round-half-even on the bits below a subnormal's last kept bit.
            func roundSubnormal(_ mask: UInt32) -> Bool {
                m & mask != 0 && (ret & 1 != 0 || m & (mask &- 1) > 0 || (m & (mask << 1) != 0 && m & (mask &- 1) == 0))
            }
            switch dtype {
            case .float8e4m3fn:
                if isNaN { return UInt8(0x7F | ret) }
                if value.isInfinite { return UInt8(saturate ? ret | 126 : ret | 0x7F) }
                guard e != 0 else { return UInt8(ret) }
                if e < 117 {
                } else if e < 121 {
                    let ex = e - 120
                    if ex >= -2 {
                        ret |= 1 << UInt32(2 + ex)
                        ret |= m >> UInt32(21 - ex)
                    } else if m > 0 {
                        ret |= 1
                    }
                    if roundSubnormal(1 << UInt32(20 - ex)) { ret += 1 }
                } else if e < 136 {
                    let ex = e - 120
                    ret |= UInt32(ex) << 3
                    ret |= m >> 20
                    if ret & 0x7F == 0x7F { ret &= 0xFE }
                    if m & 0x80000 != 0 && (m & 0x100000 != 0 || m & 0x7FFFF != 0) {
                        if ret & 0x7F < 0x7E { ret += 1 } else if !saturate { ret |= 0x7F }
                    }
                } else {
                    ret |= saturate ? 126 : 0x7F
                }
                return UInt8(truncatingIfNeeded: ret)
            case .float8e4m3fnuz:
                if isNaN { return 0x80 }
                if value.isInfinite { return saturate ? UInt8(ret | 127) : 0x80 }
                if e < 116 {
                    ret = 0
                } else if e < 120 {
                    let ex = e - 119
                    if ex >= -2 {
                        ret |= 1 << UInt32(2 + ex)
                        ret |= m >> UInt32(21 - ex)
                    } else if m > 0 {
                        ret |= 1
                    } else {
                        ret = 0
                    }
                    if roundSubnormal(1 << UInt32(20 - ex)) { ret += 1 }
                } else if e < 135 {
                    let ex = e - 119
                    ret |= UInt32(ex) << 3
                    ret |= m >> 20
                    if m & 0x80000 != 0 && (m & 0x100000 != 0 || m & 0x7FFFF != 0) {
                        if ret & 0x7F < 0x7F { ret += 1 } else if !saturate { return 0x80 }
                    }
                } else if saturate {
                    ret |= 0x7F
                } else {
                    return 0x80
                }
                return UInt8(truncatingIfNeeded: ret)
            case .float8e5m2:
                if isNaN { return UInt8(0x7F | ret) }
                if value.isInfinite { return UInt8(saturate ? ret | 0x7B : ret | 0x7C) }
                guard e != 0 else { return UInt8(ret) }
                if e < 110 {
                } else if e < 113 {
                    let ex = e - 112
                    if ex >= -1 {
                        ret |= 1 << UInt32(1 + ex)
                        ret |= m >> UInt32(22 - ex)
                    } else if m > 0 {
                        ret |= 1
                    }
                    if roundSubnormal(1 << UInt32(21 - ex)) { ret += 1 }
                } else if e < 143 {
                    let ex = e - 112
                    ret |= UInt32(ex) << 2
                    ret |= m >> 21
                    if m & 0x100000 != 0 && (m & 0xFFFFF != 0 || m & 0x200000 != 0) {
                        if ret & 0x7F < 0x7B { ret += 1 } else { ret |= saturate ? 0x7B : 0x7C }
                    }
                } else {
                    ret |= saturate ? 0x7B : 0x7C
                }
                return UInt8(truncatingIfNeeded: ret)
            default:  // float8e5m2fnuz
                if isNaN { return 0x80 }
                if value.isInfinite { return saturate ? UInt8(ret | 0x7F) : 0x80 }
                if e < 109 {
                    ret = 0
                } else if e < 112 {
                    let ex = e - 111
                    if ex >= -1 {
                        ret |= 1 << UInt32(1 + ex)
                        ret |= m >> UInt32(22 - ex)
                    } else if m > 0 {
                        ret |= 1
                    } else {
                        ret = 0
                    }
                    if roundSubnormal(1 << UInt32(21 - ex)) { ret += 1 }
                } else if e < 143 {
                    let ex = e - 111
                    ret |= UInt32(ex) << 2
                    ret |= m >> 21
                    if m & 0x100000 != 0 && (m & 0xFFFFF != 0 || m & 0x200000 != 0) {
                        if ret & 0x7F < 0x7F { ret += 1 } else if !saturate { return 0x80 }
                    }
                } else if saturate {
                    ret |= 0x7F
                } else {
                    return 0x80
                }
                return UInt8(truncatingIfNeeded: ret)
            }
        }
    }

    // MARK: - Quantized linear algebra

    /// Requantizes an exact integer accumulator: saturate(round_half_even(acc · multiplier) + zero point).
    /// `wrap` reproduces the reference QLinearMatMul, which casts without clipping (numpy wraps modulo 256).
    private static func requantize(_ acc: [Double], multiplier: (Int) -> Double, zeroPoint: Double, into y: Tensor, wrap: Bool = false) {
        if wrap {
            y.withMutableBytes { out in
                for i in acc.indices {
                    let v = (acc[i] * multiplier(i) + zeroPoint).rounded(.toNearestOrEven)
                    out[i] = UInt8(truncatingIfNeeded: v.isFinite ? Int64(max(-9.0e18, min(9.0e18, v))) : 0)
                }
            }
            return
        }
        /// NaN (from NaN or infinite scales) quantizes to 0 rather than trapping.
        func clamped(_ i: Int, _ low: Double, _ high: Double) -> Double {
            let v = (acc[i] * multiplier(i) + zeroPoint).rounded(.toNearestOrEven)
            return v.isNaN ? 0 : min(high, max(low, v))
        }
        if y.dtype == .int8 {
            y.withMutableValues(Int8.self) { out in
                for i in acc.indices { out[i] = Int8(clamped(i, -128, 127)) }
            }
        } else {
            y.withMutableValues(UInt8.self) { out in
                for i in acc.indices { out[i] = UInt8(clamped(i, 0, 255)) }
            }
        }
    }

    /// One float scale per tensor (float or float16), as the float the reference multiplies with.
    private static func scalar(_ t: Tensor, _ name: String, op: String) throws(RuntimeError) -> Float {
        let v = try floats(t, op: op)
        guard v.count == 1 else { throw .invalidShape("\(op) \(name) must be a scalar, got shape \(t.shape)") }
        return v[0]
    }

    private static func qlinearMatMul(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let a = try context.tensor(inputs, 0), aScale = try context.tensor(inputs, 1), aZero = try context.tensor(inputs, 2)
        let b = try context.tensor(inputs, 3), bScale = try context.tensor(inputs, 4), bZero = try context.tensor(inputs, 5)
        let yScale = try context.tensor(inputs, 6), yZero = try context.tensor(inputs, 7)
        for t in [a, b, yZero] where t.dtype != .int8 && t.dtype != .uint8 {
            throw .unsupportedType(op: "QLinearMatMul", dtype: t.dtype.onnxName)
        }
        guard a.rank >= 1, b.rank >= 1 else { throw .invalidShape("QLinearMatMul needs inputs of rank ≥ 1") }
        let aShape = a.rank == 1 ? [1] + a.shape : a.shape
        let bShape = b.rank == 1 ? b.shape + [1] : b.shape
        let m = aShape[aShape.count - 2], k = aShape[aShape.count - 1], n = bShape[bShape.count - 1]
        guard bShape[bShape.count - 2] == k else { throw .invalidShape("QLinearMatMul shapes \(a.shape) and \(b.shape) do not align") }
        let batch = try Broadcast.shape([Array(aShape.dropLast(2)), Array(bShape.dropLast(2))])
        var outShape = batch + [m, n]
        let aStrides = Broadcast.strides(of: Array(aShape.dropLast(2)), broadcastTo: batch)
        let bStrides = Broadcast.strides(of: Array(bShape.dropLast(2)), broadcastTo: batch)
        // Scales/zero points: scalar, or per row of a ([M] / [M,1]) and per column of b ([N] / [1,N]).
        let aZeros = aZero.doubles(), bZeros = bZero.doubles(), aScales = try floats(aScale, op: "QLinearMatMul"), bScales = try floats(bScale, op: "QLinearMatMul")
        guard [1, m].contains(aZeros.count), [1, m].contains(aScales.count), [1, n].contains(bZeros.count), [1, n].contains(bScales.count) else {
            throw .invalidShape("QLinearMatMul scales/zero points must be scalars, per row of a or per column of b")
        }
        let ys = try scalar(yScale, "y_scale", op: "QLinearMatMul"), yz = yZero.doubles().first ?? 0
        // Zero points subtracted up front; the blocked GEMM then sums exactly in Double (int8 products stay < 2^53).
        var av = a.doubles(), bv = b.doubles()
        let aBatches = aShape.dropLast(2).reduce(1, *), bBatches = bShape.dropLast(2).reduce(1, *)
        for p in 0..<aBatches * m {
            let z = aZeros[aZeros.count == 1 ? 0 : p % max(m, 1)]
            for kk in 0..<k { av[p * k + kk] -= z }
        }
        for p in 0..<bBatches * k {
            for j in 0..<n { bv[p * n + j] -= bZeros[bZeros.count == 1 ? 0 : j] }
        }
        let batchCount = batch.reduce(1, *)
        var acc = [Double](repeating: 0, count: batchCount * m * n)
        var index = [Int](repeating: 0, count: batch.count)
        av.withUnsafeBufferPointer { ap in
            bv.withUnsafeBufferPointer { bp in
                acc.withUnsafeMutableBufferPointer { cp in
                    guard let a0 = ap.baseAddress, let b0 = bp.baseAddress, let c0 = cp.baseAddress else { return }
                    for p in 0..<batchCount {
                        var aOff = 0, bOff = 0
                        for d in 0..<batch.count { aOff += index[d] * aStrides[d]; bOff += index[d] * bStrides[d] }
                        ConvolutionKernels.gemm(m: m, n: n, k: k, a: a0 + aOff * m * k, b: b0 + bOff * k * n, c: c0 + p * m * n)
                        var d = batch.count - 1
                        while d >= 0 {
                            index[d] += 1
                            if index[d] < batch[d] { break }
                            index[d] = 0
                            d -= 1
                        }
                    }
                }
            }
        }
        let halfScales = aScale.dtype == .float16
        let multiplier: (Int) -> Double = { i in
            let row = (i / n) % max(m, 1), column = i % n
            let sa = aScales[aScales.count == 1 ? 0 : row], sb = bScales[bScales.count == 1 ? 0 : column]
            return halfScales ? Double(Float(Float16(Float16(sa) * Float16(sb)) / Float16(ys))) : Double(sa * sb / ys)
        }
        if a.rank == 1 { outShape.remove(at: outShape.count - 2) }
        if b.rank == 1 { outShape.removeLast() }
        let y = try Tensor(zeros: yZero.dtype, shape: outShape)
        requantize(acc, multiplier: multiplier, zeroPoint: yz, into: y, wrap: true)
        return outputs(y)
    }

    private static func qlinearConv(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let x = try context.tensor(inputs, 0), xScale = try context.tensor(inputs, 1), xZero = try context.tensor(inputs, 2)
        let w = try context.tensor(inputs, 3), wScale = try context.tensor(inputs, 4), wZero = try context.tensor(inputs, 5)
        let yScale = try context.optionalTensor(inputs, 6), yZero = try context.optionalTensor(inputs, 7)
        let bias = try context.optionalTensor(inputs, 8)
        if let yZero, yZero.dtype != .int8 && yZero.dtype != .uint8 { throw .unsupportedType(op: "QLinearConv", dtype: yZero.dtype.onnxName) }
        let g = try ConvolutionKernels.Geometry(x: x.shape, w: w.shape, attributes: context.attributes, transposed: false)
        let xs = try ConvolutionKernels.integerOperand(x, zeroPoint: xZero, channels: 0, op: "QLinearConv")
        let ws = try ConvolutionKernels.integerOperand(w, zeroPoint: wZero, channels: g.outChannels, op: "QLinearConv")
        var biasValues: [Double]?
        // onnxc's float-output form may take a float bias (the dynamic grid's), added after the scaling.
        let floatBias = bias?.dtype == .float && yScale == nil ? bias?.array(Float.self) : nil
        if let bias, floatBias == nil {
            guard bias.dtype == .int32, bias.count == g.outChannels else { throw .invalidShape("QLinearConv bias must be int32 with \(g.outChannels) elements") }
            biasValues = bias.doubles()
        }
        if let floatBias, floatBias.count != g.outChannels { throw .invalidShape("QLinearConv bias must have \(g.outChannels) elements") }
        let acc = xs.withUnsafeBufferPointer { xb in
            ws.withUnsafeBufferPointer { wb in
                biasValues.withOptional { bb in ConvolutionKernels.convolve(x: xb, w: wb, bias: bb, geometry: g) }
            }
        }
        let sx = try scalar(xScale, "x_scale", op: "QLinearConv")
        let sw = try floats(wScale, op: "QLinearConv")
        guard sw.count == 1 || sw.count == g.outChannels else { throw .invalidShape("QLinearConv w_scale must have 1 or \(g.outChannels) elements") }
        let outVol = g.outSpatial.reduce(1, *), channels = g.outChannels
        guard let yScale, let yZero else {
            let y = try Tensor(acc.indices.map { i in
                let c = (i / max(outVol, 1)) % max(channels, 1)
                return Float(acc[i] * Double(sx * sw[sw.count == 1 ? 0 : c])) + (floatBias?[c] ?? 0)
            }, shape: g.outShape)
            return outputs(y)
        }
        let sy = try scalar(yScale, "y_scale", op: "QLinearConv")
        let y = try Tensor(zeros: yZero.dtype, shape: g.outShape)
        requantize(acc, multiplier: { i in
            let m = (i / max(outVol, 1)) % max(channels, 1)
            return Double(sx * sw[sw.count == 1 ? 0 : m] / sy)
        }, zeroPoint: yZero.doubles().first ?? 0, into: y)
        return outputs(y)
    }
}

extension Optional {
    fileprivate func withOptional<T, R>(_ body: (UnsafeBufferPointer<T>?) -> R) -> R where Wrapped == [T] {
        switch self {
        case .some(let array): return array.withUnsafeBufferPointer { body($0) }
        case .none: return body(nil)
        }
    }
}
