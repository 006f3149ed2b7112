internal import CKernels
import OnnxcCore

/// One matrix product of a recurrent op, y = x · Mᵀ for the op's W or R (or a block of R's rows) of one direction:
/// the input projection over all time steps at once, the recurrent one per step. Immutable once made: a compiled
/// model makes its projections when it loads and every run, on any thread, shares them.
protocol RecurrentProjection<Scalar>: AnyObject, Sendable {
    associatedtype Scalar
    /// y[i, j] = Σ_p x[i·k + p] · M[j, p] for i < m and j < n, y's rows `ldy` elements apart.
    func apply(m: Int, x: UnsafePointer<Scalar>, y: UnsafeMutablePointer<Scalar>, ldy: Int)
}

/// M (n × k) packed into the float GEMM's B panels when the projection is made (at load in a compiled model, per
/// run in the interpreter), so each per-step product streams the packed panels only (packing inside every call
/// would cost as much as the product it feeds).
final class PackedFloatProjection: RecurrentProjection {
    private let packed: [Float]
    private let n: Int, k: Int

    /// `matrix` is n rows of k floats.
    init(_ matrix: UnsafePointer<Float>, n: Int, k: Int) {
        self.n = n
        self.k = k
        let count = PackedGemm.fits(m: 1, n: n, k: k) ? ck_sgemm_packed_b_size(Int32(k), Int32(n)) : 0
        packed = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            if let base = buffer.baseAddress, count > 0 { PackedGemm.packB(k: k, n: n, b: matrix, rowStride: 1, columnStride: k, into: base) }
            initialized = count
        }
    }

    func apply(m: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, ldy: Int) {
        packed.withUnsafeBufferPointer { p in
            guard let b = p.baseAddress else { return }
            PackedGemm.multiply(m: m, n: n, k: k, a: .init(data: x, rowStride: k, columnStride: 1), b: .init(data: b, rowStride: 0, columnStride: 0, packed: true),
                                c: y, ldc: ldy)
        }
    }
}

/// The plain loops, for double-precision recurrences (no double GEMM kernel; ORT has no double LSTM at all).
final class LoopProjection<Scalar: BinaryFloatingPoint & Sendable>: RecurrentProjection {
    private let matrix: [Scalar]
    private let n: Int, k: Int

    init(_ matrix: UnsafePointer<Scalar>, n: Int, k: Int) {
        self.matrix = Array(UnsafeBufferPointer(start: matrix, count: n * k))
        self.n = n
        self.k = k
    }

    func apply(m: Int, x: UnsafePointer<Scalar>, y: UnsafeMutablePointer<Scalar>, ldy: Int) {
        matrix.withUnsafeBufferPointer { w in
            for i in 0..<m {
                for j in 0..<n {
                    var sum: Scalar = 0
                    for p in 0..<k { sum += x[i * k + p] * w[j * k + p] }
                    y[i * ldy + j] = sum
                }
            }
        }
    }
}

/// `-O int8-dynamic`'s form (ai.onnxc::QLSTM/QGRU/QRNN): M int8 with a scale per row, x quantized to uint8 on its
/// own range at every call (DynamicQuantizeLinear's grid: the whole input sequence once, the hidden state at each
/// step, as ORT's DynamicQuantizeLSTM does), the integer product on the quantized convolution kernels, float out.
final class DynamicQuantizedProjection: RecurrentProjection {
    /// Rows up to which `ck_qgemv_f32` (which rereads the weights for every row) beats the convolution kernel.
    static let fewRows = 4
    private let convolution: QuantizedConvolution
    private let k: Int

    /// `matrix` is n rows of k int8 values, `scales` its n row scales (or one for all).
    init(_ matrix: UnsafePointer<Int8>, n: Int, k: Int, scales: [Float], op: String) throws(RuntimeError) {
        self.k = k
        let weights = try Tensor(Array(UnsafeBufferPointer(start: matrix, count: n * k)), shape: [n, k, 1, 1])
        convolution = try QuantizedConvolution(weights: weights, groups: 1, xScale: 1, xZeroPoint: 0, wScales: scales, yScale: nil, yZeroPoint: 0,
                                               bias: nil, op: op)
    }

    func apply(m: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, ldy: Int) {
        let count = m * k
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(count, 1)) { q in
            guard let qp = q.baseAddress else { return }
            var scale: Float = 1, zero: UInt8 = 0
            ck_dynamic_quantize_u8(count, x, qp, &scale, &zero)
            // A step's few rows on the few-row kernel; the whole sequence's rows on the tiled convolution kernel,
            // which reads each weight panel once for many rows.
            if m <= Self.fewRows, convolution.multiplyDynamic(rows: m, x: qp, xScale: scale, xZeroPoint: Int32(zero), y: y, yStride: ldy) { return }
            convolution.withInputGrid(scale: scale, zeroPoint: Int32(zero)).multiply(rows: m, x: qp, y: UnsafeMutableRawPointer(y), yStride: ldy)
        }
    }
}
