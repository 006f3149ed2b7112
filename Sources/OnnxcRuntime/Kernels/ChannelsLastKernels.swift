import OnnxcCore

/// onnxc's channels-last (NHWC) operators, domain `ai.onnxc`, created by the layout passes (`convert-to-nhwc`)
/// for the runtime target: the float32 2-D convolution and pools of a CNN run with the pixel's channels contiguous,
/// so the convolution is an indirect GEMM over the input in place (`ck_conv2d_nhwc`) and pools vectorize across
/// channels. Each takes the standard op's attributes; tensors are [N, H, W, C] instead of [N, C, H, W].
///
/// - NhwcConv(X, W, B?, Z?) — FusedConv's inputs and attributes (W stays ONNX's [M, C/group, kh, kw], or the
///   compiler's packing of it; Z is a residual of the output's shape added before the activation). Attribute
///   `algorithm` ("direct" by default, or "winograd") is the compiler's choice of kernel; either gives the
///   convolution's result.
/// - NhwcMaxPool (one output: no Indices), NhwcAveragePool, NhwcGlobalAveragePool, NhwcGlobalMaxPool.
enum ChannelsLastKernels {
    static let table: [String: Kernel] = [
        KernelRegistry.key(RuntimeOps.domain, "NhwcConv"): { inputs, context throws(RuntimeError) in outputs(try conv(inputs, context)) },
        KernelRegistry.key(RuntimeOps.domain, "NhwcMaxPool"): { inputs, context throws(RuntimeError) in
            outputs(try pool(inputs, context, .max))
        },
        KernelRegistry.key(RuntimeOps.domain, "NhwcAveragePool"): { inputs, context throws(RuntimeError) in
            outputs(try pool(inputs, context, .average(countIncludePad: context.attributes.int("count_include_pad", 0) != 0)))
        },
        KernelRegistry.key(RuntimeOps.domain, "NhwcGlobalAveragePool"): { inputs, context throws(RuntimeError) in
            outputs(try globalPool(inputs, context, max: false))
        },
        KernelRegistry.key(RuntimeOps.domain, "NhwcGlobalMaxPool"): { inputs, context throws(RuntimeError) in
            outputs(try globalPool(inputs, context, max: true))
        },
    ]

    /// A float32 [N, H, W, C] input, or an error naming the op.
    private static func input(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> Tensor {
        let x = try context.tensor(inputs, 0)
        guard x.dtype == .float else { throw .unsupportedType(op: context.node.opType, dtype: x.dtype.onnxName) }
        guard x.rank == 4 else { throw .invalidShape("\(context.node.opType) needs an [N, H, W, C] input, got shape \(x.shape)") }
        return x
    }

    /// [N, H, W, C] seen as [N, C, H, W], for the shared geometry code.
    private static func channelsFirst(_ shape: [Int]) -> [Int] { [shape[0], shape[3], shape[1], shape[2]] }

    static func conv(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> Tensor {
        let op = context.node.opType
        let x = try input(inputs, context)
        let w = try context.tensor(inputs, 1)
        let b = try context.optionalTensor(inputs, 2)
        let z = try context.optionalTensor(inputs, 3)
        let g = try convGeometry(x: x.shape, w: w, bias: b, attributes: context.attributes, op: op)
        let depthwise = isDepthwise(g)
        let weights = try packedWeights(w, g, depthwise: depthwise, op: op)
        let y = try Tensor(uninitialized: .float, shape: outputShape(g))
        return try convolve(g, x: x, weights: weights, depthwise: depthwise, bias: b, residual: z,
                            activation: try FusedActivation(context), into: y, op: op,
                            algorithm: ChannelsLast.Algorithm(attributes: context.attributes))
    }

    /// The geometry of NhwcConv on an [N, H, W, C] input, with the weights, bias and sizes checked.
    static func convGeometry(x: [Int], w: Tensor, bias: Tensor?, attributes: Attributes, op: String) throws(RuntimeError) -> ConvolutionKernels.Geometry {
        guard w.dtype == .float, bias?.dtype ?? .float == .float else {
            throw .invalidArgument("\(op) inputs must all be float32, got \(w.dtype.onnxName) weights")
        }
        guard x.count == 4, w.rank == 4 else { throw .invalidShape("\(op) needs an [N, H, W, C] input and 4-D weights, got \(x) and \(w.shape)") }
        let g = try ConvolutionKernels.Geometry(x: channelsFirst(x), w: w.shape, attributes: attributes, transposed: false)
        guard ChannelsLast.fits(g) else { throw .invalidShape("\(op): sizes \(x) and \(w.shape) exceed the kernel's 32-bit limits") }
        if let bias, bias.count != g.outChannels { throw .invalidShape("\(op) bias has \(bias.count) elements for \(g.outChannels) output channels") }
        return g
    }

    static func outputShape(_ g: ConvolutionKernels.Geometry) -> [Int] { [g.batch, g.outSpatial[0], g.outSpatial[1], g.outChannels] }

    /// Every group has one input and one output channel: the depthwise kernel's case.
    static func isDepthwise(_ g: ConvolutionKernels.Geometry) -> Bool {
        g.groups > 1 && g.inChannels == g.groups && g.outChannels == g.groups
    }

    /// y = activation(conv(x, weights) + bias + residual), with weights in the kernel's layout (`packedWeights`) and
    /// y a fresh tensor of `outputShape(g)`, written completely. Returns y.
    static func convolve(_ g: ConvolutionKernels.Geometry, x: Tensor, weights: Tensor, depthwise: Bool, bias: Tensor?, residual: Tensor?,
                         activation: FusedActivation?, into y: Tensor, op: String, algorithm: ChannelsLast.Algorithm = .direct,
                         workspace: UnsafeMutableRawPointer? = nil) throws(RuntimeError) -> Tensor {
        guard x.dtype == .float else { throw .unsupportedType(op: op, dtype: x.dtype.onnxName) }
        if let residual {
            guard residual.dtype == .float, residual.shape == y.shape else {
                throw .invalidShape("\(op): the residual input \(residual.dtype.onnxName)\(residual.shape) does not match the output float\(y.shape)")
            }
        }
        guard y.count > 0, let yWindow = TensorWindow(y) else { return y }
        // An input with no elements (zero channels) still has an output: bias and activation.
        let xWindow = TensorWindow(x) ?? yWindow
        try convolve(g, x: xWindow, weights: weights, depthwise: depthwise, bias: bias, residual: residual.flatMap(TensorWindow.init),
                     activation: activation, into: yWindow, op: op, algorithm: algorithm, workspace: workspace)
        return ChannelsLast.fuses(activation) ? y : try FusedKernels.epilogue(y, bias: nil, activation, op: op)
    }

    /// The convolution above on windows (`TensorWindow`: rows — pixels — any stride apart): a channel range of a wider
    /// tensor in, or out. An activation the epilogue lacks is left for the caller (`ChannelsLast.fuses`).
    static func convolve(_ g: ConvolutionKernels.Geometry, x: TensorWindow, weights: Tensor, depthwise: Bool, bias: Tensor?,
                         residual: TensorWindow?, activation: FusedActivation?, into y: TensorWindow, op: String,
                         algorithm: ChannelsLast.Algorithm = .direct, workspace: UnsafeMutableRawPointer? = nil) throws(RuntimeError) {
        if let residual, residual.dtype != .float || residual.shape != y.shape {
            throw .invalidShape("\(op): the residual input \(residual.dtype.onnxName)\(residual.shape) does not match the output float\(y.shape)")
        }
        guard y.count > 0 else { return }
        weights.withValues(Float.self) { wb in
            guard let wBase = wb.baseAddress else { return }
            withPointer(bias) { b in
                ChannelsLast.convolution(g, x: UnsafePointer(x.floats), packedWeights: wBase, depthwise: depthwise, bias: b,
                                         residual: residual.map { UnsafePointer($0.floats) }, y: y.floats, activation: activation,
                                         algorithm: algorithm, workspace: workspace,
                                         strides: (x.rowStride, y.rowStride, residual?.rowStride ?? y.rowStride))
            }
        }
    }

    /// The weights in the kernel's layout: the compiler's packing as is (checked against the geometry), or packed
    /// here for weights that arrive plain (the interpreter's path, or weights computed at run time).
    static func packedWeights(_ w: Tensor, _ g: ConvolutionKernels.Geometry, depthwise: Bool, op: String) throws(RuntimeError) -> Tensor {
        switch w.packing {
        case .nhwcDepthwise? where depthwise: return w
        case .nhwcConvolution(let groups)? where !depthwise && groups == g.groups: return w
        case nil: break
        case let packing?:
            throw .invalidArgument("\(op): weights were packed for another convolution (\(packing)); recompile the model")
        }
        let groupIn = g.inChannels / g.groups
        let floats = depthwise
            ? ChannelsLast.packedDepthwiseFloats(channels: g.outChannels, kernelH: g.kernel[0], kernelW: g.kernel[1])
            : ChannelsLast.packedConvolutionFloats(groups: g.groups, groupOut: g.outChannels / g.groups, groupIn: groupIn,
                                                   kernelH: g.kernel[0], kernelW: g.kernel[1])
        let packed = try Tensor(uninitialized: .float, shape: [floats])
        w.withValues(Float.self) { wb in
            packed.withMutableValues(Float.self) { pb in
                guard let source = wb.baseAddress, let target = pb.baseAddress else { return }
                ChannelsLast.pack(weights: source, outChannels: g.outChannels, groupIn: groupIn, kernelH: g.kernel[0],
                                  kernelW: g.kernel[1], groups: g.groups, depthwise: depthwise, into: target)
            }
        }
        return packed
    }

    static func pool(_ inputs: [Value?], _ context: KernelContext, _ kind: ChannelsLast.PoolKind) throws(RuntimeError) -> Tensor {
        let raw = try context.tensor(inputs, 0)
        // A quantized tensor's MaxPool runs on its uint8 values (max commutes with the grid).
        let x = kind == .max && raw.dtype == .uint8 && raw.rank == 4 ? raw : try input(inputs, context)
        let g = try poolGeometry(x.shape, context.attributes, op: context.node.opType)
        return pool(g, kind, x: x, into: try Tensor(uninitialized: x.dtype, shape: poolShape(g)))
    }

    static func poolGeometry(_ x: [Int], _ attributes: Attributes, op: String) throws(RuntimeError) -> ConvolutionKernels.Geometry {
        guard x.count == 4 else { throw .invalidShape("\(op) needs an [N, H, W, C] input, got shape \(x)") }
        let g = try PoolingKernels.geometry(channelsFirst(x), attributes)
        guard g.kernel.count == 2, ChannelsLast.fits(g) else { throw .invalidShape("\(op): sizes \(x) exceed the kernel's 32-bit limits") }
        return g
    }

    static func poolShape(_ g: ConvolutionKernels.Geometry) -> [Int] { [g.batch, g.outSpatial[0], g.outSpatial[1], g.inChannels] }

    /// The pool of a float32 x into y (a fresh tensor of `poolShape(g)`); returns y.
    static func pool(_ g: ConvolutionKernels.Geometry, _ kind: ChannelsLast.PoolKind, x: Tensor, into y: Tensor) -> Tensor {
        guard y.count > 0, let xWindow = TensorWindow(x), let yWindow = TensorWindow(y) else { return y }
        pool(g, kind, x: xWindow, into: yWindow)
        return y
    }

    /// The pool on windows (float32, or uint8 for max): rows — pixels — any stride apart.
    static func pool(_ g: ConvolutionKernels.Geometry, _ kind: ChannelsLast.PoolKind, x: TensorWindow, into y: TensorWindow) {
        guard y.count > 0 else { return }
        if x.dtype == .uint8 {
            // The uint8 kernel's strides are the geometry's (dense): windows are float32 only.
            ChannelsLast.maxPool(g, x: UnsafePointer(x.base.assumingMemoryBound(to: UInt8.self)), y: y.base.assumingMemoryBound(to: UInt8.self))
            return
        }
        ChannelsLast.pool(g, kind, x: UnsafePointer(x.floats), y: y.floats, strides: (x.rowStride, y.rowStride))
    }

    static func globalPool(_ inputs: [Value?], _ context: KernelContext, max: Bool) throws(RuntimeError) -> Tensor {
        let x = try input(inputs, context)
        try checkGlobalPool(x.shape, op: context.node.opType)
        return globalPool(x, max: max, into: try Tensor(uninitialized: .float, shape: globalPoolShape(x.shape)))
    }

    static func checkGlobalPool(_ x: [Int], op: String) throws(RuntimeError) {
        guard x.count == 4 else { throw .invalidShape("\(op) needs an [N, H, W, C] input, got shape \(x)") }
        guard [x[0], x[1] * x[2], x[3]].allSatisfy({ $0 <= Int(Int32.max) }) else {
            throw .invalidShape("\(op): sizes \(x) exceed the kernel's 32-bit limits")
        }
    }

    static func globalPoolShape(_ x: [Int]) -> [Int] { [x[0], 1, 1, x[3]] }

    /// The global pool of a float32 [N, H, W, C] x into y (a fresh [N, 1, 1, C] tensor); returns y. A mean over no
    /// pixels is 0/0, as the NCHW kernel gives; a max over none is −∞.
    static func globalPool(_ x: Tensor, max: Bool, into y: Tensor) -> Tensor {
        guard y.count > 0 else { return y }
        x.withValues(Float.self) { xb in
            y.withMutableValues(Float.self) { yb in
                guard let yBase = yb.baseAddress else { return }
                ChannelsLast.globalPool(batch: x.shape[0], pixels: x.shape[1] * x.shape[2], channels: x.shape[3], max: max,
                                        x: xb.baseAddress ?? UnsafePointer(yBase), y: yBase)
            }
        }
        return y
    }

    private static func withPointer<R>(_ tensor: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let tensor else { return body(nil) }
        return tensor.withValues(Float.self) { body($0.baseAddress) }
    }
}
