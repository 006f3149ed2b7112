import CKernels
import OnnxcCore
import OnnxcFormat

/// Steps for int8 models: per-tensor QuantizeLinear/DequantizeLinear (the float islands' borders) with the
/// grid read once at load. Other forms (per-axis, blocked, int8/int4/float8 targets) run on the generic step.
enum QuantizedSteps {
    static let factories: [String: StepFactories.Factory] = [
        "QuantizeLinear": { setup throws(RuntimeError) in Grid(setup, dequantize: false).map { MapStep(setup, .quantize($0)) } },
        "DequantizeLinear": { setup throws(RuntimeError) in Grid(setup, dequantize: true).map { MapStep(setup, .dequantize($0)) } },
        KernelRegistry.key(RuntimeOps.domain, "NhwcQLinearConv"): { setup throws(RuntimeError) in try ConvStep(setup, gemm: false) },
        KernelRegistry.key(RuntimeOps.domain, "NhwcQLinearConvAdd"): { setup throws(RuntimeError) in try ConvStep(setup, gemm: false) },
        KernelRegistry.key(RuntimeOps.domain, "QGemm"): { setup throws(RuntimeError) in try ConvStep(setup, gemm: true) },
        KernelRegistry.key(RuntimeOps.domain, "QLinearAdd"): { setup in BinaryStep(setup, CK_QBINARY_ADD) },
        "DynamicQuantizeLinear": { setup in setup.dtype(setup.input(0)) == .float ? DynamicQuantizeStep(setup) : nil },
        KernelRegistry.key(RuntimeOps.domain, "QLinearMul"): { setup in BinaryStep(setup, CK_QBINARY_MUL) },
        KernelRegistry.key(RuntimeOps.domain, "NhwcQGlobalAveragePool"): { setup in PoolStep(setup) },
        KernelRegistry.key(RuntimeOps.domain, "NhwcQAveragePool"): { setup throws(RuntimeError) in try WindowPoolStep(setup) },
        KernelRegistry.key(RuntimeOps.domain, "QLookup"): { setup in
            guard let table = setup.constant(1), table.dtype == .uint8, table.count == 256 else { return nil }
            return MapStep(setup, .lookup(table.array(UInt8.self)))
        },
    ]

    /// DynamicQuantizeLinear on float32: range, grid and quantization in one C pass each.
    struct DynamicQuantizeStep: Step {
        let node: RuntimeNode
        let x: TensorID, y: TensorID, scale: TensorID, zero: TensorID
        let slot: ArenaSlot?

        init(_ setup: StepSetup) {
            node = setup.node
            x = setup.input(0)
            y = setup.output(0)
            scale = setup.output(1)
            zero = setup.output(2)
            slot = setup.slot(y)
        }

        func run(_ frame: Frame) throws(RuntimeError) {
            let input = try frame.tensor(x, self)
            guard input.dtype == .float else { throw .atNode(node: node.displayName, op: node.opType, .unsupportedType(op: node.opType, dtype: input.dtype.onnxName)) }
            let out = try frame.output(slot, y, .uint8, input.shape)
            var s: Float = 1, z: UInt8 = 0
            input.withValues(Float.self) { xb in
                out.withMutableValues(UInt8.self) { yb in
                    guard let xp = xb.baseAddress, let yp = yb.baseAddress else { return }
                    ck_dynamic_quantize_u8(xb.count, xp, yp, &s, &z)
                }
            }
            frame.values[Int(y)] = .tensor(out)
            if scale >= 0 { frame.values[Int(scale)] = .tensor(.scalar(s)) }
            if zero >= 0 { frame.values[Int(zero)] = .tensor(.scalar(z)) }
        }
    }

    /// A constant scalar float (a scale) or integer (a zero point), if input `i` is one.
    static func scalar(_ setup: StepSetup, _ i: Int) -> Double? {
        guard let t = setup.constant(i), t.count == 1 else { return nil }
        return t.doubles().first
    }

    /// A uint8 pool's grids, inputs 1–4 (x scale and zero point, y scale and zero point), when all are constants.
    static func poolGrid(_ setup: StepSetup) -> (xScale: Float, xZero: Int32, yScale: Float, yZero: Int32)? {
        guard let sx = scalar(setup, 1), let zx = scalar(setup, 2), let sy = scalar(setup, 3), let zy = scalar(setup, 4) else { return nil }
        return (Float(sx), Int32(clamping: Int(zx)), Float(sy), Int32(clamping: Int(zy)))
    }

    /// ai.onnxc::NhwcQLinearConv (X [N, H, W, C] uint8) and ai.onnxc::QGemm (X [..., K] uint8 as a 1×1 convolution
    /// over M pixels) on the integer kernels, with the weights, grids and multipliers resolved at load. Nil (the
    /// generic step) when a weight, scale or zero point is not a constant.
    struct ConvStep: Step {
        let node: RuntimeNode
        let x: TensorID, y: TensorID
        let gemm: Bool
        let convolution: QuantizedConvolution
        let dynamicGrid: Bool
        let xScaleID: TensorID, xZeroID: TensorID
        let floatBias: [Float]?
        let slot: ArenaSlot?
        let planned: (shape: [Int], geometry: ConvolutionKernels.Geometry)?
        /// NhwcQLinearConvAdd: the residual (input 9) and the Add (QuantizedConvolution.ResidualAdd).
        let residual: (id: TensorID, add: QuantizedConvolution.ResidualAdd)?

        init?(_ setup: StepSetup, gemm: Bool) throws(RuntimeError) {
            let op = setup.node.opType
            if op == "NhwcQLinearConvAdd" {
                // Inputs 9…15: the residual and its grid, the convolution's grid in the Add, the Add's output grid.
                guard let rs = scalar(setup, 10), let rz = scalar(setup, 11), let cs = scalar(setup, 12), let cz = scalar(setup, 13),
                      let ys = scalar(setup, 14), let yz = scalar(setup, 15) else { return nil }
                let residualIsA = setup.node.attributes.int("residual_operand", 1) == 0
                let (sa, za, sb, zb) = residualIsA ? (rs, rz, cs, cz) : (cs, cz, rs, rz)
                residual = (setup.input(9), QuantizedConvolution.ResidualAdd(
                    ka: Float(sa) / Float(ys), kb: Float(sb) / Float(ys), za: Int32(clamping: Int(za)), zb: Int32(clamping: Int(zb)),
                    zy: Int32(clamping: Int(yz)), residualIsA: residualIsA))
            } else {
                residual = nil
            }
            // Inputs: X, x_scale, x_zp, W, w_scale, then QLinearConv's w_zp, y_scale, y_zp, B or QGemm's B, y_scale, y_zp.
            let (biasSlot, yScaleSlot, yZeroSlot) = gemm ? (5, 6, 7) : (8, 6, 7)
            guard let w = setup.constant(3), let ws = setup.constant(4), ws.dtype == .float else { return nil }
            // A grid from DynamicQuantizeLinear is read per run (float output only).
            let dynamicGrid = scalar(setup, 1) == nil || scalar(setup, 2) == nil
            let xs = scalar(setup, 1) ?? 1, xz = scalar(setup, 2) ?? 0
            if !gemm, let wz = setup.constant(5), wz.doubles().contains(where: { $0 != 0 }) { return nil }
            let hasY = setup.input(yScaleSlot) >= 0
            var ys: Double?, yz = 0.0
            if hasY {
                guard let s = scalar(setup, yScaleSlot), let z = scalar(setup, yZeroSlot) else { return nil }
                ys = s
                yz = z
            }
            if dynamicGrid && hasY { return nil }
            var bias: Tensor? = setup.input(biasSlot) >= 0 ? setup.constant(biasSlot) : nil
            if setup.input(biasSlot) >= 0 && bias == nil { return nil }
            // A float bias (the dynamic form's) is added after the float output; the kernel sums without one.
            floatBias = bias?.dtype == .float ? bias?.array(Float.self) : nil
            if floatBias != nil { bias = nil }
            self.dynamicGrid = dynamicGrid
            xScaleID = setup.input(1)
            xZeroID = setup.input(2)
            node = setup.node
            x = setup.input(0)
            y = setup.output(0)
            self.gemm = gemm
            slot = setup.slot(y)
            var weights = w
            if gemm && w.packing == nil {
                guard w.rank == 2 else { throw .invalidShape("QGemm needs an int8 [N, K] weight, got \(w.shape)") }
                weights = try w.reshaped([w.shape[0], w.shape[1], 1, 1])
            }
            let groups = gemm ? 1 : max(1, Int(clamping: node.attributes.int("group", 1)))
            convolution = try QuantizedConvolution(weights: weights, groups: groups, xScale: Float(xs), xZeroPoint: Int32(clamping: Int(xz)),
                                                   wScales: ws.array(Float.self), yScale: ys.map(Float.init), yZeroPoint: Int32(clamping: Int(yz)),
                                                   bias: bias, op: op)
            if let shape = setup.staticShape(x) {
                planned = (shape, try ConvStep.geometry(shape, convolution, gemm: gemm, node: setup.node))
            } else {
                planned = nil
            }
        }

        static func geometry(_ x: [Int], _ c: QuantizedConvolution, gemm: Bool, node: RuntimeNode) throws(RuntimeError) -> ConvolutionKernels.Geometry {
            let w = c.weights.shape
            let g: ConvolutionKernels.Geometry
            if gemm {
                guard let k = x.last, k == w[1] else { throw .invalidShape("QGemm x \(x) does not end in K = \(w[1])") }
                let m = x.dropLast().reduce(1, *)
                g = try ConvolutionKernels.Geometry(x: [1, k, m, 1], w: w, attributes: Attributes(), transposed: false)
            } else {
                guard x.count == 4 else { throw .invalidShape("\(node.opType) needs an [N, H, W, C] input, got \(x)") }
                g = try ConvolutionKernels.Geometry(x: [x[0], x[3], x[1], x[2]], w: w, attributes: node.attributes, transposed: false)
            }
            guard ChannelsLast.fits(g) else { throw .invalidShape("\(node.opType): sizes \(x) and \(w) exceed the kernel's 32-bit limits") }
            return g
        }

        func run(_ frame: Frame) throws(RuntimeError) {
            let input = try frame.tensor(x, self)
            do throws(RuntimeError) {
                guard input.dtype == .uint8 else { throw .unsupportedType(op: node.opType, dtype: input.dtype.onnxName) }
                let g: ConvolutionKernels.Geometry
                if let planned, planned.shape == input.shape {
                    g = planned.geometry
                } else {
                    g = try ConvStep.geometry(input.shape, convolution, gemm: gemm, node: node)
                }
                let shape = gemm ? Array(input.shape.dropLast()) + [convolution.outChannels] : ChannelsLastKernels.outputShape(g)
                let out = try frame.output(slot, y, convolution.outputType, shape)
                var c = convolution
                if dynamicGrid {
                    let s = try frame.tensor(xScaleID, self), z = try frame.tensor(xZeroID, self)
                    guard s.dtype == .float, s.count == 1, z.count == 1 else { throw .invalidArgument("\(node.opType) needs a scalar x grid") }
                    c = c.withInputGrid(scale: s.array(Float.self)[0], zeroPoint: Int32(z.int64s()[0]))
                }
                var residualTensor: Tensor?
                if let residual {
                    let r = try frame.tensor(residual.id, self)
                    guard r.dtype == .uint8, r.shape == shape, c.outputType == .uint8 else {
                        throw .invalidArgument("\(node.opType)'s residual must be uint8 \(shape), got \(r.dtype.onnxName) \(r.shape)")
                    }
                    residualTensor = r
                }
                if out.count > 0 {
                    c.run(g, x: input, into: out, residual: residualTensor.flatMap { t in residual.map { (t, $0.add) } })
                    if let floatBias { QuantizedConvolution.addBias(floatBias, to: out) }
                }
                frame.values[Int(y)] = .tensor(out)
            } catch {
                throw .atNode(node: node.displayName, op: node.opType, error)
            }
        }
    }

    /// ai.onnxc::QLinearAdd and QLinearMul: two uint8 tensors with NumPy broadcasting, in float arithmetic as ORT's
    /// (`ck_qbinary_u8`); a Mul of [N, …, C] by one gate per image and channel (squeeze-excitation) scales each
    /// gate once per image (`ck_qmul_channel_u8`, the same bytes).
    struct BinaryStep: Step {
        let node: RuntimeNode
        let op: ck_qbinary_op
        let a: TensorID, b: TensorID, y: TensorID
        let scales: (a: Float, b: Float, y: Float)
        let zeroPoints: (a: Int32, b: Int32, y: Int32)
        let slot: ArenaSlot?

        init?(_ setup: StepSetup, _ op: ck_qbinary_op) {
            guard let sa = scalar(setup, 1), let za = scalar(setup, 2), let sb = scalar(setup, 4), let zb = scalar(setup, 5),
                  let sy = scalar(setup, 6), let zy = scalar(setup, 7) else { return nil }
            node = setup.node
            self.op = op
            a = setup.input(0)
            b = setup.input(3)
            y = setup.output(0)
            slot = setup.slot(y)
            scales = (Float(sa), Float(sb), Float(sy))
            zeroPoints = (Int32(clamping: Int(za)), Int32(clamping: Int(zb)), Int32(clamping: Int(zy)))
        }

        func run(_ frame: Frame) throws(RuntimeError) {
            let left = try frame.tensor(a, self), right = try frame.tensor(b, self)
            guard left.dtype == .uint8, right.dtype == .uint8, let shape = try? Broadcast.shape([left.shape, right.shape]) else {
                throw .atNode(node: node.displayName, op: node.opType, .invalidArgument(
                    "\(node.opType) takes two uint8 tensors that broadcast, got \(left.dtype.onnxName)\(left.shape) and \(right.dtype.onnxName)\(right.shape)"))
            }
            let out = try frame.output(slot, y, .uint8, shape)
            if out.count > 0 {
                if op == CK_QBINARY_MUL, let (batch, pixels, channels) = gateForm(left.shape, right.shape) {
                    gate(left, right, batch: batch, pixels: pixels, channels: channels, into: out)
                } else {
                    let (dims, sa, sb) = Broadcast.mergedAxes(left.shape, right.shape, into: shape)
                    guard dims.allSatisfy({ $0 <= Int(Int32.max) }) else {
                        throw .atNode(node: node.displayName, op: node.opType, .invalidShape("\(node.opType): \(shape) is too large"))
                    }
                    let dims32 = dims.map { Int32($0) }
                    let done: Int32 = left.withValues(UInt8.self) { ab in
                        right.withValues(UInt8.self) { bb in
                            out.withMutableValues(UInt8.self) { yb in
                                guard let ap = ab.baseAddress, let bp = bb.baseAddress, let yp = yb.baseAddress else { return 0 }
                                return ck_qbinary_u8(Int32(op.rawValue), Int32(dims.count), dims32, sa, sb, ap, scales.a, zeroPoints.a, bp, scales.b,
                                                     zeroPoints.b, scales.y, zeroPoints.y, yp)
                            }
                        }
                    }
                    guard done != 0 else {
                        throw .atNode(node: node.displayName, op: node.opType,
                                      .invalidShape("\(node.opType) of \(left.shape) and \(right.shape) needs more than 8 axes after merging"))
                    }
                }
            }
            frame.values[Int(y)] = .tensor(out)
        }

        /// [N, …, C] and [N, 1, …, 1, C] (N·C gates, more than one pixel each): the batch, pixel and channel counts.
        private func gateForm(_ x: [Int], _ g: [Int]) -> (Int, Int, Int)? {
            guard x.count >= 3, g.count == x.count, g.first == x.first, g.last == x.last, g.dropFirst().dropLast().allSatisfy({ $0 == 1 }),
                  let batch = x.first, let channels = x.last, batch * channels > 0 else { return nil }
            let pixels = x.reduce(1, *) / (batch * channels)
            guard pixels > 1, [batch, pixels, channels].allSatisfy({ $0 <= Int(Int32.max) }) else { return nil }
            return (batch, pixels, channels)
        }

        private func gate(_ x: Tensor, _ g: Tensor, batch: Int, pixels: Int, channels: Int, into out: Tensor) {
            x.withValues(UInt8.self) { xb in
                g.withValues(UInt8.self) { gb in
                    out.withMutableValues(UInt8.self) { yb in
                        guard let xp = xb.baseAddress, let gp = gb.baseAddress, let yp = yb.baseAddress else { return }
                        ck_qmul_channel_u8(Int32(batch), Int32(pixels), Int32(channels), xp, scales.a, zeroPoints.a, gp, scales.b, zeroPoints.b,
                                           scales.y, zeroPoints.y, yp)
                    }
                }
            }
        }
    }

    /// A per-tensor uint8 grid (or, dequantizing, an int8 one: an embedding table's rows) from constant scale and
    /// zero point inputs.
    struct Grid {
        let scale: Float
        let zeroPoint: Int32
        let signed: Bool

        init?(_ setup: StepSetup, dequantize: Bool) {
            guard setup.node.attributes.int("block_size", 0) == 0, let s = setup.constant(1), s.dtype == .float, s.count == 1,
                  let z = setup.constant(2), z.dtype == .uint8 || (dequantize && z.dtype == .int8), z.count == 1 else { return nil }
            if dequantize, setup.dtype(setup.input(0)) != z.dtype { return nil }
            if !dequantize, setup.dtype(setup.input(0)) != .float { return nil }
            scale = s.array(Float.self)[0]
            signed = z.dtype == .int8
            zeroPoint = signed ? Int32(z.array(Int8.self)[0]) : Int32(z.array(UInt8.self)[0])
        }
    }


    /// An element-wise map between float32 and uint8 (or uint8 and uint8): per-tensor Quantize/Dequantize with the
    /// grid read once at load, and QLookup's table.
    struct MapStep: Step {
        enum Kind {
            case quantize(Grid), dequantize(Grid), lookup([UInt8])
        }

        let node: RuntimeNode
        let x: TensorID, y: TensorID
        let kind: Kind
        let slot: ArenaSlot?

        init(_ setup: StepSetup, _ kind: Kind) {
            node = setup.node
            x = setup.input(0)
            y = setup.output(0)
            self.kind = kind
            slot = setup.slot(y)
        }

        func run(_ frame: Frame) throws(RuntimeError) {
            let input = try frame.tensor(x, self)
            let (from, to): (DType, DType) = switch kind {
            case .quantize: (.float, .uint8)
            case .dequantize(let g): (g.signed ? .int8 : .uint8, .float)
            case .lookup: (.uint8, .uint8)
            }
            guard input.dtype == from else { throw .atNode(node: node.displayName, op: node.opType, .unsupportedType(op: node.opType, dtype: input.dtype.onnxName)) }
            let out = try frame.output(slot, y, to, input.shape)
            input.withBytes { xb in
                out.withMutableBytes { yb in
                    guard let xp = xb.baseAddress, let yp = yb.baseAddress else { return }
                    let n = input.count
                    switch kind {
                    case .quantize(let g):
                        ck_quantize_u8(n, xp.assumingMemoryBound(to: Float.self), g.scale, g.zeroPoint, yp.assumingMemoryBound(to: UInt8.self))
                    case .dequantize(let g) where g.signed:
                        ck_dequantize_s8(n, xp.assumingMemoryBound(to: Int8.self), g.scale, g.zeroPoint, yp.assumingMemoryBound(to: Float.self))
                    case .dequantize(let g):
                        ck_dequantize_u8(n, xp.assumingMemoryBound(to: UInt8.self), g.scale, g.zeroPoint, yp.assumingMemoryBound(to: Float.self))
                    case .lookup(let table):
                        table.withUnsafeBufferPointer { tb in
                            guard let tp = tb.baseAddress else { return }
                            ck_lookup_u8(n, xp.assumingMemoryBound(to: UInt8.self), tp, yp.assumingMemoryBound(to: UInt8.self))
                        }
                    }
                }
            }
            frame.values[Int(y)] = .tensor(out)
        }
    }

    /// ai.onnxc::NhwcQGlobalAveragePool: the squeeze half of a squeeze-excitation block on uint8, grids constant.
    struct PoolStep: Step {
        let node: RuntimeNode
        let x: TensorID, y: TensorID
        let grid: (xScale: Float, xZero: Int32, yScale: Float, yZero: Int32)
        let slot: ArenaSlot?

        init?(_ setup: StepSetup) {
            guard let grid = poolGrid(setup) else { return nil }
            node = setup.node
            x = setup.input(0)
            y = setup.output(0)
            self.grid = grid
            slot = setup.slot(y)
        }

        func run(_ frame: Frame) throws(RuntimeError) {
            let input = try frame.tensor(x, self)
            guard input.dtype == .uint8, input.rank == 4 else {
                throw .atNode(node: node.displayName, op: node.opType, .invalidShape("\(node.opType) needs a uint8 [N, H, W, C] input, got \(input.dtype.onnxName)\(input.shape)"))
            }
            let (batch, pixels, channels) = (input.shape[0], input.shape[1] * input.shape[2], input.shape[3])
            guard [batch, pixels, channels].allSatisfy({ $0 <= Int(Int32.max) }) else { throw .invalidShape("\(node.opType): \(input.shape) is too large") }
            let out = try frame.output(slot, y, .uint8, [batch, 1, 1, channels])
            input.withValues(UInt8.self) { xb in
                out.withMutableValues(UInt8.self) { yb in
                    guard let xp = xb.baseAddress, let yp = yb.baseAddress else { return }
                    ck_qglobal_avgpool_nhwc_u8(Int32(batch), Int32(pixels), Int32(channels), xp, grid.xScale, grid.xZero, grid.yScale, grid.yZero, yp)
                }
            }
            frame.values[Int(y)] = .tensor(out)
        }
    }

    /// ai.onnxc::NhwcQAveragePool: the window geometry for the compiled input shape and the grids read at load.
    struct WindowPoolStep: Step {
        let node: RuntimeNode
        let x: TensorID, y: TensorID
        let grid: (xScale: Float, xZero: Int32, yScale: Float, yZero: Int32)
        let countIncludePad: Bool
        let slot: ArenaSlot?
        let planned: (shape: [Int], geometry: ConvolutionKernels.Geometry)?

        init?(_ setup: StepSetup) throws(RuntimeError) {
            guard let grid = poolGrid(setup) else { return nil }
            node = setup.node
            x = setup.input(0)
            y = setup.output(0)
            self.grid = grid
            countIncludePad = setup.node.attributes.int("count_include_pad", 0) != 0
            slot = setup.slot(y)
            planned = try setup.staticShape(x).map { shape throws(RuntimeError) in
                (shape, try ChannelsLastKernels.poolGeometry(shape, setup.node.attributes, op: setup.node.opType))
            }
        }

        func run(_ frame: Frame) throws(RuntimeError) {
            let input = try frame.tensor(x, self)
            do throws(RuntimeError) {
                guard input.dtype == .uint8, input.rank == 4 else {
                    throw .invalidShape("\(node.opType) needs a uint8 [N, H, W, C] input, got \(input.dtype.onnxName)\(input.shape)")
                }
                let g: ConvolutionKernels.Geometry
                if let planned, planned.shape == input.shape {
                    g = planned.geometry
                } else {
                    g = try ChannelsLastKernels.poolGeometry(input.shape, node.attributes, op: node.opType)
                }
                let out = try frame.output(slot, y, .uint8, ChannelsLastKernels.poolShape(g))
                if out.count > 0 {
                    input.withValues(UInt8.self) { xb in
                        out.withMutableValues(UInt8.self) { yb in
                            guard let xp = xb.baseAddress, let yp = yb.baseAddress else { return }
                            ChannelsLast.quantizedAveragePool(g, x: xp, xScale: grid.xScale, xZeroPoint: grid.xZero, yScale: grid.yScale,
                                                              yZeroPoint: grid.yZero, countIncludePad: countIncludePad, y: yp)
                        }
                    }
                }
                frame.values[Int(y)] = .tensor(out)
            } catch {
                throw .atNode(node: node.displayName, op: node.opType, error)
            }
        }
    }
}
