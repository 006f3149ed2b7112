// qdepthwise.c — quantized depthwise 2-D convolution of channels-last u8 tensors (one 2-D int8 filter per channel),
// with the requantizing epilogue of the quantized convolution. Contract: include/ckernels.h.
//
// Each output is bias + Σ (x − x_zero_point)·w over the taps inside the image. The scalar reference computes exactly
// that. The vector forms widen x to s16 and interleave two taps' channels, so that VPMADDWD against (w_t, w_t+1)
// pairs sums two taps per 32-bit lane exactly; the zero point moves into the bias as −x_zp·Σw (the packed sums), and
// taps outside the image read x_zp, adding 0. Four pixels share each weight load. A 3×3 depthwise layer has 9
// multiply-adds per output, so the requantization (ck_quant.h's folded form: about 14 µops per 8 outputs on AVX2)
// costs as much as the sums.
#define _GNU_SOURCE
#include "ck_quant.h"

#include <stdlib.h>
#include <string.h>

#define CK_QDW_BLOCK 16
/// Tasks per thread the grid aims for (as CK_CONV_TASKS_PER_THREAD).
#define CK_QDW_TASKS_PER_THREAD 8
/// Kernel taps the vector path takes (11×11); larger kernels run the scalar loops.
#define CK_QDW_MAX_TAPS 121
/// Output pixels of a row the vector path computes per pass over the channel blocks: their input (kernel_h rows of
/// about 16·stride pixels, 7 KB at 144 channels) stays in L1 while every block reads it.
#define CK_QDW_CHUNK 16

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
    const int16_t *wide;       // AVX2: tap pairs of s16 weights (ck_qdw_widen_weights)
    const uint8_t *pad_row;    // AVX2: a row of the input's size filled with x_zero_point (kernel rows outside the image)
    ck_qout out;
    ck_qout permuted;          // AVX-512: bias, multipliers and shifts per 32-channel block in ck_qdw_lane512 order
                               // (lo 16, then hi 16; zeros past the last channel), for the folded epilogue
    int32_t x_zero_point;
    int taps, channels, blocks, rows_per_task, row_tasks, avx2, avx512;
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
/// Channel order of the AVX2 accumulators: VPUNPCKLWD/VPUNPCKHWD interleave two taps' s16 channels within each 128-bit
/// half, so the low product holds channels 0–3 and 8–11, the high one 4–7 and 12–15.
static const int ck_qdw_lanes[2][8] = {{0, 1, 2, 3, 8, 9, 10, 11}, {4, 5, 6, 7, 12, 13, 14, 15}};

/// The AVX2 weights of one call: per block of 16 channels and pair of taps (2t, 2t + 1; the last alone with a zero
/// partner when taps are odd), two vectors of 8 (w_2t, w_2t+1) s16 pairs in ck_qdw_lanes order — made by VPUNPCK?WD
/// of the two taps' s16 channels, the same instruction that pairs the inputs.
CK_AVX2 static void ck_qdw_widen_weights_avx2(const ck_qdw_job *job, int16_t *wide) {
    int taps = job->taps, pairs = (taps + 1) / 2;
    for (int cb = 0; cb < job->blocks; cb++) {
        const int8_t *w = job->w + (size_t)cb * taps * CK_QDW_BLOCK;
        for (int pp = 0; pp < pairs; pp++) {
            __m256i a = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + (size_t)(2 * pp) * CK_QDW_BLOCK)));
            __m256i b = 2 * pp + 1 < taps ? _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + (size_t)(2 * pp + 1) * CK_QDW_BLOCK)))
                                          : _mm256_setzero_si256();
            int16_t *d = wide + ((size_t)cb * pairs + pp) * 32;
            _mm256_storeu_si256((__m256i *)d, _mm256_unpacklo_epi16(a, b));
            _mm256_storeu_si256((__m256i *)(d + 16), _mm256_unpackhi_epi16(a, b));
        }
    }
}

/// 16 channels at p as s16; `live` < 16 reads only the live bytes (the last block of the last pixel may end the
/// buffer).
__attribute__((always_inline)) CK_AVX2 static inline __m256i ck_qdw_load16(const uint8_t *p, int live) {
    if (live == CK_QDW_BLOCK) return _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p));
    uint8_t tmp[16] = {0};
    memcpy(tmp, p, (size_t)live);
    return _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)tmp));
}

/// The two permuted accumulators of 16 channels back in channel order, to acc[0 … 15].
CK_AVX2 static inline void ck_qdw_store_acc(int32_t *acc, __m256i lo, __m256i hi) {
    _mm256_storeu_si256((__m256i *)acc, _mm256_permute2x128_si256(lo, hi, 0x20));
    _mm256_storeu_si256((__m256i *)(acc + 8), _mm256_permute2x128_si256(lo, hi, 0x31));
}

/// One output row in chunks of CK_QDW_CHUNK pixels; per chunk, each block of 16 channels: four pixels per step where
/// every tap is inside the row, one at the borders, then one store of the chunk's block (the requantization's
/// per-column constants serve the whole chunk, and the chunk's input stays in L1 while the blocks pass over it).
/// Taps go in pairs of x (u8 widened to s16) against w (VPMADDWD sums each pair exactly into s32); the bias carries
/// −x_zp·Σw, and taps outside the image read x_zp, adding exactly 0 — kernel rows outside the image through a row of
/// x_zp (job->pad_row), columns outside it (borders only) as a vector of x_zp.
CK_AVX2 static void ck_qdw_row_avx2(const ck_qdw_job *job, const uint8_t *image, int n, int oh) {
    const ck_conv_nhwc *g = &job->g;
    int taps = job->taps, pairs = (taps + 1) / 2, kw = g->kernel_w;
    ptrdiff_t xs = g->x_stride, pixel_step = (ptrdiff_t)g->stride_w * xs;
    int ih_base = oh * g->stride_h - g->pad_top;
    // Per tap: the start of its input row (the x_zp row outside the image), its column offset; the odd tap's
    // partner is the last tap again (against zero weights).
    const uint8_t *row[CK_QDW_MAX_TAPS + 1];
    int column[CK_QDW_MAX_TAPS + 1], row_ok[CK_QDW_MAX_TAPS + 1];
    for (int t = 0; t <= taps; t++) {
        int tt = t < taps ? t : taps - 1, i = tt / kw, j = tt % kw, ih = ih_base + i * g->dilation_h;
        row_ok[t] = (unsigned)ih < (unsigned)g->in_h;
        row[t] = row_ok[t] ? image + (ptrdiff_t)ih * g->in_w * xs : job->pad_row;
        column[t] = j * g->dilation_w;
    }
    int span = (kw - 1) * g->dilation_w;
    int first = g->pad_left > 0 ? ck_ceil_div(g->pad_left, g->stride_w) : 0;
    int last = g->in_w - 1 - span + g->pad_left < 0 ? -1 : (g->in_w - 1 - span + g->pad_left) / g->stride_w;
    if (last > g->out_w - 1) last = g->out_w - 1;
    int32_t acc[CK_QDW_CHUNK * CK_QDW_BLOCK];
    size_t row_pixel = ((size_t)n * g->out_h + oh) * g->out_w;
    const __m256i zp = _mm256_set1_epi16((short)job->x_zero_point), zero = _mm256_setzero_si256();
    // The left border's pixels, then chunks from `first`, so that the 4-pixel steps never straddle a chunk (a row
    // that fits one chunk is one chunk: the steps start at `first` anyway).
    for (int ow0 = 0, ow1; ow0 < g->out_w; ow0 = ow1) {
        ow1 = g->out_w <= CK_QDW_CHUNK ? g->out_w : ck_min(g->out_w, ow0 < first ? ck_min(first, ow0 + CK_QDW_CHUNK) : ow0 + CK_QDW_CHUNK);
        for (int cb = 0; cb < job->blocks; cb++) {
            int c = cb * CK_QDW_BLOCK, live = ck_min(CK_QDW_BLOCK, job->channels - c);
            const int16_t *w = job->wide + (size_t)cb * pairs * 32;
            for (int ow = ow0; ow < ow1;) {
                int iw_first = ow * g->stride_w - g->pad_left;
                int32_t *a = acc + (size_t)(ow - ow0) * CK_QDW_BLOCK;
                if (live == CK_QDW_BLOCK && ow >= first && ow + 3 <= last && ow + 3 < ow1) {
                    __m256i l0 = zero, h0 = zero, l1 = zero, h1 = zero, l2 = zero, h2 = zero, l3 = zero, h3 = zero;
                    ptrdiff_t base = (ptrdiff_t)iw_first * xs + c;
                    for (int pp = 0; pp < pairs; pp++) {
                        const uint8_t *x0 = row[2 * pp] + base + (ptrdiff_t)column[2 * pp] * xs;
                        const uint8_t *x1 = row[2 * pp + 1] + base + (ptrdiff_t)column[2 * pp + 1] * xs;
                        __m256i wl = _mm256_loadu_si256((const __m256i *)(w + pp * 32)), wh = _mm256_loadu_si256((const __m256i *)(w + pp * 32 + 16));
#define CK_QDW_PIXEL(p)                                                                                     \
    {                                                                                                       \
        __m256i u = ck_qdw_load16(x0 + (p) * pixel_step, CK_QDW_BLOCK);                                     \
        __m256i v = ck_qdw_load16(x1 + (p) * pixel_step, CK_QDW_BLOCK);                                     \
        l##p = _mm256_add_epi32(l##p, _mm256_madd_epi16(_mm256_unpacklo_epi16(u, v), wl));                  \
        h##p = _mm256_add_epi32(h##p, _mm256_madd_epi16(_mm256_unpackhi_epi16(u, v), wh));                  \
    }
                        CK_QDW_PIXEL(0) CK_QDW_PIXEL(1) CK_QDW_PIXEL(2) CK_QDW_PIXEL(3)
#undef CK_QDW_PIXEL
                    }
                    ck_qdw_store_acc(a, l0, h0);
                    ck_qdw_store_acc(a + 16, l1, h1);
                    ck_qdw_store_acc(a + 32, l2, h2);
                    ck_qdw_store_acc(a + 48, l3, h3);
                    ow += 4;
                    continue;
                }
                __m256i lo = zero, hi = zero;
                for (int pp = 0; pp < pairs; pp++) {
                    int t0 = 2 * pp, t1 = 2 * pp + 1;
                    int iw0 = iw_first + column[t0], iw1 = iw_first + column[t1];
                    __m256i u = row_ok[t0] && (unsigned)iw0 < (unsigned)g->in_w ? ck_qdw_load16(row[t0] + (ptrdiff_t)iw0 * xs + c, live) : zp;
                    __m256i v = row_ok[t1] && (unsigned)iw1 < (unsigned)g->in_w ? ck_qdw_load16(row[t1] + (ptrdiff_t)iw1 * xs + c, live) : zp;
                    lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(u, v), _mm256_loadu_si256((const __m256i *)(w + pp * 32))));
                    hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(u, v), _mm256_loadu_si256((const __m256i *)(w + pp * 32 + 16))));
                }
                ck_qdw_store_acc(a, lo, hi);
                ow++;
            }
            ck_q_store_avx2(acc, CK_QDW_BLOCK, ow1 - ow0, live, row_pixel + ow0, c, &job->out);
        }
    }
}

// MARK: - AVX-512

/// Channels per AVX-512 block, and the accumulator order: VPUNPCK?WD on zmm interleaves within each 128-bit lane, so
/// the low product holds channels 8k + 0…3 of each lane k, the high one 8k + 4…7.
#define CK_QDW_BLOCK512 32

static inline int ck_qdw_lane512(int h, int l) { return (l / 4) * 8 + h * 4 + l % 4; }

/// The AVX-512 weights (32-channel blocks): per block and tap pair, two vectors of 16 (w_2t, w_2t+1) pairs in
/// ck_qdw_lane512 order, from the two packed 16-channel blocks' taps widened and interleaved as the inputs are.
CK_AVX512_VNNI static void ck_qdw_widen_weights512_avx512(const ck_qdw_job *job, int16_t *wide) {
    int taps = job->taps, pairs = (taps + 1) / 2, blocks = ck_ceil_div(job->channels, CK_QDW_BLOCK512);
    for (int cb = 0; cb < blocks; cb++) {
        const int8_t *lo = job->w + (size_t)(2 * cb) * taps * CK_QDW_BLOCK;
        const int8_t *hi = 2 * cb + 1 < job->blocks ? lo + (size_t)taps * CK_QDW_BLOCK : NULL;
        for (int pp = 0; pp < pairs; pp++) {
            __m512i tap[2];
            for (int k = 0; k < 2; k++) {
                int t = 2 * pp + k;
                __m128i l = t < taps ? _mm_loadu_si128((const __m128i *)(lo + (size_t)t * CK_QDW_BLOCK)) : _mm_setzero_si128();
                __m128i h = t < taps && hi ? _mm_loadu_si128((const __m128i *)(hi + (size_t)t * CK_QDW_BLOCK)) : _mm_setzero_si128();
                tap[k] = _mm512_cvtepi8_epi16(_mm256_inserti128_si256(_mm256_castsi128_si256(l), h, 1));
            }
            int16_t *d = wide + ((size_t)cb * pairs + pp) * 64;
            _mm512_storeu_si512(d, _mm512_unpacklo_epi16(tap[0], tap[1]));
            _mm512_storeu_si512(d + 32, _mm512_unpackhi_epi16(tap[0], tap[1]));
        }
    }
}

CK_AVX512_VNNI static inline __m512i ck_qdw_load32(const uint8_t *p, __mmask32 live) {
    return _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(live, p));
}

CK_AVX512_VNNI static inline void ck_qdw_store_acc512(int32_t *acc, __m512i lo, __m512i hi) {
    const __m512i first = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), second = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
    _mm512_storeu_si512(acc, _mm512_permutex2var_epi64(lo, first, hi));
    _mm512_storeu_si512(acc + 16, _mm512_permutex2var_epi64(lo, second, hi));
}

/// The folded requantization's constants of one 32-channel block in the accumulators' order (ck_qdw_lane512), and
/// the clamps.
typedef struct {
    ck_q16_cols lo, hi;
    __m512i clamp_lo, clamp_hi;
} ck_qdw_epilogue512;

/// One pixel's 32 outputs from its two accumulators, requantized in registers (the folded form) and stored: the
/// saturating pack of the low and the high accumulator puts each 128-bit lane's 8 channels back in order.
__attribute__((always_inline)) CK_AVX512_VNNI static inline void ck_qdw_emit512(const ck_qdw_epilogue512 *e, __m512i l, __m512i h,
                                                                              uint8_t *y, __mmask32 mask, const int clamp_high) {
    __m512i a = _mm512_max_epi32(ck_q16_round_folded(_mm512_add_epi32(l, e->lo.bias), &e->lo), e->clamp_lo);
    __m512i b = _mm512_max_epi32(ck_q16_round_folded(_mm512_add_epi32(h, e->hi.bias), &e->hi), e->clamp_lo);
    if (clamp_high) {
        a = _mm512_min_epi32(a, e->clamp_hi);
        b = _mm512_min_epi32(b, e->clamp_hi);
    }
    _mm256_mask_storeu_epi8(y, mask, _mm512_cvtusepi16_epi8(_mm512_packs_epi32(a, b)));
}

/// 32 channels at p as s16 (the whole vector live: one load-and-widen).
__attribute__((always_inline)) CK_AVX512_VNNI static inline __m512i ck_qdw_load32_as(const uint8_t *p, __mmask32 live, const int full) {
    return full ? _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)p)) : ck_qdw_load32(p, live);
}

/// ck_qdw_row_avx2 on 32 channels per vector, with vpdpwssd summing each tap pair into the accumulators. A block
/// whose channels all take the folded requantization (ck_quant.h) is requantized in registers per pixel; the others
/// go through the chunk's accumulators and ck_q_store_avx512.
__attribute__((always_inline)) CK_AVX512_VNNI static inline void ck_qdw_row_avx512_with(const ck_qdw_job *job, const uint8_t *image,
                                                                                      int n, int oh, const int full,
                                                                                      const int clamp_high) {
    const ck_conv_nhwc *g = &job->g;
    int taps = job->taps, pairs = (taps + 1) / 2, kw = g->kernel_w;
    ptrdiff_t xs = g->x_stride, pixel_step = (ptrdiff_t)g->stride_w * xs;
    int ih_base = oh * g->stride_h - g->pad_top;
    const uint8_t *row[CK_QDW_MAX_TAPS + 1];
    int column[CK_QDW_MAX_TAPS + 1], row_ok[CK_QDW_MAX_TAPS + 1];
    for (int t = 0; t <= taps; t++) {
        int tt = t < taps ? t : taps - 1, i = tt / kw, j = tt % kw, ih = ih_base + i * g->dilation_h;
        row_ok[t] = (unsigned)ih < (unsigned)g->in_h;
        row[t] = row_ok[t] ? image + (ptrdiff_t)ih * g->in_w * xs : job->pad_row;
        column[t] = j * g->dilation_w;
    }
    int span = (kw - 1) * g->dilation_w;
    int first = g->pad_left > 0 ? ck_ceil_div(g->pad_left, g->stride_w) : 0;
    int last = g->in_w - 1 - span + g->pad_left < 0 ? -1 : (g->in_w - 1 - span + g->pad_left) / g->stride_w;
    if (last > g->out_w - 1) last = g->out_w - 1;
    int32_t acc[CK_QDW_CHUNK * CK_QDW_BLOCK512];
    size_t row_pixel = ((size_t)n * g->out_h + oh) * g->out_w;
    const __m512i zp = _mm512_set1_epi16((short)job->x_zero_point), zero = _mm512_setzero_si512();
    int blocks = ck_ceil_div(job->channels, CK_QDW_BLOCK512);
    ck_qdw_epilogue512 e;
    e.clamp_lo = _mm512_set1_epi32(job->out.clamp_min);
    e.clamp_hi = _mm512_set1_epi32(job->out.clamp_max);
    for (int ow0 = 0, ow1; ow0 < g->out_w; ow0 = ow1) {
        ow1 = g->out_w <= CK_QDW_CHUNK ? g->out_w : ck_min(g->out_w, ow0 < first ? ck_min(first, ow0 + CK_QDW_CHUNK) : ow0 + CK_QDW_CHUNK);
        for (int cb = 0; cb < blocks; cb++) {
            int c = cb * CK_QDW_BLOCK512, live = ck_min(CK_QDW_BLOCK512, job->channels - c);
            if (full != (live == CK_QDW_BLOCK512)) continue;  // the last block runs in the masked form
            __mmask32 mask = live >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << live) - 1);
            const int16_t *w = job->wide + (size_t)cb * pairs * 64;
            // (A block of 16 channels or fewer has live channels in both accumulators: the chunk's store does half
            // the requantization.)
            int folded = job->permuted.bias && !job->out.residual && live > 16 && ck_q_folded(&job->out, c, live);
            if (folded) {
                e.lo = ck_q16_columns(&job->permuted, c, 16);
                e.hi = ck_q16_columns(&job->permuted, c + 16, 16);
            }
            uint8_t *y = (uint8_t *)job->out.y + row_pixel * job->out.y_stride + c;
            for (int ow = ow0; ow < ow1;) {
                int iw_first = ow * g->stride_w - g->pad_left;
                int32_t *a = acc + (size_t)(ow - ow0) * CK_QDW_BLOCK512;
                if (ow >= first && ow + 3 <= last && ow + 3 < ow1) {
                    __m512i l0 = zero, h0 = zero, l1 = zero, h1 = zero, l2 = zero, h2 = zero, l3 = zero, h3 = zero;
                    ptrdiff_t base = (ptrdiff_t)iw_first * xs + c;
                    for (int pp = 0; pp < pairs; pp++) {
                        const uint8_t *x0 = row[2 * pp] + base + (ptrdiff_t)column[2 * pp] * xs;
                        const uint8_t *x1 = row[2 * pp + 1] + base + (ptrdiff_t)column[2 * pp + 1] * xs;
                        __m512i wl = _mm512_loadu_si512(w + pp * 64), wh = _mm512_loadu_si512(w + pp * 64 + 32);
#define CK_QDW_PIXEL(p)                                                                                               \
    {                                                                                                                 \
        __m512i u = ck_qdw_load32_as(x0 + (p) * pixel_step, mask, full), v = ck_qdw_load32_as(x1 + (p) * pixel_step, mask, full); \
        l##p = _mm512_dpwssd_epi32(l##p, _mm512_unpacklo_epi16(u, v), wl);                                            \
        h##p = _mm512_dpwssd_epi32(h##p, _mm512_unpackhi_epi16(u, v), wh);                                            \
    }
                        CK_QDW_PIXEL(0) CK_QDW_PIXEL(1) CK_QDW_PIXEL(2) CK_QDW_PIXEL(3)
#undef CK_QDW_PIXEL
                    }
                    if (folded) {
                        ptrdiff_t ys = job->out.y_stride;
                        ck_qdw_emit512(&e, l0, h0, y + (ptrdiff_t)ow * ys, mask, clamp_high);
                        ck_qdw_emit512(&e, l1, h1, y + (ptrdiff_t)(ow + 1) * ys, mask, clamp_high);
                        ck_qdw_emit512(&e, l2, h2, y + (ptrdiff_t)(ow + 2) * ys, mask, clamp_high);
                        ck_qdw_emit512(&e, l3, h3, y + (ptrdiff_t)(ow + 3) * ys, mask, clamp_high);
                    } else {
                        ck_qdw_store_acc512(a, l0, h0);
                        ck_qdw_store_acc512(a + 32, l1, h1);
                        ck_qdw_store_acc512(a + 64, l2, h2);
                        ck_qdw_store_acc512(a + 96, l3, h3);
                    }
                    ow += 4;
                    continue;
                }
                __m512i lo = zero, hi = zero;
                for (int pp = 0; pp < pairs; pp++) {
                    int t0 = 2 * pp, t1 = 2 * pp + 1;
                    int iw0 = iw_first + column[t0], iw1 = iw_first + column[t1];
                    __m512i u = row_ok[t0] && (unsigned)iw0 < (unsigned)g->in_w ? ck_qdw_load32_as(row[t0] + (ptrdiff_t)iw0 * xs + c, mask, full) : zp;
                    __m512i v = row_ok[t1] && (unsigned)iw1 < (unsigned)g->in_w ? ck_qdw_load32_as(row[t1] + (ptrdiff_t)iw1 * xs + c, mask, full) : zp;
                    lo = _mm512_dpwssd_epi32(lo, _mm512_unpacklo_epi16(u, v), _mm512_loadu_si512(w + pp * 64));
                    hi = _mm512_dpwssd_epi32(hi, _mm512_unpackhi_epi16(u, v), _mm512_loadu_si512(w + pp * 64 + 32));
                }
                if (folded) ck_qdw_emit512(&e, lo, hi, y + (ptrdiff_t)ow * job->out.y_stride, mask, clamp_high);
                else ck_qdw_store_acc512(a, lo, hi);
                ow++;
            }
            if (!folded) ck_q_store_avx512(acc, CK_QDW_BLOCK512, ow1 - ow0, live, row_pixel + ow0, c, &job->out);
        }
    }
}

/// ck_qdw_row_avx512_with for the full blocks (plain loads), then the last partial block (masked loads).
CK_AVX512_VNNI static void ck_qdw_row_avx512(const ck_qdw_job *job, const uint8_t *image, int n, int oh) {
    int clamp_high = job->out.clamp_max != 255;
    if (clamp_high) ck_qdw_row_avx512_with(job, image, n, oh, 1, 1);
    else ck_qdw_row_avx512_with(job, image, n, oh, 1, 0);
    if (job->channels % CK_QDW_BLOCK512 != 0) ck_qdw_row_avx512_with(job, image, n, oh, 0, clamp_high);
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
        if (job->avx512) {
            ck_qdw_row_avx512(job, image, n, oh);
            continue;
        }
        if (job->avx2) {
            ck_qdw_row_avx2(job, image, n, oh);
            continue;
        }
#endif
        ck_qdw_row_scalar(job, image, n, oh);
    }
}

/// The job fields a call and ck_qdw_prepare share: geometry, weights, sizes and the vector paths for `isa`.
static void ck_qdw_job_setup(ck_qdw_job *job, const ck_conv_nhwc *g, const void *packed_w, ck_isa isa) {
    memset(job, 0, sizeof *job);
    job->g = *g;
    job->w = packed_w;
    job->taps = g->kernel_h * g->kernel_w;
    job->channels = g->groups;
    job->blocks = ck_ceil_div(job->channels, CK_QDW_BLOCK);
    job->avx2 = ck_isa_avx2(isa) && job->taps <= CK_QDW_MAX_TAPS;
    job->avx512 = job->avx2 && ck_isa_avx512_vnni(isa);
}

/// The path code ck_qprepared records for a job.
static int ck_qdw_path(const ck_qdw_job *job) { return job->avx512 ? 2 : job->avx2 ? 1 : 0; }

ck_qprepared *ck_qdw_prepare(const ck_conv_nhwc *g, const void *packed_w, const ck_qepilogue *e, ck_isa isa) {
    ck_qdw_job job;
    ck_qdw_job_setup(&job, g, packed_w, isa);
    ck_qprepared *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    *p = (ck_qprepared){.depthwise = 1, .path = ck_qdw_path(&job), .channels = job.channels, .k = job.taps,
                        .x_zero_point = e->x_zero_point};
    // The vector path's bias carries −x_zp·Σw (wrapping, as the sums); the scalar reference subtracts x_zp from x.
    const int32_t *sums = (const int32_t *)(const void *)(job.w + (size_t)job.blocks * job.taps * CK_QDW_BLOCK);
    if (!ck_qprepared_bias(p, e, sums, job.avx2 ? (uint32_t)0 - (uint32_t)e->x_zero_point : 0)) {
        ck_qprepared_release(p);
        return NULL;
    }
#ifdef CK_X86
    if (job.avx2) {
        int blocks512 = ck_ceil_div(job.channels, CK_QDW_BLOCK512);
        p->wide = malloc((job.avx512 ? (size_t)blocks512 * 64 : (size_t)job.blocks * 32) * ((job.taps + 1) / 2) * sizeof(int16_t));
        if (!p->wide) {
            ck_qprepared_release(p);
            return NULL;
        }
        if (job.avx512) ck_qdw_widen_weights512_avx512(&job, p->wide);
        else ck_qdw_widen_weights_avx2(&job, p->wide);
        if (job.avx512 && !e->scale) {
            // The folded epilogue's constants in the accumulators' lane order (ck_qdw_lane512).
            size_t lanes = (size_t)blocks512 * CK_QDW_BLOCK512;
            p->permuted = malloc(3 * lanes * sizeof(int32_t));
            if (!p->permuted) {
                ck_qprepared_release(p);
                return NULL;
            }
            p->permuted_lanes = lanes;
            for (size_t i = 0; i < lanes; i++) {
                int c = (int)(i / CK_QDW_BLOCK512) * CK_QDW_BLOCK512 + ck_qdw_lane512((int)(i % 32) / 16, (int)(i % 16));
                int live = c < job.channels;
                p->permuted[i] = live ? p->bias[c] : 0;
                p->permuted[lanes + i] = live ? e->multiplier[c] : 0;
                p->permuted[2 * lanes + i] = live ? e->shift[c] : -1;
            }
        }
    }
#endif
    return p;
}

void ck_qdepthwise2d_nhwc_with(const ck_conv_nhwc *geometry, const uint8_t *x, const void *packed_w,
                               const ck_qepilogue *epilogue, void *y, ck_isa isa, int threads) {
    if (geometry->batch <= 0 || geometry->out_h <= 0 || geometry->out_w <= 0 || geometry->groups <= 0) return;
    ck_qdw_job job;
    ck_qdw_job_setup(&job, geometry, packed_w, isa);
    const ck_conv_nhwc *g = &job.g;
    job.x = x;
    job.x_zero_point = epilogue->x_zero_point;
    // The layer's bias, folding plan, widened weights and lane-ordered constants: prepared once (ck_qconv_prepare)
    // or derived for this call.
    const ck_qprepared *prepared = ck_qprepared_for(epilogue, 1, ck_qdw_path(&job), job.channels, job.taps);
    ck_qprepared *own = NULL;
    if (!prepared) {
        own = ck_qdw_prepare(g, packed_w, epilogue, isa);
        if (!own) abort();  // out of memory, as Swift traps on a failed allocation
        prepared = own;
    }
    job.out = (ck_qout){prepared->bias, epilogue->multiplier, epilogue->shift, epilogue->scale, epilogue->y_zero_point,
                        epilogue->clamp_min, epilogue->clamp_max, y, g->y_stride, prepared->unfolded};
    ck_q_set_residual(&job.out, epilogue);
    job.wide = prepared->wide;
    if (prepared->permuted) {
        size_t lanes = prepared->permuted_lanes;
        job.permuted = job.out;
        job.permuted.bias = prepared->permuted;
        job.permuted.multiplier = prepared->permuted + lanes;
        job.permuted.shift = prepared->permuted + 2 * lanes;
        job.permuted.unfolded = NULL;
    }
    uint8_t *pad_row = NULL;
#ifdef CK_X86
    if (job.avx2) {
        pad_row = malloc((size_t)g->in_w * g->x_stride + 16);
        if (!pad_row) abort();
        memset(pad_row, (int)job.x_zero_point, (size_t)g->in_w * g->x_stride + 16);
        job.pad_row = pad_row;
    }
#endif
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
    free(pad_row);
    ck_qprepared_release(own);
}

void ck_qdepthwise2d_nhwc(const ck_conv_nhwc *geometry, const uint8_t *x, const void *packed_w, const ck_qepilogue *epilogue,
                          void *y) {
    ck_qdepthwise2d_nhwc_with(geometry, x, packed_w, epilogue, y, CK_ISA_AUTO, 0);
}
