// qconv_nhwc.c — quantized (u8 activations × s8 weights → s32) 2-D convolution of channels-last tensors, the
// indirect GEMM of conv_nhwc.c in integers: output pixels are the rows, output channels the columns, weights packed
// once at compile time; each tile row reads its input pixels in place through one pointer per tap (a row of
// x_zero_point bytes for padding taps). Also TFLite's multiplier quantization and its quantized Add. Contract and
// formulas: include/ckernels.h, "Quantized (u8 × s8) channels-last convolution".
//
// Instruction choice
// ------------------
// The product of a u8 and an s8 needs 16 bits and four of them summed 18, so the question on x86 is which
// instruction sums them without losing bits. Measured with scripts/bench_kernels.py --int8-dot (the register tile
// alone, K = 512, operands in L1, one Zen 4 core; table in docs/benchmarks.md, "Quantized kernels"):
//
//   fp32 FMA 6×16 (the float kernel's tile, for scale)                         116 GFLOP/s
//   (a) VPMADDUBSW(x, w) + VPMADDWD(ones) + VPADDD, 7-bit weights (ORT's
//       reduce_range): exact only because |w| ≤ 63, half the weight levels    234 GOP/s
//   (b) s16 widening: VPMADDWD(x − x_zp, w) + VPADDD on pairs of channels       195 GOP/s   ← the AVX2 path
//   (c) sign transfer: VPMADDUBSW(|x'|, VPSIGNB(w, x')), x' = x ^ 0x80 = x − 128,
//       XOR and ABS per broadcast; exact with 8-bit weights (pair sums ≤
//       2·128·127 = 32512), 128·Σw back through the bias                       133 GOP/s
//       (c) with x' and |x'| precomputed (two broadcasts, no XOR/ABS)          152 GOP/s
//   AVX-512 VNNI vpdpbusd, 12×32 zmm tile                                       460 GOP/s   ← the VNNI path
//
// (c) needs 4 µops per 32 multiply-adds, 3 of them on the vector multiply ports on Intel (VPSIGNB, VPMADDUBSW,
// VPMADDWD) and 2 on Zen 4 plus the per-row XOR/ABS; (b) needs 2 per 16 with one multiply — the same work per
// multiply-port µop on Zen 4 and a third more on Intel, without the per-row overhead. (Transferring the sign the other
// way, VPSIGNB(x', w) against |w|, is wrong for x = 0 with w < 0: −(−128) does not fit an s8.) So:
//
// - AVX-512 VNNI: the tile is 12 output pixels × 32 output channels (24 zmm accumulators; per 4 input channels 2
//   weight loads, 12 broadcasts, 24 vpdpbusd), the float AVX-512 tile's shape; −x_zp·Σw folds into the bias.
//   Channel counts that are not a multiple of 4 (stems: 3) pad each pixel's channels with x_zp in a per-call copy
//   of the input and re-lay each task's panels per tap, so every tile still reads its pixels through pointers.
// - AVX2: x − x_zp widened to s16 once per call (padding taps read zeros), each task's panels widened to s16 once
//   (from the stored int8 layout; a task's block of panels stays in L2), a 4 × 16 register tile run twice per
//   8-row tile so the requantization's per-column constants serve 8 rows.
// - Scalar: portable C over the geometry, the reference the tests hold the others to.
//
// Every path computes acc exactly (modulo 2^32) and requantizes with the same integer operations (ck_quant.h), so
// results are bit-identical across paths and thread counts.
#define _GNU_SOURCE
#include "ck_quant.h"

#include <stdlib.h>
#include <string.h>

/// Output channels per packed panel, and bytes of one packed quad row of a panel (16 lanes × 4 input channels).
#define CK_QNR 16
#define CK_QPANEL_QUAD 64
/// Tile rows: the VNNI tile's 12, and the AVX2 path's 8 (two passes of its 4-row register tile, so that the
/// epilogue's per-column constants serve 8 rows); the scalar path uses the AVX2 grid.
#define CK_QMR_VNNI 12
#define CK_QMR_AVX2 8
/// Bytes of packed weights a task keeps hot while its tiles pass over them (as CK_CONV_B_BLOCK_BYTES).
#define CK_QCONV_B_BLOCK_BYTES (256 * 1024)
/// Tasks per thread the grid aims for (as CK_CONV_TASKS_PER_THREAD).
#define CK_QCONV_TASKS_PER_THREAD 8
/// Input channels per group up to which the padding row lives on the caller's stack.
#define CK_QCONV_STACK_PAD 4096
/// Kernel sizes up to 11×11 precompute their taps' offsets.
#define CK_QCONV_MAX_TAP_OFFSETS 121

// MARK: - Multipliers

void ck_quantize_multiplier(double real, int32_t *multiplier, int *shift) {
    if (real == 0 || !(real == real)) {
        *multiplier = 0;
        *shift = 0;
        return;
    }
    int exponent;
    double q = frexp(real, &exponent);
    int64_t fixed = (int64_t)round(q * (double)((int64_t)1 << 31));
    if (fixed == ((int64_t)1 << 31)) {
        fixed /= 2;
        exponent++;
    }
    if (exponent < -31) {
        exponent = 0;
        fixed = 0;
    }
    if (exponent > 30) {
        exponent = 30;
        fixed = ((int64_t)1 << 31) - 1;
    }
    *multiplier = (int32_t)fixed;
    *shift = exponent;
}

int32_t ck_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift) {
    return ck_q_round_fixed(x, multiplier, shift);
}

// MARK: - Packing

size_t ck_qconv_nhwc_packed_size(int groups, int group_out, int group_in, int kernel_h, int kernel_w) {
    size_t k = (size_t)kernel_h * kernel_w * group_in, quads = (k + 3) / 4;
    size_t panels = (size_t)ck_ceil_div(group_out, CK_QNR);
    return (size_t)groups * panels * quads * CK_QPANEL_QUAD + (size_t)groups * group_out * sizeof(int32_t);
}

void ck_qconv_nhwc_pack(int groups, int group_out, int group_in, int kernel_h, int kernel_w, const int8_t *w, void *packed) {
    int taps = kernel_h * kernel_w, panels = ck_ceil_div(group_out, CK_QNR);
    size_t k = (size_t)taps * group_in, quads = (k + 3) / 4;
    int8_t *dst = packed;
    size_t weight_bytes = (size_t)groups * panels * quads * CK_QPANEL_QUAD;
    for (int g = 0; g < groups; g++) {
        for (int p = 0; p < panels; p++) {
            int8_t *panel = dst + ((size_t)g * panels + p) * quads * CK_QPANEL_QUAD;
            for (size_t q = 0; q < quads; q++) {
                for (int col = 0; col < CK_QNR; col++) {
                    int o = p * CK_QNR + col;
                    for (int i = 0; i < 4; i++) {
                        size_t kk = 4 * q + (size_t)i;
                        int8_t v = 0;
                        if (o < group_out && kk < k) {
                            size_t t = kk / (size_t)group_in, c = kk % (size_t)group_in;
                            // ONNX weights are [groups·group_out, group_in, kernel_h, kernel_w].
                            v = w[(((size_t)g * group_out + o) * group_in + c) * taps + t];
                        }
                        panel[q * CK_QPANEL_QUAD + (size_t)col * 4 + (size_t)i] = v;
                    }
                }
            }
        }
    }
    int32_t *sums = (int32_t *)(void *)(dst + weight_bytes);
    for (size_t o = 0; o < (size_t)groups * group_out; o++) {
        int32_t s = 0;
        for (size_t kk = 0; kk < k; kk++) s += w[o * k + kk];
        sums[o] = s;
    }
}

// MARK: - Job

typedef enum { CK_QPATH_SCALAR, CK_QPATH_AVX2, CK_QPATH_VNNI } ck_qpath;

typedef struct {
    ck_conv_nhwc g;
    const uint8_t *x;
    const int8_t *w;       // packed panels
    ck_qout out;           // bias: the path's (folded) bias
    int32_t x_zero_point;
    ck_qpath path;
    int taps, panels, mr, tiles_per_image, tiles;
    size_t quads;          // Kq: quads of the whole K = taps·group_in
    int padded;            // VNNI with group_in % 4 != 0: quads would straddle taps, so the input's groups are
                           // copied padded to group_in4 channels (x_zero_point) and each task re-lays its panels
    int panel_block, tile_block, panel_blocks, tile_blocks;
    // What the tile rows point into: the u8 input (VNNI) or its s16 form (AVX2), as bytes.
    const uint8_t *src;
    ptrdiff_t src_pixel, src_group;  // bytes between pixels and between groups' first channels
    const uint8_t *pad;    // what padding taps read: group_in bytes of x_zero_point (VNNI) or group_in2 zeros (AVX2)
    int group_in2;         // AVX2: input channels per group rounded up to even (pairs of s16)
    int group_in4;         // VNNI: rounded up to a multiple of 4 (whole quads per tap)
    const ptrdiff_t *tap_offsets;  // each tap's byte offset from its window's origin pixel, or NULL
    ptrdiff_t tap_offset_storage[CK_QCONV_MAX_TAP_OFFSETS];
} ck_qconv_job;

/// Per-thread room for one tile's row pointers, grown as needed.
static _Thread_local const uint8_t **ck_qconv_rows = NULL;
static _Thread_local size_t ck_qconv_rows_count = 0;

static const uint8_t **ck_qconv_row_buffer(size_t count) {
    if (count > ck_qconv_rows_count) {
        free(ck_qconv_rows);
        ck_qconv_rows = malloc(count * sizeof *ck_qconv_rows);
        if (!ck_qconv_rows) abort();  // out of memory, as Swift traps on a failed allocation
        ck_qconv_rows_count = count;
    }
    return ck_qconv_rows;
}

/// The input pointers of one tile (tile = job->mr rows): for each tap and row, group g's first channel at that tap,
/// or the padding row. Rows past mr repeat the last live one.
static void ck_qconv_tile_rows(const ck_qconv_job *job, int n, int p0, int mr, int group, const uint8_t **rows) {
    const ck_conv_nhwc *g = &job->g;
    int tile = job->mr;
    ptrdiff_t xs = job->src_pixel;
    const uint8_t *image = job->src + (size_t)n * g->in_h * g->in_w * xs + (size_t)group * job->src_group;
    if (job->taps == 1 && g->stride_h == 1 && g->stride_w == 1 && g->pad_top == 0 && g->pad_left == 0 &&
        g->in_w == g->out_w && g->in_h == g->out_h) {
        // A 1×1 stride-1 convolution without padding (and the GEMM form) reads its own pixel.
        for (int r = 0; r < tile; r++) rows[r] = image + (size_t)(p0 + (r < mr ? r : mr - 1)) * xs;
        return;
    }
    int oh[CK_QMR_VNNI], ow[CK_QMR_VNNI];
    int h = p0 / g->out_w, w = p0 % g->out_w;
    for (int r = 0; r < tile; r++) {
        oh[r] = h;
        ow[r] = w;
        if (r + 1 < mr && ++w == g->out_w) {
            w = 0;
            h++;
        }
    }
    int inside = job->tap_offsets != NULL;
    const uint8_t *origin[CK_QMR_VNNI];
    int span_h = (g->kernel_h - 1) * g->dilation_h, span_w = (g->kernel_w - 1) * g->dilation_w;
    for (int r = 0; r < tile && inside; r++) {
        int ih = oh[r] * g->stride_h - g->pad_top, iw = ow[r] * g->stride_w - g->pad_left;
        inside = ih >= 0 && iw >= 0 && ih + span_h < g->in_h && iw + span_w < g->in_w;
        origin[r] = inside ? image + ((ptrdiff_t)ih * g->in_w + iw) * xs : NULL;
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
                              ? image + ((size_t)ih * g->in_w + iw) * xs
                              : job->pad;
            }
        }
    }
}

// MARK: - Scalar

/// One panel of one tile, directly from the geometry (the reference): acc[r·32 + col] = Σ (x − x_zp)·w over the
/// taps inside the image, modulo 2^32.
static void ck_qtile_scalar(const ck_qconv_job *job, int n, int p0, int mr, int group, int panel, int32_t *acc) {
    const ck_conv_nhwc *g = &job->g;
    const uint8_t *image = job->x + (size_t)n * g->in_h * g->in_w * g->x_stride + (size_t)group * g->group_in;
    const int8_t *w = job->w + ((size_t)group * job->panels + panel) * job->quads * CK_QPANEL_QUAD;
    for (int r = 0; r < mr; r++) {
        uint32_t sum[CK_QNR] = {0};
        int p = p0 + r, oh = p / g->out_w, ow = p % g->out_w;
        for (int i = 0; i < g->kernel_h; i++) {
            int ih = oh * g->stride_h - g->pad_top + i * g->dilation_h;
            if ((unsigned)ih >= (unsigned)g->in_h) continue;
            for (int j = 0; j < g->kernel_w; j++) {
                int iw = ow * g->stride_w - g->pad_left + j * g->dilation_w;
                if ((unsigned)iw >= (unsigned)g->in_w) continue;
                const uint8_t *x = image + ((size_t)ih * g->in_w + iw) * g->x_stride;
                size_t k0 = (size_t)(i * g->kernel_w + j) * g->group_in;
                for (int c = 0; c < g->group_in; c++) {
                    size_t k = k0 + (size_t)c;
                    const int8_t *wk = w + (k / 4) * CK_QPANEL_QUAD + k % 4;
                    int32_t xv = (int32_t)x[c] - job->x_zero_point;
                    for (int col = 0; col < CK_QNR; col++) sum[col] += (uint32_t)(xv * wk[col * 4]);
                }
            }
        }
        for (int col = 0; col < CK_QNR; col++) acc[r * 32 + col] = (int32_t)sum[col];
    }
}

#ifdef CK_X86
// MARK: - AVX2

/// The 4 × 16 tile on s16 pairs: acc[(row0 + r)·32 + col] = Σ (x − x_zp)·w, rows[t·tile + row0 + r] pointing at
/// s16 activations and b at the task's widened panel (per tap, pairs × 16 columns × 2). Per 2 input channels:
/// 2 weight loads, and per row a broadcast and 2 VPMADDWD + 2 VPADDD.
CK_AVX2 static void ck_qigemm_avx2(int taps, int pairs, const uint8_t *const *rows, int tile, int row0, const int16_t *b,
                                   int32_t *acc) {
    __m256i c00 = _mm256_setzero_si256(), c01 = _mm256_setzero_si256(), c10 = _mm256_setzero_si256(), c11 = _mm256_setzero_si256();
    __m256i c20 = _mm256_setzero_si256(), c21 = _mm256_setzero_si256(), c30 = _mm256_setzero_si256(), c31 = _mm256_setzero_si256();
    rows += row0;
    for (int t = 0; t < taps; t++, rows += tile) {
        const uint8_t *a0 = rows[0], *a1 = rows[1], *a2 = rows[2], *a3 = rows[3];
        for (int p = 0; p < pairs; p++, b += 2 * CK_QNR) {
            __m256i w0 = _mm256_loadu_si256((const __m256i *)b), w1 = _mm256_loadu_si256((const __m256i *)(b + 16));
#define CK_QROW(r)                                                                      \
    {                                                                                   \
        __m256i x = _mm256_set1_epi32(ck_q_load32(a##r + 4 * p));                       \
        c##r##0 = _mm256_add_epi32(c##r##0, _mm256_madd_epi16(x, w0));                  \
        c##r##1 = _mm256_add_epi32(c##r##1, _mm256_madd_epi16(x, w1));                  \
    }
            CK_QROW(0) CK_QROW(1) CK_QROW(2) CK_QROW(3)
#undef CK_QROW
        }
    }
    acc += (size_t)row0 * 32;
    _mm256_storeu_si256((__m256i *)(acc + 0 * 32), c00); _mm256_storeu_si256((__m256i *)(acc + 0 * 32 + 8), c01);
    _mm256_storeu_si256((__m256i *)(acc + 1 * 32), c10); _mm256_storeu_si256((__m256i *)(acc + 1 * 32 + 8), c11);
    _mm256_storeu_si256((__m256i *)(acc + 2 * 32), c20); _mm256_storeu_si256((__m256i *)(acc + 2 * 32 + 8), c21);
    _mm256_storeu_si256((__m256i *)(acc + 3 * 32), c30); _mm256_storeu_si256((__m256i *)(acc + 3 * 32 + 8), c31);
}

/// Widens one packed panel (quads × 64 int8) to the AVX2 kernel's s16 form: per tap, group_in2 / 2 pairs of input
/// channels × 16 columns × 2, dst[((t·pairs + c/2)·16 + col)·2 + c%2] = W[col, t·group_in + c], 0 for c ≥ group_in.
CK_AVX2 static void ck_qconv_widen_panel(const ck_qconv_job *job, const int8_t *panel, int16_t *dst) {
    int gi = job->g.group_in, pairs = job->group_in2 / 2;
    if (gi % 4 == 0) {
        // Quad q holds input channels 4q … 4q + 3 of one tap, which are pairs 2q and 2q + 1 in both layouts.
        const __m256i order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
        for (size_t q = 0; q < job->quads; q++) {
            for (int m = 0; m < 4; m++) {
                __m128i bytes = _mm_loadu_si128((const __m128i *)(panel + q * CK_QPANEL_QUAD + 16 * m));  // columns 4m … 4m + 3
                __m256i words = _mm256_permutevar8x32_epi32(_mm256_cvtepi8_epi16(bytes), order);
                _mm_storeu_si128((__m128i *)(dst + (2 * q) * 32 + 8 * m), _mm256_castsi256_si128(words));
                _mm_storeu_si128((__m128i *)(dst + (2 * q + 1) * 32 + 8 * m), _mm256_extracti128_si256(words, 1));
            }
        }
        return;
    }
    for (int t = 0; t < job->taps; t++)
        for (int c = 0; c < 2 * pairs; c++)
            for (int col = 0; col < CK_QNR; col++) {
                size_t k = (size_t)t * gi + (size_t)c;
                int16_t v = c < gi ? panel[(k / 4) * CK_QPANEL_QUAD + (size_t)col * 4 + k % 4] : 0;
                dst[(((size_t)t * pairs + c / 2) * CK_QNR + col) * 2 + c % 2] = v;
            }
}

/// The AVX2 path's activations: x − x_zero_point as s16, each group's channels padded to group_in2 with zeros,
/// pixels groups·group_in2 apart.
typedef struct {
    const ck_qconv_job *job;
    void *dst;            // int16_t (AVX2) or uint8_t (VNNI, padded)
    size_t pixels, chunk;
} ck_qconv_widen_input_job;

CK_AVX2 static void ck_qconv_widen_input(void *context, int index) {
    const ck_qconv_widen_input_job *w = context;
    const ck_qconv_job *job = w->job;
    const ck_conv_nhwc *g = &job->g;
    size_t p0 = (size_t)index * w->chunk, p1 = p0 + w->chunk < w->pixels ? p0 + w->chunk : w->pixels;
    int gi = g->group_in, gi2 = job->group_in2;
    __m256i zp = _mm256_set1_epi16((short)job->x_zero_point);
    for (size_t p = p0; p < p1; p++) {
        const uint8_t *x = job->x + p * g->x_stride;
        int16_t *d = (int16_t *)w->dst + p * (size_t)g->groups * gi2;
        for (int grp = 0; grp < g->groups; grp++, x += gi, d += gi2) {
            int c = 0;
            for (; c + 16 <= gi; c += 16)
                _mm256_storeu_si256((__m256i *)(d + c),
                                    _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(x + c))), zp));
            for (; c < gi; c++) d[c] = (int16_t)(x[c] - job->x_zero_point);
            if (gi2 > gi) d[gi] = 0;
        }
    }
}

/// Per-thread room for a task's widened or re-laid panels, and the calling thread's widened or padded input, grown
/// as needed (never freed: at most twice the largest input and 512 KB of panels per thread).
static _Thread_local void *ck_qconv_panels = NULL;
static _Thread_local size_t ck_qconv_panels_bytes = 0;
static _Thread_local void *ck_qconv_input = NULL;
static _Thread_local size_t ck_qconv_input_bytes = 0;

static void *ck_qconv_scratch(void **buffer, size_t *bytes, size_t needed) {
    needed += 64;  // never empty, and room for a last unaligned vector
    if (needed > *bytes) {
        free(*buffer);
        *buffer = malloc(needed);
        if (!*buffer) abort();  // out of memory, as Swift traps on a failed allocation
        *bytes = needed;
    }
    return *buffer;
}

// MARK: - AVX-512 VNNI

/// The 12 × 32 tile over two packed panels (b1 NULL: one panel, 12 × 16): acc[r·32 + col] = Σ x·w.
CK_AVX512_VNNI static void ck_qigemm_vnni(int taps, size_t kq, const uint8_t *const *rows, const int8_t *b0, const int8_t *b1,
                                          int32_t *acc) {
#define CK_QROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define CK_QDECLARE(r) __m512i c##r##0 = _mm512_setzero_si512(), c##r##1 = _mm512_setzero_si512();
    CK_QROWS(CK_QDECLARE)
#undef CK_QDECLARE
#define CK_QPOINTER(r) const uint8_t *a##r = rows[r];
    if (b1) {
        for (int t = 0; t < taps; t++, rows += CK_QMR_VNNI) {
            CK_QROWS(CK_QPOINTER)
            for (size_t q = 0; q < kq; q++, b0 += CK_QPANEL_QUAD, b1 += CK_QPANEL_QUAD) {
                __m512i w0 = _mm512_loadu_si512(b0), w1 = _mm512_loadu_si512(b1);
#define CK_QSTEP2(r) { __m512i x = _mm512_set1_epi32(ck_q_load32(a##r + 4 * q)); c##r##0 = _mm512_dpbusd_epi32(c##r##0, x, w0); c##r##1 = _mm512_dpbusd_epi32(c##r##1, x, w1); }
                CK_QROWS(CK_QSTEP2)
#undef CK_QSTEP2
            }
        }
    } else {
        for (int t = 0; t < taps; t++, rows += CK_QMR_VNNI) {
            CK_QROWS(CK_QPOINTER)
            for (size_t q = 0; q < kq; q++, b0 += CK_QPANEL_QUAD) {
                __m512i w0 = _mm512_loadu_si512(b0);
#define CK_QSTEP1(r) c##r##0 = _mm512_dpbusd_epi32(c##r##0, _mm512_set1_epi32(ck_q_load32(a##r + 4 * q)), w0);
                CK_QROWS(CK_QSTEP1)
#undef CK_QSTEP1
            }
        }
    }
#undef CK_QPOINTER
#define CK_QSTORE(r) _mm512_storeu_si512(acc + r * 32, c##r##0); _mm512_storeu_si512(acc + r * 32 + 16, c##r##1);
    CK_QROWS(CK_QSTORE)
#undef CK_QSTORE
#undef CK_QROWS
}

/// VNNI with group_in % 4 != 0: one packed panel re-laid with whole quads per tap, dst[((t·q4 + c/4)·16 + col)·4 +
/// c%4] = W[col, t·group_in + c] (q4 = group_in4 / 4), 0 for c ≥ group_in.
static void ck_qconv_pad_panel(const ck_qconv_job *job, const int8_t *panel, int8_t *dst) {
    int gi = job->g.group_in, q4 = job->group_in4 / 4;
    for (int t = 0; t < job->taps; t++)
        for (int c = 0; c < 4 * q4; c++)
            for (int col = 0; col < CK_QNR; col++) {
                size_t k = (size_t)t * gi + (size_t)c;
                dst[(((size_t)t * q4 + c / 4) * CK_QNR + col) * 4 + c % 4] =
                    c < gi ? panel[(k / 4) * CK_QPANEL_QUAD + (size_t)col * 4 + k % 4] : 0;
            }
}

/// The padded input of that case: each group's channels, then x_zero_point up to group_in4.
static void ck_qconv_pad_input(void *context, int index) {
    const ck_qconv_widen_input_job *w = context;
    const ck_qconv_job *job = w->job;
    const ck_conv_nhwc *g = &job->g;
    size_t p0 = (size_t)index * w->chunk, p1 = p0 + w->chunk < w->pixels ? p0 + w->chunk : w->pixels;
    int gi = g->group_in, gi4 = job->group_in4;
    for (size_t p = p0; p < p1; p++) {
        const uint8_t *x = job->x + p * g->x_stride;
        uint8_t *d = (uint8_t *)w->dst + p * (size_t)g->groups * gi4;
        for (int grp = 0; grp < g->groups; grp++, x += gi, d += gi4) {
            memcpy(d, x, (size_t)gi);
            memset(d + gi, (int)job->x_zero_point, (size_t)(gi4 - gi));
        }
    }
}
#endif

// MARK: - Tasks

static void ck_qconv_task(void *context, int index) {
    const ck_qconv_job *job = context;
    const ck_conv_nhwc *g = &job->g;
    int tb = index % job->tile_blocks, rest = index / job->tile_blocks;
    int pb = rest % job->panel_blocks, group = rest / job->panel_blocks;
    int t0 = tb * job->tile_block, t1 = ck_min(job->tiles, t0 + job->tile_block);
    int j0 = pb * job->panel_block, j1 = ck_min(job->panels, j0 + job->panel_block);
    int tile = job->mr, out_pixels = g->out_h * g->out_w;
    int32_t acc[CK_QMR_VNNI * 32];
    if (job->path == CK_QPATH_SCALAR) {
        for (int t = t0; t < t1; t++) {
            int n = t / job->tiles_per_image, p0 = (t % job->tiles_per_image) * tile, mr = ck_min(tile, out_pixels - p0);
            for (int j = j0; j < j1; j++) {
                ck_qtile_scalar(job, n, p0, mr, group, j, acc);
                ck_q_store_scalar(acc, 32, mr, ck_min(CK_QNR, g->group_out - j * CK_QNR), (size_t)n * out_pixels + p0,
                                  group * g->group_out + j * CK_QNR, &job->out);
            }
        }
        return;
    }
#ifdef CK_X86
    const uint8_t **rows = ck_qconv_row_buffer((size_t)job->taps * tile);
    size_t panel_bytes = job->quads * CK_QPANEL_QUAD;
    // AVX2: this task's panels widened to s16 once, then every tile of the task reads them (from L2); VNNI with a
    // channel count that is not a multiple of 4: re-laid per tap. Otherwise the packed panels as they are.
    const int8_t *own = job->w + ((size_t)group * job->panels + j0) * panel_bytes;
    size_t own_panel = panel_bytes;
    int16_t *wide = NULL;
    if (job->path == CK_QPATH_AVX2) {
        own_panel = 2 * (size_t)job->taps * job->group_in2 * CK_QNR;
        wide = ck_qconv_scratch(&ck_qconv_panels, &ck_qconv_panels_bytes, (size_t)(j1 - j0) * own_panel);
        for (int j = j0; j < j1; j++)
            ck_qconv_widen_panel(job, job->w + ((size_t)group * job->panels + j) * panel_bytes,
                                 (int16_t *)(void *)((uint8_t *)wide + (size_t)(j - j0) * own_panel));
    } else if (job->padded) {
        own_panel = (size_t)job->taps * job->group_in4 * CK_QNR;
        int8_t *relaid = ck_qconv_scratch(&ck_qconv_panels, &ck_qconv_panels_bytes, (size_t)(j1 - j0) * own_panel);
        for (int j = j0; j < j1; j++)
            ck_qconv_pad_panel(job, job->w + ((size_t)group * job->panels + j) * panel_bytes, relaid + (size_t)(j - j0) * own_panel);
        own = relaid;
    }
    size_t kq = (size_t)(job->padded ? job->group_in4 : g->group_in) / 4;
    for (int t = t0; t < t1; t++) {
        int n = t / job->tiles_per_image, p0 = (t % job->tiles_per_image) * tile;
        int mr = ck_min(tile, out_pixels - p0);
        size_t pixel0 = (size_t)n * out_pixels + p0;
        ck_qconv_tile_rows(job, n, p0, mr, group, rows);
        for (int j = j0; j < j1;) {
            int col0 = group * g->group_out + j * CK_QNR;
            if (job->path == CK_QPATH_VNNI) {
                const int8_t *b = own + (size_t)(j - j0) * own_panel;
                int pair = j + 1 < j1;
                ck_qigemm_vnni(job->taps, kq, rows, b, pair ? b + own_panel : NULL, acc);
                ck_q_store_avx512(acc, 32, mr, ck_min(pair ? 2 * CK_QNR : CK_QNR, g->group_out - j * CK_QNR), pixel0, col0, &job->out);
                j += pair ? 2 : 1;
            } else {
                const int16_t *b = (const int16_t *)(const void *)((const uint8_t *)wide + (size_t)(j - j0) * own_panel);
                for (int r0 = 0; r0 < mr; r0 += 4) ck_qigemm_avx2(job->taps, job->group_in2 / 2, rows, tile, r0, b, acc);
                ck_q_store_avx2(acc, 32, mr, ck_min(CK_QNR, g->group_out - j * CK_QNR), pixel0, col0, &job->out);
                j++;
            }
        }
    }
#endif
}

void ck_qconv2d_nhwc_with(const ck_conv_nhwc *geometry, const uint8_t *x, const void *packed_w, const ck_qepilogue *epilogue,
                          void *y, ck_isa isa, int threads) {
    ck_qconv_job job;
    memset(&job, 0, sizeof job);
    job.g = *geometry;
    const ck_conv_nhwc *g = &job.g;
    if (g->batch <= 0 || g->out_h <= 0 || g->out_w <= 0 || g->groups <= 0 || g->group_out <= 0) return;
    job.x = x;
    job.w = packed_w;
    job.x_zero_point = epilogue->x_zero_point;
    job.path = ck_isa_avx512_vnni(isa) ? CK_QPATH_VNNI : ck_isa_avx2(isa) ? CK_QPATH_AVX2 : CK_QPATH_SCALAR;
    int gi = g->group_in > 0 ? g->group_in : 0;
    job.taps = g->kernel_h * g->kernel_w;
    job.panels = ck_ceil_div(g->group_out, CK_QNR);
    job.quads = ((size_t)job.taps * (size_t)gi + 3) / 4;
    job.padded = job.path == CK_QPATH_VNNI && gi % 4 != 0;
    job.group_in2 = gi + gi % 2;
    job.group_in4 = (gi + 3) / 4 * 4;
    job.mr = job.path == CK_QPATH_VNNI ? CK_QMR_VNNI : CK_QMR_AVX2;
    job.tiles_per_image = ck_ceil_div(g->out_h * g->out_w, job.mr);
    job.tiles = g->batch * job.tiles_per_image;
    if (threads <= 0) threads = ck_num_threads();
    int channels = g->groups * g->group_out;
    double work = (double)job.tiles * job.mr * channels * (double)job.taps * gi;
    if (work < CK_Q_PARALLEL_MIN_WORK) threads = 1;

    // What the tile rows read: the input itself (VNNI), or (AVX2) x − x_zp widened to s16 on the calling thread's
    // buffer, whose padding taps then read zeros.
    size_t pixels = (size_t)g->batch * g->in_h * g->in_w;
    uint8_t stack_pad[CK_QCONV_STACK_PAD];
    uint8_t *heap_pad = NULL;
    size_t pad_bytes = job.path == CK_QPATH_AVX2 ? 2 * (size_t)job.group_in2 : (size_t)job.group_in4;
    if (pad_bytes == 0) pad_bytes = 4;
    if (pad_bytes <= sizeof stack_pad) {
        job.pad = stack_pad;
    } else {
        heap_pad = malloc(pad_bytes);
        if (!heap_pad) abort();
        job.pad = heap_pad;
    }
    memset((void *)job.pad, job.path == CK_QPATH_AVX2 ? 0 : (int)job.x_zero_point, pad_bytes);
    job.src = x;
    job.src_pixel = g->x_stride;
    job.src_group = gi;
#ifdef CK_X86
    if (job.path == CK_QPATH_AVX2 || job.padded) {
        int avx2 = job.path == CK_QPATH_AVX2;
        size_t pixel_bytes = avx2 ? 2 * (size_t)g->groups * job.group_in2 : (size_t)g->groups * job.group_in4;
        ck_qconv_widen_input_job widen = {&job, ck_qconv_scratch(&ck_qconv_input, &ck_qconv_input_bytes, pixels * pixel_bytes), pixels, 0};
        // Chunks of about 64 KB of output; on the pool only when the convolution itself is.
        widen.chunk = (64 * 1024) / (pixel_bytes + 1) + 1;
        int chunks = (int)((pixels + widen.chunk - 1) / widen.chunk);
        void (*body)(void *, int) = avx2 ? ck_qconv_widen_input : ck_qconv_pad_input;
        if (threads > 1 && chunks > 1) ck_parallel_run(threads, chunks, body, &widen);
        else for (int i = 0; i < chunks; i++) body(&widen, i);
        job.src = widen.dst;
        job.src_pixel = (ptrdiff_t)pixel_bytes;
        job.src_group = avx2 ? 2 * (ptrdiff_t)job.group_in2 : job.group_in4;
    }
#endif
    if (job.taps <= CK_QCONV_MAX_TAP_OFFSETS) {
        for (int i = 0; i < g->kernel_h; i++)
            for (int j = 0; j < g->kernel_w; j++)
                job.tap_offset_storage[i * g->kernel_w + j] =
                    ((ptrdiff_t)i * g->dilation_h * g->in_w + (ptrdiff_t)j * g->dilation_w) * job.src_pixel;
        job.tap_offsets = job.tap_offset_storage;
    }

    // The path's bias: the caller's for the scalar reference and for AVX2 (whose inputs have x_zp subtracted); with
    // −x_zp·Σw folded in for VNNI (Σ (x − x_zp)·w = Σ x·w − x_zp·Σw). Wrapping arithmetic, as the sums.
    const int32_t *sums = (const int32_t *)(const void *)(job.w + (size_t)g->groups * job.panels * job.quads * CK_QPANEL_QUAD);
    int32_t *bias = malloc((size_t)channels * sizeof(int32_t));
    if (!bias) abort();
    uint32_t fold = job.path == CK_QPATH_VNNI ? (uint32_t)0 - (uint32_t)job.x_zero_point : 0;
    for (int c = 0; c < channels; c++)
        bias[c] = (int32_t)((epilogue->bias ? (uint32_t)epilogue->bias[c] : 0) + fold * (uint32_t)sums[c]);
    job.out = (ck_qout){bias, epilogue->multiplier, epilogue->shift, epilogue->scale, epilogue->y_zero_point,
                        epilogue->clamp_min, epilogue->clamp_max, y, g->y_stride};

    // Tasks are (panel block, tile block) pairs chosen as conv_nhwc.c does: the split that reads the least weights
    // and input in all, panel blocks within CK_QCONV_B_BLOCK_BYTES (of the s16 panels on the AVX2 path).
    int wanted = threads > 1 ? threads * CK_QCONV_TASKS_PER_THREAD : 1;
    size_t panel_bytes = job.path == CK_QPATH_AVX2 ? 2 * (size_t)job.taps * job.group_in2 * CK_QNR
                         : job.padded             ? (size_t)job.taps * job.group_in4 * CK_QNR
                                                  : job.quads * CK_QPANEL_QUAD;
    if (panel_bytes == 0) panel_bytes = CK_QPANEL_QUAD;
    int step = job.path == CK_QPATH_VNNI ? 2 : 1;
    int most = (int)(CK_QCONV_B_BLOCK_BYTES / panel_bytes);
    if (most < step) most = step;
    most -= most % step;
    double weight_bytes = (double)panel_bytes * job.panels, input_bytes = (double)job.tiles * job.mr * panel_bytes / CK_QNR;
    double best = -1;
    for (int block = ck_min(most, job.panels + job.panels % step); block >= step; block -= step) {
        int panel_blocks = ck_ceil_div(job.panels, block);
        int tile_blocks = ck_ceil_div(wanted, g->groups * panel_blocks);
        if (tile_blocks > job.tiles) tile_blocks = job.tiles;
        if (tile_blocks < 1) tile_blocks = 1;
        int tile_block = ck_ceil_div(job.tiles, tile_blocks);
        tile_blocks = ck_ceil_div(job.tiles, tile_block);
        double cost = weight_bytes * tile_blocks + input_bytes * panel_blocks;
        if (best < 0 || cost < best) {
            best = cost;
            job.panel_block = block;
            job.tile_block = tile_block;
        }
        if (g->groups * panel_blocks >= wanted) break;
    }
    if (job.panel_block > job.panels) job.panel_block = job.panels;
    job.panel_blocks = ck_ceil_div(job.panels, job.panel_block);
    job.tile_blocks = ck_ceil_div(job.tiles, job.tile_block);
    int tasks = g->groups * job.panel_blocks * job.tile_blocks;
    if (threads > 1) ck_parallel_run(threads, tasks, ck_qconv_task, &job);
    else for (int i = 0; i < tasks; i++) ck_qconv_task(&job, i);
    free(heap_pad);
    free(bias);
}

void ck_qconv2d_nhwc(const ck_conv_nhwc *geometry, const uint8_t *x, const void *packed_w, const ck_qepilogue *epilogue, void *y) {
    ck_qconv2d_nhwc_with(geometry, x, packed_w, epilogue, y, CK_ISA_AUTO, 0);
}

// MARK: - Quantized Add

void ck_qadd_params_make(float a_scale, int a_zp, float b_scale, int b_zp, float y_scale, int y_zp, ck_qadd_params *out) {
    memset(out, 0, sizeof *out);
    out->a_zero_point = a_zp;
    out->b_zero_point = b_zp;
    out->y_zero_point = y_zp;
    out->left_shift = 20;
    double twice_max = 2.0 * (a_scale > b_scale ? (double)a_scale : (double)b_scale);
    int shift;
    ck_quantize_multiplier((double)a_scale / twice_max, &out->a_multiplier, &shift);
    out->a_shift = shift;
    ck_quantize_multiplier((double)b_scale / twice_max, &out->b_multiplier, &shift);
    out->b_shift = shift;
    ck_quantize_multiplier(twice_max / ((double)(1 << 20) * (double)y_scale), &out->y_multiplier, &shift);
    out->y_shift = shift;
    out->clamp_min = 0;
    out->clamp_max = 255;
}

static inline uint8_t ck_qadd1(uint8_t a, uint8_t b, const ck_qadd_params *p) {
    int left = ck_q_clamp_shift(p->left_shift);
    int32_t av = (int32_t)((uint32_t)((int32_t)a - p->a_zero_point) << left);
    int32_t bv = (int32_t)((uint32_t)((int32_t)b - p->b_zero_point) << left);
    int32_t sum = (int32_t)((uint32_t)ck_q_round_fixed(av, p->a_multiplier, p->a_shift) +
                            (uint32_t)ck_q_round_fixed(bv, p->b_multiplier, p->b_shift));
    int32_t v = (int32_t)((uint32_t)ck_q_round_fixed(sum, p->y_multiplier, p->y_shift) + (uint32_t)p->y_zero_point);
    v = v < p->clamp_min ? p->clamp_min : v;
    v = v > p->clamp_max ? p->clamp_max : v;
    return (uint8_t)v;
}

#ifdef CK_X86
/// ck_q8_cols of one multiplier and shift for every lane.
CK_AVX2 static inline ck_q8_cols ck_q8_uniform(int32_t multiplier, int32_t shift) {
    int32_t m[8], s[8], z[8] = {0};
    for (int i = 0; i < 8; i++) m[i] = multiplier, s[i] = shift;
    ck_qout out = {z, m, s, NULL, 0, 0, 0, NULL, 0};
    return ck_q8_columns(&out, 0, 8);
}

/// Elements i0 …< i1, 8 at a time, the rest scalar.
CK_AVX2 static void ck_qadd_avx2(size_t i0, size_t i1, const uint8_t *a, const uint8_t *b, const ck_qadd_params *p, uint8_t *y) {
    ck_q8_cols ca = ck_q8_uniform(p->a_multiplier, p->a_shift), cb = ck_q8_uniform(p->b_multiplier, p->b_shift);
    ck_q8_cols cy = ck_q8_uniform(p->y_multiplier, p->y_shift);
    __m128i left = _mm_cvtsi32_si128(ck_q_clamp_shift(p->left_shift));
    __m256i za = _mm256_set1_epi32(p->a_zero_point), zb = _mm256_set1_epi32(p->b_zero_point), zy = _mm256_set1_epi32(p->y_zero_point);
    __m256i lo = _mm256_set1_epi32(p->clamp_min), hi = _mm256_set1_epi32(p->clamp_max);
    size_t i = i0;
    for (; i + 8 <= i1; i += 8) {
        __m256i av = _mm256_sll_epi32(_mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(a + i))), za), left);
        __m256i bv = _mm256_sll_epi32(_mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(b + i))), zb), left);
        __m256i sum = _mm256_add_epi32(ck_q8_round_fixed(av, &ca), ck_q8_round_fixed(bv, &cb));
        __m256i v = _mm256_add_epi32(ck_q8_round_fixed(sum, &cy), zy);
        v = _mm256_min_epi32(_mm256_max_epi32(v, lo), hi);
        __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        _mm_storel_epi64((__m128i *)(y + i), _mm_packus_epi16(words, words));
    }
    for (; i < i1; i++) y[i] = ck_qadd1(a[i], b[i], p);
}
#endif

/// Elements per pool task of a quantized Add.
#define CK_QADD_CHUNK (64 * 1024)

typedef struct {
    size_t n;
    const uint8_t *a, *b;
    const ck_qadd_params *p;
    uint8_t *y;
    int avx2;
} ck_qadd_job;

static void ck_qadd_task(void *context, int index) {
    const ck_qadd_job *job = context;
    size_t i0 = (size_t)index * CK_QADD_CHUNK, i1 = i0 + CK_QADD_CHUNK < job->n ? i0 + CK_QADD_CHUNK : job->n;
#ifdef CK_X86
    if (job->avx2) {
        ck_qadd_avx2(i0, i1, job->a, job->b, job->p, job->y);
        return;
    }
#endif
    for (size_t i = i0; i < i1; i++) job->y[i] = ck_qadd1(job->a[i], job->b[i], job->p);
}

void ck_qadd_u8_with(size_t n, const uint8_t *a, const uint8_t *b, const ck_qadd_params *params, uint8_t *y, ck_isa isa,
                     int threads) {
    if (n == 0) return;
    ck_qadd_job job = {n, a, b, params, y, ck_isa_avx2(isa)};
    size_t chunks = (n + CK_QADD_CHUNK - 1) / CK_QADD_CHUNK;
    if (threads <= 0) threads = ck_num_threads();
    if (chunks < 4 || chunks > (size_t)1 << 30) threads = 1;
    if (threads > 1) ck_parallel_run(threads, (int)chunks, ck_qadd_task, &job);
    else for (size_t i = 0; i < chunks; i++) ck_qadd_task(&job, (int)i);
}

void ck_qadd_u8(size_t n, const uint8_t *a, const uint8_t *b, const ck_qadd_params *params, uint8_t *y) {
    ck_qadd_u8_with(n, a, b, params, y, CK_ISA_AUTO, 0);
}
