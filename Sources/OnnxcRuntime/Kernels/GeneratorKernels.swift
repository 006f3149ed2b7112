import OnnxcCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Generator operators: constants, ranges, windows and random tensors (plus Dropout, which draws from the
/// same generator). Seeded random ops reproduce the ONNX reference implementation, which uses NumPy's legacy
/// `RandomState(seed)` (MT19937): with the same seed they give the same values.
enum GeneratorKernels {
    static let table: [String: Kernel] = [
        "Constant": constant,
        "ConstantOfShape": constantOfShape,
        "Range": range,
        "EyeLike": eyeLike,
        "RandomUniform": randomUniform,
        "RandomUniformLike": randomUniform,
        "RandomNormal": randomNormal,
        "RandomNormalLike": randomNormal,
        "Bernoulli": bernoulli,
        "Multinomial": multinomial,
        "HannWindow": window,
        "HammingWindow": window,
        "BlackmanWindow": window,
        "Dropout": dropout,
    ]

    static func constant(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let attributes = context.attributes.values
        for (name, value) in attributes {
            switch (name, value) {
            case ("value", .tensor(let t)), ("sparse_value", .tensor(let t)): return outputs(t)
            case ("value_float", .float(let v)): return outputs(Tensor.scalar(v))
            case ("value_floats", .floats(let v)): return outputs(try Tensor(v, shape: [v.count]))
            case ("value_int", .int(let v)): return outputs(Tensor.scalar(v))
            case ("value_ints", .ints(let v)): return outputs(try Tensor(v, shape: [v.count]))
            case ("value_string", .string(let v)): return outputs(Tensor(strings: [v], shape: []))
            case ("value_strings", .strings(let v)): return outputs(Tensor(strings: v, shape: [v.count]))
            default: continue
            }
        }
        throw .invalidArgument("Constant has no value attribute")
    }

    static func constantOfShape(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let dims = try context.tensor(inputs, 0).int64s()
        guard dims.allSatisfy({ $0 >= 0 && $0 <= Int64(Int32.max) }) else { throw .invalidShape("ConstantOfShape: invalid shape \(dims)") }
        let value: Tensor
        if let given = context.attributes.tensor("value") { value = given } else { value = try Tensor(zeros: .float, shape: [1]) }
        guard value.count == 1 else { throw .invalidArgument("ConstantOfShape: value must have one element, has \(value.count)") }
        return outputs(try ShapeKernels.build(value.dtype, dims.map { Int($0) }, from: [value]) { b throws(RuntimeError) in
            try b.fill(from: 0, at: 0)
        })
    }

    static func range(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let start = try context.tensor(inputs, 0), limit = try context.tensor(inputs, 1), delta = try context.tensor(inputs, 2)
        guard start.count == 1, limit.count == 1, delta.count == 1 else { throw .invalidArgument("Range: start, limit and delta must be scalars") }
        guard start.dtype == limit.dtype, start.dtype == delta.dtype else { throw .invalidArgument("Range: start, limit and delta types differ") }
        if start.dtype.isFloatingPoint { return outputs(try dispatchFloat(start.dtype, op: "Range", FloatRange(start: start, limit: limit, delta: delta))) }
        return outputs(try dispatchInteger(start.dtype, op: "Range", IntegerRange(start: start, limit: limit, delta: delta)))
    }

    /// start + i·delta for i < ceil((limit − start) / delta).
    struct FloatRange: FloatVisitor {
        let start: Tensor, limit: Tensor, delta: Tensor
        func visit<T: FloatElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            let s = start.withValues(T.self) { $0[0] }, l = limit.withValues(T.self) { $0[0] }, d = delta.withValues(T.self) { $0[0] }
            guard d != 0, d.isFinite, s.isFinite, l.isFinite else { throw .invalidArgument("Range: start \(s), limit \(l), delta \(d) give no finite range") }
            let count = max(0, ((l.asDouble - s.asDouble) / d.asDouble).rounded(.up))
            guard count < Double(Int32.max) else { throw .invalidArgument("Range: \(count) elements is too many") }
            let out = try Tensor(zeros: T.dtype, shape: [Int(count)])
            out.withMutableValues(T.self) { p in for i in 0..<p.count { p[i] = s + T(i) * d } }
            return out
        }
    }

    /// Integer ranges in exact arithmetic (wrapping like NumPy when values leave the type).
    struct IntegerRange: IntegerVisitor {
        let start: Tensor, limit: Tensor, delta: Tensor
        func visit<T: IntegerElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            let s = start.withValues(T.self) { $0[0] }, l = limit.withValues(T.self) { $0[0] }, d = delta.withValues(T.self) { $0[0] }
            guard d != 0 else { throw .invalidArgument("Range: delta is 0") }
            guard let s64 = Int64(exactly: s), let l64 = Int64(exactly: l), let d64 = Int64(exactly: d) else {
                throw .unsupportedType(op: "Range", dtype: T.dtype.onnxName)
            }
            let (span, overflow) = l64.subtractingReportingOverflow(s64)
            guard !overflow else { throw .invalidArgument("Range: limit − start overflows") }
            var count: Int64 = 0
            if d64 > 0 && span > 0 { count = (span - 1) / d64 + 1 }
            if d64 < 0 && span < 0 { count = (span + 1) / d64 + 1 }
            guard count < Int64(Int32.max) else { throw .invalidArgument("Range: \(count) elements is too many") }
            let out = try Tensor(zeros: T.dtype, shape: [Int(count)])
            out.withMutableValues(T.self) { p in
                var v = s
                for i in 0..<p.count { p[i] = v; v = v &+ d }
            }
            return out
        }
    }

    static func eyeLike(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let input = try context.tensor(inputs, 0)
        guard input.rank == 2 else { throw .invalidShape("EyeLike needs a 2-D input, got \(input.shape)") }
        let dtype = try outputType(context.attributes.int("dtype"), fallback: input.dtype, op: "EyeLike")
        let (rows, cols) = (input.shape[0], input.shape[1])
        // Offsets beyond the matrix select nothing; clamping keeps i + k in range.
        let k = max(min(context.attributes.int("k", 0), Int64(cols)), -Int64(rows))
        var positions: [Int] = []
        for i in 0..<rows {
            let j = Int64(i) + k
            if j >= 0 && j < Int64(cols) { positions.append(i * cols + Int(j)) }
        }
        let one = try ShapeKernels.scalar(1, as: dtype, op: "EyeLike")
        return outputs(try ShapeKernels.build(dtype, input.shape, from: [one]) { b throws(RuntimeError) in
            try b.copy([positions.count], from: 0, at: 0, [.stride(0)], to: 0, [.table(positions)])
        })
    }

    /// A `dtype` attribute as a DType, or `fallback` when absent.
    static func outputType(_ code: Int64?, fallback: DType, op: String) throws(RuntimeError) -> DType {
        guard let code else { return fallback }
        guard let raw = Int32(exactly: code), let dtype = DType(rawValue: raw), dtype != .undefined else {
            throw .invalidArgument("\(op): unknown dtype \(code)")
        }
        return dtype
    }

    /// Values computed in Double stored as `dtype` (every arithmetic type, bool and bfloat16).
    static func tensor(_ values: [Double], shape: [Int], dtype: DType, op: String) throws(RuntimeError) -> Tensor {
        struct Store: ArithmeticVisitor {
            let values: [Double], shape: [Int]
            func visit<T: ArithmeticElement>(_: T.Type) throws(RuntimeError) -> Tensor { try Tensor(values.map { T.from($0) }, shape: shape) }
        }
        switch dtype {
        case .bool: return try Tensor(values.map { $0 != 0 }, shape: shape)
        case .bfloat16:
            let out = try Tensor(zeros: .bfloat16, shape: shape)
            out.withMutableBytes { raw in
                for (i, v) in values.enumerated() {
                    let bits = Float(v).bitPattern
                    let rounded = v.isNaN ? 0x7FC0 : UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
                    raw.storeBytes(of: rounded, toByteOffset: 2 * i, as: UInt16.self)
                }
            }
            return out
        default: return try dispatchArithmetic(dtype, op: op, Store(values: values, shape: shape))
        }
    }

    // MARK: - Windows

    static func window(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let sizes = try context.tensor(inputs, 0).int64s()
        guard sizes.count == 1, let size = sizes.first, size >= 0, size <= Int64(Int32.max) else {
            throw .invalidArgument("\(context.node.opType): size must be one non-negative integer, got \(sizes)")
        }
        let dtype = try outputType(context.attributes.int("output_datatype", 1), fallback: .float, op: context.node.opType)
        let periodic = context.attributes.int("periodic", 1) != 0
        let n = Int(size)
        // A one-point symmetric window has N − 1 = 0; it is [1], as in PyTorch (the formula would give NaN).
        let period = Double(periodic ? n : n - 1)
        let values: [Double] = (0..<n).map { i in
            guard period > 0 else { return 1 }
            let x = 2 * Double.pi * Double(i) / period
            switch context.node.opType {
            case "HannWindow": return 0.5 - 0.5 * cos(x)
            case "HammingWindow": return 25.0 / 46.0 - (21.0 / 46.0) * cos(x)
            default: return 0.42 - 0.5 * cos(x) + 0.08 * cos(2 * x)
            }
        }
        return outputs(try tensor(values, shape: [n], dtype: dtype, op: context.node.opType))
    }

    // MARK: - Random

    /// Shape and element type from the attributes (RandomUniform/RandomNormal) or from input 0 (the *Like ops).
    static func randomTarget(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> ([Int], DType) {
        if context.node.opType.hasSuffix("Like") {
            let input = try context.tensor(inputs, 0)
            return (input.shape, try outputType(context.attributes.int("dtype"), fallback: input.dtype, op: context.node.opType))
        }
        guard let dims = context.attributes.ints("shape"), dims.allSatisfy({ $0 >= 0 && $0 <= Int64(Int32.max) }) else {
            throw .invalidArgument("\(context.node.opType) needs a valid shape attribute")
        }
        return (dims.map { Int($0) }, try outputType(context.attributes.int("dtype", 1), fallback: .float, op: context.node.opType))
    }

    static func generator(_ context: KernelContext) -> MersenneTwister {
        if case .float(let seed)? = context.attributes.values["seed"], seed.isFinite {
            return MersenneTwister(seed: UInt32(truncatingIfNeeded: Int64(seed)))
        }
        if case .int(let seed)? = context.attributes.values["seed"] {
            return MersenneTwister(seed: UInt32(truncatingIfNeeded: seed))
        }
        var system = SystemRandomNumberGenerator()
        return MersenneTwister(seed: UInt32.random(in: .min ... .max, using: &system))
    }

    static func randomUniform(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let (shape, dtype) = try randomTarget(inputs, context)
        guard dtype.isFloatingPoint else { throw .unsupportedType(op: context.node.opType, dtype: dtype.onnxName) }
        let low = Double(context.attributes.float("low", 0)), high = Double(context.attributes.float("high", 1))
        var rng = generator(context)
        let count = try ShapeKernels.checkedCount(shape, op: context.node.opType)
        let values = (0..<count).map { _ in low + (high - low) * rng.nextDouble() }
        return outputs(try tensor(values, shape: shape, dtype: dtype, op: context.node.opType))
    }

    static func randomNormal(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let (shape, dtype) = try randomTarget(inputs, context)
        guard dtype.isFloatingPoint else { throw .unsupportedType(op: context.node.opType, dtype: dtype.onnxName) }
        let mean = Double(context.attributes.float("mean", 0)), scale = Double(context.attributes.float("scale", 1))
        var rng = generator(context)
        let count = try ShapeKernels.checkedCount(shape, op: context.node.opType)
        let values = (0..<count).map { _ in mean + scale * rng.nextGaussian() }
        return outputs(try tensor(values, shape: shape, dtype: dtype, op: context.node.opType))
    }

    static func bernoulli(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let input = try context.tensor(inputs, 0)
        guard input.dtype.isFloatingPoint else { throw .unsupportedType(op: "Bernoulli", dtype: input.dtype.onnxName) }
        let dtype = try outputType(context.attributes.int("dtype"), fallback: input.dtype, op: "Bernoulli")
        var rng = generator(context)
        var values: [Double] = []
        values.reserveCapacity(input.count)
        for p in input.doubles() {
            guard p >= 0 && p <= 1 else { throw .invalidArgument("Bernoulli: probability \(p) is outside [0, 1]") }
            values.append(rng.nextBernoulli(p))
        }
        return outputs(try tensor(values, shape: input.shape, dtype: dtype, op: "Bernoulli"))
    }

    static func multinomial(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let input = try context.tensor(inputs, 0)
        guard input.dtype.isFloatingPoint else { throw .unsupportedType(op: "Multinomial", dtype: input.dtype.onnxName) }
        guard input.rank == 2 else { throw .invalidShape("Multinomial needs [batch, classes] logits, got \(input.shape)") }
        let samples = context.attributes.int("sample_size", 1)
        guard samples >= 0 && samples <= Int64(Int32.max) else { throw .invalidArgument("Multinomial: invalid sample_size \(samples)") }
        let dtype = try outputType(context.attributes.int("dtype", 6), fallback: .int32, op: "Multinomial")
        guard dtype == .int32 || dtype == .int64 else { throw .unsupportedType(op: "Multinomial", dtype: dtype.onnxName) }
        let (batch, classes) = (input.shape[0], input.shape[1])
        guard classes > 0 || batch == 0 || samples == 0 else { throw .invalidShape("Multinomial needs at least one class") }
        let logits = input.doubles()
        var rng = generator(context)
        var values: [Double] = []
        values.reserveCapacity(batch * Int(samples))
        var cumulative = [Double](repeating: 0, count: classes)
        for b in 0..<batch {
            let row = logits[(b * classes)..<((b + 1) * classes)]
            let top = row.max() ?? 0
            var total = 0.0
            for (j, x) in row.enumerated() { total += exp(x - top); cumulative[j] = total }
            for _ in 0..<Int(samples) {
                let u = rng.nextDouble() * total
                values.append(Double(cumulative.firstIndex { $0 > u } ?? classes - 1))
            }
        }
        return outputs(try tensor(values, shape: [batch, Int(samples)], dtype: dtype, op: "Multinomial"))
    }

    // MARK: - Dropout

    /// Identity at inference (the mask is all true); in training mode (opset 12+ `training_mode` input) drops
    /// elements with probability `ratio` and scales the rest by 1 / (1 − ratio), exactly as the reference does.
    static func dropout(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let data = try context.tensor(inputs, 0)
        let wantsMask = context.node.outputs.count > 1 && !context.node.outputs[1].isEmpty
        var ratio = Double(context.attributes.float("ratio", 0.5))
        var training = false
        if context.opset >= 12 {
            if let r = try context.optionalTensor(inputs, 1) {
                guard r.count == 1, let value = r.doubles().first else { throw .invalidArgument("Dropout: ratio must be a scalar") }
                ratio = value
            }
            if let t = try context.optionalTensor(inputs, 2) {
                guard t.count == 1 else { throw .invalidArgument("Dropout: training_mode must be a scalar") }
                training = t.doubles().first != 0
            }
        }
        guard training && ratio != 0 else {
            guard wantsMask else { return outputs(data) }
            let maskType: DType = context.opset >= 10 ? .bool : data.dtype
            let one = try ShapeKernels.scalar(1, as: maskType, op: "Dropout")
            let mask = try ShapeKernels.build(maskType, data.shape, from: [one]) { b throws(RuntimeError) in try b.fill(from: 0, at: 0) }
            return outputs(data, mask)
        }
        guard ratio > 0 && ratio < 1 else { throw .invalidArgument("Dropout: ratio \(ratio) is outside [0, 1)") }
        var rng = generator(context)
        let keep = (0..<data.count).map { _ in rng.nextDouble() >= ratio }
        let y = try dispatchFloat(data.dtype, op: "Dropout", DropoutApply(data: data, keep: keep, scale: 1 / (1 - ratio)))
        return wantsMask ? outputs(y, try Tensor(keep, shape: data.shape)) : outputs(y)
    }

    struct DropoutApply: FloatVisitor {
        let data: Tensor, keep: [Bool], scale: Double
        func visit<T: FloatElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            let out = try Tensor(zeros: T.dtype, shape: data.shape)
            let s = T.from(scale)
            data.withValues(T.self) { x in
                out.withMutableValues(T.self) { y in for i in 0..<y.count { y[i] = keep[i] ? x[i] * s : 0 } }
            }
            return out
        }
    }

    /// MT19937 with NumPy's legacy `RandomState` seeding and derived distributions, so seeded ops match the
    /// ONNX reference implementation bit for bit.
    struct MersenneTwister {
        private var state = [UInt32](repeating: 0, count: 624)
        private var index = 624
        private var spareGaussian: Double?
    
        init(seed: UInt32) {
            state[0] = seed
            for i in 1..<624 { state[i] = 1_812_433_253 &* (state[i - 1] ^ (state[i - 1] >> 30)) &+ UInt32(i) }
        }
    
        mutating func next() -> UInt32 {
            if index >= 624 { twist() }
            var y = state[index]
            index += 1
            y ^= y >> 11
            y ^= (y << 7) & 0x9D2C_5680
            y ^= (y << 15) & 0xEFC6_0000
            y ^= y >> 18
            return y
        }
    
        private mutating func twist() {
            for i in 0..<624 {
                let y = (state[i] & 0x8000_0000) | (state[(i + 1) % 624] & 0x7FFF_FFFF)
                var v = state[(i + 397) % 624] ^ (y >> 1)
                if y & 1 != 0 { v ^= 0x9908_B0DF }
                state[i] = v
            }
            index = 0
        }
    
        /// A double in [0, 1) with 53 random bits (NumPy's `random_sample`).
        mutating func nextDouble() -> Double {
            let a = Double(next() >> 5), b = Double(next() >> 6)
            return (a * 67_108_864 + b) / 9_007_199_254_740_992
        }
    
        /// NumPy's legacy polar Box–Muller, which yields values in pairs.
        mutating func nextGaussian() -> Double {
            if let spare = spareGaussian {
                spareGaussian = nil
                return spare
            }
            var x1 = 0.0, x2 = 0.0, r2 = 0.0
            repeat {
                x1 = 2 * nextDouble() - 1
                x2 = 2 * nextDouble() - 1
                r2 = x1 * x1 + x2 * x2
            } while r2 >= 1 || r2 == 0
            let f = (-2 * log(r2) / r2).squareRoot()
            spareGaussian = f * x1
            return f * x2
        }
    
        /// NumPy's legacy `binomial(1, p)` (inversion on the smaller of p and 1 − p).
        mutating func nextBernoulli(_ p: Double) -> Double {
            if p <= 0 { return 0 }
            if p >= 1 { return 1 }
            let small = min(p, 1 - p)
            let threshold = exp(log(1 - small))
            let hit: Double = nextDouble() > threshold ? 1 : 0
            return p <= 0.5 ? hit : 1 - hit
        }
    }
}
