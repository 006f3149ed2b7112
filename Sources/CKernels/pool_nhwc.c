// pool_nhwc.c — pooling of channels-last tensors, vectorized across channels (a pixel's channels are contiguous),
// and the two layout transposes between NCHW and NHWC. Contract: include/ckernels.h.
#define _GNU_SOURCE
#include "ck_internal.h"

#include <float.h>
#include <limits.h>
#include <string.h>

typedef struct {
    ck_pool_nhwc g;
    const float *x;
    float *y;
    int kind;  // 0 max, 1 average over valid taps, 2 average over the whole window
    int rows_per_task, row_tasks;
    int avx2;  // the instruction set, chosen once per call
} ck_pool_job;

enum { CK_POOL_MAX = 0, CK_POOL_AVERAGE = 1, CK_POOL_AVERAGE_INCLUDING_PAD = 2 };

/// One output pixel from the valid taps: rows ih0 …< ih1, columns iw0 …< iw1 (already stepped by dilation).
static inline void ck_pool_pixel_scalar(const ck_pool_job *job, const float *image, int oh, int ow, float *out) {
    const ck_pool_nhwc *g = &job->g;
    int count = 0;
    for (int c = 0; c < g->channels; c++) out[c] = job->kind == CK_POOL_MAX ? -INFINITY : 0;
    for (int i = 0; i < g->kernel_h; i++) {
        int ih = oh * g->stride_h - g->pad_top + i * g->dilation_h;
        if ((unsigned)ih >= (unsigned)g->in_h) continue;
        for (int j = 0; j < g->kernel_w; j++) {
            int iw = ow * g->stride_w - g->pad_left + j * g->dilation_w;
            if ((unsigned)iw >= (unsigned)g->in_w) continue;
            const float *x = image + ((size_t)ih * g->in_w + iw) * g->x_stride;
            count++;
            if (job->kind == CK_POOL_MAX) {
                for (int c = 0; c < g->channels; c++) out[c] = x[c] > out[c] ? x[c] : out[c];
            } else {
                for (int c = 0; c < g->channels; c++) out[c] = out[c] + x[c];
            }
        }
    }
    if (job->kind == CK_POOL_MAX) {
        // A window entirely in the padding has no value; 0, as the NCHW kernel gives.
        if (count == 0) for (int c = 0; c < g->channels; c++) out[c] = 0;
        return;
    }
    float divisor = job->kind == CK_POOL_AVERAGE_INCLUDING_PAD ? (float)(g->kernel_h * g->kernel_w) : (float)(count > 0 ? count : 1);
    for (int c = 0; c < g->channels; c++) out[c] = out[c] / divisor;
}

#ifdef CK_X86
/// The same pixel, 32 channels at a time in 4 accumulators, then 8 at a time, the last block masked. Maxima start
/// at −∞ and max(x, m) keeps m when x is NaN, as the scalar `x > m ? x : m`; sums start at 0, as the scalar path.
CK_AVX2 static void ck_pool_pixel_avx2(const ck_pool_job *job, const float *image, int oh, int ow, float *out) {
    const ck_pool_nhwc *g = &job->g;
    int ih0 = oh * g->stride_h - g->pad_top, iw0 = ow * g->stride_w - g->pad_left;
    const float *taps[64];
    int count = 0;
    int max = job->kind == CK_POOL_MAX;
    for (int i = 0; i < g->kernel_h; i++) {
        int ih = ih0 + i * g->dilation_h;
        if ((unsigned)ih >= (unsigned)g->in_h) continue;
        for (int j = 0; j < g->kernel_w; j++) {
            int iw = iw0 + j * g->dilation_w;
            if ((unsigned)iw >= (unsigned)g->in_w) continue;
            if (count == 64) {  // windows over 64 valid taps take the scalar path
                ck_pool_pixel_scalar(job, image, oh, ow, out);
                return;
            }
            taps[count++] = image + ((size_t)ih * g->in_w + iw) * g->x_stride;
        }
    }
    if (count == 0) {
        memset(out, 0, (size_t)g->channels * sizeof(float));
        return;
    }
    float divisor = job->kind == CK_POOL_AVERAGE_INCLUDING_PAD ? (float)(g->kernel_h * g->kernel_w) : (float)count;
    __m256 d = _mm256_set1_ps(divisor), seed = max ? _mm256_set1_ps(-INFINITY) : _mm256_setzero_ps();
    int c = 0;
    for (; c + 32 <= g->channels; c += 32) {
        __m256 a0 = seed, a1 = seed, a2 = seed, a3 = seed;
        for (int t = 0; t < count; t++) {
            const float *x = taps[t] + c;
            if (max) {
                a0 = _mm256_max_ps(_mm256_loadu_ps(x), a0); a1 = _mm256_max_ps(_mm256_loadu_ps(x + 8), a1);
                a2 = _mm256_max_ps(_mm256_loadu_ps(x + 16), a2); a3 = _mm256_max_ps(_mm256_loadu_ps(x + 24), a3);
            } else {
                a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x)); a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + 8));
                a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + 16)); a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + 24));
            }
        }
        if (!max) { a0 = _mm256_div_ps(a0, d); a1 = _mm256_div_ps(a1, d); a2 = _mm256_div_ps(a2, d); a3 = _mm256_div_ps(a3, d); }
        _mm256_storeu_ps(out + c, a0); _mm256_storeu_ps(out + c + 8, a1);
        _mm256_storeu_ps(out + c + 16, a2); _mm256_storeu_ps(out + c + 24, a3);
    }
    for (; c < g->channels; c += 8) {
        int live = ck_min(8, g->channels - c);
        __m256i m = ck_mask8(live);
        __m256 a = seed;
        for (int t = 0; t < count; t++) {
            __m256 x = _mm256_maskload_ps(taps[t] + c, m);
            a = max ? _mm256_max_ps(x, a) : _mm256_add_ps(a, x);
        }
        if (!max) a = _mm256_div_ps(a, d);
        _mm256_maskstore_ps(out + c, m, a);
    }
}
#endif

static void ck_pool_task(void *context, int index) {
    const ck_pool_job *job = context;
    const ck_pool_nhwc *g = &job->g;
    int n = index / job->row_tasks, r0 = (index % job->row_tasks) * job->rows_per_task;
    int r1 = ck_min(g->out_h, r0 + job->rows_per_task);
    const float *image = job->x + (size_t)n * g->in_h * g->in_w * g->x_stride;
    void (*pixel)(const ck_pool_job *, const float *, int, int, float *) = ck_pool_pixel_scalar;
#ifdef CK_X86
    if (job->avx2) pixel = ck_pool_pixel_avx2;
#endif
    for (int oh = r0; oh < r1; oh++)
        for (int ow = 0; ow < g->out_w; ow++)
            pixel(job, image, oh, ow, job->y + (((size_t)n * g->out_h + oh) * g->out_w + ow) * g->y_stride);
}

static void ck_pool_run(const ck_pool_nhwc *geometry, const float *x, float *y, int kind, ck_isa isa, int threads) {
    ck_pool_job job;
    memset(&job, 0, sizeof job);
    job.g = *geometry;
    job.x = x;
    job.y = y;
    job.kind = kind;
    job.avx2 = ck_isa_avx2(isa);
    const ck_pool_nhwc *g = &job.g;
    if (g->batch <= 0 || g->out_h <= 0 || g->out_w <= 0 || g->channels <= 0) return;
    double work = (double)g->batch * g->out_h * g->out_w * g->channels * g->kernel_h * g->kernel_w;
    if (threads <= 0) threads = ck_num_threads();
    if (work < CK_PARALLEL_MIN_WORK / 4) threads = 1;
    int per_image = threads > 1 ? ck_ceil_div(threads * 8, g->batch) : 1;
    if (per_image > g->out_h) per_image = g->out_h;
    job.rows_per_task = ck_ceil_div(g->out_h, per_image);
    job.row_tasks = ck_ceil_div(g->out_h, job.rows_per_task);
    int tasks = g->batch * job.row_tasks;
    if (threads > 1) ck_parallel_run(threads, tasks, ck_pool_task, &job);
    else for (int i = 0; i < tasks; i++) ck_pool_task(&job, i);
}

void ck_maxpool2d_nhwc(const ck_pool_nhwc *geometry, const float *x, float *y) {
    ck_pool_run(geometry, x, y, CK_POOL_MAX, CK_ISA_AUTO, 0);
}

void ck_avgpool2d_nhwc(const ck_pool_nhwc *geometry, const float *x, float *y, int count_include_pad) {
    ck_pool_run(geometry, x, y, count_include_pad ? CK_POOL_AVERAGE_INCLUDING_PAD : CK_POOL_AVERAGE, CK_ISA_AUTO, 0);
}

void ck_maxpool2d_nhwc_with(const ck_pool_nhwc *geometry, const float *x, float *y, ck_isa isa, int threads) {
    ck_pool_run(geometry, x, y, CK_POOL_MAX, isa, threads);
}

void ck_avgpool2d_nhwc_with(const ck_pool_nhwc *geometry, const float *x, float *y, int count_include_pad, ck_isa isa,
                            int threads) {
    ck_pool_run(geometry, x, y, count_include_pad ? CK_POOL_AVERAGE_INCLUDING_PAD : CK_POOL_AVERAGE, isa, threads);
}

// MARK: - Global pools
//
// Pixels outer, channels inner (each pixel's channels are contiguous: one pass over the input, reading whole cache
// lines), into a per-chunk accumulator row in L1. The pixels split into fixed chunks whose partial results combine
// in chunk order, so the sums are the same on any number of threads, and the chunks run on the pool.

/// Pixels per chunk of a global pool.
#define CK_GLOBAL_POOL_CHUNK 256

typedef struct {
    const float *x;
    float *partial;  // chunks × channels per image, then the images
    int pixels, channels, chunks, max, avx2;
} ck_global_pool_job;

#ifdef CK_X86
/// Four accumulators per 8 channels (pixels p ≡ 0, 1, 2, 3 mod 4, combined as (a0 + a1) + (a2 + a3)): one chain
/// of dependent adds would wait on each add's latency.
CK_AVX2 static void ck_global_chunk_avx2(const float *x, int count, int channels, int max, float *acc) {
    const __m256 identity = max ? _mm256_set1_ps(-INFINITY) : _mm256_setzero_ps();
    for (int c = 0; c < channels; c += 8) {
        __m256i m = ck_mask8(ck_min(8, channels - c));
        __m256 a0 = identity, a1 = identity, a2 = identity, a3 = identity;
        const float *px = x + c;
        int p = 0;
#define CK_GP_STEP(A, P) { __m256 v = _mm256_maskload_ps(px + (size_t)(P) * channels, m); A = max ? _mm256_max_ps(v, A) : _mm256_add_ps(A, v); }
        for (; p + 4 <= count; p += 4) {
            CK_GP_STEP(a0, p) CK_GP_STEP(a1, p + 1) CK_GP_STEP(a2, p + 2) CK_GP_STEP(a3, p + 3)
        }
        for (; p < count; p++) CK_GP_STEP(a0, p)
#undef CK_GP_STEP
        __m256 a = max ? _mm256_max_ps(_mm256_max_ps(a0, a1), _mm256_max_ps(a2, a3)) : _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
        _mm256_maskstore_ps(acc + c, m, a);
    }
}
#endif

/// One chunk's sum (or maximum, NaNs skipped: max(v, a) keeps a when v is NaN) per channel.
static void ck_global_chunk(void *context, int index) {
    const ck_global_pool_job *job = context;
    int n = index / job->chunks, k = index % job->chunks;
    int p0 = k * CK_GLOBAL_POOL_CHUNK, count = ck_min(CK_GLOBAL_POOL_CHUNK, job->pixels - p0);
    const float *x = job->x + ((size_t)n * job->pixels + p0) * job->channels;
    float *acc = job->partial + (size_t)index * job->channels;
#ifdef CK_X86
    if (job->avx2) {
        ck_global_chunk_avx2(x, count, job->channels, job->max, acc);
        return;
    }
#endif
    for (int c = 0; c < job->channels; c++) {
        float a = job->max ? -INFINITY : 0;
        for (int p = 0; p < count; p++) {
            float v = x[(size_t)p * job->channels + c];
            a = job->max ? (v > a ? v : a) : a + v;
        }
        acc[c] = a;
    }
}

void ck_global_pool_nhwc_with(int batch, int pixels, int channels, const float *x, float *y, int max, ck_isa isa) {
    if (batch <= 0 || channels <= 0) return;
    if (pixels <= 0) {
        for (size_t i = 0; i < (size_t)batch * channels; i++) y[i] = max ? -INFINITY : NAN;  // max of nothing; 0 / 0
        return;
    }
    ck_global_pool_job job = {x, NULL, pixels, channels, ck_ceil_div(pixels, CK_GLOBAL_POOL_CHUNK), max, ck_isa_avx2(isa)};
    size_t tasks = (size_t)batch * job.chunks;
    job.partial = malloc(tasks * (size_t)channels * sizeof(float));
    if (!job.partial) abort();  // out of memory, as Swift traps on a failed allocation
    int threads = (double)pixels * channels * batch < CK_PARALLEL_MIN_WORK / 4 ? 1 : ck_num_threads();
    if (threads > 1 && tasks > 1 && tasks <= INT_MAX) ck_parallel_run(threads, (int)tasks, ck_global_chunk, &job);
    else for (size_t i = 0; i < tasks; i++) ck_global_chunk(&job, (int)i);
    for (int n = 0; n < batch; n++) {
        const float *partial = job.partial + (size_t)n * job.chunks * channels;
        float *yn = y + (size_t)n * channels;
        for (int c = 0; c < channels; c++) {
            float a = partial[c];
            for (int k = 1; k < job.chunks; k++) {
                float v = partial[(size_t)k * channels + c];
                a = max ? (v > a ? v : a) : a + v;
            }
            yn[c] = max ? a : a / (float)pixels;
        }
    }
    free(job.partial);
}

void ck_global_pool_nhwc(int batch, int pixels, int channels, const float *x, float *y, int max) {
    ck_global_pool_nhwc_with(batch, pixels, channels, x, y, max, CK_ISA_AUTO);
}

// MARK: - Layout transposes

typedef struct {
    const float *x;
    float *y;
    int rows, cols;  // per image: x is rows × cols, y cols × rows
    int batch, row_blocks, col_blocks;
    int tile_rows, tile_cols, avx2;
} ck_transpose_job;

/// Rows per transpose tile: 4 blocks of 8 for the vector network.
#define CK_TRANSPOSE_TILE 32

#ifdef CK_X86
/// y (8 rows, ldy apart) = the transpose of x (8 rows, ldx apart): the usual unpack / shuffle / lane-permute network.
CK_AVX2 static inline void ck_transpose8x8(const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy) {
    __m256 r0 = _mm256_loadu_ps(x), r1 = _mm256_loadu_ps(x + ldx), r2 = _mm256_loadu_ps(x + 2 * ldx), r3 = _mm256_loadu_ps(x + 3 * ldx);
    __m256 r4 = _mm256_loadu_ps(x + 4 * ldx), r5 = _mm256_loadu_ps(x + 5 * ldx), r6 = _mm256_loadu_ps(x + 6 * ldx), r7 = _mm256_loadu_ps(x + 7 * ldx);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5), t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE), s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE), s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(y, _mm256_permute2f128_ps(s0, s4, 0x20));
    _mm256_storeu_ps(y + ldy, _mm256_permute2f128_ps(s1, s5, 0x20));
    _mm256_storeu_ps(y + 2 * ldy, _mm256_permute2f128_ps(s2, s6, 0x20));
    _mm256_storeu_ps(y + 3 * ldy, _mm256_permute2f128_ps(s3, s7, 0x20));
    _mm256_storeu_ps(y + 4 * ldy, _mm256_permute2f128_ps(s0, s4, 0x31));
    _mm256_storeu_ps(y + 5 * ldy, _mm256_permute2f128_ps(s1, s5, 0x31));
    _mm256_storeu_ps(y + 6 * ldy, _mm256_permute2f128_ps(s2, s6, 0x31));
    _mm256_storeu_ps(y + 7 * ldy, _mm256_permute2f128_ps(s3, s7, 0x31));
}

/// Three rows (an image's channels) of 8 columns, x0 x1 x2, interleaved into 24 floats at y: each output vector
/// blends a lane permutation of the three rows.
CK_AVX2 static inline void ck_interleave3x8(const float *x0, const float *x1, const float *x2, float *y) {
    __m256 a = _mm256_loadu_ps(x0), b = _mm256_loadu_ps(x1), c = _mm256_loadu_ps(x2);
    // Output k (0 … 23) is row k % 3, column k / 3; vector v holds k = 8v … 8v + 7.
    const __m256i pa0 = _mm256_setr_epi32(0, 0, 0, 1, 0, 0, 2, 0), pb0 = _mm256_setr_epi32(0, 0, 0, 0, 1, 0, 0, 2),
                  pc0 = _mm256_setr_epi32(0, 0, 0, 0, 0, 1, 0, 0);
    const __m256i pa1 = _mm256_setr_epi32(0, 3, 0, 0, 4, 0, 0, 5), pb1 = _mm256_setr_epi32(0, 0, 3, 0, 0, 4, 0, 0),
                  pc1 = _mm256_setr_epi32(2, 0, 0, 3, 0, 0, 4, 0);
    const __m256i pa2 = _mm256_setr_epi32(0, 0, 6, 0, 0, 7, 0, 0), pb2 = _mm256_setr_epi32(5, 0, 0, 6, 0, 0, 7, 0),
                  pc2 = _mm256_setr_epi32(0, 5, 0, 0, 6, 0, 0, 7);
    // Blend masks: bit l set takes the second operand in lane l (rows: a = 0b…, b, c by position k % 3).
    __m256 v0 = _mm256_blend_ps(_mm256_blend_ps(_mm256_permutevar8x32_ps(a, pa0), _mm256_permutevar8x32_ps(b, pb0), 0x92),
                                _mm256_permutevar8x32_ps(c, pc0), 0x24);
    __m256 v1 = _mm256_blend_ps(_mm256_blend_ps(_mm256_permutevar8x32_ps(a, pa1), _mm256_permutevar8x32_ps(b, pb1), 0x24),
                                _mm256_permutevar8x32_ps(c, pc1), 0x49);
    __m256 v2 = _mm256_blend_ps(_mm256_blend_ps(_mm256_permutevar8x32_ps(a, pa2), _mm256_permutevar8x32_ps(b, pb2), 0x49),
                                _mm256_permutevar8x32_ps(c, pc2), 0x92);
    _mm256_storeu_ps(y, v0);
    _mm256_storeu_ps(y + 8, v1);
    _mm256_storeu_ps(y + 16, v2);
}
#endif

static void ck_transpose_task(void *context, int index) {
    const ck_transpose_job *job = context;
    int per_image = job->row_blocks * job->col_blocks;
    int n = index / per_image, rest = index % per_image;
    int r0 = (rest / job->col_blocks) * job->tile_rows, c0 = (rest % job->col_blocks) * job->tile_cols;
    int r1 = ck_min(job->rows, r0 + job->tile_rows), c1 = ck_min(job->cols, c0 + job->tile_cols);
    const float *x = job->x + (size_t)n * job->rows * job->cols;
    float *y = job->y + (size_t)n * job->rows * job->cols;
    int r = r0;
#ifdef CK_X86
    if (job->avx2) {
        // Full 8 × 8 blocks with the vector network, what is left element by element.
        for (; r + 8 <= r1; r += 8) {
            int c = c0;
            for (; c + 8 <= c1; c += 8) ck_transpose8x8(x + (size_t)r * job->cols + c, job->cols, y + (size_t)c * job->rows + r, job->rows);
            for (; c < c1; c++)
                for (int i = r; i < r + 8; i++) y[(size_t)c * job->rows + i] = x[(size_t)i * job->cols + c];
        }
        if (job->rows == 3) {
            // An image's three channels (r0 = 0, r1 = 3): 8 columns at a time.
            int c = c0;
            for (; c + 8 <= c1; c += 8) ck_interleave3x8(x + c, x + job->cols + c, x + 2 * (size_t)job->cols + c, y + (size_t)c * 3);
            for (; c < c1; c++)
                for (int i = 0; i < 3; i++) y[(size_t)c * 3 + i] = x[(size_t)i * job->cols + c];
            return;
        }
    }
#endif
    // Few rows (an image's 3 channels) or the rows the blocks left: columns outer, so y is written in order.
    if (r < r1)
        for (int c = c0; c < c1; c++)
            for (int i = r; i < r1; i++) y[(size_t)c * job->rows + i] = x[(size_t)i * job->cols + c];
}

void ck_transpose_batched_with(int batch, int rows, int cols, const float *x, float *y, int threads) {
    if (batch <= 0 || rows <= 0 || cols <= 0) return;
    // Tiles of up to CK_TRANSPOSE_TILE rows and about 4096 floats (16 KB read, 16 KB written: L1), so an image's 3
    // channel rows make long, few tiles.
    int tile_rows = ck_min(rows, CK_TRANSPOSE_TILE);
    int tile_cols = ck_max(CK_TRANSPOSE_TILE, (4096 / tile_rows + 7) / 8 * 8);
    ck_transpose_job job = {x, y, rows, cols, batch, ck_ceil_div(rows, tile_rows), ck_ceil_div(cols, tile_cols), tile_rows, tile_cols, 0};
#ifdef CK_X86
    job.avx2 = ck_isa_avx2(CK_ISA_AUTO);
#endif
    int tasks = batch * job.row_blocks * job.col_blocks;
    double work = (double)batch * rows * cols;
    if (work < CK_PARALLEL_MIN_WORK / 8) {
        for (int i = 0; i < tasks; i++) ck_transpose_task(&job, i);
    } else {
        ck_parallel_run(threads > 0 ? threads : ck_num_threads(), tasks, ck_transpose_task, &job);
    }
}

void ck_transpose_batched(int batch, int rows, int cols, const float *x, float *y) {
    ck_transpose_batched_with(batch, rows, cols, x, y, 0);
}
