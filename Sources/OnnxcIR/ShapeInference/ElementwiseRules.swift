import OnnxcCore

/// Element-wise ops: unary (output = input), binary and variadic with multidirectional broadcasting,
/// comparisons and logic (bool outputs), Cast/CastLike, activations, the Softmax family and Where.
/// Integer arithmetic on small known tensors is folded, since shape chains compute with Add/Sub/Mul/Div.
enum ElementwiseRules {
    static let sameAsInput: [String] = [
        "Abs", "Neg", "Ceil", "Floor", "Round", "Sqrt", "Exp", "Log", "Reciprocal", "Sign", "Sin", "Cos", "Tan",
        "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Erf", "Relu", "LeakyRelu", "Elu", "Selu",
        "Celu", "Sigmoid", "HardSigmoid", "HardSwish", "Softplus", "Softsign", "Tanh", "ThresholdedRelu", "Mish",
        "Gelu", "Softmax", "LogSoftmax", "Hardmax", "Clip", "Shrink", "BitwiseNot", "CumSum", "Trilu",
        "ReverseSequence",
    ]
    static let arithmetic: [String] = ["Add", "Sub", "Mul", "Div", "Pow", "Mod", "BitShift", "BitwiseAnd", "BitwiseOr",
                                       "BitwiseXor", "PRelu"]
    static let comparisons: [String] = ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor"]
    static let variadic: [String] = ["Sum", "Mean", "Max", "Min"]

    static let table: [String: InferenceRule] = {
        var t: [String: InferenceRule] = [:]
        for op in sameAsInput { t[op] = unary }
        for op in arithmetic { t[op] = binary }
        for op in comparisons { t[op] = comparison }
        for op in variadic { t[op] = variadicRule }
        t["Identity"] = identity
        t["Not"] = { ctx in [InferenceSupport.tensor(.bool, ctx.shape(0))] }
        t["IsNaN"] = t["Not"]
        t["IsInf"] = t["Not"]
        t["Cast"] = cast
        t["CastLike"] = { ctx in
            if let value = ctx.known(0) { ctx.setKnown(0, value) }
            return [InferenceSupport.tensor(ctx.dtype(1), ctx.shape(0))]
        }
        t["Where"] = whereRule
        t["Dropout"] = { ctx in
            [ctx.type(0), InferenceSupport.tensor(.bool, ctx.shape(0))]
        }
        t["EyeLike"] = { ctx in
            let dtype = ctx.int("dtype").flatMap { DType(rawValue: Int32(truncatingIfNeeded: $0)) } ?? ctx.dtype(0)
            return [InferenceSupport.tensor(dtype, ctx.shape(0))]
        }
        t["RandomNormalLike"] = t["EyeLike"]
        t["Bernoulli"] = t["EyeLike"]
        t["RandomUniformLike"] = t["EyeLike"]
        t["RandomNormal"] = randomRule
        t["RandomUniform"] = randomRule
        return t
    }()

    /// Output = input. Neg and Abs also fold known integers (shape chains negate sizes for Slice ends).
    static let unary: InferenceRule = { ctx in
        if let value = ctx.known(0), let ints = value.ints {
            switch ctx.node.opType {
            case "Neg": ctx.setKnown(0, KnownValue(dims: value.dims, ints: ints.map { DimMath.mul($0, -1) }))
            case "Abs":
                // A symbol is a size, so it is its own absolute value; Int64.min has none and becomes unknown.
                ctx.setKnown(0, KnownValue(dims: value.dims, ints: ints.map { d in
                    guard let v = d.fixedValue else { return d }
                    return v == Int64.min ? .unknown : .fixed(abs(v))
                }))
            default: break
            }
        }
        return [ctx.type(0)]
    }

    static let identity: InferenceRule = { ctx in
        if let value = ctx.known(0) { ctx.setKnown(0, value) }
        return [ctx.type(0)]
    }

    /// Before opset 7, binary ops broadcast the legacy way (B onto A from `axis`, only with broadcast=1, and
    /// PRelu's slope per channel): the output has A's shape, and no check is made.
    static let binary: InferenceRule = { ctx in
        let shape = ctx.opset < 7 ? ctx.shape(0) : try InferenceSupport.broadcastInputs(ctx, 0..<2)
        let op = ctx.node.opType
        if let a = ctx.known(0), let b = ctx.known(1) {
            let folded: KnownValue?
            switch op {
            case "Add": folded = KnownArithmetic.binary(a, b) { DimMath.add($0, $1) }
            case "Sub": folded = KnownArithmetic.binary(a, b) { DimMath.sub($0, $1) }
            case "Mul": folded = KnownArithmetic.binary(a, b) { DimMath.mul($0, $1) }
            case "Div": folded = KnownArithmetic.binary(a, b, KnownArithmetic.divide)
            case "Mod":
                // Integer Mod takes the divisor's sign (Python's %) unless fmod=1 (C's fmod); numbers only.
                let cStyle = ctx.int("fmod", default: 0) != 0
                folded = KnownArithmetic.binary(a, b) { x, y in
                    guard let p = x.fixedValue, let q = y.fixedValue, q != 0, !(p == Int64.min && q == -1) else { return .unknown }
                    let r = p % q
                    return .fixed(!cStyle && r != 0 && (r < 0) != (q < 0) ? r + q : r)
                }
            default: folded = nil
            }
            if let folded { ctx.setKnown(0, folded) }
        }
        return [InferenceSupport.tensor(ctx.dtype(0) ?? ctx.dtype(1), shape)]
    }

    static let comparison: InferenceRule = { ctx in
        let shape = ctx.opset < 7 ? ctx.shape(0) : try InferenceSupport.broadcastInputs(ctx, 0..<2)
        if ctx.node.opType == "Equal", let a = ctx.known(0), let b = ctx.known(1),
           let folded = KnownArithmetic.binary(a, b, { x, y in
               // Equal symbols are equal. A symbol is a size, so it is never a negative number: exporters compare
               // shape entries with -1 this way. Otherwise a symbol against a number is not decidable.
               if x == y, x != .unknown { return .fixed(1) }
               if x.fixedValue != nil, y.fixedValue != nil { return .fixed(0) }
               if case .symbolic = x, let v = y.fixedValue, v < 0 { return .fixed(0) }
               if case .symbolic = y, let v = x.fixedValue, v < 0 { return .fixed(0) }
               return .unknown
           }) {
            ctx.setKnown(0, folded)
        }
        return [InferenceSupport.tensor(.bool, shape)]
    }

    static let variadicRule: InferenceRule = { ctx in
        let shape = try InferenceSupport.broadcastInputs(ctx, 0..<ctx.inputCount)
        let dtype = (0..<ctx.inputCount).lazy.compactMap { ctx.dtype($0) }.first
        if ctx.inputCount == 2, let a = ctx.known(0), let b = ctx.known(1), ctx.node.opType == "Max" || ctx.node.opType == "Min" {
            let isMax = ctx.node.opType == "Max"
            if let folded = KnownArithmetic.binary(a, b, { x, y in
                guard let p = x.fixedValue, let q = y.fixedValue else { return .unknown }
                return .fixed(isMax ? max(p, q) : min(p, q))
            }) { ctx.setKnown(0, folded) }
        }
        return [InferenceSupport.tensor(dtype, shape)]
    }

    static let cast: InferenceRule = { ctx in
        guard let to = ctx.int("to"), let dtype = DType(rawValue: Int32(truncatingIfNeeded: to)), dtype != .undefined else {
            throw InferenceError("Cast needs a valid `to` attribute")
        }
        if let value = ctx.known(0) {
            switch (value.elements, dtype.isFloatingPoint) {
            case (.ints, false): ctx.setKnown(0, value)
            case (.ints(let v), true):
                if let fixed = Shape(v).fixedDims { ctx.setKnown(0, KnownValue(dims: value.dims, floats: fixed.map(Double.init))) }
            case (.floats(let v), false):
                // Cast to an integer truncates toward zero; values out of Int64's range are not folded.
                let ints = v.map { d -> Dim in
                    guard d.isFinite, let i = Int64(exactly: d.rounded(.towardZero)) else { return .unknown }
                    return .fixed(i)
                }
                ctx.setKnown(0, KnownValue(dims: value.dims, ints: ints))
            case (.floats, true): ctx.setKnown(0, value)
            }
        }
        return [InferenceSupport.tensor(dtype, ctx.shape(0))]
    }

    static let whereRule: InferenceRule = { ctx in
        let shape = try InferenceSupport.broadcastInputs(ctx, 0..<3)
        if let c = ctx.known(0)?.fixedInts, let x = ctx.known(1), let y = ctx.known(2), let xs = x.ints, let ys = y.ints,
           let cond = ctx.known(0), x.dims == y.dims, x.dims == cond.dims, c.count == xs.count, c.count == ys.count {
            // Only same-size operands are folded; that is the form shape chains use.
            ctx.setKnown(0, KnownValue(dims: x.dims, ints: zip(c, zip(xs, ys)).map { $0 != 0 ? $1.0 : $1.1 }))
        }
        return [InferenceSupport.tensor(ctx.dtype(1) ?? ctx.dtype(2), shape)]
    }

    static let randomRule: InferenceRule = { ctx in
        let dtype = DType(rawValue: Int32(truncatingIfNeeded: ctx.int("dtype", default: 1))) ?? .float
        return [InferenceSupport.tensor(dtype, ctx.ints("shape").map { Shape(fixed: $0) })]
    }
}

/// Folding of integer arithmetic on known values, with numpy broadcasting of their (fixed) dims.
enum KnownArithmetic {
    static func binary(_ a: KnownValue, _ b: KnownValue, _ op: (Dim, Dim) -> Dim) -> KnownValue? {
        guard let x = a.ints, let y = b.ints,
              let shape = try? InferenceSupport.broadcast([Shape(fixed: a.dims), Shape(fixed: b.dims)]),
              let dims = shape.fixedDims, let count = CheckedSize.elementCount(dims), count <= KnownValue.maximumElements
        else { return nil }
        var result: [Dim] = []
        result.reserveCapacity(count)
        for flat in 0..<count {
            guard let i = index(flat, dims, a.dims), let j = index(flat, dims, b.dims), i < x.count, j < y.count else { return nil }
            result.append(op(x[i], y[j]))
        }
        return KnownValue(dims: dims, ints: result)
    }

    /// The element of a broadcast operand with dims `source` read at flat position `flat` of the result `dims`.
    private static func index(_ flat: Int, _ dims: [Int64], _ source: [Int64]) -> Int? {
        var remaining = flat
        var coordinates = [Int](repeating: 0, count: dims.count)
        for k in dims.indices.reversed() {
            guard let d = Int(exactly: dims[k]), d > 0 else { return nil }
            coordinates[k] = remaining % d
            remaining /= d
        }
        var index = 0
        let offset = dims.count - source.count
        for k in source.indices {
            guard let d = Int(exactly: source[k]) else { return nil }
            let c = d == 1 ? 0 : coordinates[offset + k]
            index = index * d + c
        }
        return index
    }

    /// Integer division as ONNX runtimes do it on fixed numbers (truncation); on symbols only exact division.
    static func divide(_ a: Dim, _ b: Dim) -> Dim {
        if let x = a.fixedValue, let y = b.fixedValue {
            guard y != 0, !(x == Int64.min && y == -1) else { return .unknown }
            return .fixed(x / y)
        }
        return DimMath.exactDiv(a, b)
    }
}
