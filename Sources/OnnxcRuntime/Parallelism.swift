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

    /// Asks the C allocator to keep freed memory for the next run instead of handing it back to the kernel (each
    /// return is a TLB shootdown that stalls the pool's spinning workers; see `ck_keep_freed_memory`). Process-wide:
    /// for host programs (the onnxc CLI calls it), not for libraries. True when the allocator took the settings.
    @discardableResult
    public static func keepFreedMemory() -> Bool { ck_keep_freed_memory() == 1 }
}
