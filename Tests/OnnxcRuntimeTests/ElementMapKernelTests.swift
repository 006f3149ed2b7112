import CKernels
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

    @Test func activationsDoNotDependOnTheSplit() {
        for activation in [CK_ACT_RELU, CK_ACT_TANH, CK_ACT_GELU, CK_ACT_HARD_SWISH] {
            Self.expectSplitInvariant { ck_activation_inplace($0, $1, activation, 0, 0) }
        }
    }
}
