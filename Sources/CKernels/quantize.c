// Per-tensor QuantizeLinear/DequantizeLinear and the uint8 channels-last MaxPool: what an int8 model runs between
// its integer convolutions (the graph input, global pools and softmax stay float). Memory-bound loops; AVX2 where
// the CPU has it, with scalar forms that give the same bytes.
#include "ck_quant.h"
#include "include/ck_quantize.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/// Elements per pool task of the element-wise kernels (64 K: a few microseconds each).
#define CK_QADD_CHUNK ((size_t)1 << 16)

static inline uint8_t ck_quantize_one(float x, float scale, int zero_point) {
    float v = x / scale;
    if (!(v == v)) return (uint8_t)(zero_point < 0 ? 0 : zero_point > 255 ? 255 : zero_point);
    // Clamped first so the rounding below never overflows an int; ±512 is past every saturated result.
    v = v < -512.0f ? -512.0f : v > 512.0f ? 512.0f : v;
    int q = (int)nearbyintf(v) + zero_point;
    return (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
}

#ifdef CK_X86
CK_AVX2 static size_t ck_quantize_u8_avx2(size_t n, const float *x, float scale, int zero_point, uint8_t *y) {
    const __m256 s = _mm256_set1_ps(scale), lo = _mm256_set1_ps(-512.0f), hi = _mm256_set1_ps(512.0f);
    const __m256i zp = _mm256_set1_epi32(zero_point);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_div_ps(_mm256_loadu_ps(x + i), s);
        // NaN lanes become 0 (so the zero point, as in the scalar form) before the clamp.
        v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));
        v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
        __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)), zp);
        __m128i lo16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        __m128i bytes = _mm_packus_epi16(lo16, lo16);
        _mm_storel_epi64((__m128i *)(y + i), bytes);
    }
    return i;
}

/// 8 bytes at a time, read as uint8 or (is_signed) int8.
CK_AVX2 static size_t ck_dequantize_8_avx2(size_t n, const uint8_t *x, float scale, int zero_point, int is_signed, float *y) {
    const __m256 s = _mm256_set1_ps(scale);
    const __m256i zp = _mm256_set1_epi32(zero_point);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i bytes = _mm_loadl_epi64((const __m128i *)(x + i));
        __m256i q = is_signed ? _mm256_cvtepi8_epi32(bytes) : _mm256_cvtepu8_epi32(bytes);
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, zp)), s));
    }
    return i;
}
#endif

/// Elements per pool task of QuantizeLinear: its IEEE division makes 16 K elements ≈ 4 µs, so an image input
/// (150 K) spreads over every thread instead of taking 35 µs on one.
#define CK_QUANTIZE_CHUNK ((size_t)1 << 14)

typedef struct {
    size_t n, chunk;
    const void *x;
    void *y;
    float scale;
    int zero_point;
    int is_signed;  // dequantization: the input is int8
} ck_map_job;

static void ck_quantize_task(void *context, int task) {
    const ck_map_job *j = context;
    size_t i0 = (size_t)task * j->chunk, n = j->n - i0 < j->chunk ? j->n - i0 : j->chunk, i = 0;
    const float *x = (const float *)j->x + i0;
    uint8_t *y = (uint8_t *)j->y + i0;
#ifdef CK_X86
    if (ck_active_isa() >= CK_ISA_AVX2_FMA) i = ck_quantize_u8_avx2(n, x, j->scale, j->zero_point, y);
#endif
    for (; i < n; i++) y[i] = ck_quantize_one(x[i], j->scale, j->zero_point);
}

static void ck_dequantize_task(void *context, int task) {
    const ck_map_job *j = context;
    size_t i0 = (size_t)task * j->chunk, n = j->n - i0 < j->chunk ? j->n - i0 : j->chunk, i = 0;
    const uint8_t *x = (const uint8_t *)j->x + i0;
    float *y = (float *)j->y + i0;
#ifdef CK_X86
    if (ck_active_isa() >= CK_ISA_AVX2_FMA) i = ck_dequantize_8_avx2(n, x, j->scale, j->zero_point, j->is_signed, y);
#endif
    if (j->is_signed) {
        for (; i < n; i++) y[i] = (float)((int)(int8_t)x[i] - j->zero_point) * j->scale;
    } else {
        for (; i < n; i++) y[i] = (float)((int)x[i] - j->zero_point) * j->scale;
    }
}

/// Runs `task` over job.n elements in job.chunk pieces on the pool, or as one piece here when there is one.
static void ck_map_run(ck_map_job job, void (*task)(void *, int)) {
    size_t tasks = (job.n + job.chunk - 1) / job.chunk;
    if (tasks > 1 && tasks <= INT_MAX) {
        ck_parallel_for((int)tasks, task, &job);
    } else if (job.n > 0) {
        job.chunk = job.n;
        task(&job, 0);
    }
}

void ck_quantize_u8(size_t n, const float *x, float scale, int zero_point, uint8_t *y) {
    ck_map_run((ck_map_job){n, CK_QUANTIZE_CHUNK, x, y, scale, zero_point, 0}, ck_quantize_task);
}

void ck_dequantize_u8(size_t n, const uint8_t *x, float scale, int zero_point, float *y) {
    ck_map_run((ck_map_job){n, CK_QADD_CHUNK, x, y, scale, zero_point, 0}, ck_dequantize_task);
}

void ck_dequantize_s8(size_t n, const int8_t *x, float scale, int zero_point, float *y) {
    ck_map_run((ck_map_job){n, CK_QADD_CHUNK, x, y, scale, zero_point, 1}, ck_dequantize_task);
}

typedef struct {
    const ck_pool_nhwc *g;
    const uint8_t *x;
    uint8_t *y;
    int avx2;
} ck_pool_u8_job;

#ifdef CK_X86
/// out[c] = max over the window's `taps` input pixels of in[c], 32 channels per register across all taps (one store
/// per block, where the portable loop below stores after every tap); returns the channels done.
CK_AVX2 static int ck_maxpool_u8_pixel_avx2(const uint8_t *const *in, int taps, int channels, uint8_t *out) {
    int c = 0;
    for (; c + 64 <= channels; c += 64) {
        __m256i m0 = _mm256_setzero_si256(), m1 = _mm256_setzero_si256();
        for (int t = 0; t < taps; t++) {
            m0 = _mm256_max_epu8(m0, _mm256_loadu_si256((const __m256i *)(in[t] + c)));
            m1 = _mm256_max_epu8(m1, _mm256_loadu_si256((const __m256i *)(in[t] + c + 32)));
        }
        _mm256_storeu_si256((__m256i *)(out + c), m0);
        _mm256_storeu_si256((__m256i *)(out + c + 32), m1);
    }
    for (; c + 32 <= channels; c += 32) {
        __m256i m = _mm256_setzero_si256();
        for (int t = 0; t < taps; t++) m = _mm256_max_epu8(m, _mm256_loadu_si256((const __m256i *)(in[t] + c)));
        _mm256_storeu_si256((__m256i *)(out + c), m);
    }
    for (; c + 16 <= channels; c += 16) {
        __m128i m = _mm_setzero_si128();
        for (int t = 0; t < taps; t++) m = _mm_max_epu8(m, _mm_loadu_si128((const __m128i *)(in[t] + c)));
        _mm_storeu_si128((__m128i *)(out + c), m);
    }
    return c;
}
#endif

/// The most taps a window gathers in one pass; larger windows fold into the output in several.
#define CK_POOL_U8_TAPS 64

/// out = max(out, in[0…taps)) per channel, or (first) the maxima from 0 — the identity of max over uint8 and the
/// value of a window with no tap inside the image.
static void ck_maxpool_u8_fold(const ck_pool_u8_job *job, const uint8_t *const *in, int taps, int channels, uint8_t *out, int first) {
    int c = 0;
#ifdef CK_X86
    if (job->avx2 && first) c = ck_maxpool_u8_pixel_avx2(in, taps, channels, out);
#else
    (void)job;
#endif
    if (first) memset(out + c, 0, (size_t)(channels - c));
    for (int t = 0; t < taps; t++)
        for (int k = c; k < channels; k++) out[k] = in[t][k] > out[k] ? in[t][k] : out[k];
}

/// A position in a pool window's taps, row-major.
typedef struct {
    int ky, kx;
} ck_pool_cursor;

/// From tap *at on, up to `room` in-image input pixels of output pixel (b, oy, ox)'s window into `in`; *at moves
/// past them. Returns how many (0: none left).
static int ck_pool_u8_window(const ck_pool_nhwc *g, const uint8_t *x, int b, int oy, int ox, ck_pool_cursor *at, const uint8_t **in, int room) {
    int taps = 0;
    for (; at->ky < g->kernel_h; at->ky++, at->kx = 0) {
        int iy = oy * g->stride_h - g->pad_top + at->ky * g->dilation_h;
        if (iy < 0 || iy >= g->in_h) continue;
        for (; at->kx < g->kernel_w; at->kx++) {
            if (taps == room) return taps;
            int ix = ox * g->stride_w - g->pad_left + at->kx * g->dilation_w;
            if (ix >= 0 && ix < g->in_w) in[taps++] = x + ((ptrdiff_t)(b * g->in_h + iy) * g->in_w + ix) * g->x_stride;
        }
    }
    return taps;
}

/// One output row (image b, row oy): for each pixel, its window's in-image taps, then their channel maxima.
static void ck_maxpool_u8_row(void *context, int task) {
    const ck_pool_u8_job *job = context;
    const ck_pool_nhwc *g = job->g;
    int b = task / g->out_h, oy = task % g->out_h, channels = g->channels;
    const uint8_t *in[CK_POOL_U8_TAPS];
    for (int ox = 0; ox < g->out_w; ox++) {
        uint8_t *restrict out = job->y + ((ptrdiff_t)(b * g->out_h + oy) * g->out_w + ox) * g->y_stride;
        ck_pool_cursor at = {0, 0};
        int first = 1, taps;
        do {
            taps = ck_pool_u8_window(g, job->x, b, oy, ox, &at, in, CK_POOL_U8_TAPS);
            if (taps > 0 || first) ck_maxpool_u8_fold(job, in, taps, channels, out, first);
            first = 0;
        } while (taps == CK_POOL_U8_TAPS);
    }
}

void ck_maxpool2d_nhwc_u8(const ck_pool_nhwc *geometry, const uint8_t *x, uint8_t *y) {
    ck_pool_u8_job job = {geometry, x, y, ck_active_isa() >= CK_ISA_AVX2_FMA};
    ck_parallel_for(geometry->batch * geometry->out_h, ck_maxpool_u8_row, &job);
}

/// AveragePool between two grids, one output row per task: int32 channel sums over the window's in-image taps, then
/// one float rounding per output (ck_qglobal_avgpool_nhwc_u8's arithmetic with the window's divisor).
typedef struct {
    const ck_pool_nhwc *g;
    const uint8_t *x;
    uint8_t *y;
    float x_scale, y_scale;
    int x_zero_point, y_zero_point, count_include_pad;
} ck_qavgpool_job;

static void ck_qavgpool_u8_row(void *context, int task) {
    const ck_qavgpool_job *job = context;
    const ck_pool_nhwc *g = job->g;
    int b = task / g->out_h, oy = task % g->out_h, channels = g->channels;
    int32_t sums[256];
    const uint8_t *in[CK_POOL_U8_TAPS];
    for (int ox = 0; ox < g->out_w; ox++) {
        uint8_t *out = job->y + ((ptrdiff_t)(b * g->out_h + oy) * g->out_w + ox) * g->y_stride;
        for (int c0 = 0; c0 < channels; c0 += 256) {
            int c1 = c0 + 256 < channels ? c0 + 256 : channels, count = 0, taps;
            ck_pool_cursor at = {0, 0};
            memset(sums, 0, sizeof sums);
            do {
                taps = ck_pool_u8_window(g, job->x, b, oy, ox, &at, in, CK_POOL_U8_TAPS);
                for (int t = 0; t < taps; t++)
                    for (int c = c0; c < c1; c++) sums[c - c0] += in[t][c];
                count += taps;
            } while (taps == CK_POOL_U8_TAPS);
            // A padded tap is the real value 0, (zp − zp) on the grid: it adds nothing to the sum, only to the divisor.
            int divisor = job->count_include_pad ? g->kernel_h * g->kernel_w : count;
            float k = divisor > 0 ? job->x_scale / (job->y_scale * (float)divisor) : 0.0f;
            for (int c = c0; c < c1; c++) {
                float v = (float)(sums[c - c0] - count * job->x_zero_point) * k;
                v = v < -512.0f ? -512.0f : v > 512.0f ? 512.0f : v;
                int q = (int)nearbyintf(v) + job->y_zero_point;
                out[c] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
            }
        }
    }
}

void ck_qavgpool2d_nhwc_u8(const ck_pool_nhwc *geometry, const uint8_t *x, float x_scale, int x_zero_point, float y_scale, int y_zero_point,
                           int count_include_pad, uint8_t *y) {
    ck_qavgpool_job job = {geometry, x, y, x_scale, y_scale, x_zero_point, y_zero_point, count_include_pad};
    ck_parallel_for(geometry->batch * geometry->out_h, ck_qavgpool_u8_row, &job);
}

// MARK: - float16 storage (-O fp16): widened once at load.

static inline float ck_half_to_float1(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff, bits;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else {  // subnormal: normalize
            int e = -1;
            do { e++; mantissa <<= 1; } while (!(mantissa & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mantissa & 0x3ff) << 13);
        }
    } else if (exponent == 31) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else {
        bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

#ifdef CK_X86
__attribute__((target("avx2,f16c"))) static size_t ck_half_to_float_f16c(size_t n, const uint16_t *x, float *y) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    return i;
}
#endif

void ck_half_to_float(size_t n, const uint16_t *x, float *y) {
    size_t i = 0;
#ifdef CK_X86
    if (ck_active_isa() >= CK_ISA_AVX2_FMA && __builtin_cpu_supports("f16c")) i = ck_half_to_float_f16c(n, x, y);
#endif
    for (; i < n; i++) y[i] = ck_half_to_float1(x[i]);
}

// MARK: - DynamicQuantizeLinear (-O int8-dynamic)

#ifdef CK_X86
/// The range over x[0 ..< n rounded down to 8] as the scalar loop computes it: vminps/vmaxps return their second
/// operand (the running bound) when x is NaN or both are zeros, as the loop's comparisons keep it.
CK_AVX2 static size_t ck_range_avx2(size_t n, const float *x, float *lo, float *hi) {
    __m256 l = _mm256_setzero_ps(), h = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        l = _mm256_min_ps(v, l);
        h = _mm256_max_ps(v, h);
    }
    float ls[8], hs[8];
    _mm256_storeu_ps(ls, l);
    _mm256_storeu_ps(hs, h);
    for (int j = 0; j < 8; j++) {
        *lo = ls[j] < *lo ? ls[j] : *lo;
        *hi = hs[j] > *hi ? hs[j] : *hi;
    }
    return i;
}
#endif

void ck_dynamic_quantize_u8(size_t n, const float *x, uint8_t *y, float *scale, uint8_t *zero_point) {
    // ONNX DynamicQuantizeLinear: the range always includes 0; NaNs are ignored by the comparisons.
    float lo = 0, hi = 0;
    size_t i = 0;
#ifdef CK_X86
    if (ck_active_isa() >= CK_ISA_AVX2_FMA) i = ck_range_avx2(n, x, &lo, &hi);
#endif
    for (; i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    float s = (hi == lo ? 1.0f : hi - lo) / 255.0f;
    float initial = 0.0f - lo / s;
    float z = initial != initial ? 0.0f : nearbyintf(initial < 0 ? 0 : initial > 255 ? 255 : initial);
    *scale = s;
    *zero_point = (uint8_t)z;
    ck_quantize_u8(n, x, s, (int)z, y);
}

// MARK: - Table lookup (an element-wise function between two uint8 grids)

typedef struct {
    size_t n;
    const uint8_t *x, *table;
    uint8_t *y;
    int vbmi, avx2;
} ck_lookup_job;

#ifdef CK_X86
/// 64 lookups per step with AVX-512 VBMI: two 128-entry vpermi2b (the table's halves, selected by bit 7 of each
/// byte) and a blend — the 256-entry table lives in four zmm registers.
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) static size_t ck_lookup_vbmi(size_t n, const uint8_t *x, const uint8_t *table, uint8_t *y) {
    const __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64);
    const __m512i t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512i v = _mm512_loadu_si512(x + i);
        __m512i low = _mm512_permutex2var_epi8(t0, v, t1), high = _mm512_permutex2var_epi8(t2, v, t3);
        _mm512_storeu_si512(y + i, _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), low, high));
    }
    return i;
}

/// 32 lookups per step with AVX2: the table as 16 rows of 16 bytes; VPSHUFB picks by the low nibble within every
/// row and the high nibble selects the row (compare and mask).
CK_AVX2 static size_t ck_lookup_avx2(size_t n, const uint8_t *x, const uint8_t *table, uint8_t *y) {
    __m256i rows[16];
    for (int k = 0; k < 16; k++) rows[k] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(table + 16 * k)));
    const __m256i nibble = _mm256_set1_epi8(0x0f);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(x + i));
        __m256i lo = _mm256_and_si256(v, nibble), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
        __m256i r = _mm256_setzero_si256();
        for (int k = 0; k < 16; k++) {
            __m256i m = _mm256_cmpeq_epi8(hi, _mm256_set1_epi8((char)k));
            r = _mm256_or_si256(r, _mm256_and_si256(_mm256_shuffle_epi8(rows[k], lo), m));
        }
        _mm256_storeu_si256((__m256i *)(y + i), r);
    }
    return i;
}
#endif

static void ck_lookup_task(void *context, int task) {
    const ck_lookup_job *j = context;
    size_t i0 = (size_t)task * CK_QADD_CHUNK, i1 = i0 + CK_QADD_CHUNK < j->n ? i0 + CK_QADD_CHUNK : j->n, i = i0;
#ifdef CK_X86
    if (j->vbmi) i += ck_lookup_vbmi(i1 - i0, j->x + i0, j->table, j->y + i0);
    else if (j->avx2) i += ck_lookup_avx2(i1 - i0, j->x + i0, j->table, j->y + i0);
#endif
    for (; i < i1; i++) j->y[i] = j->table[j->x[i]];
}

void ck_lookup_u8(size_t n, const uint8_t *x, const uint8_t *table, uint8_t *y) {
    int vbmi = 0, avx2 = 0;
#ifdef CK_X86
    vbmi = ck_active_isa() >= CK_ISA_AVX512 && __builtin_cpu_supports("avx512vbmi");
    avx2 = ck_active_isa() >= CK_ISA_AVX2_FMA;
#endif
    ck_lookup_job job = {n, x, table, y, vbmi, avx2};
    size_t tasks = (n + CK_QADD_CHUNK - 1) / CK_QADD_CHUNK;
    if (tasks <= 1) {
        if (n > 0) ck_lookup_task(&job, 0);
        return;
    }
    ck_parallel_for((int)tasks, ck_lookup_task, &job);
}

// MARK: - Quantized Add in float arithmetic (ONNX Runtime's QLinearAdd form)
//
// y = saturate(round_half_even((a − za)·ka + (b − zb)·kb) + zy) with ka = sa/sy, kb = sb/sy: two FMAs per
// element against TFLite's three fixed-point multiplies (5× fewer instructions; resnet50's residual Adds
// were a fifth of its int8 time). The scalar form uses fmaf in the same order, so both paths give the same bytes.

static inline uint8_t ck_qadd_float1(uint8_t a, uint8_t b, float ka, float kb, int za, int zb, int zy) {
    return ck_q_add_float1(a, b, ka, kb, za, zb, zy);  // shared with the convolutions' fused residual (ck_quant.h)
}

#ifdef CK_X86
CK_AVX2 static size_t ck_qadd_float_avx2(size_t n, const uint8_t *a, const uint8_t *b, float ka, float kb, int za, int zb, int zy, uint8_t *y) {
    const __m256 vka = _mm256_set1_ps(ka), vkb = _mm256_set1_ps(kb), lo = _mm256_set1_ps(-512.0f), hi = _mm256_set1_ps(512.0f);
    const __m256i vza = _mm256_set1_epi32(za), vzb = _mm256_set1_epi32(zb), vzy = _mm256_set1_epi32(zy);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 fa = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(a + i))), vza));
        __m256 fb = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(b + i))), vzb));
        __m256 v = _mm256_fmadd_ps(fb, vkb, _mm256_mul_ps(fa, vka));
        v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
        __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)), vzy);
        __m128i h = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        _mm_storel_epi64((__m128i *)(y + i), _mm_packus_epi16(h, h));
    }
    return i;
}
#endif

typedef struct {
    size_t n;
    const uint8_t *a, *b;
    float ka, kb;
    int za, zb, zy;
    uint8_t *y;
    int avx2;
} ck_qadd_float_job;


static void ck_qadd_float_task(void *context, int task) {
    const ck_qadd_float_job *j = context;
    size_t i0 = (size_t)task * CK_QADD_CHUNK, i1 = i0 + CK_QADD_CHUNK < j->n ? i0 + CK_QADD_CHUNK : j->n, i = 0;
#ifdef CK_X86
    if (j->avx2) i = ck_qadd_float_avx2(i1 - i0, j->a + i0, j->b + i0, j->ka, j->kb, j->za, j->zb, j->zy, j->y + i0);
#endif
    for (i += i0; i < i1; i++) j->y[i] = ck_qadd_float1(j->a[i], j->b[i], j->ka, j->kb, j->za, j->zb, j->zy);
}

void ck_qadd_u8_float(size_t n, const uint8_t *a, float a_scale, int a_zero_point, const uint8_t *b, float b_scale, int b_zero_point,
                      float y_scale, int y_zero_point, uint8_t *y) {
    ck_qadd_float_job job = {n, a, b, a_scale / y_scale, b_scale / y_scale, a_zero_point, b_zero_point, y_zero_point, y,
                             ck_active_isa() >= CK_ISA_AVX2_FMA};
    size_t tasks = (n + CK_QADD_CHUNK - 1) / CK_QADD_CHUNK;
    if (tasks <= 1) {
        if (tasks == 1) ck_qadd_float_task(&job, 0);
        return;
    }
    ck_parallel_for((int)tasks, ck_qadd_float_task, &job);
}

// MARK: - Byte transpose (uint8 layout changes of int8 models)

typedef struct {
    int rows, cols;
    const uint8_t *x;
    uint8_t *y;
    int row_blocks;
} ck_transpose_u8_job;

#define CK_TU8_BLOCK 64

/// One 64-row block of one batch entry, in 64×64 tiles so reads and writes both stay in cache lines.
static void ck_transpose_u8_task(void *context, int task) {
    const ck_transpose_u8_job *j = context;
    int b = task / j->row_blocks, r0 = (task % j->row_blocks) * CK_TU8_BLOCK;
    int r1 = r0 + CK_TU8_BLOCK < j->rows ? r0 + CK_TU8_BLOCK : j->rows;
    const uint8_t *x = j->x + (size_t)b * j->rows * j->cols;
    uint8_t *y = j->y + (size_t)b * j->rows * j->cols;
    for (int c0 = 0; c0 < j->cols; c0 += CK_TU8_BLOCK) {
        int c1 = c0 + CK_TU8_BLOCK < j->cols ? c0 + CK_TU8_BLOCK : j->cols;
        for (int r = r0; r < r1; r++)
            for (int c = c0; c < c1; c++) y[(size_t)c * j->rows + r] = x[(size_t)r * j->cols + c];
    }
}

// Three planes to interleaved triples (an image's channels to channels-last, after the input's Quantize): the
// tiled loop above writes every third byte, one at a time, on one thread (94 us for 3×224×224 per run of an int8
// mobilenet_v2); this path shuffles 16 columns of each plane into 48 output bytes and splits the columns over the pool.
#define CK_TU8_PLANE_CHUNK 8192

typedef struct {
    int cols, chunks;
    const uint8_t *x;
    uint8_t *y;
    int avx2;
} ck_interleave3_job;

#ifdef CK_X86
/// out[3k + p] = plane p[k] for k < count (a multiple of 16), by PSHUFB: 9 shuffles and 6 ORs per 48 bytes.
CK_AVX2 static void ck_interleave3_avx2(const uint8_t *x0, const uint8_t *x1, const uint8_t *x2, uint8_t *out, int count) {
    uint8_t masks[3][3][16];
    for (int block = 0; block < 3; block++)
        for (int plane = 0; plane < 3; plane++)
            for (int i = 0; i < 16; i++) {
                int position = block * 16 + i;
                masks[block][plane][i] = position % 3 == plane ? (uint8_t)(position / 3) : 0x80;
            }
    __m128i m[3][3];
    for (int block = 0; block < 3; block++)
        for (int plane = 0; plane < 3; plane++) m[block][plane] = _mm_loadu_si128((const __m128i *)masks[block][plane]);
    for (int k = 0; k < count; k += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(x0 + k)), b = _mm_loadu_si128((const __m128i *)(x1 + k));
        __m128i c = _mm_loadu_si128((const __m128i *)(x2 + k));
        for (int block = 0; block < 3; block++) {
            __m128i v = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(a, m[block][0]), _mm_shuffle_epi8(b, m[block][1])),
                                     _mm_shuffle_epi8(c, m[block][2]));
            _mm_storeu_si128((__m128i *)(out + 3 * k + 16 * block), v);
        }
    }
}
#endif

static void ck_interleave3_task(void *context, int task) {
    const ck_interleave3_job *j = context;
    int b = task / j->chunks, c0 = (task % j->chunks) * CK_TU8_PLANE_CHUNK;
    int c1 = c0 + CK_TU8_PLANE_CHUNK < j->cols ? c0 + CK_TU8_PLANE_CHUNK : j->cols;
    const uint8_t *x = j->x + (size_t)b * 3 * j->cols;
    uint8_t *y = j->y + (size_t)b * 3 * j->cols;
    int c = c0;
#ifdef CK_X86
    if (j->avx2) {
        int vector = (c1 - c0) / 16 * 16;
        ck_interleave3_avx2(x + c0, x + j->cols + c0, x + 2 * (size_t)j->cols + c0, y + 3 * (size_t)c0, vector);
        c += vector;
    }
#endif
    for (; c < c1; c++) {
        y[3 * (size_t)c] = x[c];
        y[3 * (size_t)c + 1] = x[(size_t)j->cols + c];
        y[3 * (size_t)c + 2] = x[2 * (size_t)j->cols + c];
    }
}

void ck_transpose_batched_u8(int batch, int rows, int cols, const uint8_t *x, uint8_t *y) {
    if (batch <= 0 || rows <= 0 || cols <= 0) return;
    if (rows == 3) {
        ck_interleave3_job job = {cols, (cols + CK_TU8_PLANE_CHUNK - 1) / CK_TU8_PLANE_CHUNK, x, y, ck_isa_avx2(CK_ISA_AUTO)};
        ck_parallel_for(batch * job.chunks, ck_interleave3_task, &job);
        return;
    }
    ck_transpose_u8_job job = {rows, cols, x, y, (rows + CK_TU8_BLOCK - 1) / CK_TU8_BLOCK};
    ck_parallel_for(batch * job.row_blocks, ck_transpose_u8_task, &job);
}

// MARK: - Squeeze-excitation on uint8: channel means and a per-channel gate

void ck_qglobal_avgpool_nhwc_u8(int batch, int pixels, int channels, const uint8_t *x, float x_scale, int x_zero_point, float y_scale,
                                int y_zero_point, uint8_t *y) {
    // Exact int32 sums (pixels·255 < 2^31 for any image below 8 M pixels), then one float rounding per mean.
    float k = pixels > 0 ? x_scale / (y_scale * (float)pixels) : 0.0f;
    for (int b = 0; b < batch; b++) {
        const uint8_t *img = x + (size_t)b * pixels * channels;
        for (int c0 = 0; c0 < channels; c0 += 256) {
            int32_t sums[256] = {0};
            int c1 = c0 + 256 < channels ? c0 + 256 : channels;
            for (int p = 0; p < pixels; p++) {
                const uint8_t *row = img + (size_t)p * channels;
                for (int c = c0; c < c1; c++) sums[c - c0] += row[c];
            }
            for (int c = c0; c < c1; c++) {
                float v = (float)(sums[c - c0] - (int32_t)pixels * x_zero_point) * k;
                v = v < -512.0f ? -512.0f : v > 512.0f ? 512.0f : v;
                int q = (int)nearbyintf(v) + y_zero_point;
                y[(size_t)b * channels + c] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
            }
        }
    }
}

static inline uint8_t ck_requant_float1(float v, int zy) {
    v = v < -512.0f ? -512.0f : v > 512.0f ? 512.0f : v;
    int q = (int)nearbyintf(v) + zy;
    return (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
}

#ifdef CK_X86
/// out[c] = requant((in[c] − za) · g[c]) for c < count, 8 at a time; returns how many it did.
CK_AVX2 static int ck_qmul_row_avx2(int count, const uint8_t *in, const float *g, int za, int zy, uint8_t *out) {
    const __m256 lo = _mm256_set1_ps(-512.0f), hi = _mm256_set1_ps(512.0f);
    const __m256i vza = _mm256_set1_epi32(za), vzy = _mm256_set1_epi32(zy);
    int c = 0;
    for (; c + 8 <= count; c += 8) {
        __m256 fa = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(in + c))), vza));
        __m256 v = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(fa, _mm256_loadu_ps(g + c)), lo), hi);
        __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)), vzy);
        __m128i h = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        _mm_storel_epi64((__m128i *)(out + c), _mm_packus_epi16(h, h));
    }
    return c;
}
#endif

typedef struct {
    int pixels, channels, za, zy, avx2;
    const uint8_t *a;
    const float *g;  // batch × channels gate values, premultiplied
    uint8_t *y;
    int chunks_per_image;
} ck_qmul_job;

#define CK_QMUL_PIXELS 64

static void ck_qmul_task(void *context, int task) {
    const ck_qmul_job *j = context;
    int b = task / j->chunks_per_image, p0 = (task % j->chunks_per_image) * CK_QMUL_PIXELS;
    int p1 = p0 + CK_QMUL_PIXELS < j->pixels ? p0 + CK_QMUL_PIXELS : j->pixels;
    const float *g = j->g + (size_t)b * j->channels;
    for (int p = p0; p < p1; p++) {
        const uint8_t *in = j->a + ((size_t)b * j->pixels + p) * j->channels;
        uint8_t *out = j->y + ((size_t)b * j->pixels + p) * j->channels;
        int c = 0;
#ifdef CK_X86
        if (j->avx2) c = ck_qmul_row_avx2(j->channels, in, g, j->za, j->zy, out);
#endif
        for (; c < j->channels; c++) out[c] = ck_requant_float1((float)((int)in[c] - j->za) * g[c], j->zy);
    }
}

void ck_qmul_channel_u8(int batch, int pixels, int channels, const uint8_t *a, float a_scale, int a_zero_point, const uint8_t *gate,
                        float gate_scale, int gate_zero_point, float y_scale, int y_zero_point, uint8_t *y) {
    if (batch <= 0 || pixels <= 0 || channels <= 0) return;
    float k = a_scale * gate_scale / y_scale;
    float *g = malloc(sizeof(float) * (size_t)batch * channels);
    if (!g) {
        // Without memory for the gate row: the same arithmetic, gate by gate.
        for (int b = 0; b < batch; b++)
            for (int p = 0; p < pixels; p++)
                for (int c = 0; c < channels; c++) {
                    size_t i = ((size_t)b * pixels + p) * channels + c;
                    y[i] = ck_requant_float1((float)((int)a[i] - a_zero_point) * ((float)((int)gate[(size_t)b * channels + c] - gate_zero_point) * k), y_zero_point);
                }
        return;
    }
    for (size_t i = 0; i < (size_t)batch * channels; i++) g[i] = (float)((int)gate[i] - gate_zero_point) * k;
    ck_qmul_job job = {pixels, channels, a_zero_point, y_zero_point, ck_active_isa() >= CK_ISA_AVX2_FMA, a, g, y,
                       (pixels + CK_QMUL_PIXELS - 1) / CK_QMUL_PIXELS};
    ck_parallel_for(batch * job.chunks_per_image, ck_qmul_task, &job);
    free(g);
}

// MARK: - Quantized Add and Mul with broadcasting
//
// Each output row (the last axis) runs in slices of CK_QB_SLICE elements; an operand that is not contiguous
// along the row (broadcast: stride 0, or a strided view) is first gathered into a slice buffer, so every slice
// runs the same contiguous loops as ck_qadd_u8_float and ck_qmul_channel_u8 and gives their bytes.

#define CK_QB_MAX_RANK 8
#define CK_QB_SLICE 256

typedef struct {
    int op, rank, avx2;
    int shape[CK_QB_MAX_RANK];
    ptrdiff_t as[CK_QB_MAX_RANK], bs[CK_QB_MAX_RANK];
    const uint8_t *a, *b;
    float ka, kb, k;  // Add: a_scale/y_scale, b_scale/y_scale; Mul: a_scale·b_scale/y_scale
    int za, zb, zy;
    uint8_t *y;
    ptrdiff_t inner, pieces, units, units_per_task;  // units: row pieces of up to CK_QADD_CHUNK elements
} ck_qbinary_job;

static const uint8_t *ck_qb_gather(const uint8_t *x, ptrdiff_t stride, int count, uint8_t *buffer) {
    if (stride == 1) return x;
    if (stride == 0) {
        memset(buffer, x[0], (size_t)count);
    } else {
        for (int i = 0; i < count; i++) buffer[i] = x[i * stride];
    }
    return buffer;
}

/// `count` outputs of one row from a and b at their element strides along it.
static void ck_qbinary_run(const ck_qbinary_job *j, const uint8_t *a, ptrdiff_t sa, const uint8_t *b, ptrdiff_t sb, uint8_t *y, ptrdiff_t count) {
    uint8_t abuf[CK_QB_SLICE], bbuf[CK_QB_SLICE];
    float g[CK_QB_SLICE];
    for (ptrdiff_t c0 = 0; c0 < count; c0 += CK_QB_SLICE) {
        int m = count - c0 < CK_QB_SLICE ? (int)(count - c0) : CK_QB_SLICE, i = 0;
        const uint8_t *pa = ck_qb_gather(a + c0 * sa, sa, m, abuf), *pb = ck_qb_gather(b + c0 * sb, sb, m, bbuf);
        uint8_t *out = y + c0;
        if (j->op == CK_QBINARY_ADD) {
#ifdef CK_X86
            if (j->avx2) i = (int)ck_qadd_float_avx2((size_t)m, pa, pb, j->ka, j->kb, j->za, j->zb, j->zy, out);
#endif
            for (; i < m; i++) out[i] = ck_qadd_float1(pa[i], pb[i], j->ka, j->kb, j->za, j->zb, j->zy);
        } else {
            for (int c = 0; c < m; c++) g[c] = (float)((int)pb[c] - j->zb) * j->k;
#ifdef CK_X86
            if (j->avx2) i = ck_qmul_row_avx2(m, pa, g, j->za, j->zy, out);
#endif
            for (; i < m; i++) out[i] = ck_requant_float1((float)((int)pa[i] - j->za) * g[i], j->zy);
        }
    }
}

static void ck_qbinary_task(void *context, int task) {
    const ck_qbinary_job *j = context;
    ptrdiff_t u0 = (ptrdiff_t)task * j->units_per_task, u1 = u0 + j->units_per_task;
    if (u1 > j->units) u1 = j->units;
    if (u0 >= u1) return;
    int last = j->rank - 1;
    ptrdiff_t row = u0 / j->pieces, piece = u0 % j->pieces, piece_len = (ptrdiff_t)CK_QADD_CHUNK;
    ptrdiff_t index_of[CK_QB_MAX_RANK] = {0}, oa, ob;
    ck_rows_seek(last, j->shape, j->as, j->bs, row, index_of, &oa, &ob);
    for (ptrdiff_t u = u0; u < u1; u++) {
        ptrdiff_t c0 = piece * piece_len, c1 = c0 + piece_len < j->inner ? c0 + piece_len : j->inner;
        ck_qbinary_run(j, j->a + oa + c0 * j->as[last], j->as[last], j->b + ob + c0 * j->bs[last], j->bs[last],
                       j->y + row * j->inner + c0, c1 - c0);
        if (++piece < j->pieces) continue;
        piece = 0;
        row++;
        ck_rows_next(last, j->shape, j->as, j->bs, index_of, &oa, &ob);
    }
}

int ck_qbinary_u8(int op, int rank, const int *shape, const ptrdiff_t *a_strides, const ptrdiff_t *b_strides, const uint8_t *a,
                  float a_scale, int a_zero_point, const uint8_t *b, float b_scale, int b_zero_point, float y_scale, int y_zero_point,
                  uint8_t *y) {
    if (rank < 1 || rank > CK_QB_MAX_RANK || (op != CK_QBINARY_ADD && op != CK_QBINARY_MUL)) return 0;
    ck_qbinary_job job;
    memset(&job, 0, sizeof job);
    job.op = op; job.rank = rank; job.a = a; job.b = b; job.y = y;
    job.avx2 = ck_active_isa() >= CK_ISA_AVX2_FMA;
    job.ka = a_scale / y_scale; job.kb = b_scale / y_scale; job.k = a_scale * b_scale / y_scale;
    job.za = a_zero_point; job.zb = b_zero_point; job.zy = y_zero_point;
    ptrdiff_t rows = 1;
    for (int d = 0; d < rank; d++) {
        if (shape[d] <= 0) return 1;
        job.shape[d] = shape[d];
        job.as[d] = a_strides[d];
        job.bs[d] = b_strides[d];
        if (d < rank - 1) rows *= shape[d];
    }
    job.inner = shape[rank - 1];
    job.pieces = (job.inner + (ptrdiff_t)CK_QADD_CHUNK - 1) / (ptrdiff_t)CK_QADD_CHUNK;
    job.units = rows * job.pieces;
    // Tasks of at least one chunk's elements: smaller hand-offs cost more than they save (as ck_qadd_u8_float's).
    ptrdiff_t per_unit = job.pieces > 1 ? (ptrdiff_t)CK_QADD_CHUNK : job.inner;
    job.units_per_task = ((ptrdiff_t)CK_QADD_CHUNK + per_unit - 1) / per_unit;
    if (job.units / job.units_per_task > (1 << 20)) job.units_per_task = (job.units >> 20) + 1;
    ptrdiff_t tasks = (job.units + job.units_per_task - 1) / job.units_per_task;
    if (tasks > 1) ck_parallel_for((int)tasks, ck_qbinary_task, &job);
    else ck_qbinary_task(&job, 0);
    return 1;
}
