import CKernels
import Testing

/// The CKernels GEMM against a double-precision reference: odd sizes around every block edge (MR 6, NR 16, KC 256,
/// MC 72, NC 256), K = 1, strided (transposed) operands, prepacked operands, bias and activation epilogues,
/// 1 and 2 threads (bit-identical), and the scalar path against the AVX2 one.
@Suite struct PackedGemmTests {
    private static let sizes: [(m: Int, n: Int, k: Int)] = [
        (1, 1, 1), (1, 17, 1), (6, 16, 1), (7, 5, 3), (6, 16, 256), (13, 33, 257), (5, 40, 513),
        (70, 300, 70), (73, 257, 300), (100, 1, 10), (3, 700, 9), (150, 49, 600),
        // One- and two-row products: the one-row kernel (64 columns a call, then single slivers), split by
        // columns between threads once B has 64 K floats (a recurrent op's step).
        (1, 200, 300), (1, 1024, 256), (2, 640, 128), (1, 136, 600),
    ]

    private func values(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { i in Float(((i * 37 + seed * 11) % 23) - 11) / 8 }
    }

    private struct Case {
        var bias: ck_bias_kind = CK_BIAS_NONE
        var activation: ck_activation = CK_ACT_NONE
        var p0: Float = 0, p1: Float = 0
        var accumulate = false
        var transA = false, transB = false
    }

    /// act(A·B (+ C0) + bias), summed in Double, with the activation in Float as the kernels apply it.
    private func reference(m: Int, n: Int, k: Int, a: [Float], b: [Float], c0: [Float], bias: [Float], _ x: Case) -> [Float] {
        var out = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k {
                    let av = x.transA ? a[p * m + i] : a[i * k + p]
                    let bv = x.transB ? b[j * k + p] : b[p * n + j]
                    sum += Double(av) * Double(bv)
                }
                if x.accumulate { sum += Double(c0[i * n + j]) }
                if x.bias == CK_BIAS_ROW { sum += Double(bias[i]) }
                if x.bias == CK_BIAS_COLUMN { sum += Double(bias[j]) }
                let v = Float(sum)
                let r: Float
                switch x.activation {
                case CK_ACT_RELU: r = v > 0 ? v : 0
                case CK_ACT_CLIP: r = min(max(v, x.p0), x.p1)
                case CK_ACT_LEAKY_RELU: r = v < 0 ? x.p0 * v : v
                case CK_ACT_HARD_SIGMOID: r = max(0, min(1, x.p0 * v + x.p1))
                case CK_ACT_HARD_SWISH: r = v * max(0, min(1, v / 6 + 0.5))
                default: r = v
                }
                out[i * n + j] = r
            }
        }
        return out
    }

    private func run(m: Int, n: Int, k: Int, a: [Float], b: [Float], c0: [Float], bias: [Float], _ x: Case,
                     isa: ck_isa = CK_ISA_AUTO, threads: Int32 = 1, prepack: Bool = false) -> [Float] {
        var c = x.accumulate ? c0 : [Float](repeating: .nan, count: m * n)
        var packedA: [Float] = [], packedB: [Float] = []
        if prepack {
            packedA = [Float](repeating: .nan, count: ck_sgemm_packed_a_size(Int32(m), Int32(k)))
            packedB = [Float](repeating: .nan, count: ck_sgemm_packed_b_size(Int32(k), Int32(n)))
        }
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                bias.withUnsafeBufferPointer { pbias in
                    var epilogue = ck_epilogue(bias_kind: x.bias, bias: pbias.baseAddress, activation: x.activation,
                                               param0: x.p0, param1: x.p1, accumulate: x.accumulate ? 1 : 0, wide: 0)
                    var aOperand = ck_operand(data: pa.baseAddress, rs: x.transA ? 1 : k, cs: x.transA ? m : 1, packed: 0)
                    var bOperand = ck_operand(data: pb.baseAddress, rs: x.transB ? 1 : n, cs: x.transB ? k : 1, packed: 0)
                    packedA.withUnsafeMutableBufferPointer { qa in
                        packedB.withUnsafeMutableBufferPointer { qb in
                            if prepack {
                                ck_sgemm_pack_a(Int32(m), Int32(k), aOperand.data, aOperand.rs, aOperand.cs, qa.baseAddress)
                                ck_sgemm_pack_b(Int32(k), Int32(n), bOperand.data, bOperand.rs, bOperand.cs, qb.baseAddress)
                                aOperand = ck_operand(data: qa.baseAddress, rs: 0, cs: 0, packed: 1)
                                bOperand = ck_operand(data: qb.baseAddress, rs: 0, cs: 0, packed: 1)
                            }
                            c.withUnsafeMutableBufferPointer { pc in
                                ck_sgemm_with(Int32(m), Int32(n), Int32(k), aOperand, bOperand, pc.baseAddress, n, &epilogue, isa, threads)
                            }
                        }
                    }
                }
            }
        }
        return c
    }

    private func check(_ x: Case, prepack: Bool = false) {
        for (m, n, k) in Self.sizes {
            let a = values(m * k, seed: 1), b = values(k * n, seed: 2), c0 = values(m * n, seed: 3)
            let bias = values(max(m, n), seed: 4)
            let expected = reference(m: m, n: n, k: k, a: a, b: b, c0: c0, bias: bias, x)
            let one = run(m: m, n: n, k: k, a: a, b: b, c0: c0, bias: bias, x, threads: 1, prepack: prepack)
            let two = run(m: m, n: n, k: k, a: a, b: b, c0: c0, bias: bias, x, threads: 2, prepack: prepack)
            let scalar = run(m: m, n: n, k: k, a: a, b: b, c0: c0, bias: bias, x, isa: CK_ISA_SCALAR, threads: 2, prepack: prepack)
            // Float sums of k terms of size ≤ 2: error ≤ k·ε·Σ|terms|, bounded loosely by 1e-5·k·(scale).
            let tolerance = Float(1e-5) * Float(k + 4) * 4
            for i in expected.indices {
                #expect(abs(one[i] - expected[i]) <= tolerance, "m \(m) n \(n) k \(k) at \(i): \(one[i]) vs \(expected[i])")
                #expect(abs(scalar[i] - expected[i]) <= tolerance, "scalar m \(m) n \(n) k \(k) at \(i)")
                if abs(one[i] - expected[i]) > tolerance || abs(scalar[i] - expected[i]) > tolerance { return }
            }
            #expect(one == two, "1 and 2 threads differ at m \(m) n \(n) k \(k)")
        }
    }

    @Test func plainProduct() { check(Case()) }
    @Test func transposedOperands() { check(Case(transA: true, transB: true)) }
    @Test func prepackedOperands() { check(Case(bias: CK_BIAS_COLUMN, activation: CK_ACT_RELU), prepack: true) }
    @Test func rowBiasRelu() { check(Case(bias: CK_BIAS_ROW, activation: CK_ACT_RELU)) }
    @Test func columnBiasClip() { check(Case(bias: CK_BIAS_COLUMN, activation: CK_ACT_CLIP, p0: -0.5, p1: 1.5)) }
    @Test func leakyRelu() { check(Case(activation: CK_ACT_LEAKY_RELU, p0: 0.2)) }
    @Test func hardSigmoidAndSwish() {
        check(Case(bias: CK_BIAS_ROW, activation: CK_ACT_HARD_SIGMOID, p0: 0.3, p1: 0.4))
        check(Case(activation: CK_ACT_HARD_SWISH))
    }
    /// The full tiles' clamped store (none, Relu, Clip compiled into the store) against the scalar epilogue with NaN
    /// in a row: Relu takes NaN to 0 (max(x, 0)), Clip and no activation keep it.
    @Test func clampedFullTilesTreatNaNAsTheScalarPath() {
        let (m, n, k) = (12, 32, 3)
        var a = values(m * k, seed: 1)
        a[0] = .nan  // row 0: every column NaN
        let b = values(k * n, seed: 2), bias = values(n, seed: 4)
        for (activation, p0, p1) in [(CK_ACT_NONE, Float(0), Float(0)), (CK_ACT_RELU, 0, 0), (CK_ACT_CLIP, -0.25, 0.5), (CK_ACT_CLIP, 0, 6)] {
            for biasKind in [CK_BIAS_NONE, CK_BIAS_COLUMN] {
                let x = Case(bias: biasKind, activation: activation, p0: p0, p1: p1)
                let scalar = run(m: m, n: n, k: k, a: a, b: b, c0: [], bias: bias, x, isa: CK_ISA_SCALAR)
                let avx2 = run(m: m, n: n, k: k, a: a, b: b, c0: [], bias: bias, x, isa: CK_ISA_AVX2_FMA)
                #expect(avx2[0..<n].allSatisfy { activation == CK_ACT_RELU ? $0 == 0 : $0.isNaN }, "\(activation) \(biasKind)")
                #expect(zip(scalar, avx2).allSatisfy { $0.isNaN ? $1.isNaN : abs($0 - $1) <= 1e-5 }, "\(activation) \(biasKind)")
            }
        }
    }

    @Test func accumulateIntoC() { check(Case(bias: CK_BIAS_COLUMN, activation: CK_ACT_RELU, accumulate: true)) }

    /// A row's values do not depend on the product's row count: the one-row kernel sums in the 6 × 16 tile's order.
    @Test func oneRowMatchesItsRowInATile() {
        let (m, n, k) = (7, 1024, 300)
        let a = values(m * k, seed: 5), b = values(k * n, seed: 6)
        let x = Case(bias: CK_BIAS_COLUMN, activation: CK_ACT_RELU)
        let bias = values(n, seed: 7)
        let all = run(m: m, n: n, k: k, a: a, b: b, c0: [], bias: bias, x, threads: 2)
        for row in [0, 6] {
            let one = run(m: 1, n: n, k: k, a: Array(a[(row * k)..<((row + 1) * k)]), b: b, c0: [], bias: bias, x, threads: 2)
            #expect(one == Array(all[(row * n)..<((row + 1) * n)]), "row \(row)")
        }
    }

    /// Within one depth block (k ≤ 256) the AVX-512 12 × 32 tiles give the AVX2 6 × 16 tiles' bits (both sum k in
    /// order in one chain), and a row alone (the one-row kernel) gives its row's bits: every instruction set and
    /// row count computes the same product.
    @Test func avx512TilesGiveTheAVX2Bits() {
        for (m, n, k) in [(13, 33, 256), (70, 300, 70), (24, 1024, 128), (2, 640, 128), (100, 49, 1)] {
            let a = values(m * k, seed: 8), b = values(k * n, seed: 9), bias = values(n, seed: 10)
            for x in [Case(), Case(bias: CK_BIAS_COLUMN, activation: CK_ACT_RELU), Case(bias: CK_BIAS_COLUMN, activation: CK_ACT_CLIP, p0: -1, p1: 1)] {
                for prepack in [false, true] {
                    let avx512 = run(m: m, n: n, k: k, a: a, b: b, c0: [], bias: bias, x, isa: CK_ISA_AVX512, threads: 2, prepack: prepack)
                    let avx2 = run(m: m, n: n, k: k, a: a, b: b, c0: [], bias: bias, x, isa: CK_ISA_AVX2_FMA, threads: 2, prepack: prepack)
                    #expect(avx512 == avx2, "m \(m) n \(n) k \(k) prepack \(prepack)")
                    let row = m - 1
                    let one = run(m: 1, n: n, k: k, a: Array(a[(row * k)..<((row + 1) * k)]), b: b, c0: [], bias: bias, x,
                                  isa: CK_ISA_AVX512, threads: 2, prepack: prepack)
                    #expect(one == Array(avx512[(row * n)..<((row + 1) * n)]), "last row of m \(m) n \(n) k \(k)")
                }
            }
        }
    }

    /// k = 0: the product is zero and the epilogue still runs (bias, then activation).
    @Test func emptyDepth() {
        let bias: [Float] = [-1, 2, 3]
        let out = run(m: 2, n: 3, k: 0, a: [], b: [], c0: [], bias: bias, Case(bias: CK_BIAS_COLUMN, activation: CK_ACT_RELU))
        #expect(out == [0, 2, 3, 0, 2, 3])
    }

    /// The AVX2 path is picked on machines that have it, and asking for it elsewhere falls back.
    @Test func instructionSetSelection() {
        let active = ck_active_isa()
        #expect(active == CK_ISA_AVX512_VNNI || active == CK_ISA_AVX512 || active == CK_ISA_AVX2_FMA || active == CK_ISA_SCALAR)
        #expect(ck_num_threads() >= 1)
    }

    /// The thread pool runs every index exactly once.
    @Test func parallelForCoversEveryIndex() {
        final class Counts: @unchecked Sendable { var values = [Int32](repeating: 0, count: 1000) }
        let counts = Counts()
        counts.values.withUnsafeMutableBufferPointer { buffer in
            ck_parallel_for(1000, { context, index in
                let pointer = context!.assumingMemoryBound(to: Int32.self)
                pointer[Int(index)] += 1
            }, buffer.baseAddress)
        }
        #expect(counts.values.allSatisfy { $0 == 1 })
    }
}
