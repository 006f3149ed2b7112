import OnnxcCore

/// onnxc's channels-last (NHWC) operators, domain `ai.onnxc`, created by the layout passes (`convert-to-nhwc`)
/// for the runtime target: the float32 2-D convolution and pools of a CNN run with the pixel's channels contiguous,
/// so the convolution is an indirect GEMM over the input in place (`ck_conv2d_nhwc`) and pools vectorize across
/// channels. Each takes the standard op's attributes; tensors are [N, H, W, C] instead of [N, C, H, W].
///
/// - NhwcConv(X, W, B?, Z?) — FusedConv's inputs and attributes (W stays ONNX's [M, C/group, kh, kw], or the
///   compiler's packing of it; Z is a residual of the output's shape added before the activation).
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
        guard w.dtype == .float, b?.dtype ?? .float == .float, z?.dtype ?? .float == .float else {
            throw .invalidArgument("\(op) inputs must all be float32, got \(w.dtype.onnxName) weights")
        }
        guard w.rank == 4 else { throw .invalidShape("\(op) needs 4-D weights [M, C/group, kh, kw], got \(w.shape)") }
        let g = try ConvolutionKernels.Geometry(x: channelsFirst(x.shape), w: w.shape, attributes: context.attributes, transposed: false)
        guard ChannelsLast.fits(g) else { throw .invalidShape("\(op): sizes \(x.shape) and \(w.shape) exceed the kernel's 32-bit limits") }
        let outShape = [g.batch, g.outSpatial[0], g.outSpatial[1], g.outChannels]
        if let b, b.count != g.outChannels { throw .invalidShape("\(op) bias has \(b.count) elements for \(g.outChannels) output channels") }
        if let z, z.shape != outShape { throw .invalidShape("\(op): the residual input \(z.shape) does not match the output \(outShape)") }
        let activation = try FusedActivation(context)
        let fused = ChannelsLast.fuses(activation)
        let depthwise = g.groups > 1 && g.inChannels == g.groups && g.outChannels == g.groups
        let y = try Tensor(uninitialized: .float, shape: outShape)
        guard y.count > 0 else { return y }
        let weights = try packedWeights(w, g, depthwise: depthwise, op: op)
        x.withValues(Float.self) { xb in
            weights.withValues(Float.self) { wb in
                y.withMutableValues(Float.self) { yb in
                    guard let yBase = yb.baseAddress, let wBase = wb.baseAddress else { return }
                    // An input with no elements (zero channels) still has an output: bias and activation.
                    let xBase = xb.baseAddress ?? UnsafePointer(yBase)
                    withPointer(b) { bias in
                        withPointer(z) { residual in
                            ChannelsLast.convolution(g, x: xBase, packedWeights: wBase, depthwise: depthwise, bias: bias,
                                                     residual: residual, y: yBase, activation: activation)
                        }
                    }
                }
            }
        }
        return fused ? y : try FusedKernels.epilogue(y, bias: nil, activation, op: op)
    }

    /// The weights in the kernel's layout: the compiler's packing as is (checked against the geometry), or packed
    /// here for weights that arrive plain (the interpreter's path, or weights computed at run time).
    private static func packedWeights(_ w: Tensor, _ g: ConvolutionKernels.Geometry, depthwise: Bool, op: String) throws(RuntimeError) -> Tensor {
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
        let x = try input(inputs, context)
        let g = try PoolingKernels.geometry(channelsFirst(x.shape), context.attributes)
        guard g.kernel.count == 2, ChannelsLast.fits(g) else {
            throw .invalidShape("\(context.node.opType): sizes \(x.shape) exceed the kernel's 32-bit limits")
        }
        let y = try Tensor(uninitialized: .float, shape: [g.batch, g.outSpatial[0], g.outSpatial[1], g.inChannels])
        guard y.count > 0 else { return y }
        x.withValues(Float.self) { xb in
            y.withMutableValues(Float.self) { yb in
                guard let xBase = xb.baseAddress, let yBase = yb.baseAddress else { return }
                ChannelsLast.pool(g, kind, x: xBase, y: yBase)
            }
        }
        return y
    }

    static func globalPool(_ inputs: [Value?], _ context: KernelContext, max: Bool) throws(RuntimeError) -> Tensor {
        let x = try input(inputs, context)
        let pixels = x.shape[1] * x.shape[2]
        guard [x.shape[0], pixels, x.shape[3]].allSatisfy({ $0 <= Int(Int32.max) }) else {
            throw .invalidShape("\(context.node.opType): sizes \(x.shape) exceed the kernel's 32-bit limits")
        }
        let y = try Tensor(uninitialized: .float, shape: [x.shape[0], 1, 1, x.shape[3]])
        guard y.count > 0 else { return y }
        // A mean over no pixels is 0/0, as the NCHW kernel gives; a max over none is −∞.
        x.withValues(Float.self) { xb in
            y.withMutableValues(Float.self) { yb in
                guard let yBase = yb.baseAddress else { return }
                ChannelsLast.globalPool(batch: x.shape[0], pixels: pixels, channels: x.shape[3], max: max,
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
