// ck_quant.h — what the quantized kernels (qconv_nhwc.c, qdepthwise.c) share: TFLite's fixed-point requantization
// in scalar, AVX2 and AVX-512 form (bit-identical by construction: the same integer operations lane by lane), and
// the tile epilogues that turn int32 accumulators into u8 or f32 outputs. Formulas: include/ckernels.h,
// "Quantized (u8 × s8) channels-last convolution". Not installed; include only from Sources/CKernels/*.c.
#ifndef CK_QUANT_H
#define CK_QUANT_H

#include "ck_internal.h"

#include <stdlib.h>
#include <string.h>

/// 4 bytes at p as one native int32 (any alignment; compiles to a plain load).
static inline int32_t ck_q_load32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/// The per-call output description every quantized tile epilogue reads; the per-channel arrays are indexed by
/// output channel (of all groups).
typedef struct {
    const int32_t *bias;        // the kernel's bias: the caller's, or with the zero point folded in (never NULL)
    const int32_t *multiplier;  // u8 output
    const int32_t *shift;
    const float *scale;         // f32 output (then multiplier and shift are unused), or NULL
    int32_t y_zero_point, clamp_min, clamp_max;
    void *y;                    // the output tensor
    ptrdiff_t y_stride;         // elements between pixels
    // Folded requantization (below): unfolded[c] = how many of channels 0 …< c cannot take it (channels + 1
    // entries, from ck_q_plan_folding), or NULL: none can.
    const int32_t *unfolded;
    // A fused quantized Add (ck_qepilogue's residual fields), or residual NULL.
    const uint8_t *residual;
    ptrdiff_t residual_stride;
    float add_ka, add_kb;
    int32_t add_za, add_zb, add_zy, residual_is_a;
} ck_qout;

/// The residual fields of a ck_qepilogue into a ck_qout.
static inline void ck_q_set_residual(ck_qout *out, const ck_qepilogue *e) {
    out->residual = e->scale ? NULL : e->residual;
    out->residual_stride = e->residual_stride;
    out->add_ka = e->add_ka;
    out->add_kb = e->add_kb;
    out->add_za = e->add_za;
    out->add_zb = e->add_zb;
    out->add_zy = e->add_zy;
    out->residual_is_a = e->residual_is_a;
}

/// ck_qadd_u8_float of one pair (quantize.c's QLinearAdd and the fused residual share it, so both give the same
/// bytes): y = saturate(round_half_even(fmaf(b − zb, kb, (a − za)·ka)) + zy), the sum clamped to ±512 first.
static inline uint8_t ck_q_add_float1(uint8_t a, uint8_t b, float ka, float kb, int za, int zb, int zy) {
    float v = fmaf((float)((int)b - zb), kb, (float)((int)a - za) * ka);
    v = v < -512.0f ? -512.0f : v > 512.0f ? 512.0f : v;
    int q = (int)nearbyintf(v) + zy;
    return (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
}

/// A convolution output byte y with the residual byte r through the fused Add.
static inline uint8_t ck_q_add_residual1(uint8_t y, uint8_t r, const ck_qout *out) {
    return out->residual_is_a ? ck_q_add_float1(r, y, out->add_ka, out->add_kb, out->add_za, out->add_zb, out->add_zy)
                              : ck_q_add_float1(y, r, out->add_ka, out->add_kb, out->add_za, out->add_zb, out->add_zy);
}

static inline int ck_q_clamp_shift(int s) { return s < 0 ? 0 : s > 31 ? 31 : s; }

/// round_fixed(x, multiplier, shift) of the header, in portable C without signed overflow: TFLite's
/// SaturatingRoundingDoublingHighMul and RoundingDivideByPOT written out.
static inline int32_t ck_q_round_fixed(int32_t x, int32_t multiplier, int shift) {
    int left = ck_q_clamp_shift(shift), right = ck_q_clamp_shift(-shift);
    int32_t a = (int32_t)((uint32_t)x << left);
    int32_t high;
    if (a == INT32_MIN && multiplier == INT32_MIN) {
        high = INT32_MAX;
    } else {
        int64_t ab = (int64_t)a * multiplier;
        int64_t nudge = ab >= 0 ? (1 << 30) : 1 - (1 << 30);
        high = (int32_t)((ab + nudge) / ((int64_t)1 << 31));  // truncating division, as TFLite's
    }
    uint32_t mask = (uint32_t)(((uint64_t)1 << right) - 1);
    int32_t remainder = (int32_t)((uint32_t)high & mask);
    int32_t threshold = (int32_t)(mask >> 1) + (high < 0 ? 1 : 0);
    int32_t floor = (int32_t)(((int64_t)high - remainder) / ((int64_t)1 << right));  // exact: high − remainder is a multiple
    return floor + (remainder > threshold ? 1 : 0);
}

/// One u8 output from its accumulator (bias included).
static inline uint8_t ck_q_u8_scalar(int32_t acc, int32_t multiplier, int32_t shift, const ck_qout *out) {
    int32_t v = (int32_t)((uint32_t)out->y_zero_point + (uint32_t)ck_q_round_fixed(acc, multiplier, shift));
    v = v < out->clamp_min ? out->clamp_min : v;
    v = v > out->clamp_max ? out->clamp_max : v;
    return (uint8_t)v;
}

/// Stores a tile's outputs: rows × cols accumulators (acc[r·acc_stride + col], the bias not yet added) for output
/// pixels pixel0 … and channels col0 …
static inline void ck_q_store_scalar(const int32_t *acc, int acc_stride, int rows, int cols, size_t pixel0, int col0,
                                     const ck_qout *out) {
    for (int r = 0; r < rows; r++) {
        const int32_t *a = acc + (size_t)r * acc_stride;
        if (out->scale) {
            float *y = (float *)out->y + (pixel0 + r) * out->y_stride + col0;
            for (int col = 0; col < cols; col++)
                y[col] = (float)(int32_t)((uint32_t)a[col] + (uint32_t)out->bias[col0 + col]) * out->scale[col0 + col];
        } else {
            uint8_t *y = (uint8_t *)out->y + (pixel0 + r) * out->y_stride + col0;
            for (int col = 0; col < cols; col++)
                y[col] = ck_q_u8_scalar((int32_t)((uint32_t)a[col] + (uint32_t)out->bias[col0 + col]), out->multiplier[col0 + col],
                                        out->shift[col0 + col], out);
            if (out->residual) {
                const uint8_t *res = out->residual + (pixel0 + r) * out->residual_stride + col0;
                for (int col = 0; col < cols; col++) y[col] = ck_q_add_residual1(y[col], res[col], out);
            }
        }
    }
}

// MARK: - The folded requantization
//
// For a right shift r = −shift ≥ 1 and a multiplier M ≥ 0, the vector forms compute round_fixed and the zero point
// with one rounding constant instead of TFLite's two roundings written out, and the results are the same integers:
//
//   1. SaturatingRoundingDoublingHighMul(x, M) = floor((x·M + 2^30) / 2^31) for every x (M ≠ −2^31): TFLite's nudge
//      1 − 2^30 for a negative product, then truncation, is the ceiling of (x·M − 2^30)/2^31, which is the same.
//   2. RoundingDivideByPOT(h, r) = floor((h + 2^(r−1) − [h < 0]) / 2^r): it adds 1 to floor(h / 2^r) when the
//      remainder exceeds 2^(r−1) − 1, or 2^(r−1) for negative h.
//   3. floor((floor(a / 2^31) + c) / 2^r) = floor((a + c·2^31) / 2^(31+r)) for integers, so with
//      N = 2^30 + (1 + 2·zp)·2^(30+r), h' = floor((x·M + N) / 2^31) = h + 2^(r−1) + zp·2^r — one 64-bit add of a
//      per-channel constant, the zero point included — and y + zp = (h' − [h < 0]) >> r (arithmetic shift).
//   4. [h < 0] may be read as [x < 0]: for M ≥ 0 they differ only when x < 0 and h = 0, and then both give
//      (2^(r−1) − 1 or 2^(r−1)) >> r = 0. So the correction is x >> 31, one shift and one add.
//
// That is 11 vector operations per 8 or 16 lanes from the biased sum to the clamp (the two-rounding form: 15 and
// the zero point's add). Exact as long as h' − 1 … h' fit an int32 and x·M + N an int64, which holds when
// |x| + 2^(r−1) + |zp|·2^r + 2 < 2^31, |x| ≤ K·255·128 + |bias| (every |x − x_zp| ≤ 255, |w| ≤ 128): resnet50's
// largest K (4608) leaves 2^31 − 1.5·10^8; a channel outside that (or with a left shift, or r = 0) takes the two-
// rounding form, per 16 (AVX-512) or 8 (AVX2) columns that all can.

/// unfolded[0 … channels] for ck_qout (see above): K the multiply-adds per output, bias the caller's (NULL: 0).
static inline void ck_q_plan_folding(int channels, int64_t k, const int32_t *bias, const int32_t *multiplier,
                                     const int32_t *shift, int32_t y_zero_point, int32_t *unfolded) {
    int32_t count = 0;
    int64_t zp = y_zero_point < 0 ? -(int64_t)y_zero_point : y_zero_point;
    for (int c = 0; c < channels; c++) {
        unfolded[c] = count;
        int r = ck_q_clamp_shift(-shift[c]);
        int64_t b = bias ? (bias[c] < 0 ? -(int64_t)bias[c] : bias[c]) : 0;
        int64_t x = k * 255 * 128 + b;
        int ok = shift[c] <= -1 && multiplier[c] >= 0 && k >= 0 && k < ((int64_t)1 << 20) &&
                 x + ((int64_t)1 << (r - 1)) + (zp << r) + 2 < ((int64_t)1 << 31);
        count += !ok;
    }
    unfolded[channels] = count;
}

/// Whether channels col0 …< col0 + n all take the folded requantization.
static inline int ck_q_folded(const ck_qout *out, int col0, int n) {
    return out->unfolded && out->unfolded[col0 + n] == out->unfolded[col0];
}

#ifdef CK_X86
// MARK: - AVX2

/// The per-column constants of 8 output channels, computed once per tile and reused for every row.
typedef struct {
    __m256i bias, multiplier, multiplier_odd, left, right, mask, half;
    __m256i nudge_even, nudge_odd;  // the folded form's N (64-bit) for the even and the odd lanes
} ck_q8_cols;

/// ck_mask8 with n clamped to 0 … 8 (column counts past a row's end or below its start).
CK_AVX2 static inline __m256i ck_q_mask8(int n) { return ck_mask8(n < 0 ? 0 : n > 8 ? 8 : n); }

/// Columns col0 … col0 + 7 (the first `live` of them; the others read as 0).
CK_AVX2 static inline ck_q8_cols ck_q8_columns(const ck_qout *out, int col0, int live) {
    __m256i m = ck_q_mask8(live);
    ck_q8_cols c;
    c.bias = _mm256_maskload_epi32(out->bias + col0, m);
    if (out->scale) return c;
    c.multiplier = _mm256_maskload_epi32(out->multiplier + col0, m);
    c.multiplier_odd = _mm256_srli_epi64(c.multiplier, 32);
    __m256i shift = _mm256_maskload_epi32(out->shift + col0, m), zero = _mm256_setzero_si256(), top = _mm256_set1_epi32(31);
    c.left = _mm256_min_epi32(_mm256_max_epi32(shift, zero), top);
    c.right = _mm256_min_epi32(_mm256_max_epi32(_mm256_sub_epi32(zero, shift), zero), top);
    c.mask = _mm256_sub_epi32(_mm256_sllv_epi32(_mm256_set1_epi32(1), c.right), _mm256_set1_epi32(1));
    c.half = _mm256_srli_epi32(c.mask, 1);
    // N = 2^30 + (1 + 2·zp)·2^(30+r) per 64-bit lane, r from the even and the odd 32-bit lanes.
    __m256i base = _mm256_set1_epi64x(1 + 2 * (int64_t)out->y_zero_point), thirty = _mm256_set1_epi64x(30);
    __m256i r_even = _mm256_and_si256(c.right, _mm256_set1_epi64x(0xFFFFFFFF)), r_odd = _mm256_srli_epi64(c.right, 32);
    c.nudge_even = _mm256_add_epi64(_mm256_set1_epi64x((int64_t)1 << 30), _mm256_sllv_epi64(base, _mm256_add_epi64(r_even, thirty)));
    c.nudge_odd = _mm256_add_epi64(_mm256_set1_epi64x((int64_t)1 << 30), _mm256_sllv_epi64(base, _mm256_add_epi64(r_odd, thirty)));
    return c;
}

/// The folded requantization of 8 lanes (acc with the bias added), the zero point included: h' from bits 31…62 of
/// x·M + N, then (h' + (x >> 31)) >> r.
__attribute__((always_inline)) CK_AVX2 static inline __m256i ck_q8_round_folded(__m256i v, const ck_q8_cols *c) {
    __m256i even = _mm256_add_epi64(_mm256_mul_epi32(v, c->multiplier), c->nudge_even);
    __m256i odd = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(v, 32), c->multiplier_odd), c->nudge_odd);
    __m256i high = _mm256_blend_epi32(_mm256_srli_epi64(even, 31), _mm256_slli_epi64(odd, 1), 0xAA);
    return _mm256_srav_epi32(_mm256_add_epi32(high, _mm256_srai_epi32(v, 31)), c->right);
}

/// round_fixed of 8 lanes (acc with the bias added): vpmuldq on the even and the odd lanes, the rounding high half
/// (a·M + 2^30) >> 31 taken from bits 31…62 of each 64-bit product, then the rounding right shift.
__attribute__((always_inline)) CK_AVX2 static inline __m256i ck_q8_round_fixed_with(__m256i v, const ck_q8_cols *c,
                                                                                  const int left) {
    if (left) v = _mm256_sllv_epi32(v, c->left);
    const __m256i nudge = _mm256_set1_epi64x((int64_t)1 << 30);
    __m256i even = _mm256_add_epi64(_mm256_mul_epi32(v, c->multiplier), nudge);
    __m256i odd = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(v, 32), c->multiplier_odd), nudge);
    __m256i high = _mm256_blend_epi32(_mm256_srli_epi64(even, 31), _mm256_slli_epi64(odd, 1), 0xAA);
    __m256i remainder = _mm256_and_si256(high, c->mask);
    __m256i threshold = _mm256_sub_epi32(c->half, _mm256_srai_epi32(high, 31));  // half + 1 for negative lanes
    return _mm256_sub_epi32(_mm256_srav_epi32(high, c->right), _mm256_cmpgt_epi32(remainder, threshold));
}

CK_AVX2 static inline __m256i ck_q8_round_fixed(__m256i v, const ck_q8_cols *c) { return ck_q8_round_fixed_with(v, c, 1); }

/// The fused Add on 8 lanes: v the convolution's outputs (int32 in [0, 255]), r 8 residual bytes as int32; the
/// result as int32 in [0, 255] (ck_q_add_float1 lane by lane: one FMA, the clamp, round half even).
CK_AVX2 static inline __m256i ck_q8_add_residual(__m256i v, __m256i r, const ck_qout *out) {
    __m256i a = out->residual_is_a ? r : v, b = out->residual_is_a ? v : r;
    __m256 fa = _mm256_cvtepi32_ps(_mm256_sub_epi32(a, _mm256_set1_epi32(out->add_za)));
    __m256 fb = _mm256_cvtepi32_ps(_mm256_sub_epi32(b, _mm256_set1_epi32(out->add_zb)));
    __m256 s = _mm256_fmadd_ps(fb, _mm256_set1_ps(out->add_kb), _mm256_mul_ps(fa, _mm256_set1_ps(out->add_ka)));
    s = _mm256_min_ps(_mm256_max_ps(s, _mm256_set1_ps(-512.0f)), _mm256_set1_ps(512.0f));
    __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_round_ps(s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)),
                                 _mm256_set1_epi32(out->add_zy));
    return _mm256_min_epi32(_mm256_max_epi32(q, _mm256_setzero_si256()), _mm256_set1_epi32(255));
}

/// The rows of ck_q_store_avx2's u8 form for one 16-column group, specialized on whether any channel shifts left and
/// whether the clamps differ from [0, 255] (which the saturating packs apply by themselves).
__attribute__((always_inline)) CK_AVX2 static inline void ck_q_store_u8_rows_avx2(const int32_t *acc, int acc_stride, int rows,
                                                                               int live, uint8_t *y, ptrdiff_t y_stride,
                                                                               const ck_q8_cols *first, const ck_q8_cols *second,
                                                                               const ck_qout *out, const uint8_t *res, const int folded,
                                                                               const int left, const int clamp) {
    __m256i zp = _mm256_set1_epi32(out->y_zero_point), lo = _mm256_set1_epi32(out->clamp_min), hi = _mm256_set1_epi32(out->clamp_max);
    for (int r = 0; r < rows; r++, acc += acc_stride, y += y_stride) {
        __m256i v0 = _mm256_loadu_si256((const __m256i *)acc), v1 = _mm256_loadu_si256((const __m256i *)(acc + 8));
        if (folded) {
            v0 = ck_q8_round_folded(_mm256_add_epi32(v0, first->bias), first);
            v1 = ck_q8_round_folded(_mm256_add_epi32(v1, second->bias), second);
        } else {
            v0 = _mm256_add_epi32(ck_q8_round_fixed_with(_mm256_add_epi32(v0, first->bias), first, left), zp);
            v1 = _mm256_add_epi32(ck_q8_round_fixed_with(_mm256_add_epi32(v1, second->bias), second, left), zp);
        }
        if (clamp || res) {
            v0 = _mm256_min_epi32(_mm256_max_epi32(v0, lo), hi);
            v1 = _mm256_min_epi32(_mm256_max_epi32(v1, lo), hi);
        }
        if (res) {
            uint8_t tmp[16];
            const uint8_t *rp = res + (size_t)r * out->residual_stride;
            if (live < 16) memcpy(tmp, rp, (size_t)live), rp = tmp;
            __m128i rb = _mm_loadu_si128((const __m128i *)rp);
            v0 = ck_q8_add_residual(v0, _mm256_cvtepu8_epi32(rb), out);
            v1 = ck_q8_add_residual(v1, _mm256_cvtepu8_epi32(_mm_srli_si128(rb, 8)), out);
        }
        // 16 lanes to 16 bytes in order, saturating to [0, 255]: packs interleave 128-bit halves, the permute
        // restores them.
        __m256i words = _mm256_permute4x64_epi64(_mm256_packs_epi32(v0, v1), 0xD8);
        __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
        if (live == 16) {
            _mm_storeu_si128((__m128i *)y, bytes);
        } else {
            uint8_t tmp[16];
            _mm_storeu_si128((__m128i *)tmp, bytes);
            memcpy(y, tmp, (size_t)live);
        }
    }
}

/// Whether any of channels col0 …< col0 + n shifts left.
static inline int ck_q_any_left(const ck_qout *out, int col0, int n) {
    for (int c = 0; c < n; c++)
        if (out->shift[col0 + c] > 0) return 1;
    return 0;
}

/// Stores one tile (rows × cols accumulators, acc[r·acc_stride + col], cols ≤ acc_stride, acc_stride a multiple of
/// 16) at output pixels pixel0 … and channels col0 …: the AVX2 form of ck_q_store_scalar, 16 columns at a time.
CK_AVX2 static inline void ck_q_store_avx2(const int32_t *acc, int acc_stride, int rows, int cols, size_t pixel0, int col0,
                                           const ck_qout *out) {
    if (out->scale) {
        for (int c0 = 0; c0 < cols; c0 += 8) {
            int live = ck_min(8, cols - c0);
            __m256i m = ck_q_mask8(live);
            __m256i bias = _mm256_maskload_epi32(out->bias + col0 + c0, m);
            __m256 scale = _mm256_maskload_ps(out->scale + col0 + c0, m);
            for (int r = 0; r < rows; r++) {
                __m256i a = _mm256_loadu_si256((const __m256i *)(acc + (size_t)r * acc_stride + c0));
                __m256 y = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(a, bias)), scale);
                float *dst = (float *)out->y + (pixel0 + r) * out->y_stride + col0 + c0;
                if (live == 8) _mm256_storeu_ps(dst, y);
                else _mm256_maskstore_ps(dst, m, y);
            }
        }
        return;
    }
    int clamp = out->clamp_min != 0 || out->clamp_max != 255;
    for (int c0 = 0; c0 < cols; c0 += 16) {
        int live = ck_min(16, cols - c0);
        ck_q8_cols first = ck_q8_columns(out, col0 + c0, live), second = ck_q8_columns(out, col0 + c0 + 8, live - 8);
        uint8_t *y = (uint8_t *)out->y + pixel0 * out->y_stride + col0 + c0;
        const uint8_t *res = out->residual ? out->residual + pixel0 * out->residual_stride + col0 + c0 : NULL;
        const int32_t *a = acc + c0;
        if (ck_q_folded(out, col0 + c0, live)) {
            if (clamp) ck_q_store_u8_rows_avx2(a, acc_stride, rows, live, y, out->y_stride, &first, &second, out, res, 1, 0, 1);
            else ck_q_store_u8_rows_avx2(a, acc_stride, rows, live, y, out->y_stride, &first, &second, out, res, 1, 0, 0);
        } else if (ck_q_any_left(out, col0 + c0, live)) {
            ck_q_store_u8_rows_avx2(a, acc_stride, rows, live, y, out->y_stride, &first, &second, out, res, 0, 1, 1);
        } else if (clamp) {
            ck_q_store_u8_rows_avx2(a, acc_stride, rows, live, y, out->y_stride, &first, &second, out, res, 0, 0, 1);
        } else {
            ck_q_store_u8_rows_avx2(a, acc_stride, rows, live, y, out->y_stride, &first, &second, out, res, 0, 0, 0);
        }
    }
}
#endif

#ifdef CK_X86
// MARK: - AVX-512

typedef struct {
    __m512i bias, multiplier, multiplier_odd, left, right, mask, half;
    __m512i nudge_even, nudge_odd;
} ck_q16_cols;

CK_AVX512_VNNI static inline __mmask16 ck_q_mask16(int n) {
    return (__mmask16)(n >= 16 ? 0xFFFF : n <= 0 ? 0 : (1u << n) - 1);
}

CK_AVX512_VNNI static inline ck_q16_cols ck_q16_columns(const ck_qout *out, int col0, int live) {
    __mmask16 m = ck_q_mask16(live);
    ck_q16_cols c;
    c.bias = _mm512_maskz_loadu_epi32(m, out->bias + col0);
    if (out->scale) return c;
    c.multiplier = _mm512_maskz_loadu_epi32(m, out->multiplier + col0);
    c.multiplier_odd = _mm512_srli_epi64(c.multiplier, 32);
    __m512i shift = _mm512_maskz_loadu_epi32(m, out->shift + col0), zero = _mm512_setzero_si512(), top = _mm512_set1_epi32(31);
    c.left = _mm512_min_epi32(_mm512_max_epi32(shift, zero), top);
    c.right = _mm512_min_epi32(_mm512_max_epi32(_mm512_sub_epi32(zero, shift), zero), top);
    c.mask = _mm512_sub_epi32(_mm512_sllv_epi32(_mm512_set1_epi32(1), c.right), _mm512_set1_epi32(1));
    c.half = _mm512_srli_epi32(c.mask, 1);
    __m512i base = _mm512_set1_epi64(1 + 2 * (int64_t)out->y_zero_point), thirty = _mm512_set1_epi64(30);
    __m512i r_even = _mm512_and_si512(c.right, _mm512_set1_epi64(0xFFFFFFFF)), r_odd = _mm512_srli_epi64(c.right, 32);
    c.nudge_even = _mm512_add_epi64(_mm512_set1_epi64((int64_t)1 << 30), _mm512_sllv_epi64(base, _mm512_add_epi64(r_even, thirty)));
    c.nudge_odd = _mm512_add_epi64(_mm512_set1_epi64((int64_t)1 << 30), _mm512_sllv_epi64(base, _mm512_add_epi64(r_odd, thirty)));
    return c;
}

/// ck_q8_round_folded on 16 lanes.
__attribute__((always_inline)) CK_AVX512_VNNI static inline __m512i ck_q16_round_folded(__m512i v, const ck_q16_cols *c) {
    __m512i even = _mm512_add_epi64(_mm512_mul_epi32(v, c->multiplier), c->nudge_even);
    __m512i odd = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(v, 32), c->multiplier_odd), c->nudge_odd);
    __m512i high = _mm512_mask_blend_epi32((__mmask16)0xAAAA, _mm512_srli_epi64(even, 31), _mm512_slli_epi64(odd, 1));
    return _mm512_srav_epi32(_mm512_add_epi32(high, _mm512_srai_epi32(v, 31)), c->right);
}

/// ck_q8_round_fixed on 16 lanes.
__attribute__((always_inline)) CK_AVX512_VNNI static inline __m512i ck_q16_round_fixed(__m512i v, const ck_q16_cols *c,
                                                                                    const int left) {
    if (left) v = _mm512_sllv_epi32(v, c->left);
    const __m512i nudge = _mm512_set1_epi64((int64_t)1 << 30);
    __m512i even = _mm512_add_epi64(_mm512_mul_epi32(v, c->multiplier), nudge);
    __m512i odd = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(v, 32), c->multiplier_odd), nudge);
    __m512i high = _mm512_mask_blend_epi32((__mmask16)0xAAAA, _mm512_srli_epi64(even, 31), _mm512_slli_epi64(odd, 1));
    __m512i remainder = _mm512_and_si512(high, c->mask);
    __m512i threshold = _mm512_sub_epi32(c->half, _mm512_srai_epi32(high, 31));
    __mmask16 up = _mm512_cmpgt_epi32_mask(remainder, threshold);
    __m512i shifted = _mm512_srav_epi32(high, c->right);
    return _mm512_mask_add_epi32(shifted, up, shifted, _mm512_set1_epi32(1));
}

/// ck_q8_add_residual on 16 lanes.
CK_AVX512_VNNI static inline __m512i ck_q16_add_residual(__m512i v, __m512i r, const ck_qout *out) {
    __m512i a = out->residual_is_a ? r : v, b = out->residual_is_a ? v : r;
    __m512 fa = _mm512_cvtepi32_ps(_mm512_sub_epi32(a, _mm512_set1_epi32(out->add_za)));
    __m512 fb = _mm512_cvtepi32_ps(_mm512_sub_epi32(b, _mm512_set1_epi32(out->add_zb)));
    __m512 s = _mm512_fmadd_ps(fb, _mm512_set1_ps(out->add_kb), _mm512_mul_ps(fa, _mm512_set1_ps(out->add_ka)));
    s = _mm512_min_ps(_mm512_max_ps(s, _mm512_set1_ps(-512.0f)), _mm512_set1_ps(512.0f));
    __m512i q = _mm512_add_epi32(_mm512_cvt_roundps_epi32(s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), _mm512_set1_epi32(out->add_zy));
    return _mm512_max_epi32(q, _mm512_setzero_si512());
}

/// The rows of one 16-column group, specialized as ck_q_store_u8_rows_avx2 (the unsigned saturating narrowing applies
/// an upper clamp of 255; the lower one stays, as negative lanes would saturate to 255).
__attribute__((always_inline)) CK_AVX512_VNNI static inline void ck_q_store_u8_rows_avx512(
    const int32_t *acc, int acc_stride, int rows, __mmask16 m, uint8_t *y, ptrdiff_t y_stride, const ck_q16_cols *c, __m512i zp,
    __m512i lo, __m512i hi, const int folded, const int left, const int clamp_high, const ck_qout *out, const uint8_t *res) {
    for (int r = 0; r < rows; r++, acc += acc_stride, y += y_stride) {
        __m512i v = _mm512_add_epi32(_mm512_loadu_si512(acc), c->bias);
        v = folded ? ck_q16_round_folded(v, c) : _mm512_add_epi32(ck_q16_round_fixed(v, c, left), zp);
        v = _mm512_max_epi32(v, lo);
        if (clamp_high || res) v = _mm512_min_epi32(v, hi);
        if (res) v = ck_q16_add_residual(v, _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, res + (size_t)r * out->residual_stride)), out);
        _mm_mask_storeu_epi8(y, m, _mm512_cvtusepi32_epi8(v));
    }
}

/// ck_q_store_avx2 on 16 lanes (masked stores for the last columns).
CK_AVX512_VNNI static inline void ck_q_store_avx512(const int32_t *acc, int acc_stride, int rows, int cols, size_t pixel0,
                                                    int col0, const ck_qout *out) {
    __m512i zp = _mm512_set1_epi32(out->y_zero_point), lo = _mm512_set1_epi32(out->clamp_min), hi = _mm512_set1_epi32(out->clamp_max);
    for (int c0 = 0; c0 < cols; c0 += 16) {
        int live = ck_min(16, cols - c0);
        __mmask16 m = ck_q_mask16(live);
        ck_q16_cols c = ck_q16_columns(out, col0 + c0, live);
        if (out->scale) {
            __m512 scale = _mm512_maskz_loadu_ps(m, out->scale + col0 + c0);
            for (int r = 0; r < rows; r++) {
                __m512i a = _mm512_loadu_si512(acc + (size_t)r * acc_stride + c0);
                __m512 y = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(a, c.bias)), scale);
                _mm512_mask_storeu_ps((float *)out->y + (pixel0 + r) * out->y_stride + col0 + c0, m, y);
            }
            continue;
        }
        uint8_t *y = (uint8_t *)out->y + pixel0 * out->y_stride + col0 + c0;
        const uint8_t *res = out->residual ? out->residual + pixel0 * out->residual_stride + col0 + c0 : NULL;
        const int32_t *a = acc + c0;
        int clamp_high = out->clamp_max != 255;
        if (ck_q_folded(out, col0 + c0, live)) {
            if (clamp_high) ck_q_store_u8_rows_avx512(a, acc_stride, rows, m, y, out->y_stride, &c, zp, lo, hi, 1, 0, 1, out, res);
            else ck_q_store_u8_rows_avx512(a, acc_stride, rows, m, y, out->y_stride, &c, zp, lo, hi, 1, 0, 0, out, res);
        } else if (ck_q_any_left(out, col0 + c0, live)) {
            ck_q_store_u8_rows_avx512(a, acc_stride, rows, m, y, out->y_stride, &c, zp, lo, hi, 0, 1, 1, out, res);
        } else if (clamp_high) {
            ck_q_store_u8_rows_avx512(a, acc_stride, rows, m, y, out->y_stride, &c, zp, lo, hi, 0, 0, 1, out, res);
        } else {
            ck_q_store_u8_rows_avx512(a, acc_stride, rows, m, y, out->y_stride, &c, zp, lo, hi, 0, 0, 0, out, res);
        }
    }
}
#endif

/// ck_qconv_prepare's result (include/ckernels.h): what one layer's calls share. `path` is the kernel's own code
/// for the instruction set the constants were derived for; `k` the multiply-adds per output.
typedef struct {
    int depthwise, path, channels;
    int64_t k;
    int32_t x_zero_point;
    int32_t *bias;      // channels, then (u8 output) the folded plan's channels + 1 counts
    int32_t *unfolded;  // bias + channels, or NULL (float output)
    int16_t *wide;      // depthwise vector paths: the widened tap pairs
    int32_t *permuted;  // depthwise AVX-512, u8 output: bias, multipliers, shifts in lane order (3 × permuted_lanes)
    size_t permuted_lanes;
} ck_qprepared;

/// The prepared constants when they were derived for this call's kernel, path, channels, K and x zero point.
static inline const ck_qprepared *ck_qprepared_for(const ck_qepilogue *e, int depthwise, int path, int channels, int64_t k) {
    const ck_qprepared *p = e->prepared;
    return p && p->depthwise == depthwise && p->path == path && p->channels == channels && p->k == k &&
                   p->x_zero_point == e->x_zero_point ? p : NULL;
}

/// The bias block of a prepared set: the path's bias (fold = −x_zp for paths that take Σ x·w, else 0), then the
/// folded plan from the caller's bias. NULL when memory ran out.
static inline int32_t *ck_qprepared_bias(ck_qprepared *p, const ck_qepilogue *e, const int32_t *sums, uint32_t fold) {
    int channels = p->channels;
    p->bias = malloc(((size_t)2 * channels + 1) * sizeof(int32_t));
    if (!p->bias) return NULL;
    for (int c = 0; c < channels; c++) p->bias[c] = (int32_t)((e->bias ? (uint32_t)e->bias[c] : 0) + fold * (uint32_t)sums[c]);
    p->unfolded = NULL;
    if (!e->scale) {
        p->unfolded = p->bias + channels;
        ck_q_plan_folding(channels, p->k, e->bias, e->multiplier, e->shift, e->y_zero_point, p->unfolded);
    }
    return p->bias;
}

/// The depthwise kernel's prepared set for instruction set `isa` (qdepthwise.c), or NULL when memory ran out.
ck_qprepared *ck_qdw_prepare(const ck_conv_nhwc *g, const void *packed_w, const ck_qepilogue *e, ck_isa isa);

static inline void ck_qprepared_release(ck_qprepared *p) {
    if (!p) return;
    free(p->bias);
    free(p->wide);
    free(p->permuted);
    free(p);
}

/// Work below which a quantized kernel runs on the calling thread: as CK_PARALLEL_MIN_WORK, in multiply-adds
/// (the integer ones are about twice as fast, so this is about 8 µs of one core).
#define CK_Q_PARALLEL_MIN_WORK (1 << 20)

#endif
