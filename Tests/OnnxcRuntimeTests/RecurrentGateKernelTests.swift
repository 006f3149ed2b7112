import CKernels
import Foundation
import Testing

/// `ck_lstm_gates`, the one-pass gates of a common LSTM cell: the same bits as the op-by-op form (an Add, Sigmoid and
/// Tanh through `ck_activation_inplace`, the cell's products and sum), and within float rounding of a double-precision
/// cell, for hidden sizes that fill the vector width or leave a tail of every length class.
@Suite struct RecurrentGateKernelTests {
    static func values(_ count: Int, seed: UInt32, scale: Float) -> [Float] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 1_664_525 &+ 1_013_904_223
            return Float(Int32(bitPattern: state) >> 8) / Float(1 << 23) * scale
        }
    }

    @Test(arguments: [1, 3, 7, 8, 15, 16, 17, 40])
    func gatesEqualTheOpByOpForm(_ hidden: Int) {
        let pre = Self.values(4 * hidden, seed: 1, scale: 6), rec = Self.values(4 * hidden, seed: 2, scale: 4)
        let c0 = Self.values(hidden, seed: 3, scale: 2)
        var c = c0, h = [Float](repeating: 0, count: hidden)
        ck_lstm_gates(Int32(hidden), pre, rec, &c, &h)

        // The op-by-op form, as the generic recurrence computes it.
        var gate = zip(pre, rec).map { $0 + $1 }
        gate.withUnsafeMutableBufferPointer { g in
            ck_activation_inplace(g.baseAddress!, 3 * hidden, CK_ACT_SIGMOID, 0, 0)
            ck_activation_inplace(g.baseAddress! + 3 * hidden, hidden, CK_ACT_TANH, 0, 0)
        }
        let cell = (0..<hidden).map { j in gate[2 * hidden + j] * c0[j] + gate[j] * gate[3 * hidden + j] }
        var squashed = cell
        squashed.withUnsafeMutableBufferPointer { ck_activation_inplace($0.baseAddress!, hidden, CK_ACT_TANH, 0, 0) }
        let state = (0..<hidden).map { gate[hidden + $0] * squashed[$0] }
        #expect(c.map(\.bitPattern) == cell.map(\.bitPattern))
        #expect(h.map(\.bitPattern) == state.map(\.bitPattern))

        // Against double precision.
        func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }
        for j in 0..<hidden {
            let a = (0..<4).map { Double(pre[$0 * hidden + j]) + Double(rec[$0 * hidden + j]) }
            let exactCell = sigmoid(a[2]) * Double(c0[j]) + sigmoid(a[0]) * tanh(a[3])
            #expect(abs(Double(c[j]) - exactCell) <= 2e-6, "cell \(j)")
            #expect(abs(Double(h[j]) - sigmoid(a[1]) * tanh(exactCell)) <= 2e-6, "hidden \(j)")
        }
    }
}
