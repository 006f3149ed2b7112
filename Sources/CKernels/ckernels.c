// ckernels.c — the GEMM, its microkernels (AVX2/FMA and portable scalar), packing and the thread pool.
// The layouts and the contract are in include/ckernels.h.
#define _GNU_SOURCE
#include "ckernels.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define CK_X86 1
#define CK_AVX2 __attribute__((target("avx2,fma")))
#endif

// MARK: - Blocking

/// Depth block: a 6 × 256 sliver of packed A (6 KB) and a 256 × 16 sliver of packed B (16 KB) stay in L1 while
/// the microkernel runs; the summation over k breaks into blocks of this size (fixed, so results do not depend
/// on anything else).
#define CK_KC 256
/// Rows of C per task (12 panels of A: 72 × 256 × 4 = 72 KB of packed A stays in L2 while B slivers pass over it).
#define CK_MC 72
/// Columns of C per task (16 slivers of B: 256 KB per depth block, half of this machine's 512 KB L2).
#define CK_NC 256
/// Multiply-adds below which a product runs on the calling thread (about 15 µs of one core): a sleeping worker
/// takes tens of microseconds to wake, so smaller products do not gain from a second core.
#define CK_PARALLEL_MIN_WORK (1 << 20)
/// Tasks per thread the grid aims for, so the dynamic scheduler can even out unequal tiles.
#define CK_TASKS_PER_THREAD 4

static inline int ck_min(int a, int b) { return a < b ? a : b; }
static inline int ck_ceil_div(int a, int b) { return (a + b - 1) / b; }

// MARK: - Epilogue arguments

typedef struct {
    int first, last;      // first / last depth block of this tile
    int row0, col0;       // tile origin in C, to index the bias
} ck_tile;

/// C tile (mr × nr live of CK_MR × CK_NR) from kc steps of A and a packed B sliver. A's element (r, p) is at
/// a[r·rsa + p·csa]: a packed panel (rsa 1, csa CK_MR) or rows of a row-major matrix read in place (rsa = its row
/// stride, csa 1; rows past mr are not read).
typedef void (*ck_microkernel)(int kc, const float *a, ptrdiff_t rsa, ptrdiff_t csa, const float *b, float *c,
                               ptrdiff_t ldc, int mr, int nr, ck_tile tile, const ck_epilogue *ep);

// MARK: - Scalar path (portable; also the reference the AVX2 path is tested against)

static inline float ck_act_scalar(float x, const ck_epilogue *ep) {
    switch (ep->activation) {
    case CK_ACT_NONE: return x;
    case CK_ACT_RELU: return x > 0 ? x : 0;
    case CK_ACT_CLIP: {
        float y = x < ep->param0 ? ep->param0 : x;
        return y > ep->param1 ? ep->param1 : y;
    }
    case CK_ACT_LEAKY_RELU: {
        float s = ep->param0 * x;
        return x < 0 ? s : x;
    }
    case CK_ACT_HARD_SIGMOID: {
        float t = ep->param0 * x;
        t = t + ep->param1;
        float u = t < 1 ? t : 1;
        return u >= 0 ? u : 0;
    }
    case CK_ACT_HARD_SWISH: {
        float t = x / 6;
        t = t + 0.5f;
        float u = t < 1 ? t : 1;
        float v = u >= 0 ? u : 0;
        return x * v;
    }
    }
    return x;
}

static void ck_store_scalar(const float *acc, float *c, ptrdiff_t ldc, int mr, int nr, ck_tile tile, const ck_epilogue *ep) {
    int add_old = !tile.first || ep->accumulate;
    for (int r = 0; r < mr; r++) {
        float *row = c + r * ldc;
        for (int j = 0; j < nr; j++) {
            float v = acc[r * CK_NR + j];
            if (add_old) v = row[j] + v;
            if (tile.last) {
                if (ep->bias_kind == CK_BIAS_ROW) v = v + ep->bias[tile.row0 + r];
                else if (ep->bias_kind == CK_BIAS_COLUMN) v = v + ep->bias[tile.col0 + j];
                v = ck_act_scalar(v, ep);
            }
            row[j] = v;
        }
    }
}

static void ck_microkernel_scalar(int kc, const float *a, ptrdiff_t rsa, ptrdiff_t csa, const float *b, float *c,
                                  ptrdiff_t ldc, int mr, int nr, ck_tile tile, const ck_epilogue *ep) {
    float acc[CK_MR * CK_NR];
    memset(acc, 0, sizeof acc);
    for (int p = 0; p < kc; p++) {
        const float *bp = b + p * CK_NR;
        for (int r = 0; r < mr; r++) {
            float x = a[r * rsa + p * csa];
            for (int j = 0; j < CK_NR; j++) acc[r * CK_NR + j] += x * bp[j];
        }
    }
    ck_store_scalar(acc, c, ldc, mr, nr, tile, ep);
}

// MARK: - AVX2/FMA path

#ifdef CK_X86
CK_AVX2 static inline __m256 ck_act_avx2(__m256 x, const ck_epilogue *ep) {
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1);
    switch (ep->activation) {
    case CK_ACT_NONE: return x;
    case CK_ACT_RELU: return _mm256_max_ps(x, zero);  // x > 0 ? x : 0 (NaN → 0, as the scalar form)
    case CK_ACT_CLIP: {
        __m256 lo = _mm256_set1_ps(ep->param0), hi = _mm256_set1_ps(ep->param1);
        __m256 y = _mm256_blendv_ps(x, lo, _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
        return _mm256_blendv_ps(y, hi, _mm256_cmp_ps(y, hi, _CMP_GT_OQ));
    }
    case CK_ACT_LEAKY_RELU: {
        __m256 s = _mm256_mul_ps(_mm256_set1_ps(ep->param0), x);
        return _mm256_blendv_ps(x, s, _mm256_cmp_ps(x, zero, _CMP_LT_OQ));
    }
    case CK_ACT_HARD_SIGMOID: {
        __m256 t = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(ep->param0), x), _mm256_set1_ps(ep->param1));
        __m256 u = _mm256_blendv_ps(one, t, _mm256_cmp_ps(t, one, _CMP_LT_OQ));
        return _mm256_blendv_ps(zero, u, _mm256_cmp_ps(u, zero, _CMP_GE_OQ));
    }
    case CK_ACT_HARD_SWISH: {
        __m256 t = _mm256_add_ps(_mm256_div_ps(x, _mm256_set1_ps(6)), _mm256_set1_ps(0.5f));
        __m256 u = _mm256_blendv_ps(one, t, _mm256_cmp_ps(t, one, _CMP_LT_OQ));
        __m256 v = _mm256_blendv_ps(zero, u, _mm256_cmp_ps(u, zero, _CMP_GE_OQ));
        return _mm256_mul_ps(x, v);
    }
    }
    return x;
}

/// One row of a tile: 16 accumulated values, plus old C, bias and activation as the tile position asks.
CK_AVX2 static inline void ck_store_row_avx2(float *dst, __m256 v0, __m256 v1, int add_old, int last, int r,
                                             const float *column_bias, ck_tile tile, const ck_epilogue *ep) {
    if (add_old) {
        v0 = _mm256_add_ps(_mm256_loadu_ps(dst), v0);
        v1 = _mm256_add_ps(_mm256_loadu_ps(dst + 8), v1);
    }
    if (last) {
        if (ep->bias_kind == CK_BIAS_ROW) {
            __m256 b = _mm256_set1_ps(ep->bias[tile.row0 + r]);
            v0 = _mm256_add_ps(v0, b);
            v1 = _mm256_add_ps(v1, b);
        } else if (ep->bias_kind == CK_BIAS_COLUMN) {
            v0 = _mm256_add_ps(v0, _mm256_loadu_ps(column_bias));
            v1 = _mm256_add_ps(v1, _mm256_loadu_ps(column_bias + 8));
        }
        v0 = ck_act_avx2(v0, ep);
        v1 = ck_act_avx2(v1, ep);
    }
    _mm256_storeu_ps(dst, v0);
    _mm256_storeu_ps(dst + 8, v1);
}

/// The 6 × 16 tile: 12 accumulators, per k step 2 loads of B, 6 broadcasts of A and 12 FMAs.
CK_AVX2 static void ck_microkernel_avx2(int kc, const float *a, ptrdiff_t rsa, ptrdiff_t csa, const float *b, float *c,
                                        ptrdiff_t ldc, int mr, int nr, ck_tile tile, const ck_epilogue *ep) {
    // Rows past mr read the last live row again (in bounds); their results are dropped.
    const float *a0 = a, *a1 = a + (mr > 1 ? 1 : 0) * rsa, *a2 = a + (mr > 2 ? 2 : mr - 1) * rsa;
    const float *a3 = a + (mr > 3 ? 3 : mr - 1) * rsa, *a4 = a + (mr > 4 ? 4 : mr - 1) * rsa, *a5 = a + (mr > 5 ? 5 : mr - 1) * rsa;
    ptrdiff_t off = 0;
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    if (nr <= 8) {
        // A sliver with at most 8 live columns (the last one of N = 49, say): half the FMAs; the right half of
        // the accumulators stays zero and is never stored. Same products in the same order as the full loop.
        for (int p = 0; p < kc; p++) {
            __m256 b0 = _mm256_loadu_ps(b);
            c00 = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + off), b0, c00);
            c10 = _mm256_fmadd_ps(_mm256_broadcast_ss(a1 + off), b0, c10);
            c20 = _mm256_fmadd_ps(_mm256_broadcast_ss(a2 + off), b0, c20);
            c30 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + off), b0, c30);
            c40 = _mm256_fmadd_ps(_mm256_broadcast_ss(a4 + off), b0, c40);
            c50 = _mm256_fmadd_ps(_mm256_broadcast_ss(a5 + off), b0, c50);
            off += csa;
            b += CK_NR;
        }
        kc = 0;
    }
    for (int p = 0; p < kc; p++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        __m256 x;
        x = _mm256_broadcast_ss(a0 + off); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a1 + off); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a2 + off); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a3 + off); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(a4 + off); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(a5 + off); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
        off += csa;
        b += CK_NR;
    }
    int add_old = !tile.first || ep->accumulate;
    if (mr == CK_MR && nr == CK_NR) {
        const float *cb = ep->bias_kind == CK_BIAS_COLUMN ? ep->bias + tile.col0 : NULL;
        ck_store_row_avx2(c + 0 * ldc, c00, c01, add_old, tile.last, 0, cb, tile, ep);
        ck_store_row_avx2(c + 1 * ldc, c10, c11, add_old, tile.last, 1, cb, tile, ep);
        ck_store_row_avx2(c + 2 * ldc, c20, c21, add_old, tile.last, 2, cb, tile, ep);
        ck_store_row_avx2(c + 3 * ldc, c30, c31, add_old, tile.last, 3, cb, tile, ep);
        ck_store_row_avx2(c + 4 * ldc, c40, c41, add_old, tile.last, 4, cb, tile, ep);
        ck_store_row_avx2(c + 5 * ldc, c50, c51, add_old, tile.last, 5, cb, tile, ep);
        return;
    }
    // Edge tile: run the same vector epilogue on a full-size copy, then write back the live part.
    float buffer[CK_MR * CK_NR], bias[CK_NR];
    const float *cb = NULL;
    if (ep->bias_kind == CK_BIAS_COLUMN) {
        memset(bias, 0, sizeof bias);
        memcpy(bias, ep->bias + tile.col0, (size_t)nr * sizeof(float));
        cb = bias;
    }
    memset(buffer, 0, sizeof buffer);
    if (add_old) {
        for (int r = 0; r < mr; r++) memcpy(buffer + r * CK_NR, c + r * ldc, (size_t)nr * sizeof(float));
    }
    __m256 acc[CK_MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    for (int r = 0; r < mr; r++) {
        ck_store_row_avx2(buffer + r * CK_NR, acc[r][0], acc[r][1], add_old, tile.last, r, cb, tile, ep);
    }
    for (int r = 0; r < mr; r++) memcpy(c + r * ldc, buffer + r * CK_NR, (size_t)nr * sizeof(float));
}
#endif

// MARK: - CPU detection

static int ck_cpu_has_avx2_fma(void) {
#ifdef CK_X86
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    int osxsave = (ecx >> 27) & 1, avx = (ecx >> 28) & 1, fma = (ecx >> 12) & 1;
    if (!(osxsave && avx && fma)) return 0;
    unsigned xcr0_lo, xcr0_hi;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    if ((xcr0_lo & 6) != 6) return 0;  // the OS saves XMM and YMM state
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
    return (ebx >> 5) & 1;
#else
    return 0;
#endif
}

static _Atomic int ck_isa_state = CK_ISA_AUTO;

static ck_isa ck_best_isa(void) { return ck_cpu_has_avx2_fma() ? CK_ISA_AVX2_FMA : CK_ISA_SCALAR; }

ck_isa ck_active_isa(void) {
    int isa = atomic_load_explicit(&ck_isa_state, memory_order_relaxed);
    if (isa == CK_ISA_AUTO) {
        isa = ck_best_isa();
        atomic_store(&ck_isa_state, isa);
    }
    return (ck_isa)isa;
}

ck_isa ck_set_isa(ck_isa isa) {
    if (isa == CK_ISA_AVX2_FMA && !ck_cpu_has_avx2_fma()) isa = CK_ISA_AUTO;
    if (isa == CK_ISA_AUTO) isa = ck_best_isa();
    atomic_store(&ck_isa_state, isa);
    return isa;
}

static ck_microkernel ck_kernel(ck_isa isa) {
    if (isa == CK_ISA_AUTO) isa = ck_active_isa();
#ifdef CK_X86
    if (isa == CK_ISA_AVX2_FMA && ck_cpu_has_avx2_fma()) return ck_microkernel_avx2;
#endif
    return ck_microkernel_scalar;
}

// MARK: - Thread pool

/// Physical cores: distinct (package, core) pairs in sysfs, else the online processor count.
static int ck_physical_cores(void) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online < 1) online = 1;
    int seen[1024][2];
    int distinct = 0;
    for (long cpu = 0; cpu < online && cpu < 1024; cpu++) {
        char path[128];
        int ids[2] = {-1, -1};
        const char *names[2] = {"physical_package_id", "core_id"};
        for (int f = 0; f < 2; f++) {
            snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/topology/%s", cpu, names[f]);
            FILE *file = fopen(path, "r");
            if (!file) return (int)online;
            if (fscanf(file, "%d", &ids[f]) != 1) ids[f] = -1;
            fclose(file);
        }
        int found = 0;
        for (int i = 0; i < distinct; i++) found |= seen[i][0] == ids[0] && seen[i][1] == ids[1];
        if (!found) { seen[distinct][0] = ids[0]; seen[distinct][1] = ids[1]; distinct++; }
    }
    return distinct > 0 ? distinct : (int)online;
}

#define CK_MAX_THREADS 64

/// The pool's job state in one atomic word: generation (high 32 bits), an "open" bit, and how many workers are
/// inside the job. A worker joins only while the job it saw is still open, so the caller never waits for a worker
/// that has not started (a descheduled worker on a busy machine costs nothing), and never overwrites the job's
/// fields while a joined worker may still read them.
#define CK_OPEN ((uint64_t)1 << 31)
#define CK_ACTIVE_MASK (CK_OPEN - 1)

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int started;                          // workers created so far (only the caller owning `busy` touches it)
    _Atomic uint64_t state;               // generation << 32 | open | active workers
    void (*body)(void *, int);
    void *context;
    int count;
    _Atomic int next;                     // next index to hand out
    _Atomic int busy;                     // a caller owns the pool
} ck_pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static _Atomic int ck_threads = 0;
static _Thread_local int ck_is_worker = 0;

int ck_num_threads(void) {
    int n = atomic_load_explicit(&ck_threads, memory_order_relaxed);
    if (n > 0) return n;
    const char *env = getenv("ONNXC_NUM_THREADS");
    n = env ? atoi(env) : 0;
    if (n <= 0) n = ck_physical_cores();
    if (n > CK_MAX_THREADS) n = CK_MAX_THREADS;
    atomic_store(&ck_threads, n);
    return n;
}

int ck_set_num_threads(int n) {
    if (n < 1) n = 1;
    if (n > CK_MAX_THREADS) n = CK_MAX_THREADS;
    atomic_store(&ck_threads, n);
    return n;
}

/// Pause instructions (tens of microseconds) a worker spins waiting for the next job before it sleeps: layers
/// follow each other closely, and a wake-up through the condition variable costs tens of microseconds.
#define CK_SPIN_PAUSES 4000

static inline void ck_pause(void) {
#ifdef CK_X86
    _mm_pause();
#endif
}

static inline uint32_t ck_generation(uint64_t state) { return (uint32_t)(state >> 32); }

static void *ck_worker(void *arg) {
    (void)arg;
    ck_is_worker = 1;
    uint32_t seen = 0;
    for (;;) {
        uint64_t state;
        int spins = 0;
        while (ck_generation(state = atomic_load_explicit(&ck_pool.state, memory_order_acquire)) == seen) {
            if (++spins < CK_SPIN_PAUSES) { ck_pause(); continue; }
            pthread_mutex_lock(&ck_pool.lock);
            while (ck_generation(atomic_load_explicit(&ck_pool.state, memory_order_acquire)) == seen)
                pthread_cond_wait(&ck_pool.wake, &ck_pool.lock);
            pthread_mutex_unlock(&ck_pool.lock);
        }
        seen = ck_generation(state);
        // Join the job only if it is still the one seen and still open.
        int joined = 0;
        while (ck_generation(state) == seen && (state & CK_OPEN)) {
            if (atomic_compare_exchange_weak_explicit(&ck_pool.state, &state, state + 1, memory_order_acquire,
                                                      memory_order_acquire)) {
                joined = 1;
                break;
            }
        }
        if (!joined) continue;
        void (*body)(void *, int) = ck_pool.body;
        void *context = ck_pool.context;
        int count = ck_pool.count, i;
        while ((i = atomic_fetch_add_explicit(&ck_pool.next, 1, memory_order_relaxed)) < count) body(context, i);
        atomic_fetch_sub_explicit(&ck_pool.state, 1, memory_order_release);
    }
    return NULL;
}

/// ck_parallel_for on at most `threads` threads.
static void ck_parallel_run(int threads, int count, void (*body)(void *context, int index), void *context) {
    if (threads > count) threads = count;
    int expected = 0;
    if (threads <= 1 || ck_is_worker ||
        !atomic_compare_exchange_strong(&ck_pool.busy, &expected, 1)) {
        for (int i = 0; i < count; i++) body(context, i);
        return;
    }
    while (ck_pool.started < threads - 1) {
        pthread_t thread;
        pthread_attr_t attributes;
        pthread_attr_init(&attributes);
        pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
        int failed = pthread_create(&thread, &attributes, ck_worker, NULL);
        pthread_attr_destroy(&attributes);
        if (failed) break;
        ck_pool.started++;
    }
    // Workers beyond `threads - 1` (after ck_set_num_threads lowered the count) may still join; the extra
    // parallelism is harmless, and results do not depend on who runs which index.
    ck_pool.body = body;
    ck_pool.context = context;
    ck_pool.count = count;
    atomic_store_explicit(&ck_pool.next, 0, memory_order_relaxed);
    uint64_t state = atomic_load_explicit(&ck_pool.state, memory_order_relaxed);
    uint64_t opened = ((uint64_t)(ck_generation(state) + 1) << 32) | CK_OPEN;
    pthread_mutex_lock(&ck_pool.lock);
    atomic_store_explicit(&ck_pool.state, opened, memory_order_release);
    pthread_cond_broadcast(&ck_pool.wake);
    pthread_mutex_unlock(&ck_pool.lock);
    int i;
    while ((i = atomic_fetch_add_explicit(&ck_pool.next, 1, memory_order_relaxed)) < count) body(context, i);
    // Every index is handed out: close the job, then wait for the workers inside it to finish theirs.
    atomic_fetch_and_explicit(&ck_pool.state, ~(uint64_t)CK_OPEN, memory_order_acq_rel);
    int spins = 0;
    while (atomic_load_explicit(&ck_pool.state, memory_order_acquire) & CK_ACTIVE_MASK) {
        if (++spins < CK_SPIN_PAUSES) ck_pause(); else sched_yield();
    }
    atomic_store_explicit(&ck_pool.busy, 0, memory_order_release);
}

void ck_parallel_for(int count, void (*body)(void *context, int index), void *context) {
    ck_parallel_run(ck_num_threads(), count, body, context);
}

// MARK: - Packing

size_t ck_sgemm_packed_a_size(int m, int k) { return (size_t)ck_ceil_div(m, CK_MR) * CK_MR * (size_t)k; }
size_t ck_sgemm_packed_b_size(int k, int n) { return (size_t)ck_ceil_div(n, CK_NR) * CK_NR * (size_t)k; }

static void ck_pack_a_panel(int m, int k, const float *a, ptrdiff_t rs, ptrdiff_t cs, float *packed, int panel) {
    int i0 = panel * CK_MR, rows = ck_min(CK_MR, m - i0);
    float *dst = packed + (size_t)panel * CK_MR * k;
    for (int p = 0; p < k; p++) {
        for (int r = 0; r < rows; r++) dst[p * CK_MR + r] = a[(i0 + r) * rs + p * cs];
        for (int r = rows; r < CK_MR; r++) dst[p * CK_MR + r] = 0;
    }
}

/// Rows p0 ..< p0 + kc of the CK_NR-column panel starting at column j0, as kc rows of CK_NR floats at dst.
static void ck_pack_b_sliver(int n, const float *b, ptrdiff_t rs, ptrdiff_t cs, int j0, int p0, int kc, float *dst) {
    int cols = ck_min(CK_NR, n - j0);
    for (int p = 0; p < kc; p++) {
        const float *src = b + (ptrdiff_t)(p0 + p) * rs + (ptrdiff_t)j0 * cs;
        float *row = dst + p * CK_NR;
        if (cs == 1 && cols == CK_NR) {
            memcpy(row, src, CK_NR * sizeof(float));  // constant size: inlined as a few vector moves
        } else if (cs == 1) {
            memcpy(row, src, (size_t)cols * sizeof(float));
        } else {
            for (int j = 0; j < cols; j++) row[j] = src[j * cs];
        }
        for (int j = cols; j < CK_NR; j++) row[j] = 0;
    }
}

void ck_sgemm_pack_a(int m, int k, const float *a, ptrdiff_t rs, ptrdiff_t cs, float *packed) {
    for (int panel = 0; panel < ck_ceil_div(m, CK_MR); panel++) ck_pack_a_panel(m, k, a, rs, cs, packed, panel);
}

void ck_sgemm_pack_b(int k, int n, const float *b, ptrdiff_t rs, ptrdiff_t cs, float *packed) {
    for (int panel = 0; panel < ck_ceil_div(n, CK_NR); panel++)
        ck_pack_b_sliver(n, b, rs, cs, panel * CK_NR, 0, k, packed + (size_t)panel * CK_NR * k);
}

// MARK: - The product

typedef struct {
    int m, n, k;
    ck_operand a, b;
    float *pa, *pb;                  // packing destinations (NULL when not packed up front)
    int a_direct;                    // A is row-major (cs 1): the microkernel reads its rows in place
    int a_panels, b_panels;
    const float *packed_a, *packed_b;
    float *c;
    ptrdiff_t ldc;
    ck_epilogue ep;
    const ck_conv2d_input *conv;     // B is this convolution's im2col matrix (b unused)
    int mc, nc, m_blocks, n_blocks;
    ck_microkernel kernel;
} ck_job;

/// Rows p0 ..< p0 + kc, columns j0 ..< j0 + CK_NR of a convolution's im2col matrix, packed like ck_pack_b_sliver.
static void ck_pack_conv_sliver(const ck_conv2d_input *in, int n, int j0, int p0, int kc, float *dst) {
    int cols = ck_min(CK_NR, n - j0);
    int oh[CK_NR], ow[CK_NR];
    for (int t = 0; t < CK_NR; t++) {
        int q = j0 + (t < cols ? t : cols - 1);
        oh[t] = q / in->out_w;
        ow[t] = q % in->out_w;
    }
    // The 16 columns are one run of an output row with stride 1: rows of the sliver are contiguous input runs.
    int run = cols == CK_NR && ow[0] + CK_NR <= in->out_w && in->stride_w == 1;
    int taps = in->kernel_h * in->kernel_w;
    int c = p0 / taps, r = p0 % taps, i = r / in->kernel_w, j = r % in->kernel_w;
    size_t plane = (size_t)in->in_h * in->in_w;
    for (int p = 0; p < kc; p++) {
        float *row = dst + p * CK_NR;
        const float *xc = in->x + c * plane;
        int ih_shift = i * in->dilation_h - in->pad_top, iw_shift = j * in->dilation_w - in->pad_left;
        if (run) {
            int ih = oh[0] * in->stride_h + ih_shift, iw = ow[0] + iw_shift;
            if ((unsigned)ih < (unsigned)in->in_h && iw >= 0 && iw + CK_NR <= in->in_w) {
                memcpy(row, xc + (size_t)ih * in->in_w + iw, CK_NR * sizeof(float));
                goto next;
            }
        }
        for (int t = 0; t < CK_NR; t++) {
            int ih = oh[t] * in->stride_h + ih_shift, iw = ow[t] * in->stride_w + iw_shift;
            int inside = t < cols && (unsigned)ih < (unsigned)in->in_h && (unsigned)iw < (unsigned)in->in_w;
            row[t] = inside ? xc[(size_t)ih * in->in_w + iw] : 0;
        }
    next:
        if (++j == in->kernel_w) {
            j = 0;
            if (++i == in->kernel_h) { i = 0; c++; }
        }
    }
}

static void ck_pack_task(void *context, int index) {
    ck_job *job = context;
    if (index < job->a_panels) {
        ck_pack_a_panel(job->m, job->k, job->a.data, job->a.rs, job->a.cs, job->pa, index);
        return;
    }
    int panel = index - job->a_panels;
    float *dst = job->pb + (size_t)panel * CK_NR * job->k;
    if (job->conv) ck_pack_conv_sliver(job->conv, job->n, panel * CK_NR, 0, job->k, dst);
    else ck_pack_b_sliver(job->n, job->b.data, job->b.rs, job->b.cs, panel * CK_NR, 0, job->k, dst);
}

/// Per-thread buffer for one depth block of a task's B columns (CK_KC × CK_NC floats, 256 KB: it stays in L2).
static _Thread_local float *ck_b_block = NULL;

static void ck_compute_task(void *context, int index) {
    const ck_job *job = context;
    int ib = index % job->m_blocks, jb = index / job->m_blocks;
    int i0 = ib * job->mc, i1 = ck_min(job->m, i0 + job->mc);
    int j0 = jb * job->nc, j1 = ck_min(job->n, j0 + job->nc);
    int k = job->k;
    int pack_b = !job->b.packed || job->conv;
    if (pack_b && !ck_b_block) {
        ck_b_block = aligned_alloc(64, sizeof(float) * CK_KC * CK_NC);
        if (!ck_b_block) abort();
    }
    int pc = 0;
    do {
        int kc = ck_min(CK_KC, k - pc);
        ck_tile tile = {pc == 0, pc + kc >= k, 0, 0};
        // An unpacked B is packed here, one depth block of this task's columns at a time, so it goes from memory
        // to L2 once instead of through a packed copy of the whole matrix.
        if (job->conv) {
            for (int j = j0; j < j1; j += CK_NR)
                ck_pack_conv_sliver(job->conv, job->n, j, pc, kc, ck_b_block + (size_t)(j - j0) * kc);
        } else if (!job->b.packed) {
            for (int j = j0; j < j1; j += CK_NR)
                ck_pack_b_sliver(job->n, job->b.data, job->b.rs, job->b.cs, j, pc, kc, ck_b_block + (size_t)(j - j0) * kc);
        }
        for (int j = j0; j < j1; j += CK_NR) {
            const float *bp = !pack_b ? job->b.data + ((size_t)(j / CK_NR) * k + pc) * CK_NR
                                      : ck_b_block + (size_t)(j - j0) * kc;
            tile.col0 = j;
            for (int i = i0; i < i1; i += CK_MR) {
                tile.row0 = i;
                const float *ap;
                ptrdiff_t rsa, csa;
                if (job->a_direct) {
                    ap = job->a.data + (ptrdiff_t)i * job->a.rs + pc;
                    rsa = job->a.rs; csa = 1;
                } else {
                    ap = job->packed_a + ((size_t)(i / CK_MR) * k + pc) * CK_MR;
                    rsa = 1; csa = CK_MR;
                }
                job->kernel(kc, ap, rsa, csa, bp, job->c + (ptrdiff_t)i * job->ldc + j, job->ldc,
                            ck_min(CK_MR, job->m - i), ck_min(CK_NR, job->n - j), tile, &job->ep);
            }
        }
        pc += kc;
    } while (pc < k);
}

/// Scratch for packing, per calling thread, grown as needed and kept (the runtime calls from a few threads only).
static _Thread_local float *ck_scratch = NULL;
static _Thread_local size_t ck_scratch_floats = 0;

static float *ck_scratch_buffer(size_t floats) {
    if (floats > ck_scratch_floats) {
        free(ck_scratch);
        size_t grown = floats + floats / 4;
        ck_scratch = aligned_alloc(64, (grown * sizeof(float) + 63) / 64 * 64);
        ck_scratch_floats = ck_scratch ? grown : 0;
    }
    return ck_scratch;
}

static void ck_sgemm_run(int m, int n, int k, ck_operand a, ck_operand b, const ck_conv2d_input *conv, float *c,
                         ptrdiff_t ldc, const ck_epilogue *epilogue, ck_isa isa, int threads) {
    if (m <= 0 || n <= 0) return;
    if (k < 0) k = 0;
    ck_job job;
    memset(&job, 0, sizeof job);
    job.m = m; job.n = n; job.k = k; job.a = a; job.b = b; job.c = c; job.ldc = ldc; job.conv = conv;
    if (epilogue) job.ep = *epilogue;
    job.kernel = ck_kernel(isa);
    double work = (double)m * n * (k > 0 ? k : 1);
    if (work < CK_PARALLEL_MIN_WORK) threads = 1;

    // A row-major A needs no packing: the microkernel reads 6 rows in place (1 KB of each per depth block).
    job.a_direct = !a.packed && a.cs == 1;
    // The task grid: blocks of CK_MC × CK_NC, split further (columns first) until each thread has a few tasks.
    // When the columns alone give every thread enough tasks, a task takes all rows: B is then packed once, per
    // task, and A (rows read in place, or packed) streams from L2/L3 past each B sliver.
    int mc = ck_min(CK_MC, ck_ceil_div(m, CK_MR) * CK_MR), nc = ck_min(CK_NC, ck_ceil_div(n, CK_NR) * CK_NR);
    if (ck_ceil_div(n, nc) >= threads * CK_TASKS_PER_THREAD || (threads == 1 && n >= CK_NC)) mc = m;
    if (threads > 1) {
        int target = threads * CK_TASKS_PER_THREAD;
        for (;;) {
            int tasks = ck_ceil_div(m, mc) * ck_ceil_div(n, nc);
            if (tasks >= target) break;
            if (nc > 4 * CK_NR) nc = ck_ceil_div(nc / 2, CK_NR) * CK_NR;
            else if (mc > 2 * CK_MR) mc = ck_ceil_div(mc / 2, CK_MR) * CK_MR;
            else break;
        }
    }
    job.mc = mc; job.nc = nc;
    job.m_blocks = ck_ceil_div(m, mc);
    job.n_blocks = ck_ceil_div(n, nc);

    // B not given packed: with one block of rows, each task packs its own columns one depth block at a time (B goes
    // from memory to L2 once); with several, every row block would repack the same columns, so B is packed whole
    // first, in parallel.
    int prepack_b = (conv || !b.packed) && job.m_blocks > 1;
    size_t a_size = a.packed || job.a_direct ? 0 : ck_sgemm_packed_a_size(m, k);
    size_t b_size = prepack_b ? ck_sgemm_packed_b_size(k, n) : 0;
    float *scratch = NULL;
    if (a_size + b_size > 0) {
        scratch = ck_scratch_buffer(a_size + b_size);
        if (!scratch) abort();  // out of memory, as Swift traps on a failed allocation
    }
    job.pa = a_size > 0 ? scratch : NULL;
    job.pb = b_size > 0 ? scratch + a_size : NULL;
    job.a_panels = a_size > 0 ? ck_ceil_div(m, CK_MR) : 0;
    job.b_panels = b_size > 0 ? ck_ceil_div(n, CK_NR) : 0;
    job.packed_a = a.packed ? a.data : job.pa;
    int pack_tasks = job.a_panels + job.b_panels;
    if (pack_tasks > 0) {
        if (threads > 1 && (double)(a_size + b_size) > 1 << 15) ck_parallel_run(threads, pack_tasks, ck_pack_task, &job);
        else for (int i = 0; i < pack_tasks; i++) ck_pack_task(&job, i);
    }
    if (prepack_b) {
        job.b = (ck_operand){job.pb, 0, 0, 1};
        job.conv = NULL;
    }
    int tasks = job.m_blocks * job.n_blocks;
    if (threads > 1) ck_parallel_run(threads, tasks, ck_compute_task, &job);
    else for (int t = 0; t < tasks; t++) ck_compute_task(&job, t);
}

void ck_sgemm(int m, int n, int k, ck_operand a, ck_operand b, float *c, ptrdiff_t ldc, const ck_epilogue *epilogue) {
    ck_sgemm_run(m, n, k, a, b, NULL, c, ldc, epilogue, CK_ISA_AUTO, ck_num_threads());
}

void ck_sgemm_serial(int m, int n, int k, ck_operand a, ck_operand b, float *c, ptrdiff_t ldc, const ck_epilogue *epilogue) {
    ck_sgemm_run(m, n, k, a, b, NULL, c, ldc, epilogue, CK_ISA_AUTO, 1);
}

void ck_sgemm_with(int m, int n, int k, ck_operand a, ck_operand b, float *c, ptrdiff_t ldc, const ck_epilogue *epilogue,
                   ck_isa isa, int threads) {
    ck_sgemm_run(m, n, k, a, b, NULL, c, ldc, epilogue, isa, threads > 0 ? threads : ck_num_threads());
}

void ck_sconv2d(int m, ck_operand a, const ck_conv2d_input *input, float *y, ptrdiff_t ldc, const ck_epilogue *epilogue) {
    int n = input->out_h * input->out_w, k = input->channels * input->kernel_h * input->kernel_w;
    ck_operand unused = {NULL, 0, 0, 0};
    ck_sgemm_run(m, n, k, a, unused, input, y, ldc, epilogue, CK_ISA_AUTO, ck_num_threads());
}

void ck_sgemm_packed(int m, int n, int k, const float *a, ptrdiff_t rs_a, ptrdiff_t cs_a, const float *packed_b,
                     float *c, ptrdiff_t ldc, const ck_epilogue *epilogue) {
    ck_operand a_operand = {a, rs_a, cs_a, 0}, b_operand = {packed_b, 0, 0, 1};
    ck_sgemm(m, n, k, a_operand, b_operand, c, ldc, epilogue);
}

// MARK: - Depthwise convolution

typedef struct {
    int batch, channels, in_h, in_w, out_h, out_w, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left;
    int dilation_h, dilation_w;
    const float *x, *w, *bias;
    float *y;
    ck_epilogue ep;
} ck_depthwise_job;

/// Adds the bias to a row and applies the activation: one loop per activation, so each vectorizes.
__attribute__((always_inline)) static inline void ck_row_epilogue(float *row, int n, float bias, const ck_epilogue *ep) {
    float lo = ep->param0, hi = ep->param1;
    switch (ep->activation) {
    case CK_ACT_NONE: for (int i = 0; i < n; i++) row[i] = row[i] + bias; break;
    case CK_ACT_RELU: for (int i = 0; i < n; i++) { float v = row[i] + bias; row[i] = v > 0 ? v : 0; } break;
    case CK_ACT_CLIP:
        for (int i = 0; i < n; i++) { float v = row[i] + bias; v = v < lo ? lo : v; row[i] = v > hi ? hi : v; }
        break;
    default: for (int i = 0; i < n; i++) row[i] = ck_act_scalar(row[i] + bias, ep); break;
    }
}

/// One plane: each output row accumulates its taps in place (kernel row, then kernel column), then the epilogue.
__attribute__((always_inline)) static inline void ck_depthwise_plane(const ck_depthwise_job *job, int plane) {
    int c = plane % job->channels;
    const float *x = job->x + (size_t)plane * job->in_h * job->in_w;
    const float *w = job->w + (size_t)c * job->kernel_h * job->kernel_w;
    float *y = job->y + (size_t)plane * job->out_h * job->out_w;
    float bias = job->bias ? job->bias[c] : 0;
    int sw = job->stride_w, ow_count = job->out_w;
    for (int oh = 0; oh < job->out_h; oh++) {
        float *row = y + (size_t)oh * ow_count;
        for (int o = 0; o < ow_count; o++) row[o] = 0;
        for (int i = 0; i < job->kernel_h; i++) {
            int ih = oh * job->stride_h - job->pad_top + i * job->dilation_h;
            if (ih < 0 || ih >= job->in_h) continue;
            const float *in_row = x + (size_t)ih * job->in_w;
            for (int j = 0; j < job->kernel_w; j++) {
                // Output columns whose input column iw = ow·sw − pw + j·dw lies inside the row.
                int shift = j * job->dilation_w - job->pad_left;
                int lo = shift >= 0 ? 0 : (-shift + sw - 1) / sw;
                int hi = job->in_w - 1 - shift < 0 ? 0 : (job->in_w - 1 - shift) / sw + 1;
                if (hi > ow_count) hi = ow_count;
                float weight = w[i * job->kernel_w + j];
                const float *src = in_row + shift;
                if (sw == 1) {
                    for (int o = lo; o < hi; o++) row[o] += weight * src[o];
                } else if (sw == 2) {
                    for (int o = lo; o < hi; o++) row[o] += weight * src[2 * o];
                } else {
                    for (int o = lo; o < hi; o++) row[o] += weight * src[(ptrdiff_t)o * sw];
                }
            }
        }
        ck_row_epilogue(row, ow_count, bias, &job->ep);
    }
}

static void ck_depthwise_task_scalar(void *context, int plane) { ck_depthwise_plane(context, plane); }

#ifdef CK_X86
CK_AVX2 static void ck_depthwise_task_avx2(void *context, int plane) { ck_depthwise_plane(context, plane); }
#endif

void ck_depthwise_conv2d(int batch, int channels, int in_h, int in_w, int out_h, int out_w, int kernel_h, int kernel_w,
                         int stride_h, int stride_w, int pad_top, int pad_left, int dilation_h, int dilation_w,
                         const float *x, const float *w, const float *bias, float *y, const ck_epilogue *epilogue) {
    ck_depthwise_job job = {batch, channels, in_h, in_w, out_h, out_w, kernel_h, kernel_w, stride_h, stride_w,
                            pad_top, pad_left, dilation_h, dilation_w, x, w, bias, y, {0}};
    if (epilogue) job.ep = *epilogue;
    int planes = batch * channels;
    void (*task)(void *, int) = ck_depthwise_task_scalar;
#ifdef CK_X86
    if (ck_active_isa() == CK_ISA_AVX2_FMA) task = ck_depthwise_task_avx2;
#endif
    double work = (double)planes * out_h * out_w * kernel_h * kernel_w;
    if (work < CK_PARALLEL_MIN_WORK / 4) {
        for (int p = 0; p < planes; p++) task(&job, p);
    } else {
        ck_parallel_for(planes, task, &job);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Logistic functions over float buffers, in place: Sigmoid and Silu (x·sigmoid(x)) are most of EfficientNet's and
// YOLO's non-GEMM time, and libm's expf per element costs ~8 ns where a vector exp costs well under 1.
//
// exp(x) = 2^n · e^r with n = round(x·log2 e) and r = x − n·ln 2 (ln 2 split in two for accuracy), e^r from a
// degree-6 polynomial on |r| ≤ ln2/2 (Cephes' expf coefficients, ≤ 2 ulp); x is clamped to ±88.3 so 2^n stays a
// normal float, and below −88.3 the result is 0. NaN inputs give NaN.

#ifdef CK_X86
CK_AVX2 static inline __m256 ck_exp8(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-88.3762626647949f);
    __m256 v = _mm256_max_ps(_mm256_min_ps(x, hi), lo);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(v, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), v);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 r2 = _mm256_mul_ps(r, r);
    p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    // Below the clamp e^x is under every normal float: 0, as expf underflows (and e^-inf = 0). NaN stays NaN.
    y = _mm256_andnot_ps(_mm256_cmp_ps(x, lo, _CMP_LT_OQ), y);
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

CK_AVX2 static inline __m256 ck_logistic8(__m256 x, int silu) {
    __m256 s = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), ck_exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
    // For x below −88.38, e^−x is above every float: the logistic is 0, as libm's expf overflows to +inf.
    s = _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_set1_ps(-88.3762626647949f), _CMP_LT_OQ), s);
    __m256 y = silu ? _mm256_mul_ps(x, s) : s;
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

CK_AVX2 static void ck_logistic_avx2(float *x, size_t n, int silu) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, ck_logistic8(_mm256_loadu_ps(x + i), silu));
    if (i < n) {
        float tail[8] = {0};
        memcpy(tail, x + i, (n - i) * sizeof(float));
        _mm256_storeu_ps(tail, ck_logistic8(_mm256_loadu_ps(tail), silu));
        memcpy(x + i, tail, (n - i) * sizeof(float));
    }
}
#endif

static void ck_logistic_scalar(float *x, size_t n, int silu) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float s = v >= 0 ? 1.0f / (1.0f + expf(-v)) : expf(v) / (1.0f + expf(v));
        x[i] = silu ? v * s : s;
    }
}

static void ck_logistic(float *x, size_t n, int silu) {
#ifdef CK_X86
    if (ck_active_isa() == CK_ISA_AVX2_FMA) { ck_logistic_avx2(x, n, silu); return; }
#endif
    ck_logistic_scalar(x, n, silu);
}

#ifdef CK_X86
CK_AVX2 static float ck_softmax_exp_avx2(float *x, size_t n, float maximum) {
    const __m256 m = _mm256_set1_ps(maximum);
    __m256 total = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = ck_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        _mm256_storeu_ps(x + i, e);
        total = _mm256_add_ps(total, e);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, total);
    float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    if (i < n) {
        float tail[8];
        for (size_t j = 0; j < 8; j++) tail[j] = j < n - i ? x[i + j] - maximum : -INFINITY;
        __m256 e = ck_exp8(_mm256_loadu_ps(tail));
        _mm256_storeu_ps(tail, e);
        for (size_t j = 0; j < n - i; j++) { x[i + j] = tail[j]; sum += tail[j]; }
    }
    return sum;
}
#endif

float ck_softmax_exp(float *x, size_t n, float maximum) {
#ifdef CK_X86
    if (ck_active_isa() == CK_ISA_AVX2_FMA) return ck_softmax_exp_avx2(x, n, maximum);
#endif
    float sum = 0;
    for (size_t i = 0; i < n; i++) { x[i] = expf(x[i] - maximum); sum += x[i]; }
    return sum;
}

void ck_sigmoid_inplace(float *x, size_t n) { ck_logistic(x, n, 0); }
void ck_silu_inplace(float *x, size_t n) { ck_logistic(x, n, 1); }
