// conv_nhwc.c — 2-D convolution of channels-last (NHWC) tensors as an indirect GEMM: output pixels are the rows,
// output channels the columns, and the weights — packed once, at compile time — the B operand. The A operand is
// never packed or copied: each row of a tile reads its input pixels in place through a short list of pointers, one
// per kernel tap (a pointer to zeros where the tap falls in the padding), as XNNPACK's igemm does. Layout and
// contract: include/ckernels.h.
#define _GNU_SOURCE
#include "ck_internal.h"

#include <stdlib.h>
#include <string.h>

/// Bytes of packed weights a task keeps hot while its tiles pass over them: a quarter of this machine kind's 1 MB
/// L2 (and half of the 512 KB L2 of older cores), so the panels, the input rows and the output tile all stay in L2.
#define CK_CONV_B_BLOCK_BYTES (256 * 1024)
/// Tasks per thread the grid aims for: tiles differ in cost at the image borders, and on a shared machine a core
/// can stall, so a dynamic queue of several tasks per thread evens the finish.
#define CK_CONV_TASKS_PER_THREAD 8
/// Zeros the padding taps point at; channel counts per group above this use a heap buffer.
#define CK_CONV_ZEROS 4096

static const float ck_conv_zeros[CK_CONV_ZEROS];

size_t ck_conv_nhwc_packed_size(int groups, int group_out, int group_in, int kernel_h, int kernel_w) {
    return (size_t)groups * (size_t)ck_ceil_div(group_out, CK_NR) * CK_NR * (size_t)group_in * (size_t)kernel_h * (size_t)kernel_w;
}

void ck_conv_nhwc_pack(int groups, int group_out, int group_in, int kernel_h, int kernel_w, const float *w, float *packed) {
    int taps = kernel_h * kernel_w, panels = ck_ceil_div(group_out, CK_NR);
    size_t k = (size_t)taps * group_in;
    for (int g = 0; g < groups; g++) {
        for (int j = 0; j < panels; j++) {
            float *dst = packed + ((size_t)g * panels + j) * k * CK_NR;
            for (int t = 0; t < taps; t++) {
                for (int c = 0; c < group_in; c++) {
                    float *row = dst + ((size_t)t * group_in + c) * CK_NR;
                    for (int col = 0; col < CK_NR; col++) {
                        int o = j * CK_NR + col;
                        // ONNX weights are [groups·group_out, group_in, kernel_h, kernel_w].
                        row[col] = o < group_out ? w[(((size_t)g * group_out + o) * group_in + c) * taps + t] : 0;
                    }
                }
            }
        }
    }
}

// MARK: - Tile epilogue

/// What a finished tile needs besides its accumulators: the bias of its columns, the residual at its origin, the
/// activation.
typedef struct {
    const float *bias;          // at the tile's first column, or NULL
    const float *residual;      // at the tile's origin, or NULL
    ptrdiff_t residual_stride;
    ck_activation activation;
    float param0, param1;
    int wide;  // ck_epilogue.wide: from the call's instruction set
} ck_tile_tail;

static inline float ck_tail_scalar(float v, const ck_tile_tail *tail, int r, int col) {
    if (tail->bias) v = v + tail->bias[col];
    if (tail->residual) v = v + tail->residual[r * tail->residual_stride + col];
    ck_epilogue ep = {CK_BIAS_NONE, NULL, tail->activation, tail->param0, tail->param1, 0, tail->wide};
    return ck_act_scalar(v, &ep);
}

/// An indirect-GEMM microkernel: C[mr × nr] = Σ_t Σ_p rows[t·CK_MR + r][p] · b[(t·kc + p)·CK_NR + col], then the tail.
/// rows holds taps × CK_MR pointers (rows past mr repeat a live one; their results are dropped).
typedef void (*ck_igemm_kernel)(int taps, int kc, const float *const *rows, const float *b, float *c, ptrdiff_t ldc,
                                int mr, int nr, const ck_tile_tail *tail);

static void ck_igemm_scalar(int taps, int kc, const float *const *rows, const float *b, float *c, ptrdiff_t ldc, int mr,
                            int nr, const ck_tile_tail *tail) {
    float acc[CK_MR][CK_NR];
    memset(acc, 0, sizeof acc);
    for (int t = 0; t < taps; t++, rows += CK_MR) {
        for (int p = 0; p < kc; p++, b += CK_NR) {
            for (int r = 0; r < mr; r++) {
                float x = rows[r][p];
                for (int col = 0; col < CK_NR; col++) acc[r][col] += x * b[col];
            }
        }
    }
    for (int r = 0; r < mr; r++)
        for (int col = 0; col < nr; col++) c[r * ldc + col] = ck_tail_scalar(acc[r][col], tail, r, col);
}

#ifdef CK_X86

/// Stores one row of a tile (nr of its 16 columns) after bias, residual and activation.
CK_AVX2 static inline void ck_tail_row_avx2(float *dst, __m256 v0, __m256 v1, int r, int nr, const ck_tile_tail *tail,
                                            const ck_epilogue *ep) {
    if (nr == CK_NR) {
        if (tail->bias) {
            v0 = _mm256_add_ps(v0, _mm256_loadu_ps(tail->bias));
            v1 = _mm256_add_ps(v1, _mm256_loadu_ps(tail->bias + 8));
        }
        if (tail->residual) {
            const float *z = tail->residual + r * tail->residual_stride;
            v0 = _mm256_add_ps(v0, _mm256_loadu_ps(z));
            v1 = _mm256_add_ps(v1, _mm256_loadu_ps(z + 8));
        }
        _mm256_storeu_ps(dst, ck_act_avx2(v0, ep));
        _mm256_storeu_ps(dst + 8, ck_act_avx2(v1, ep));
        return;
    }
    __m256i m0 = ck_mask8(nr < 8 ? nr : 8), m1 = ck_mask8(nr > 8 ? nr - 8 : 0);
    if (tail->bias) {
        v0 = _mm256_add_ps(v0, _mm256_maskload_ps(tail->bias, m0));
        v1 = _mm256_add_ps(v1, _mm256_maskload_ps(tail->bias + 8, m1));
    }
    if (tail->residual) {
        const float *z = tail->residual + r * tail->residual_stride;
        v0 = _mm256_add_ps(v0, _mm256_maskload_ps(z, m0));
        v1 = _mm256_add_ps(v1, _mm256_maskload_ps(z + 8, m1));
    }
    _mm256_maskstore_ps(dst, m0, ck_act_avx2(v0, ep));
    _mm256_maskstore_ps(dst + 8, m1, ck_act_avx2(v1, ep));
}

/// The 6 × 16 tile: per k step 2 loads of B, 6 broadcasts of A (one per row pointer) and 12 FMAs. Panels with at
/// most 8 live columns take a half loop (same products, same order).
CK_AVX2 static void ck_igemm_avx2(int taps, int kc, const float *const *rows, const float *b, float *c, ptrdiff_t ldc,
                                  int mr, int nr, const ck_tile_tail *tail) {
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    if (nr <= 8) {
        for (int t = 0; t < taps; t++, rows += CK_MR) {
            const float *a0 = rows[0], *a1 = rows[1], *a2 = rows[2], *a3 = rows[3], *a4 = rows[4], *a5 = rows[5];
            for (int p = 0; p < kc; p++, b += CK_NR) {
                __m256 b0 = _mm256_loadu_ps(b);
                c00 = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + p), b0, c00);
                c10 = _mm256_fmadd_ps(_mm256_broadcast_ss(a1 + p), b0, c10);
                c20 = _mm256_fmadd_ps(_mm256_broadcast_ss(a2 + p), b0, c20);
                c30 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + p), b0, c30);
                c40 = _mm256_fmadd_ps(_mm256_broadcast_ss(a4 + p), b0, c40);
                c50 = _mm256_fmadd_ps(_mm256_broadcast_ss(a5 + p), b0, c50);
            }
        }
    } else {
        for (int t = 0; t < taps; t++, rows += CK_MR) {
            const float *a0 = rows[0], *a1 = rows[1], *a2 = rows[2], *a3 = rows[3], *a4 = rows[4], *a5 = rows[5];
            for (int p = 0; p < kc; p++, b += CK_NR) {
                __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), x;
                x = _mm256_broadcast_ss(a0 + p); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
                x = _mm256_broadcast_ss(a1 + p); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
                x = _mm256_broadcast_ss(a2 + p); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
                x = _mm256_broadcast_ss(a3 + p); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
                x = _mm256_broadcast_ss(a4 + p); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
                x = _mm256_broadcast_ss(a5 + p); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
            }
        }
    }
    // Transcendental activations run in a second, specialized pass over the stored tile (still in L1).
    int late = ck_act_is_transcendental(tail->activation);
    ck_epilogue ep = {CK_BIAS_NONE, NULL, late ? CK_ACT_NONE : tail->activation, tail->param0, tail->param1, 0, tail->wide};
    int kind = ck_clamp_kind(ep.activation);
    if (mr == CK_MR && nr == CK_NR && kind >= 0) {
        int has_bias = tail->bias != NULL;
        __m256 b0 = has_bias ? _mm256_loadu_ps(tail->bias) : _mm256_setzero_ps();
        __m256 b1 = has_bias ? _mm256_loadu_ps(tail->bias + 8) : _mm256_setzero_ps();
        __m256 lo = _mm256_set1_ps(tail->param0), hi = _mm256_set1_ps(tail->param1);
        const float *residual = tail->residual;
        ptrdiff_t rs = tail->residual_stride;
#define CK_RESIDUAL_ROW(r) (residual ? residual + (r) * rs : NULL)
        CK_CLAMPED_TILE_AVX2(c, ldc, kind, has_bias, b0, b1, CK_RESIDUAL_ROW, lo, hi);
#undef CK_RESIDUAL_ROW
    } else {
        ck_tail_row_avx2(c, c00, c01, 0, nr, tail, &ep);
        if (mr > 1) ck_tail_row_avx2(c + ldc, c10, c11, 1, nr, tail, &ep);
        if (mr > 2) ck_tail_row_avx2(c + 2 * ldc, c20, c21, 2, nr, tail, &ep);
        if (mr > 3) ck_tail_row_avx2(c + 3 * ldc, c30, c31, 3, nr, tail, &ep);
        if (mr > 4) ck_tail_row_avx2(c + 4 * ldc, c40, c41, 4, nr, tail, &ep);
        if (mr > 5) ck_tail_row_avx2(c + 5 * ldc, c50, c51, 5, nr, tail, &ep);
    }
    if (late) {
        ep.activation = tail->activation;
        ck_act_rows_avx2(c, ldc, mr, nr, &ep);
    }
}
#endif


// MARK: - AVX-512

/// Output pixels per AVX-512 tile: 12 rows × 32 columns (two 16-wide panels) = 24 zmm accumulators, 2 B loads and
/// 12 broadcasts (folded into the FMAs) per k step. Four times the work of the AVX2 tile per call and per row
/// pointer switch, which is what the short-K convolutions of MobileNet/EfficientNet spend their time on.
#define CK_MR512 12
/// Channels per tap from which the AVX-512 tile needs at least CK_CONV_AVX512_MIN_PIXELS output pixels to win.
#define CK_CONV_AVX512_MAX_CHANNELS 512
#define CK_CONV_AVX512_MIN_PIXELS 512
/// Output maps (pixels per image) up to which a multiple of 7 takes the 7 × 32 tile. Measured (scripts/
/// bench_kernels.py --conv, 2 threads, the two tiles alternating): 7 rows win at 7×7 (resnet50's layer 4: 200–217
/// GFLOP/s against 136–180 on the 6 × 16 AVX2 tile it had; MobileNet's 1×1 160→960 and 320→1280: 190–221 against
/// 150–166) and 14×14 (resnet50's 1×1 layers: 198–209 against 181–201), tie at 28×28, and lose at 56×56 (resnet50's
/// layer 1: 172–205 against 194–214 on 12 rows) and on the 112×112 stem.
#ifndef CK_CONV_ROWS7_MAX_PIXELS
#define CK_CONV_ROWS7_MAX_PIXELS 1024
#endif

#ifdef CK_X86
/// The cheap activations on 16 lanes, with the scalar formulas' roundings (as ck_act_avx2).
CK_AVX512 static inline __m512 ck_act512(__m512 x, const ck_epilogue *ep) {
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1);
    switch (ep->activation) {
    case CK_ACT_RELU: return _mm512_max_ps(x, zero);
    case CK_ACT_CLIP: {
        __m512 lo = _mm512_set1_ps(ep->param0), hi = _mm512_set1_ps(ep->param1);
        __m512 y = _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), lo);
        return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(y, hi, _CMP_GT_OQ), hi);
    }
    case CK_ACT_LEAKY_RELU: {
        __m512 sx = _mm512_mul_ps(_mm512_set1_ps(ep->param0), x);
        return _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(x, zero, _CMP_LT_OQ), sx);
    }
    case CK_ACT_HARD_SIGMOID: {
        __m512 t = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(ep->param0), x), _mm512_set1_ps(ep->param1));
        __m512 u = _mm512_mask_mov_ps(one, _mm512_cmp_ps_mask(t, one, _CMP_LT_OQ), t);
        return _mm512_mask_mov_ps(zero, _mm512_cmp_ps_mask(u, zero, _CMP_GE_OQ), u);
    }
    case CK_ACT_HARD_SWISH: {
        __m512 t = _mm512_add_ps(_mm512_div_ps(x, _mm512_set1_ps(6)), _mm512_set1_ps(0.5f));
        __m512 u = _mm512_mask_mov_ps(one, _mm512_cmp_ps_mask(t, one, _CMP_LT_OQ), t);
        __m512 v = _mm512_mask_mov_ps(zero, _mm512_cmp_ps_mask(u, zero, _CMP_GE_OQ), u);
        return _mm512_mul_ps(x, v);
    }
    default: return x;  // none, or a transcendental one (applied after, by ck_act_rows_avx2)
    }
}

/// Stores one 16-column half-row (live columns `mask`) after bias, residual and the cheap activation.
CK_AVX512 static inline void ck_tail512(float *dst, __m512 v, __mmask16 mask, const float *bias, const float *residual,
                                        const ck_epilogue *ep) {
    if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, bias));
    if (residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, residual));
    _mm512_mask_storeu_ps(dst, mask, ck_act512(v, ep));
}

// Per-row steps of the AVX-512 tiles, expanded by a row list (CK_ROWS12, CK_ROWS7).
#define CK_ROWS12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define CK_ROWS7(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6)
#define CK_DECLARE512(r) __m512 c##r##0 = _mm512_setzero_ps(), c##r##1 = _mm512_setzero_ps();
#define CK_POINTER512(r) const float *a##r = rows[r];
#define CK_STEP2_512(r) { __m512 x = _mm512_set1_ps(a##r[p]); c##r##0 = _mm512_fmadd_ps(x, w0, c##r##0); c##r##1 = _mm512_fmadd_ps(x, w1, c##r##1); }
#define CK_STEP1_512(r) c##r##0 = _mm512_fmadd_ps(_mm512_set1_ps(a##r[p]), w0, c##r##0);
#define CK_STORE512(r)                                                                                              \
    if (r < mr) {                                                                                                   \
        const float *z = tail->residual ? tail->residual + r * tail->residual_stride : NULL;                        \
        ck_tail512(c + r * ldc, c##r##0, m0, tail->bias, z, &ep);                                                   \
        if (m1) ck_tail512(c + r * ldc + CK_NR, c##r##1, m1, tail->bias ? tail->bias + CK_NR : NULL, z ? z + CK_NR : NULL, &ep); \
    }

/// An AVX-512 tile of MR rows × 32 columns over two packed panels (b1 NULL: one panel, MR × 16); rows holds MR
/// pointers per tap, rows past mr repeating a live one.
#define CK_IGEMM512(NAME, MR, ROWS)                                                                                 \
    CK_AVX512 static void NAME(int taps, int kc, const float *const *rows, const float *b0, const float *b1, float *c, \
                               ptrdiff_t ldc, int mr, int nr, const ck_tile_tail *tail) {                           \
        ROWS(CK_DECLARE512)                                                                                         \
        if (b1) {                                                                                                   \
            for (int t = 0; t < taps; t++, rows += MR) {                                                            \
                ROWS(CK_POINTER512)                                                                                 \
                for (int p = 0; p < kc; p++, b0 += CK_NR, b1 += CK_NR) {                                            \
                    __m512 w0 = _mm512_loadu_ps(b0), w1 = _mm512_loadu_ps(b1);                                      \
                    ROWS(CK_STEP2_512)                                                                              \
                }                                                                                                   \
            }                                                                                                       \
        } else {                                                                                                    \
            for (int t = 0; t < taps; t++, rows += MR) {                                                            \
                ROWS(CK_POINTER512)                                                                                 \
                for (int p = 0; p < kc; p++, b0 += CK_NR) {                                                         \
                    __m512 w0 = _mm512_loadu_ps(b0);                                                                \
                    ROWS(CK_STEP1_512)                                                                              \
                }                                                                                                   \
            }                                                                                                       \
        }                                                                                                           \
        int late = ck_act_is_transcendental(tail->activation);                                                      \
        ck_epilogue ep = {CK_BIAS_NONE, NULL, late ? CK_ACT_NONE : tail->activation, tail->param0, tail->param1, 0, tail->wide}; \
        __mmask16 m0 = (__mmask16)(nr >= CK_NR ? 0xFFFF : (1u << nr) - 1);                                         \
        __mmask16 m1 = (__mmask16)(nr >= 2 * CK_NR ? 0xFFFF : nr > CK_NR ? (1u << (nr - CK_NR)) - 1 : 0);           \
        ROWS(CK_STORE512)                                                                                           \
        if (late) {                                                                                                 \
            ep.activation = tail->activation;                                                                       \
            ck_act_rows_avx2(c, ldc, mr, nr, &ep);                                                                  \
        }                                                                                                           \
    }

/// 12 × 32: 24 accumulators, 2 B loads and 12 broadcasts per k step.
CK_IGEMM512(ck_igemm_avx512, 12, CK_ROWS12)
/// 7 × 32: for layers whose pixel counts are multiples of 7 and few (resnet50's 7×7 and 14×14 maps: no partial
/// tile, where 12 rows leave 11 of 60 slots empty at 7×7), and long K (7 rows of A stay in L1 longer).
CK_IGEMM512(ck_igemm_avx512_7, 7, CK_ROWS7)

typedef void (*ck_igemm512_kernel)(int taps, int kc, const float *const *rows, const float *b0, const float *b1, float *c,
                                   ptrdiff_t ldc, int mr, int nr, const ck_tile_tail *tail);

void ck_gemm_tile_avx512(int kc, const float *const *rows, const float *b0, const float *b1, float *c, ptrdiff_t ldc, int mr,
                         int nr, const float *bias, const ck_epilogue *ep) {
    ck_tile_tail tail = {bias, NULL, 0, ep->activation, ep->param0, ep->param1, ep->wide};
    ck_igemm_avx512(1, kc, rows, b0, b1, c, ldc, mr, nr, &tail);
}
#endif

static ck_igemm_kernel ck_igemm_select(ck_isa isa) {
#ifdef CK_X86
    if (ck_isa_avx2(isa)) return ck_igemm_avx2;
#endif
    (void)isa;
    return ck_igemm_scalar;
}

// MARK: - Tasks

/// Kernel sizes up to 11×11 precompute their taps' offsets.
#define CK_CONV_MAX_TAP_OFFSETS 121

typedef struct {
    ck_conv_nhwc g;
    const float *x, *w;
    float *y;
    ck_conv_epilogue ep;
    ck_igemm_kernel kernel;
    const float *zeros;
    int taps, panels, tiles_per_image, tiles;
    int panel_block, tile_block, panel_blocks, tile_blocks;
    /// Build each tile's rows (taps × channels, contiguous) before the product instead of pointing at the input:
    /// for inputs with few channels per tap (a stem convolution), and for channels-first inputs.
    int im2row;
    ptrdiff_t channel_stride;
    /// Rows per tile: 12 or 7 on the AVX-512 path (kernel512), CK_MR otherwise.
    int mr, avx512;
#ifdef CK_X86
    ck_igemm512_kernel kernel512;
#endif
    /// The call runs at the AVX-512 level (its kernel may still be the AVX2 one): ck_epilogue.wide.
    int avx512_level;
    /// Each tap's offset from its window's origin pixel, in floats (NULL: more taps than CK_CONV_MAX_TAP_OFFSETS).
    const ptrdiff_t *tap_offsets;
    ptrdiff_t tap_offset_storage[CK_CONV_MAX_TAP_OFFSETS];
} ck_conv_job;

/// Channels per group below which a channels-last tile's rows would be gathered (im2row) rather than read
/// through per-tap pointers. 0: never. Measured (scripts/bench_kernels.py --conv, stem convolutions with 3 input
/// channels): the gather costs more than switching row pointers every 3 k-steps — resnet50's 7×7 stem runs at 166
/// GFLOP/s through pointers and 105 gathered — so only channels-first inputs, which have no pointer form, gather.
#ifndef CK_CONV_IM2ROW_CHANNELS
#define CK_CONV_IM2ROW_CHANNELS 0
#endif

/// Per-thread room for one tile's gathered rows (CK_MR × taps·channels floats), grown as needed.
static _Thread_local float *ck_conv_im2row = NULL;
static _Thread_local size_t ck_conv_im2row_count = 0;

/// Gathers the CK_MR rows of a tile into `buffer` (row r: taps × group_in floats, tap-major, as the packed weights
/// are ordered), zeros for padding; rows past mr repeat the last live one.
static void ck_conv_gather_tile(const ck_conv_job *job, int n, int p0, int mr, int group, float *buffer, const float **rows) {
    const ck_conv_nhwc *g = &job->g;
    size_t k = (size_t)job->taps * g->group_in;
    // Channels last: images are in_h·in_w pixels x_stride apart; channels first: channel planes channel_stride apart.
    size_t image_stride = job->channel_stride == 1 ? (size_t)g->in_h * g->in_w * g->x_stride
                                                   : (size_t)g->groups * g->group_in * job->channel_stride;
    const float *image = job->x + (size_t)n * image_stride + (size_t)group * g->group_in * job->channel_stride;
    for (int r = 0; r < job->mr; r++) {
        float *row = buffer + (size_t)r * k;
        rows[r] = row;
        if (r >= mr) {
            rows[r] = buffer + (size_t)(mr - 1) * k;
            continue;
        }
        int p = p0 + r, oh = p / g->out_w, ow = p % g->out_w;
        for (int i = 0; i < g->kernel_h; i++) {
            int ih = oh * g->stride_h - g->pad_top + i * g->dilation_h;
            for (int j = 0; j < g->kernel_w; j++, row += g->group_in) {
                int iw = ow * g->stride_w - g->pad_left + j * g->dilation_w;
                if ((unsigned)ih >= (unsigned)g->in_h || (unsigned)iw >= (unsigned)g->in_w) {
                    for (int c = 0; c < g->group_in; c++) row[c] = 0;
                    continue;
                }
                const float *x = image + ((size_t)ih * g->in_w + iw) * g->x_stride;
                for (int c = 0; c < g->group_in; c++) row[c] = x[(ptrdiff_t)c * job->channel_stride];
            }
        }
    }
}

/// Per-thread room for one tile's row pointers (taps × CK_MR), grown as needed.
static _Thread_local const float **ck_conv_rows = NULL;
static _Thread_local size_t ck_conv_rows_count = 0;

static const float **ck_conv_row_buffer(size_t count) {
    if (count > ck_conv_rows_count) {
        free(ck_conv_rows);
        ck_conv_rows = malloc(count * sizeof *ck_conv_rows);
        if (!ck_conv_rows) abort();  // out of memory, as Swift traps on a failed allocation
        ck_conv_rows_count = count;
    }
    return ck_conv_rows;
}

/// The input pointers of one tile: for each tap (kernel row, then column) and each of the tile's CK_MR rows (output
/// pixels p0 …), the first channel of group g at that tap, or zeros outside the image.
static void ck_conv_tile_rows(const ck_conv_job *job, int n, int p0, int mr, int group, const float **rows) {
    const ck_conv_nhwc *g = &job->g;
    int tile = job->mr;
    const float *image = job->x + (size_t)n * g->in_h * g->in_w * g->x_stride + (size_t)group * g->group_in;
    // A 1×1 stride-1 convolution without padding reads its own pixel: consecutive rows, no bounds to check.
    if (job->taps == 1 && g->stride_h == 1 && g->stride_w == 1 && g->pad_top == 0 && g->pad_left == 0 &&
        g->in_w == g->out_w && g->in_h == g->out_h) {
        for (int r = 0; r < tile; r++) rows[r] = image + (size_t)(p0 + (r < mr ? r : mr - 1)) * g->x_stride;
        return;
    }
    // The rows' output coordinates, stepped from p0's (one division per tile instead of one per row).
    int oh[CK_MR512], ow[CK_MR512];
    int h = p0 / g->out_w, w = p0 % g->out_w;
    for (int r = 0; r < tile; r++) {
        oh[r] = h;
        ow[r] = w;
        if (r + 1 < mr && ++w == g->out_w) {
            w = 0;
            h++;
        }
    }
    // Rows whose every tap is inside the image (most of them) are their window's origin plus each tap's fixed
    // offset: no bounds to check. Short-K layers (stems: 3 channels per tap) spend as long here as in the product.
    int inside = job->tap_offsets != NULL;
    const float *origin[CK_MR512];
    int span_h = (g->kernel_h - 1) * g->dilation_h, span_w = (g->kernel_w - 1) * g->dilation_w;
    for (int r = 0; r < tile && inside; r++) {
        int ih = oh[r] * g->stride_h - g->pad_top, iw = ow[r] * g->stride_w - g->pad_left;
        inside = ih >= 0 && iw >= 0 && ih + span_h < g->in_h && iw + span_w < g->in_w;
        origin[r] = image + ((ptrdiff_t)ih * g->in_w + iw) * g->x_stride;
    }
    if (inside) {
        for (int t = 0; t < job->taps; t++, rows += tile)
            for (int r = 0; r < tile; r++) rows[r] = origin[r] + job->tap_offsets[t];
        return;
    }
    for (int i = 0; i < g->kernel_h; i++) {
        for (int j = 0; j < g->kernel_w; j++, rows += tile) {
            for (int r = 0; r < tile; r++) {
                int ih = oh[r] * g->stride_h - g->pad_top + i * g->dilation_h;
                int iw = ow[r] * g->stride_w - g->pad_left + j * g->dilation_w;
                rows[r] = (unsigned)ih < (unsigned)g->in_h && (unsigned)iw < (unsigned)g->in_w
                              ? image + ((size_t)ih * g->in_w + iw) * g->x_stride
                              : job->zeros;
            }
        }
    }
}

static void ck_conv_task(void *context, int index) {
    const ck_conv_job *job = context;
    const ck_conv_nhwc *g = &job->g;
    int tb = index % job->tile_blocks, rest = index / job->tile_blocks;
    int pb = rest % job->panel_blocks, group = rest / job->panel_blocks;
    int t0 = tb * job->tile_block, t1 = ck_min(job->tiles, t0 + job->tile_block);
    int j0 = pb * job->panel_block, j1 = ck_min(job->panels, j0 + job->panel_block);
    size_t k = (size_t)job->taps * g->group_in;
    int tile = job->mr;
    const float **rows = ck_conv_row_buffer((size_t)job->taps * tile);
    float *gathered = NULL;
    if (job->im2row) {
        if (k * tile > ck_conv_im2row_count) {
            free(ck_conv_im2row);
            ck_conv_im2row = aligned_alloc(64, (k * tile * sizeof(float) + 63) / 64 * 64);
            if (!ck_conv_im2row) abort();  // out of memory, as Swift traps on a failed allocation
            ck_conv_im2row_count = k * tile;
        }
        gathered = ck_conv_im2row;
    }
    int out_pixels = g->out_h * g->out_w;
    int taps = gathered ? 1 : job->taps, kc = gathered ? (int)k : g->group_in;
    for (int t = t0; t < t1; t++) {
        int n = t / job->tiles_per_image, p0 = (t % job->tiles_per_image) * tile;
        int mr = ck_min(tile, out_pixels - p0);
        if (gathered) ck_conv_gather_tile(job, n, p0, mr, group, gathered, rows);
        else ck_conv_tile_rows(job, n, p0, mr, group, rows);
        size_t pixel = (size_t)n * out_pixels + p0;
        // AVX-512 tiles take two panels at a time (the last one alone when their count is odd).
        for (int j = j0; j < j1; j += job->avx512 && j + 1 < j1 ? 2 : 1) {
            int col0 = group * g->group_out + j * CK_NR;
            ck_tile_tail tail = {
                job->ep.bias ? job->ep.bias + col0 : NULL,
                job->ep.residual ? job->ep.residual + pixel * job->ep.residual_stride + col0 : NULL,
                job->ep.residual_stride, job->ep.activation, job->ep.param0, job->ep.param1, job->avx512_level};
            const float *b = job->w + ((size_t)group * job->panels + j) * k * CK_NR;
            float *y = job->y + pixel * g->y_stride + col0;
#ifdef CK_X86
            if (job->avx512) {
                int pair = j + 1 < j1;
                job->kernel512(taps, kc, rows, b, pair ? b + k * CK_NR : NULL, y, g->y_stride, mr,
                                ck_min(pair ? 2 * CK_NR : CK_NR, g->group_out - j * CK_NR), &tail);
                continue;
            }
#endif
            job->kernel(taps, kc, rows, b, y, g->y_stride, mr, ck_min(CK_NR, g->group_out - j * CK_NR), &tail);
        }
    }
}

void ck_conv2d_nhwc_with(const ck_conv_nhwc *geometry, const float *x, const float *packed_w,
                         const ck_conv_epilogue *epilogue, float *y, ck_isa isa, int threads) {
    ck_conv_job job;
    memset(&job, 0, sizeof job);
    job.g = *geometry;
    job.x = x;
    job.w = packed_w;
    job.y = y;
    if (epilogue) job.ep = *epilogue;
    const ck_conv_nhwc *g = &job.g;
    if (g->batch <= 0 || g->out_h <= 0 || g->out_w <= 0 || g->groups <= 0 || g->group_out <= 0) return;
    job.kernel = ck_igemm_select(isa);
    // Measured (scripts/bench_kernels.py --conv, resnet50's layers): the 12-row tiles win on every layer but those with
    // long channel runs (≥ 512 per tap) and few pixels — layer 4's 7×7 convolutions, layer 3's 1024→256 — where 12
    // rows of A no longer stay in L1 across a panel pair and the partial last tile wastes more; those keep 6 × 16,
    // unless their map takes the 7-row tile below.
    job.avx512_level = ck_isa_avx512(isa);
    // On a full-width AVX-512 core (Zen 5) the 12 × 32 tile does twice the 6 × 16 one's multiply-adds per cycle and
    // wins on those layers too (yolo_tiny's 512 → 256 at 10×10: 2× ORT's time on the 6 × 16 tile).
    job.avx512 = ck_isa_avx512(isa) && (!ck_cpu_avx512_half_width() || g->group_in < CK_CONV_AVX512_MAX_CHANNELS
                                        || g->batch * g->out_h * g->out_w >= CK_CONV_AVX512_MIN_PIXELS);
    job.mr = job.avx512 ? CK_MR512 : CK_MR;
#ifdef CK_X86
    // Maps of at most CK_CONV_ROWS7_MAX_PIXELS pixels that are a multiple of 7 (resnet50's and MobileNet's 28×28,
    // 14×14 and 7×7) take the 7-row AVX-512 tile, whatever their channels: no partial tile, and 7 rows of A
    // stay in L1 over long K where 12 do not.
    job.kernel512 = ck_igemm_avx512;
    int map = g->out_h * g->out_w;
    if (ck_isa_avx512(isa) && map % 7 == 0 && map <= CK_CONV_ROWS7_MAX_PIXELS) {
        job.avx512 = 1;
        job.mr = 7;
        job.kernel512 = ck_igemm_avx512_7;
    }
#endif
    job.taps = g->kernel_h * g->kernel_w;
    if (job.taps <= CK_CONV_MAX_TAP_OFFSETS) {
        for (int i = 0; i < g->kernel_h; i++)
            for (int j = 0; j < g->kernel_w; j++)
                job.tap_offset_storage[i * g->kernel_w + j] = ((ptrdiff_t)i * g->dilation_h * g->in_w + (ptrdiff_t)j * g->dilation_w) * g->x_stride;
        job.tap_offsets = job.tap_offset_storage;
    }
    job.channel_stride = g->x_channel_stride > 0 ? g->x_channel_stride : 1;
    job.im2row = job.channel_stride != 1 || g->group_in < CK_CONV_IM2ROW_CHANNELS;
    job.panels = ck_ceil_div(g->group_out, CK_NR);
    job.tiles_per_image = ck_ceil_div(g->out_h * g->out_w, job.mr);
    job.tiles = g->batch * job.tiles_per_image;
    float *heap_zeros = NULL;
    if (g->group_in <= CK_CONV_ZEROS) {
        job.zeros = ck_conv_zeros;
    } else {
        heap_zeros = calloc((size_t)g->group_in, sizeof(float));
        if (!heap_zeros) abort();
        job.zeros = heap_zeros;
    }

    // Tasks are (panel block, tile block) pairs, enough for every thread to take several. Each task reads its panels'
    // weights once per tile block and its tiles' input once per panel block, so the split is the one that reads
    // the least in all: layers with many pixels split the tiles (weights read once, from L2), layers with few
    // pixels and many weights (the last stages' 7×7 maps) split the panels (each weight read once). A panel block
    // holds at most CK_CONV_B_BLOCK_BYTES, so its panels stay in L2 while the tiles pass over them.
    double work = (double)job.tiles * job.mr * g->groups * g->group_out * (double)job.taps * g->group_in;
    if (threads <= 0) threads = ck_num_threads();
    if (work < CK_PARALLEL_MIN_WORK) threads = 1;
    int wanted = threads > 1 ? threads * CK_CONV_TASKS_PER_THREAD : 1;
    size_t panel_bytes = (size_t)job.taps * (size_t)(g->group_in > 0 ? g->group_in : 1) * CK_NR * sizeof(float);
    int step = job.avx512 ? 2 : 1;  // AVX-512 tiles take panels in pairs
    double weight_bytes = (double)panel_bytes * job.panels, input_bytes = (double)job.tiles * job.mr * panel_bytes / CK_NR;
    ck_choose_task_grid(job.panels, job.tiles, g->groups, wanted, panel_bytes, CK_CONV_B_BLOCK_BYTES, step, weight_bytes, input_bytes,
                        &job.panel_block, &job.tile_block);
    job.panel_blocks = ck_ceil_div(job.panels, job.panel_block);
    job.tile_blocks = ck_ceil_div(job.tiles, job.tile_block);
    int outer = g->groups * job.panel_blocks;
    int tasks = outer * job.tile_blocks;
    if (threads > 1) ck_parallel_run(threads, tasks, ck_conv_task, &job);
    else for (int i = 0; i < tasks; i++) ck_conv_task(&job, i);
    free(heap_zeros);
}

void ck_conv2d_nhwc(const ck_conv_nhwc *geometry, const float *x, const float *packed_w, const ck_conv_epilogue *epilogue,
                    float *y) {
    ck_conv2d_nhwc_with(geometry, x, packed_w, epilogue, y, CK_ISA_AUTO, 0);
}

#ifdef CK_X86
/// The input transform 8 channels at a time (rows[i][j] NULL: a padding pixel); returns the channels done.
CK_AVX2 static int ck_wino_input_avx2(const float *rows[4][4], int C, float *v, size_t stride) {
    int c = 0;
    for (; c + 8 <= C; c += 8) {
        __m256 t[4][4];
        for (int j = 0; j < 4; j++) {
            __m256 d0 = rows[0][j] ? _mm256_loadu_ps(rows[0][j] + c) : _mm256_setzero_ps();
            __m256 d1 = rows[1][j] ? _mm256_loadu_ps(rows[1][j] + c) : _mm256_setzero_ps();
            __m256 d2 = rows[2][j] ? _mm256_loadu_ps(rows[2][j] + c) : _mm256_setzero_ps();
            __m256 d3 = rows[3][j] ? _mm256_loadu_ps(rows[3][j] + c) : _mm256_setzero_ps();
            t[0][j] = _mm256_sub_ps(d0, d2);
            t[1][j] = _mm256_add_ps(d1, d2);
            t[2][j] = _mm256_sub_ps(d2, d1);
            t[3][j] = _mm256_sub_ps(d1, d3);
        }
        for (int i = 0; i < 4; i++) {
            _mm256_storeu_ps(v + (size_t)(i * 4 + 0) * stride + c, _mm256_sub_ps(t[i][0], t[i][2]));
            _mm256_storeu_ps(v + (size_t)(i * 4 + 1) * stride + c, _mm256_add_ps(t[i][1], t[i][2]));
            _mm256_storeu_ps(v + (size_t)(i * 4 + 2) * stride + c, _mm256_sub_ps(t[i][2], t[i][1]));
            _mm256_storeu_ps(v + (size_t)(i * 4 + 3) * stride + c, _mm256_sub_ps(t[i][1], t[i][3]));
        }
    }
    return c;
}

/// ck_wino_weights 8 output channels at a time, in the scalar form's order of operations (same results).
CK_AVX2 static void ck_wino_weights_avx2(const float *panel, int C, int np, int j, float *u) {
    __m256 half = _mm256_set1_ps(0.5f);
    for (int c = 0; c < C; c++) {
        for (int h = 0; h < CK_NR; h += 8) {
            __m256 g[9], t[4][3];
            for (int k = 0; k < 9; k++) g[k] = _mm256_loadu_ps(panel + ((size_t)k * C + c) * CK_NR + h);
            for (int i = 0; i < 3; i++) {
                t[0][i] = g[i];
                t[1][i] = _mm256_mul_ps(half, _mm256_add_ps(_mm256_add_ps(g[i], g[3 + i]), g[6 + i]));
                t[2][i] = _mm256_mul_ps(half, _mm256_add_ps(_mm256_sub_ps(g[i], g[3 + i]), g[6 + i]));
                t[3][i] = g[6 + i];
            }
            for (int i = 0; i < 4; i++) {
                __m256 v[4] = {t[i][0], _mm256_mul_ps(half, _mm256_add_ps(_mm256_add_ps(t[i][0], t[i][1]), t[i][2])),
                               _mm256_mul_ps(half, _mm256_add_ps(_mm256_sub_ps(t[i][0], t[i][1]), t[i][2])), t[i][2]};
                for (int k = 0; k < 4; k++) _mm256_storeu_ps(u + (((size_t)(i * 4 + k) * np + j) * C + c) * CK_NR + h, v[k]);
            }
        }
    }
}

/// Y = Aᵀ M A for one tile and one panel (16 columns of m, ξ rows `xstride` apart), 8 columns at a time: out[i·2 + j]
/// holds the two halves of output pixel (i, j).
CK_AVX2 static inline void ck_wino_output_avx2(const float *m, size_t xstride, __m256 out[4][2]) {
    for (int h = 0; h < 2; h++) {
        __m256 q[16];
        for (int xi = 0; xi < 16; xi++) q[xi] = _mm256_loadu_ps(m + (size_t)xi * xstride + 8 * h);
        __m256 s0[4], s1[4];
        for (int j = 0; j < 4; j++) {
            s0[j] = _mm256_add_ps(_mm256_add_ps(q[j], q[4 + j]), q[8 + j]);
            s1[j] = _mm256_sub_ps(_mm256_sub_ps(q[4 + j], q[8 + j]), q[12 + j]);
        }
        out[0][h] = _mm256_add_ps(_mm256_add_ps(s0[0], s0[1]), s0[2]);
        out[1][h] = _mm256_sub_ps(_mm256_sub_ps(s0[1], s0[2]), s0[3]);
        out[2][h] = _mm256_add_ps(_mm256_add_ps(s1[0], s1[1]), s1[2]);
        out[3][h] = _mm256_sub_ps(_mm256_sub_ps(s1[1], s1[2]), s1[3]);
    }
}
#endif

// MARK: - Winograd F(2×2, 3×3)
//
// A 3×3, stride-1 convolution computes each 2×2 block of outputs from a 4×4 block of inputs with 16 products per
// (input, output) channel pair instead of 36: V = Bᵀ d B per input tile and channel, U = G g Gᵀ per filter, 16
// GEMMs M_ξ = V_ξ · U_ξ (ξ = the 16 positions of the 4×4 transform) and Y = Aᵀ M A (Lavin & Gray, 2015). The
// products run on the same microkernels as the direct convolution. Weights are read from the direct
// convolution's packed layout and transformed per task for the panels it covers, so the file stores them once.
// F(2, 3)'s matrices hold only 0, ±1 and ±½: the results stay within a few ulp of the direct sums (F(4, 3) would
// save more but loses about two decimal digits).

/// Output channels (in CK_NR panels) a Winograd task transforms weights for and carries through its tiles: 4 panels
// (64 channels) keep the transformed weights at 16 × C × 64 floats, 256 KB at C = 64.
#define CK_WINOGRAD_PANELS 4

typedef struct {
    ck_conv_nhwc g;
    const float *x, *w;
    float *y, *u;  // u: the transformed weights, shared by the tasks
    ck_conv_epilogue ep;
    int tiles_h, tiles_w, tiles, mr, avx512, avx2;
    int wide;  // ck_epilogue.wide
    int panel_blocks, tile_blocks, tile_block, panels;
    ck_igemm_kernel kernel;
} ck_wino_job;

/// Per-thread buffers: transformed inputs and products of a row group of tiles.
static _Thread_local float *ck_wino_buffer = NULL;
static _Thread_local size_t ck_wino_count = 0;

static float *ck_wino_scratch(size_t floats) {
    if (floats > ck_wino_count) {
        free(ck_wino_buffer);
        ck_wino_buffer = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
        if (!ck_wino_buffer) abort();  // out of memory, as Swift traps on a failed allocation
        ck_wino_count = floats;
    }
    return ck_wino_buffer;
}

/// U = G g Gᵀ for panel j of the packed 3×3 weights, into u laid out as 16 sets of B panels for all of them:
/// u[((ξ·panels + j)·C + c)·NR + col].
static void ck_wino_weights(void *context, int j) {
    const ck_wino_job *job = context;
    int C = job->g.group_in, np = job->panels;
    const float *panel = job->w + (size_t)j * 9 * C * CK_NR;
    float *u = job->u;
#ifdef CK_X86
    if (job->avx2) {
        ck_wino_weights_avx2(panel, C, np, j, u);
        return;
    }
#endif
    for (int c = 0; c < C; c++) {
        for (int col = 0; col < CK_NR; col++) {
            float g[9], t[4][3];
            for (int k = 0; k < 9; k++) g[k] = panel[((size_t)k * C + c) * CK_NR + col];
            for (int i = 0; i < 3; i++) {
                t[0][i] = g[i];
                t[1][i] = 0.5f * (g[i] + g[3 + i] + g[6 + i]);
                t[2][i] = 0.5f * (g[i] - g[3 + i] + g[6 + i]);
                t[3][i] = g[6 + i];
            }
            for (int i = 0; i < 4; i++) {
                float v[4] = {t[i][0], 0.5f * (t[i][0] + t[i][1] + t[i][2]), 0.5f * (t[i][0] - t[i][1] + t[i][2]), t[i][2]};
                for (int k = 0; k < 4; k++) u[(((size_t)(i * 4 + k) * np + j) * C + c) * CK_NR + col] = v[k];
            }
        }
    }
}

/// V = Bᵀ d B of one tile (4×4 input pixels from (ih0, iw0), zeros outside the image), every channel, into
/// v[ξ·stride + c].
static void ck_wino_input(const ck_wino_job *job, const float *image, int ih0, int iw0, float *v, size_t stride) {
    const ck_conv_nhwc *g = &job->g;
    int C = g->group_in;
    const float *rows[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            int ih = ih0 + i, iw = iw0 + j;
            rows[i][j] = (unsigned)ih < (unsigned)g->in_h && (unsigned)iw < (unsigned)g->in_w ? image + ((size_t)ih * g->in_w + iw) * g->x_stride : NULL;
        }
    int c = 0;
#ifdef CK_X86
    if (job->avx2) c = ck_wino_input_avx2(rows, C, v, stride);
#endif
    for (; c < C; c++) {
        float d[4][4], t[4][4];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) d[i][j] = rows[i][j] ? rows[i][j][c] : 0;
        for (int j = 0; j < 4; j++) {
            t[0][j] = d[0][j] - d[2][j];
            t[1][j] = d[1][j] + d[2][j];
            t[2][j] = d[2][j] - d[1][j];
            t[3][j] = d[1][j] - d[3][j];
        }
        for (int i = 0; i < 4; i++) {
            v[(size_t)(i * 4 + 0) * stride + c] = t[i][0] - t[i][2];
            v[(size_t)(i * 4 + 1) * stride + c] = t[i][1] + t[i][2];
            v[(size_t)(i * 4 + 2) * stride + c] = t[i][2] - t[i][1];
            v[(size_t)(i * 4 + 3) * stride + c] = t[i][1] - t[i][3];
        }
    }
}

#ifdef CK_X86
CK_AVX2 static void ck_wino_store_avx2(const ck_wino_job *job, const float *m, size_t xstride, int np, int j0,
                                       const size_t pixels[4], const int live[4], const ck_epilogue *ep, int late) {
    const ck_conv_nhwc *g = &job->g;
    for (int p = 0; p < np; p++) {
        int o0 = (j0 + p) * CK_NR, nr = ck_min(CK_NR, g->group_out - o0);
        __m256 out[4][2];
        ck_wino_output_avx2(m + p * CK_NR, xstride, out);
        for (int k = 0; k < 4; k++) {
            if (!live[k]) continue;
            ck_tile_tail tail = {job->ep.bias ? job->ep.bias + o0 : NULL,
                                 job->ep.residual ? job->ep.residual + pixels[k] * job->ep.residual_stride + o0 : NULL,
                                 0, ep->activation, ep->param0, ep->param1, ep->wide};
            float *dst = job->y + pixels[k] * g->y_stride + o0;
            ck_tail_row_avx2(dst, out[k][0], out[k][1], 0, nr, &tail, ep);
            if (late) {
                ck_epilogue full = *ep;
                full.activation = job->ep.activation;
                ck_act_rows_avx2(dst, 0, 1, nr, &full);
            }
        }
    }
}
#endif

/// The four output pixels of one tile (pixels[k], live[k]: whether inside the output) for panels j0 ..< j0 + np
/// from the products at m (ξ rows `xstride` apart): Y = Aᵀ M A, bias, residual, activation (`late`: a
/// transcendental one ep leaves out, applied in a second pass).
static void ck_wino_store(const ck_wino_job *job, const float *m, size_t xstride, int np, int j0, const size_t pixels[4],
                          const int live[4], const ck_epilogue *ep, int late) {
#ifdef CK_X86
    if (job->avx2) {
        ck_wino_store_avx2(job, m, xstride, np, j0, pixels, live, ep, late);
        return;
    }
#endif
    (void)late;  // without AVX2, ep carries every activation
    const ck_conv_nhwc *g = &job->g;
    for (int p = 0; p < np; p++) {
        int o0 = (j0 + p) * CK_NR, nr = ck_min(CK_NR, g->group_out - o0);
        const float *mp = m + p * CK_NR;
        for (int col = 0; col < nr; col++) {
            float q[16];
            for (int xi = 0; xi < 16; xi++) q[xi] = mp[(size_t)xi * xstride + col];
            float s0[4], s1[4];
            for (int j = 0; j < 4; j++) {
                s0[j] = q[j] + q[4 + j] + q[8 + j];
                s1[j] = q[4 + j] - q[8 + j] - q[12 + j];
            }
            float out[4] = {s0[0] + s0[1] + s0[2], s0[1] - s0[2] - s0[3], s1[0] + s1[1] + s1[2], s1[1] - s1[2] - s1[3]};
            int o = o0 + col;
            for (int k = 0; k < 4; k++) {
                if (!live[k]) continue;
                float value = out[k];
                if (job->ep.bias) value = value + job->ep.bias[o];
                if (job->ep.residual) value = value + job->ep.residual[pixels[k] * job->ep.residual_stride + o];
                job->y[pixels[k] * g->y_stride + o] = ck_act_scalar(value, ep);
            }
        }
    }
}

static void ck_wino_task(void *context, int index) {
    const ck_wino_job *job = context;
    const ck_conv_nhwc *g = &job->g;
    int pb = index % job->panel_blocks, tb = index / job->panel_blocks;
    int j0 = pb * CK_WINOGRAD_PANELS, j1 = ck_min(job->panels, j0 + CK_WINOGRAD_PANELS), np = j1 - j0;
    int t0 = tb * job->tile_block, t1 = ck_min(job->tiles, t0 + job->tile_block);
    int C = g->group_in, R = job->mr, cols = np * CK_NR;
    size_t v_size = (size_t)16 * R * C, m_size = (size_t)16 * R * cols;
    float *v = ck_wino_scratch(v_size + m_size), *m = v + v_size;
    const float *rows[CK_MR512];
    ck_tile_tail plain = {NULL, NULL, 0, CK_ACT_NONE, 0, 0, 0};
    int late = job->avx2 && ck_act_is_transcendental(job->ep.activation);
    ck_epilogue ep = {CK_BIAS_NONE, NULL, late ? CK_ACT_NONE : job->ep.activation, job->ep.param0, job->ep.param1, 0, job->wide};
    int per_image = job->tiles_h * job->tiles_w;
    for (int t = t0; t < t1; t += R) {
        int count = ck_min(R, t1 - t);
        // Inputs of up to R tiles, transformed: v[(ξ·R + r)·C + c].
        for (int r = 0; r < count; r++) {
            int tile = t + r, n = tile / per_image, th = (tile % per_image) / job->tiles_w, tw = tile % job->tiles_w;
            const float *image = job->x + (size_t)n * g->in_h * g->in_w * g->x_stride;
            ck_wino_input(job, image, 2 * th - g->pad_top, 2 * tw - g->pad_left, v + (size_t)r * C, (size_t)R * C);
        }
        // The 16 products for every panel: m[(ξ·R + r)·cols + col].
        for (int xi = 0; xi < 16; xi++) {
            for (int r = 0; r < R; r++) rows[r] = v + ((size_t)xi * R + (r < count ? r : count - 1)) * C;
            for (int p = 0; p < np;) {
                const float *b = job->u + ((size_t)xi * job->panels + j0 + p) * C * CK_NR;
                float *c = m + (size_t)xi * R * cols + p * CK_NR;
#ifdef CK_X86
                if (job->avx512) {
                    int pair = p + 1 < np;
                    ck_igemm_avx512(1, C, rows, b, pair ? b + (size_t)C * CK_NR : NULL, c, cols, count, pair ? 2 * CK_NR : CK_NR, &plain);
                    p += pair ? 2 : 1;
                    continue;
                }
#endif
                job->kernel(1, C, rows, b, c, cols, count, CK_NR, &plain);
                p++;
            }
        }
        // Y = Aᵀ M A per tile and channel, then bias, residual and activation, into the tile's live pixels.
        for (int r = 0; r < count; r++) {
            int tile = t + r, n = tile / per_image, th = (tile % per_image) / job->tiles_w, tw = tile % job->tiles_w;
            size_t pixels[4];
            int live[4];
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) {
                    int oh = 2 * th + i, ow = 2 * tw + j;
                    live[i * 2 + j] = oh < g->out_h && ow < g->out_w;
                    pixels[i * 2 + j] = ((size_t)n * g->out_h + oh) * g->out_w + ow;
                }
            ck_wino_store(job, m + (size_t)r * cols, (size_t)R * cols, np, j0, pixels, live, &ep, late);
        }
    }
}

int ck_conv_nhwc_winograd_applies(const ck_conv_nhwc *g) {
    return g->kernel_h == 3 && g->kernel_w == 3 && g->stride_h == 1 && g->stride_w == 1 && g->dilation_h == 1 && g->dilation_w == 1
           && g->groups == 1 && g->group_in > 0 && g->group_out > 0 && (g->x_channel_stride == 0 || g->x_channel_stride == 1);
}

size_t ck_conv_nhwc_winograd_workspace(const ck_conv_nhwc *g) {
    return (size_t)16 * ck_ceil_div(g->group_out, CK_NR) * CK_NR * (size_t)g->group_in;
}

void ck_conv2d_nhwc_winograd_with(const ck_conv_nhwc *geometry, const float *x, const float *packed_w,
                                  const ck_conv_epilogue *epilogue, float *workspace, float *y, ck_isa isa, int threads) {
    ck_wino_job job;
    memset(&job, 0, sizeof job);
    job.g = *geometry;
    job.x = x;
    job.w = packed_w;
    job.y = y;
    if (epilogue) job.ep = *epilogue;
    const ck_conv_nhwc *g = &job.g;
    if (g->batch <= 0 || g->out_h <= 0 || g->out_w <= 0) return;
    float *owned = NULL;
    if (!workspace) {
        owned = aligned_alloc(64, (ck_conv_nhwc_winograd_workspace(g) * sizeof(float) + 63) / 64 * 64);
        if (!owned) abort();  // out of memory, as Swift traps on a failed allocation
        workspace = owned;
    }
    job.u = workspace;
    job.kernel = ck_igemm_select(isa);
    job.avx512 = ck_isa_avx512(isa);
    job.avx2 = ck_isa_avx2(isa);
    job.wide = job.avx512;
    job.mr = job.avx512 ? CK_MR512 : CK_MR;
    job.tiles_h = ck_ceil_div(g->out_h, 2);
    job.tiles_w = ck_ceil_div(g->out_w, 2);
    job.tiles = g->batch * job.tiles_h * job.tiles_w;
    job.panels = ck_ceil_div(g->group_out, CK_NR);
    job.panel_blocks = ck_ceil_div(job.panels, CK_WINOGRAD_PANELS);
    if (threads <= 0) threads = ck_num_threads();
    double work = (double)job.tiles * 16 * job.panels * CK_NR * g->group_in;
    if (work < CK_PARALLEL_MIN_WORK) threads = 1;
    if (threads > 1) ck_parallel_run(threads, job.panels, ck_wino_weights, &job);
    else for (int j = 0; j < job.panels; j++) ck_wino_weights(&job, j);
    int wanted = threads > 1 ? threads * CK_CONV_TASKS_PER_THREAD : 1;
    int groups = ck_ceil_div(job.tiles, job.mr);
    int tile_blocks = ck_ceil_div(wanted, job.panel_blocks);
    if (tile_blocks > groups) tile_blocks = groups;
    if (tile_blocks < 1) tile_blocks = 1;
    // Tile blocks hold whole groups of mr tiles.
    job.tile_block = ck_ceil_div(groups, tile_blocks) * job.mr;
    job.tile_blocks = ck_ceil_div(job.tiles, job.tile_block);
    int tasks = job.panel_blocks * job.tile_blocks;
    if (threads > 1 && tasks > 1) ck_parallel_run(threads, tasks, ck_wino_task, &job);
    else for (int i = 0; i < tasks; i++) ck_wino_task(&job, i);
    free(owned);
}

void ck_conv2d_nhwc_winograd(const ck_conv_nhwc *geometry, const float *x, const float *packed_w, const ck_conv_epilogue *epilogue,
                             float *workspace, float *y) {
    ck_conv2d_nhwc_winograd_with(geometry, x, packed_w, epilogue, workspace, y, CK_ISA_AUTO, 0);
}

// MARK: - Depthwise

size_t ck_depthwise_nhwc_packed_size(int channels, int kernel_h, int kernel_w) {
    return (size_t)ck_ceil_div(channels, CK_NR) * CK_NR * (size_t)kernel_h * (size_t)kernel_w;
}

void ck_depthwise_nhwc_pack(int channels, int kernel_h, int kernel_w, const float *w, float *packed) {
    int taps = kernel_h * kernel_w, blocks = ck_ceil_div(channels, CK_NR);
    for (int cb = 0; cb < blocks; cb++)
        for (int t = 0; t < taps; t++)
            for (int col = 0; col < CK_NR; col++) {
                int c = cb * CK_NR + col;
                packed[((size_t)cb * taps + t) * CK_NR + col] = c < channels ? w[(size_t)c * taps + t] : 0;
            }
}

typedef struct ck_dw_job ck_dw_job;
/// One output row (oh of image n) on a vector path.
typedef void (*ck_dw_row_fn)(const ck_dw_job *job, const float *image, int n, int oh);

struct ck_dw_job {
    ck_conv_nhwc g;
    const float *x, *w;
    float *y;
    ck_conv_epilogue ep;
    const float *zeros;  // at least `channels` zeros, for the scalar path's padding taps
    int taps, channels, rows_per_task, row_tasks;
    ck_dw_row_fn row;    // the vector path's row for this shape and instruction set (chosen once per call), or NULL: scalar
    int wide;            // ck_epilogue.wide
};

/// The input pointers of one output pixel, tap by tap (zeros in the padding).
static inline void ck_dw_pixel_rows(const ck_dw_job *job, const float *image, int oh, int ow, const float **rows) {
    const ck_conv_nhwc *g = &job->g;
    for (int i = 0; i < g->kernel_h; i++) {
        int ih = oh * g->stride_h - g->pad_top + i * g->dilation_h;
        for (int j = 0; j < g->kernel_w; j++) {
            int iw = ow * g->stride_w - g->pad_left + j * g->dilation_w;
            *rows++ = (unsigned)ih < (unsigned)g->in_h && (unsigned)iw < (unsigned)g->in_w
                          ? image + ((size_t)ih * g->in_w + iw) * g->x_stride
                          : job->zeros;
        }
    }
}

static void ck_dw_pixel_scalar(const ck_dw_job *job, const float *const *rows, float *out, const float *residual) {
    ck_epilogue ep = {CK_BIAS_NONE, NULL, job->ep.activation, job->ep.param0, job->ep.param1, 0, job->wide};
    for (int c = 0; c < job->channels; c++) {
        const float *w = job->w + ((size_t)(c / CK_NR) * job->taps) * CK_NR + c % CK_NR;
        float acc = 0;
        for (int t = 0; t < job->taps; t++) acc += rows[t][c] * w[t * CK_NR];
        if (job->ep.bias) acc = acc + job->ep.bias[c];
        if (residual) acc = acc + residual[c];
        out[c] = ck_act_scalar(acc, &ep);
    }
}

// The vector paths walk an output row in blocks of 8, 4, 2 or 1 pixels, each block through every channel, several
// vectors of channels at a time where it has few pixels (4 × 2, 2 × 4, 1 × 8 vectors), so every block keeps at least
// 4, mostly 8, independent FMA chains in flight. A block with a tap outside the row (the row's borders) is "clipped":
// those taps are skipped, as are kernel rows outside the image — the padding adds nothing. Each output keeps one
// accumulator and one FMA chain over its taps in (kernel row, kernel column) order on every path, so the AVX2
// (8 channels per vector) and AVX-512 (16: one packed block) results are the same bits.
//
// For the common shapes (kernel width 3 or 5, stride 1 or 2, no dilation) a block slides along each kernel row: it
// loads every input column the block touches once and multiplies it by each of the row's weights (held in
// registers) that it meets, instead of one load per tap per pixel — 10 loads for 24 FMAs at 3×3 and 8 pixels
// against 27 (3 of them weights). A column q serves output p = (q − j) / stride for tap j, and as q grows so does j
// for a fixed p: the chain's order is unchanged. Other shapes, and single pixels, load per tap (the "direct" block).

/// Output pixels per block: 8 accumulators, enough independent FMA chains to cover the FMA latency on 2 pipes,
/// with the weights of a 5-wide kernel row and the loaded column still in 16 ymm registers.
#define CK_DW_PIXELS 8
/// At most this many vectors per block (P · vectors ≤ CK_DW_PIXELS); fixed-size arrays, so the compiler keeps them in
/// registers (a variable-length one stays in memory).
#define CK_DW_VECTORS 8

/// Where one output row's blocks read and write.
typedef struct {
    int i0, i1;             // kernel rows inside the image
    int first, last;        // the output columns whose taps are all inside the row (last < first: none)
    const float *x0;        // the input row of kernel row i0, at column 0 (NULL when no kernel row is inside)
    ptrdiff_t row_step;     // floats from one kernel row's input row to the next
    float *out;             // the output row
    const float *residual;  // the residual row, or NULL
} ck_dw_row;

static inline void ck_dw_row_geometry(const ck_dw_job *job, const float *image, int n, int oh, ck_dw_row *r) {
    const ck_conv_nhwc *g = &job->g;
    int ih_base = oh * g->stride_h - g->pad_top;
    r->i0 = 0;
    r->i1 = g->kernel_h;
    while (r->i0 < r->i1 && ih_base + r->i0 * g->dilation_h < 0) r->i0++;
    while (r->i1 > r->i0 && ih_base + (r->i1 - 1) * g->dilation_h >= g->in_h) r->i1--;
    r->x0 = r->i0 < r->i1 ? image + (ptrdiff_t)(ih_base + r->i0 * g->dilation_h) * g->in_w * g->x_stride : NULL;
    r->row_step = (ptrdiff_t)g->dilation_h * g->in_w * g->x_stride;
    int span = (g->kernel_w - 1) * g->dilation_w;
    r->first = g->pad_left > 0 ? ck_ceil_div(g->pad_left, g->stride_w) : 0;
    r->last = g->in_w - 1 - span + g->pad_left < 0 ? -1 : (g->in_w - 1 - span + g->pad_left) / g->stride_w;
    if (r->last > g->out_w - 1) r->last = g->out_w - 1;
    size_t row_pixel = ((size_t)n * g->out_h + oh) * g->out_w;
    r->out = job->y + row_pixel * g->y_stride;
    r->residual = job->ep.residual ? job->ep.residual + row_pixel * job->ep.residual_stride : NULL;
}

/// The block size for `count` pixels left in the row: 8, 4, 2 or 1.
static inline int ck_dw_block_pixels(int count) { return count >= 8 ? 8 : count >= 4 ? 4 : count >= 2 ? 2 : 1; }

/// The shapes with a sliding block, numbered for the row function tables: 0 is the direct block.
static inline int ck_dw_shape(const ck_conv_nhwc *g) {
    if (g->dilation_w != 1 || (g->stride_w != 1 && g->stride_w != 2)) return 0;
    if (g->kernel_w == 3) return g->stride_w == 1 ? 1 : 2;
    if (g->kernel_w == 5) return g->stride_w == 1 ? 3 : 4;
    return 0;
}

#ifdef CK_X86
// MARK: AVX2 (8 channels per vector)

/// The weights of the 8 channels from c (a multiple of 8) at tap 0: half of a packed 16-channel block.
static inline const float *ck_dw_weights8(const ck_dw_job *job, int c) {
    return job->w + (size_t)(c / CK_NR) * job->taps * CK_NR + c % CK_NR;
}

/// The taps of P pixels × CB vectors of 8 channels from c (the last one lanes m only when `masked`) into
/// acc[p·CB + v]. xrow: kernel row i0's input row at column 0 and channel c (NULL when no kernel row is inside);
/// iw_first: the first pixel's first input column. KW > 0: the sliding block for kernel width KW and stride S, the
/// row's weights in registers; KW = 0: the direct block (runtime kernel width, stride and dilation); `clip`: taps
/// outside the row are skipped (a border pixel, P = 1).
__attribute__((always_inline)) CK_AVX2 static inline void ck_dw_taps_avx2(const ck_dw_job *job, const ck_dw_row *r, const float *xrow,
                                                                       int c, int iw_first, const int P, const int CB, const int KW,
                                                                       const int S, const int clip, const int masked, __m256i m,
                                                                       __m256 *acc) {
    const ck_conv_nhwc *g = &job->g;
    ptrdiff_t xs = g->x_stride;
    const float *w[CK_DW_VECTORS];
#pragma clang loop unroll(full)
    for (int v = 0; v < CB; v++) w[v] = ck_dw_weights8(job, c + 8 * v);
#pragma clang loop unroll(full)
    for (int k = 0; k < P * CB; k++) acc[k] = _mm256_setzero_ps();
#define CK_DW_LOAD8(ptr, v) (masked && (v) == CB - 1 ? _mm256_maskload_ps((ptr), m) : _mm256_loadu_ps(ptr))
    // The block's input columns inside the row (clip: a border block).
    int qlo = clip && iw_first < 0 ? -iw_first : 0, qhi = clip ? g->in_w - iw_first : 1 << 30;
    for (int i = r->i0; i < r->i1; i++, xrow += r->row_step) {
        if (KW && P > 1) {
            __m256 wv[CK_DW_VECTORS][5];
#pragma clang loop unroll(full)
            for (int v = 0; v < CB; v++)
#pragma clang loop unroll(full)
                for (int j = 0; j < KW; j++) wv[v][j] = _mm256_loadu_ps(w[v] + ((size_t)i * KW + j) * CK_NR);
#pragma clang loop unroll(full)
            for (int q = 0; q < (P - 1) * S + KW; q++) {
                if (clip && (q < qlo || q >= qhi)) continue;
                const float *x = xrow + (ptrdiff_t)(iw_first + q) * xs;
#pragma clang loop unroll(full)
                for (int v = 0; v < CB; v++) {
                    __m256 xv = CK_DW_LOAD8(x + 8 * v, v);
#pragma clang loop unroll(full)
                    for (int j = 0; j < KW; j++) {
                        int d = q - j;
                        if (d >= 0 && d % S == 0 && d / S < P) acc[d / S * CB + v] = _mm256_fmadd_ps(xv, wv[v][j], acc[d / S * CB + v]);
                    }
                }
            }
        } else {
            for (int j = 0; j < g->kernel_w; j++) {
                size_t t = (size_t)i * g->kernel_w + j;
#pragma clang loop unroll(full)
                for (int v = 0; v < CB; v++) {
                    __m256 wv = _mm256_loadu_ps(w[v] + t * CK_NR);
#pragma clang loop unroll(full)
                    for (int p = 0; p < P; p++) {
                        int iw = iw_first + p * g->stride_w + j * g->dilation_w;
                        if (clip && (unsigned)iw >= (unsigned)g->in_w) continue;
                        const float *x = xrow + (ptrdiff_t)iw * xs + 8 * v;
                        acc[p * CB + v] = _mm256_fmadd_ps(CK_DW_LOAD8(x, v), wv, acc[p * CB + v]);
                    }
                }
            }
        }
    }
#undef CK_DW_LOAD8
}

/// The cheap activations other than ReLU and Clip on n vectors, out of line (the blocks inline only those two).
__attribute__((noinline)) CK_AVX2 static void ck_dw_act_avx2(__m256 *v, int n, const ck_epilogue *ep) {
    for (int k = 0; k < n; k++) v[k] = ck_act_avx2(v[k], ep);
}

/// Bias, residual and cheap activation of P pixels × CB vectors of 8 channels from c (the last one lanes m only
/// when `masked`), then the stores; the activation's switch is outside the loops.
__attribute__((always_inline)) CK_AVX2 static inline void ck_dw_store_avx2(const ck_dw_job *job, __m256 *acc, const int P, const int CB,
                                                                        float *out, const float *residual, int c, const int masked,
                                                                        __m256i m, const ck_epilogue *ep) {
    const ck_conv_nhwc *g = &job->g;
    __m256i all = ck_mask8(8);
#define CK_DW_MASK(v) (masked && (v) == CB - 1 ? m : all)
    if (job->ep.bias) {
#pragma clang loop unroll(full)
        for (int v = 0; v < CB; v++) {
            __m256 b = _mm256_maskload_ps(job->ep.bias + c + 8 * v, CK_DW_MASK(v));
#pragma clang loop unroll(full)
            for (int p = 0; p < P; p++) acc[p * CB + v] = _mm256_add_ps(acc[p * CB + v], b);
        }
    }
    if (residual) {
#pragma clang loop unroll(full)
        for (int p = 0; p < P; p++)
#pragma clang loop unroll(full)
            for (int v = 0; v < CB; v++)
                acc[p * CB + v] = _mm256_add_ps(
                    acc[p * CB + v], _mm256_maskload_ps(residual + (ptrdiff_t)p * job->ep.residual_stride + c + 8 * v, CK_DW_MASK(v)));
    }
    switch (ep->activation) {
    case CK_ACT_NONE: break;
    case CK_ACT_RELU:
#pragma clang loop unroll(full)
        for (int k = 0; k < P * CB; k++) acc[k] = _mm256_max_ps(acc[k], _mm256_setzero_ps());
        break;
    case CK_ACT_CLIP: {
        __m256 lo = _mm256_set1_ps(ep->param0), hi = _mm256_set1_ps(ep->param1);
#pragma clang loop unroll(full)
        for (int k = 0; k < P * CB; k++) {
            __m256 y = _mm256_blendv_ps(acc[k], lo, _mm256_cmp_ps(acc[k], lo, _CMP_LT_OQ));
            acc[k] = _mm256_blendv_ps(y, hi, _mm256_cmp_ps(y, hi, _CMP_GT_OQ));
        }
        break;
    }
    default: {
        // Through a copy: acc itself must not escape, or it would live in memory on every path.
        __m256 t[CK_DW_PIXELS];
#pragma clang loop unroll(full)
        for (int k = 0; k < P * CB; k++) t[k] = acc[k];
        ck_dw_act_avx2(t, P * CB, ep);
#pragma clang loop unroll(full)
        for (int k = 0; k < P * CB; k++) acc[k] = t[k];
        break;
    }
    }
#pragma clang loop unroll(full)
    for (int p = 0; p < P; p++)
#pragma clang loop unroll(full)
        for (int v = 0; v < CB; v++) {
            float *dst = out + (ptrdiff_t)p * g->y_stride + c + 8 * v;
            if (masked && v == CB - 1) _mm256_maskstore_ps(dst, m, acc[p * CB + v]);
            else _mm256_storeu_ps(dst, acc[p * CB + v]);
        }
#undef CK_DW_MASK
}

/// P pixels from ow through every channel, CB vectors at a time, then the rest one at a time (the last masked).
__attribute__((always_inline)) CK_AVX2 static inline void ck_dw_block_avx2(const ck_dw_job *job, const ck_dw_row *r, int ow, const int P,
                                                                        const int CB, const int KW, const int S, const int clip,
                                                                        const ck_epilogue *ep) {
    const ck_conv_nhwc *g = &job->g;
    int channels = job->channels, full = channels & ~7, iw_first = ow * g->stride_w - g->pad_left;
    float *out = r->out + (ptrdiff_t)ow * g->y_stride;
    const float *residual = r->residual ? r->residual + (ptrdiff_t)ow * job->ep.residual_stride : NULL;
    __m256i all = ck_mask8(8);
    __m256 acc[CK_DW_PIXELS];
    int c = 0;
#define CK_DW_GROUP(n)                                                                                   \
    for (; c + 8 * (n) <= full; c += 8 * (n)) {                                                          \
        ck_dw_taps_avx2(job, r, r->x0 ? r->x0 + c : NULL, c, iw_first, P, (n), KW, S, clip, 0, all, acc); \
        ck_dw_store_avx2(job, acc, P, (n), out, residual, c, 0, all, ep);                                \
    }
    CK_DW_GROUP(CB)
    if (CB > 4) CK_DW_GROUP(CB > 4 ? 4 : 1)
    if (CB > 2) CK_DW_GROUP(CB > 2 ? 2 : 1)
    if (CB > 1) CK_DW_GROUP(1)
#undef CK_DW_GROUP
    if (c < channels) {
        __m256i m = ck_mask8(channels - c);
        ck_dw_taps_avx2(job, r, r->x0 ? r->x0 + c : NULL, c, iw_first, P, 1, KW, S, clip, 1, m, acc);
        ck_dw_store_avx2(job, acc, P, 1, out, residual, c, 1, m, ep);
    }
}

/// One output row: the inside in blocks of 8 pixels × 8 channels, 4 × 16, 2 × 16 and 1 × 64 (at least 4
/// independent chains each, 8 where the registers allow), the border pixels alone with their taps checked (1 × 64);
/// then a transcendental activation over the stored row.
__attribute__((always_inline)) CK_AVX2 static inline void ck_dw_row_avx2(const ck_dw_job *job, const float *image, int n, int oh,
                                                                      const int KW, const int S) {
    const ck_conv_nhwc *g = &job->g;
    ck_dw_row r;
    ck_dw_row_geometry(job, image, n, oh, &r);
    int late = ck_act_is_transcendental(job->ep.activation);
    ck_epilogue ep = {CK_BIAS_NONE, NULL, late ? CK_ACT_NONE : job->ep.activation, job->ep.param0, job->ep.param1, 0, job->wide};
    for (int ow = 0; ow < g->out_w;) {
        int p = ck_dw_block_pixels(g->out_w - ow);
        int clip = ow < r.first || ow + p - 1 > r.last;
        switch (2 * p + clip) {
        case 16: ck_dw_block_avx2(job, &r, ow, 8, 1, KW, S, 0, &ep); break;
        case 17: ck_dw_block_avx2(job, &r, ow, 8, 1, KW, S, 1, &ep); break;
        case 8: ck_dw_block_avx2(job, &r, ow, 4, 2, KW, S, 0, &ep); break;
        case 9: ck_dw_block_avx2(job, &r, ow, 4, 2, KW, S, 1, &ep); break;
        case 4: ck_dw_block_avx2(job, &r, ow, 2, 2, KW, S, 0, &ep); break;
        case 5: ck_dw_block_avx2(job, &r, ow, 2, 2, KW, S, 1, &ep); break;
        case 2: ck_dw_block_avx2(job, &r, ow, 1, 8, KW, S, 0, &ep); break;
        default: ck_dw_block_avx2(job, &r, ow, 1, 8, KW, S, 1, &ep); break;
        }
        ow += p;
    }
    if (late) {
        ep.activation = job->ep.activation;
        ck_act_rows_avx2(r.out, g->y_stride, g->out_w, job->channels, &ep);
    }
}

CK_AVX2 static void ck_dw_row_avx2_direct(const ck_dw_job *job, const float *image, int n, int oh) { ck_dw_row_avx2(job, image, n, oh, 0, 1); }
CK_AVX2 static void ck_dw_row_avx2_k3s1(const ck_dw_job *job, const float *image, int n, int oh) { ck_dw_row_avx2(job, image, n, oh, 3, 1); }
CK_AVX2 static void ck_dw_row_avx2_k3s2(const ck_dw_job *job, const float *image, int n, int oh) { ck_dw_row_avx2(job, image, n, oh, 3, 2); }
CK_AVX2 static void ck_dw_row_avx2_k5s1(const ck_dw_job *job, const float *image, int n, int oh) { ck_dw_row_avx2(job, image, n, oh, 5, 1); }
CK_AVX2 static void ck_dw_row_avx2_k5s2(const ck_dw_job *job, const float *image, int n, int oh) { ck_dw_row_avx2(job, image, n, oh, 5, 2); }

// MARK: AVX-512 (16 channels per vector: one packed block)

/// ck_dw_taps_avx2 on 16 lanes: P pixels × CB packed blocks from channel c (a multiple of 16).
__attribute__((always_inline)) CK_AVX512 static inline void ck_dw_taps512(const ck_dw_job *job, const ck_dw_row *r, const float *xrow,
                                                                       int c, int iw_first, const int P, const int CB, const int KW,
                                                                       const int S, const int clip, const int masked, __mmask16 m,
                                                                       __m512 *acc) {
    const ck_conv_nhwc *g = &job->g;
    ptrdiff_t xs = g->x_stride;
    size_t wb = (size_t)job->taps * CK_NR;
    const float *w = job->w + (size_t)(c / CK_NR) * wb;
#pragma clang loop unroll(full)
    for (int k = 0; k < P * CB; k++) acc[k] = _mm512_setzero_ps();
#define CK_DW_LOAD16(ptr, v) (masked && (v) == CB - 1 ? _mm512_maskz_loadu_ps(m, (ptr)) : _mm512_loadu_ps(ptr))
    // The block's input columns inside the row (clip: a border block).
    int qlo = clip && iw_first < 0 ? -iw_first : 0, qhi = clip ? g->in_w - iw_first : 1 << 30;
    for (int i = r->i0; i < r->i1; i++, xrow += r->row_step) {
        if (KW && P > 1) {
            __m512 wv[CK_DW_VECTORS][5];
#pragma clang loop unroll(full)
            for (int v = 0; v < CB; v++)
#pragma clang loop unroll(full)
                for (int j = 0; j < KW; j++) wv[v][j] = _mm512_loadu_ps(w + v * wb + ((size_t)i * KW + j) * CK_NR);
#pragma clang loop unroll(full)
            for (int q = 0; q < (P - 1) * S + KW; q++) {
                if (clip && (q < qlo || q >= qhi)) continue;
                const float *x = xrow + (ptrdiff_t)(iw_first + q) * xs;
#pragma clang loop unroll(full)
                for (int v = 0; v < CB; v++) {
                    __m512 xv = CK_DW_LOAD16(x + CK_NR * v, v);
#pragma clang loop unroll(full)
                    for (int j = 0; j < KW; j++) {
                        int d = q - j;
                        if (d >= 0 && d % S == 0 && d / S < P) acc[d / S * CB + v] = _mm512_fmadd_ps(xv, wv[v][j], acc[d / S * CB + v]);
                    }
                }
            }
        } else {
            for (int j = 0; j < g->kernel_w; j++) {
                size_t t = (size_t)i * g->kernel_w + j;
#pragma clang loop unroll(full)
                for (int v = 0; v < CB; v++) {
                    __m512 wv = _mm512_loadu_ps(w + v * wb + t * CK_NR);
#pragma clang loop unroll(full)
                    for (int p = 0; p < P; p++) {
                        int iw = iw_first + p * g->stride_w + j * g->dilation_w;
                        if (clip && (unsigned)iw >= (unsigned)g->in_w) continue;
                        const float *x = xrow + (ptrdiff_t)iw * xs + CK_NR * v;
                        acc[p * CB + v] = _mm512_fmadd_ps(CK_DW_LOAD16(x, v), wv, acc[p * CB + v]);
                    }
                }
            }
        }
    }
#undef CK_DW_LOAD16
}

__attribute__((noinline)) CK_AVX512 static void ck_dw_act512(__m512 *v, int n, const ck_epilogue *ep) {
    for (int k = 0; k < n; k++) v[k] = ck_act512(v[k], ep);
}

/// ck_dw_store_avx2 on 16 lanes.
__attribute__((always_inline)) CK_AVX512 static inline void ck_dw_store512(const ck_dw_job *job, __m512 *acc, const int P, const int CB,
                                                                        float *out, const float *residual, int c, const int masked,
                                                                        __mmask16 m, const ck_epilogue *ep) {
    const ck_conv_nhwc *g = &job->g;
#define CK_DW_MASK(v) (masked && (v) == CB - 1 ? m : (__mmask16)0xFFFF)
    if (job->ep.bias) {
#pragma clang loop unroll(full)
        for (int v = 0; v < CB; v++) {
            __m512 b = _mm512_maskz_loadu_ps(CK_DW_MASK(v), job->ep.bias + c + CK_NR * v);
#pragma clang loop unroll(full)
            for (int p = 0; p < P; p++) acc[p * CB + v] = _mm512_add_ps(acc[p * CB + v], b);
        }
    }
    if (residual) {
#pragma clang loop unroll(full)
        for (int p = 0; p < P; p++)
#pragma clang loop unroll(full)
            for (int v = 0; v < CB; v++)
                acc[p * CB + v] = _mm512_add_ps(
                    acc[p * CB + v], _mm512_maskz_loadu_ps(CK_DW_MASK(v), residual + (ptrdiff_t)p * job->ep.residual_stride + c + CK_NR * v));
    }
    switch (ep->activation) {
    case CK_ACT_NONE: break;
    case CK_ACT_RELU:
#pragma clang loop unroll(full)
        for (int k = 0; k < P * CB; k++) acc[k] = _mm512_max_ps(acc[k], _mm512_setzero_ps());
        break;
    case CK_ACT_CLIP: {
        __m512 lo = _mm512_set1_ps(ep->param0), hi = _mm512_set1_ps(ep->param1);
#pragma clang loop unroll(full)
        for (int k = 0; k < P * CB; k++) {
            __m512 y = _mm512_mask_mov_ps(acc[k], _mm512_cmp_ps_mask(acc[k], lo, _CMP_LT_OQ), lo);
            acc[k] = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(y, hi, _CMP_GT_OQ), hi);
        }
        break;
    }
    default: {
        // Through a copy: acc itself must not escape, or it would live in memory on every path.
        __m512 t[CK_DW_PIXELS];
#pragma clang loop unroll(full)
        for (int k = 0; k < P * CB; k++) t[k] = acc[k];
        ck_dw_act512(t, P * CB, ep);
#pragma clang loop unroll(full)
        for (int k = 0; k < P * CB; k++) acc[k] = t[k];
        break;
    }
    }
#pragma clang loop unroll(full)
    for (int p = 0; p < P; p++)
#pragma clang loop unroll(full)
        for (int v = 0; v < CB; v++) {
            float *dst = out + (ptrdiff_t)p * g->y_stride + c + CK_NR * v;
            if (masked && v == CB - 1) _mm512_mask_storeu_ps(dst, m, acc[p * CB + v]);
            else _mm512_storeu_ps(dst, acc[p * CB + v]);
        }
#undef CK_DW_MASK
}

/// ck_dw_block_avx2 on 16 lanes.
__attribute__((always_inline)) CK_AVX512 static inline void ck_dw_block512(const ck_dw_job *job, const ck_dw_row *r, int ow, const int P,
                                                                        const int CB, const int KW, const int S, const int clip,
                                                                        const ck_epilogue *ep) {
    const ck_conv_nhwc *g = &job->g;
    int channels = job->channels, full = channels & ~(CK_NR - 1), iw_first = ow * g->stride_w - g->pad_left;
    float *out = r->out + (ptrdiff_t)ow * g->y_stride;
    const float *residual = r->residual ? r->residual + (ptrdiff_t)ow * job->ep.residual_stride : NULL;
    __m512 acc[CK_DW_PIXELS];
    int c = 0;
#define CK_DW_GROUP(n)                                                                                    \
    for (; c + CK_NR * (n) <= full; c += CK_NR * (n)) {                                                   \
        ck_dw_taps512(job, r, r->x0 ? r->x0 + c : NULL, c, iw_first, P, (n), KW, S, clip, 0, 0xFFFF, acc); \
        ck_dw_store512(job, acc, P, (n), out, residual, c, 0, 0xFFFF, ep);                                \
    }
    CK_DW_GROUP(CB)
    if (CB > 4) CK_DW_GROUP(CB > 4 ? 4 : 1)
    if (CB > 2) CK_DW_GROUP(CB > 2 ? 2 : 1)
    if (CB > 1) CK_DW_GROUP(1)
#undef CK_DW_GROUP
    if (c < channels) {
        __mmask16 m = (__mmask16)((1u << (channels - c)) - 1);
        ck_dw_taps512(job, r, r->x0 ? r->x0 + c : NULL, c, iw_first, P, 1, KW, S, clip, 1, m, acc);
        ck_dw_store512(job, acc, P, 1, out, residual, c, 1, m, ep);
    }
}

/// ck_dw_row_avx2 on 16 lanes: blocks of 8 pixels × 16 channels, 4 × 32, 2 × 32 and 1 × 64.
__attribute__((always_inline)) CK_AVX512 static inline void ck_dw_row512(const ck_dw_job *job, const float *image, int n, int oh,
                                                                      const int KW, const int S) {
    const ck_conv_nhwc *g = &job->g;
    ck_dw_row r;
    ck_dw_row_geometry(job, image, n, oh, &r);
    int late = ck_act_is_transcendental(job->ep.activation);
    ck_epilogue ep = {CK_BIAS_NONE, NULL, late ? CK_ACT_NONE : job->ep.activation, job->ep.param0, job->ep.param1, 0, job->wide};
    for (int ow = 0; ow < g->out_w;) {
        int p = ck_dw_block_pixels(g->out_w - ow);
        int clip = ow < r.first || ow + p - 1 > r.last;
        switch (2 * p + clip) {
        case 16: ck_dw_block512(job, &r, ow, 8, 1, KW, S, 0, &ep); break;
        case 17: ck_dw_block512(job, &r, ow, 8, 1, KW, S, 1, &ep); break;
        case 8: ck_dw_block512(job, &r, ow, 4, 2, KW, S, 0, &ep); break;
        case 9: ck_dw_block512(job, &r, ow, 4, 2, KW, S, 1, &ep); break;
        case 4: ck_dw_block512(job, &r, ow, 2, 4, KW, S, 0, &ep); break;
        case 5: ck_dw_block512(job, &r, ow, 2, 4, KW, S, 1, &ep); break;
        case 2: ck_dw_block512(job, &r, ow, 1, 8, KW, S, 0, &ep); break;
        default: ck_dw_block512(job, &r, ow, 1, 8, KW, S, 1, &ep); break;
        }
        ow += p;
    }
    if (late) {
        ep.activation = job->ep.activation;
        ck_act_rows_avx2(r.out, g->y_stride, g->out_w, job->channels, &ep);
    }
}

CK_AVX512 static void ck_dw_row512_direct(const ck_dw_job *job, const float *image, int n, int oh) { ck_dw_row512(job, image, n, oh, 0, 1); }
CK_AVX512 static void ck_dw_row512_k3s1(const ck_dw_job *job, const float *image, int n, int oh) { ck_dw_row512(job, image, n, oh, 3, 1); }
CK_AVX512 static void ck_dw_row512_k3s2(const ck_dw_job *job, const float *image, int n, int oh) { ck_dw_row512(job, image, n, oh, 3, 2); }
CK_AVX512 static void ck_dw_row512_k5s1(const ck_dw_job *job, const float *image, int n, int oh) { ck_dw_row512(job, image, n, oh, 5, 1); }
CK_AVX512 static void ck_dw_row512_k5s2(const ck_dw_job *job, const float *image, int n, int oh) { ck_dw_row512(job, image, n, oh, 5, 2); }
#endif

static void ck_dw_task(void *context, int index) {
    const ck_dw_job *job = context;
    const ck_conv_nhwc *g = &job->g;
    int n = index / job->row_tasks, r0 = (index % job->row_tasks) * job->rows_per_task;
    int r1 = ck_min(g->out_h, r0 + job->rows_per_task);
    const float *image = job->x + (size_t)n * g->in_h * g->in_w * g->x_stride;
    if (job->row) {
        for (int oh = r0; oh < r1; oh++) job->row(job, image, n, oh);
        return;
    }
    const float **rows = ck_conv_row_buffer((size_t)job->taps);
    for (int oh = r0; oh < r1; oh++) {
        for (int ow = 0; ow < g->out_w; ow++) {
            size_t p = ((size_t)n * g->out_h + oh) * g->out_w + ow;
            ck_dw_pixel_rows(job, image, oh, ow, rows);
            ck_dw_pixel_scalar(job, rows, job->y + p * g->y_stride, job->ep.residual ? job->ep.residual + p * job->ep.residual_stride : NULL);
        }
    }
}

void ck_depthwise2d_nhwc_with(const ck_conv_nhwc *geometry, const float *x, const float *packed_w,
                              const ck_conv_epilogue *epilogue, float *y, ck_isa isa, int threads) {
    ck_dw_job job;
    memset(&job, 0, sizeof job);
    job.g = *geometry;
    job.x = x;
    job.w = packed_w;
    job.y = y;
    if (epilogue) job.ep = *epilogue;
    const ck_conv_nhwc *g = &job.g;
    if (g->batch <= 0 || g->out_h <= 0 || g->out_w <= 0 || g->groups <= 0) return;
    job.taps = g->kernel_h * g->kernel_w;
    job.channels = g->groups;
    job.wide = ck_isa_avx512(isa);
#ifdef CK_X86
    static const ck_dw_row_fn rows_avx2[5] = {ck_dw_row_avx2_direct, ck_dw_row_avx2_k3s1, ck_dw_row_avx2_k3s2, ck_dw_row_avx2_k5s1,
                                              ck_dw_row_avx2_k5s2};
    static const ck_dw_row_fn rows_avx512[5] = {ck_dw_row512_direct, ck_dw_row512_k3s1, ck_dw_row512_k3s2, ck_dw_row512_k5s1,
                                                ck_dw_row512_k5s2};
    if (job.wide) job.row = rows_avx512[ck_dw_shape(g)];
    else if (ck_isa_avx2(isa)) job.row = rows_avx2[ck_dw_shape(g)];
#endif
    float *heap_zeros = NULL;
    if (job.channels <= CK_CONV_ZEROS) {
        job.zeros = ck_conv_zeros;
    } else {
        heap_zeros = calloc((size_t)job.channels, sizeof(float));
        if (!heap_zeros) abort();
        job.zeros = heap_zeros;
    }
    double work = (double)g->batch * g->out_h * g->out_w * g->groups * job.taps;
    if (threads <= 0) threads = ck_num_threads();
    if (work < CK_PARALLEL_MIN_WORK / 4) threads = 1;
    int wanted = threads > 1 ? threads * CK_CONV_TASKS_PER_THREAD : 1;
    int per_image = ck_ceil_div(wanted, g->batch);
    if (per_image > g->out_h) per_image = g->out_h;
    job.rows_per_task = ck_ceil_div(g->out_h, per_image);
    job.row_tasks = ck_ceil_div(g->out_h, job.rows_per_task);
    int tasks = g->batch * job.row_tasks;
    if (threads > 1) ck_parallel_run(threads, tasks, ck_dw_task, &job);
    else for (int i = 0; i < tasks; i++) ck_dw_task(&job, i);
    free(heap_zeros);
}

void ck_depthwise2d_nhwc(const ck_conv_nhwc *geometry, const float *x, const float *packed_w, const ck_conv_epilogue *epilogue,
                         float *y) {
    ck_depthwise2d_nhwc_with(geometry, x, packed_w, epilogue, y, CK_ISA_AUTO, 0);
}
