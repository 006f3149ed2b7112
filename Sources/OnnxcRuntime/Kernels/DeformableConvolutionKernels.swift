import OnnxcCore

/// DeformConv (opset 19): a 2-D convolution whose sampling positions are shifted per output pixel by learned
/// offsets (and optionally scaled by a mask), sampled bilinearly with zeros outside the image, exactly as the
/// ONNX reference does through GridSample(align_corners=1).
enum DeformableConvolutionKernels {
    static let table: [String: Kernel] = [
        "DeformConv": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0), w = try context.tensor(inputs, 1), offset = try context.tensor(inputs, 2)
            let bias = try context.optionalTensor(inputs, 3), mask = try context.optionalTensor(inputs, 4)
            guard x.rank == 4, w.rank == 4, offset.rank == 4 else {
                throw .invalidShape("DeformConv supports 2-D images (X [N,C,H,W]); got X \(x.shape), W \(w.shape), offset \(offset.shape)")
            }
            let a = context.attributes
            let group = Int(a.int("group", 1)), offsetGroup = Int(a.int("offset_group", 1))
            let kernel = (a.ints("kernel_shape") ?? w.shape.suffix(2).map(Int64.init)).map(Int.init)
            let strides = (a.ints("strides") ?? [1, 1]).map(Int.init)
            let dilations = (a.ints("dilations") ?? [1, 1]).map(Int.init)
            let pads = (a.ints("pads") ?? [0, 0, 0, 0]).map(Int.init)
            let (n, channels, height, width) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
            let outChannels = w.shape[0]
            let (outH, outW) = (offset.shape[2], offset.shape[3])
            guard kernel.count == 2, strides.count == 2, dilations.count == 2, pads.count == 4, group > 0, offsetGroup > 0,
                  channels == w.shape[1] * group, outChannels % group == 0, channels % offsetGroup == 0,
                  offset.shape[0] == n, offset.shape[1] == offsetGroup * kernel[0] * kernel[1] * 2 else {
                throw .invalidShape("DeformConv: inconsistent shapes X \(x.shape), W \(w.shape), offset \(offset.shape) for group \(group), offset_group \(offsetGroup)")
            }
            if let mask, mask.shape != [n, offsetGroup * kernel[0] * kernel[1], outH, outW] {
                throw .invalidShape("DeformConv: mask shape \(mask.shape) does not match offset \(offset.shape)")
            }
            if let bias, bias.count != outChannels { throw .invalidShape("DeformConv: bias has \(bias.count) values for \(outChannels) channels") }
            let xs = x.doubles(), ws = w.doubles(), offsets = offset.doubles(), masks = mask?.doubles(), biases = bias?.doubles()
            let (kh, kw) = (kernel[0], kernel[1])
            let inPerGroup = w.shape[1], outPerGroup = outChannels / group, inPerOffsetGroup = channels / offsetGroup
            var result = [Double](repeating: 0, count: n * outChannels * outH * outW)

            /// Bilinear sample of image `plane` at (h, w); corners outside the image count as zero.
            func sample(_ plane: Int, _ h: Double, _ w: Double) -> Double {
                let h0 = Int(h.rounded(.down)), w0 = Int(w.rounded(.down))
                let dh = h - Double(h0), dw = w - Double(w0)
                var total = 0.0
                for (y, fy) in [(h0, 1 - dh), (h0 + 1, dh)] where y >= 0 && y < height && fy != 0 {
                    for (x, fx) in [(w0, 1 - dw), (w0 + 1, dw)] where x >= 0 && x < width && fx != 0 {
                        total += fy * fx * xs[plane + y * width + x]
                    }
                }
                return total
            }

            for b in 0..<n {
                for oc in 0..<outChannels {
                    let g = oc / outPerGroup
                    for i in 0..<outH {
                        for j in 0..<outW {
                            var sum = biases?[oc] ?? 0
                            for icLocal in 0..<inPerGroup {
                                let ic = g * inPerGroup + icLocal
                                let og = ic / inPerOffsetGroup
                                let plane = (b * channels + ic) * height * width
                                for p in 0..<kh {
                                    for q in 0..<kw {
                                        let k = (og * kh + p) * kw + q
                                        let offH = offsets[((b * offset.shape[1] + 2 * k) * outH + i) * outW + j]
                                        let offW = offsets[((b * offset.shape[1] + 2 * k + 1) * outH + i) * outW + j]
                                        let h = Double(i * strides[0] - pads[0] + p * dilations[0]) + offH
                                        let x = Double(j * strides[1] - pads[1] + q * dilations[1]) + offW
                                        let m = masks?[((b * offsetGroup * kh * kw + k) * outH + i) * outW + j] ?? 1
                                        sum += ws[((oc * inPerGroup + icLocal) * kh + p) * kw + q] * m * sample(plane, h, x)
                                    }
                                }
                            }
                            result[((b * outChannels + oc) * outH + i) * outW + j] = sum
                        }
                    }
                }
            }
            let shape = [n, outChannels, outH, outW]
            switch x.dtype {
            case .float: return [.tensor(try Tensor(result.map { Float($0) }, shape: shape))]
            case .double: return [.tensor(try Tensor(result, shape: shape))]
            case .float16: return [.tensor(try Tensor(result.map { Float16(Float($0)) }, shape: shape))]
            default: throw .unsupportedType(op: "DeformConv", dtype: x.dtype.onnxName)
            }
        },
    ]
}
