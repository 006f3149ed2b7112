import CKernels
import Foundation
import OnnxcTestSupport
import Testing

/// CKernels' quantized (u8 × s8) kernels against integer references written here from the unpacked weights: the
/// channels-last convolution (`ck_qconv2d_nhwc`, its Gemm/MatMul form included) and depthwise convolution with
/// u8 (TFLite's fixed-point requantization) and f32 outputs, their weight packing, `ck_quantize_multiplier`,
/// `ck_multiply_by_quantized_multiplier` and the quantized Add. Integer results are exact, so every case must match
/// bit for bit on every instruction-set path (scalar, AVX2, AVX-512 without VNNI — which runs the AVX2 kernels — and
/// the best, AVX-512 VNNI here) and on 1 and 2 threads, through the `*_with` entry points (see
/// ChannelsLastKernelTests for why not `ck_set_isa`).
@Suite struct QuantizedKernelTests {
    typealias Conv = ChannelsLastKernelTests.Conv

    /// Every path the CPU may have; one it lacks falls back to the best it has, which then runs twice.
    static let paths: [ck_isa] = [CK_ISA_SCALAR, CK_ISA_AVX2_FMA, CK_ISA_AVX512, CK_ISA_AUTO]

    static let sentinelU8: UInt8 = 0xA5
    static let sentinelF32: Float = 7777

    /// Reproducible integers: the same LCG as Pseudorandom, mapped to a range.
    struct Integers {
        var state: UInt64
        init(seed: Int) { state = UInt64(truncatingIfNeeded: seed) &* 0x9E37_79B9_7F4A_7C15 &+ 1 }
        mutating func next(_ range: ClosedRange<Int>) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return range.lowerBound + Int((state >> 33) % UInt64(range.count))
        }
    }

    // MARK: - Reference arithmetic (TFLite's, written independently of the C)

    /// SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT, with the shift clamps of the header.
    static func roundFixed(_ x: Int32, _ multiplier: Int32, _ shift: Int32) -> Int32 {
        let left = Int(min(max(shift, 0), 31)), right = Int(min(max(-shift, 0), 31))
        let a = Int32(truncatingIfNeeded: Int64(x) << left)
        let high: Int32
        if a == .min && multiplier == .min {
            high = .max
        } else {
            let ab = Int64(a) * Int64(multiplier)
            let nudge: Int64 = ab >= 0 ? 1 << 30 : 1 - (1 << 30)
            high = Int32((ab + nudge) / (1 << 31))
        }
        let mask = Int32(truncatingIfNeeded: (Int64(1) << right) - 1)
        let remainder = high & mask
        let threshold = (mask >> 1) + (high < 0 ? 1 : 0)
        return (high >> Int32(right)) + (remainder > threshold ? 1 : 0)
    }

    /// ONNX Runtime's QLinearAdd in float (ck_qadd_u8_float): saturate(round_half_even(fma(b − zb, kb, (a − za)·ka))
    /// + zy), the sum clamped to ±512.
    static func quantizedAdd(_ a: Int32, _ b: Int32, _ k: (ka: Float, kb: Float, za: Int32, zb: Int32, zy: Int32, residualIsA: Bool)) -> Int32 {
        let sum = (Float(a - k.za) * k.ka).addingProduct(Float(b - k.zb), k.kb)
        let q = Int32(min(max(sum, -512), 512).rounded(.toNearestOrEven)) + k.zy
        return min(max(q, 0), 255)
    }

    // MARK: - Test data

    /// One epilogue's parameters per output channel, and what they make of an accumulator.
    struct Epilogue {
        var bias: [Int32]?
        var xZeroPoint: Int32
        var multiplier: [Int32], shift: [Int32]
        var yZeroPoint: Int32 = 0, clampMin: Int32 = 0, clampMax: Int32 = 255
        var scale: [Float]?  // f32 output
        /// A fused quantized Add: the residual bytes ([pixel][residualStride]) and the Add's grids.
        var residual: [UInt8]?
        var residualStride = 0
        var add: (ka: Float, kb: Float, za: Int32, zb: Int32, zy: Int32, residualIsA: Bool) = (1, 1, 0, 0, 0, false)

        /// Multipliers from reals spread over 2^-14 … 2^-5 (the usual s_x·s_w/s_y), a few channels with a left shift
        /// (real ≥ 1) and one with multiplier 0; scales for the f32 form.
        init(channels: Int, xZeroPoint: Int32, bias: Bool, f32: Bool, seed: Int) {
            var r = Integers(seed: seed)
            self.bias = bias ? (0..<channels).map { _ in Int32(r.next(-40000...40000)) } : nil
            self.xZeroPoint = xZeroPoint
            multiplier = []
            shift = []
            for c in 0..<channels {
                let real = c % 7 == 3 ? Double(r.next(1000...3000)) / 1000 : c % 11 == 5 ? 0 : pow(2, -Double(r.next(5000...14000)) / 1000)
                var m: Int32 = 0, s: Int32 = 0
                ck_quantize_multiplier(real, &m, &s)
                multiplier.append(m)
                shift.append(s)
            }
            scale = f32 ? (0..<channels).map { _ in Float(r.next(1...1000)) * 1e-6 } : nil
            yZeroPoint = Int32(r.next(0...255))
        }

        func output(_ acc: Int32, channel c: Int, pixel p: Int = 0) -> Double {
            if let scale { return Double(Float(acc) * scale[c]) }
            let v = yZeroPoint &+ QuantizedKernelTests.roundFixed(acc, multiplier[c], shift[c])
            let y = min(max(v, clampMin), clampMax)
            guard let residual else { return Double(y) }
            let r = Int32(residual[p * residualStride + c])
            return Double(QuantizedKernelTests.quantizedAdd(add.residualIsA ? r : y, add.residualIsA ? y : r, add))
        }
    }

    /// X (u8, xStride bytes per pixel) and ONNX weights [M, C/g, kh, kw] in [−127, 127], with the extremes: the first
    /// output channel's weights all +127, the second's all −127, the third's all 0, and one −128 in the fourth (which
    /// the header also promises to compute exactly), when there are that many.
    struct Data {
        var x: [UInt8], w: [Int8]

        init(_ s: Conv, seed: Int, xRange: ClosedRange<Int> = 0...255) {
            var r = Integers(seed: seed)
            x = (0..<(s.batch * s.inH * s.inW * s.xStride)).map { _ in UInt8(r.next(xRange)) }
            let perChannel = s.groupIn * s.kh * s.kw
            w = (0..<(s.outChannels * perChannel)).map { i in
                switch i / max(perChannel, 1) {
                case 0 where s.outChannels > 3: return 127
                case 1 where s.outChannels > 3: return -127
                case 2 where s.outChannels > 3: return 0
                case 3 where s.outChannels > 4 && i % perChannel == 0: return -128
                default: return Int8(r.next(-127...127))
                }
            }
        }
    }

    /// acc = bias + Σ (x − x_zp)·w over the taps inside the image (wrapping Int32), per output [pixel, channel].
    static func accumulators(_ s: Conv, _ d: Data, _ e: Epilogue) -> [Int32] {
        var out = [Int32](repeating: 0, count: s.outPixels * s.outChannels)
        for n in 0..<s.batch {
            for oh in 0..<s.outH {
                for ow in 0..<s.outW {
                    let pixel = (n * s.outH + oh) * s.outW + ow
                    for o in 0..<s.outChannels {
                        let group = o / s.groupOut
                        var sum = Int64(e.bias?[o] ?? 0)
                        for i in 0..<s.kh {
                            let ih = oh * s.sh - s.top + i * s.dh
                            guard ih >= 0, ih < s.inH else { continue }
                            for j in 0..<s.kw {
                                let iw = ow * s.sw - s.left + j * s.dw
                                guard iw >= 0, iw < s.inW else { continue }
                                let xBase = ((n * s.inH + ih) * s.inW + iw) * s.xStride + group * s.groupIn
                                for c in 0..<s.groupIn {
                                    let w = Int64(d.w[((o * s.groupIn + c) * s.kh + i) * s.kw + j])
                                    sum += (Int64(d.x[xBase + c]) - Int64(e.xZeroPoint)) * w
                                }
                            }
                        }
                        out[pixel * s.outChannels + o] = Int32(truncatingIfNeeded: sum)
                    }
                }
            }
        }
        return out
    }

    static func packConv(_ s: Conv, _ w: [Int8]) -> [UInt8] {
        var packed = [UInt8](repeating: 0xEE, count: ck_qconv_nhwc_packed_size(Int32(s.groups), Int32(s.groupOut), Int32(s.groupIn),
                                                                               Int32(s.kh), Int32(s.kw)))
        packed.withUnsafeMutableBytes { p in
            ck_qconv_nhwc_pack(Int32(s.groups), Int32(s.groupOut), Int32(s.groupIn), Int32(s.kh), Int32(s.kw), w, p.baseAddress)
        }
        return packed
    }

    static func packDepthwise(_ s: Conv, _ w: [Int8]) -> [UInt8] {
        var packed = [UInt8](repeating: 0xEE, count: ck_qdepthwise_nhwc_packed_size(Int32(s.groups), Int32(s.kh), Int32(s.kw)))
        packed.withUnsafeMutableBytes { p in ck_qdepthwise_nhwc_pack(Int32(s.groups), Int32(s.kh), Int32(s.kw), w, p.baseAddress) }
        return packed
    }

    /// Calls body with the array's base address, or nil for a nil array.
    static func withOptional<T, R>(_ values: [T]?, _ body: (UnsafePointer<T>?) -> R) -> R {
        guard let values else { return body(nil) }
        return values.withUnsafeBufferPointer { body($0.baseAddress) }
    }

    /// The kernel's outputs as Doubles ([pixel][yStride], the gap included) for one path and thread count.
    /// With `prepared`, the layer's constants come from `ck_qconv_prepare` (derived for the active instruction set:
    /// for the other paths the kernel must notice and derive its own).
    static func run(_ s: Conv, _ d: Data, packed: [UInt8], _ e: Epilogue, depthwise: Bool, isa: ck_isa, threads: Int32,
                    prepared: Bool = false) -> [Double] {
        var geometry = s.geometry
        let count = s.outPixels * s.yStride
        return withOptional(e.bias) { bias in
            e.multiplier.withUnsafeBufferPointer { m in
                e.shift.withUnsafeBufferPointer { sh in
                    withOptional(e.scale) { scale in
                        var ep = ck_qepilogue()
                        ep.bias = bias
                        ep.x_zero_point = e.xZeroPoint
                        ep.multiplier = m.baseAddress
                        ep.shift = sh.baseAddress
                        ep.y_zero_point = e.yZeroPoint
                        ep.clamp_min = e.clampMin
                        ep.clamp_max = e.clampMax
                        ep.scale = scale
                        ep.residual_stride = e.residualStride
                        (ep.add_ka, ep.add_kb, ep.add_za, ep.add_zb, ep.add_zy) = (e.add.ka, e.add.kb, e.add.za, e.add.zb, e.add.zy)
                        ep.residual_is_a = e.add.residualIsA ? 1 : 0
                        let constants = prepared ? packed.withUnsafeBytes { ck_qconv_prepare(&geometry, $0.baseAddress, &ep, depthwise ? 1 : 0) } : nil
                        defer { ck_qconv_prepared_free(constants) }
                        ep.prepared = UnsafeRawPointer(constants)
                        func call(_ y: UnsafeMutableRawPointer?) {
                            withOptional(e.residual) { r in
                                ep.residual = r
                                if depthwise { ck_qdepthwise2d_nhwc_with(&geometry, d.x, packed, &ep, y, isa, threads) }
                                else { ck_qconv2d_nhwc_with(&geometry, d.x, packed, &ep, y, isa, threads) }
                            }
                        }
                        if e.scale != nil {
                            var y = [Float](repeating: sentinelF32, count: count)
                            y.withUnsafeMutableBytes { call($0.baseAddress) }
                            return y.map(Double.init)
                        }
                        var y = [UInt8](repeating: sentinelU8, count: count)
                        y.withUnsafeMutableBytes { call($0.baseAddress) }
                        return y.map(Double.init)
                    }
                }
            }
        }
    }

    /// Every path and thread count against the reference, bit for bit, with the gap between pixels untouched.
    static func check(_ s: Conv, _ d: Data, _ e: Epilogue, depthwise: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) {
        let acc = accumulators(s, d, e)
        let packed = depthwise ? packDepthwise(s, d.w) : packConv(s, d.w)
        let sentinel = e.scale != nil ? Double(sentinelF32) : Double(sentinelU8)
        let what = "\(s) x_zp \(e.xZeroPoint) \(e.scale != nil ? "f32" : "u8 [\(e.clampMin), \(e.clampMax)]")"
        for isa in paths {
            for (threads, prepared): (Int32, Bool) in [(1, false), (2, false), (1, true), (2, true)] {
                let y = run(s, d, packed: packed, e, depthwise: depthwise, isa: isa, threads: threads, prepared: prepared)
                var failures = 0
                for p in 0..<s.outPixels {
                    for o in 0..<s.yStride {
                        let value = y[p * s.yStride + o]
                        let expected = o < s.outChannels ? e.output(acc[p * s.outChannels + o], channel: o, pixel: p) : sentinel
                        if value.bitPattern != expected.bitPattern {
                            failures += 1
                            if failures <= 3 {
                                Issue.record("\(what) isa \(isa.rawValue) threads \(threads) prepared \(prepared): pixel \(p) channel \(o) is \(value), expected \(expected) (acc \(o < s.outChannels ? acc[p * s.outChannels + o] : 0))",
                                             sourceLocation: sourceLocation)
                            }
                        }
                    }
                }
                #expect(failures == 0, "\(what) isa \(isa.rawValue) threads \(threads) prepared \(prepared): \(failures) wrong outputs", sourceLocation: sourceLocation)
            }
        }
    }

    // MARK: - Convolution

    /// 1×1 and 3×3/5×5/7×7 kernels, padding (asymmetric, larger than the kernel), strides, dilation, groups, input
    /// channels per group 1 … 64 (multiples of 4 read in place, others through the padded copy on the VNNI path),
    /// output channels 1 … 70 (16-wide panels, the VNNI tile's pairs, ragged last panels), pixels that do not fill the
    /// 8- and 12-row tiles, batches, strided pixels, a stem (3 channels, 7×7/2), and sizes that take 2 threads.
    static let convolutions: [Conv] = [
        Conv(inH: 1, inW: 1, groupIn: 1, groupOut: 1, kh: 1, kw: 1),
        Conv(inH: 4, inW: 5, groupIn: 3, groupOut: 3, kh: 1, kw: 1),
        Conv(inH: 5, inW: 5, groupIn: 16, groupOut: 17, kh: 1, kw: 1),
        Conv(inH: 6, inW: 6, groupIn: 8, groupOut: 8, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(batch: 2, inH: 5, inW: 7, groupIn: 17, groupOut: 33, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 9, inW: 11, groupIn: 5, groupOut: 40, kh: 3, kw: 3, sh: 2, sw: 2, top: 1, left: 0, bottom: 0, right: 1),
        Conv(inH: 8, inW: 8, groupIn: 2, groupOut: 3, kh: 5, kw: 5, top: 2, left: 2, bottom: 2, right: 2),
        Conv(inH: 16, inW: 16, groupIn: 3, groupOut: 64, kh: 7, kw: 7, sh: 2, sw: 2, top: 3, left: 3, bottom: 3, right: 3),
        Conv(inH: 13, inW: 10, groupIn: 4, groupOut: 17, kh: 5, kw: 5, sh: 3, sw: 3, top: 0, left: 2, bottom: 1, right: 0),
        Conv(inH: 9, inW: 9, groupIn: 12, groupOut: 16, kh: 3, kw: 3, top: 2, left: 2, bottom: 2, right: 2, dh: 2, dw: 2),
        Conv(inH: 8, inW: 10, groupIn: 3, groupOut: 5, kh: 3, kw: 3, sh: 1, sw: 2, top: 1, left: 3, bottom: 2, right: 0, dh: 2, dw: 3),
        Conv(inH: 2, inW: 3, groupIn: 4, groupOut: 3, kh: 3, kw: 3, top: 4, left: 4, bottom: 4, right: 4),
        Conv(inH: 4, inW: 9, groupIn: 32, groupOut: 48, kh: 1, kw: 7, left: 3, right: 3),
        Conv(batch: 3, inH: 5, inW: 5, groupIn: 7, groupOut: 16, kh: 1, kw: 1, sh: 2, sw: 2),
        Conv(batch: 2, inH: 6, inW: 7, groups: 2, groupIn: 3, groupOut: 5, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 7, inW: 7, groups: 3, groupIn: 16, groupOut: 17, kh: 3, kw: 3, sh: 2, sw: 2, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 5, inW: 6, groups: 8, groupIn: 1, groupOut: 2, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 5, inW: 5, groups: 2, groupIn: 4, groupOut: 17, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1, xExtra: 3, yExtra: 5),
        // Large enough (> 2^20 multiply-adds) for the second thread to take part.
        Conv(batch: 2, inH: 16, inW: 16, groupIn: 32, groupOut: 70, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 14, inW: 14, groupIn: 64, groupOut: 96, kh: 1, kw: 1, xExtra: 4, yExtra: 3),
    ]

    @Test(arguments: 0..<convolutions.count) func convolutionMatchesReference(_ i: Int) {
        let s = Self.convolutions[i]
        let d = Data(s, seed: i)
        for (index, zp) in [Int32(0), 128, 255].enumerated() {
            Self.check(s, d, Epilogue(channels: s.outChannels, xZeroPoint: zp, bias: index != 1, f32: false, seed: i * 3 + index))
        }
        Self.check(s, d, Epilogue(channels: s.outChannels, xZeroPoint: 77, bias: true, f32: true, seed: i + 100))
    }

    /// Gemm/MatMul as the compiler runs it: X[M×K]·Wᵀ as a 1×1 convolution over M pixels (in_h = M, in_w = 1),
    /// M around the tiles (1, 7, 12, 13, 50), K multiple of 4 or not, N around the panels.
    @Test(arguments: [(1, 64, 10), (7, 33, 17), (12, 128, 32), (13, 48, 100), (50, 256, 70), (100, 76, 64)])
    func gemmForm(_ m: Int, _ k: Int, _ n: Int) {
        let s = Conv(inH: m, inW: 1, groupIn: k, groupOut: n, kh: 1, kw: 1)
        let d = Data(s, seed: m * 31 + k)
        Self.check(s, d, Epilogue(channels: n, xZeroPoint: 131, bias: true, f32: false, seed: k))
        Self.check(s, d, Epilogue(channels: n, xZeroPoint: 0, bias: true, f32: true, seed: n))
    }

    /// Clamps (a fused Relu: clamp_min = y_zero_point; Relu6-like upper clamps) on both tails of the AVX2 and
    /// AVX-512 stores.
    /// `ck_qgemv_f32` (the dynamically quantized recurrent steps' product) against the exact integer sums scaled in
    /// float, at sizes around its panel groups (16 columns, 4 panels a call) and k not a multiple of 4, on every
    /// path (the same floats from the VNNI and AVX2 forms); the scalar level must decline without writing.
    @Test(arguments: [(1, 1, 1), (1, 17, 3), (2, 64, 4), (3, 100, 5), (1, 1024, 256), (2, 80, 257), (1, 4096, 300)], paths)
    func fewRowProductMatchesIntegerSums(_ size: (Int, Int, Int), _ isa: ck_isa) {
        let (m, n, k) = size
        var rng = Integers(seed: m * 1000 + n + k)
        let x = (0..<(m * k)).map { _ in UInt8(rng.next(0...255)) }
        let w = (0..<(n * k)).map { _ in Int8(rng.next(-127...127)) }
        let zero = Int32(rng.next(0...255)), xScale: Float = 0.013
        let wScale = (0..<n).map { Float($0 % 7 + 1) * 0.002 }
        var packed = [UInt8](repeating: 0, count: ck_qconv_nhwc_packed_size(1, Int32(n), Int32(k), 1, 1))
        w.withUnsafeBufferPointer { wp in packed.withUnsafeMutableBytes { ck_qconv_nhwc_pack(1, Int32(n), Int32(k), 1, 1, wp.baseAddress, $0.baseAddress) } }
        let ldy = n + 3
        var y = [Float](repeating: Self.sentinelF32, count: m * ldy)
        let ran = x.withUnsafeBufferPointer { xp in
            packed.withUnsafeBytes { pp in
                wScale.withUnsafeBufferPointer { sp in
                    y.withUnsafeMutableBufferPointer { yp in
                        ck_qgemv_f32_with(Int32(m), Int32(n), Int32(k), xp.baseAddress, zero, xScale, pp.baseAddress, sp.baseAddress, yp.baseAddress, ldy, isa)
                    }
                }
            }
        }
        guard ran != 0 else {
            #expect(isa == CK_ISA_SCALAR, "only the scalar level has no few-row kernel")
            #expect(y.allSatisfy { $0 == Self.sentinelF32 })
            return
        }
        for i in 0..<m {
            for c in 0..<n {
                var sum = 0
                for p in 0..<k { sum += (Int(x[i * k + p]) - Int(zero)) * Int(w[c * k + p]) }
                let expected = Float(sum) * (xScale * wScale[c])
                #expect(y[i * ldy + c] == expected, "m \(m) n \(n) k \(k) at (\(i), \(c))")
                if y[i * ldy + c] != expected { return }
            }
            // The row's padding past n is untouched.
            #expect(y[(i * ldy + n)..<(i * ldy + ldy)].allSatisfy { $0 == Self.sentinelF32 })
        }
    }

    @Test func clamps() {
        let s = Conv(batch: 2, inH: 5, inW: 5, groupIn: 8, groupOut: 19, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1, yExtra: 2)
        let d = Data(s, seed: 5)
        for (lo, hi) in [(0, 255), (128, 255), (10, 200), (60, 60)] {
            var e = Epilogue(channels: s.outChannels, xZeroPoint: 100, bias: true, f32: false, seed: lo + hi)
            e.clampMin = Int32(lo)
            e.clampMax = Int32(hi)
            if lo == 128 { e.yZeroPoint = 128 }
            Self.check(s, d, e)
        }
    }

    /// The extremes of the sums: x all 255 or all 0 against weights of ±127 over K = 9·512 (|acc| near 1.5·10^8, the
    /// AVX2 path's s16 pairs at their largest) with x_zero_point 0 and 255.
    @Test func extremeSums() {
        let s = Conv(inH: 3, inW: 3, groupIn: 512, groupOut: 20, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1)
        for xValue in [0, 255] {
            var d = Data(s, seed: 3)
            d.x = [UInt8](repeating: UInt8(xValue), count: d.x.count)
            d.w = d.w.enumerated().map { $0.offset % 3 == 0 ? 127 : $0.offset % 3 == 1 ? -127 : $0.element }
            for zp: Int32 in [0, 255] {
                var e = Epilogue(channels: s.outChannels, xZeroPoint: zp, bias: true, f32: false, seed: 4)
                e.multiplier = e.multiplier.map { _ in 1 << 30 }
                e.shift = e.shift.map { _ in -20 }
                Self.check(s, d, e)
                Self.check(s, d, Epilogue(channels: s.outChannels, xZeroPoint: zp, bias: false, f32: true, seed: 5))
            }
        }
    }

    /// The folded requantization (ck_quant.h: one rounding constant, for right shifts and multipliers ≥ 0 whose sums
    /// stay within its bound): right shifts 1 … 31, multipliers 0, 2^30, 2^31 − 1 and random, zero points 0 … 255,
    /// and biases at the largest magnitude the bound admits for K — or just past it, where the 16 (8) columns around
    /// that channel take TFLite's two roundings instead — on convolutions whose K reaches the AVX2 and VNNI paths
    /// in place and through the copy, with channel tails, clamps and a depthwise layer.
    @Test func foldedRequantization() {
        let shapes: [(Conv, Bool)] = [
            (Conv(inH: 6, inW: 7, groupIn: 4, groupOut: 40, kh: 1, kw: 1), false),
            (Conv(batch: 2, inH: 5, inW: 5, groupIn: 5, groupOut: 35, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1), false),
            (Conv(inH: 9, inW: 9, groupIn: 64, groupOut: 48, kh: 1, kw: 1, sh: 2, sw: 2, yExtra: 3), false),
            (Conv(inH: 12, inW: 13, groups: 37, groupIn: 1, groupOut: 1, kh: 3, kw: 3, sh: 2, sw: 2, top: 1, left: 1, bottom: 1, right: 1), true),
            // Depthwise rows with 4-pixel steps, a partial 32-channel block of more than 16 (in registers, masked)
            // and of fewer (through the chunk's store), strided pixels, a 5×5 with dilation.
            (Conv(inH: 7, inW: 23, groups: 50, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1, xExtra: 2, yExtra: 3), true),
            (Conv(batch: 2, inH: 9, inW: 30, groups: 72, groupIn: 1, groupOut: 1, kh: 5, kw: 5, top: 2, left: 4, bottom: 2, right: 4, dw: 2), true),
        ]
        for (index, (s, depthwise)) in shapes.enumerated() {
            let k = Int64(s.groupIn * s.kh * s.kw)
            let d = Data(s, seed: 300 + index)
            for round in 0..<4 {
                var r = Integers(seed: 1000 * index + round)
                var e = Epilogue(channels: s.outChannels, xZeroPoint: Int32(r.next(0...255)), bias: true, f32: false, seed: round)
                e.yZeroPoint = round == 0 ? 0 : round == 1 ? 255 : Int32(r.next(0...255))
                if round == 3 { e.clampMin = 20; e.clampMax = 230 }
                for c in 0..<s.outChannels {
                    let right = c % 9 == 0 ? 1 : c % 9 == 1 ? 31 : r.next(1...(round < 2 ? 6 : 22))
                    e.shift[c] = Int32(-right)
                    switch c % 5 {
                    case 0: e.multiplier[c] = 0
                    case 1: e.multiplier[c] = 1 << 30
                    case 2: e.multiplier[c] = .max
                    default: e.multiplier[c] = Int32(r.next((1 << 30)...Int(Int32.max)))
                    }
                    // Rounds 2 and 3: the bound of ck_q_plan_folding, and a bias at it (or, on every 13th channel, 1
                    // past it); rounds 0 and 1 keep small biases and shifts, where both roundings' halfway points
                    // are frequent.
                    if round < 2 { continue }
                    let limit = (Int64(1) << 31) - 3 - (Int64(1) << (right - 1)) - (Int64(e.yZeroPoint) << right) - k * 255 * 128
                    let magnitude = max(0, c % 13 == 7 ? limit + 1 : limit - Int64(r.next(0...1000)))
                    e.bias![c] = Int32(truncatingIfNeeded: c % 2 == 0 ? magnitude : -magnitude)
                }
                Self.check(s, d, e, depthwise: depthwise)
            }
        }
    }

    /// A fused residual Add (ck_qepilogue.residual, ONNX Runtime's float QLinearAdd after the requantization) on the
    /// scalar, AVX2 and VNNI stores: both operand orders, strided residual pixels, channel tails, the folded and the
    /// two-rounding requantization, clamps, and sums that saturate both ways; convolutions and a depthwise layer.
    @Test func residualAdd() {
        let shapes: [(Conv, Bool)] = [
            (Conv(inH: 6, inW: 7, groupIn: 16, groupOut: 40, kh: 1, kw: 1, yExtra: 3), false),
            (Conv(batch: 2, inH: 5, inW: 5, groupIn: 5, groupOut: 19, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1), false),
            (Conv(inH: 14, inW: 14, groupIn: 64, groupOut: 96, kh: 1, kw: 1), false),
            (Conv(inH: 9, inW: 21, groups: 50, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1), true),
        ]
        for (index, (s, depthwise)) in shapes.enumerated() {
            let d = Data(s, seed: 500 + index)
            for round in 0..<4 {
                var r = Integers(seed: 77 * index + round)
                var e = Epilogue(channels: s.outChannels, xZeroPoint: 120, bias: true, f32: false, seed: 40 + round)
                if round % 2 == 1 {
                    // All right shifts: the folded requantization.
                    e.multiplier = e.multiplier.map { $0 == 0 ? 1 << 30 : $0 }
                    e.shift = e.shift.map { min($0, -1) }
                }
                if round == 3 { e.clampMin = 30; e.clampMax = 200 }
                e.residualStride = s.outChannels + 2 * round
                e.residual = (0..<(s.outPixels * e.residualStride)).map { _ in UInt8(r.next(0...255)) }
                e.add = (Float(r.next(200...1500)) / 1000, Float(r.next(200...1500)) / 1000, Int32(r.next(0...255)),
                         Int32(r.next(0...255)), Int32(r.next(0...255)), round % 2 == 0)
                Self.check(s, d, e, depthwise: depthwise)
            }
        }
    }

    /// Empty batches and outputs write nothing; a group without input channels is the bias alone.
    @Test func degenerateSizes() {
        var s = Conv(inH: 2, inW: 2, groupIn: 4, groupOut: 3, kh: 1, kw: 1)
        let d = Data(s, seed: 1)
        let e = Epilogue(channels: 3, xZeroPoint: 9, bias: true, f32: false, seed: 1)
        let packed = Self.packConv(s, d.w)
        for isa in Self.paths {
            var geometry = s.geometry
            geometry.batch = 0
            var y = [UInt8](repeating: Self.sentinelU8, count: 12)
            e.multiplier.withUnsafeBufferPointer { m in
                e.shift.withUnsafeBufferPointer { sh in
                    var ep = ck_qepilogue()
                    ep.x_zero_point = 9
                    ep.multiplier = m.baseAddress
                    ep.shift = sh.baseAddress
                    ep.clamp_max = 255
                    y.withUnsafeMutableBytes { ck_qconv2d_nhwc_with(&geometry, d.x, packed, &ep, $0.baseAddress, isa, 1) }
                    geometry = s.geometry
                    geometry.out_w = 0
                    y.withUnsafeMutableBytes { ck_qconv2d_nhwc_with(&geometry, d.x, packed, &ep, $0.baseAddress, isa, 1) }
                }
            }
            #expect(y.allSatisfy { $0 == Self.sentinelU8 })
        }
        s.groupIn = 0
        Self.check(s, Data(s, seed: 2), e)
    }

    /// `ck_qconv_nhwc_pack` writes exactly the documented layout (a format: the compiler stores it): quads of 4
    /// consecutive k = t·group_in + c per column, zeros past K and past group_out, then Σw per output channel.
    @Test func convolutionPackingLayout() {
        let (groups, groupOut, groupIn, kh, kw) = (2, 17, 3, 2, 3)
        let s = Conv(inH: 1, inW: 1, groups: groups, groupIn: groupIn, groupOut: groupOut, kh: kh, kw: kw)
        let w = Data(s, seed: 9).w
        let packed = Self.packConv(s, w)
        let taps = kh * kw, k = taps * groupIn, quads = (k + 3) / 4, panels = 2
        let weightBytes = groups * panels * quads * 64
        #expect(packed.count == weightBytes + 4 * groups * groupOut)
        var mismatches = 0
        for g in 0..<groups {
            for p in 0..<panels {
                for q in 0..<quads {
                    for col in 0..<16 {
                        for i in 0..<4 {
                            let o = p * 16 + col, kk = 4 * q + i
                            var want: Int8 = 0
                            if o < groupOut && kk < k {
                                let t = kk / groupIn, c = kk % groupIn
                                want = w[(((g * groupOut + o) * groupIn + c) * kh + t / kw) * kw + t % kw]
                            }
                            if Int8(bitPattern: packed[((g * panels + p) * quads + q) * 64 + col * 4 + i]) != want { mismatches += 1 }
                        }
                    }
                }
            }
        }
        for o in 0..<(groups * groupOut) {
            let sum = (0..<k).reduce(Int32(0)) { $0 + Int32(w[o * k + $1]) }
            let stored = packed.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: weightBytes + 4 * o, as: Int32.self) }
            if stored != sum { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    // MARK: - Depthwise

    /// Channel counts around the 16-wide block (1, 3, 16, 17, 33, 40, 144), 3×3 and 5×5 kernels at strides 1 and 2, a 7×7,
    /// asymmetric and all-padding windows, dilation, batches, strided pixels, rows wide enough for the 4-pixel
    /// steps, and a size that takes two threads.
    static let depthwise: [Conv] = [
        Conv(inH: 1, inW: 1, groups: 1, groupIn: 1, groupOut: 1, kh: 1, kw: 1),
        Conv(inH: 5, inW: 5, groups: 3, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(batch: 2, inH: 9, inW: 10, groups: 16, groupIn: 1, groupOut: 1, kh: 3, kw: 3, sh: 2, sw: 2, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 11, inW: 12, groups: 17, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 9, inW: 13, groups: 33, groupIn: 1, groupOut: 1, kh: 5, kw: 5, top: 2, left: 2, bottom: 2, right: 2),
        Conv(inH: 13, inW: 14, groups: 40, groupIn: 1, groupOut: 1, kh: 5, kw: 5, sh: 2, sw: 2, top: 2, left: 1, bottom: 2, right: 2),
        Conv(inH: 9, inW: 8, groups: 17, groupIn: 1, groupOut: 1, kh: 7, kw: 7, sh: 3, sw: 2, top: 3, left: 1, bottom: 2, right: 3),
        Conv(inH: 10, inW: 10, groups: 32, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 2, left: 2, bottom: 2, right: 2, dh: 2, dw: 2),
        Conv(inH: 2, inW: 2, groups: 17, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 3, left: 3, bottom: 3, right: 3),
        Conv(inH: 4, inW: 9, groups: 19, groupIn: 1, groupOut: 1, kh: 3, kw: 1, top: 1, bottom: 1, xExtra: 3, yExtra: 2),
        Conv(inH: 7, inW: 7, groups: 144, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(batch: 2, inH: 40, inW: 40, groups: 32, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
    ]

    @Test(arguments: 0..<depthwise.count) func depthwiseMatchesReference(_ i: Int) {
        let s = Self.depthwise[i]
        let d = Data(s, seed: i + 50)
        for (index, zp) in [Int32(0), 128, 255].enumerated() {
            Self.check(s, d, Epilogue(channels: s.outChannels, xZeroPoint: zp, bias: index != 2, f32: false, seed: i * 5 + index), depthwise: true)
        }
        Self.check(s, d, Epilogue(channels: s.outChannels, xZeroPoint: 3, bias: true, f32: true, seed: i + 7), depthwise: true)
    }

    /// `ck_qdepthwise_nhwc_pack` writes the documented layout: 16-channel blocks of taps × 16, zeros past the last
    /// channel, then Σw per channel.
    @Test func depthwisePackingLayout() {
        let (channels, kh, kw) = (17, 3, 2)
        let s = Conv(inH: 1, inW: 1, groups: channels, groupIn: 1, groupOut: 1, kh: kh, kw: kw)
        let w = Data(s, seed: 4).w
        let packed = Self.packDepthwise(s, w)
        let taps = kh * kw, weightBytes = 2 * 16 * taps
        #expect(packed.count == weightBytes + 4 * channels)
        var mismatches = 0
        for cb in 0..<2 {
            for t in 0..<taps {
                for col in 0..<16 {
                    let c = cb * 16 + col
                    if Int8(bitPattern: packed[(cb * taps + t) * 16 + col]) != (c < channels ? w[c * taps + t] : 0) { mismatches += 1 }
                }
            }
        }
        for c in 0..<channels {
            let sum = (0..<taps).reduce(Int32(0)) { $0 + Int32(w[c * taps + $1]) }
            if packed.withUnsafeBytes({ $0.loadUnaligned(fromByteOffset: weightBytes + 4 * c, as: Int32.self) }) != sum { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    // MARK: - Multipliers

    /// TFLite's QuantizeMultiplier: real = M·2^(shift − 31), M in [2^30, 2^31), on hand-computed cases.
    @Test func quantizeMultiplierKnownValues() {
        let cases: [(Double, Int32, Int32)] = [
            (0.5, 1 << 30, 0),
            (0.25, 1 << 30, -1),
            (1.0, 1 << 30, 1),
            (0.75, 3 << 29, 0),
            (2.0, 1 << 30, 2),
            (0.1, 1_717_986_918, -3),       // 0.8·2^31 = 1717986918.4 → 1717986918, 0.1 = 0.8·2^-3
            (0.3, 1_288_490_189, -1),       // 0.6·2^31 = 1288490188.8 → 1288490189
            (1.0 / 3, 1_431_655_765, -1),   // (2/3)·2^31 = 1431655765.33
            (0.9999999999, 1 << 30, 1),     // rounds up to 2^31: halved, shift + 1
            (0, 0, 0),
            (1e-11, 0, 0),                  // shift −36 < −31: flushed to zero
            (3e9, Int32.max, 30),           // capped
        ]
        for (real, m, s) in cases {
            var multiplier: Int32 = -1, shift: Int32 = -1
            ck_quantize_multiplier(real, &multiplier, &shift)
            #expect(multiplier == m && shift == s, "\(real): (\(multiplier), \(shift)), expected (\(m), \(s))")
        }
    }

    /// MultiplyByQuantizedMultiplier on hand-computed cases, both roundings' halfway points, the shift clamps and
    /// the saturating corner, then against the Swift form on many values.
    @Test func multiplyByQuantizedMultiplier() {
        let cases: [(Int32, Int32, Int32, Int32)] = [
            (100, 1 << 30, 0, 50),      // 100·0.5
            (3, 1 << 30, 0, 2),         // 1.5 → 2 (high-mul rounds half up)
            (-3, 1 << 30, 0, -1),       // −1.5 → −1 (TFLite's nudge: half towards +∞ here)
            (5, 1 << 30, -1, 2),        // 1.25 → 2: two roundings (2.5 → 3, then 1.5 → 2), as TFLite's
            (6, 1 << 30, -1, 2),        // 3·0.5 = 1.5 → 2 (divide rounds half away from zero)
            (-6, 1 << 30, -1, -2),      // −1.5 → −2
            (7, 1 << 30, 1, 7),         // ·1
            (1000, 1 << 30, 2, 2000),   // ·2
            (Int32.min, Int32.min, 0, Int32.max),  // the saturating product
            (12345, 0, 0, 0),
            (1 << 20, 1 << 30, -40, 0), // right shift clamped to 31
        ]
        for (x, m, s, want) in cases {
            let got = ck_multiply_by_quantized_multiplier(x, m, s)
            #expect(got == want, "(\(x), \(m), \(s)) → \(got), expected \(want)")
            #expect(Self.roundFixed(x, m, s) == want, "Swift reference (\(x), \(m), \(s))")
        }
        var r = Integers(seed: 77)
        var mismatches = 0
        for _ in 0..<20000 {
            let x = Int32(truncatingIfNeeded: r.next(-1_000_000_000...1_000_000_000))
            let m = Int32(r.next(0...Int(Int32.max)))
            let s = Int32(r.next(-33...4))
            if ck_multiply_by_quantized_multiplier(x, m, s) != Self.roundFixed(x, m, s) { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }
}
