internal import CKernels
public import OnnxcCore

/// Weights packed at compile time for the packed GEMM, so a run reads them in the kernel's order straight from
/// the mapped file instead of repacking every weight on every call.
public enum PrepackedWeights {
    /// CKernels' A-panel height: stored with the packed weights, so a file packed for another height is refused.
    public static var panelRows: Int { Int(CK_MR) }

    /// Float32 2-D convolution weights [M, C, kh, kw] packed as GEMM A panels (m = M, k = C·kh·kw); nil when the
    /// tensor is not such weights or the sizes do not fit the kernel's 32-bit arguments.
    public static func packConvolutionWeights(_ data: TensorData) -> TensorData? {
        guard data.dtype == .float, data.dims.count == 4, case .bytes(let slice) = data.payload,
              let m = Int32(exactly: data.dims[0]), let columns = CheckedSize.elementCount(Array(data.dims[1...])),
              let k = Int32(exactly: columns), m > 0, k > 0 else { return nil }
        let floats = ck_sgemm_packed_a_size(m, k)
        guard floats > 0, let bytes = CheckedSize.multiply(floats, 4) else { return nil }
        let packed = ByteStorage(count: bytes) { out in
            guard let target = out.baseAddress?.assumingMemoryBound(to: Float.self) else { return }
            slice.withUnsafeBytes { source in
                guard let base = source.baseAddress?.assumingMemoryBound(to: Float.self) else { return }
                ck_sgemm_pack_a(m, k, base, Int(k), 1, target)
            }
        }
        return try? TensorData(dtype: .float, dims: [Int64(floats)], payload: .bytes(ByteSlice(packed)))
    }

    /// The byte size packed convolution weights of this logical shape must have.
    public static func packedConvolutionBytes(rows: Int, columns: Int) -> Int? {
        guard let m = Int32(exactly: rows), let k = Int32(exactly: columns), m > 0, k > 0 else { return nil }
        return CheckedSize.multiply(ck_sgemm_packed_a_size(m, k), 4)
    }
}
