import OnnxcCore

/// onnxc's fused runtime ops (domain `ai.onnxc`, created by the `fuse-silu`, `fuse-activation` and `fuse-gelu`
/// passes for the runtime target): Conv, Gemm and MatMul with an activation epilogue, MatMul with a bias, and
/// the activations standard ONNX lacks at the model's opset (Silu; Gelu below opset 20).
///
/// FusedConv and FusedGemm take exactly Conv's and Gemm's inputs and attributes (FusedConv also an optional fourth
/// input, a residual of the output's shape added before the activation); FusedMatMul takes A, B and an
/// optional `bias` of shape [N] added along the last axis. All three take `activation` (a `FusedActivationKind`
/// name; absent means none) and `activation_params` (floats). For float32 the packed GEMM (`PackedGemm`) applies
/// bias and activation in its epilogue when the activation is one it has; otherwise the base op runs first, then
/// the epilogue in place on its output. Both use the standalone kernels' formulas, so a fused op equals its
/// unfused sequence up to the product's summation order.
enum FusedKernels {
    static let table: [String: Kernel] = [
        KernelRegistry.key(RuntimeOps.domain, "FusedConv"): { inputs, context throws(RuntimeError) in
            let activation = try FusedActivation(context)
            guard let residual = try context.optionalTensor(inputs, 3) else {
                return outputs(try ConvolutionKernels.conv(inputs, context, activation: activation))
            }
            // Conv + Add(residual) [+ activation]: the sum is added before the activation, as in the unfused graph.
            let y = try ConvolutionKernels.conv(Array(inputs.prefix(3)), context, activation: nil)
            guard residual.dtype == y.dtype, residual.shape == y.shape else {
                throw .invalidShape("FusedConv: the residual input \(residual.dtype.onnxName)\(residual.shape) does not match the output \(y.dtype.onnxName)\(y.shape)")
            }
            return outputs(try epilogue(y, bias: residual, activation, op: context.node.opType))
        },
        KernelRegistry.key(RuntimeOps.domain, "FusedGemm"): { inputs, context throws(RuntimeError) in
            let activation = try FusedActivation(context)
            let (product, applied) = try LinearAlgebraKernels.gemm(inputs, context, activation: activation)
            return outputs(applied ? product : try epilogue(product, bias: nil, activation, op: context.node.opType))
        },
        KernelRegistry.key(RuntimeOps.domain, "FusedMatMul"): { inputs, context throws(RuntimeError) in
            let activation = try FusedActivation(context)
            let bias = try context.optionalTensor(inputs, 2)
            let (product, applied) = try LinearAlgebraKernels.matMul(inputs, context, bias: bias, activation: activation)
            if applied { return outputs(product) }
            if let bias {
                guard bias.dtype == product.dtype else {
                    throw .invalidArgument("FusedMatMul: bias is \(bias.dtype.onnxName) but A and B are \(product.dtype.onnxName)")
                }
                guard let n = product.shape.last, bias.count == n, bias.rank <= product.rank, bias.shape.last == n || bias.rank == 0 else {
                    throw .invalidShape("FusedMatMul: bias of shape \(bias.shape) is not one value per column of the \(product.shape) product")
                }
            }
            return outputs(try epilogue(product, bias: bias, activation, op: context.node.opType))
        },
        KernelRegistry.key(RuntimeOps.domain, "Silu"): { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            if x.dtype == .float { return outputs(try ActivationKernels.logistic(x, silu: true)) }
            return outputs(try ElementwiseKernels.mapFloat(x, op: "Silu", Silu()))
        },
        KernelRegistry.key(RuntimeOps.domain, "Gelu"): ActivationKernels.gelu,
        KernelRegistry.key(RuntimeOps.domain, "LayerNormalization"): NormalizationKernels.layerNormalization,
    ]

    /// Adds `bias` along the last axis, then applies `activation`, rounding to the output's type after each step
    /// as the unfused Add and activation would. Float and double work in place on the base op's fresh output.
    static func epilogue(_ y: Tensor, bias: Tensor?, _ activation: FusedActivation?, op: String) throws(RuntimeError) -> Tensor {
        switch y.dtype {
        case .float: return inPlace(y, Float.self, bias: bias, activation)
        case .double: return inPlace(y, Double.self, bias: bias, activation)
        case .float16, .bfloat16:
            var result = y
            if let bias {
                let b = try CastKernels.convert(bias, to: .float).array(Float.self)
                let wide = try CastKernels.convert(result, to: .float)
                wide.withMutableValues(Float.self) { addRowBias(b, to: $0) }
                result = try CastKernels.convert(wide, to: y.dtype)
            }
            if let activation {
                let wide = try CastKernels.convert(result, to: .float)
                wide.withMutableValues(Float.self) { activation.apply(to: $0) }
                result = try CastKernels.convert(wide, to: y.dtype)
            }
            return result
        default:
            if bias == nil && activation == nil { return y }
            throw .unsupportedType(op: op, dtype: y.dtype.onnxName)
        }
    }

    private static func inPlace<T: ElementwiseKernels.MathFloat & TensorElement>(_ y: Tensor, _: T.Type, bias: Tensor?, _ activation: FusedActivation?) -> Tensor {
        let b = bias?.array(T.self)
        y.withMutableValues(T.self) { values in
            if let b { addRowBias(b, to: values) }
            activation?.apply(to: values)
        }
        return y
    }

    /// values[r·n + j] += bias[j] for every row r of n = bias.count columns.
    @inline(__always)
    static func addRowBias<T: FloatingPoint>(_ bias: [T], to values: UnsafeMutableBufferPointer<T>) {
        let n = bias.count
        guard n > 0 else { return }
        bias.withUnsafeBufferPointer { b in
            var row = 0
            while row + n <= values.count {
                for j in 0..<n { values[row + j] += b[j] }
                row += n
            }
        }
    }

    /// x·sigmoid(x), the product the unfused Mul(x, Sigmoid(x)) computes.
    struct Silu: ElementwiseKernels.FloatFunction {
        @inline(__always)
        func callAsFunction<T: ElementwiseKernels.MathFloat>(_ x: T) -> T { x * ActivationKernels.Sigmoid()(x) }
    }

    /// Clip between two bounds, max then min, as the Clip kernel (min > max gives max everywhere).
    struct Clip: ElementwiseKernels.FloatFunction {
        let low: Float, high: Float
        @inline(__always)
        func callAsFunction<T: ElementwiseKernels.MathFloat>(_ x: T) -> T {
            let y = x < T(low) ? T(low) : x
            return y > T(high) ? T(high) : y
        }
    }
}

/// The activation epilogue of a fused op, parsed once per node from `activation` and `activation_params`.
/// `apply(to:)` runs on any range of an output buffer, so a GEMM can call it on each tile it finishes.
struct FusedActivation: Sendable {
    let kind: FusedActivationKind
    let parameters: [Float]

    /// The node's activation; nil when it has no `activation` attribute. Unknown names and wrong parameter counts
    /// are errors naming the node's op.
    init?(_ context: KernelContext) throws(RuntimeError) {
        try self.init(node: context.node)
    }

    init?(node: RuntimeNode) throws(RuntimeError) {
        let attributes = node.attributes
        guard attributes.has("activation") else { return nil }
        let name = attributes.string("activation", "")
        try self.init(name: name, parameters: attributes.floats("activation_params") ?? [], op: node.opType)
    }

    init(name: String, parameters: [Float], op: String) throws(RuntimeError) {
        guard let kind = FusedActivationKind(rawValue: name) else {
            let known = FusedActivationKind.allCases.map(\.rawValue).joined(separator: ", ")
            throw .invalidArgument("\(op): unknown activation '\(name)'; expected one of \(known)")
        }
        let expected = kind.parameterNames
        guard parameters.count == expected.count else {
            let names = expected.isEmpty ? "none" : expected.joined(separator: ", ")
            throw .invalidArgument("\(op): activation \(name) takes \(expected.count) activation_params (\(names)), got \(parameters.count)")
        }
        self.kind = kind
        self.parameters = parameters
    }

    /// Applies the activation to every element of `values` (Float or Double), one specialized loop per activation:
    /// the switch is outside the loop.
    func apply<T: ElementwiseKernels.MathFloat>(to values: UnsafeMutableBufferPointer<T>) {
        if T.self == Float.self {
            // float32 with the GEMM epilogues' own formulas, so a fused op equals its unfused sequence exactly.
            let floats = UnsafeMutableBufferPointer(start: UnsafeMutableRawPointer(values.baseAddress)?.assumingMemoryBound(to: Float.self), count: values.count)
            if PackedGemm.activate(floats, self) { return }
        }
        let p = parameters.map(Double.init)
        switch kind {
        case .relu: map(values, ActivationKernels.Relu())
        case .clip: map(values, FusedKernels.Clip(low: parameters[0], high: parameters[1]))
        case .sigmoid: map(values, ActivationKernels.Sigmoid())
        case .hardSigmoid: map(values, ActivationKernels.HardSigmoid(alpha: p[0], beta: p[1]))
        case .hardSwish: map(values, ActivationKernels.HardSwish())
        case .leakyRelu: map(values, ActivationKernels.LeakyRelu(alpha: p[0]))
        case .tanh: map(values, ElementwiseKernels.MathFunction(op: .tanh))
        case .silu: map(values, FusedKernels.Silu())
        case .gelu: map(values, ActivationKernels.Gelu())
        case .geluTanh: map(values, ActivationKernels.GeluTanh())
        }
    }

    @inline(__always)
    private func map<T: ElementwiseKernels.MathFloat, F: ElementwiseKernels.FloatFunction>(_ values: UnsafeMutableBufferPointer<T>, _ f: F) {
        for i in values.indices { values[i] = f(values[i]) }
    }
}
