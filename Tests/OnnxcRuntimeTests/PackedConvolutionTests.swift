import CKernels
import Testing

/// CKernels' convolutions against a direct loop: `ck_sconv2d` (the GEMM that packs B straight from X) with
/// padding, strides, dilations and output widths that do and do not fill a 16-column sliver, with one row block
/// (B packed per task) and several (B packed up front); and `ck_depthwise_conv2d` with bias and activation.
@Suite struct PackedConvolutionTests {
    private struct Shape {
        var m: Int, channels: Int, inH: Int, inW: Int, kh: Int, kw: Int
        var sh = 1, sw = 1, pad = 0, dh = 1, dw = 1
        var outH: Int { (inH + 2 * pad - dh * (kh - 1) - 1) / sh + 1 }
        var outW: Int { (inW + 2 * pad - dw * (kw - 1) - 1) / sw + 1 }
    }

    private static let shapes: [Shape] = [
        Shape(m: 8, channels: 3, inH: 9, inW: 20, kh: 3, kw: 3, pad: 1),
        Shape(m: 80, channels: 4, inH: 7, inW: 7, kh: 3, kw: 3, pad: 1),
        Shape(m: 13, channels: 2, inH: 17, inW: 33, kh: 5, kw: 3, sh: 2, sw: 2, pad: 2),
        Shape(m: 150, channels: 5, inH: 11, inW: 18, kh: 3, kw: 3, pad: 2, dh: 2, dw: 2),
        Shape(m: 6, channels: 1, inH: 4, inW: 40, kh: 1, kw: 7, sw: 3, pad: 3),
    ]

    private func values(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { i in Float(((i * 29 + seed * 13) % 19) - 9) / 8 }
    }

    /// Σ over taps in (channel, kernel row, kernel column) order, in Double.
    private func reference(_ s: Shape, x: [Float], w: [Float], bias: [Float], perChannelWeights: Bool) -> [Float] {
        var y = [Float](repeating: 0, count: s.m * s.outH * s.outW)
        for o in 0..<s.m {
            for oh in 0..<s.outH {
                for ow in 0..<s.outW {
                    var sum = 0.0
                    for c in (perChannelWeights ? o..<(o + 1) : 0..<s.channels) {
                        for i in 0..<s.kh {
                            for j in 0..<s.kw {
                                let ih = oh * s.sh - s.pad + i * s.dh, iw = ow * s.sw - s.pad + j * s.dw
                                guard ih >= 0, ih < s.inH, iw >= 0, iw < s.inW else { continue }
                                let wi = perChannelWeights ? (o * s.kh + i) * s.kw + j : ((o * s.channels + c) * s.kh + i) * s.kw + j
                                sum += Double(w[wi]) * Double(x[(c * s.inH + ih) * s.inW + iw])
                            }
                        }
                    }
                    y[(o * s.outH + oh) * s.outW + ow] = max(0, Float(sum + Double(bias[o])))
                }
            }
        }
        return y
    }

    private func input(_ s: Shape, channels: Int) -> ck_conv2d_input {
        ck_conv2d_input(x: nil, channels: Int32(channels), in_h: Int32(s.inH), in_w: Int32(s.inW), out_h: Int32(s.outH),
                        out_w: Int32(s.outW), kernel_h: Int32(s.kh), kernel_w: Int32(s.kw), stride_h: Int32(s.sh),
                        stride_w: Int32(s.sw), pad_top: Int32(s.pad), pad_left: Int32(s.pad), dilation_h: Int32(s.dh),
                        dilation_w: Int32(s.dw))
    }

    @Test func convolutionPacksBFromInput() {
        for s in Self.shapes {
            let k = s.channels * s.kh * s.kw
            let x = values(s.channels * s.inH * s.inW, seed: 1), w = values(s.m * k, seed: 2), bias = values(s.m, seed: 3)
            let expected = reference(s, x: x, w: w, bias: bias, perChannelWeights: false)
            var y = [Float](repeating: .nan, count: s.m * s.outH * s.outW)
            x.withUnsafeBufferPointer { px in
                w.withUnsafeBufferPointer { pw in
                    bias.withUnsafeBufferPointer { pb in
                        var conv = input(s, channels: s.channels)
                        conv.x = px.baseAddress
                        var epilogue = ck_epilogue(bias_kind: CK_BIAS_ROW, bias: pb.baseAddress, activation: CK_ACT_RELU, param0: 0, param1: 0, accumulate: 0, wide: 0)
                        let a = ck_operand(data: pw.baseAddress, rs: k, cs: 1, packed: 0)
                        y.withUnsafeMutableBufferPointer { py in
                            ck_sconv2d(Int32(s.m), a, &conv, py.baseAddress, s.outH * s.outW, &epilogue)
                        }
                    }
                }
            }
            let tolerance = Float(1e-5) * Float(k + 4) * 4
            let worst = zip(y, expected).map { abs($0 - $1) }.max() ?? 0
            #expect(worst <= tolerance, "\(s): worst error \(worst)")
        }
    }

    @Test func depthwiseWithBiasAndRelu() {
        for var s in Self.shapes {
            s.m = s.channels * 2  // channels of the depthwise input = output channels
            let channels = s.m
            let x = values(channels * s.inH * s.inW, seed: 4), w = values(channels * s.kh * s.kw, seed: 5), bias = values(channels, seed: 6)
            let expected = reference(Shape(m: channels, channels: channels, inH: s.inH, inW: s.inW, kh: s.kh, kw: s.kw, sh: s.sh, sw: s.sw, pad: s.pad, dh: s.dh, dw: s.dw),
                                     x: x, w: w, bias: bias, perChannelWeights: true)
            var y = [Float](repeating: .nan, count: channels * s.outH * s.outW)
            var epilogue = ck_epilogue(bias_kind: CK_BIAS_NONE, bias: nil, activation: CK_ACT_RELU, param0: 0, param1: 0, accumulate: 0, wide: 0)
            y.withUnsafeMutableBufferPointer { py in
                ck_depthwise_conv2d(1, Int32(channels), Int32(s.inH), Int32(s.inW), Int32(s.outH), Int32(s.outW), Int32(s.kh), Int32(s.kw),
                                    Int32(s.sh), Int32(s.sw), Int32(s.pad), Int32(s.pad), Int32(s.dh), Int32(s.dw),
                                    x, w, bias, py.baseAddress, &epilogue)
            }
            let worst = zip(y, expected).map { abs($0 - $1) }.max() ?? 0
            #expect(worst <= 1e-4, "\(s): worst error \(worst)")
        }
    }
}
