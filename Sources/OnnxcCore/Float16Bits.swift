/// Widening conversions from the narrow float encodings ONNX stores as bits, for printing and comparisons.
/// The conversions are exact: every narrow value is representable in `Float`.
public enum NarrowFloat {
    public static func float16(_ bits: UInt16) -> Float {
        let sign: UInt32 = UInt32(bits >> 15) << 31
        let exponent = Int((bits >> 10) & 0x1F)
        let mantissa = UInt32(bits & 0x3FF)
        if exponent == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
        if exponent == 0 {
            let magnitude = Float(mantissa) * 0x1p-24
            return sign == 0 ? magnitude : -magnitude
        }
        return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
    }

    public static func bfloat16(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    /// The four float8 variants; `fnuz` variants have one NaN (0x80) and no negative zero.
    public static func float8(_ bits: UInt8, exponentBits: Int, bias: Int, fnuz: Bool, hasInfinity: Bool) -> Float {
        let mantissaBits = 7 - exponentBits
        let sign: Float = bits & 0x80 != 0 ? -1 : 1
        let exponent = Int(bits >> mantissaBits) & ((1 << exponentBits) - 1)
        let mantissa = Int(bits) & ((1 << mantissaBits) - 1)
        if fnuz && bits == 0x80 { return .nan }
        if !fnuz {
            let maxExponent = (1 << exponentBits) - 1
            if hasInfinity && exponent == maxExponent { return mantissa == 0 ? sign * .infinity : .nan }
            if !hasInfinity && exponent == maxExponent && mantissa == (1 << mantissaBits) - 1 { return .nan }
        }
        let scale = Float(1 << mantissaBits)
        if exponent == 0 { return sign * Float(mantissa) / scale * pow2(1 - bias) }
        return sign * (1 + Float(mantissa) / scale) * pow2(exponent - bias)
    }

    private static func pow2(_ exponent: Int) -> Float { Float(sign: .plus, exponent: exponent, significand: 1) }
}
