import CKernels
import Foundation
import OnnxcTestSupport
import Testing

/// CKernels' channels-last (NHWC) kernels against double-precision loops written here: the indirect-GEMM
/// convolution (`ck_conv2d_nhwc`) and its weight packing, the depthwise kernel, the windowed and global pools and the
/// batched transpose. Every case runs on the scalar and the AVX2 path and on 1 and 2 threads (bit-identical per path,
/// as the header promises; the global pool is single-threaded and the transpose has one path), through the `*_with`
/// entry points: `ck_set_isa` is a process-wide switch that the header
/// forbids while other products run, and Swift Testing runs other suites (PackedGemmTests, FusedKernelTests, which
/// compare runs bit for bit) in parallel with this one, so flipping it here would make those flaky.
@Suite struct ChannelsLastKernelTests {
    // MARK: - Shared

    /// The instruction-set paths: scalar, AVX2, and the best the CPU has (AVX-512 where present; on a CPU without
    /// AVX2 all three are the scalar one, without AVX-512 the last two are AVX2).
    static let paths: [ck_isa] = [CK_ISA_SCALAR, CK_ISA_AVX2_FMA, CK_ISA_AUTO]

    /// An epilogue activation with its parameters, and the formula the header documents, in Double.
    struct Activation: CustomStringConvertible, Sendable {
        var kind: ck_activation
        var p0: Float = 0, p1: Float = 0
        var name: String
        var description: String { name }

        func apply(_ v: Double) -> Double {
            let p0 = Double(self.p0), p1 = Double(self.p1)
            switch kind {
            case CK_ACT_RELU: return v > 0 ? v : 0
            case CK_ACT_CLIP: return min(max(v, p0), p1)
            case CK_ACT_LEAKY_RELU: return v < 0 ? p0 * v : v
            case CK_ACT_HARD_SIGMOID: return max(0, min(1, p0 * v + p1))
            case CK_ACT_HARD_SWISH: return v * max(0, min(1, v / 6 + 0.5))
            case CK_ACT_SIGMOID: return 1 / (1 + exp(-v))
            case CK_ACT_SILU: return v / (1 + exp(-v))
            default: return v
            }
        }
    }

    static let activations: [Activation] = [
        Activation(kind: CK_ACT_NONE, name: "none"),
        Activation(kind: CK_ACT_RELU, name: "relu"),
        Activation(kind: CK_ACT_CLIP, p0: -0.5, p1: 0.75, name: "clip"),
        Activation(kind: CK_ACT_LEAKY_RELU, p0: 0.1, name: "leaky relu"),
        Activation(kind: CK_ACT_HARD_SIGMOID, p0: 0.2, p1: 0.5, name: "hard sigmoid"),
        Activation(kind: CK_ACT_HARD_SWISH, name: "hard swish"),
        Activation(kind: CK_ACT_SIGMOID, name: "sigmoid"),
        Activation(kind: CK_ACT_SILU, name: "silu"),
    ]

    /// Calls `body` with the array's base address, or nil for a nil array.
    static func withOptional<R>(_ values: [Float]?, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let values else { return body(nil) }
        return values.withUnsafeBufferPointer { body($0.baseAddress) }
    }

    /// A value the kernels never write, to find writes outside the output's channels.
    static let sentinel: Float = 7777

    // MARK: - Convolution geometry and reference

    /// A channels-last convolution: pads top/left/bottom/right, and `xExtra`/`yExtra` floats per pixel past the
    /// channels (a strided view into a wider tensor, as a Concat's slice would be).
    struct Conv: CustomStringConvertible, Sendable {
        var batch = 1, inH: Int, inW: Int
        var groups = 1, groupIn: Int, groupOut: Int
        var kh: Int, kw: Int
        var sh = 1, sw = 1
        var top = 0, left = 0, bottom = 0, right = 0
        var dh = 1, dw = 1
        var xExtra = 0, yExtra = 0

        var outH: Int { (inH + top + bottom - dh * (kh - 1) - 1) / sh + 1 }
        var outW: Int { (inW + left + right - dw * (kw - 1) - 1) / sw + 1 }
        var inChannels: Int { groups * groupIn }
        var outChannels: Int { groups * groupOut }
        var xStride: Int { inChannels + xExtra }
        var yStride: Int { outChannels + yExtra }
        var outPixels: Int { batch * outH * outW }
        var description: String {
            "N\(batch) \(inH)×\(inW) g\(groups) \(groupIn)→\(groupOut) k\(kh)×\(kw) s\(sh),\(sw) pads \(top),\(left),\(bottom),\(right) d\(dh),\(dw) +\(xExtra)/+\(yExtra)"
        }

        var geometry: ck_conv_nhwc {
            var g = ck_conv_nhwc()
            g.batch = Int32(batch); g.in_h = Int32(inH); g.in_w = Int32(inW); g.out_h = Int32(outH); g.out_w = Int32(outW)
            g.kernel_h = Int32(kh); g.kernel_w = Int32(kw); g.stride_h = Int32(sh); g.stride_w = Int32(sw)
            g.pad_top = Int32(top); g.pad_left = Int32(left); g.dilation_h = Int32(dh); g.dilation_w = Int32(dw)
            g.groups = Int32(groups); g.group_in = Int32(groupIn); g.group_out = Int32(groupOut)
            g.x_stride = xStride; g.y_stride = yStride
            return g
        }
    }

    /// The inputs of one convolution run: X (xStride floats per pixel), ONNX weights [M, C/g, kh, kw], optional bias
    /// and residual (yStride floats per pixel, like Y).
    struct ConvData {
        var x: [Float], w: [Float], bias: [Float]?, residual: [Float]?

        init(_ s: Conv, bias: Bool, residual: Bool, weightScale: Float = 1, seed: Int = 1) {
            x = Pseudorandom.floats(s.batch * s.inH * s.inW * s.xStride, seed: seed)
            w = Pseudorandom.floats(s.outChannels * s.groupIn * s.kh * s.kw, seed: seed + 1).map { $0 * weightScale }
            self.bias = bias ? Pseudorandom.floats(s.outChannels, seed: seed + 2) : nil
            self.residual = residual ? Pseudorandom.floats(s.outPixels * s.yStride, seed: seed + 3) : nil
        }
    }

    /// act(bias + Σ w·x + residual) per output (compact [pixel, channel] order) in Double, with 1 + Σ|terms|, the
    /// magnitude the float error is relative to.
    static func reference(_ s: Conv, _ d: ConvData, _ act: Activation) -> (values: [Double], scale: [Double]) {
        var values = [Double](repeating: 0, count: s.outPixels * s.outChannels), scale = values
        for n in 0..<s.batch {
            for oh in 0..<s.outH {
                for ow in 0..<s.outW {
                    let pixel = (n * s.outH + oh) * s.outW + ow
                    for o in 0..<s.outChannels {
                        let group = o / s.groupOut
                        var sum = 0.0, magnitude = 1.0
                        for i in 0..<s.kh {
                            let ih = oh * s.sh - s.top + i * s.dh
                            guard ih >= 0, ih < s.inH else { continue }
                            for j in 0..<s.kw {
                                let iw = ow * s.sw - s.left + j * s.dw
                                guard iw >= 0, iw < s.inW else { continue }
                                let xBase = ((n * s.inH + ih) * s.inW + iw) * s.xStride + group * s.groupIn
                                for c in 0..<s.groupIn {
                                    let term = Double(d.w[((o * s.groupIn + c) * s.kh + i) * s.kw + j]) * Double(d.x[xBase + c])
                                    sum += term
                                    magnitude += abs(term)
                                }
                            }
                        }
                        if let bias = d.bias { sum += Double(bias[o]); magnitude += abs(Double(bias[o])) }
                        if let residual = d.residual {
                            let r = Double(residual[pixel * s.yStride + o])
                            sum += r
                            magnitude += abs(r)
                        }
                        values[pixel * s.outChannels + o] = act.apply(sum)
                        scale[pixel * s.outChannels + o] = magnitude
                    }
                }
            }
        }
        return (values, scale)
    }

    static func packConv(_ s: Conv, _ w: [Float]) -> [Float] {
        let size = ck_conv_nhwc_packed_size(Int32(s.groups), Int32(s.groupOut), Int32(s.groupIn), Int32(s.kh), Int32(s.kw))
        var packed = [Float](repeating: .nan, count: size)
        packed.withUnsafeMutableBufferPointer { p in
            ck_conv_nhwc_pack(Int32(s.groups), Int32(s.groupOut), Int32(s.groupIn), Int32(s.kh), Int32(s.kw), w, p.baseAddress)
        }
        return packed
    }

    static func packDepthwise(_ s: Conv, _ w: [Float]) -> [Float] {
        var packed = [Float](repeating: .nan, count: ck_depthwise_nhwc_packed_size(Int32(s.groups), Int32(s.kh), Int32(s.kw)))
        packed.withUnsafeMutableBufferPointer { p in ck_depthwise_nhwc_pack(Int32(s.groups), Int32(s.kh), Int32(s.kw), w, p.baseAddress) }
        return packed
    }

    /// The kernel a check runs.
    enum ConvKernel { case direct, depthwise, winograd }

    /// Y (yStride floats per pixel, the gap filled with `sentinel`) from the general, depthwise or Winograd kernel.
    static func runConv(_ s: Conv, _ d: ConvData, packed: [Float], _ act: Activation, isa: ck_isa, threads: Int32,
                        kernel: ConvKernel = .direct) -> [Float] {
        var y = [Float](repeating: sentinel, count: s.outPixels * s.yStride)
        var geometry = s.geometry
        withOptional(d.bias) { bias in
            withOptional(d.residual) { residual in
                var epilogue = ck_conv_epilogue(bias: bias, residual: residual, residual_stride: s.yStride, activation: act.kind,
                                                param0: act.p0, param1: act.p1)
                y.withUnsafeMutableBufferPointer { py in
                    switch kernel {
                    case .depthwise: ck_depthwise2d_nhwc_with(&geometry, d.x, packed, &epilogue, py.baseAddress, isa, threads)
                    case .direct: ck_conv2d_nhwc_with(&geometry, d.x, packed, &epilogue, py.baseAddress, isa, threads)
                    case .winograd:
                        // One thread allocates its own workspace, two use the caller's (both paths of the API).
                        if threads == 1 {
                            ck_conv2d_nhwc_winograd_with(&geometry, d.x, packed, &epilogue, nil, py.baseAddress, isa, threads)
                        } else {
                            var workspace = [Float](repeating: .nan, count: ck_conv_nhwc_winograd_workspace(&geometry))
                            workspace.withUnsafeMutableBufferPointer { pw in
                                ck_conv2d_nhwc_winograd_with(&geometry, d.x, packed, &epilogue, pw.baseAddress, py.baseAddress, isa, threads)
                            }
                        }
                    }
                }
            }
        }
        return y
    }

    /// Runs a convolution on both paths and 1 and 2 threads, expecting each within 2e-5·(1 + Σ|terms|) of the
    /// reference (float rounding of the sum, times at most 1.5 for the steepest activation, hard swish), the gap
    /// between pixels untouched, and the thread counts bit-identical. Winograd is held to the same bound: F(2×2, 3×3)'s
    /// transforms only add, subtract and halve.
    /// The depthwise kernel's paths, AVX-512 named explicitly (CK_ISA_AUTO is the active level, which ONNXC_ISA can
    /// lower).
    static let depthwisePaths: [ck_isa] = [CK_ISA_SCALAR, CK_ISA_AVX2_FMA, CK_ISA_AVX512]

    static func checkConv(_ s: Conv, _ d: ConvData, _ act: Activation, kernel: ConvKernel = .direct,
                          sourceLocation: SourceLocation = #_sourceLocation) {
        let (expected, scale) = reference(s, d, act)
        let packed = kernel == .depthwise ? packDepthwise(s, d.w) : packConv(s, d.w)
        for isa in kernel == .depthwise ? depthwisePaths : paths {
            var one: [Float] = [], two: [Float] = []
            InstructionSetLock.exclusively {  // CK_ISA_AUTO must mean one level for both runs
                one = runConv(s, d, packed: packed, act, isa: isa, threads: 1, kernel: kernel)
                two = runConv(s, d, packed: packed, act, isa: isa, threads: 2, kernel: kernel)
            }
            #expect(one == two, "\(s) \(act) isa \(isa.rawValue): 1 and 2 threads differ", sourceLocation: sourceLocation)
            var failures = 0
            for p in 0..<s.outPixels {
                for o in 0..<s.yStride {
                    let value = one[p * s.yStride + o]
                    if o >= s.outChannels {
                        if value != sentinel { failures += 1 }
                        continue
                    }
                    let e = expected[p * s.outChannels + o]
                    if !(abs(Double(value) - e) <= 2e-5 * scale[p * s.outChannels + o]) {
                        failures += 1
                        if failures <= 3 {
                            Issue.record("\(s) \(act) isa \(isa.rawValue): pixel \(p) channel \(o) is \(value), expected \(e)",
                                         sourceLocation: sourceLocation)
                        }
                    }
                }
            }
            #expect(failures == 0, "\(s) \(act) isa \(isa.rawValue): \(failures) wrong outputs", sourceLocation: sourceLocation)
        }
    }

    // MARK: - Convolution

    /// Output channels per group that fill 16-wide panels or not (1, 3, 8, 16, 17, 40: one panel, a half panel,
    /// several with a ragged last), input channels per group 1 … 33, 1×1/3×3/5×5/7×7 and non-square kernels,
    /// strides 1–3, asymmetric and larger-than-kernel padding (outputs whose window is all padding), dilation,
    /// 1 … 400 pixels per image (full and partial 6-, 7- and 12-row tiles), batches, groups, strided pixels, and
    /// channel runs past 512.
    static let convolutions: [Conv] = [
        Conv(inH: 1, inW: 1, groupIn: 1, groupOut: 1, kh: 1, kw: 1),
        Conv(inH: 4, inW: 5, groupIn: 3, groupOut: 3, kh: 1, kw: 1),
        Conv(inH: 6, inW: 6, groupIn: 8, groupOut: 8, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 7, inW: 7, groupIn: 16, groupOut: 16, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(batch: 2, inH: 5, inW: 7, groupIn: 17, groupOut: 17, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 9, inW: 11, groupIn: 5, groupOut: 40, kh: 3, kw: 3, sh: 2, sw: 2, top: 1, left: 0, bottom: 0, right: 1),
        Conv(inH: 8, inW: 8, groupIn: 2, groupOut: 3, kh: 5, kw: 5, top: 2, left: 2, bottom: 2, right: 2),
        Conv(inH: 16, inW: 16, groupIn: 3, groupOut: 8, kh: 7, kw: 7, sh: 2, sw: 2, top: 3, left: 3, bottom: 3, right: 3),
        Conv(inH: 13, inW: 10, groupIn: 4, groupOut: 17, kh: 5, kw: 5, sh: 3, sw: 3, top: 0, left: 2, bottom: 1, right: 0),
        Conv(inH: 9, inW: 9, groupIn: 6, groupOut: 16, kh: 3, kw: 3, top: 2, left: 2, bottom: 2, right: 2, dh: 2, dw: 2),
        Conv(inH: 8, inW: 10, groupIn: 3, groupOut: 5, kh: 3, kw: 3, sh: 1, sw: 2, top: 1, left: 3, bottom: 2, right: 0, dh: 2, dw: 3),
        Conv(inH: 2, inW: 3, groupIn: 2, groupOut: 3, kh: 3, kw: 3, top: 4, left: 4, bottom: 4, right: 4),
        Conv(inH: 3, inW: 3, groupIn: 3, groupOut: 4, kh: 1, kw: 1, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 4, inW: 9, groupIn: 16, groupOut: 16, kh: 1, kw: 7, left: 3, right: 3),
        Conv(inH: 9, inW: 4, groupIn: 7, groupOut: 1, kh: 7, kw: 1, top: 3, bottom: 3),
        Conv(batch: 3, inH: 5, inW: 5, groupIn: 7, groupOut: 16, kh: 1, kw: 1, sh: 2, sw: 2),
        Conv(batch: 2, inH: 6, inW: 7, groups: 2, groupIn: 3, groupOut: 5, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 7, inW: 7, groups: 3, groupIn: 16, groupOut: 17, kh: 3, kw: 3, sh: 2, sw: 2, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 5, inW: 5, groups: 4, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 5, inW: 6, groups: 8, groupIn: 1, groupOut: 2, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 5, inW: 5, groups: 2, groupIn: 4, groupOut: 17, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1, xExtra: 3, yExtra: 5),
        // Large enough (> 2^20 multiply-adds) for the second thread to take part.
        Conv(batch: 2, inH: 16, inW: 16, groupIn: 33, groupOut: 40, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        // Maps that are multiples of 7 with long channel runs (the 7-row AVX-512 tile, where the 6 × 16 one ran
        // before): resnet50's layer 4 and layer 3 in miniature, with a ragged last panel.
        Conv(inH: 7, inW: 7, groupIn: 520, groupOut: 40, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(batch: 2, inH: 14, inW: 14, groupIn: 600, groupOut: 24, kh: 1, kw: 1),
    ]

    @Test(arguments: 0..<convolutions.count) func convolutionMatchesReference(_ i: Int) {
        let s = Self.convolutions[i]
        Self.checkConv(s, ConvData(s, bias: true, residual: false), Self.activations[0])
    }

    /// Every activation after bias and residual (and with each of them alone), on panels of 8 and 17 columns so
    /// both the full and the masked tail of the AVX2 epilogue run, plus a ×40 weight scale so sums reach the tens
    /// where sigmoid and silu saturate.
    @Test(arguments: 0..<activations.count) func convolutionEpilogue(_ a: Int) {
        let act = Self.activations[a]
        let shapes = [
            Conv(batch: 2, inH: 5, inW: 5, groupIn: 4, groupOut: 17, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
            Conv(inH: 4, inW: 7, groups: 2, groupIn: 3, groupOut: 8, kh: 3, kw: 3, sh: 2, sw: 1, top: 1, left: 1, bottom: 1, right: 1, yExtra: 2),
        ]
        for s in shapes {
            for (bias, residual) in [(true, true), (true, false), (false, true), (false, false)] {
                Self.checkConv(s, ConvData(s, bias: bias, residual: residual), act)
            }
            Self.checkConv(s, ConvData(s, bias: true, residual: true, weightScale: 40), act)
        }
    }

    /// More input channels per group than the kernel's static zero row (4096 floats): padding taps then read a
    /// heap buffer of zeros.
    @Test func convolutionWithVeryWideGroups() {
        let s = Conv(inH: 1, inW: 2, groupIn: 4100, groupOut: 2, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1)
        Self.checkConv(s, ConvData(s, bias: true, residual: true), Self.activations[1])
    }

    /// Empty batches and empty outputs write nothing; a group with no input channels is bias and activation only.
    @Test func convolutionDegenerateSizes() {
        var s = Conv(batch: 1, inH: 2, inW: 2, groupIn: 2, groupOut: 3, kh: 1, kw: 1)
        var geometry = s.geometry
        geometry.batch = 0
        let d = ConvData(s, bias: true, residual: false)
        let packed = Self.packConv(s, d.w)
        var y = [Float](repeating: Self.sentinel, count: 12)
        y.withUnsafeMutableBufferPointer { py in ck_conv2d_nhwc(&geometry, d.x, packed, nil, py.baseAddress) }
        #expect(y.allSatisfy { $0 == Self.sentinel })
        geometry = s.geometry
        geometry.out_w = 0
        y.withUnsafeMutableBufferPointer { py in ck_conv2d_nhwc(&geometry, d.x, packed, nil, py.baseAddress) }
        #expect(y.allSatisfy { $0 == Self.sentinel })

        s.groupIn = 0
        let empty = ConvData(s, bias: true, residual: false)
        Self.checkConv(s, empty, Self.activations[1])
    }

    /// `ck_conv_nhwc_pack` writes exactly the documented layout (a format: the compiler stores it), zeros past the
    /// last output channel of each group, and `ck_conv_nhwc_packed_size` is its size.
    @Test func convolutionPackingLayout() {
        let (groups, groupOut, groupIn, kh, kw) = (2, 17, 3, 2, 3)
        let s = Conv(inH: 1, inW: 1, groups: groups, groupIn: groupIn, groupOut: groupOut, kh: kh, kw: kw)
        let w = Pseudorandom.floats(groups * groupOut * groupIn * kh * kw, seed: 9)
        let packed = Self.packConv(s, w)
        let panels = 2, taps = kh * kw, nr = Int(CK_NR)
        #expect(packed.count == groups * panels * nr * groupIn * taps)
        var mismatches = 0
        for g in 0..<groups {
            for j in 0..<panels {
                for t in 0..<taps {
                    for c in 0..<groupIn {
                        for col in 0..<nr {
                            let o = j * nr + col
                            let want: Float = o < groupOut ? w[(((g * groupOut + o) * groupIn + c) * kh + t / kw) * kw + t % kw] : 0
                            if packed[(((g * panels + j) * taps * groupIn) + t * groupIn + c) * nr + col] != want { mismatches += 1 }
                        }
                    }
                }
            }
        }
        #expect(mismatches == 0)
    }

    // MARK: - Winograd

    /// 3×3 stride-1 single-group convolutions: odd and even output sizes (partial 2×2 tiles on the last row and
    /// column), 1×1 and one-row images, no, asymmetric and larger-than-kernel padding, input channels 1 … 70 (the
    /// AVX2 input transform's 8-wide steps and its tail), output channels around the 16-wide panels and the
    /// 4-panel task blocks (1, 8, 17, 40, 70), batches, strided pixels, and sizes that take two threads and more
    /// than one row of 12 tiles.
    static let winogradConvolutions: [Conv] = [
        Conv(inH: 1, inW: 1, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 4, inW: 4, groupIn: 3, groupOut: 8, kh: 3, kw: 3),
        Conv(inH: 5, inW: 7, groupIn: 8, groupOut: 17, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 1, inW: 9, groupIn: 9, groupOut: 16, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 6, inW: 5, groupIn: 16, groupOut: 40, kh: 3, kw: 3, top: 0, left: 2, bottom: 1, right: 0),
        Conv(inH: 3, inW: 3, groupIn: 5, groupOut: 3, kh: 3, kw: 3, top: 3, left: 3, bottom: 3, right: 3),
        Conv(batch: 3, inH: 7, inW: 6, groupIn: 17, groupOut: 70, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(batch: 2, inH: 9, inW: 9, groupIn: 7, groupOut: 20, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1, xExtra: 3, yExtra: 5),
        Conv(batch: 2, inH: 20, inW: 18, groupIn: 70, groupOut: 33, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 28, inW: 28, groupIn: 32, groupOut: 64, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
    ]

    @Test(arguments: 0..<winogradConvolutions.count) func winogradMatchesReference(_ i: Int) {
        let s = Self.winogradConvolutions[i]
        var geometry = s.geometry
        #expect(ck_conv_nhwc_winograd_applies(&geometry) != 0)
        Self.checkConv(s, ConvData(s, bias: true, residual: false), Self.activations[0], kernel: .winograd)
    }

    /// Every activation after bias and residual, on 17 output channels (a full and a masked panel).
    @Test(arguments: 0..<activations.count) func winogradEpilogue(_ a: Int) {
        let s = Conv(batch: 2, inH: 5, inW: 6, groupIn: 4, groupOut: 17, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1, yExtra: 2)
        for (bias, residual) in [(true, true), (false, true), (false, false)] {
            Self.checkConv(s, ConvData(s, bias: bias, residual: residual), Self.activations[a], kernel: .winograd)
        }
        Self.checkConv(s, ConvData(s, bias: true, residual: true, weightScale: 40), Self.activations[a], kernel: .winograd)
    }

    /// Only 3×3, stride 1, dilation 1, one group and channels-last input qualify.
    @Test func winogradAppliesOnlyToItsGeometry() {
        let base = Conv(inH: 8, inW: 8, groupIn: 4, groupOut: 4, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1)
        var variants = [base]
        variants[0].kh = 5
        variants.append(base); variants[1].sh = 2
        variants.append(base); variants[2].dw = 2
        variants.append(base); variants[3].groups = 2
        variants.append(base); variants[4].groupIn = 0
        for v in variants {
            var geometry = v.geometry
            #expect(ck_conv_nhwc_winograd_applies(&geometry) == 0, "\(v)")
        }
        var channelsFirst = base.geometry
        channelsFirst.x_channel_stride = 64
        #expect(ck_conv_nhwc_winograd_applies(&channelsFirst) == 0)
        var geometry = base.geometry
        #expect(ck_conv_nhwc_winograd_applies(&geometry) != 0)
    }

    // MARK: - Depthwise

    /// Channel counts around the 16-wide block (1, 3, 8, 16, 17, 40), kernels 1×1 … 7×7, strides 1–3, asymmetric
    /// and all-padding windows, dilation, batches, strided pixels, and a size that takes two threads.
    static let depthwise: [Conv] = [
        Conv(inH: 1, inW: 1, groups: 1, groupIn: 1, groupOut: 1, kh: 1, kw: 1),
        Conv(inH: 5, inW: 5, groups: 3, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(batch: 2, inH: 6, inW: 7, groups: 8, groupIn: 1, groupOut: 1, kh: 3, kw: 3, sh: 2, sw: 2, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 7, inW: 7, groups: 16, groupIn: 1, groupOut: 1, kh: 5, kw: 5, top: 2, left: 2, bottom: 2, right: 2),
        Conv(inH: 9, inW: 8, groups: 17, groupIn: 1, groupOut: 1, kh: 7, kw: 7, sh: 3, sw: 2, top: 3, left: 1, bottom: 2, right: 3),
        Conv(inH: 8, inW: 8, groups: 40, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 2, left: 2, bottom: 2, right: 2, dh: 2, dw: 2),
        Conv(inH: 2, inW: 2, groups: 17, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 3, left: 3, bottom: 3, right: 3),
        Conv(inH: 4, inW: 5, groups: 19, groupIn: 1, groupOut: 1, kh: 3, kw: 1, top: 1, bottom: 1, xExtra: 3, yExtra: 2),
        Conv(batch: 2, inH: 40, inW: 40, groups: 32, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
    ]

    @Test(arguments: 0..<depthwise.count) func depthwiseMatchesReference(_ i: Int) {
        let s = Self.depthwise[i]
        Self.checkConv(s, ConvData(s, bias: true, residual: false), Self.activations[0], kernel: .depthwise)
    }

    /// Every activation after bias and residual, on 17 channels (a full block and a masked one).
    @Test(arguments: 0..<activations.count) func depthwiseEpilogue(_ a: Int) {
        let s = Conv(batch: 2, inH: 5, inW: 6, groups: 17, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1)
        for (bias, residual) in [(true, true), (false, true), (true, false)] {
            Self.checkConv(s, ConvData(s, bias: bias, residual: residual), Self.activations[a], kernel: .depthwise)
        }
        Self.checkConv(s, ConvData(s, bias: true, residual: true, weightScale: 40), Self.activations[a], kernel: .depthwise)
    }

    /// The vector paths' blocks — 8 pixels × 1 vector, 4 × 2, 2 × 4 (AVX2: 2 × 2) and 1 × 8, then groups of 4, 2 and
    /// 1 vectors and a masked one; clipped where a tap leaves the row — in their sliding forms (kernel width 3 or 5,
    /// stride 1 or 2) and the direct one (dilation, width 7): channels 1 … 200 (not multiples of 8 or 16), widths
    /// 1–3 where no pixel is inside, all-padding and asymmetric windows, strided pixels.
    static let depthwiseBlocks: [Conv] = [
        Conv(inH: 6, inW: 21, groups: 1, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 7, inW: 20, groups: 5, groupIn: 1, groupOut: 1, kh: 3, kw: 3, sh: 2, sw: 2, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 5, inW: 19, groups: 17, groupIn: 1, groupOut: 1, kh: 5, kw: 5, top: 2, left: 2, bottom: 2, right: 2),
        Conv(inH: 9, inW: 23, groups: 33, groupIn: 1, groupOut: 1, kh: 5, kw: 5, sh: 2, sw: 2, top: 2, left: 2, bottom: 2, right: 2),
        Conv(inH: 3, inW: 11, groups: 130, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 4, inW: 7, groups: 200, groupIn: 1, groupOut: 1, kh: 5, kw: 5, top: 2, left: 2, bottom: 2, right: 2),
        Conv(inH: 4, inW: 1, groups: 17, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 3, inW: 2, groups: 33, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Conv(inH: 3, inW: 3, groups: 40, groupIn: 1, groupOut: 1, kh: 5, kw: 5, sh: 2, sw: 2, top: 2, left: 2, bottom: 2, right: 2),
        Conv(inH: 6, inW: 13, groups: 19, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 2, left: 2, bottom: 2, right: 2, dh: 2, dw: 2),
        Conv(inH: 5, inW: 12, groups: 24, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 1, left: 2, bottom: 1, right: 0),
        Conv(inH: 8, inW: 16, groups: 144, groupIn: 1, groupOut: 1, kh: 3, kw: 3, sh: 2, sw: 2, top: 0, left: 0, bottom: 1, right: 1),
        Conv(inH: 4, inW: 12, groups: 20, groupIn: 1, groupOut: 1, kh: 7, kw: 7, top: 3, left: 3, bottom: 3, right: 3),
        Conv(inH: 6, inW: 17, groups: 16, groupIn: 1, groupOut: 1, kh: 5, kw: 5, sh: 2, sw: 2, top: 2, left: 2, bottom: 2, right: 2,
             xExtra: 3, yExtra: 5),
        Conv(inH: 2, inW: 18, groups: 33, groupIn: 1, groupOut: 1, kh: 1, kw: 3, left: 1, right: 1),
        Conv(inH: 5, inW: 14, groups: 9, groupIn: 1, groupOut: 1, kh: 3, kw: 5, top: 1, left: 2, bottom: 1, right: 2),
        Conv(inH: 2, inW: 4, groups: 50, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 4, left: 5, bottom: 4, right: 5),
        Conv(batch: 2, inH: 9, inW: 30, groups: 48, groupIn: 1, groupOut: 1, kh: 3, kw: 3, sh: 1, sw: 2, top: 1, left: 1, bottom: 1, right: 1),
    ]

    @Test(arguments: 0..<depthwiseBlocks.count) func depthwiseBlocksMatchReference(_ i: Int) {
        let s = Self.depthwiseBlocks[i]
        Self.checkConv(s, ConvData(s, bias: true, residual: i % 3 == 0, seed: i + 5), Self.activations[i % 2], kernel: .depthwise)
    }

    /// Every activation after bias and residual on a row with every block size and vector group (130 channels).
    @Test(arguments: 0..<activations.count) func depthwiseBlockEpilogue(_ a: Int) {
        let s = Conv(inH: 3, inW: 17, groups: 130, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1)
        Self.checkConv(s, ConvData(s, bias: true, residual: true, weightScale: 4), Self.activations[a], kernel: .depthwise)
    }

    /// The AVX2 and AVX-512 paths sum each output's taps in the same order into one FMA chain, so with the cheap
    /// activations (the vector Sigmoid and Silu differ by level, as the standalone ones do) they give the same bits.
    @Test func depthwiseVectorPathsAgree() {
        let cases = Self.depthwise + Self.depthwiseBlocks
        for (i, s) in cases.enumerated() {
            let d = ConvData(s, bias: true, residual: i % 2 == 0, seed: i + 9)
            let packed = Self.packDepthwise(s, d.w)
            for act in Self.activations where act.kind != CK_ACT_SIGMOID && act.kind != CK_ACT_SILU {
                let avx2 = Self.runConv(s, d, packed: packed, act, isa: CK_ISA_AVX2_FMA, threads: 1, kernel: .depthwise)
                let avx512 = Self.runConv(s, d, packed: packed, act, isa: CK_ISA_AVX512, threads: 2, kernel: .depthwise)
                let differing = zip(avx2, avx512).filter { $0.bitPattern != $1.bitPattern }.count
                #expect(differing == 0, "\(s) \(act): AVX2 and AVX-512 differ in \(differing) outputs")
            }
        }
    }

    /// More channels than the static zero row: padding taps read a heap buffer.
    @Test func depthwiseWithManyChannels() {
        let s = Conv(inH: 1, inW: 2, groups: 4100, groupIn: 1, groupOut: 1, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1)
        Self.checkConv(s, ConvData(s, bias: true, residual: true), Self.activations[2], kernel: .depthwise)
    }

    /// `ck_depthwise_nhwc_pack` writes the documented layout, zeros past the last channel.
    @Test func depthwisePackingLayout() {
        let (channels, kh, kw) = (17, 3, 2)
        let s = Conv(inH: 1, inW: 1, groups: channels, groupIn: 1, groupOut: 1, kh: kh, kw: kw)
        let w = Pseudorandom.floats(channels * kh * kw, seed: 4)
        let packed = Self.packDepthwise(s, w)
        let nr = Int(CK_NR), taps = kh * kw
        #expect(packed.count == 2 * nr * taps)
        var mismatches = 0
        for cb in 0..<2 {
            for t in 0..<taps {
                for col in 0..<nr {
                    let c = cb * nr + col
                    if packed[(cb * taps + t) * nr + col] != (c < channels ? w[c * taps + t] : 0) { mismatches += 1 }
                }
            }
        }
        #expect(mismatches == 0)
    }

    // MARK: - Pools

    /// A channels-last pool; the output size is the caller's (so ceil-mode geometry, whose last window runs past
    /// the end padding, is just a larger outH/outW).
    struct Pool: CustomStringConvertible, Sendable {
        var batch = 1, inH: Int, inW: Int, channels: Int
        var kh: Int, kw: Int, sh = 1, sw = 1, top = 0, left = 0, bottom = 0, right = 0, dh = 1, dw = 1
        var ceil = false
        var xExtra = 0, yExtra = 0

        private func size(_ input: Int, _ pads: Int, _ kernel: Int, _ dilation: Int, _ stride: Int) -> Int {
            let span = input + pads - dilation * (kernel - 1) - 1
            return (ceil ? span + stride - 1 : span) / stride + 1
        }
        var outH: Int { size(inH, top + bottom, kh, dh, sh) }
        var outW: Int { size(inW, left + right, kw, dw, sw) }
        var xStride: Int { channels + xExtra }
        var yStride: Int { channels + yExtra }
        var outPixels: Int { batch * outH * outW }
        var description: String {
            "N\(batch) \(inH)×\(inW)×\(channels) k\(kh)×\(kw) s\(sh),\(sw) pads \(top),\(left),\(bottom),\(right) d\(dh),\(dw)\(ceil ? " ceil" : "") +\(xExtra)/+\(yExtra)"
        }

        var geometry: ck_pool_nhwc {
            var g = ck_pool_nhwc()
            g.batch = Int32(batch); g.in_h = Int32(inH); g.in_w = Int32(inW); g.out_h = Int32(outH); g.out_w = Int32(outW)
            g.channels = Int32(channels); g.kernel_h = Int32(kh); g.kernel_w = Int32(kw); g.stride_h = Int32(sh); g.stride_w = Int32(sw)
            g.pad_top = Int32(top); g.pad_left = Int32(left); g.dilation_h = Int32(dh); g.dilation_w = Int32(dw)
            g.x_stride = xStride; g.y_stride = yStride
            return g
        }
    }

    enum PoolKind: CustomStringConvertible, CaseIterable, Sendable {
        case max, average, averageIncludingPad
        var description: String { self == .max ? "max" : self == .average ? "average" : "average incl. pad" }
    }

    /// Max (`x > m ? x : m` from −∞, in Float, so exact) or the mean in Double of each window's taps inside the
    /// image; 0 for a window with none.
    static func reference(_ p: Pool, _ x: [Float], _ kind: PoolKind) -> [Double] {
        var out = [Double](repeating: 0, count: p.outPixels * p.channels)
        for n in 0..<p.batch {
            for oh in 0..<p.outH {
                for ow in 0..<p.outW {
                    let pixel = (n * p.outH + oh) * p.outW + ow
                    for c in 0..<p.channels {
                        var m = -Float.infinity, sum = 0.0, count = 0
                        for i in 0..<p.kh {
                            let ih = oh * p.sh - p.top + i * p.dh
                            guard ih >= 0, ih < p.inH else { continue }
                            for j in 0..<p.kw {
                                let iw = ow * p.sw - p.left + j * p.dw
                                guard iw >= 0, iw < p.inW else { continue }
                                let v = x[((n * p.inH + ih) * p.inW + iw) * p.xStride + c]
                                m = v > m ? v : m
                                sum += Double(v)
                                count += 1
                            }
                        }
                        let result: Double
                        switch kind {
                        case _ where count == 0: result = 0
                        case .max: result = Double(m)
                        case .average: result = sum / Double(count)
                        case .averageIncludingPad: result = sum / Double(p.kh * p.kw)
                        }
                        out[pixel * p.channels + c] = result
                    }
                }
            }
        }
        return out
    }

    static func runPool(_ p: Pool, _ x: [Float], _ kind: PoolKind, isa: ck_isa, threads: Int32) -> [Float] {
        var y = [Float](repeating: sentinel, count: p.outPixels * p.yStride)
        var geometry = p.geometry
        y.withUnsafeMutableBufferPointer { py in
            switch kind {
            case .max: ck_maxpool2d_nhwc_with(&geometry, x, py.baseAddress, isa, threads)
            case .average: ck_avgpool2d_nhwc_with(&geometry, x, py.baseAddress, 0, isa, threads)
            case .averageIncludingPad: ck_avgpool2d_nhwc_with(&geometry, x, py.baseAddress, 1, isa, threads)
            }
        }
        return y
    }

    /// Both paths and thread counts against the reference: max exactly (NaN-aware), averages within 1e-6·(1 + |y|)
    /// (taps are at most 1 in magnitude), the gaps between pixels untouched.
    static func checkPool(_ p: Pool, _ x: [Float], _ kind: PoolKind, sourceLocation: SourceLocation = #_sourceLocation) {
        let expected = reference(p, x, kind)
        for isa in paths {
            var one: [Float] = [], two: [Float] = []
            InstructionSetLock.exclusively {
                one = runPool(p, x, kind, isa: isa, threads: 1)
                two = runPool(p, x, kind, isa: isa, threads: 2)
            }
            #expect(one.map(\.bitPattern) == two.map(\.bitPattern), "\(p) \(kind) isa \(isa.rawValue): 1 and 2 threads differ",
                    sourceLocation: sourceLocation)
            var failures = 0
            for pixel in 0..<p.outPixels {
                for c in 0..<p.yStride {
                    let value = one[pixel * p.yStride + c]
                    if c >= p.channels {
                        if value != sentinel { failures += 1 }
                        continue
                    }
                    let e = expected[pixel * p.channels + c]
                    let ok = kind == .max ? Double(value) == e : abs(Double(value) - e) <= 1e-6 * (1 + abs(e))
                    if !ok {
                        failures += 1
                        if failures <= 3 {
                            Issue.record("\(p) \(kind) isa \(isa.rawValue): pixel \(pixel) channel \(c) is \(value), expected \(e)",
                                         sourceLocation: sourceLocation)
                        }
                    }
                }
            }
            #expect(failures == 0, "\(p) \(kind) isa \(isa.rawValue): \(failures) wrong outputs", sourceLocation: sourceLocation)
        }
    }

    /// Channel counts around the AVX2 path's 32- and 8-wide blocks (1, 3, 8, 31, 32, 33, 40, 70), kernels 1×1 …
    /// 9×9 (81 taps: more than the AVX2 path's 64-tap list, so it falls back to the scalar loop), strides, asymmetric
    /// pads, pads that leave windows entirely in the padding, dilation, ceil-mode output sizes, strided pixels,
    /// batches, and a size that takes two threads.
    static let pools: [Pool] = [
        Pool(inH: 1, inW: 1, channels: 1, kh: 1, kw: 1),
        Pool(inH: 4, inW: 4, channels: 3, kh: 2, kw: 2, sh: 2, sw: 2),
        Pool(batch: 2, inH: 5, inW: 6, channels: 8, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
        Pool(inH: 7, inW: 7, channels: 31, kh: 3, kw: 3, sh: 2, sw: 2, top: 1, left: 1, bottom: 1, right: 1, ceil: true),
        Pool(inH: 6, inW: 5, channels: 32, kh: 3, kw: 2, sh: 2, sw: 1, top: 0, left: 1, bottom: 2, right: 0),
        Pool(inH: 8, inW: 8, channels: 33, kh: 2, kw: 2, sh: 3, sw: 3, ceil: true),
        Pool(inH: 9, inW: 9, channels: 40, kh: 3, kw: 3, top: 2, left: 2, bottom: 2, right: 2, dh: 2, dw: 2),
        Pool(inH: 3, inW: 3, channels: 70, kh: 2, kw: 2, top: 3, left: 3, bottom: 3, right: 3),
        Pool(inH: 10, inW: 11, channels: 9, kh: 9, kw: 9, top: 4, left: 4, bottom: 4, right: 4),
        Pool(batch: 3, inH: 5, inW: 5, channels: 17, kh: 3, kw: 3, sh: 2, sw: 2, top: 1, left: 1, bottom: 1, right: 1, xExtra: 3, yExtra: 4),
        Pool(batch: 2, inH: 40, inW: 40, channels: 32, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1),
    ]

    @Test(arguments: 0..<pools.count, PoolKind.allCases) func poolMatchesReference(_ i: Int, _ kind: PoolKind) {
        let p = Self.pools[i]
        Self.checkPool(p, Pseudorandom.floats(p.batch * p.inH * p.inW * p.xStride, seed: i), kind)
    }

    /// Max pooling skips NaN taps (`x > m ? x : m`) on both paths, and a window of NaNs only keeps the −∞ start;
    /// an average propagates NaN.
    @Test func maxPoolSkipsNaN() {
        let p = Pool(inH: 4, inW: 4, channels: 19, kh: 2, kw: 2, sh: 2, sw: 2)
        var x = Pseudorandom.floats(p.inH * p.inW * p.channels, seed: 5)
        for i in stride(from: 0, to: x.count, by: 3) { x[i] = .nan }
        // Channel 18 of the first window: all four taps NaN.
        for (ih, iw) in [(0, 0), (0, 1), (1, 0), (1, 1)] { x[(ih * p.inW + iw) * p.channels + 18] = .nan }
        Self.checkPool(p, x, .max)
        for isa in Self.paths {
            let y = Self.runPool(p, x, .max, isa: isa, threads: 1)
            #expect(y[18] == -.infinity, "isa \(isa.rawValue)")
            #expect(!y.contains { $0.isNaN }, "isa \(isa.rawValue)")
            let mean = Self.runPool(p, x, .average, isa: isa, threads: 1)
            #expect(mean[18].isNaN && mean[0].isNaN, "isa \(isa.rawValue)")
        }
    }

    /// Windows that lie entirely in the padding give 0 for max and both averages (pads 3 around a 2-tap window).
    @Test func windowsInPaddingGiveZero() {
        let p = Pool(inH: 2, inW: 2, channels: 10, kh: 2, kw: 2, top: 3, left: 3, bottom: 3, right: 3)
        let x = Pseudorandom.floats(p.inH * p.inW * p.channels, seed: 6).map { $0 - 2 }  // all negative: a max of 0 is not a tap
        for kind in PoolKind.allCases {
            for isa in Self.paths {
                let y = Self.runPool(p, x, kind, isa: isa, threads: 1)
                #expect(y.prefix(p.channels).allSatisfy { $0 == 0 }, "\(kind) isa \(isa.rawValue)")
                #expect(y.contains { $0 != 0 }, "\(kind) isa \(isa.rawValue): some windows do reach the image")
            }
        }
    }

    /// count_include_pad divides by the whole kernel, padding and the ceil-mode overhang included; without it, by the
    /// taps inside the image. On a constant image the two differ exactly at the borders.
    @Test func averageCountIncludePad() {
        let p = Pool(inH: 5, inW: 5, channels: 9, kh: 3, kw: 3, sh: 2, sw: 2, top: 1, left: 1, bottom: 1, right: 1, ceil: true)
        let x = [Float](repeating: 0.5, count: p.inH * p.inW * p.channels)
        for isa in Self.paths {
            let valid = Self.runPool(p, x, .average, isa: isa, threads: 1)
            let padded = Self.runPool(p, x, .averageIncludingPad, isa: isa, threads: 1)
            #expect(valid.allSatisfy { $0 == 0.5 }, "isa \(isa.rawValue)")
            // Output (0, 0) covers rows/columns -1…1: 4 of 9 taps inside; the centre (1, 1) all 9.
            #expect(padded[0] == 0.5 * 4 / 9, "isa \(isa.rawValue)")
            #expect(padded[(1 * p.outW + 1) * p.channels] == 0.5, "isa \(isa.rawValue)")
        }
    }

    // MARK: - Global pools

    static func globalReference(batch: Int, pixels: Int, channels: Int, _ x: [Float], max: Bool) -> [Double] {
        var out = [Double](repeating: 0, count: batch * channels)
        for n in 0..<batch {
            for c in 0..<channels {
                var m = -Float.infinity, sum = 0.0
                for p in 0..<pixels {
                    let v = x[(n * pixels + p) * channels + c]
                    m = v > m ? v : m
                    sum += Double(v)
                }
                out[n * channels + c] = max ? Double(m) : sum / Double(pixels)
            }
        }
        return out
    }

    static func runGlobal(batch: Int, pixels: Int, channels: Int, _ x: [Float], max: Bool, isa: ck_isa) -> [Float] {
        var y = [Float](repeating: sentinel, count: batch * channels)
        y.withUnsafeMutableBufferPointer { py in
            ck_global_pool_nhwc_with(Int32(batch), Int32(pixels), Int32(channels), x, py.baseAddress, max ? 1 : 0, isa)
        }
        return y
    }

    /// Mean and max over the pixels of each image and channel: channels around the 8-wide AVX2 block (1, 7, 8, 9,
    /// 33, 64), 1 … 100 pixels, batches; max exact, mean within 1e-6.
    @Test(arguments: [(1, 1, 1), (2, 7, 7), (1, 49, 8), (3, 10, 9), (2, 100, 33), (1, 5, 64)])
    func globalPoolMatchesReference(_ batch: Int, _ pixels: Int, _ channels: Int) {
        let x = Pseudorandom.floats(batch * pixels * channels, seed: pixels)
        for max in [false, true] {
            let expected = Self.globalReference(batch: batch, pixels: pixels, channels: channels, x, max: max)
            for isa in Self.paths {
                let y = Self.runGlobal(batch: batch, pixels: pixels, channels: channels, x, max: max, isa: isa)
                let worst = zip(y, expected).map { abs(Double($0) - $1) }.max() ?? 0
                #expect(max ? worst == 0 : worst <= 1e-6, "max \(max) isa \(isa.rawValue): worst error \(worst)")
            }
        }
    }

    /// Global max skips NaN on both paths; a channel of NaNs only is −∞.
    @Test func globalMaxSkipsNaN() {
        let (pixels, channels) = (6, 11)
        var x = Pseudorandom.floats(pixels * channels, seed: 8)
        for i in stride(from: 1, to: x.count, by: 4) { x[i] = .nan }
        for p in 0..<pixels { x[p * channels + 10] = .nan }
        let expected = Self.globalReference(batch: 1, pixels: pixels, channels: channels, x, max: true)
        for isa in Self.paths {
            let y = Self.runGlobal(batch: 1, pixels: pixels, channels: channels, x, max: true, isa: isa)
            #expect(zip(y, expected).allSatisfy { Double($0) == $1 }, "isa \(isa.rawValue): \(y) vs \(expected)")
            #expect(y[10] == -.infinity)
        }
    }

    // MARK: - Transpose

    /// y[n] = x[n]ᵀ exactly for sizes that do and do not fill the 32 × 32 tiles, vectors, batches, and one large
    /// enough to run on the pool (1 and 2 threads).
    @Test(arguments: [(1, 1, 1), (1, 1, 7), (1, 9, 1), (2, 31, 33), (1, 32, 32), (3, 33, 65), (2, 100, 3), (1, 3, 100),
                      (2, 300, 257)])
    func transposeBatched(_ batch: Int, _ rows: Int, _ cols: Int) {
        let x = Pseudorandom.floats(batch * rows * cols, seed: rows * 31 + cols)
        var expected = [Float](repeating: 0, count: x.count)
        for n in 0..<batch {
            for r in 0..<rows {
                for c in 0..<cols { expected[(n * cols + c) * rows + r] = x[(n * rows + r) * cols + c] }
            }
        }
        for threads: Int32 in [1, 2] {
            var y = [Float](repeating: .nan, count: x.count)
            y.withUnsafeMutableBufferPointer { py in
                ck_transpose_batched_with(Int32(batch), Int32(rows), Int32(cols), x, py.baseAddress, threads)
            }
            #expect(y == expected, "\(batch)×\(rows)×\(cols) on \(threads) threads")
        }
    }

    // MARK: - Entry points

    /// The plain entry points (global instruction set and thread count) compute what `*_with(CK_ISA_AUTO, 0)` does.
    @Test func plainEntryPointsEqualExplicitOnes() {
        InstructionSetLock.exclusively { Self.plainAndExplicit() }
    }

    private static func plainAndExplicit() {
        let s = Conv(batch: 2, inH: 5, inW: 6, groups: 2, groupIn: 3, groupOut: 17, kh: 3, kw: 3, top: 1, left: 1, bottom: 1, right: 1)
        let d = ConvData(s, bias: true, residual: true)
        let packed = Self.packConv(s, d.w)
        let explicit = Self.runConv(s, d, packed: packed, Self.activations[7], isa: CK_ISA_AUTO, threads: 0)
        var plain = [Float](repeating: 0, count: explicit.count)
        var geometry = s.geometry
        Self.withOptional(d.bias) { bias in
            Self.withOptional(d.residual) { residual in
                var epilogue = ck_conv_epilogue(bias: bias, residual: residual, residual_stride: s.yStride, activation: CK_ACT_SILU,
                                                param0: 0, param1: 0)
                plain.withUnsafeMutableBufferPointer { py in ck_conv2d_nhwc(&geometry, d.x, packed, &epilogue, py.baseAddress) }
            }
        }
        #expect(plain == explicit)

        let p = Self.pools[3]
        let x = Pseudorandom.floats(p.batch * p.inH * p.inW * p.xStride, seed: 2)
        var pooled = [Float](repeating: 0, count: p.outPixels * p.yStride)
        var pool = p.geometry
        pooled.withUnsafeMutableBufferPointer { py in ck_maxpool2d_nhwc(&pool, x, py.baseAddress) }
        #expect(pooled == Self.runPool(p, x, .max, isa: CK_ISA_AUTO, threads: 0))
        pooled.withUnsafeMutableBufferPointer { py in ck_avgpool2d_nhwc(&pool, x, py.baseAddress, 1) }
        #expect(pooled == Self.runPool(p, x, .averageIncludingPad, isa: CK_ISA_AUTO, threads: 0))
    }
}
