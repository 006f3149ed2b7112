import CKernels
import Foundation
import Testing

/// The in-place element maps (Sigmoid, SiLU, the standalone activations) split long arrays over the pool; each
/// element's value must not depend on the split. Compared with the same maps applied to pieces short enough to run
/// serially (whatever the pool's thread count, which other suites may change while this runs).
@Suite struct ElementMapKernelTests {
    static let count = 200_003

    static func input() -> [Float] {
        var state: UInt32 = 12345
        return (0..<count).map { _ in
            state = state &* 1_664_525 &+ 1_013_904_223
            return Float(Int32(bitPattern: state) >> 8) / Float(1 << 20)  // about ±8
        }
    }

    /// `map` on the whole array against `map` on pieces of 10,000 (below the parallel threshold).
    static func expectSplitInvariant(_ map: (UnsafeMutablePointer<Float>, Int) -> Void) {
        var whole = input(), pieces = whole
        whole.withUnsafeMutableBufferPointer { map($0.baseAddress!, $0.count) }
        pieces.withUnsafeMutableBufferPointer { buffer in
            for start in stride(from: 0, to: buffer.count, by: 10_000) {
                map(buffer.baseAddress! + start, min(10_000, buffer.count - start))
            }
        }
        #expect(whole.map(\.bitPattern) == pieces.map(\.bitPattern))
        #expect(whole.allSatisfy { $0.isFinite })
    }

    @Test func sigmoidAndSiluDoNotDependOnTheSplit() {
        Self.expectSplitInvariant { ck_sigmoid_inplace($0, $1) }
        Self.expectSplitInvariant { ck_silu_inplace($0, $1) }
    }

    /// The vector logistic (whichever path this CPU runs) against the double-precision one: on 400,001 points of
    /// [−110, 110] within 4·10⁻⁷ relative where the logistic is a normal float (3.6 ulp measured), and below within
    /// the smallest normal float (a path may flush there); SiLU within 10⁻⁶ relative where both factors are normal;
    /// the special values exact.
    @Test func sigmoidAndSiluAreAccurate() {
        var xs = (0...400_000).map { Float(-110 + 220 * Double($0) / 400_000) }
        xs += [0, -0.0, 1e-30, -1e-30, 88, -88, 104, -104, 1e38, -1e38, .infinity, -.infinity]
        var sigmoid = xs, silu = xs
        sigmoid.withUnsafeMutableBufferPointer { ck_sigmoid_inplace($0.baseAddress!, $0.count) }
        silu.withUnsafeMutableBufferPointer { ck_silu_inplace($0.baseAddress!, $0.count) }
        var worstSigmoid = 0.0, worstSilu = 0.0
        for (i, x) in xs.enumerated() where x.isFinite {
            let exact = 1 / (1 + exp(-Double(x)))
            if exact >= Double(Float.leastNormalMagnitude) {
                worstSigmoid = max(worstSigmoid, abs(Double(sigmoid[i]) - exact) / exact)
            } else {
                #expect(abs(Double(sigmoid[i]) - exact) <= Double(Float.leastNormalMagnitude), "sigmoid(\(x)) = \(sigmoid[i])")
            }
            let exactSilu = Double(x) * exact
            // Where the logistic itself is a denormal, its product is as coarse: only normal factors are compared.
            if exact >= Double(Float.leastNormalMagnitude) && abs(exactSilu) >= Double(Float.leastNormalMagnitude) {
                worstSilu = max(worstSilu, abs(Double(silu[i]) - exactSilu) / abs(exactSilu))
            }
        }
        #expect(worstSigmoid <= 4e-7)
        #expect(worstSilu <= 1e-6)
        let special: [Float] = [.infinity, -.infinity, .nan, 0]
        var out = special
        out.withUnsafeMutableBufferPointer { ck_sigmoid_inplace($0.baseAddress!, $0.count) }
        #expect(out[0] == 1 && out[1] == 0 && out[2].isNaN && out[3] == 0.5)
    }

    @Test func activationsDoNotDependOnTheSplit() {
        for activation in [CK_ACT_RELU, CK_ACT_TANH, CK_ACT_GELU, CK_ACT_HARD_SWISH] {
            Self.expectSplitInvariant { ck_activation_inplace($0, $1, activation, 0, 0) }
        }
    }
}
