// qdepthwise.c — quantized depthwise 2-D convolution of channels-last u8 tensors (one 2-D int8 filter per channel),
// with the requantizing epilogue of the quantized convolution. Contract: include/ckernels.h.
//
// Each output sums (x − x_zero_point)·w over the taps inside the image: the zero point is subtracted from x rather
// than folded into the bias, so padding taps are skipped as in the float kernel, not read. The AVX2 form widens 8
// channels of x to 32-bit lanes (x − x_zp fits the low 16 bits) and multiplies them by weights stored as (w, 0)
// 16-bit pairs with VPMADDWD, which gives the exact product in each lane; four pixels share each weight load. A
// depthwise layer reads as many inputs as it multiplies (9 per output for 3×3), so it is bound by loads and
// widening, not by the multiplies VNNI would speed up; the VNNI level runs this form as well.
#define _GNU_SOURCE
#include "ck_quant.h"

#include <stdlib.h>
#include <string.h>

#define CK_QDW_BLOCK 16
/// Tasks per thread the grid aims for (as CK_CONV_TASKS_PER_THREAD).
#define CK_QDW_TASKS_PER_THREAD 8

size_t ck_qdepthwise_nhwc_packed_size(int channels, int kernel_h, int kernel_w) {
    size_t blocks = (size_t)ck_ceil_div(channels, CK_QDW_BLOCK);
    return blocks * (size_t)kernel_h * kernel_w * CK_QDW_BLOCK + (size_t)channels * sizeof(int32_t);
}

void ck_qdepthwise_nhwc_pack(int channels, int kernel_h, int kernel_w, const int8_t *w, void *packed) {
    int taps = kernel_h * kernel_w, blocks = ck_ceil_div(channels, CK_QDW_BLOCK);
    int8_t *dst = packed;
    for (int cb = 0; cb < blocks; cb++)
        for (int t = 0; t < taps; t++)
            for (int col = 0; col < CK_QDW_BLOCK; col++) {
                int c = cb * CK_QDW_BLOCK + col;
                dst[((size_t)cb * taps + t) * CK_QDW_BLOCK + col] = c < channels ? w[(size_t)c * taps + t] : 0;
            }
    int32_t *sums = (int32_t *)(void *)(dst + (size_t)blocks * taps * CK_QDW_BLOCK);
    for (int c = 0; c < channels; c++) {
        int32_t s = 0;
        for (int t = 0; t < taps; t++) s += w[(size_t)c * taps + t];
        sums[c] = s;
    }
}

typedef struct {
    ck_conv_nhwc g;
    const uint8_t *x;
    const int8_t *w;           // packed
    const int32_t *wide;       // AVX2: the packed weights as int32 lanes (w, 0) = (uint16_t)w, same order
    ck_qout out;
    int32_t x_zero_point;
    int taps, channels, blocks, rows_per_task, row_tasks, avx2;
} ck_qdw_job;

/// Per-thread accumulators of one output row (out_w × 16 int32, or the scalar path's `channels`).
static _Thread_local int32_t *ck_qdw_acc = NULL;
static _Thread_local size_t ck_qdw_acc_count = 0;

static int32_t *ck_qdw_acc_buffer(size_t count) {
    if (count > ck_qdw_acc_count) {
        free(ck_qdw_acc);
        ck_qdw_acc = malloc(count * sizeof(int32_t));
        if (!ck_qdw_acc) abort();  // out of memory, as Swift traps on a failed allocation
        ck_qdw_acc_count = count;
    }
    return ck_qdw_acc;
}

/// One output row on the reference path: per pixel and channel, Σ (x − x_zp)·w over the taps inside the image.
static void ck_qdw_row_scalar(const ck_qdw_job *job, const uint8_t *image, int n, int oh) {
    const ck_conv_nhwc *g = &job->g;
    int32_t *acc = ck_qdw_acc_buffer((size_t)job->channels);
    size_t row_pixel = ((size_t)n * g->out_h + oh) * g->out_w;
    for (int ow = 0; ow < g->out_w; ow++) {
        for (int c = 0; c < job->channels; c++) {
            const int8_t *w = job->w + (size_t)(c / CK_QDW_BLOCK) * job->taps * CK_QDW_BLOCK + c % CK_QDW_BLOCK;
            uint32_t sum = 0;
            for (int i = 0; i < g->kernel_h; i++) {
                int ih = oh * g->stride_h - g->pad_top + i * g->dilation_h;
                if ((unsigned)ih >= (unsigned)g->in_h) continue;
                for (int j = 0; j < g->kernel_w; j++) {
                    int iw = ow * g->stride_w - g->pad_left + j * g->dilation_w;
                    if ((unsigned)iw >= (unsigned)g->in_w) continue;
                    int32_t xv = (int32_t)image[((size_t)ih * g->in_w + iw) * g->x_stride + c] - job->x_zero_point;
                    sum += (uint32_t)(xv * w[(i * g->kernel_w + j) * CK_QDW_BLOCK]);
                }
            }
            acc[c] = (int32_t)sum;
        }
        ck_q_store_scalar(acc, job->channels, 1, job->channels, row_pixel + ow, 0, &job->out);
    }
}

#ifdef CK_X86
/// 16 channels of x at p widened to int32 lanes minus the zero point (two vectors of 8); `live` < 16 reads only the
/// live bytes (the last block of the last pixel may end the buffer).
__attribute__((always_inline)) CK_AVX2 static inline void ck_qdw_load16(const uint8_t *p, int live, __m256i zp, __m256i *lo,
                                                                     __m256i *hi) {
    __m128i bytes;
    if (live == CK_QDW_BLOCK) {
        bytes = _mm_loadu_si128((const __m128i *)p);
    } else {
        uint8_t tmp[16] = {0};
        memcpy(tmp, p, (size_t)live);
        bytes = _mm_loadu_si128((const __m128i *)tmp);
    }
    *lo = _mm256_sub_epi32(_mm256_cvtepu8_epi32(bytes), zp);
    *hi = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_unpackhi_epi64(bytes, bytes)), zp);
}

/// One output row, one block of 16 channels at a time: four pixels per step where every tap is inside the row,
/// one at the borders (taps outside skipped), into the row's accumulators, then one store of the row.
CK_AVX2 static void ck_qdw_row_avx2(const ck_qdw_job *job, const uint8_t *image, int n, int oh) {
    const ck_conv_nhwc *g = &job->g;
    int ih_base = oh * g->stride_h - g->pad_top;
    int i0 = 0, i1 = g->kernel_h;
    while (i0 < i1 && ih_base + i0 * g->dilation_h < 0) i0++;
    while (i1 > i0 && ih_base + (i1 - 1) * g->dilation_h >= g->in_h) i1--;
    int kw = g->kernel_w;
    ptrdiff_t xs = g->x_stride, pixel_step = (ptrdiff_t)g->stride_w * xs, col_step = (ptrdiff_t)g->dilation_w * xs;
    int span = (kw - 1) * g->dilation_w;
    int first = g->pad_left > 0 ? ck_ceil_div(g->pad_left, g->stride_w) : 0;
    int last = g->in_w - 1 - span + g->pad_left < 0 ? -1 : (g->in_w - 1 - span + g->pad_left) / g->stride_w;
    if (last > g->out_w - 1) last = g->out_w - 1;
    int32_t *acc = ck_qdw_acc_buffer((size_t)g->out_w * CK_QDW_BLOCK);
    size_t row_pixel = ((size_t)n * g->out_h + oh) * g->out_w;
    __m256i zp = _mm256_set1_epi32(job->x_zero_point);
    for (int cb = 0; cb < job->blocks; cb++) {
        int c = cb * CK_QDW_BLOCK, live = ck_min(CK_QDW_BLOCK, job->channels - c);
        const int32_t *w = job->wide + (size_t)cb * job->taps * CK_QDW_BLOCK;
        for (int ow = 0; ow < g->out_w;) {
            int iw_first = ow * g->stride_w - g->pad_left;
            int32_t *a = acc + (size_t)ow * CK_QDW_BLOCK;
            if (live == CK_QDW_BLOCK && ow >= first && ow + 3 <= last) {
                __m256i a00 = _mm256_setzero_si256(), a01 = _mm256_setzero_si256(), a10 = _mm256_setzero_si256(), a11 = _mm256_setzero_si256();
                __m256i a20 = _mm256_setzero_si256(), a21 = _mm256_setzero_si256(), a30 = _mm256_setzero_si256(), a31 = _mm256_setzero_si256();
                for (int i = i0; i < i1; i++) {
                    const uint8_t *x = image + ((ptrdiff_t)(ih_base + i * g->dilation_h) * g->in_w + iw_first) * xs + c;
                    const int32_t *wr = w + (size_t)i * kw * CK_QDW_BLOCK;
                    for (int j = 0; j < kw; j++, x += col_step, wr += CK_QDW_BLOCK) {
                        __m256i w0 = _mm256_loadu_si256((const __m256i *)wr), w1 = _mm256_loadu_si256((const __m256i *)(wr + 8)), lo, hi;
#define CK_QDW_PIXEL(p)                                                         \
    ck_qdw_load16(x + (p) * pixel_step, CK_QDW_BLOCK, zp, &lo, &hi);            \
    a##p##0 = _mm256_add_epi32(a##p##0, _mm256_madd_epi16(lo, w0));            \
    a##p##1 = _mm256_add_epi32(a##p##1, _mm256_madd_epi16(hi, w1));
                        CK_QDW_PIXEL(0) CK_QDW_PIXEL(1) CK_QDW_PIXEL(2) CK_QDW_PIXEL(3)
#undef CK_QDW_PIXEL
                    }
                }
                _mm256_storeu_si256((__m256i *)(a + 0), a00); _mm256_storeu_si256((__m256i *)(a + 8), a01);
                _mm256_storeu_si256((__m256i *)(a + 16), a10); _mm256_storeu_si256((__m256i *)(a + 24), a11);
                _mm256_storeu_si256((__m256i *)(a + 32), a20); _mm256_storeu_si256((__m256i *)(a + 40), a21);
                _mm256_storeu_si256((__m256i *)(a + 48), a30); _mm256_storeu_si256((__m256i *)(a + 56), a31);
                ow += 4;
                continue;
            }
            __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
            for (int i = i0; i < i1; i++) {
                const uint8_t *row = image + (ptrdiff_t)(ih_base + i * g->dilation_h) * g->in_w * xs + c;
                for (int j = 0; j < kw; j++) {
                    int iw = iw_first + j * g->dilation_w;
                    if ((unsigned)iw >= (unsigned)g->in_w) continue;
                    const int32_t *wr = w + ((size_t)i * kw + j) * CK_QDW_BLOCK;
                    __m256i lo, hi;
                    ck_qdw_load16(row + (ptrdiff_t)iw * xs, live, zp, &lo, &hi);
                    s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(lo, _mm256_loadu_si256((const __m256i *)wr)));
                    s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(hi, _mm256_loadu_si256((const __m256i *)(wr + 8))));
                }
            }
            _mm256_storeu_si256((__m256i *)a, s0);
            _mm256_storeu_si256((__m256i *)(a + 8), s1);
            ow++;
        }
        ck_q_store_avx2(acc, CK_QDW_BLOCK, g->out_w, live, row_pixel, c, &job->out);
    }
}
#endif

static void ck_qdw_task(void *context, int index) {
    const ck_qdw_job *job = context;
    const ck_conv_nhwc *g = &job->g;
    int n = index / job->row_tasks, r0 = (index % job->row_tasks) * job->rows_per_task;
    int r1 = ck_min(g->out_h, r0 + job->rows_per_task);
    const uint8_t *image = job->x + (size_t)n * g->in_h * g->in_w * g->x_stride;
    for (int oh = r0; oh < r1; oh++) {
#ifdef CK_X86
        if (job->avx2) {
            ck_qdw_row_avx2(job, image, n, oh);
            continue;
        }
#endif
        ck_qdw_row_scalar(job, image, n, oh);
    }
}

void ck_qdepthwise2d_nhwc_with(const ck_conv_nhwc *geometry, const uint8_t *x, const void *packed_w,
                               const ck_qepilogue *epilogue, void *y, ck_isa isa, int threads) {
    ck_qdw_job job;
    memset(&job, 0, sizeof job);
    job.g = *geometry;
    const ck_conv_nhwc *g = &job.g;
    if (g->batch <= 0 || g->out_h <= 0 || g->out_w <= 0 || g->groups <= 0) return;
    job.x = x;
    job.w = packed_w;
    job.x_zero_point = epilogue->x_zero_point;
    job.taps = g->kernel_h * g->kernel_w;
    job.channels = g->groups;
    job.blocks = ck_ceil_div(job.channels, CK_QDW_BLOCK);
    job.avx2 = ck_isa_avx2(isa);
    int32_t *bias = calloc((size_t)job.channels, sizeof(int32_t));
    if (!bias) abort();
    if (epilogue->bias) memcpy(bias, epilogue->bias, (size_t)job.channels * sizeof(int32_t));
    job.out = (ck_qout){bias, epilogue->multiplier, epilogue->shift, epilogue->scale, epilogue->y_zero_point,
                        epilogue->clamp_min, epilogue->clamp_max, y, g->y_stride};
    int32_t *wide = NULL;
    if (job.avx2) {
        size_t count = (size_t)job.blocks * job.taps * CK_QDW_BLOCK;
        wide = malloc(count * sizeof(int32_t));
        if (!wide) abort();
        for (size_t i = 0; i < count; i++) wide[i] = (int32_t)(uint16_t)(int16_t)job.w[i];
        job.wide = wide;
    }
    double work = (double)g->batch * g->out_h * g->out_w * g->groups * job.taps;
    if (threads <= 0) threads = ck_num_threads();
    if (work < CK_Q_PARALLEL_MIN_WORK / 4) threads = 1;
    int wanted = threads > 1 ? threads * CK_QDW_TASKS_PER_THREAD : 1;
    int per_image = ck_ceil_div(wanted, g->batch);
    if (per_image > g->out_h) per_image = g->out_h;
    job.rows_per_task = ck_ceil_div(g->out_h, per_image);
    job.row_tasks = ck_ceil_div(g->out_h, job.rows_per_task);
    int tasks = g->batch * job.row_tasks;
    if (threads > 1) ck_parallel_run(threads, tasks, ck_qdw_task, &job);
    else for (int i = 0; i < tasks; i++) ck_qdw_task(&job, i);
    free(wide);
    free(bias);
}

void ck_qdepthwise2d_nhwc(const ck_conv_nhwc *geometry, const uint8_t *x, const void *packed_w, const ck_qepilogue *epilogue,
                          void *y) {
    ck_qdepthwise2d_nhwc_with(geometry, x, packed_w, epilogue, y, CK_ISA_AUTO, 0);
}
