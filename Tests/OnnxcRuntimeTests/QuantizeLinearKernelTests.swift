import CKernels
import Foundation
import OnnxcTestSupport
import Testing

/// The per-tensor (de)quantization and uint8 pooling kernels of int8 models: every ISA path gives ONNX's bytes.
@Suite(.serialized) struct QuantizeLinearKernelTests {
    private func isas() -> [ck_isa] {
        var result: [ck_isa] = [CK_ISA_SCALAR]
        let best = ck_set_isa(CK_ISA_AUTO)
        if best.rawValue >= CK_ISA_AVX2_FMA.rawValue { result.append(CK_ISA_AVX2_FMA) }
        return result
    }

    /// DynamicQuantizeLinear's grid: the range includes 0, NaNs are ignored, ±0 and infinities as the scalar loop
    /// treats them; the active path's range (the vector one on AVX2) agrees with it at every length around the
    /// vector width. On the active level only: switching it (ck_set_isa) is process-wide and would change the
    /// activations under tests of other suites running at the same time.
    @Test func dynamicGridMatchesTheScalarRangeOnEveryPath() {
        let special: [Float] = [-0.0, 0, .nan, 3, -2, .nan, 7.5, -0.25, 1e-3, 5]
        for count in [0, 1, 7, 8, 9, 17, 64, 203] {
            for positive in [false, true] {
                var x = (special + Pseudorandom.floats(count, seed: count).map { $0 * 6 }).prefix(count).map { positive ? abs($0) + 1 : $0 }
                if count == 203 { x[150] = -.infinity }
                var lo: Float = 0, hi: Float = 0
                for v in x { lo = v < lo ? v : lo; hi = v > hi ? v : hi }
                let s = (hi == lo ? 1 : hi - lo) / 255
                var y = [UInt8](repeating: 0, count: x.count), scale: Float = 0, zero: UInt8 = 0
                ck_dynamic_quantize_u8(x.count, x, &y, &scale, &zero)
                #expect(scale.bitPattern == s.bitPattern, "count \(count) positive \(positive): \(scale) vs \(s)")
            }
        }
    }

    @Test func quantizeMatchesOnnxRoundingOnEveryPath() {
        InstructionSetLock.exclusively {
            // Ties (0.5 steps), saturation both ways, NaN and infinities, and a tail past the vector width.
            var x: [Float] = [0, 0.5, 1.5, 2.5, -0.5, -1.5, 127.5, 128.5, -300, 300, .nan, .infinity, -.infinity, 1e30, -1e30]
            x += Pseudorandom.floats(203, seed: 4).map { $0 * 40 }
            // Long enough (≈ 3.2 quantize chunks of 16 K, 2.6 dequantize chunks of 64 K) to split over the pool, with
            // the odd sizes above at both ends of the pieces.
            x = x + Pseudorandom.floats(170_000, seed: 5).map { $0 * 300 } + x
            for (scale, zp) in [(Float(1), Int32(0)), (0.25, 128), (0.1, 255), (3, 17)] {
                let expected: [UInt8] = x.map { v in
                    let q = Double(v / scale)
                    guard !q.isNaN else { return UInt8(zp) }
                    return UInt8(min(255, max(0, q.rounded(.toNearestOrEven) + Double(zp))))
                }
                for isa in isas() {
                    _ = ck_set_isa(isa)
                    var y = [UInt8](repeating: 7, count: x.count)
                    ck_quantize_u8(x.count, x, scale, zp, &y)
                    #expect(y == expected, "isa \(isa.rawValue) scale \(scale) zp \(zp)")
                    var back = [Float](repeating: 0, count: x.count)
                    ck_dequantize_u8(x.count, y, scale, zp, &back)
                    #expect(back == y.map { Float(Int32($0) - zp) * scale })
                    // The same bytes read as int8 (an embedding table's rows), zero point moved into its range.
                    let signed = y.map { Int8(bitPattern: $0) }, szp = zp - 128
                    ck_dequantize_s8(signed.count, signed, scale, szp, &back)
                    #expect(back == signed.map { Float(Int32($0) - szp) * scale }, "isa \(isa.rawValue) int8")
                }
            }
            _ = ck_set_isa(CK_ISA_AUTO)
        }
    }

    @Test func floatQuantizedAddIsTheSameOnEveryPathAndCloseToExact() {
        InstructionSetLock.exclusively {
            let n = 70_000  // two pool chunks and a tail
            let a: [UInt8] = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) }
            let b: [UInt8] = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 40_503 >> 3) }
            var outputs: [[UInt8]] = []
            for isa in isas() {
                _ = ck_set_isa(isa)
                var y = [UInt8](repeating: 0, count: n)
                ck_qadd_u8_float(n, a, 0.05, 128, b, 0.02, 3, 0.06, 100, &y)
                outputs.append(y)
            }
            _ = ck_set_isa(CK_ISA_AUTO)
            #expect(outputs.dropFirst().allSatisfy { $0 == outputs[0] })
            // Within one step of exact rounding in double precision.
            let exact = (0..<n).map { i -> Int in
                let v = ((Double(a[i]) - 128) * Double(Float(0.05)) + (Double(b[i]) - 3) * Double(Float(0.02))) / Double(Float(0.06))
                return Int(min(255, max(0, v.rounded(.toNearestOrEven) + 100)))
            }
            #expect(zip(outputs[0], exact).allSatisfy { abs(Int($0) - $1) <= 1 })
        }
    }

    @Test func squeezeExcitationKernelsMatchTheirFormulas() {
        InstructionSetLock.exclusively {
            let (batch, pixels, channels) = (2, 37, 21)
            let x: [UInt8] = (0..<(batch * pixels * channels)).map { UInt8(truncatingIfNeeded: $0 &* 97 &+ 13) }
            let gate: [UInt8] = (0..<(batch * channels)).map { UInt8(truncatingIfNeeded: $0 &* 53) }
            var results: [[UInt8]] = []
            for isa in isas() {
                _ = ck_set_isa(isa)
                var y = [UInt8](repeating: 0, count: x.count)
                ck_qmul_channel_u8(Int32(batch), Int32(pixels), Int32(channels), x, 0.03, 120, gate, 0.004, 0, 0.05, 10, &y)
                results.append(y)
            }
            _ = ck_set_isa(CK_ISA_AUTO)
            #expect(results.dropFirst().allSatisfy { $0 == results[0] })
            let k = Float(0.03) * Float(0.004) / Float(0.05)
            let expected = x.indices.map { i -> UInt8 in
                let b = i / (pixels * channels), c = i % channels
                let v = (Float(x[i]) - 120) * ((Float(gate[b * channels + c]) - 0) * k)
                return UInt8(min(255, max(0, Double(v).rounded(.toNearestOrEven) + 10)))
            }
            #expect(results[0] == expected)
            var pooled = [UInt8](repeating: 0, count: batch * channels)
            ck_qglobal_avgpool_nhwc_u8(Int32(batch), Int32(pixels), Int32(channels), x, 0.03, 120, 0.02, 128, &pooled)
            for b in 0..<batch {
                for c in 0..<channels {
                    let mean = (0..<pixels).map { Double(x[(b * pixels + $0) * channels + c]) }.reduce(0, +) / Double(pixels)
                    let exact = ((mean - 120) * 0.03 / 0.02).rounded() + 128
                    #expect(abs(Double(pooled[b * channels + c]) - min(255, max(0, exact))) <= 1)
                }
            }
        }
    }

    /// ck_qbinary_u8 over broadcast shapes (per channel, both operands broadcast, a scalar, rows long enough to be
    /// split into pieces, a transposed view): on every path the bytes of its formulas, and for operands of one
    /// shape the bytes of ck_qadd_u8_float and ck_qmul_channel_u8.
    @Test func broadcastQuantizedAddAndMulMatchTheirFormulas() {
        InstructionSetLock.exclusively {
            func strides(_ s: [Int], _ out: [Int]) -> [Int] {
                let aligned = [Int](repeating: 1, count: out.count - s.count) + s
                var result = [Int](repeating: 0, count: out.count), step = 1
                for d in stride(from: out.count - 1, through: 0, by: -1) {
                    result[d] = aligned[d] == 1 ? 0 : step
                    step *= aligned[d]
                }
                return result
            }
            // (output shape, a strides, b strides, a count, b count)
            var cases: [([Int], [Int], [Int], Int, Int)] = []
            for (a, b) in [([2, 3, 5, 7], [3, 1, 1]), ([4, 1, 300], [1, 5, 1]), ([1, 70_000], [1]), ([3, 70_001], [3, 1]), ([6, 10], [10]),
                           ([5, 41], [5, 41]), ([1], [9, 1, 2])] {
                let out = (0..<max(a.count, b.count)).map { i -> Int in
                    let x = i - (max(a.count, b.count) - a.count), y = i - (max(a.count, b.count) - b.count)
                    return max(x >= 0 ? a[x] : 1, y >= 0 ? b[y] : 1)
                }
                cases.append((out, strides(a, out), strides(b, out), a.reduce(1, *), b.reduce(1, *)))
            }
            cases.append(([4, 3], [1, 4], [3, 1], 12, 12))  // a read transposed: an inner stride that is neither 0 nor 1
            for (shape, sa, sb, na, nb) in cases {
                let a: [UInt8] = (0..<na).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) }
                let b: [UInt8] = (0..<nb).map { UInt8(truncatingIfNeeded: $0 &* 40_503 >> 3) }
                let count = shape.reduce(1, *)
                // Each output element's offsets in a and b, row-major over `shape`.
                func offsets(_ st: [Int]) -> [Int] {
                    (0..<count).map { i in
                        var rest = i, offset = 0
                        for d in stride(from: shape.count - 1, through: 0, by: -1) {
                            offset += (rest % shape[d]) * st[d]
                            rest /= shape[d]
                        }
                        return offset
                    }
                }
                let (ia, ib) = (offsets(sa), offsets(sb))
                let (ka, kb, k) = (Float(0.05) / Float(0.06), Float(0.02) / Float(0.06), Float(0.05) * Float(0.02) / Float(0.06))
                func saturate(_ v: Float, _ zy: Double) -> UInt8 {
                    UInt8(min(255, max(0, Double(min(512, max(-512, v))).rounded(.toNearestOrEven) + zy)))
                }
                let sums = (0..<count).map { i in saturate(((Float(a[ia[i]]) - 128) * ka).addingProduct(Float(b[ib[i]]) - 3, kb), 100) }
                let products = (0..<count).map { i in saturate((Float(a[ia[i]]) - 128) * ((Float(b[ib[i]]) - 3) * k), 100) }
                for isa in isas() {
                    _ = ck_set_isa(isa)
                    for (op, expected) in [(CK_QBINARY_ADD, sums), (CK_QBINARY_MUL, products)] {
                        var y = [UInt8](repeating: 0, count: count)
                        let done = ck_qbinary_u8(Int32(op.rawValue), Int32(shape.count), shape.map { Int32($0) }, sa, sb, a, 0.05, 128, b, 0.02, 3, 0.06, 100, &y)
                        #expect(done == 1 && y == expected, "isa \(isa.rawValue) op \(op.rawValue) shape \(shape) strides \(sa) \(sb)")
                    }
                    if na == count && nb == count && sa == strides(shape, shape) {
                        var sum = [UInt8](repeating: 0, count: count), product = sum
                        ck_qadd_u8_float(count, a, 0.05, 128, b, 0.02, 3, 0.06, 100, &sum)
                        ck_qmul_channel_u8(Int32(count), 1, 1, a, 0.05, 128, b, 0.02, 3, 0.06, 100, &product)
                        #expect(sum == sums && product == products, "isa \(isa.rawValue) shape \(shape)")
                    }
                }
                _ = ck_set_isa(CK_ISA_AUTO)
            }
            var y = [UInt8](repeating: 0, count: 1)
            #expect(ck_qbinary_u8(2, 1, [1], [0], [0], [1], 1, 0, [1], 1, 0, 1, 0, &y) == 0)
            #expect(ck_qbinary_u8(0, 9, [Int32](repeating: 1, count: 9), [Int](repeating: 0, count: 9), [Int](repeating: 0, count: 9), [1], 1, 0, [1], 1, 0, 1, 0, &y) == 0)
        }
    }

    @Test func tableLookupIsTheSameOnEveryPath() {
        InstructionSetLock.exclusively {
            let table: [UInt8] = (0..<256).map { UInt8(truncatingIfNeeded: $0 &* 167 &+ 29) }
            let n = 140_003  // pool chunks, a 64-byte vector tail and a scalar tail
            let x: [UInt8] = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 2_246_822_519 >> 11) }
            let expected = x.map { table[Int($0)] }
            for isa in [CK_ISA_SCALAR, CK_ISA_AVX2_FMA, CK_ISA_AUTO] {
                _ = ck_set_isa(isa)
                var y = [UInt8](repeating: 0, count: n)
                ck_lookup_u8(n, x, table, &y)
                #expect(y == expected, "isa \(isa.rawValue)")
            }
            _ = ck_set_isa(CK_ISA_AUTO)
        }
    }

    @Test func byteTransposeMovesEveryByte() {
        let (batch, rows, cols) = (3, 130, 70)
        let x: [UInt8] = (0..<(batch * rows * cols)).map { UInt8(truncatingIfNeeded: $0 * 31) }
        var y = [UInt8](repeating: 0, count: x.count)
        ck_transpose_batched_u8(Int32(batch), Int32(rows), Int32(cols), x, &y)
        var expected = [UInt8](repeating: 0, count: x.count)
        for b in 0..<batch { for r in 0..<rows { for c in 0..<cols { expected[b * rows * cols + c * rows + r] = x[b * rows * cols + r * cols + c] } } }
        #expect(y == expected)
    }

    @Test func threePlaneByteTransposeOnEveryPath() {
        InstructionSetLock.exclusively {
            // An image's three planes to interleaved triples: column counts around the 16-column vectors and the
            // 8192-column tasks, two images, on the scalar and the AVX2 path.
            for cols in [1, 15, 16, 17, 47, 8192, 8193 + 16 * 3 + 5] {
                let batch = 2
                let x: [UInt8] = (0..<(batch * 3 * cols)).map { UInt8(truncatingIfNeeded: $0 * 37 + $0 / 251) }
                var expected = [UInt8](repeating: 0, count: x.count)
                for b in 0..<batch { for r in 0..<3 { for c in 0..<cols { expected[b * 3 * cols + c * 3 + r] = x[b * 3 * cols + r * cols + c] } } }
                for isa in [CK_ISA_SCALAR, CK_ISA_AVX2_FMA, CK_ISA_AUTO] {
                    _ = ck_set_isa(isa)
                    var y = [UInt8](repeating: 0, count: x.count)
                    ck_transpose_batched_u8(Int32(batch), 3, Int32(cols), x, &y)
                    #expect(y == expected, "cols \(cols), isa \(isa.rawValue)")
                }
            }
            _ = ck_set_isa(CK_ISA_AUTO)
        }
    }

    /// ck_qavgpool2d_nhwc_u8 against its formula: 3×3 windows (stride 2, pad 1) with and without count_include_pad,
    /// over 5 and 300 channels (two 256-channel blocks), and a 2×2 window reaching past the image (ceil mode).
    @Test func uint8AveragePoolMatchesItsFormula() {
        for (channels, kernel, stride, pad, includePad, outH) in [(5, 3, 2, 1, false, 4), (300, 3, 2, 1, true, 4), (7, 2, 2, 0, false, 4)] {
            var g = ck_pool_nhwc()
            (g.batch, g.in_h, g.in_w, g.channels) = (2, 7, 6, Int32(channels))
            (g.kernel_h, g.kernel_w, g.stride_h, g.stride_w) = (Int32(kernel), Int32(kernel), Int32(stride), Int32(stride))
            (g.pad_top, g.pad_left, g.dilation_h, g.dilation_w) = (Int32(pad), Int32(pad), 1, 1)
            (g.out_h, g.out_w) = (Int32(outH), 3)
            (g.x_stride, g.y_stride) = (channels, channels)
            let x: [UInt8] = (0..<(2 * 42 * channels)).map { (i: Int) -> UInt8 in UInt8((i * 73 + 11) % 256) }
            var y = [UInt8](repeating: 0, count: 2 * outH * 3 * channels)
            ck_qavgpool2d_nhwc_u8(&g, x, 0.05, 120, 0.03, 7, includePad ? 1 : 0, &y)
            var expected = y
            for b in 0..<2 {
                for oy in 0..<outH {
                    for ox in 0..<3 {
                        var taps: [Int] = []
                        for ky in 0..<kernel {
                            for kx in 0..<kernel {
                                let iy = oy * stride - pad + ky, ix = ox * stride - pad + kx
                                if iy >= 0, iy < 7, ix >= 0, ix < 6 { taps.append(((b * 7 + iy) * 6 + ix) * channels) }
                            }
                        }
                        let k = Float(0.05) / (Float(0.03) * Float(includePad ? kernel * kernel : taps.count))
                        for c in 0..<channels {
                            let v = Float(taps.reduce(0) { $0 + Int(x[$1 + c]) } - taps.count * 120) * k
                            expected[((b * outH + oy) * 3 + ox) * channels + c] = UInt8(min(255, max(0, Double(v).rounded(.toNearestOrEven) + 7)))
                        }
                    }
                }
            }
            #expect(y == expected, "channels \(channels) kernel \(kernel) count_include_pad \(includePad)")
        }
    }

    /// 2 images of 7×6 pixels: 3×3 windows (stride 2, pad 1) over 5 channels (the portable loop) and 119 (the vector
    /// blocks of 64, 32 and 16 and a tail), and 9×9 windows (stride 1, pad 4: up to 81 taps, folded in two passes).
    @Test func uint8MaxPoolEqualsTheFloatPool() {
        InstructionSetLock.exclusively {
            for (channels, kernel, stride, pad) in [(5, 3, 2, 1), (119, 3, 2, 1), (70, 9, 1, 4)] {
                var g = ck_pool_nhwc()
                (g.batch, g.in_h, g.in_w, g.channels) = (2, 7, 6, Int32(channels))
                (g.kernel_h, g.kernel_w, g.stride_h, g.stride_w) = (Int32(kernel), Int32(kernel), Int32(stride), Int32(stride))
                (g.pad_top, g.pad_left, g.dilation_h, g.dilation_w) = (Int32(pad), Int32(pad), 1, 1)
                (g.out_h, g.out_w) = ((7 + 2 * Int32(pad) - Int32(kernel)) / Int32(stride) + 1, (6 + 2 * Int32(pad) - Int32(kernel)) / Int32(stride) + 1)
                (g.x_stride, g.y_stride) = (channels, channels)
                let q: [UInt8] = (0..<(2 * 42 * channels)).map { (i: Int) -> UInt8 in UInt8((i * 73 + 11) % 256) }
                let count = 2 * Int(g.out_h * g.out_w) * channels
                var yf = [Float](repeating: 0, count: count)
                ck_maxpool2d_nhwc(&g, q.map(Float.init), &yf)
                for isa in isas() {
                    _ = ck_set_isa(isa)
                    var y = [UInt8](repeating: 9, count: count)
                    ck_maxpool2d_nhwc_u8(&g, q, &y)
                    #expect(y.map(Float.init) == yf, "isa \(isa.rawValue) channels \(channels) kernel \(kernel)")
                }
                _ = ck_set_isa(CK_ISA_AUTO)
            }
        }
    }
}
