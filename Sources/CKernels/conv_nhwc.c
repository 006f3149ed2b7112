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
/// Lane masks for the first n of 8 floats (n = 0 … 8).
static const int32_t ck_lane_masks[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

CK_AVX2 static inline __m256i ck_mask8(int n) { return _mm256_loadu_si256((const __m256i *)(ck_lane_masks + 8 - n)); }

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
    ck_tail_row_avx2(c, c00, c01, 0, nr, tail, &ep);
    if (mr > 1) ck_tail_row_avx2(c + ldc, c10, c11, 1, nr, tail, &ep);
    if (mr > 2) ck_tail_row_avx2(c + 2 * ldc, c20, c21, 2, nr, tail, &ep);
    if (mr > 3) ck_tail_row_avx2(c + 3 * ldc, c30, c31, 3, nr, tail, &ep);
    if (mr > 4) ck_tail_row_avx2(c + 4 * ldc, c40, c41, 4, nr, tail, &ep);
    if (mr > 5) ck_tail_row_avx2(c + 5 * ldc, c50, c51, 5, nr, tail, &ep);
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

/// The 12 × 32 tile over two packed panels (b1 NULL: one panel, 12 × 16). Rows past mr repeat a live pointer.
CK_AVX512 static void ck_igemm_avx512(int taps, int kc, const float *const *rows, const float *b0, const float *b1, float *c,
                                      ptrdiff_t ldc, int mr, int nr, const ck_tile_tail *tail) {
#define CK_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define CK_DECLARE(r) __m512 c##r##0 = _mm512_setzero_ps(), c##r##1 = _mm512_setzero_ps();
    CK_ROWS(CK_DECLARE)
#undef CK_DECLARE
    if (b1) {
        for (int t = 0; t < taps; t++, rows += CK_MR512) {
#define CK_POINTER(r) const float *a##r = rows[r];
            CK_ROWS(CK_POINTER)
            for (int p = 0; p < kc; p++, b0 += CK_NR, b1 += CK_NR) {
                __m512 w0 = _mm512_loadu_ps(b0), w1 = _mm512_loadu_ps(b1);
#define CK_STEP2(r) { __m512 x = _mm512_set1_ps(a##r[p]); c##r##0 = _mm512_fmadd_ps(x, w0, c##r##0); c##r##1 = _mm512_fmadd_ps(x, w1, c##r##1); }
                CK_ROWS(CK_STEP2)
#undef CK_STEP2
            }
        }
    } else {
        for (int t = 0; t < taps; t++, rows += CK_MR512) {
            CK_ROWS(CK_POINTER)
#undef CK_POINTER
            for (int p = 0; p < kc; p++, b0 += CK_NR) {
                __m512 w0 = _mm512_loadu_ps(b0);
#define CK_STEP1(r) c##r##0 = _mm512_fmadd_ps(_mm512_set1_ps(a##r[p]), w0, c##r##0);
                CK_ROWS(CK_STEP1)
#undef CK_STEP1
            }
        }
    }
    int late = ck_act_is_transcendental(tail->activation);
    ck_epilogue ep = {CK_BIAS_NONE, NULL, late ? CK_ACT_NONE : tail->activation, tail->param0, tail->param1, 0, tail->wide};
    __mmask16 m0 = (__mmask16)(nr >= CK_NR ? 0xFFFF : (1u << nr) - 1);
    __mmask16 m1 = (__mmask16)(nr >= 2 * CK_NR ? 0xFFFF : nr > CK_NR ? (1u << (nr - CK_NR)) - 1 : 0);
#define CK_STORE(r)                                                                                                 \
    if (r < mr) {                                                                                                   \
        const float *z = tail->residual ? tail->residual + r * tail->residual_stride : NULL;                        \
        ck_tail512(c + r * ldc, c##r##0, m0, tail->bias, z, &ep);                                                   \
        if (m1) ck_tail512(c + r * ldc + CK_NR, c##r##1, m1, tail->bias ? tail->bias + CK_NR : NULL, z ? z + CK_NR : NULL, &ep); \
    }
    CK_ROWS(CK_STORE)
#undef CK_STORE
#undef CK_ROWS
    if (late) {
        ep.activation = tail->activation;
        ck_act_rows_avx2(c, ldc, mr, nr, &ep);
    }
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
    /// Rows per tile: CK_MR512 on the AVX-512 path, CK_MR otherwise.
    int mr, avx512;
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
                ck_igemm_avx512(taps, kc, rows, b, pair ? b + k * CK_NR : NULL, y, g->y_stride, mr,
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
    // rows of A no longer stay in L1 across a panel pair and the partial last tile wastes more; those keep 6 × 16.
    job.avx512_level = ck_isa_avx512(isa);
    job.avx512 = ck_isa_avx512(isa) && (g->group_in < CK_CONV_AVX512_MAX_CHANNELS || g->batch * g->out_h * g->out_w >= CK_CONV_AVX512_MIN_PIXELS);
    job.mr = job.avx512 ? CK_MR512 : CK_MR;
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

typedef struct {
    ck_conv_nhwc g;
    const float *x, *w;
    float *y;
    ck_conv_epilogue ep;
    const float *zeros;  // at least `channels` zeros, for padding taps
    int taps, channels, rows_per_task, row_tasks;
    int avx2;            // the instruction set, chosen once per call
    int wide;            // ck_epilogue.wide
} ck_dw_job;

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

#ifdef CK_X86
/// One output pixel, 16 channels at a time (a masked last block): per tap 2 loads of X, 2 of W and 2 FMAs.
CK_AVX2 static void ck_dw_pixel_avx2(const ck_dw_job *job, const float *const *rows, float *out, const float *residual) {
    int late = ck_act_is_transcendental(job->ep.activation);
    ck_epilogue ep = {CK_BIAS_NONE, NULL, late ? CK_ACT_NONE : job->ep.activation, job->ep.param0, job->ep.param1, 0, job->wide};
    int taps = job->taps, channels = job->channels;
    const float *w = job->w;
    for (int c = 0; c < channels; c += CK_NR, w += (size_t)taps * CK_NR) {
        int live = ck_min(CK_NR, channels - c);
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        if (live == CK_NR) {
            for (int t = 0; t < taps; t++) {
                const float *x = rows[t] + c;
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(w + t * CK_NR), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + 8), _mm256_loadu_ps(w + t * CK_NR + 8), a1);
            }
        } else {
            __m256i m0 = ck_mask8(live < 8 ? live : 8), m1 = ck_mask8(live > 8 ? live - 8 : 0);
            for (int t = 0; t < taps; t++) {
                const float *x = rows[t] + c;
                a0 = _mm256_fmadd_ps(_mm256_maskload_ps(x, m0), _mm256_loadu_ps(w + t * CK_NR), a0);
                a1 = _mm256_fmadd_ps(_mm256_maskload_ps(x + 8, m1), _mm256_loadu_ps(w + t * CK_NR + 8), a1);
            }
        }
        ck_tile_tail tail = {job->ep.bias ? job->ep.bias + c : NULL, residual ? residual + c : NULL, 0,
                             job->ep.activation, job->ep.param0, job->ep.param1, job->wide};
        ck_tail_row_avx2(out + c, a0, a1, 0, live, &tail, &ep);
    }
    if (late) {
        ep.activation = job->ep.activation;
        ck_act_rows_avx2(out, 0, 1, channels, &ep);
    }
}
#endif

#ifdef CK_X86
/// The taps of one 16-channel block of four pixels (`masked`: the last, partial block) into acc, with the branch on
/// `masked` resolved at compile time (always inlined with a constant) so the loop keeps its 8 accumulators and
/// pointers in registers.
__attribute__((always_inline)) CK_AVX2 static inline void ck_dw_quad_block_avx2(
    const ck_dw_job *job, const float *image, int i0, int i1, int ih_base, int iw_base, int c, const float *w, ptrdiff_t xs,
    ptrdiff_t pixel_step, ptrdiff_t col_step, const int masked, __m256i m0, __m256i m1, __m256 acc[4][2]) {
    const ck_conv_nhwc *g = &job->g;
    int kw = g->kernel_w;
    __m256 a00 = _mm256_setzero_ps(), a01 = _mm256_setzero_ps(), a10 = _mm256_setzero_ps(), a11 = _mm256_setzero_ps();
    __m256 a20 = _mm256_setzero_ps(), a21 = _mm256_setzero_ps(), a30 = _mm256_setzero_ps(), a31 = _mm256_setzero_ps();
#define CK_DW_LOAD(p, o) (masked ? _mm256_maskload_ps((p) + (o), (o) ? m1 : m0) : _mm256_loadu_ps((p) + (o)))
    for (int i = i0; i < i1; i++) {
        const float *x = image + ((ptrdiff_t)(ih_base + i * g->dilation_h) * g->in_w + iw_base) * xs + c;
        const float *wr = w + (size_t)i * kw * CK_NR;
        for (int j = 0; j < kw; j++, x += col_step, wr += CK_NR) {
            __m256 w0 = _mm256_loadu_ps(wr), w1 = _mm256_loadu_ps(wr + 8);
            a00 = _mm256_fmadd_ps(CK_DW_LOAD(x, 0), w0, a00);
            a01 = _mm256_fmadd_ps(CK_DW_LOAD(x, 8), w1, a01);
            a10 = _mm256_fmadd_ps(CK_DW_LOAD(x + pixel_step, 0), w0, a10);
            a11 = _mm256_fmadd_ps(CK_DW_LOAD(x + pixel_step, 8), w1, a11);
            a20 = _mm256_fmadd_ps(CK_DW_LOAD(x + 2 * pixel_step, 0), w0, a20);
            a21 = _mm256_fmadd_ps(CK_DW_LOAD(x + 2 * pixel_step, 8), w1, a21);
            a30 = _mm256_fmadd_ps(CK_DW_LOAD(x + 3 * pixel_step, 0), w0, a30);
            a31 = _mm256_fmadd_ps(CK_DW_LOAD(x + 3 * pixel_step, 8), w1, a31);
        }
    }
#undef CK_DW_LOAD
    acc[0][0] = a00; acc[0][1] = a01; acc[1][0] = a10; acc[1][1] = a11;
    acc[2][0] = a20; acc[2][1] = a21; acc[3][0] = a30; acc[3][1] = a31;
}

/// The bias, residual and cheap activation of 4 pixels × one 16-channel block, then the stores (masked for a partial
/// block); the activation's switch runs once per block.
__attribute__((always_inline)) CK_AVX2 static inline void ck_dw_store_avx2(const ck_dw_job *job, __m256 acc[4][2], int count,
                                                                        float *out, const float *residual, int c, int live,
                                                                        __m256i m0, __m256i m1, const ck_epilogue *ep) {
    const ck_conv_nhwc *g = &job->g;
    if (job->ep.bias) {
        __m256 b0 = _mm256_maskload_ps(job->ep.bias + c, m0), b1 = _mm256_maskload_ps(job->ep.bias + c + 8, m1);
        for (int p = 0; p < count; p++) { acc[p][0] = _mm256_add_ps(acc[p][0], b0); acc[p][1] = _mm256_add_ps(acc[p][1], b1); }
    }
    if (residual) {
        for (int p = 0; p < count; p++) {
            const float *z = residual + (ptrdiff_t)p * job->ep.residual_stride + c;
            acc[p][0] = _mm256_add_ps(acc[p][0], _mm256_maskload_ps(z, m0));
            acc[p][1] = _mm256_add_ps(acc[p][1], _mm256_maskload_ps(z + 8, m1));
        }
    }
    for (int p = 0; p < count; p++) {
        float *dst = out + (ptrdiff_t)p * g->y_stride + c;
        __m256 v0 = ck_act_avx2(acc[p][0], ep), v1 = ck_act_avx2(acc[p][1], ep);
        if (live == CK_NR) {
            _mm256_storeu_ps(dst, v0);
            _mm256_storeu_ps(dst + 8, v1);
        } else {
            _mm256_maskstore_ps(dst, m0, v0);
            _mm256_maskstore_ps(dst + 8, m1, v1);
        }
    }
}

/// One pixel of one 16-channel block whose taps may fall outside the row (the row's borders): each tap checked.
__attribute__((always_inline)) CK_AVX2 static inline void ck_dw_border_block_avx2(const ck_dw_job *job, const float *image, int i0, int i1,
                                                                               int ih_base, int iw_first, int c, const float *w,
                                                                               const int masked, __m256i m0, __m256i m1, __m256 acc[2]) {
    const ck_conv_nhwc *g = &job->g;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (int i = i0; i < i1; i++) {
        const float *row = image + (ptrdiff_t)(ih_base + i * g->dilation_h) * g->in_w * g->x_stride + c;
        for (int j = 0; j < g->kernel_w; j++) {
            int iw = iw_first + j * g->dilation_w;
            if ((unsigned)iw >= (unsigned)g->in_w) continue;
            const float *x = row + (ptrdiff_t)iw * g->x_stride, *wr = w + ((size_t)i * g->kernel_w + j) * CK_NR;
            a0 = _mm256_fmadd_ps(masked ? _mm256_maskload_ps(x, m0) : _mm256_loadu_ps(x), _mm256_loadu_ps(wr), a0);
            a1 = _mm256_fmadd_ps(masked ? _mm256_maskload_ps(x + 8, m1) : _mm256_loadu_ps(x + 8), _mm256_loadu_ps(wr + 8), a1);
        }
    }
    acc[0] = a0;
    acc[1] = a1;
}

/// One output row, four pixels at a time where every tap is inside the row, one at a time at the borders, each
/// through every block of 16 channels. Kernel rows outside the image
/// (i0 …< i1 are the inside ones) are skipped, as the padding adds nothing. Taps sum in (kernel row, kernel column)
/// order on either path.
CK_AVX2 static void ck_dw_row_avx2(const ck_dw_job *job, const float *image, int n, int oh) {
    const ck_conv_nhwc *g = &job->g;
    int ih_base = oh * g->stride_h - g->pad_top;
    int i0 = 0, i1 = g->kernel_h;
    while (i0 < i1 && ih_base + i0 * g->dilation_h < 0) i0++;
    while (i1 > i0 && ih_base + (i1 - 1) * g->dilation_h >= g->in_h) i1--;
    int taps = job->taps, channels = job->channels;
    ptrdiff_t xs = g->x_stride, pixel_step = (ptrdiff_t)g->stride_w * xs, col_step = (ptrdiff_t)g->dilation_w * xs;
    int late = ck_act_is_transcendental(job->ep.activation);
    ck_epilogue ep = {CK_BIAS_NONE, NULL, late ? CK_ACT_NONE : job->ep.activation, job->ep.param0, job->ep.param1, 0, job->wide};
    size_t row_pixel = ((size_t)n * g->out_h + oh) * g->out_w;
    float *out_row = job->y + row_pixel * g->y_stride;
    const float *res_row = job->ep.residual ? job->ep.residual + row_pixel * job->ep.residual_stride : NULL;
    // The first and last output columns whose taps are all inside the row.
    int span = (g->kernel_w - 1) * g->dilation_w;
    int first = g->pad_left > 0 ? ck_ceil_div(g->pad_left, g->stride_w) : 0;
    int last = g->in_w - 1 - span + g->pad_left < 0 ? -1 : (g->in_w - 1 - span + g->pad_left) / g->stride_w;
    if (last > g->out_w - 1) last = g->out_w - 1;
    // Pixels outer, channel blocks inner: the input pixels four outputs read stay in L1 while every block uses
    // them (block-outer order streamed each input row from L2 once per 16 channels).
    for (int ow = 0; ow < g->out_w;) {
        int quad = ow >= first && ow + 3 <= last;
        float *out = out_row + (ptrdiff_t)ow * g->y_stride;
        const float *residual = res_row ? res_row + (ptrdiff_t)ow * job->ep.residual_stride : NULL;
        int iw_first = ow * g->stride_w - g->pad_left;
        const float *w = job->w;
        for (int c = 0; c < channels; c += CK_NR, w += (size_t)taps * CK_NR) {
            int live = ck_min(CK_NR, channels - c);
            int masked = live != CK_NR;
            __m256i m0 = ck_mask8(live < 8 ? live : 8), m1 = ck_mask8(live > 8 ? live - 8 : 0);
            __m256 acc[4][2];
            if (quad) {
                if (masked) ck_dw_quad_block_avx2(job, image, i0, i1, ih_base, iw_first, c, w, xs, pixel_step, col_step, 1, m0, m1, acc);
                else ck_dw_quad_block_avx2(job, image, i0, i1, ih_base, iw_first, c, w, xs, pixel_step, col_step, 0, m0, m1, acc);
                ck_dw_store_avx2(job, acc, 4, out, residual, c, live, m0, m1, &ep);
            } else {
                if (masked) ck_dw_border_block_avx2(job, image, i0, i1, ih_base, iw_first, c, w, 1, m0, m1, acc[0]);
                else ck_dw_border_block_avx2(job, image, i0, i1, ih_base, iw_first, c, w, 0, m0, m1, acc[0]);
                ck_dw_store_avx2(job, acc, 1, out, residual, c, live, m0, m1, &ep);
            }
        }
        ow += quad ? 4 : 1;
    }
    if (late) {
        ep.activation = job->ep.activation;
        ck_act_rows_avx2(out_row, g->y_stride, g->out_w, channels, &ep);
    }
}
#endif

static void ck_dw_task(void *context, int index) {
    const ck_dw_job *job = context;
    const ck_conv_nhwc *g = &job->g;
    int n = index / job->row_tasks, r0 = (index % job->row_tasks) * job->rows_per_task;
    int r1 = ck_min(g->out_h, r0 + job->rows_per_task);
    const float **rows = ck_conv_row_buffer((size_t)job->taps);
    const float *image = job->x + (size_t)n * g->in_h * g->in_w * g->x_stride;
    void (*pixel)(const ck_dw_job *, const float *const *, float *, const float *) = ck_dw_pixel_scalar;
#ifdef CK_X86
    if (job->avx2) pixel = ck_dw_pixel_avx2;
#endif
    for (int oh = r0; oh < r1; oh++) {
#ifdef CK_X86
        if (job->avx2) {
            ck_dw_row_avx2(job, image, n, oh);
            continue;
        }
#endif
        for (int ow = 0; ow < g->out_w; ow++) {
            size_t p = ((size_t)n * g->out_h + oh) * g->out_w + ow;
            ck_dw_pixel_rows(job, image, oh, ow, rows);
            pixel(job, rows, job->y + p * g->y_stride, job->ep.residual ? job->ep.residual + p * job->ep.residual_stride : NULL);
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
    job.avx2 = ck_isa_avx2(isa);
    job.wide = ck_isa_avx512(isa);
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
