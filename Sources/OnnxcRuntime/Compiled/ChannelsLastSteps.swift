import OnnxcCore
import OnnxcFormat

/// Steps for the channels-last convolution and pools: weights resolved (and packed, if the compiler left them
/// plain) and the geometry computed once for the compiled input shape, so a run only checks the shape and calls
/// the kernel with the output's arena slot.
enum ChannelsLastSteps {
    static let factories: [String: StepFactories.Factory] = [
        KernelRegistry.key(RuntimeOps.domain, "NhwcConv"): { setup throws(RuntimeError) in try ConvStep(setup) },
        KernelRegistry.key(RuntimeOps.domain, "NhwcMaxPool"): { setup throws(RuntimeError) in try PoolStep(setup, .max) },
        KernelRegistry.key(RuntimeOps.domain, "NhwcAveragePool"): { setup throws(RuntimeError) in
            try PoolStep(setup, .average(countIncludePad: setup.node.attributes.int("count_include_pad", 0) != 0))
        },
        KernelRegistry.key(RuntimeOps.domain, "NhwcGlobalAveragePool"): { setup in GlobalPoolStep(setup, max: false) },
        KernelRegistry.key(RuntimeOps.domain, "NhwcGlobalMaxPool"): { setup in GlobalPoolStep(setup, max: true) },
    ]

    /// A float32 [N, H, W, C] input.
    @inline(__always)
    static func input(_ frame: Frame, _ id: TensorID, _ step: some Step) throws(RuntimeError) -> Tensor {
        let x = try frame.tensor(id, step)
        try check(x.dtype, x.shape, step)
        return x
    }

    /// A float32 [N, H, W, C] input, a window or dense.
    @inline(__always)
    static func strided(_ frame: Frame, _ id: TensorID, _ step: some Step) throws(RuntimeError) -> TensorWindow {
        let x = try frame.strided(id, step)
        try check(x.dtype, x.shape, step)
        return x
    }

    @inline(__always)
    static func check(_ dtype: DType, _ shape: [Int], _ step: some Step) throws(RuntimeError) {
        guard dtype == .float, shape.count == 4 else {
            throw .atNode(node: step.node.displayName, op: step.node.opType,
                          .invalidShape("\(step.node.opType) needs a float32 [N, H, W, C] input, got \(dtype.onnxName)\(shape)"))
        }
    }

    struct ConvStep: Step {
        let node: RuntimeNode
        let x: TensorID, residual: TensorID, y: TensorID
        let weights: Tensor, bias: Tensor?, depthwise: Bool
        let activation: FusedActivation?
        let slot: ArenaSlot?
        /// The output's planned window (a channel range of a wider tensor), if it has one.
        let window: WindowSlot?
        /// The geometry for the compiled input shape.
        let planned: (shape: [Int], geometry: ConvolutionKernels.Geometry)?
        let algorithm: ChannelsLast.Algorithm
        /// The Winograd form's workspace (its transformed weights: the channel counts fix its size, whatever the
        /// input's), in the frame's scratch buffer.
        let scratchBytes: Int

        /// Nil when the weights or bias are not constants (the generic step handles those).
        init?(_ setup: StepSetup) throws(RuntimeError) {
            guard let w = setup.constant(1), setup.input(2) < 0 || setup.constant(2) != nil else { return nil }
            node = setup.node
            x = setup.input(0)
            residual = setup.input(3)
            y = setup.output(0)
            bias = setup.constant(2)
            slot = setup.slot(y)
            window = setup.window(y)
            activation = try FusedActivation(node: node)
            // The weights' geometry: from the compiled input shape, or from a made-up one (the dilated kernel's size,
            // the weights' channels) when the input's size is only known at run time.
            let shape = setup.staticShape(x)
            guard w.rank == 4 else { return nil }
            let dilations = node.attributes.ints("dilations") ?? [1, 1]
            let span = (0..<2).map { w.shape[2 + $0] * Int(clamping: dilations.count == 2 ? max(dilations[$0], 1) : 1) }
            let probe = shape ?? [1, span[0], span[1], w.shape[1] * Int(clamping: max(node.attributes.int("group", 1), 1))]
            let g = try ChannelsLastKernels.convGeometry(x: probe, w: w, bias: bias, attributes: node.attributes, op: node.opType)
            depthwise = ChannelsLastKernels.isDepthwise(g)
            weights = try ChannelsLastKernels.packedWeights(w, g, depthwise: depthwise, op: node.opType)
            planned = shape.map { ($0, g) }
            algorithm = depthwise ? .direct : ChannelsLast.Algorithm(attributes: node.attributes)
            scratchBytes = algorithm == .winograd ? ChannelsLast.winogradWorkspaceBytes(g) ?? 0 : 0
        }

        func run(_ frame: Frame) throws(RuntimeError) {
            let input = try ChannelsLastSteps.strided(frame, x, self)
            do {
                let g: ConvolutionKernels.Geometry
                if let planned, planned.shape == input.shape {
                    g = planned.geometry
                } else {
                    g = try ChannelsLastKernels.convGeometry(x: input.shape, w: weights, bias: bias, attributes: node.attributes, op: node.opType)
                }
                var workspace: UnsafeMutableRawPointer?
                if scratchBytes > 0, let base = frame.scratch?.storage.baseAddress { workspace = UnsafeMutableRawPointer(mutating: base) }
                let shape = ChannelsLastKernels.outputShape(g)
                guard ChannelsLast.fuses(activation) else {
                    // The activation runs after the kernel, over a dense output.
                    let z = residual >= 0 ? try frame.tensor(residual, self) : nil
                    frame.values[Int(y)] = .tensor(try ChannelsLastKernels.convolve(
                        g, x: try ChannelsLastSteps.input(frame, x, self), weights: weights, depthwise: depthwise, bias: bias, residual: z,
                        activation: activation, into: try frame.output(slot, y, .float, shape), op: node.opType, algorithm: algorithm,
                        workspace: workspace))
                    return
                }
                let z = residual >= 0 ? try frame.strided(residual, self) : nil
                let out = try frame.output(window: window, slot: slot, y, .float, shape)
                // An input with no elements (zero channels) still has an output: bias and activation.
                try ChannelsLastKernels.convolve(g, x: input.count > 0 ? input : out.window, weights: weights, depthwise: depthwise,
                                                 bias: bias, residual: z, activation: activation, into: out.window, op: node.opType,
                                                 algorithm: algorithm, workspace: workspace)
                frame.publish(y, out)
            } catch {
                throw .atNode(node: node.displayName, op: node.opType, error)
            }
        }
    }

    struct PoolStep: Step {
        let node: RuntimeNode
        let x: TensorID, y: TensorID
        let kind: ChannelsLast.PoolKind
        let slot: ArenaSlot?
        let window: WindowSlot?
        let planned: (shape: [Int], geometry: ConvolutionKernels.Geometry)?

        init(_ setup: StepSetup, _ kind: ChannelsLast.PoolKind) throws(RuntimeError) {
            node = setup.node
            x = setup.input(0)
            y = setup.output(0)
            self.kind = kind
            slot = setup.slot(y)
            window = setup.window(y)
            planned = try setup.staticShape(x).map { shape throws(RuntimeError) in
                (shape, try ChannelsLastKernels.poolGeometry(shape, setup.node.attributes, op: setup.node.opType))
            }
        }

        func run(_ frame: Frame) throws(RuntimeError) {
            let raw = try frame.strided(x, self)
            // MaxPool of a quantized tensor runs on its uint8 values (dense: the uint8 kernel takes no strides).
            let quantized = kind == .max && raw.dtype == .uint8 && raw.shape.count == 4
            if !quantized { try ChannelsLastSteps.check(raw.dtype, raw.shape, self) }
            let input = quantized ? try TensorWindow.dense(frame.tensor(x, self)) : raw
            do {
                let g: ConvolutionKernels.Geometry
                if let planned, planned.shape == input.shape {
                    g = planned.geometry
                } else {
                    g = try ChannelsLastKernels.poolGeometry(input.shape, node.attributes, op: node.opType)
                }
                let out = try frame.output(window: quantized ? nil : window, slot: slot, y, input.dtype, ChannelsLastKernels.poolShape(g))
                ChannelsLastKernels.pool(g, kind, x: input, into: out.window)
                frame.publish(y, out)
            } catch {
                throw .atNode(node: node.displayName, op: node.opType, error)
            }
        }
    }

    struct GlobalPoolStep: Step {
        let node: RuntimeNode
        let x: TensorID, y: TensorID
        let max: Bool
        let slot: ArenaSlot?

        init(_ setup: StepSetup, max: Bool) {
            node = setup.node
            x = setup.input(0)
            y = setup.output(0)
            self.max = max
            slot = setup.slot(y)
        }

        func run(_ frame: Frame) throws(RuntimeError) {
            let input = try ChannelsLastSteps.input(frame, x, self)
            do {
                try ChannelsLastKernels.checkGlobalPool(input.shape, op: node.opType)
                let out = try frame.output(slot, y, .float, ChannelsLastKernels.globalPoolShape(input.shape))
                frame.values[Int(y)] = .tensor(ChannelsLastKernels.globalPool(input, max: max, into: out))
            } catch {
                throw .atNode(node: node.displayName, op: node.opType, error)
            }
        }
    }
}
