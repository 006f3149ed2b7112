import OnnxcCore

/// Conv, ConvTranspose, the pools (pads, strides, dilations, auto_pad, ceil_mode, output_padding,
/// output_shape) and the global pools. Spatial sizes are computed as dim expressions, so a symbolic `h`
/// through a stride-2 3×3 conv with padding 1 gives `(h+1)/2`.
enum ConvolutionRules {
    static let table: [String: InferenceRule] = [
        "Conv": conv,
        "ConvInteger": { ctx in [InferenceSupport.tensor(.int32, try convShape(ctx, x: 0, w: 1))] },
        "ConvTranspose": convTranspose,
        "MaxPool": { ctx in
            let shape = try poolShape(ctx)
            return [InferenceSupport.tensor(ctx.dtype(0), shape), InferenceSupport.tensor(.int64, shape)]
        },
        "AveragePool": { ctx in [InferenceSupport.tensor(ctx.dtype(0), try poolShape(ctx))] },
        "LpPool": { ctx in [InferenceSupport.tensor(ctx.dtype(0), try poolShape(ctx))] },
        "GlobalAveragePool": globalPool,
        "GlobalMaxPool": globalPool,
        "GlobalLpPool": globalPool,
    ]

    /// Conv, and ai.onnxc::FusedConv (Conv's inputs and attributes plus an activation).
    static let conv: InferenceRule = { ctx in [InferenceSupport.tensor(ctx.dtype(0), try convShape(ctx, x: 0, w: 1))] }

    static let globalPool: InferenceRule = { ctx in
        let shape = try ctx.requireRank(0, atLeast: 2).map { Shape(Array($0.dims.prefix(2)) + [Dim](repeating: .fixed(1), count: $0.rank - 2)) }
        return [InferenceSupport.tensor(ctx.dtype(0), shape)]
    }

    // The channels-last forms (ai.onnxc::Nhwc*, see ChannelsLastKernels): the same rules on [N, spatial…, C],
    // computed on the channels-first view and permuted back.
    static let nhwcConv: InferenceRule = { ctx in [InferenceSupport.tensor(ctx.dtype(0), try convShape(ctx, x: 0, w: 1, channelsLast: true))] }
    static let nhwcPool: InferenceRule = { ctx in [InferenceSupport.tensor(ctx.dtype(0), try poolShape(ctx, channelsLast: true))] }
    static let nhwcGlobalPool: InferenceRule = { ctx in
        let shape = try ctx.requireRank(0, atLeast: 3).map { s in
            Shape([s.dims[0]] + [Dim](repeating: .fixed(1), count: s.rank - 2) + [s.dims[s.rank - 1]])
        }
        return [InferenceSupport.tensor(ctx.dtype(0), shape)]
    }

    /// [N, C, spatial…] ↔ [N, spatial…, C].
    static func toChannelsFirst(_ s: Shape) -> Shape { Shape([s.dims[0], s.dims[s.rank - 1]] + Array(s.dims[1..<(s.rank - 1)])) }
    static func toChannelsLast(_ s: Shape) -> Shape { Shape([s.dims[0]] + Array(s.dims[2...]) + [s.dims[1]]) }

    /// One spatial output size of a sliding window. `kernel` is the effective kernel `(k-1)·dilation + 1`.
    static func slidingOutput(_ input: Dim, kernel: Int64, stride: Int64, padBegin: Int64, padEnd: Int64,
                              autoPad: String, ceilMode: Bool) throws -> Dim {
        guard stride > 0 else { throw InferenceError("strides must be positive, got \(stride)") }
        switch autoPad {
        case "SAME_UPPER", "SAME_LOWER":
            return DimMath.ceilDiv(input, stride)
        case "VALID":
            let span = DimMath.add(input, -kernel)
            if let v = span.fixedValue, v < 0 { throw InferenceError("kernel \(kernel) is larger than the input \(input)") }
            return ceilMode ? DimMath.ceilDiv(DimMath.add(span, 1), stride) : DimMath.add(DimMath.floorDiv(span, stride), 1)
        default:
            let padded = DimMath.add(DimMath.add(input, padBegin), padEnd)
            let span = DimMath.add(padded, -kernel)
            if let v = span.fixedValue, v < 0 {
                throw InferenceError("kernel \(kernel) is larger than the padded input \(padded)")
            }
            var out = DimMath.add(ceilMode ? DimMath.ceilDiv(span, stride) : DimMath.floorDiv(span, stride), 1)
            // PyTorch's rule, which onnx follows: a last window starting inside the end padding is dropped.
            // The last window starts before (o-1)·s < in + padBegin + padEnd - kernel + stride, so it can only
            // start in the padding when padEnd + stride > kernel; for a symbolic input that case is unknown
            // rather than possibly off by one.
            if ceilMode, input.fixedValue == nil, padEnd > kernel - stride { return .unknown }
            if ceilMode, let o = out.fixedValue, let start = DimMath.mul(.fixed(o - 1), stride).fixedValue,
               let limit = DimMath.add(input, padBegin).fixedValue, start >= limit { out = .fixed(o - 1) }
            return out
        }
    }

    struct Window {
        var kernel: [Int64]
        var strides: [Int64]
        var dilations: [Int64]
        var pads: [Int64]
        var autoPad: String
    }

    static func window(_ ctx: InferenceContext, spatial n: Int, kernel: [Int64]) throws -> Window {
        let strides = ctx.ints("strides") ?? [Int64](repeating: 1, count: n)
        let dilations = ctx.ints("dilations") ?? [Int64](repeating: 1, count: n)
        let pads = ctx.ints("pads") ?? [Int64](repeating: 0, count: 2 * n)
        guard kernel.count == n, strides.count == n, dilations.count == n, pads.count == 2 * n else {
            throw InferenceError("kernel_shape/strides/dilations/pads do not match \(n) spatial dims")
        }
        if kernel.contains(where: { $0 <= 0 }) || dilations.contains(where: { $0 <= 0 }) {
            throw InferenceError("kernel sizes and dilations must be positive")
        }
        return Window(kernel: kernel, strides: strides, dilations: dilations, pads: pads, autoPad: ctx.string("auto_pad") ?? "NOTSET")
    }

    static func effectiveKernel(_ w: Window, _ i: Int) -> Int64 {
        let (p, o1) = (w.kernel[i] - 1).multipliedReportingOverflow(by: w.dilations[i])
        return o1 ? Int64.max / 2 : p + 1
    }

    static func convShape(_ ctx: InferenceContext, x: Int, w: Int, channelsLast: Bool = false) throws -> Shape? {
        guard let given = try ctx.requireRank(x, atLeast: 3) else { return nil }
        let xs = channelsLast ? toChannelsFirst(given) : given
        return try convShape(ctx, xs: xs, w: w).map { channelsLast ? toChannelsLast($0) : $0 }
    }

    private static func convShape(_ ctx: InferenceContext, xs: Shape, w: Int) throws -> Shape? {
        let n = xs.rank - 2
        let group = ctx.int("group", default: 1)
        guard group >= 1 else { throw InferenceError("group must be positive") }
        var outChannels: Dim = .unknown
        var kernel = ctx.ints("kernel_shape")
        if let ws = ctx.shape(w) {
            guard ws.rank == xs.rank else { throw InferenceError("weight \(ws) and input \(xs) have different ranks") }
            outChannels = ws.dims[0]
            _ = try InferenceSupport.unify(xs.dims[1], DimMath.mul(ws.dims[1], group),
                                           "input channels of \(xs) do not match weight \(ws) with group \(group)")
            if kernel == nil { kernel = Shape(Array(ws.dims.dropFirst(2))).fixedDims }
        }
        guard let kernel else { return Shape([xs.dims[0], outChannels] + [Dim](repeating: .unknown, count: n)) }
        let win = try window(ctx, spatial: n, kernel: kernel)
        var dims = [xs.dims[0], outChannels]
        for i in 0..<n {
            dims.append(try slidingOutput(xs.dims[2 + i], kernel: effectiveKernel(win, i), stride: win.strides[i],
                                          padBegin: win.pads[i], padEnd: win.pads[n + i], autoPad: win.autoPad, ceilMode: false))
        }
        return Shape(dims)
    }

    static func poolShape(_ ctx: InferenceContext, channelsLast: Bool = false) throws -> Shape? {
        guard let given = try ctx.requireRank(0, atLeast: 3) else { return nil }
        let xs = channelsLast ? toChannelsFirst(given) : given
        return try poolShape(ctx, xs: xs).map { channelsLast ? toChannelsLast($0) : $0 }
    }

    private static func poolShape(_ ctx: InferenceContext, xs: Shape) throws -> Shape? {
        let n = xs.rank - 2
        guard let kernel = ctx.ints("kernel_shape") else { throw InferenceError("\(ctx.node.opType) needs kernel_shape") }
        let win = try window(ctx, spatial: n, kernel: kernel)
        let ceilMode = ctx.int("ceil_mode", default: 0) != 0
        var dims = Array(xs.dims.prefix(2))
        for i in 0..<n {
            dims.append(try slidingOutput(xs.dims[2 + i], kernel: effectiveKernel(win, i), stride: win.strides[i],
                                          padBegin: win.pads[i], padEnd: win.pads[n + i], autoPad: win.autoPad, ceilMode: ceilMode))
        }
        return Shape(dims)
    }

    static let convTranspose: InferenceRule = { ctx in
        let dtype = ctx.dtype(0)
        guard let xs = try ctx.requireRank(0, atLeast: 3) else { return [InferenceSupport.tensor(dtype, nil)] }
        let n = xs.rank - 2
        let group = ctx.int("group", default: 1)
        var outChannels: Dim = .unknown
        var kernel = ctx.ints("kernel_shape")
        if let ws = ctx.shape(1) {
            guard ws.rank == xs.rank else { throw InferenceError("weight \(ws) and input \(xs) have different ranks") }
            _ = try InferenceSupport.unify(xs.dims[1], ws.dims[0], "input channels of \(xs) do not match weight \(ws)")
            outChannels = DimMath.mul(ws.dims[1], group)
            if kernel == nil { kernel = Shape(Array(ws.dims.dropFirst(2))).fixedDims }
        }
        var dims = [xs.dims[0], outChannels]
        if let outputShape = ctx.ints("output_shape") {
            guard outputShape.count >= n else { throw InferenceError("output_shape has fewer than \(n) entries") }
            dims += outputShape.suffix(n).map(Dim.fixed)
            return [InferenceSupport.tensor(dtype, Shape(dims))]
        }
        guard let kernel else { return [InferenceSupport.tensor(dtype, Shape(dims + [Dim](repeating: .unknown, count: n)))] }
        let win = try window(ctx, spatial: n, kernel: kernel)
        let outputPadding = ctx.ints("output_padding") ?? [Int64](repeating: 0, count: n)
        guard outputPadding.count == n else { throw InferenceError("output_padding does not match \(n) spatial dims") }
        for i in 0..<n {
            let input = xs.dims[2 + i]
            if win.autoPad == "SAME_UPPER" || win.autoPad == "SAME_LOWER" {
                dims.append(DimMath.mul(input, win.strides[i]))
            } else {
                // stride·(in-1) + output_padding + effective kernel - pads
                let valid = win.autoPad == "VALID"
                var out = DimMath.mul(DimMath.add(input, -1), win.strides[i])
                out = DimMath.add(DimMath.add(out, outputPadding[i]), effectiveKernel(win, i))
                out = DimMath.sub(DimMath.sub(out, .fixed(valid ? 0 : win.pads[i])), .fixed(valid ? 0 : win.pads[n + i]))
                dims.append(out)
            }
        }
        return [InferenceSupport.tensor(dtype, Shape(dims))]
    }
}
