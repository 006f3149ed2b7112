// cchecksum.c — CRC-32C: the portable slicing-by-16 path, the SSE4.2 + PCLMULQDQ path, the AVX-512 VPCLMULQDQ
// path, combination and the multi-threaded checksum. The contract is in include/cchecksum.h.
//
// Polynomials are "reflected": bit 31 of a uint32_t is the coefficient of x^0 and bit 0 that of x^31, the order in
// which the CRC register holds them. A register r after n more zero bytes is r · x^(8n) mod P; both the joining of
// interleaved streams and cc_crc32c_combine rest on that.
#define _GNU_SOURCE
#include "cchecksum.h"

#include <pthread.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define CC_X86 1
#define CC_HW __attribute__((target("sse4.2,pclmul")))
#define CC_AVX512 __attribute__((target("avx512f,vpclmulqdq,sse4.2,pclmul")))
#endif

/// The reflected Castagnoli polynomial.
#define CC_POLY 0x82F63B78u

static inline uint64_t cc_load_le64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

// MARK: - Arithmetic modulo P

/// a · b mod P (zlib's multmodp).
static uint32_t cc_multmodp(uint32_t a, uint32_t b) {
    uint32_t m = (uint32_t)1 << 31, p = 0;
    for (;;) {
        if (a & m) {
            p ^= b;
            if ((a & (m - 1)) == 0) break;
        }
        m >>= 1;
        b = b & 1 ? (b >> 1) ^ CC_POLY : b >> 1;
    }
    return p;
}

/// base^k mod P, by squaring: at most 2 · 64 products.
static uint32_t cc_power(uint32_t base, uint64_t k) {
    uint32_t result = (uint32_t)1 << 31;  // x^0
    while (k) {
        if (k & 1) result = cc_multmodp(base, result);
        base = cc_multmodp(base, base);
        k >>= 1;
    }
    return result;
}

/// x^k mod P.
static uint32_t cc_xpow(uint64_t k) { return cc_power((uint32_t)1 << 30, k); }

uint32_t cc_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t count_b) {
    // Pre- and post-inversion cancel out: only a's register needs moving past b's bytes, by x^(8n) = (x^8)^n
    // (not x^(8n) directly, which would overflow 64 bits for n ≥ 2^61).
    return cc_multmodp(cc_power((uint32_t)1 << 23, count_b), crc_a) ^ crc_b;
}

// MARK: - Portable path

/// Inputs of at least 3 · CC_STRIDE bytes run as three interleaved streams of CC_STRIDE bytes, joined by shift
/// tables: one stream is bound by the latency of its lookups, three keep the loads busy.
#define CC_STRIDE 4096

/// cc_tables[k][b]: the register of byte b followed by k zero bytes (slicing-by-16).
static uint32_t cc_tables[16][256];
/// cc_shift[i][v]: a register whose byte i is v (others 0), after CC_STRIDE zero bytes.
static uint32_t cc_shift[4][256];
static pthread_once_t cc_tables_once = PTHREAD_ONCE_INIT;

static void cc_tables_init(void) {
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t crc = b;
        for (int i = 0; i < 8; i++) crc = crc & 1 ? (crc >> 1) ^ CC_POLY : crc >> 1;
        cc_tables[0][b] = crc;
    }
    for (int k = 1; k < 16; k++) {
        for (int b = 0; b < 256; b++) {
            uint32_t previous = cc_tables[k - 1][b];
            cc_tables[k][b] = (previous >> 8) ^ cc_tables[0][previous & 0xFF];
        }
    }
    uint32_t stride = cc_xpow(8 * (uint64_t)CC_STRIDE);
    for (int i = 0; i < 4; i++) {
        for (uint32_t v = 0; v < 256; v++) cc_shift[i][v] = cc_multmodp(stride, v << (8 * i));
    }
}

static inline uint32_t cc_step16(uint32_t crc, const unsigned char *p) {
    uint64_t w0 = cc_load_le64(p), w1 = cc_load_le64(p + 8);
    uint32_t a = (uint32_t)w0 ^ crc, b = (uint32_t)(w0 >> 32), c = (uint32_t)w1, d = (uint32_t)(w1 >> 32);
    return cc_tables[15][a & 0xFF] ^ cc_tables[14][(a >> 8) & 0xFF] ^ cc_tables[13][(a >> 16) & 0xFF] ^ cc_tables[12][a >> 24]
         ^ cc_tables[11][b & 0xFF] ^ cc_tables[10][(b >> 8) & 0xFF] ^ cc_tables[9][(b >> 16) & 0xFF] ^ cc_tables[8][b >> 24]
         ^ cc_tables[7][c & 0xFF] ^ cc_tables[6][(c >> 8) & 0xFF] ^ cc_tables[5][(c >> 16) & 0xFF] ^ cc_tables[4][c >> 24]
         ^ cc_tables[3][d & 0xFF] ^ cc_tables[2][(d >> 8) & 0xFF] ^ cc_tables[1][(d >> 16) & 0xFF] ^ cc_tables[0][d >> 24];
}

static inline uint32_t cc_shift_stride(uint32_t crc) {
    return cc_shift[0][crc & 0xFF] ^ cc_shift[1][(crc >> 8) & 0xFF] ^ cc_shift[2][(crc >> 16) & 0xFF] ^ cc_shift[3][crc >> 24];
}

static uint32_t cc_crc32c_portable(uint32_t crc, const void *data, size_t count) {
    pthread_once(&cc_tables_once, cc_tables_init);
    const unsigned char *p = data;
    uint32_t c0 = ~crc;
    while (count >= 3 * (size_t)CC_STRIDE) {
        uint32_t c1 = 0, c2 = 0;
        for (const unsigned char *end = p + CC_STRIDE; p < end; p += 16) {
            c0 = cc_step16(c0, p);
            c1 = cc_step16(c1, p + CC_STRIDE);
            c2 = cc_step16(c2, p + 2 * CC_STRIDE);
        }
        c0 = cc_shift_stride(cc_shift_stride(c0) ^ c1) ^ c2;
        p += 2 * CC_STRIDE;
        count -= 3 * CC_STRIDE;
    }
    for (; count >= 16; count -= 16, p += 16) c0 = cc_step16(c0, p);
    for (; count > 0; count--, p++) c0 = cc_tables[0][(c0 ^ *p) & 0xFF] ^ (c0 >> 8);
    return ~c0;
}

// MARK: - SSE4.2 path

/// Bytes per stream in the long and the short interleaved blocks. The `crc32` instruction takes 3 cycles but
/// issues every cycle, so three independent streams keep it busy (8 bytes a cycle); joining them costs two
/// carry-less products and one more `crc32`, under 1% of a long block (3 × 8 KiB) and ~10% of a short one.
#define CC_HW_LONG 8192
#define CC_HW_SHORT 256

/// x^(8n − 33) mod P for n = CC_HW_LONG, 2 · CC_HW_LONG, CC_HW_SHORT, 2 · CC_HW_SHORT: the factors that move a
/// stream's register past the streams after it (see cc_hw_join).
static uint32_t cc_k_long, cc_k_long2, cc_k_short, cc_k_short2;
/// The AVX-512 folding constants, as 64-bit reflected polynomials [x^(8d + 63), x^(8d − 1)] mod P for a fold
/// distance of d = 256 bytes (the main loop) and d = 64 (merging the four accumulators); see cc_fold512.
static uint64_t cc_k_fold256[2], cc_k_fold64[2];
static cc_crc32c_path cc_best;
static pthread_once_t cc_paths_once = PTHREAD_ONCE_INIT;

#ifdef CC_X86
/// SSE4.2 (CPUID.1:ECX bit 20) and PCLMULQDQ (bit 1); for AVX-512 also AVX-512F (CPUID.7:EBX bit 16),
/// VPCLMULQDQ (CPUID.7:ECX bit 10), and an OS that saves the XMM, YMM, opmask and ZMM state (XCR0 bits 1, 2, 5–7).
static cc_crc32c_path cc_detect(void) {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !((ecx >> 20) & 1) || !((ecx >> 1) & 1)) return CC_CRC32C_PORTABLE;
    if (!((ecx >> 27) & 1)) return CC_CRC32C_SSE42;  // no OSXSAVE: xgetbv is not available
    unsigned xcr0_lo, xcr0_hi;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    if ((xcr0_lo & 0xE6) != 0xE6) return CC_CRC32C_SSE42;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return CC_CRC32C_SSE42;
    return ((ebx >> 16) & 1) && ((ecx >> 10) & 1) ? CC_CRC32C_AVX512 : CC_CRC32C_SSE42;
}
#endif

static void cc_paths_init(void) {
    cc_k_long = cc_xpow(8 * (uint64_t)CC_HW_LONG - 33);
    cc_k_long2 = cc_xpow(16 * (uint64_t)CC_HW_LONG - 33);
    cc_k_short = cc_xpow(8 * (uint64_t)CC_HW_SHORT - 33);
    cc_k_short2 = cc_xpow(16 * (uint64_t)CC_HW_SHORT - 33);
    // A 32-bit reflected x^k (bit 31 − k) becomes a 64-bit one (bit 63 − k) by a shift of 32.
    cc_k_fold256[0] = (uint64_t)cc_xpow(8 * 256 + 63) << 32;
    cc_k_fold256[1] = (uint64_t)cc_xpow(8 * 256 - 1) << 32;
    cc_k_fold64[0] = (uint64_t)cc_xpow(8 * 64 + 63) << 32;
    cc_k_fold64[1] = (uint64_t)cc_xpow(8 * 64 - 1) << 32;
#ifdef CC_X86
    cc_best = cc_detect();
#else
    cc_best = CC_CRC32C_PORTABLE;
#endif
}

cc_crc32c_path cc_crc32c_best_path(void) {
    pthread_once(&cc_paths_once, cc_paths_init);
    return cc_best;
}

#ifdef CC_X86
/// The carry-less product of two reflected 32-bit polynomials, as a reflected 64-bit one: a · b · x.
CC_HW static inline uint64_t cc_clmul(uint32_t a, uint32_t b) {
    __m128i product = _mm_clmulepi64_si128(_mm_cvtsi32_si128((int)a), _mm_cvtsi32_si128((int)b), 0);
    return (uint64_t)_mm_cvtsi128_si64(product);
}

/// The registers of three consecutive streams of n bytes joined into one: c0 · x^(16n) + c1 · x^(8n) + c2.
/// `crc32` of 8 bytes d from register 0 is d · x^32 mod P, and cc_clmul adds a factor x, so
/// crc32(0, cc_clmul(c, x^(8m − 33))) = c · x^(8m) mod P.
CC_HW static inline uint32_t cc_hw_join(uint64_t c0, uint64_t c1, uint64_t c2, uint32_t k2, uint32_t k1) {
    uint64_t moved = cc_clmul((uint32_t)c0, k2) ^ cc_clmul((uint32_t)c1, k1);
    return (uint32_t)(_mm_crc32_u64(0, moved) ^ c2);
}

/// Folds `*count / (3 · n)` blocks of three interleaved streams of n bytes into c0, advancing `*p` and `*count`.
/// Inlined into each call with a constant n, so the three loads per step use constant offsets.
CC_HW static inline __attribute__((always_inline)) uint64_t cc_hw_blocks(uint64_t c0, const unsigned char **p, size_t *count,
                                                                          size_t n, uint32_t k2, uint32_t k1) {
    const unsigned char *q = *p;
    size_t left = *count;
    while (left >= 3 * n) {
        uint64_t c1 = 0, c2 = 0;
        for (const unsigned char *end = q + n; q < end; q += 8) {
            c0 = _mm_crc32_u64(c0, cc_load_le64(q));
            c1 = _mm_crc32_u64(c1, cc_load_le64(q + n));
            c2 = _mm_crc32_u64(c2, cc_load_le64(q + 2 * n));
        }
        c0 = cc_hw_join(c0, c1, c2, k2, k1);
        q += 2 * n;
        left -= 3 * n;
    }
    *p = q;
    *count = left;
    return c0;
}

CC_HW static uint32_t cc_crc32c_sse42(uint32_t crc, const unsigned char *p, size_t count) {
    uint64_t c0 = (uint32_t)~crc;
    // Up to 7 bytes singly, so that the 8-byte loads below are aligned.
    for (; count > 0 && ((uintptr_t)p & 7) != 0; count--, p++) c0 = _mm_crc32_u8((uint32_t)c0, *p);
    c0 = cc_hw_blocks(c0, &p, &count, CC_HW_LONG, cc_k_long2, cc_k_long);
    c0 = cc_hw_blocks(c0, &p, &count, CC_HW_SHORT, cc_k_short2, cc_k_short);
    for (; count >= 8; count -= 8, p += 8) c0 = _mm_crc32_u64(c0, cc_load_le64(p));
    for (; count > 0; count--, p++) c0 = _mm_crc32_u8((uint32_t)c0, *p);
    return ~(uint32_t)c0;
}

// MARK: - AVX-512 path

/// Shorter buffers take the SSE4.2 path: it is as fast there, and keeps small checksums off the 512-bit units
/// (some Intel CPUs lower their clock for a while after wide instructions).
#define CC_AVX512_MIN_BYTES 1024

/// Each 128-bit lane of v moved d bytes further into the message, plus data: with v's lane = L · x^64 + H (its
/// first 8 bytes L, its last 8 H, each a reflected 64-bit polynomial), L · x^(8d + 64) + H · x^(8d) ≡
/// L · k[0] · x + H · k[1] · x (mod P), and a carry-less product of reflected 64-bit values carries that factor x.
/// The products have degree < 96, so the lane stays 128 bits wide and congruent to what it stands for.
CC_AVX512 static inline __m512i cc_fold512(__m512i v, __m512i k, __m512i data) {
    __m512i low = _mm512_clmulepi64_epi128(v, k, 0x00);   // L · k[0] in every lane
    __m512i high = _mm512_clmulepi64_epi128(v, k, 0x11);  // H · k[1]
    return _mm512_ternarylogic_epi64(low, high, data, 0x96);  // low ^ high ^ data
}

CC_AVX512 static uint32_t cc_crc32c_avx512(uint32_t crc, const unsigned char *p, size_t count) {
    if (count < CC_AVX512_MIN_BYTES) return cc_crc32c_sse42(crc, p, count);
    // Up to 63 bytes first, so that every 64-byte load below is one cache line.
    size_t head = (64 - ((uintptr_t)p & 63)) & 63;
    crc = cc_crc32c_sse42(crc, p, head);
    p += head;
    count -= head;
    // Four accumulators of 64 bytes each; the register so far goes into the message's first 32 bits (processing
    // M from register r is processing M with r XORed into its first 4 bytes from register 0).
    __m512i x0 = _mm512_xor_si512(_mm512_load_si512(p), _mm512_mask_set1_epi32(_mm512_setzero_si512(), 1, (int)~crc));
    __m512i x1 = _mm512_load_si512(p + 64), x2 = _mm512_load_si512(p + 128), x3 = _mm512_load_si512(p + 192);
    p += 256;
    count -= 256;
    __m512i k = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)cc_k_fold256));
    for (; count >= 256; count -= 256, p += 256) {
        x0 = cc_fold512(x0, k, _mm512_load_si512(p));
        x1 = cc_fold512(x1, k, _mm512_load_si512(p + 64));
        x2 = cc_fold512(x2, k, _mm512_load_si512(p + 128));
        x3 = cc_fold512(x3, k, _mm512_load_si512(p + 192));
    }
    k = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)cc_k_fold64));
    x3 = cc_fold512(cc_fold512(cc_fold512(x0, k, x1), k, x2), k, x3);
    // x3 is congruent to everything folded so far, as 64 bytes that end where it ends: its CRC from register 0
    // is the register, and the rest (under 256 bytes) continues from there.
    uint64_t lanes[8];
    _mm512_storeu_si512(lanes, x3);
    uint64_t c = 0;
    for (int i = 0; i < 8; i++) c = _mm_crc32_u64(c, lanes[i]);
    return cc_crc32c_sse42(~(uint32_t)c, p, count);
}
#endif

uint32_t cc_crc32c_with(cc_crc32c_path path, uint32_t crc, const void *data, size_t count) {
    cc_crc32c_path best = cc_crc32c_best_path();
    if (path > best) path = best;
#ifdef CC_X86
    if (path == CC_CRC32C_AVX512) return cc_crc32c_avx512(crc, data, count);
    if (path == CC_CRC32C_SSE42) return cc_crc32c_sse42(crc, data, count);
#endif
    return cc_crc32c_portable(crc, data, count);
}

uint32_t cc_crc32c(uint32_t crc, const void *data, size_t count) {
    return cc_crc32c_with(CC_CRC32C_AVX512, crc, data, count);
}

// MARK: - Threads

/// The CPUs this process may run on (its affinity mask, which containers and `taskset` narrow), at least 1.
static int cc_available_cpus(void) {
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

typedef struct {
    const unsigned char *data;
    size_t count;
    uint32_t crc;
} cc_piece;

static void *cc_piece_run(void *argument) {
    cc_piece *piece = argument;
    piece->crc = cc_crc32c(0, piece->data, piece->count);
    return NULL;
}

uint32_t cc_crc32c_parallel(uint32_t crc, const void *data, size_t count, int max_threads) {
    if (max_threads <= 0) max_threads = cc_available_cpus();
    if (max_threads > CC_CRC32C_MAX_THREADS) max_threads = CC_CRC32C_MAX_THREADS;
    size_t by_size = count / CC_CRC32C_PARALLEL_MIN_BYTES;
    int threads = by_size < (size_t)max_threads ? (int)by_size : max_threads;
    if (threads <= 1) return cc_crc32c(crc, data, count);

    // Equal pieces at 64-byte boundaries (whole cache lines per thread); the last takes the remainder.
    const unsigned char *p = data;
    size_t chunk = (count / (size_t)threads) & ~(size_t)63;
    cc_piece pieces[CC_CRC32C_MAX_THREADS];
    pthread_t workers[CC_CRC32C_MAX_THREADS];
    int started[CC_CRC32C_MAX_THREADS] = {0};
    for (int i = 1; i < threads; i++) {
        pieces[i].data = p + (size_t)i * chunk;
        pieces[i].count = i == threads - 1 ? count - (size_t)i * chunk : chunk;
        started[i] = pthread_create(&workers[i], NULL, cc_piece_run, &pieces[i]) == 0;
    }
    uint32_t result = cc_crc32c(crc, p, chunk);
    for (int i = 1; i < threads; i++) {
        if (started[i]) pthread_join(workers[i], NULL);
        else cc_piece_run(&pieces[i]);
        result = cc_crc32c_combine(result, pieces[i].crc, pieces[i].count);
    }
    return result;
}

struct cc_crc32c_job {
    const void *data;
    size_t count;
    int max_threads;
    uint32_t crc;
    int started;
    pthread_t thread;
};

static void *cc_job_run(void *argument) {
    cc_crc32c_job *job = argument;
    job->crc = cc_crc32c_parallel(0, job->data, job->count, job->max_threads);
    return NULL;
}

cc_crc32c_job *cc_crc32c_start(const void *data, size_t count, int max_threads) {
    cc_crc32c_job *job = calloc(1, sizeof *job);
    if (job == NULL) return NULL;
    job->data = data;
    job->count = count;
    job->max_threads = max_threads;
    job->started = pthread_create(&job->thread, NULL, cc_job_run, job) == 0;
    if (!job->started) cc_job_run(job);
    return job;
}

uint32_t cc_crc32c_finish(cc_crc32c_job *job) {
    if (job->started) pthread_join(job->thread, NULL);
    uint32_t crc = job->crc;
    free(job);
    return crc;
}
