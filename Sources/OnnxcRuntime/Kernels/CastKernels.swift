import OnnxcCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Cast operators. Conversions follow the ONNX reference (numpy `astype` on x86, as ONNX Runtime does):
/// float→int out of range gives the x86 "integer indefinite" value, int→int wraps, narrowing floats round
/// to nearest even, float8 honours `saturate`, 4-bit targets round and clamp.
enum CastKernels {
    static let table: [String: Kernel] = [
        "Cast": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            // Cast-1 named the type as a string ("FLOAT"); later versions use the TensorProto code.
            let named = context.attributes.string("to", "")
            let coded = context.attributes.int("to").flatMap { DType(rawValue: Int32(truncatingIfNeeded: $0)) }
            guard let to = coded ?? (named.isEmpty ? nil : DType(name: named)), to != .undefined else {
                throw .invalidArgument("Cast needs a valid 'to' attribute")
            }
            let saturate = context.opset < 19 || context.attributes.int("saturate", 1) != 0
            return outputs(try convert(x, to: to, saturate: saturate))
        },
        "CastLike": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let like = try context.tensor(inputs, 1)
            let saturate = context.opset < 19 || context.attributes.int("saturate", 1) != 0
            return outputs(try convert(x, to: like.dtype, saturate: saturate))
        },
    ]

    /// Converts `x` to `to`. Shared with the other element-wise kernels, which compute bfloat16 in Float.
    static func convert(_ x: Tensor, to: DType, saturate: Bool = true) throws(RuntimeError) -> Tensor {
        if x.dtype == to { return x }
        guard x.dtype != .complex64, x.dtype != .complex128, to != .complex64, to != .complex128, to != .undefined else {
            throw .unsupportedType(op: "Cast", dtype: "\(x.dtype.onnxName)→\(to.onnxName)")
        }
        if let direct = try fastPath(x, to: to) { return direct }
        if to == .string { return Tensor(strings: formatStrings(x), shape: x.shape) }
        if x.dtype == .string { return try parseStrings(x, to: to, saturate: saturate) }
        if isIntegerLike(x.dtype) {
            let (values, unsigned64) = integerValues(x)
            return try writeIntegers(values, unsigned64: unsigned64, shape: x.shape, to: to, saturate: saturate)
        }
        return try writeDoubles(floatValues(x), sourceIsDouble: x.dtype == .double, shape: x.shape, to: to, saturate: saturate)
    }

    /// The casts models run in hot paths, converted in one pass without intermediate arrays.
    private static func fastPath(_ x: Tensor, to: DType) throws(RuntimeError) -> Tensor? {
        typealias E = ElementwiseKernels
        switch (x.dtype, to) {
        case (.float, .float16): return try E.map(x, Float.self, Float16.self) { Float16($0) }
        case (.float16, .float): return try E.map(x, Float16.self, Float.self) { Float($0) }
        case (.float, .double): return try E.map(x, Float.self, Double.self) { Double($0) }
        case (.double, .float): return try E.map(x, Double.self, Float.self) { Float($0) }
        case (.int64, .int32): return try E.map(x, Int64.self, Int32.self) { Int32(truncatingIfNeeded: $0) }
        case (.int32, .int64): return try E.map(x, Int32.self, Int64.self) { Int64($0) }
        case (.int64, .float): return try E.map(x, Int64.self, Float.self) { Float($0) }
        case (.int32, .float): return try E.map(x, Int32.self, Float.self) { Float($0) }
        case (.float, .int64): return try E.map(x, Float.self, Int64.self) { x86Int64(Double($0)) }
        case (.float, .int32): return try E.map(x, Float.self, Int32.self) { x86Int32(Double($0)) }
        case (.bool, .float): return try E.map(x, Bool.self, Float.self) { $0 ? 1 : 0 }
        case (.float, .bool): return try E.map(x, Float.self, Bool.self) { $0 != 0 }
        case (.uint8, .float): return try E.map(x, UInt8.self, Float.self) { Float($0) }
        default: return nil
        }
    }

    // MARK: Reading

    private static func isIntegerLike(_ dtype: DType) -> Bool {
        switch dtype {
        case .int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64, .bool, .int4, .uint4: true
        default: false
        }
    }

    /// Integer sources widened to Int64 (uint64 kept as its bit pattern, flagged) so int→int wraps exactly.
    private static func integerValues(_ x: Tensor) -> ([Int64], Bool) {
        switch x.dtype {
        case .int8: return (x.withValues(Int8.self) { $0.map { Int64($0) } }, false)
        case .int16: return (x.withValues(Int16.self) { $0.map { Int64($0) } }, false)
        case .int32: return (x.withValues(Int32.self) { $0.map { Int64($0) } }, false)
        case .int64: return (x.array(Int64.self), false)
        case .uint8: return (x.withValues(UInt8.self) { $0.map { Int64($0) } }, false)
        case .uint16: return (x.withValues(UInt16.self) { $0.map { Int64($0) } }, false)
        case .uint32: return (x.withValues(UInt32.self) { $0.map { Int64($0) } }, false)
        case .uint64: return (x.withValues(UInt64.self) { $0.map { Int64(bitPattern: $0) } }, true)
        case .bool: return (x.withBytes { raw in (0..<x.count).map { raw[$0] != 0 ? 1 : 0 } }, false)
        case .int4, .uint4:
            return (x.withBytes { raw in
                (0..<x.count).map { i in
                    let nibble = Int64(i % 2 == 0 ? raw[i / 2] & 0x0F : raw[i / 2] >> 4)
                    return x.dtype == .int4 && nibble >= 8 ? nibble - 16 : nibble
                }
            }, false)
        default: return ([], false)
        }
    }

    /// Floating sources widened to Double, which holds every float type exactly.
    private static func floatValues(_ x: Tensor) -> [Double] {
        switch x.dtype {
        case .float: return x.withValues(Float.self) { $0.map { Double($0) } }
        case .double: return x.array(Double.self)
        case .float16: return x.withValues(Float16.self) { $0.map { Double(Float($0)) } }
        default: return x.doubles()
        }
    }

    // MARK: Writing

    private static func writeIntegers(_ v: [Int64], unsigned64: Bool, shape: [Int], to: DType, saturate: Bool) throws(RuntimeError) -> Tensor {
        func asDouble(_ i: Int64) -> Double { unsigned64 ? Double(UInt64(bitPattern: i)) : Double(i) }
        func asFloat(_ i: Int64) -> Float { unsigned64 ? Float(UInt64(bitPattern: i)) : Float(i) }
        switch to {
        case .int8: return try Tensor(v.map { Int8(truncatingIfNeeded: $0) }, shape: shape)
        case .int16: return try Tensor(v.map { Int16(truncatingIfNeeded: $0) }, shape: shape)
        case .int32: return try Tensor(v.map { Int32(truncatingIfNeeded: $0) }, shape: shape)
        case .int64: return try Tensor(v, shape: shape)
        case .uint8: return try Tensor(v.map { UInt8(truncatingIfNeeded: $0) }, shape: shape)
        case .uint16: return try Tensor(v.map { UInt16(truncatingIfNeeded: $0) }, shape: shape)
        case .uint32: return try Tensor(v.map { UInt32(truncatingIfNeeded: $0) }, shape: shape)
        case .uint64: return try Tensor(v.map { UInt64(bitPattern: $0) }, shape: shape)
        case .bool: return try Tensor(v.map { $0 != 0 }, shape: shape)
        case .float: return try Tensor(v.map(asFloat), shape: shape)
        case .double: return try Tensor(v.map(asDouble), shape: shape)
        case .float16: return try Tensor(v.map { unsigned64 ? Float16(UInt64(bitPattern: $0)) : Float16($0) }, shape: shape)
        default: return try writeNarrow(v.map(asFloat), shape: shape, to: to, saturate: saturate)
        }
    }

    private static func writeDoubles(_ v: [Double], sourceIsDouble: Bool, shape: [Int], to: DType, saturate: Bool) throws(RuntimeError) -> Tensor {
        switch to {
        case .float: return try Tensor(v.map { Float($0) }, shape: shape)
        case .double: return try Tensor(v, shape: shape)
        case .float16: return try Tensor(v.map { Float16($0) }, shape: shape)
        case .bool: return try Tensor(v.map { $0 != 0 }, shape: shape)
        case .int32: return try Tensor(v.map(x86Int32), shape: shape)
        case .int64: return try Tensor(v.map(x86Int64), shape: shape)
        case .int8: return try Tensor(v.map { Int8(truncatingIfNeeded: x86Int32($0)) }, shape: shape)
        case .int16: return try Tensor(v.map { Int16(truncatingIfNeeded: x86Int32($0)) }, shape: shape)
        case .uint8: return try Tensor(v.map { UInt8(truncatingIfNeeded: x86Int32($0)) }, shape: shape)
        case .uint16: return try Tensor(v.map { UInt16(truncatingIfNeeded: x86Int32($0)) }, shape: shape)
        case .uint32: return try Tensor(v.map(x86UInt32), shape: shape)
        case .uint64: return try Tensor(v.map(x86UInt64), shape: shape)
        default:
            // The reference narrows through float32 first, so double sources round twice, as there.
            return try writeNarrow(v.map { Float($0) }, shape: shape, to: to, saturate: saturate)
        }
    }

    /// bfloat16, float8 and 4-bit targets, from float32 values.
    private static func writeNarrow(_ v: [Float], shape: [Int], to: DType, saturate: Bool) throws(RuntimeError) -> Tensor {
        guard [.bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .int4, .uint4].contains(to) else {
            throw .unsupportedType(op: "Cast", dtype: to.onnxName)
        }
        let out = try Tensor(zeros: to, shape: shape)
        out.withMutableBytes { raw in
            switch to {
            case .bfloat16:
                for (i, x) in v.enumerated() { raw.storeBytes(of: bfloat16Bits(x), toByteOffset: 2 * i, as: UInt16.self) }
            case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz:
                let format = Float8Format(to)
                for (i, x) in v.enumerated() { raw[i] = format.encode(x, saturate: saturate) }
            case .int4, .uint4:
                let (low, high): (Float, Float) = to == .int4 ? (-8, 7) : (0, 15)
                for (i, x) in v.enumerated() {
                    let clamped = x.isNaN ? 0 : Swift.min(Swift.max(x, low), high).rounded(.toNearestOrEven)
                    let nibble = UInt8(truncatingIfNeeded: Int(clamped)) & 0x0F
                    raw[i / 2] |= i % 2 == 0 ? nibble : nibble << 4
                }
            default: break
            }
        }
        return out
    }

    /// x86 `cvttsd2si` (what numpy's C casts compile to): NaN and out-of-range give the minimum value.
    private static func x86Int32(_ d: Double) -> Int32 {
        d > -2_147_483_649.0 && d < 2_147_483_648.0 ? Int32(d.rounded(.towardZero)) : Int32.min
    }

    private static func x86Int64(_ d: Double) -> Int64 {
        d >= -0x1p63 && d < 0x1p63 ? Int64(d.rounded(.towardZero)) : Int64.min
    }

    /// numpy's float→uint32 goes through int64: wraps in range; NaN and large negatives give 2^31, large positives 0.
    private static func x86UInt32(_ d: Double) -> UInt32 {
        if d >= -0x1p63 && d < 0x1p63 { return UInt32(truncatingIfNeeded: Int64(d.rounded(.towardZero))) }
        return d >= 0x1p63 ? 0 : 0x8000_0000
    }

    private static func x86UInt64(_ d: Double) -> UInt64 {
        if d.isNaN { return 1 << 63 }
        if d < 0x1p63 { return UInt64(bitPattern: x86Int64(d)) }
        return d < 0x1p64 ? UInt64(d) : 0
    }

    // MARK: Narrow floats

    /// float32 → bfloat16 bits, rounding to nearest even (NaN stays a quiet NaN).
    static func bfloat16Bits(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }

    /// A bfloat16 tensor widened to float32 (exact), so kernels can compute bfloat16 in Float.
    static func widenBFloat16(_ x: Tensor) throws(RuntimeError) -> Tensor { try widenedToFloat(x) ?? x }

    /// A float32 tensor rounded to bfloat16.
    static func narrowBFloat16(_ x: Tensor) throws(RuntimeError) -> Tensor { try narrowed(x, to: .bfloat16) }

    /// One of the four float8 encodings, with round-to-nearest-even encoding per the Cast spec tables.
    private struct Float8Format {
        let exponentBits: Int, bias: Int, fnuz: Bool, hasInfinity: Bool
        /// Bits of the largest finite magnitude.
        let maxBits: UInt8

        init(_ dtype: DType) {
            switch dtype {
            case .float8e4m3fn: (exponentBits, bias, fnuz, hasInfinity, maxBits) = (4, 7, false, false, 0x7E)
            case .float8e4m3fnuz: (exponentBits, bias, fnuz, hasInfinity, maxBits) = (4, 8, true, false, 0x7F)
            case .float8e5m2: (exponentBits, bias, fnuz, hasInfinity, maxBits) = (5, 15, false, true, 0x7B)
            default: (exponentBits, bias, fnuz, hasInfinity, maxBits) = (5, 16, true, false, 0x7F)
            }
        }

        var mantissaBits: Int { 7 - exponentBits }
        var maxValue: Float { NarrowFloat.float8(maxBits, exponentBits: exponentBits, bias: bias, fnuz: fnuz, hasInfinity: hasInfinity) }
        var nanBits: UInt8 { fnuz ? 0x80 : 0x7F }

        func encode(_ x: Float, saturate: Bool) -> UInt8 {
            let sign: UInt8 = x.sign == .minus ? 0x80 : 0
            if x.isNaN { return fnuz ? 0x80 : nanBits | sign }
            /// Out of range (including infinity): the largest finite value, or NaN/infinity without saturation.
            func overflow() -> UInt8 {
                if saturate { return maxBits | sign }
                return hasInfinity ? 0x7C | sign : (fnuz ? 0x80 : nanBits | sign)
            }
            if x.isInfinite { return overflow() }
            let magnitude = x.magnitude
            let minNormalExponent = 1 - bias
            let exponent = Swift.max(Int(magnitude.exponent), minNormalExponent)
            let quantum = Float(sign: .plus, exponent: exponent - mantissaBits, significand: 1)
            let rounded = (magnitude / quantum).rounded(.toNearestOrEven) * quantum
            if rounded > maxValue { return overflow() }
            if rounded == 0 { return fnuz ? 0 : sign }
            let bits: UInt8
            if rounded < Float(sign: .plus, exponent: minNormalExponent, significand: 1) {
                bits = UInt8(truncatingIfNeeded: Int(rounded / quantum))
            } else {
                let e = Int(rounded.exponent)
                let mantissa = Int((rounded / Float(sign: .plus, exponent: e, significand: 1) - 1) * Float(1 << mantissaBits))
                bits = UInt8(truncatingIfNeeded: ((e + bias) << mantissaBits) | mantissa)
            }
            return bits | sign
        }
    }

    // MARK: Strings

    /// numpy `astype(str)`: shortest round-trip digits; scientific outside a per-type positional range.
    private static func formatStrings(_ x: Tensor) -> [String] {
        switch x.dtype {
        case .string: return x.strings ?? []
        case .bool: return x.withBytes { raw in (0..<x.count).map { raw[$0] != 0 ? "True" : "False" } }
        case .float: return x.withValues(Float.self) { $0.map { numpyFormat($0.description, Double($0), limit: 1e6) } }
        case .double: return x.withValues(Double.self) { $0.map { numpyFormat($0.description, $0, limit: 1e16) } }
        case .float16: return x.withValues(Float16.self) { $0.map { numpyFormat(shortestText($0), Double(Float($0)), limit: 1e3) } }
        case .uint64: return x.withValues(UInt64.self) { $0.map { String($0) } }
        default:
            if isIntegerLike(x.dtype) { return integerValues(x).0.map { String($0) } }
            return x.doubles().map { numpyFormat(Float($0).description, $0, limit: 1e6) }
        }
    }

    /// The shortest decimal that reads back as `x` ("d.ddde±N"): Swift's Float16 description prints more digits
    /// than needed, while numpy prints the shortest round-trip form.
    private static func shortestText(_ x: Float16) -> String {
        guard x.isFinite, x != 0 else { return x.description }
        let magnitude = Double(Float(x.magnitude))
        var exponent = Int(log10(magnitude).rounded(.down))
        if magnitude / pow(10, Double(exponent)) >= 10 { exponent += 1 }
        if magnitude / pow(10, Double(exponent)) < 1 { exponent -= 1 }
        for precision in 1...6 {
            let scale = pow(10, Double(exponent - precision + 1))
            // At a power of two the round-trip interval is lopsided, so the nearest p-digit decimal may miss
            // while its other neighbour still reads back: try both, nearest first.
            let exact = magnitude / scale
            let near = exact.rounded(.toNearestOrEven)
            let far = near > exact ? near - 1 : near + 1
            guard let n = [near, far].first(where: { Float16($0 * scale) == x.magnitude }) else { continue }
            let digits = String(Int(n))
            // Rounding up can carry into a new leading digit (9.99 → 10.0).
            let shift = digits.count - precision
            let mantissa = digits.count > 1 ? "\(digits.prefix(1)).\(digits.dropFirst())" : digits
            return (x < 0 ? "-" : "") + mantissa + "e\(exponent + shift)"
        }
        return x.description
    }

    /// Re-lays Swift's shortest digits (`description`) the way numpy prints them.
    private static func numpyFormat(_ swift: String, _ value: Double, limit: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        // Split Swift's text into sign, significant digits and the decimal exponent of the first digit.
        var text = Substring(swift)
        let negative = text.hasPrefix("-")
        if negative { text = text.dropFirst() }
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(text[text.index(after: e)...]) ?? 0
            text = text[..<e]
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        let integerPart = parts.first.map(String.init) ?? ""
        let fractionPart = parts.count > 1 ? String(parts[1]) : ""
        var digits = Array(integerPart + fractionPart)
        exponent += integerPart.count - 1
        while let first = digits.first, first == "0", digits.count > 1 { digits.removeFirst(); exponent -= 1 }
        while let last = digits.last, last == "0", digits.count > 1 { digits.removeLast() }
        let sign = negative ? "-" : ""
        if digits == ["0"] { return sign + "0.0" }
        let magnitude = value.magnitude
        if magnitude >= 1e-4 && magnitude < limit {
            if exponent < 0 {
                return sign + "0." + String(repeating: "0", count: -exponent - 1) + String(digits)
            }
            let whole = digits.count > exponent + 1 ? String(digits[0...exponent])
                : String(digits) + String(repeating: "0", count: exponent + 1 - digits.count)
            let fraction = digits.count > exponent + 1 ? String(digits[(exponent + 1)...]) : "0"
            return sign + whole + "." + fraction
        }
        let mantissa = digits.count > 1 ? "\(digits[0])." + String(digits[1...]) : String(digits)
        let exponentText = String(exponent.magnitude)
        return sign + mantissa + "e" + (exponent < 0 ? "-" : "+") + (exponentText.count < 2 ? "0" : "") + exponentText
    }

    /// Numbers from text: decimal and scientific forms, and case-insensitive INF/+INF/-INF/NaN (and "infinity").
    private static func parseDouble(_ text: String) throws(RuntimeError) -> Double {
        let trimmed = text.trimmingWhitespace()
        var body = Substring(trimmed)
        var negative = false
        if body.hasPrefix("+") || body.hasPrefix("-") { negative = body.hasPrefix("-"); body = body.dropFirst() }
        switch body.lowercased() {
        case "inf", "infinity": return negative ? -.infinity : .infinity
        case "nan": return .nan
        default: break
        }
        guard let value = Double(trimmed) else { throw .invalidArgument("Cast: cannot convert string \"\(text)\" to a number") }
        return value
    }

    private static func parseStrings(_ x: Tensor, to: DType, saturate: Bool) throws(RuntimeError) -> Tensor {
        let strings = x.strings ?? []
        if to == .bool {
            // numpy's str→bool is "non-empty"; ONNX Runtime parses numbers. Accept both spellings of truth.
            var values: [Bool] = []
            values.reserveCapacity(strings.count)
            for s in strings {
                let t = s.trimmingWhitespace().lowercased()
                if t == "true" { values.append(true) } else if t == "false" || t.isEmpty { values.append(false) } else {
                    values.append(try parseDouble(s) != 0)
                }
            }
            return try Tensor(values, shape: x.shape)
        }
        if isIntegerLike(to) {
            // Integers parse exactly when they are integers; anything else goes through the float rules.
            var integers: [Int64] = []
            var exact = true
            for s in strings {
                if let i = Int64(s.trimmingWhitespace()) { integers.append(i) } else { exact = false; break }
            }
            if exact { return try writeIntegers(integers, unsigned64: false, shape: x.shape, to: to, saturate: saturate) }
            if to == .uint64, strings.allSatisfy({ UInt64($0.trimmingWhitespace()) != nil }) {
                let values = strings.map { Int64(bitPattern: UInt64($0.trimmingWhitespace()) ?? 0) }
                return try writeIntegers(values, unsigned64: true, shape: x.shape, to: to, saturate: saturate)
            }
        }
        if to == .float {
            // Parsed straight to Float: going through Double could round twice.
            var floats: [Float] = []
            floats.reserveCapacity(strings.count)
            for s in strings {
                let trimmed = s.trimmingWhitespace()
                if let value = Float(trimmed) { floats.append(value) } else { floats.append(Float(try parseDouble(trimmed))) }
            }
            return try Tensor(floats, shape: x.shape)
        }
        var doubles: [Double] = []
        doubles.reserveCapacity(strings.count)
        for s in strings { doubles.append(try parseDouble(s)) }
        // numpy parses to the target's own precision; parsing to Double then rounding differs only at ties.
        return try writeDoubles(doubles, sourceIsDouble: true, shape: x.shape, to: to, saturate: saturate)
    }
}
