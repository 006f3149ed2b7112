import OnnxcCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Element-wise math, comparison and logic with multidirectional broadcasting.
///
/// Integers follow numpy/C: wrapping `+ - *`, division truncating toward zero, and no traps (x / 0 and
/// x % 0 give 0). Float16 computes natively or through Float; bfloat16 is widened to Float and rounded back.
enum ElementwiseKernels {
    static let table: [String: Kernel] = {
        var table: [String: Kernel] = [
            "Add": binary(.add), "Sub": binary(.sub), "Mul": binary(.mul), "Div": binary(.div),
            "Mod": binary(.mod), "BitwiseAnd": binary(.and), "BitwiseOr": binary(.or), "BitwiseXor": binary(.xor),
            "Min": variadic(.min), "Max": variadic(.max), "Sum": variadic(.add), "Mean": variadic(.add),
            "Equal": comparison(.equal), "Greater": comparison(.greater), "GreaterOrEqual": comparison(.greaterOrEqual),
            "Less": comparison(.less), "LessOrEqual": comparison(.lessOrEqual),
            "And": logic(and: true), "Or": logic(and: false), "Xor": logic(and: nil),
        ]
        for (name, kernel) in [("Pow", powKernel), ("BitShift", bitShift), ("Not", not), ("BitwiseNot", bitwiseNot), ("Erf", erfKernel),
                               ("IsNaN", isNaN), ("IsInf", isInf)] {
            table[name] = kernel
        }
        for (name, op) in [("Abs", SignedOp.abs), ("Neg", .neg), ("Sign", .sign)] { table[name] = signed(name, op) }
        let functions: [(String, MathFunction.Op)] = [
            ("Reciprocal", .reciprocal), ("Sqrt", .sqrt), ("Exp", .exp), ("Log", .log), ("Ceil", .ceil), ("Floor", .floor),
            ("Round", .round), ("Sin", .sin), ("Cos", .cos), ("Tan", .tan), ("Asin", .asin), ("Acos", .acos), ("Atan", .atan),
            ("Sinh", .sinh), ("Cosh", .cosh), ("Asinh", .asinh), ("Acosh", .acosh), ("Atanh", .atanh),
        ]
        for (name, op) in functions { table[name] = floatFunction(name, MathFunction(op: op)) }
        table["Clip"] = clip
        table["Where"] = where_
        return table
    }()

    // Kernels written out as static properties: closures assigned into the table inside its initializer
    // crash the Swift 6.3 SIL generator when they use typed throws.

    private static let powKernel: Kernel = { inputs, context throws(RuntimeError) in
        let (a, b) = try legacyOperands(inputs, context)
        return outputs(try power(a, b))
    }

    private static let bitShift: Kernel = { inputs, context throws(RuntimeError) in
        let (a, b) = try legacyOperands(inputs, context)
        let direction = context.attributes.string("direction", "")
        guard direction == "LEFT" || direction == "RIGHT" else {
            throw .invalidArgument("BitShift: direction must be LEFT or RIGHT, not '\(direction)'")
        }
        return outputs(try arithmetic(direction == "LEFT" ? .shiftLeft : .shiftRight, a, b, op: "BitShift"))
    }

    private static let not: Kernel = { inputs, context throws(RuntimeError) in
        let x = try context.tensor(inputs, 0)
        guard x.dtype == .bool else { throw .unsupportedType(op: "Not", dtype: x.dtype.onnxName) }
        return outputs(try map(x, Bool.self, Bool.self) { !$0 })
    }

    private static let bitwiseNot: Kernel = { inputs, context throws(RuntimeError) in
        let x = try context.tensor(inputs, 0)
        return outputs(try dispatchInteger(x.dtype, op: "BitwiseNot", IntegerUnary(x: x, op: .bitwiseNot)))
    }

    private static let erfKernel: Kernel = { inputs, context throws(RuntimeError) in
        let x = try context.tensor(inputs, 0)
        if isFloat(x.dtype) { return outputs(try mapFloat(x, op: "Erf", MathFunction(op: .erf))) }
        return outputs(try dispatchInteger(x.dtype, op: "Erf", IntegerUnary(x: x, op: .erf)))
    }

    private static let isNaN: Kernel = { inputs, context throws(RuntimeError) in
        let x = try widened(try context.tensor(inputs, 0), op: "IsNaN")
        return outputs(try predicate(x, op: "IsNaN", { $0.isNaN }, double: { $0.isNaN }))
    }

    private static let isInf: Kernel = { inputs, context throws(RuntimeError) in
        let x = try widened(try context.tensor(inputs, 0), op: "IsInf")
        let positive = context.attributes.int("detect_positive", 1) != 0
        let negative = context.attributes.int("detect_negative", 1) != 0
        return outputs(try predicate(x, op: "IsInf", { $0.isInfinite && ($0 > 0 ? positive : negative) },
                                     double: { $0.isInfinite && ($0 > 0 ? positive : negative) }))
    }

    private static func signed(_ name: String, _ op: SignedOp) -> Kernel {
        { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            if isFloat(x.dtype) { return outputs(try mapFloat(x, op: name, MathFunction(op: op.float))) }
            return outputs(try dispatchInteger(x.dtype, op: name, IntegerUnary(x: x, op: op.integer)))
        }
    }

    private static func floatFunction(_ name: String, _ f: MathFunction) -> Kernel {
        { inputs, context throws(RuntimeError) in outputs(try mapFloat(try context.tensor(inputs, 0), op: name, f)) }
    }

    // MARK: Binary arithmetic

    enum ArithmeticOp: Sendable {
        case add, sub, mul, div, mod, fmod, min, max, and, or, xor, shiftLeft, shiftRight
    }

    private static func binary(_ op: ArithmeticOp) -> Kernel {
        { inputs, context throws(RuntimeError) in
            let (a, b) = try legacyOperands(inputs, context)
            let resolved = op == .mod && context.attributes.int("fmod", 0) != 0 ? ArithmeticOp.fmod : op
            return outputs(try arithmetic(resolved, a, b, op: context.node.opType))
        }
    }

    /// The two operands, aligned per the pre-opset-7 `broadcast`/`axis` attributes when those are present.
    private static func legacyOperands(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> (Tensor, Tensor) {
        let a = try context.tensor(inputs, 0)
        var b = try context.tensor(inputs, 1)
        if context.opset < 7, context.attributes.int("broadcast", 0) != 0, let axis = context.attributes.int("axis") {
            let start = axis < 0 ? Int(axis) + a.rank : Int(axis)
            guard start >= 0, start + b.rank <= a.rank else {
                throw .invalidArgument("\(context.node.opType): broadcast axis \(axis) does not fit shapes \(a.shape) and \(b.shape)")
            }
            b = try b.reshaped(b.shape + [Int](repeating: 1, count: a.rank - start - b.rank))
        }
        return (a, b)
    }

    /// a op b over the broadcast shape; both operands must share a dtype.
    static func arithmetic(_ op: ArithmeticOp, _ a: Tensor, _ b: Tensor, op name: String) throws(RuntimeError) -> Tensor {
        guard a.dtype == b.dtype else {
            throw .invalidArgument("\(name): operands have different types \(a.dtype.onnxName) and \(b.dtype.onnxName)")
        }
        switch a.dtype {
        case .bfloat16:
            let result = try arithmetic(op, CastKernels.widenBFloat16(a), CastKernels.widenBFloat16(b), op: name)
            return try CastKernels.narrowBFloat16(result)
        case .float, .double, .float16:
            let vector: VectorArithmetic.Operation? = switch op {
            case .add: .add
            case .sub: .sub
            case .mul: .mul
            case .div: .div
            default: nil
            }
            if a.dtype == .float, let vector, let result = try VectorArithmetic.binary(vector, a, b) { return result }
            return try dispatchFloat(a.dtype, op: name, FloatBinary(a: a, b: b, op: op, name: name))
        default:
            return try dispatchInteger(a.dtype, op: name, IntegerBinary(a: a, b: b, op: op))
        }
    }

    private struct FloatBinary: FloatVisitor {
        let a: Tensor, b: Tensor, op: ArithmeticOp, name: String
        func visit<T: FloatElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            switch op {
            case .add: return try floatBinary(a, b, T.self, AddOperator.self)
            case .sub: return try floatBinary(a, b, T.self, SubOperator.self)
            case .mul: return try floatBinary(a, b, T.self, MulOperator.self)
            case .div: return try floatBinary(a, b, T.self, DivOperator.self)
            case .min: return try floatBinary(a, b, T.self, MinOperator.self)
            case .max: return try floatBinary(a, b, T.self, MaxOperator.self)
            // The spec requires fmod=1 for floats; with fmod=0 the ONNX reference still computes C fmod, so do we.
            case .fmod, .mod: return try Broadcast.binary(a, b, as: T.self, T.self, to: T.self) { $0.truncatingRemainder(dividingBy: $1) }
            case .and, .or, .xor, .shiftLeft, .shiftRight: throw .unsupportedType(op: name, dtype: T.dtype.onnxName)
            }
        }
    }

    /// The common float operators as types, so the equal-shape and scalar loops below specialize and inline
    /// them; general broadcasting goes through `Broadcast.binary`.
    private protocol FloatOperator {
        static func apply<T: FloatElement>(_ x: T, _ y: T) -> T
    }
    private enum AddOperator: FloatOperator { static func apply<T: FloatElement>(_ x: T, _ y: T) -> T { x + y } }
    private enum SubOperator: FloatOperator { static func apply<T: FloatElement>(_ x: T, _ y: T) -> T { x - y } }
    private enum MulOperator: FloatOperator { static func apply<T: FloatElement>(_ x: T, _ y: T) -> T { x * y } }
    private enum DivOperator: FloatOperator { static func apply<T: FloatElement>(_ x: T, _ y: T) -> T { x / y } }
    /// NaN wins, as in numpy's minimum/maximum.
    private enum MinOperator: FloatOperator { static func apply<T: FloatElement>(_ x: T, _ y: T) -> T { x <= y || x.isNaN ? x : y } }
    private enum MaxOperator: FloatOperator { static func apply<T: FloatElement>(_ x: T, _ y: T) -> T { x >= y || x.isNaN ? x : y } }

    private static func floatBinary<T: FloatElement, O: FloatOperator>(_ a: Tensor, _ b: Tensor, _: T.Type, _: O.Type) throws(RuntimeError) -> Tensor {
        if let rows = rowBroadcast(a.shape, b.shape) {
            return try floatRowBinary(a, b, rows: rows, rowOperandFirst: false, T.self, O.self)
        }
        if let rows = rowBroadcast(b.shape, a.shape) {
            return try floatRowBinary(b, a, rows: rows, rowOperandFirst: true, T.self, O.self)
        }
        guard a.shape == b.shape || a.count == 1 || b.count == 1 else {
            return try Broadcast.binary(a, b, as: T.self, T.self, to: T.self) { O.apply($0, $1) }
        }
        let out = try Tensor(zeros: T.dtype, shape: try Broadcast.shape([a.shape, b.shape]))
        a.withValues(T.self) { pa in
            b.withValues(T.self) { pb in
                out.withMutableValues(T.self) { po in
                    let n = po.count
                    if a.shape == b.shape {
                        for i in 0..<n { po[i] = O.apply(pa[i], pb[i]) }
                    } else if b.count == 1 {
                        let y = pb[0]
                        for i in 0..<n { po[i] = O.apply(pa[i], y) }
                    } else {
                        let x = pa[0]
                        for i in 0..<n { po[i] = O.apply(x, pb[i]) }
                    }
                }
            }
        }
        return out
    }

    /// When `b` holds one value per row of `a` — b's shape is a's leading dims followed by 1s, as a
    /// squeeze-excitation scale [N, C, 1, 1] against [N, C, H, W] — the row count; nil otherwise.
    static func rowBroadcast(_ a: [Int], _ b: [Int]) -> Int? {
        guard a.count == b.count, a.count >= 2, a != b, let split = b.lastIndex(where: { $0 != 1 }).map({ $0 + 1 }),
              split < a.count, Array(a[..<split]) == Array(b[..<split]) else { return nil }
        return a[..<split].reduce(1, *)
    }

    /// `full` op `perRow` (or `perRow` op `full` when `rowOperandFirst`), perRow holding one value per row of
    /// full (see `rowBroadcast`): a tight loop per row.
    private static func floatRowBinary<T: FloatElement, O: FloatOperator>(_ a: Tensor, _ b: Tensor, rows: Int, rowOperandFirst: Bool,
                                                                          _: T.Type, _: O.Type) throws(RuntimeError) -> Tensor {
        let out = try Tensor(zeros: T.dtype, shape: a.shape)
        let width = rows > 0 ? a.count / rows : 0
        a.withValues(T.self) { pa in
            b.withValues(T.self) { pb in
                out.withMutableValues(T.self) { po in
                    for r in 0..<rows {
                        let y = pb[r], base = r * width
                        if rowOperandFirst {
                            for i in base..<(base + width) { po[i] = O.apply(y, pa[i]) }
                        } else {
                            for i in base..<(base + width) { po[i] = O.apply(pa[i], y) }
                        }
                    }
                }
            }
        }
        return out
    }

    private struct IntegerBinary: IntegerVisitor {
        let a: Tensor, b: Tensor, op: ArithmeticOp
        func visit<T: IntegerElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            switch op {
            case .add: return try Broadcast.binary(a, b, as: T.self, T.self, to: T.self) { $0 &+ $1 }
            case .sub: return try Broadcast.binary(a, b, as: T.self, T.self, to: T.self) { $0 &- $1 }
            case .mul: return try Broadcast.binary(a, b, as: T.self, T.self, to: T.self) { $0 &* $1 }
            case .div:
                return try Broadcast.binary(a, b, as: T.self, T.self, to: T.self) { x, y in
                    y == 0 ? 0 : x.dividedReportingOverflow(by: y).partialValue
                }
            case .fmod:
                return try Broadcast.binary(a, b, as: T.self, T.self, to: T.self) { x, y in
                    y == 0 ? 0 : x.remainderReportingOverflow(dividingBy: y).partialValue
                }
            case .mod:
                return try Broadcast.binary(a, b, as: T.self, T.self, to: T.self) { x, y in
                    if y == 0 { return 0 }
                    let r = x.remainderReportingOverflow(dividingBy: y).partialValue
                    return r != 0 && (r < 0) != (y < 0) ? r &+ y : r
                }
            case .min: return try Broadcast.binary(a, b, as: T.self, T.self, to: T.self) { Swift.min($0, $1) }
            case .max: return try Broadcast.binary(a, b, as: T.self, T.self, to: T.self) { Swift.max($0, $1) }
            case .and: return try Broadcast.binary(a, b, as: T.self, T.self, to: T.self) { $0 & $1 }
            case .or: return try Broadcast.binary(a, b, as: T.self, T.self, to: T.self) { $0 | $1 }
            case .xor: return try Broadcast.binary(a, b, as: T.self, T.self, to: T.self) { $0 ^ $1 }
            // Smart shifts: a shift by the bit width or more gives 0 instead of trapping.
            case .shiftLeft: return try Broadcast.binary(a, b, as: T.self, T.self, to: T.self) { $0 << $1 }
            case .shiftRight: return try Broadcast.binary(a, b, as: T.self, T.self, to: T.self) { $0 >> $1 }
            }
        }
    }

    /// Min, Max, Sum and Mean: a left fold with broadcasting at each step.
    private static func variadic(_ op: ArithmeticOp) -> Kernel {
        { inputs, context throws(RuntimeError) in
            let name = context.node.opType
            guard !inputs.isEmpty else { throw .invalidArgument("\(name) needs at least one input") }
            var result = try context.tensor(inputs, 0)
            for i in 1..<Swift.max(inputs.count, 1) {
                result = try arithmetic(op, result, try context.tensor(inputs, i), op: name)
            }
            if name == "Mean" {
                guard isFloat(result.dtype) else { throw .unsupportedType(op: name, dtype: result.dtype.onnxName) }
                let divisor = try CastKernels.convert(Tensor.scalar(Double(inputs.count)), to: result.dtype)
                result = try arithmetic(.div, result, divisor, op: name)
            }
            return outputs(result)
        }
    }

    // MARK: Pow

    /// Pow with independent base and exponent types; the result has the base's type. Integer bases with
    /// integer exponents use exact wrapping integer powers; everything else computes in floating point.
    private static func power(_ base: Tensor, _ exponent: Tensor) throws(RuntimeError) -> Tensor {
        switch base.dtype {
        case .bfloat16:
            return try CastKernels.narrowBFloat16(power(CastKernels.widenBFloat16(base), exponent))
        case .float, .float16:
            let e = try CastKernels.convert(exponent, to: .float)
            let b = base.dtype == .float ? base : try CastKernels.convert(base, to: .float)
            let result = try Broadcast.binary(b, e, as: Float.self, Float.self, to: Float.self) { powf($0, $1) }
            return base.dtype == .float ? result : try CastKernels.convert(result, to: base.dtype)
        case .double:
            let e = try CastKernels.convert(exponent, to: .double)
            return try Broadcast.binary(base, e, as: Double.self, Double.self, to: Double.self) { pow($0, $1) }
        case .int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64:
            if isFloat(exponent.dtype) {
                let b = try CastKernels.convert(base, to: .double)
                let e = try CastKernels.convert(exponent, to: .double)
                let result = try Broadcast.binary(b, e, as: Double.self, Double.self, to: Double.self) { pow($0, $1) }
                return try CastKernels.convert(result, to: base.dtype)
            }
            let e = try CastKernels.convert(exponent, to: .int64)
            return try dispatchInteger(base.dtype, op: "Pow", IntegerPow(base: base, exponent: e))
        default:
            throw .unsupportedType(op: "Pow", dtype: base.dtype.onnxName)
        }
    }

    private struct IntegerPow: IntegerVisitor {
        let base: Tensor, exponent: Tensor
        func visit<T: IntegerElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            try Broadcast.binary(base, exponent, as: T.self, Int64.self, to: T.self) { x, n in
                if n < 0 {
                    // Only ±1 have integer reciprocals; numpy rejects the rest, C++ truncates them to 0.
                    if x == 1 { return 1 }
                    if T.isSigned && x == 0 &- 1 { return n & 1 == 0 ? 1 : x }
                    return 0
                }
                var result: T = 1, square = x, k = n
                while k > 0 {
                    if k & 1 != 0 { result = result &* square }
                    square = square &* square
                    k >>= 1
                }
                return result
            }
        }
    }

    // MARK: Comparison and logic

    enum ComparisonOp: Sendable { case equal, greater, greaterOrEqual, less, lessOrEqual }

    private static func comparison(_ op: ComparisonOp) -> Kernel {
        { inputs, context throws(RuntimeError) in
            let (a, b) = try legacyOperands(inputs, context)
            return outputs(try compare(op, a, b, op: context.node.opType))
        }
    }

    private static func compare(_ op: ComparisonOp, _ a: Tensor, _ b: Tensor, op name: String) throws(RuntimeError) -> Tensor {
        guard a.dtype == b.dtype else {
            throw .invalidArgument("\(name): operands have different types \(a.dtype.onnxName) and \(b.dtype.onnxName)")
        }
        switch a.dtype {
        case .bfloat16:
            return try compare(op, CastKernels.widenBFloat16(a), CastKernels.widenBFloat16(b), op: name)
        case .bool where op == .equal:
            return try Broadcast.binary(a, b, as: Bool.self, Bool.self, to: Bool.self) { $0 == $1 }
        case .string where op == .equal:
            let shape = try Broadcast.shape([a.shape, b.shape])
            let sa = a.strings ?? [], sb = b.strings ?? []
            let offsets = Broadcast.offsets(of: [a.shape, b.shape], target: shape)
            let n = offsets.first?.count ?? 0
            let equal = (0..<n).map { sa[offsets[0][$0]] == sb[offsets[1][$0]] }
            return try Tensor(equal, shape: shape)
        default:
            return try dispatchArithmetic(a.dtype, op: name, Comparison(a: a, b: b, op: op))
        }
    }

    private struct Comparison: ArithmeticVisitor {
        let a: Tensor, b: Tensor, op: ComparisonOp
        func visit<T: ArithmeticElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            switch op {
            case .equal: return try Broadcast.binary(a, b, as: T.self, T.self, to: Bool.self) { $0 == $1 }
            case .greater: return try Broadcast.binary(a, b, as: T.self, T.self, to: Bool.self) { $0 > $1 }
            case .greaterOrEqual: return try Broadcast.binary(a, b, as: T.self, T.self, to: Bool.self) { $0 >= $1 }
            case .less: return try Broadcast.binary(a, b, as: T.self, T.self, to: Bool.self) { $0 < $1 }
            case .lessOrEqual: return try Broadcast.binary(a, b, as: T.self, T.self, to: Bool.self) { $0 <= $1 }
            }
        }
    }

    /// And (`and: true`), Or (`false`) and Xor (`nil`) on bool tensors.
    private static func logic(and: Bool?) -> Kernel {
        { inputs, context throws(RuntimeError) in
            let (a, b) = try legacyOperands(inputs, context)
            guard a.dtype == .bool, b.dtype == .bool else {
                throw .unsupportedType(op: context.node.opType, dtype: a.dtype == .bool ? b.dtype.onnxName : a.dtype.onnxName)
            }
            switch and {
            case true?: return outputs(try Broadcast.binary(a, b, as: Bool.self, Bool.self, to: Bool.self) { $0 && $1 })
            case false?: return outputs(try Broadcast.binary(a, b, as: Bool.self, Bool.self, to: Bool.self) { $0 || $1 })
            case nil: return outputs(try Broadcast.binary(a, b, as: Bool.self, Bool.self, to: Bool.self) { $0 != $1 })
            }
        }
    }

    // MARK: Unary

    static func isFloat(_ dtype: DType) -> Bool { dtype == .float || dtype == .double || dtype == .float16 || dtype == .bfloat16 }

    /// out[i] = f(x[i]) into a new tensor of the same shape. Always inlined so `f` inlines into the loop.
    @inline(__always)
    static func map<A: TensorElement, R: TensorElement>(_ x: Tensor, _: A.Type, _: R.Type, _ f: (A) -> R) throws(RuntimeError) -> Tensor {
        let out = try Tensor(zeros: R.dtype, shape: x.shape)
        x.withValues(A.self) { source in
            out.withMutableValues(R.self) { target in
                for i in 0..<Swift.min(source.count, target.count) { target[i] = f(source[i]) }
            }
        }
        return out
    }

    /// Float functions written once for Float and Double. Kernels are generic over the function type, so each
    /// loop is specialized and the function inlines (no closure call per element).
    protocol FloatFunction: Sendable {
        func callAsFunction<T: MathFloat>(_ x: T) -> T
    }

    /// The libm functions activations need, for Float and Double.
    protocol MathFloat: BinaryFloatingPoint {
        static func libm(_ op: MathFunction.Op, _ x: Self) -> Self
    }

    /// A float function applied element-wise: Float for float/float16/bfloat16, Double for double.
    static func mapFloat<F: FloatFunction>(_ x: Tensor, op: String, _ f: F) throws(RuntimeError) -> Tensor {
        // The loops are spelled out (not passed as closures) so `f`, of a concrete type here, inlines into them.
        let out: Tensor
        switch x.dtype {
        case .float:
            out = try Tensor(zeros: .float, shape: x.shape)
            x.withValues(Float.self) { s in out.withMutableValues(Float.self) { d in for i in 0..<Swift.min(s.count, d.count) { d[i] = f(s[i]) } } }
        case .double:
            out = try Tensor(zeros: .double, shape: x.shape)
            x.withValues(Double.self) { s in out.withMutableValues(Double.self) { d in for i in 0..<Swift.min(s.count, d.count) { d[i] = f(s[i]) } } }
        case .float16:
            out = try Tensor(zeros: .float16, shape: x.shape)
            x.withValues(Float16.self) { s in
                out.withMutableValues(Float16.self) { d in for i in 0..<Swift.min(s.count, d.count) { d[i] = Float16(f(Float(s[i]))) } }
            }
        case .bfloat16:
            out = try CastKernels.narrowBFloat16(mapFloat(CastKernels.widenBFloat16(x), op: op, f))
        default:
            throw .unsupportedType(op: op, dtype: x.dtype.onnxName)
        }
        return out
    }

    /// One named scalar function; the switch is loop-invariant, so the optimizer hoists it out of the loop.
    struct MathFunction: FloatFunction {
        enum Op: Sendable {
            case reciprocal, sqrt, exp, expm1, log, log1p, ceil, floor, round, sin, cos, tan, asin, acos, atan
            case sinh, cosh, tanh, asinh, acosh, atanh, erf, abs, neg, sign
        }
        let op: Op
        @inline(__always)
        func callAsFunction<T: MathFloat>(_ x: T) -> T {
            switch op {
            case .reciprocal: 1 / x
            case .sqrt: x.squareRoot()
            case .ceil: x.rounded(.up)
            case .floor: x.rounded(.down)
            case .round: x.rounded(.toNearestOrEven)
            case .abs: x.magnitude
            case .neg: -x
            case .sign: x > 0 ? 1 : (x < 0 ? -1 : x)
            default: T.libm(op, x)
            }
        }
    }

    /// Float16/32/64 pass through; bfloat16 and float8 widen to Float (exactly).
    private static func widened(_ x: Tensor, op: String) throws(RuntimeError) -> Tensor {
        switch x.dtype {
        case .float, .double, .float16: return x
        case .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz: return try CastKernels.convert(x, to: .float)
        default: throw .unsupportedType(op: op, dtype: x.dtype.onnxName)
        }
    }

    private static func predicate(_ x: Tensor, op: String, _ f: (Float) -> Bool, double d: (Double) -> Bool) throws(RuntimeError) -> Tensor {
        switch x.dtype {
        case .float: return try map(x, Float.self, Bool.self, f)
        case .double: return try map(x, Double.self, Bool.self, d)
        case .float16: return try map(x, Float16.self, Bool.self) { f(Float($0)) }
        default: throw .unsupportedType(op: op, dtype: x.dtype.onnxName)
        }
    }

    /// Abs, Neg and Sign: defined on signed and unsigned integers as well as floats.
    private enum SignedOp {
        case abs, neg, sign
        var float: MathFunction.Op {
            switch self {
            case .abs: .abs
            case .neg: .neg
            case .sign: .sign
            }
        }
        var integer: IntegerUnary.Op {
            switch self {
            case .abs: .abs
            case .neg: .neg
            case .sign: .sign
            }
        }
    }

    private struct IntegerUnary: IntegerVisitor {
        enum Op { case abs, neg, sign, bitwiseNot, erf }
        let x: Tensor, op: Op
        func visit<T: IntegerElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            switch op {
            // Wrapping: abs/neg of the minimum value stay the minimum value, as in numpy.
            case .abs: return try map(x, T.self, T.self) { $0 < 0 ? 0 &- $0 : $0 }
            case .neg: return try map(x, T.self, T.self) { 0 &- $0 }
            case .sign: return try map(x, T.self, T.self) { $0 > 0 ? 1 : ($0 < 0 ? 0 &- 1 : 0) }
            case .bitwiseNot: return try map(x, T.self, T.self) { ~$0 }
            case .erf: return try map(x, T.self, T.self) { T.from(erf($0.asDouble)) }
            }
        }
    }

    // MARK: Clip

    /// Bounds are attributes before opset 11 and optional scalar inputs from 11 on; missing bounds are open.
    private static let clip: Kernel = { inputs, context throws(RuntimeError) in
        let x = try context.tensor(inputs, 0)
        var low: Tensor?, high: Tensor?
        if context.opset < 11 {
            let lo = context.attributes.float("min", -Float.greatestFiniteMagnitude)
            let hi = context.attributes.float("max", Float.greatestFiniteMagnitude)
            low = try CastKernels.convert(Tensor.scalar(lo), to: x.dtype)
            high = try CastKernels.convert(Tensor.scalar(hi), to: x.dtype)
        } else {
            low = try context.optionalTensor(inputs, 1)
            high = try context.optionalTensor(inputs, 2)
        }
        for bound in [low, high] {
            guard let bound else { continue }
            guard bound.count == 1 else { throw .invalidArgument("Clip: min and max must be scalars, got shape \(bound.shape)") }
            guard bound.dtype == x.dtype else {
                throw .invalidArgument("Clip: bound type \(bound.dtype.onnxName) differs from input type \(x.dtype.onnxName)")
            }
        }
        if x.dtype == .bfloat16 {
            let widen = { (t: Tensor?) throws(RuntimeError) -> Tensor? in try t.map { (t) throws(RuntimeError) in try CastKernels.widenBFloat16(t) } }
            let result = try dispatchArithmetic(.float, op: "Clip", ClipVisitor(x: CastKernels.widenBFloat16(x), low: widen(low), high: widen(high)))
            return outputs(try CastKernels.narrowBFloat16(result))
        }
        return outputs(try dispatchArithmetic(x.dtype, op: "Clip", ClipVisitor(x: x, low: low, high: high)))
    }

    private struct ClipVisitor: ArithmeticVisitor {
        let x: Tensor, low: Tensor?, high: Tensor?
        func visit<T: ArithmeticElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            let lo: T? = low?.withValues(T.self) { $0.first }
            let hi: T? = high?.withValues(T.self) { $0.first }
            switch (lo, hi) {
            // max then min, as numpy and ONNX Runtime: when min > max every element becomes max.
            case let (lo?, hi?): return try map(x, T.self, T.self) { v in let y = v < lo ? lo : v; return y > hi ? hi : y }
            case let (lo?, nil): return try map(x, T.self, T.self) { $0 < lo ? lo : $0 }
            case let (nil, hi?): return try map(x, T.self, T.self) { $0 > hi ? hi : $0 }
            case (nil, nil): return x
            }
        }
    }

    // MARK: Where

    private static let where_: Kernel = { inputs, context throws(RuntimeError) in
        let condition = try context.tensor(inputs, 0)
        let x = try context.tensor(inputs, 1), y = try context.tensor(inputs, 2)
        guard condition.dtype == .bool else { throw .invalidArgument("Where: condition must be bool, not \(condition.dtype.onnxName)") }
        guard x.dtype == y.dtype else { throw .invalidArgument("Where: X is \(x.dtype.onnxName) but Y is \(y.dtype.onnxName)") }
        let shape = try Broadcast.shape([condition.shape, x.shape, y.shape])
        let walk = Rows(shape: shape, operands: [condition.shape, x.shape, y.shape])
        if x.dtype == .string {
            let sx = x.strings ?? [], sy = y.strings ?? []
            var result: [String] = []
            result.reserveCapacity(walk.count)
            condition.withValues(Bool.self) { pc in
                walk.forEachRow { _, c, a, b in
                    for k in 0..<walk.inner {
                        result.append(pc[c + k * walk.step[0]] ? sx[a + k * walk.step[1]] : sy[b + k * walk.step[2]])
                    }
                }
            }
            return outputs(Tensor(strings: result, shape: shape))
        }
        let out = try Tensor(zeros: x.dtype, shape: shape)
        switch x.dtype.storageBytes {
        case 1: select(walk, condition, x, y, out, UInt8.self)
        case 2: select(walk, condition, x, y, out, UInt16.self)
        case 4: select(walk, condition, x, y, out, UInt32.self)
        case 8: select(walk, condition, x, y, out, UInt64.self)
        case 16: select(walk, condition, x, y, out, SIMD2<UInt64>.self)
        default: throw .unsupportedType(op: "Where", dtype: x.dtype.onnxName)
        }
        return outputs(out)
    }

    /// Copies whole elements by their bit pattern, so one routine serves every fixed-width type.
    private static func select<U>(_ walk: Rows, _ condition: Tensor, _ x: Tensor, _ y: Tensor, _ out: Tensor, _: U.Type) {
        condition.withValues(Bool.self) { pc in
            x.withBytes { px in
                y.withBytes { py in
                    out.withMutableBytes { po in
                        let size = MemoryLayout<U>.stride
                        let (sc, sx, sy) = (walk.step[0], walk.step[1], walk.step[2])
                        walk.forEachRow { o, c, a, b in
                            for k in 0..<walk.inner {
                                let value = pc[c + k * sc] ? px.loadUnaligned(fromByteOffset: (a + k * sx) * size, as: U.self)
                                    : py.loadUnaligned(fromByteOffset: (b + k * sy) * size, as: U.self)
                                po.storeBytes(of: value, toByteOffset: (o + k) * size, as: U.self)
                            }
                        }
                    }
                }
            }
        }
    }

    /// Walks a broadcast output one innermost row at a time, giving the row's start in the output and in each
    /// of three operands; `step` is each operand's stride along the innermost axis (0 when broadcast).
    private struct Rows {
        let shape: [Int], strides: [[Int]], count: Int, inner: Int, step: [Int]

        init(shape: [Int], operands: [[Int]]) {
            self.shape = shape
            strides = operands.map { Broadcast.strides(of: $0, broadcastTo: shape) }
            count = shape.reduce(1, *)
            inner = shape.last ?? 1
            step = strides.map { $0.last ?? 0 }
        }

        func forEachRow(_ body: (_ output: Int, _ first: Int, _ second: Int, _ third: Int) -> Void) {
            guard count > 0 else { return }
            let rank = shape.count
            var index = [Int](repeating: 0, count: Swift.max(rank - 1, 0))
            var offsets = [0, 0, 0]
            var output = 0
            while output < count {
                body(output, offsets[0], offsets[1], offsets[2])
                output += inner
                // Odometer over the outer axes.
                var d = rank - 2
                while d >= 0 {
                    index[d] += 1
                    for j in 0..<3 { offsets[j] += strides[j][d] }
                    if index[d] < shape[d] { break }
                    for j in 0..<3 { offsets[j] -= strides[j][d] * index[d] }
                    index[d] = 0
                    d -= 1
                }
            }
        }
    }
}

extension Float: ElementwiseKernels.MathFloat {
    static func libm(_ op: ElementwiseKernels.MathFunction.Op, _ x: Float) -> Float {
        switch op {
        case .exp: expf(x)
        case .expm1: expm1f(x)
        case .log: logf(x)
        case .log1p: log1pf(x)
        case .sin: sinf(x)
        case .cos: cosf(x)
        case .tan: tanf(x)
        case .asin: asinf(x)
        case .acos: acosf(x)
        case .atan: atanf(x)
        case .sinh: sinhf(x)
        case .cosh: coshf(x)
        case .tanh: tanhf(x)
        case .asinh: asinhf(x)
        case .acosh: acoshf(x)
        case .atanh: atanhf(x)
        case .erf: erff(x)
        default: ElementwiseKernels.MathFunction(op: op)(x)
        }
    }
}

extension Double: ElementwiseKernels.MathFloat {
    static func libm(_ op: ElementwiseKernels.MathFunction.Op, _ x: Double) -> Double {
        switch op {
        case .exp: exp(x)
        case .expm1: expm1(x)
        case .log: log(x)
        case .log1p: log1p(x)
        case .sin: sin(x)
        case .cos: cos(x)
        case .tan: tan(x)
        case .asin: asin(x)
        case .acos: acos(x)
        case .atan: atan(x)
        case .sinh: sinh(x)
        case .cosh: cosh(x)
        case .tanh: tanh(x)
        case .asinh: asinh(x)
        case .acosh: acosh(x)
        case .atanh: atanh(x)
        case .erf: erf(x)
        default: ElementwiseKernels.MathFunction(op: op)(x)
        }
    }
}
