internal import CKernels

/// Whole-row copies in CKernels for the data-movement ops (Concat, Split, nearest Resize): a row is a contiguous
/// block of bytes, so every element type copies the same way, and large copies split across the pool.
enum BlockCopy {
    /// Row r: `rowBytes` bytes from source + r·sourceStride to target + r·targetStride.
    static func rows(_ count: Int, rowBytes: Int, from source: UnsafeRawPointer, stride sourceStride: Int,
                     to target: UnsafeMutableRawPointer, stride targetStride: Int) {
        guard count > 0, rowBytes > 0 else { return }
        ck_copy_rows(count, rowBytes, source, sourceStride, target, targetStride)
    }

    /// Target row r = source row sources[r] (zeros where it is negative), rows of `rowBytes` bytes.
    static func gather(_ sources: [Int64], rowBytes: Int, from source: UnsafeRawPointer, to target: UnsafeMutableRawPointer) {
        guard !sources.isEmpty, rowBytes > 0 else { return }
        sources.withUnsafeBufferPointer { ck_gather_rows(sources.count, rowBytes, source, $0.baseAddress, target) }
    }
}
