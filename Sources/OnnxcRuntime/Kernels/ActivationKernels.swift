import OnnxcCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Activation operators. Each is a scalar function with Float and Double versions (float16 and bfloat16
/// compute in Float); attributes are read once per node, outside the element loop.
enum ActivationKernels {
    static let table: [String: Kernel] = [
        "Relu": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            if ElementwiseKernels.isFloat(x.dtype) {
                return outputs(try ElementwiseKernels.mapFloat(x, op: "Relu", { $0 > 0 ? $0 : 0 }, { $0 > 0 ? $0 : 0 }))
            }
            return outputs(try dispatchInteger(x.dtype, op: "Relu", IntegerRelu(x: x)))
        },
        "LeakyRelu": unary { a in
            let alpha = a.float("alpha", 0.01)
            return ({ $0 < 0 ? alpha * $0 : $0 }, { $0 < 0 ? Double(alpha) * $0 : $0 })
        },
        "Elu": unary { a in
            let alpha = a.float("alpha", 1)
            return ({ $0 < 0 ? alpha * expm1($0) : $0 }, { $0 < 0 ? Double(alpha) * expm1($0) : $0 })
        },
        "Selu": unary { a in
            let alpha = a.float("alpha", 1.67326319217681884765625), gamma = a.float("gamma", 1.05070102214813232421875)
            let (alphaD, gammaD) = (Double(alpha), Double(gamma))
            return ({ $0 > 0 ? gamma * $0 : gamma * alpha * expm1($0) }, { $0 > 0 ? gammaD * $0 : gammaD * alphaD * expm1($0) })
        },
        "Celu": unary { a in
            let alpha = a.float("alpha", 1)
            let alphaD = Double(alpha)
            return ({ Swift.max(0, $0) + Swift.min(0, alpha * expm1($0 / alpha)) },
                    { Swift.max(0, $0) + Swift.min(0, alphaD * expm1($0 / alphaD)) })
        },
        "Gelu": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let approximate = context.attributes.string("approximate", "none")
            switch approximate {
            case "none":
                return outputs(try ElementwiseKernels.mapFloat(x, op: "Gelu",
                    { 0.5 * $0 * (1 + erf($0 * 0.70710678118654752)) },
                    { 0.5 * $0 * (1 + erf($0 * 0.70710678118654752)) }))
            case "tanh":
                return outputs(try ElementwiseKernels.mapFloat(x, op: "Gelu",
                    { 0.5 * $0 * (1 + tanh(0.79788456080286536 * ($0 + 0.044715 * $0 * $0 * $0))) },
                    { 0.5 * $0 * (1 + tanh(0.79788456080286536 * ($0 + 0.044715 * $0 * $0 * $0))) }))
            default:
                throw .invalidArgument("Gelu: approximate must be 'none' or 'tanh', not '\(approximate)'")
            }
        },
        "HardSigmoid": unary { a in
            let alpha = a.float("alpha", 0.2), beta = a.float("beta", 0.5)
            let (alphaD, betaD) = (Double(alpha), Double(beta))
            return ({ Swift.max(0, Swift.min(1, alpha * $0 + beta)) }, { Swift.max(0, Swift.min(1, alphaD * $0 + betaD)) })
        },
        "HardSwish": unary { _ in
            ({ $0 * Swift.max(0, Swift.min(1, $0 / 6 + 0.5)) }, { $0 * Swift.max(0, Swift.min(1, $0 / 6 + 0.5)) })
        },
        "Mish": unary { _ in ({ $0 * tanh(softplus($0)) }, { $0 * tanh(softplus($0)) }) },
        "Softplus": unary { _ in ({ softplus($0) }, { softplus($0) }) },
        "Softsign": unary { _ in ({ $0 / (1 + Swift.abs($0)) }, { $0 / (1 + Swift.abs($0)) }) },
        "ThresholdedRelu": unary { a in
            let alpha = a.float("alpha", 1)
            let alphaD = Double(alpha)
            return ({ $0 > alpha ? $0 : 0 }, { $0 > alphaD ? $0 : 0 })
        },
        "Sigmoid": unary { _ in ({ sigmoid($0) }, { sigmoid($0) }) },
        "Tanh": unary { _ in ({ tanh($0) }, { tanh($0) }) },
        "PRelu": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            var slope = try context.tensor(inputs, 1)
            guard x.dtype == slope.dtype else {
                throw .invalidArgument("PRelu: slope type \(slope.dtype.onnxName) differs from input type \(x.dtype.onnxName)")
            }
            // Before opset 7 a 1-D slope matched the channel axis (1) rather than the last one.
            if context.opset < 7, slope.rank == 1, x.rank > 2, slope.count == x.shape[1] {
                slope = try slope.reshaped([slope.count] + [Int](repeating: 1, count: x.rank - 2))
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
                let (lf, bf) = (Float(lambd), Float(bias))
                return outputs(try ElementwiseKernels.mapFloat(x, op: "Shrink",
                    { $0 < -lf ? $0 + bf : ($0 > lf ? $0 - bf : 0) },
                    { $0 < -lambd ? $0 + bias : ($0 > lambd ? $0 - bias : 0) }))
            }
            return outputs(try dispatchInteger(x.dtype, op: "Shrink", IntegerShrink(x: x, lambd: lambd, bias: bias)))
        },
    ]

    /// A float-only activation whose Float and Double functions are built from the node's attributes.
    private static func unary(
        _ make: @escaping @Sendable (Attributes) -> ((Float) -> Float, (Double) -> Double)
    ) -> Kernel {
        { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let (f, d) = make(context.attributes)
            return outputs(try ElementwiseKernels.mapFloat(x, op: context.node.opType, f, d))
        }
    }

    /// log(1 + e^x) without overflow for large x.
    private static func softplus(_ x: Float) -> Float { x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)) }
    private static func softplus(_ x: Double) -> Double { x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)) }

    /// 1 / (1 + e^-x), evaluated so neither branch overflows.
    private static func sigmoid(_ x: Float) -> Float { x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)) }
    private static func sigmoid(_ x: Double) -> Double { x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)) }

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
