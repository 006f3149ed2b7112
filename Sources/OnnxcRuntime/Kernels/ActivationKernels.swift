import OnnxcCore

/// Activation operators. Each is a scalar function with Float and Double versions (float16 and bfloat16
/// compute in Float); attributes are read once per node, outside the element loop.
enum ActivationKernels {
    static let table: [String: Kernel] = [
        "Relu": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            if ElementwiseKernels.isFloat(x.dtype) { return outputs(try ElementwiseKernels.mapFloat(x, op: "Relu", Relu())) }
            return outputs(try dispatchInteger(x.dtype, op: "Relu", IntegerRelu(x: x)))
        },
        "LeakyRelu": unary { LeakyRelu(alpha: Double($0.float("alpha", 0.01))) },
        "Elu": unary { Elu(alpha: Double($0.float("alpha", 1))) },
        "Selu": unary {
            Selu(alpha: Double($0.float("alpha", 1.67326319217681884765625)), gamma: Double($0.float("gamma", 1.05070102214813232421875)))
        },
        "Celu": unary { Celu(alpha: Double($0.float("alpha", 1))) },
        "Gelu": gelu,
        "HardSigmoid": unary { HardSigmoid(alpha: Double($0.float("alpha", 0.2)), beta: Double($0.float("beta", 0.5))) },
        "HardSwish": unary { _ in HardSwish() },
        "Mish": unary { _ in Mish() },
        "Softplus": unary { _ in Softplus() },
        "Softsign": unary { _ in Softsign() },
        "ThresholdedRelu": unary { ThresholdedRelu(alpha: Double($0.float("alpha", 1))) },
        "Sigmoid": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            if x.dtype == .float { return outputs(try logistic(x, silu: false)) }
            return outputs(try ElementwiseKernels.mapFloat(x, op: "Sigmoid", Sigmoid()))
        },
        "Tanh": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            if x.dtype == .float { return outputs(try vectorActivation(x, "Tanh", op: "Tanh")) }
            return outputs(try ElementwiseKernels.mapFloat(x, op: "Tanh", ElementwiseKernels.MathFunction(op: .tanh)))
        },
        "PRelu": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            var slope = try context.tensor(inputs, 1)
            guard x.dtype == slope.dtype else {
                throw .invalidArgument("PRelu: slope type \(slope.dtype.onnxName) differs from input type \(x.dtype.onnxName)")
            }
            // Before opset 7 a 1-D slope matched the channel axis (1) rather than the last one; the ONNX reference
            // still falls back to that when numpy broadcasting fails, so do we.
            let broadcasts = (try? Broadcast.shape([x.shape, slope.shape])) == x.shape
            if context.opset < 7 || !broadcasts, slope.rank == 1, x.rank > 2, slope.count == x.shape[1] {
                slope = try slope.reshaped([slope.count] + [Int](repeating: 1, count: x.rank - 2))
            }
            guard (try? Broadcast.shape([x.shape, slope.shape])) == x.shape else {
                throw .invalidShape("PRelu: slope shape \(slope.shape) does not broadcast to input shape \(x.shape)")
            }
            if x.dtype == .bfloat16 {
                let result = try Broadcast.binary(CastKernels.widenBFloat16(x), CastKernels.widenBFloat16(slope),
                                                  as: Float.self, Float.self, to: Float.self) { $0 < 0 ? $0 * $1 : $0 }
                return outputs(try CastKernels.narrowBFloat16(result))
            }
            let visitor = PReluVisitor(x: x, slope: slope)
            if ElementwiseKernels.isFloat(x.dtype) { return outputs(try dispatchFloat(x.dtype, op: "PRelu", visitor)) }
            return outputs(try dispatchInteger(x.dtype, op: "PRelu", visitor))
        },
        "Shrink": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let lambd = Double(context.attributes.float("lambd", 0.5)), bias = Double(context.attributes.float("bias", 0))
            if ElementwiseKernels.isFloat(x.dtype) {
                return outputs(try ElementwiseKernels.mapFloat(x, op: "Shrink", Shrink(lambd: lambd, bias: bias)))
            }
            return outputs(try dispatchInteger(x.dtype, op: "Shrink", IntegerShrink(x: x, lambd: lambd, bias: bias)))
        },
    ]

    /// Gelu, also registered as `ai.onnxc::Gelu` (the same op for models below opset 20).
    static let gelu: Kernel = { inputs, context throws(RuntimeError) in
        let x = try context.tensor(inputs, 0)
        let approximate = context.attributes.string("approximate", "none")
        switch approximate {
        case "none" where x.dtype == .float: return outputs(try vectorActivation(x, "Gelu", op: "Gelu"))
        case "tanh" where x.dtype == .float: return outputs(try vectorActivation(x, "GeluTanh", op: "Gelu"))
        case "none": return outputs(try ElementwiseKernels.mapFloat(x, op: "Gelu", Gelu()))
        case "tanh": return outputs(try ElementwiseKernels.mapFloat(x, op: "Gelu", GeluTanh()))
        default: throw .invalidArgument("Gelu: approximate must be 'none' or 'tanh', not '\(approximate)'")
        }
    }

    /// float32 Tanh and Gelu with CKernels' vector tanh and erf — the formulas the fused epilogues use, so fusing
    /// never changes a result. `name` is the `FusedActivationKind` raw value.
    static func vectorActivation(_ x: Tensor, _ name: String, op: String) throws(RuntimeError) -> Tensor {
        let activation = try FusedActivation(name: name, parameters: [], op: op)
        let y = try Tensor(uninitialized: .float, shape: x.shape)
        x.withValues(Float.self) { source in
            y.withMutableValues(Float.self) { target in
                guard let from = source.baseAddress, let to = target.baseAddress else { return }
                to.update(from: from, count: source.count)
                PackedGemm.activate(target, activation)
            }
        }
        return y
    }

    /// A float-only activation built from the node's attributes; generic so each loop is specialized.
    /// float32 Sigmoid (or Silu) into a new tensor with the vector exp (`PackedGemm.logistic`).
    static func logistic(_ x: Tensor, silu: Bool) throws(RuntimeError) -> Tensor {
        // Every element is written: no zero fill first.
        let y = try Tensor(uninitialized: .float, shape: x.shape)
        x.withValues(Float.self) { source in
            y.withMutableValues(Float.self) { target in
                guard let from = source.baseAddress, let to = target.baseAddress else { return }
                to.update(from: from, count: source.count)
                PackedGemm.logistic(target, silu: silu)
            }
        }
        return y
    }

    private static func unary<F: ElementwiseKernels.FloatFunction>(_ make: @escaping @Sendable (Attributes) -> F) -> Kernel {
        { inputs, context throws(RuntimeError) in
            outputs(try ElementwiseKernels.mapFloat(try context.tensor(inputs, 0), op: context.node.opType, make(context.attributes)))
        }
    }

    // Attributes are stored as Double and narrowed per element type (Float(alpha) for Float is exact,
    // since ONNX float attributes are Float). The internal ones are also the epilogues of the fused ops
    // (`FusedActivation`), so a fused op computes exactly what the standalone activation does.

    struct Relu: ElementwiseKernels.FloatFunction {
        func callAsFunction<T: ElementwiseKernels.MathFloat>(_ x: T) -> T { x > 0 ? x : 0 }
    }

    struct LeakyRelu: ElementwiseKernels.FloatFunction {
        let alpha: Double
        func callAsFunction<T: ElementwiseKernels.MathFloat>(_ x: T) -> T { x < 0 ? T(alpha) * x : x }
    }

    private struct Elu: ElementwiseKernels.FloatFunction {
        let alpha: Double
        func callAsFunction<T: ElementwiseKernels.MathFloat>(_ x: T) -> T { x < 0 ? T(alpha) * T.libm(.expm1, x) : x }
    }

    private struct Selu: ElementwiseKernels.FloatFunction {
        let alpha: Double, gamma: Double
        func callAsFunction<T: ElementwiseKernels.MathFloat>(_ x: T) -> T {
            x > 0 ? T(gamma) * x : T(gamma) * T(alpha) * T.libm(.expm1, x)
        }
    }

    private struct Celu: ElementwiseKernels.FloatFunction {
        let alpha: Double
        func callAsFunction<T: ElementwiseKernels.MathFloat>(_ x: T) -> T {
            Swift.max(0, x) + Swift.min(0, T(alpha) * T.libm(.expm1, x / T(alpha)))
        }
    }

    struct Gelu: ElementwiseKernels.FloatFunction {
        func callAsFunction<T: ElementwiseKernels.MathFloat>(_ x: T) -> T {
            0.5 * x * (1 + T.libm(.erf, x * 0.70710678118654752))
        }
    }

    struct GeluTanh: ElementwiseKernels.FloatFunction {
        func callAsFunction<T: ElementwiseKernels.MathFloat>(_ x: T) -> T {
            0.5 * x * (1 + T.libm(.tanh, 0.79788456080286536 * (x + 0.044715 * x * x * x)))
        }
    }

    struct HardSigmoid: ElementwiseKernels.FloatFunction {
        let alpha: Double, beta: Double
        func callAsFunction<T: ElementwiseKernels.MathFloat>(_ x: T) -> T { Swift.max(0, Swift.min(1, T(alpha) * x + T(beta))) }
    }

    struct HardSwish: ElementwiseKernels.FloatFunction {
        func callAsFunction<T: ElementwiseKernels.MathFloat>(_ x: T) -> T { x * Swift.max(0, Swift.min(1, x / 6 + 0.5)) }
    }

    /// log(1 + e^x) without overflow for large x.
    private struct Softplus: ElementwiseKernels.FloatFunction {
        func callAsFunction<T: ElementwiseKernels.MathFloat>(_ x: T) -> T {
            x > 0 ? x + T.libm(.log1p, T.libm(.exp, -x)) : T.libm(.log1p, T.libm(.exp, x))
        }
    }

    private struct Mish: ElementwiseKernels.FloatFunction {
        func callAsFunction<T: ElementwiseKernels.MathFloat>(_ x: T) -> T { x * T.libm(.tanh, Softplus()(x)) }
    }

    private struct Softsign: ElementwiseKernels.FloatFunction {
        func callAsFunction<T: ElementwiseKernels.MathFloat>(_ x: T) -> T { x / (1 + x.magnitude) }
    }

    private struct ThresholdedRelu: ElementwiseKernels.FloatFunction {
        let alpha: Double
        func callAsFunction<T: ElementwiseKernels.MathFloat>(_ x: T) -> T { x > T(alpha) ? x : 0 }
    }

    /// 1 / (1 + e^-x), evaluated so neither branch overflows.
    struct Sigmoid: ElementwiseKernels.FloatFunction {
        func callAsFunction<T: ElementwiseKernels.MathFloat>(_ x: T) -> T {
            if x >= 0 { return 1 / (1 + T.libm(.exp, -x)) }
            let e = T.libm(.exp, x)
            return e / (1 + e)
        }
    }

    private struct Shrink: ElementwiseKernels.FloatFunction {
        let lambd: Double, bias: Double
        func callAsFunction<T: ElementwiseKernels.MathFloat>(_ x: T) -> T {
            x < T(-lambd) ? x + T(bias) : (x > T(lambd) ? x - T(bias) : 0)
        }
    }

    private struct IntegerRelu: IntegerVisitor {
        let x: Tensor
        func visit<T: IntegerElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            try ElementwiseKernels.map(x, T.self, T.self) { $0 > 0 ? $0 : 0 }
        }
    }

    private struct PReluVisitor: FloatVisitor, IntegerVisitor {
        let x: Tensor, slope: Tensor
        func visit<T: FloatElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            try Broadcast.binary(x, slope, as: T.self, T.self, to: T.self) { v, s in v < 0 ? v * s : v }
        }
        func visit<T: IntegerElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            // Integer products wrap as in C++ rather than trap.
            try Broadcast.binary(x, slope, as: T.self, T.self, to: T.self) { v, s in v < 0 ? v &* s : v }
        }
    }

    /// Shrink on integers computes in Double (bias is a float) and converts back truncating, as numpy's astype.
    private struct IntegerShrink: IntegerVisitor {
        let x: Tensor, lambd: Double, bias: Double
        func visit<T: IntegerElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            try ElementwiseKernels.map(x, T.self, T.self) { v in
                let d = v.asDouble
                return T.from(d < -lambd ? d + bias : (d > lambd ? d - bias : 0))
            }
        }
    }
}
