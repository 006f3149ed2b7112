internal import CKernels

/// CKernels' channels-last (NHWC) convolution, depthwise convolution, pools and layout transposes, for the
/// `ai.onnxc::Nhwc*` kernels and the Transpose fast path. ConvolutionKernels.Geometry arrives as the runtime's `ConvolutionKernels.Geometry` (computed
/// on the NCHW view of the shapes) and is checked to fit the C API's 32-bit sizes by the caller (`fits`).
enum ChannelsLast {
    /// CKernels' output-channel panel width (NR) and channel block of the depthwise layout.
    static var panelWidth: Int { Int(CK_NR) }

    /// Whether every size of a geometry fits the C API's `int` arguments.
    static func fits(_ g: ConvolutionKernels.Geometry, extra: [Int] = []) -> Bool {
        var all: [Int] = [g.batch, g.inChannels, g.outChannels, g.groups]
        for list in [g.inSpatial, g.outSpatial, g.kernel, g.strides, g.dilations, g.padsBegin, extra] { all += list }
        return all.allSatisfy { $0 >= 0 && $0 <= Int(Int32.max) }
    }

    /// Whether CKernels' epilogue applies this activation.
    static func fuses(_ activation: FusedActivation?) -> Bool { epilogueActivation(activation) != nil }

    /// The C activation for a fused epilogue, or nil when CKernels' epilogue lacks it.
    private static func epilogueActivation(_ activation: FusedActivation?) -> (kind: ck_activation, p0: Float, p1: Float)? {
        PackedGemm.kernelActivation(activation)
    }

    static func packedConvolutionFloats(groups: Int, groupOut: Int, groupIn: Int, kernelH: Int, kernelW: Int) -> Int {
        Int(ck_conv_nhwc_packed_size(Int32(groups), Int32(groupOut), Int32(groupIn), Int32(kernelH), Int32(kernelW)))
    }

    static func packedDepthwiseFloats(channels: Int, kernelH: Int, kernelW: Int) -> Int {
        Int(ck_depthwise_nhwc_packed_size(Int32(channels), Int32(kernelH), Int32(kernelW)))
    }

    /// Packs ONNX weights [M, C/groups, kh, kw] for `convolution` (`depthwise`: for `depthwise`, one channel per group).
    static func pack(weights: UnsafePointer<Float>, outChannels: Int, groupIn: Int, kernelH: Int, kernelW: Int, groups: Int,
                     depthwise: Bool, into packed: UnsafeMutablePointer<Float>) {
        if depthwise {
            ck_depthwise_nhwc_pack(Int32(outChannels), Int32(kernelH), Int32(kernelW), weights, packed)
        } else {
            ck_conv_nhwc_pack(Int32(groups), Int32(outChannels / groups), Int32(groupIn), Int32(kernelH), Int32(kernelW), weights, packed)
        }
    }

    /// How a convolution is computed: the compiler's choice, in NhwcConv's `algorithm` attribute.
    enum Algorithm: Sendable, Equatable {
        case direct
        /// F(2×2, 3×3) Winograd (`ck_conv2d_nhwc_winograd`): 2.25× fewer multiply-adds, for 3×3 stride-1 layers with
        /// many pixels and few channels, where the compiler measured it faster.
        case winograd

        init(attributes: Attributes) { self = attributes.string("algorithm", "direct") == "winograd" ? .winograd : .direct }
    }

    static func kernelGeometry(_ g: ConvolutionKernels.Geometry) -> ck_conv_nhwc {
        var geometry = ck_conv_nhwc()
        geometry.batch = Int32(g.batch)
        geometry.in_h = Int32(g.inSpatial[0])
        geometry.in_w = Int32(g.inSpatial[1])
        geometry.out_h = Int32(g.outSpatial[0])
        geometry.out_w = Int32(g.outSpatial[1])
        geometry.kernel_h = Int32(g.kernel[0])
        geometry.kernel_w = Int32(g.kernel[1])
        geometry.stride_h = Int32(g.strides[0])
        geometry.stride_w = Int32(g.strides[1])
        geometry.pad_top = Int32(g.padsBegin[0])
        geometry.pad_left = Int32(g.padsBegin[1])
        geometry.dilation_h = Int32(g.dilations[0])
        geometry.dilation_w = Int32(g.dilations[1])
        geometry.groups = Int32(g.groups)
        geometry.group_in = Int32(g.inChannels / g.groups)
        geometry.group_out = Int32(g.outChannels / g.groups)
        geometry.x_stride = g.inChannels
        geometry.y_stride = g.outChannels
        return geometry
    }

    /// Bytes of workspace the Winograd form needs for g, or nil where it does not apply.
    static func winogradWorkspaceBytes(_ g: ConvolutionKernels.Geometry) -> Int? {
        var geometry = kernelGeometry(g)
        guard ck_conv_nhwc_winograd_applies(&geometry) != 0 else { return nil }
        return Int(ck_conv_nhwc_winograd_workspace(&geometry)).multipliedReportingOverflow(by: MemoryLayout<Float>.size).partialValue
    }

    /// Y (channels last) = activation(conv(X, packed W) + bias + residual) for a 2-D geometry; an activation the
    /// epilogue lacks (see `fuses`) is left for the caller. `.winograd` where it does not apply computes directly;
    /// `workspace` (64-byte aligned, `winogradWorkspaceBytes`) may be nil: the kernel then allocates its own.
    /// Pixel strides (floats from one pixel's channels to the next's) default to dense tensors; wider ones read and
    /// write channel windows (`TensorWindow`).
    static func convolution(_ g: ConvolutionKernels.Geometry, x: UnsafePointer<Float>, packedWeights: UnsafePointer<Float>, depthwise: Bool,
                            bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>,
                            activation: FusedActivation?, algorithm: Algorithm = .direct, workspace: UnsafeMutableRawPointer? = nil,
                            strides: (x: Int, y: Int, residual: Int)? = nil) {
        let activation = epilogueActivation(activation) ?? (CK_ACT_NONE, 0, 0)
        var geometry = kernelGeometry(g)
        if let strides {
            geometry.x_stride = strides.x
            geometry.y_stride = strides.y
        }
        var epilogue = ck_conv_epilogue(bias: bias, residual: residual, residual_stride: strides?.residual ?? g.outChannels,
                                        activation: activation.kind, param0: activation.p0, param1: activation.p1)
        if depthwise {
            ck_depthwise2d_nhwc(&geometry, x, packedWeights, &epilogue, y)
        } else if algorithm == .winograd, ck_conv_nhwc_winograd_applies(&geometry) != 0 {
            ck_conv2d_nhwc_winograd(&geometry, x, packedWeights, &epilogue, workspace?.assumingMemoryBound(to: Float.self), y)
        } else {
            ck_conv2d_nhwc(&geometry, x, packedWeights, &epilogue, y)
        }
    }

    enum PoolKind: Equatable { case max, average(countIncludePad: Bool) }

    static func pool(_ g: ConvolutionKernels.Geometry, _ kind: PoolKind, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                     strides: (x: Int, y: Int)? = nil) {
        var geometry = poolGeometry(g)
        if let strides {
            geometry.x_stride = strides.x
            geometry.y_stride = strides.y
        }
        switch kind {
        case .max: ck_maxpool2d_nhwc(&geometry, x, y)
        case .average(let includePad): ck_avgpool2d_nhwc(&geometry, x, y, includePad ? 1 : 0)
        }
    }

    /// MaxPool of a uint8 (quantized) tensor.
    static func maxPool(_ g: ConvolutionKernels.Geometry, x: UnsafePointer<UInt8>, y: UnsafeMutablePointer<UInt8>) {
        var geometry = poolGeometry(g)
        ck_maxpool2d_nhwc_u8(&geometry, x, y)
    }

    /// AveragePool of a uint8 x between the grids (ck_qavgpool2d_nhwc_u8).
    static func quantizedAveragePool(_ g: ConvolutionKernels.Geometry, x: UnsafePointer<UInt8>, xScale: Float, xZeroPoint: Int32, yScale: Float,
                                     yZeroPoint: Int32, countIncludePad: Bool, y: UnsafeMutablePointer<UInt8>) {
        var geometry = poolGeometry(g)
        ck_qavgpool2d_nhwc_u8(&geometry, x, xScale, xZeroPoint, yScale, yZeroPoint, countIncludePad ? 1 : 0, y)
    }

    private static func poolGeometry(_ g: ConvolutionKernels.Geometry) -> ck_pool_nhwc {
        var geometry = ck_pool_nhwc()
        geometry.batch = Int32(g.batch)
        geometry.in_h = Int32(g.inSpatial[0])
        geometry.in_w = Int32(g.inSpatial[1])
        geometry.out_h = Int32(g.outSpatial[0])
        geometry.out_w = Int32(g.outSpatial[1])
        geometry.channels = Int32(g.inChannels)
        geometry.kernel_h = Int32(g.kernel[0])
        geometry.kernel_w = Int32(g.kernel[1])
        geometry.stride_h = Int32(g.strides[0])
        geometry.stride_w = Int32(g.strides[1])
        geometry.pad_top = Int32(g.padsBegin[0])
        geometry.pad_left = Int32(g.padsBegin[1])
        geometry.dilation_h = Int32(g.dilations[0])
        geometry.dilation_w = Int32(g.dilations[1])
        geometry.x_stride = g.inChannels
        geometry.y_stride = g.inChannels
        return geometry
    }

    static func globalPool(batch: Int, pixels: Int, channels: Int, max: Bool, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        ck_global_pool_nhwc(Int32(batch), Int32(pixels), Int32(channels), x, y, max ? 1 : 0)
    }

    /// y[n] = x[n]ᵀ for `batch` row-major rows × columns matrices of 4-byte elements (bit patterns are copied).
    static func transpose(batch: Int, rows: Int, columns: Int, x: UnsafeRawPointer, y: UnsafeMutableRawPointer) {
        ck_transpose_batched(Int32(batch), Int32(rows), Int32(columns), x.assumingMemoryBound(to: Float.self),
                             y.assumingMemoryBound(to: Float.self))
    }
}
