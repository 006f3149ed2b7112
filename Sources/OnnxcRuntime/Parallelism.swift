internal import CKernels

/// The runtime's thread count: the kernels' persistent pool (CKernels) splits each large GEMM and convolution
/// over this many threads, the caller's thread included. Default: ONNXC_NUM_THREADS if set, else the machine's
/// physical cores. Process-wide, as ONNX Runtime's intra-op pool is per session but shared by its kernels.
public enum Parallelism {
    public static var threads: Int { Int(ck_num_threads()) }

    /// Creates and wakes the pool's workers, so the first run does not pay for it.
    public static func warmUp() { ck_pool_warm_up() }

    /// Sets the count (at least 1) and returns the count in force.
    @discardableResult
    public static func setThreads(_ count: Int) -> Int { Int(ck_set_num_threads(Int32(clamping: max(1, count)))) }
}
