/// Reproducible test values: a 64-bit LCG (Knuth's MMIX constants), so a failing case reads the same numbers on every
/// run and machine.
public enum Pseudorandom {
    /// `count` floats in [-1, 1] in steps of 1/1000 (exact in float32, never all alike), from `seed`.
    public static func floats(_ count: Int, seed: Int) -> [Float] {
        var state = UInt64(truncatingIfNeeded: seed) &* 0x9E37_79B9_7F4A_7C15 &+ 1
        return (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int((state >> 33) % 2001) - 1000) / 1000
        }
    }
}
