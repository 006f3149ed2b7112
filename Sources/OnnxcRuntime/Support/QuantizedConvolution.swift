internal import CKernels
import OnnxcCore

/// One integer convolution (or a product, as a 1×1 convolution over M pixels), ready to run: weights in the
/// kernel's packed layout, the bias with its zero-point-free int32 values, and the per-channel fixed-point
/// multipliers computed once from the scales (TFLite's requantization; see `ck_qepilogue`).
struct QuantizedConvolution: Sendable {
    let weights: Tensor
    let depthwise: Bool
    let groups: Int
    let outChannels: Int
    let bias: [Int32]?
    var xZeroPoint: Int32 { xZeroPointValue }
    private var xZeroPointValue: Int32
    /// uint8 output: multipliers, shifts and the output zero point; float output: the scales.
    let multipliers: [Int32], shifts: [Int32]
    let yZeroPoint: Int32
    private(set) var floatScales: [Float]?
    /// s_w per output channel: what a per-run grid (`withInputGrid`) multiplies.
    let weightScales: [Float]
    /// The kernel's per-layer constants (`ck_qconv_prepare`), derived once at load and shared by copies; nil when the
    /// input grid is known only per run (then each call derives its own).
    private var prepared: PreparedConstants?

    /// `w` int8 [M, C/groups, kh, kw] plain or packed (`Tensor.Packing.quantizedNHWC`), scales s_x, s_w (1 or M),
    /// s_y (nil: float output), bias int32 [M].
    init(weights w: Tensor, groups: Int, xScale: Float, xZeroPoint: Int32, wScales: [Float], yScale: Float?, yZeroPoint: Int32,
         bias: Tensor?, op: String) throws(RuntimeError) {
        guard w.dtype == .int8 || w.packing != nil, w.rank == 4, groups >= 1, w.shape[0] % groups == 0 else {
            throw .invalidArgument("\(op) needs int8 weights [M, C/group, kh, kw], got \(w.dtype.onnxName) \(w.shape)")
        }
        let m = w.shape[0]
        guard wScales.count == 1 || wScales.count == m else { throw .invalidShape("\(op) w_scale has \(wScales.count) values for \(m) output channels") }
        depthwise = groups > 1 && w.shape[1] == 1 && m == groups
        self.groups = groups
        outChannels = m
        weights = try QuantizedConvolution.packed(w, groups: groups, depthwise: depthwise, op: op)
        if let bias {
            guard bias.dtype == .int32, bias.count == m else { throw .invalidShape("\(op) bias must be int32 with \(m) values") }
            self.bias = bias.array(Int32.self)
        } else {
            self.bias = nil
        }
        xZeroPointValue = xZeroPoint
        self.yZeroPoint = yZeroPoint
        let scales = (0..<m).map { wScales[wScales.count == 1 ? 0 : $0] }
        weightScales = scales
        if let yScale {
            var mult = [Int32](repeating: 0, count: m), shift = [Int32](repeating: 0, count: m)
            for c in 0..<m {
                var q: Int32 = 0, s: Int32 = 0
                ck_quantize_multiplier(Double(xScale) * Double(scales[c]) / Double(yScale), &q, &s)
                mult[c] = q
                shift[c] = s
            }
            multipliers = mult
            shifts = shift
            floatScales = nil
        } else {
            multipliers = []
            shifts = []
            floatScales = scales.map { Float(Double(xScale) * Double($0)) }
        }
        var geometry = ck_conv_nhwc()
        (geometry.groups, geometry.group_in, geometry.group_out) = (Int32(groups), Int32(w.shape[1]), Int32(m / groups))
        (geometry.kernel_h, geometry.kernel_w) = (Int32(w.shape[2]), Int32(w.shape[3]))
        prepared = nil
        prepared = withEpilogue { epilogue in
            weights.withBytes { wb in
                wb.baseAddress.flatMap { ck_qconv_prepare(&geometry, $0, &epilogue, depthwise ? 1 : 0) }.map(PreparedConstants.init)
            }
        }
    }

    /// The weights in the kernel's layout: the compiler's packing as is, else packed now.
    static func packed(_ w: Tensor, groups: Int, depthwise: Bool, op: String) throws(RuntimeError) -> Tensor {
        if let packing = w.packing {
            guard packing == (depthwise ? .quantizedDepthwise : .quantizedNHWC(groups: groups)) else {
                throw .invalidArgument("\(op) weights were packed for another convolution (\(packing)); recompile the model")
            }
            return w
        }
        guard let data = w.withBytes({ raw -> TensorData? in
            guard let bytes = try? TensorData(dtype: .int8, dims: w.shape.map(Int64.init), payload: .bytes(ByteSlice(copying: Array(raw)))) else { return nil }
            return packWeights(bytes, groups: groups, depthwise: depthwise)
        }) else { throw .invalidShape("\(op) weights \(w.shape) do not fit the integer kernel") }
        return try Tensor(packed: data, shape: w.shape, packing: depthwise ? .quantizedDepthwise : .quantizedNHWC(groups: groups))
    }

    /// int8 weights [M, C/groups, kh, kw] in `ck_qconv_nhwc_pack`'s (or the depthwise kernel's) layout; nil when the
    /// tensor is not such weights or a size does not fit 32 bits.
    static func packWeights(_ data: TensorData, groups: Int, depthwise: Bool) -> TensorData? {
        guard data.dtype == .int8, data.dims.count == 4, case .bytes(let slice) = data.payload, groups >= 1,
              data.dims.allSatisfy({ $0 > 0 && $0 <= Int64(Int32.max) }), data.dims[0] % Int64(groups) == 0,
              !depthwise || (data.dims[1] == 1 && data.dims[0] == Int64(groups)),
              let logical = CheckedSize.elementCount(data.dims), logical <= Int(Int32.max) else { return nil }
        let d = data.dims.map { Int32($0) }
        let bytes = depthwise ? ck_qdepthwise_nhwc_packed_size(d[0], d[2], d[3])
                              : ck_qconv_nhwc_packed_size(Int32(groups), d[0] / Int32(groups), d[1], d[2], d[3])
        let packed = ByteStorage(count: bytes) { out in
            guard let target = out.baseAddress else { return }
            slice.withUnsafeBytes { source in
                guard let w = source.baseAddress?.assumingMemoryBound(to: Int8.self) else { return }
                if depthwise {
                    ck_qdepthwise_nhwc_pack(d[0], d[2], d[3], w, target)
                } else {
                    ck_qconv_nhwc_pack(Int32(groups), d[0] / Int32(groups), d[1], d[2], d[3], w, target)
                }
            }
        }
        return try? TensorData(dtype: .int8, dims: [Int64(bytes)], payload: .bytes(ByteSlice(packed)))
    }

    /// The packed size `packWeights` produces for logical dims [M, C/groups, kh, kw], nil when it overflows.
    static func packedBytes(dims: [Int], groups: Int, depthwise: Bool) -> Int? {
        guard dims.count == 4, groups >= 1, dims.allSatisfy({ $0 > 0 && $0 <= Int(Int32.max) }), dims[0] % groups == 0,
              let logical = CheckedSize.elementCount(dims.map(Int64.init)), logical <= Int(Int32.max) else { return nil }
        let d = dims.map { Int32($0) }
        return depthwise ? ck_qdepthwise_nhwc_packed_size(d[0], d[2], d[3])
                         : ck_qconv_nhwc_packed_size(Int32(groups), d[0] / Int32(groups), d[1], d[2], d[3])
    }

    /// y (channels last, uint8 or float32 per the output grid) = the convolution of uint8 x for geometry g.
    /// A quantized Add after the convolution's requantization (ck_qepilogue's residual fields: ka = a_scale/y_scale,
    /// kb = b_scale/y_scale, QLinearAdd's float arithmetic), the residual the Add's a or b.
    struct ResidualAdd: Sendable {
        let ka: Float, kb: Float
        let za: Int32, zb: Int32, zy: Int32
        let residualIsA: Bool
    }

    func run(_ g: ConvolutionKernels.Geometry, x: Tensor, into y: Tensor, residual: (tensor: Tensor, add: ResidualAdd)? = nil) {
        var geometry = ChannelsLast.kernelGeometry(g)
        var epilogue = ck_qepilogue()
        if let residual {
            let a = residual.add
            (epilogue.add_ka, epilogue.add_kb, epilogue.add_za, epilogue.add_zb, epilogue.add_zy) = (a.ka, a.kb, a.za, a.zb, a.zy)
            epilogue.residual_is_a = a.residualIsA ? 1 : 0
            epilogue.residual_stride = outChannels
            residual.tensor.withValues(UInt8.self) { rb in
                epilogue.residual = rb.baseAddress
                run(&geometry, x: x, into: y, epilogue: &epilogue)
            }
        } else {
            run(&geometry, x: x, into: y, epilogue: &epilogue)
        }
    }

    private func run(_ geometry: inout ck_conv_nhwc, x: Tensor, into y: Tensor, epilogue: inout ck_qepilogue) {
        x.withValues(UInt8.self) { xb in
            y.withMutableBytes { yb in
                weights.withBytes { wb in
                    guard let xp = xb.baseAddress, let yp = yb.baseAddress, let wp = wb.baseAddress else { return }
                    withEpilogue(epilogue) { e in
                        e.prepared = UnsafeRawPointer(prepared?.pointer)
                        if depthwise { ck_qdepthwise2d_nhwc(&geometry, xp, wp, &e, yp) } else { ck_qconv2d_nhwc(&geometry, xp, wp, &e, yp) }
                    }
                }
            }
        }
    }

    /// y (m rows `yStride` elements apart) = x (m rows of K uint8, contiguous) · Wᵀ for a [N, K, 1, 1] layer: the
    /// 1×1 convolution over m pixels, for callers that hold raw buffers (the recurrent ops' per-step products).
    func multiply(rows m: Int, x: UnsafePointer<UInt8>, y: UnsafeMutableRawPointer, yStride: Int) {
        guard m > 0, groups == 1, weights.shape[2] == 1, weights.shape[3] == 1 else { return }
        var geometry = ck_conv_nhwc()
        (geometry.batch, geometry.in_h, geometry.in_w, geometry.out_h, geometry.out_w) = (1, Int32(m), 1, Int32(m), 1)
        (geometry.kernel_h, geometry.kernel_w, geometry.stride_h, geometry.stride_w, geometry.dilation_h, geometry.dilation_w) = (1, 1, 1, 1, 1, 1)
        (geometry.groups, geometry.group_in, geometry.group_out) = (1, Int32(weights.shape[1]), Int32(outChannels))
        geometry.x_stride = weights.shape[1]
        geometry.y_stride = yStride
        weights.withBytes { wb in
            guard let wp = wb.baseAddress else { return }
            withEpilogue { e in
                e.prepared = UnsafeRawPointer(prepared?.pointer)
                ck_qconv2d_nhwc(&geometry, x, wp, &e, y)
            }
        }
    }

    /// `multiply` for an input grid known only now, float out, on the few-row kernel (`ck_qgemv_f32`): no per-call
    /// epilogue or scales to derive. False (nothing written) where that kernel does not run; then use
    /// `withInputGrid(…).multiply`.
    func multiplyDynamic(rows m: Int, x: UnsafePointer<UInt8>, xScale: Float, xZeroPoint: Int32, y: UnsafeMutablePointer<Float>, yStride: Int) -> Bool {
        guard groups == 1, weights.shape[2] == 1, weights.shape[3] == 1, m <= Int(Int32.max) else { return false }
        return weights.withBytes { wb in
            weightScales.withUnsafeBufferPointer { sp in
                guard let wp = wb.baseAddress, let scales = sp.baseAddress else { return false }
                return ck_qgemv_f32(Int32(m), Int32(outChannels), Int32(weights.shape[1]), x, xZeroPoint, xScale, wp, scales, y, yStride) != 0
            }
        }
    }

    /// `body` with `base` (its residual fields, if any) completed by this layer's constants: the zero points, the
    /// full uint8 clamp, the bias, and the multipliers and shifts (u8 output) or the scales (float output).
    private func withEpilogue<R>(_ base: ck_qepilogue = ck_qepilogue(), _ body: (inout ck_qepilogue) -> R) -> R {
        var epilogue = base
        epilogue.x_zero_point = xZeroPoint
        epilogue.y_zero_point = yZeroPoint
        epilogue.clamp_min = 0
        epilogue.clamp_max = 255
        return bias.withOptionalPointer { bp in
            epilogue.bias = bp
            if let floatScales {
                return floatScales.withUnsafeBufferPointer { sp in
                    epilogue.scale = sp.baseAddress
                    return body(&epilogue)
                }
            }
            return multipliers.withUnsafeBufferPointer { mp in
                shifts.withUnsafeBufferPointer { shp in
                    epilogue.multiplier = mp.baseAddress
                    epilogue.shift = shp.baseAddress
                    return body(&epilogue)
                }
            }
        }
    }

    /// The float-output form for an input grid known only now (DynamicQuantizeLinear's).
    func withInputGrid(scale: Float, zeroPoint: Int32) -> QuantizedConvolution {
        var copy = self
        copy.prepared = nil
        copy.xZeroPointValue = zeroPoint
        copy.floatScales = weightScales.map { Float(Double(scale) * Double($0)) }
        return copy
    }

    /// y[..., c] += bias[c] over a float output's last axis, in place on `ck_binary_f32` (vectorized, on the pool
    /// for large outputs; the bias row broadcast over the rows).
    static func addBias(_ bias: [Float], to y: Tensor) {
        let channels = bias.count
        guard channels > 0, y.count % channels == 0, y.count / channels <= Int(Int32.max), channels <= Int(Int32.max) else { return }
        let shape: [Int32] = [Int32(y.count / channels), Int32(channels)]
        y.withMutableValues(Float.self) { out in
            bias.withUnsafeBufferPointer { b in
                guard let o = out.baseAddress, let bp = b.baseAddress else { return }
                _ = ck_binary_f32(Int32(CK_BINARY_ADD.rawValue), 2, shape, [channels, 1], [0, 1], o, bp, o)
            }
        }
    }

    /// The output element type.
    var outputType: DType { floatScales == nil ? .uint8 : .float }
}

extension Optional where Wrapped == [Int32] {
    fileprivate func withOptionalPointer<R>(_ body: (UnsafePointer<Int32>?) -> R) -> R {
        switch self {
        case .some(let values): return values.withUnsafeBufferPointer { body($0.baseAddress) }
        case .none: return body(nil)
        }
    }
}

/// `ck_qconv_prepare`'s constants for one layer: written once, then only read by the kernels, so shared by every
/// executor and thread.
final class PreparedConstants: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer

    init(_ pointer: UnsafeMutableRawPointer) { self.pointer = pointer }

    deinit { ck_qconv_prepared_free(pointer) }
}
