// cchecksum.h — CRC-32C (Castagnoli) for .oxc sections: the SSE4.2 `crc32` instruction with PCLMULQDQ to join
// interleaved streams, and AVX-512 VPCLMULQDQ folding for long buffers, chosen at run time by cpuid (per-function
// target attributes, so the binary still runs on baseline x86-64); a portable slicing-by-16 fallback; combination of
// CRCs of adjacent pieces; and a multi-threaded checksum of large buffers built on it. Self-contained: libc and
// pthreads only.
//
// The CRC: reflected polynomial 0x82F63B78, initial value 0xFFFFFFFF, final XOR 0xFFFFFFFF (iSCSI, ext4;
// schemas/oxc-format.md). Check value: cc_crc32c(0, "123456789", 9) == 0xE3069283. Every function returns the same
// value for the same bytes, whichever path or thread count computes it.
#ifndef CCHECKSUM_H
#define CCHECKSUM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The CRC-32C of `crc`'s bytes followed by `count` bytes at `data`; `crc` is the finished checksum of what came
/// before (0 for nothing), so calls chain: cc_crc32c(cc_crc32c(0, a, n), b, m) is the checksum of a‖b.
/// Takes the fastest path this CPU has (cc_crc32c_best_path).
uint32_t cc_crc32c(uint32_t crc, const void *data, size_t count);

/// The ways cc_crc32c can compute, slowest first; in-cache speeds on a 2-core AMD EPYC (Zen 4) VM.
typedef enum {
    /// Table lookups only (slicing-by-16 over three interleaved streams): ~4 GB/s on any CPU.
    CC_CRC32C_PORTABLE = 0,
    /// The SSE4.2 `crc32` instruction over three interleaved streams, joined with PCLMULQDQ: ~29 GB/s.
    CC_CRC32C_SSE42 = 1,
    /// Buffers of 1 KiB and more folded 256 bytes a step with 512-bit VPCLMULQDQ (AVX-512F), the rest as
    /// CC_CRC32C_SSE42: ~59 GB/s, and ~31 GB/s from memory on one core, where the SSE4.2 path gets ~16.
    CC_CRC32C_AVX512 = 2,
} cc_crc32c_path;

/// The fastest path this CPU and OS support (cpuid, and xgetbv for the AVX-512 register state).
cc_crc32c_path cc_crc32c_best_path(void);

/// cc_crc32c by `path`, or by the fastest supported one below it when this CPU lacks it (always safe to call):
/// for tests and benchmarks, which compare the paths.
uint32_t cc_crc32c_with(cc_crc32c_path path, uint32_t crc, const void *data, size_t count);

/// The CRC-32C of a‖b from crc_a = CRC-32C(a), crc_b = CRC-32C(b) and b's length; O(log count_b).
uint32_t cc_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t count_b);

/// cc_crc32c split into up to `max_threads` pieces checksummed on threads of their own and combined; max_threads
/// <= 0 means the cores this process may run on, at most CC_CRC32C_MAX_THREADS. Buffers shorter than
/// CC_CRC32C_PARALLEL_MIN_BYTES per thread use fewer threads (none below twice that): a thread costs tens of
/// microseconds to start. If a thread cannot be started, its piece is computed on the calling thread.
uint32_t cc_crc32c_parallel(uint32_t crc, const void *data, size_t count, int max_threads);

/// A checksum computed on a thread of its own (cc_crc32c_parallel's, from 0) while the caller goes on: a loader
/// checks the weights while it builds its plan. The bytes must stay valid until cc_crc32c_finish, which waits for
/// the result and frees the job; every started job must be finished. NULL only when memory ran out. If the thread
/// cannot be started, the checksum is computed before cc_crc32c_start returns.
typedef struct cc_crc32c_job cc_crc32c_job;
cc_crc32c_job *cc_crc32c_start(const void *data, size_t count, int max_threads);
uint32_t cc_crc32c_finish(cc_crc32c_job *job);

/// Bytes each thread of cc_crc32c_parallel gets at least: 4 MiB takes ~0.13 ms on the AVX-512 path from memory,
/// several times what starting and joining a thread costs, so splitting does not lose even when the other core is busy.
#define CC_CRC32C_PARALLEL_MIN_BYTES ((size_t)4 << 20)
/// Most threads cc_crc32c_parallel uses by default. Checking a mapped file is bound by page faults and memory
/// bandwidth, not by the instruction: a few cores saturate a memory channel, and the rest are better left to
/// whatever runs next. Measured on a 2-core machine only; 4 is a guess beyond that.
#define CC_CRC32C_MAX_THREADS 4

#ifdef __cplusplus
}
#endif

#endif
