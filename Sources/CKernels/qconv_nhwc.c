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
//   weight loads, 12 broadcasts, 24 vpdpbusd), the float AVX-512 tile's shape, with 4- and 1-row forms for tiles
//   with that few live rows (a Gemm with small M); −x_zp·Σw folds into the bias. Channel counts that are not a
//   multiple of 4 pad each pixel's channels with x_zp in a per-call copy of the input and re-lay each task's panels
//   per tap, so every tile still reads its pixels through pointers.
// - Row mode (both vector paths, one group with fewer than 16 channels and kernel_w > 1: stems): the per-call copy
//   makes the padding explicit, so one kernel row's taps are kernel_w·group_in consecutive channels, read as one
//   tap (resnet50's 7×7 stem: 7 runs of 24 channels instead of 49 of 4).
// - AVX2: x − x_zp widened to s16 once per call (padding taps read zeros), each task's panels widened to s16 once
//   (from the stored int8 layout; a task's block of panels stays in L2), a 4 × 16 register tile run twice per
//   8-row tile so the requantization's per-column constants serve 8 rows (a 1-row pass for a last row alone).
// - The requantization (ck_quant.h) is about 16 vector operations per 16 outputs in its folded form (one rounding
//   constant; 20 for TFLite's two roundings written out, which channels with a left shift or sums past the folded
//   form's bound take), as long as the sums of a 1×1 layer with 64 input channels: short-K layers run at half the
//   rate of long ones (docs/benchmarks.md).
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

/// Input channels per group below which the vector paths run a convolution with kernel_w > 1 (one group, no
/// horizontal dilation) in row mode: the input copied with its padding made explicit, so that the kernel_w taps of
/// one kernel row are kernel_w·group_in consecutive channels and become a single tap. A 7×7 stem on 3 channels then
/// reads 7 runs of 24 channels (21 rounded to quads) instead of 49 of 4 (3 padded), between pointer switches.
#ifndef CK_QCONV_ROW_MODE_CHANNELS
#define CK_QCONV_ROW_MODE_CHANNELS 16
#endif

typedef struct {
    ck_conv_nhwc g;
    const uint8_t *x;
    const int8_t *w;       // packed panels
    ck_qout out;           // bias: the path's (folded) bias
    int32_t x_zero_point;
    ck_qpath path;
    int taps, panels, mr, tiles_per_image, tiles;
    size_t quads;          // Kq: quads of the whole K = taps·group_in (the stored layout)
    int panel_block, tile_block, panel_blocks, tile_blocks;
    // What the vector paths' tile rows read. The view is the geometry over `src`: the input itself (VNNI, group_in a
    // multiple of 4), or a copy (AVX2: x − x_zp as s16; VNNI: channels padded with x_zp to quads); in row mode the
    // copy holds the padding explicitly and the view has kernel_w = 1, no padding. Each view tap reads kv elements
    // (group_in, or kernel_w·group_in in row mode) from the tap's pointer, rounded up to k_round (quads for VNNI,
    // pairs for AVX2) against zero weights.
    ck_conv_nhwc view;
    int row_mode, copied, relaid;  // relaid: VNNI tasks re-lay their panels per view tap (kv not a multiple of 4)
    int view_taps, kv, k_round;
    const uint8_t *src;
    ptrdiff_t src_pixel, src_group;  // bytes between pixels and between groups' first elements
    const uint8_t *pad;    // what padding taps read: k_round elements of x_zero_point (VNNI) or zeros (AVX2)
    const ptrdiff_t *tap_offsets;  // each view tap's byte offset from its window's origin pixel, or NULL
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

/// Per-thread room for a task's widened or re-laid panels, and the calling thread's copy of the input, grown as
/// needed and kept (about twice the largest input; about CK_QCONV_B_BLOCK_BYTES of panels).
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

/// The input pointers of one tile (tile = job->mr rows) over the view: for each view tap and row, the group's
/// first element at that tap, or the padding row. Rows past mr repeat the last live one.
static void ck_qconv_tile_rows(const ck_qconv_job *job, int n, int p0, int mr, int group, const uint8_t **rows) {
    const ck_conv_nhwc *g = &job->view;
    int tile = job->mr;
    ptrdiff_t xs = job->src_pixel;
    const uint8_t *image = job->src + (size_t)n * g->in_h * g->in_w * xs + (size_t)group * job->src_group;
    if (job->view_taps == 1 && g->stride_h == 1 && g->stride_w == 1 && g->pad_top == 0 && g->pad_left == 0 &&
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
        for (int t = 0; t < job->view_taps; t++, rows += tile)
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

/// Element k of output column col in a stored panel.
static inline int8_t ck_qconv_panel_at(const int8_t *panel, size_t k, int col) {
    return panel[(k / 4) * CK_QPANEL_QUAD + (size_t)col * 4 + k % 4];
}

#ifdef CK_X86
/// x − zp as s16, 16 channels at a time; returns the channels done.
CK_AVX2 static size_t ck_qconv_widen16_avx2(const uint8_t *x, int16_t *d, size_t n, int zp) {
    __m256i z = _mm256_set1_epi16((short)zp);
    size_t c = 0;
    for (; c + 16 <= n; c += 16)
        _mm256_storeu_si256((__m256i *)(d + c), _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(x + c))), z));
    return c;
}
#define ck_qconv_widen16 ck_qconv_widen16_avx2
#endif

/// The copy of the input the view reads: per view pixel and group, the group's channels (x − x_zp as s16 on AVX2,
/// u8 on VNNI), or the fill (0 / x_zp) where the pixel is padding (row mode), then fill up to the group's stride.
/// One task per view row; a dense run of pixels (one group of exactly its channels, pixels back to back) converts
/// as one span.
typedef struct {
    const ck_qconv_job *job;
    void *dst;
    int group_elements;  // elements per group in the copy
} ck_qconv_copy_job;

/// n elements of x into the copy at d (element `wide`: s16 x − zp, else u8), then `fill` elements of the fill.
static inline void ck_qconv_copy_span(const uint8_t *x, void *d, size_t n, size_t fill, int wide, int zp) {
    if (wide) {
        int16_t *w = d;
        size_t c = 0;
#ifdef CK_X86
        c = ck_qconv_widen16(x, w, n, zp);
#endif
        for (; c < n; c++) w[c] = (int16_t)(x[c] - zp);
        memset(w + n, 0, fill * sizeof(int16_t));
    } else {
        uint8_t *u = d;
        if (n) memcpy(u, x, n);
        memset(u + n, zp, fill);
    }
}

static void ck_qconv_copy_input(void *context, int index) {
    const ck_qconv_copy_job *c = context;
    const ck_qconv_job *job = c->job;
    const ck_conv_nhwc *g = &job->g, *v = &job->view;
    int gi = g->group_in, ge = c->group_elements, wide = job->path == CK_QPATH_AVX2, zp = job->x_zero_point;
    size_t element = wide ? 2 : 1, pixel_elements = (size_t)g->groups * ge;
    int n = index / v->in_h, vh = index % v->in_h;
    int ih = job->row_mode ? vh - g->pad_top : vh;
    uint8_t *d = (uint8_t *)c->dst + (size_t)index * v->in_w * pixel_elements * element;
    int left = job->row_mode ? ck_min(g->pad_left, v->in_w) : 0;
    int count = (unsigned)ih < (unsigned)g->in_h ? ck_max(0, ck_min(g->in_w, v->in_w - left)) : 0;
    ck_qconv_copy_span(NULL, d, 0, (size_t)left * pixel_elements, wide, zp);
    d += (size_t)left * pixel_elements * element;
    const uint8_t *x = job->x + ((size_t)n * g->in_h + (size_t)(count ? ih : 0)) * g->in_w * g->x_stride;
    if (count && ge == gi && g->x_stride == (ptrdiff_t)pixel_elements) {
        ck_qconv_copy_span(x, d, (size_t)count * pixel_elements, 0, wide, zp);
    } else {
        for (int p = 0; p < count; p++)
            for (int grp = 0; grp < g->groups; grp++)
                ck_qconv_copy_span(x + (size_t)p * g->x_stride + (size_t)grp * gi, d + ((size_t)p * pixel_elements + (size_t)grp * ge) * element,
                                   (size_t)gi, (size_t)(ge - gi), wide, zp);
    }
    d += (size_t)count * pixel_elements * element;
    ck_qconv_copy_span(NULL, d, 0, (size_t)(v->in_w - left - count) * pixel_elements, wide, zp);
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

/// The 1 × 16 form of ck_qigemm_avx2, for a last row alone (a Gemm with one row, the last pixel of an image).
CK_AVX2 static void ck_qigemm_avx2_1(int taps, int pairs, const uint8_t *const *rows, int tile, int row0, const int16_t *b,
                                     int32_t *acc) {
    __m256i c0 = _mm256_setzero_si256(), c1 = _mm256_setzero_si256(), d0 = _mm256_setzero_si256(), d1 = _mm256_setzero_si256();
    rows += row0;
    for (int t = 0; t < taps; t++, rows += tile) {
        const uint8_t *a = rows[0];
        int p = 0;
        // Two accumulator pairs, so that consecutive pairs of channels do not wait on each other's sums.
        for (; p + 2 <= pairs; p += 2, b += 4 * CK_QNR) {
            __m256i x = _mm256_set1_epi32(ck_q_load32(a + 4 * p)), z = _mm256_set1_epi32(ck_q_load32(a + 4 * p + 4));
            c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(x, _mm256_loadu_si256((const __m256i *)b)));
            c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(x, _mm256_loadu_si256((const __m256i *)(b + 16))));
            d0 = _mm256_add_epi32(d0, _mm256_madd_epi16(z, _mm256_loadu_si256((const __m256i *)(b + 32))));
            d1 = _mm256_add_epi32(d1, _mm256_madd_epi16(z, _mm256_loadu_si256((const __m256i *)(b + 48))));
        }
        for (; p < pairs; p++, b += 2 * CK_QNR) {
            __m256i x = _mm256_set1_epi32(ck_q_load32(a + 4 * p));
            c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(x, _mm256_loadu_si256((const __m256i *)b)));
            c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(x, _mm256_loadu_si256((const __m256i *)(b + 16))));
        }
    }
    acc += (size_t)row0 * 32;
    _mm256_storeu_si256((__m256i *)acc, _mm256_add_epi32(c0, d0));
    _mm256_storeu_si256((__m256i *)(acc + 8), _mm256_add_epi32(c1, d1));
}

/// A task's panel in the AVX2 kernel's s16 form over the view: per view tap i, k_round / 2 pairs × 16 columns × 2,
/// dst[((i·pairs + k/2)·16 + col)·2 + k%2] = element i·kv + k of the stored panel, 0 for k ≥ kv.
CK_AVX2 static void ck_qconv_widen_panel(const ck_qconv_job *job, const int8_t *panel, int16_t *dst) {
    int kv = job->kv, pairs = job->k_round / 2;
    if (kv % 4 == 0) {
        // Then stored quad q is pairs 2q and 2q + 1 in both layouts (view taps start at multiples of 4).
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
    for (int i = 0; i < job->view_taps; i++)
        for (int k = 0; k < 2 * pairs; k++)
            for (int col = 0; col < CK_QNR; col++)
                dst[(((size_t)i * pairs + k / 2) * CK_QNR + col) * 2 + k % 2] =
                    k < kv ? ck_qconv_panel_at(panel, (size_t)i * kv + (size_t)k, col) : 0;
}
#endif

/// A task's panel re-laid for VNNI over the view when kv is not a multiple of 4: per view tap i, k_round / 4 quads,
/// dst[((i·q4 + k/4)·16 + col)·4 + k%4] = element i·kv + k of the stored panel, 0 for k ≥ kv.
static void ck_qconv_relay_panel(const ck_qconv_job *job, const int8_t *panel, int8_t *dst) {
    int kv = job->kv, q4 = job->k_round / 4;
    for (int i = 0; i < job->view_taps; i++)
        for (int k = 0; k < 4 * q4; k++)
            for (int col = 0; col < CK_QNR; col++)
                dst[(((size_t)i * q4 + k / 4) * CK_QNR + col) * 4 + k % 4] =
                    k < kv ? ck_qconv_panel_at(panel, (size_t)i * kv + (size_t)k, col) : 0;
}

#ifdef CK_X86
// MARK: - AVX-512 VNNI

/// The R × 32 tile over two packed panels (b1 NULL: one panel, R × 16): acc[r·32 + col] = Σ x·w, for R = 12 (the
/// tile), 4 and 1 (tiles with that few live rows: the last of an image, a Gemm with M < 12 — a 12-row tile would
/// compute its one row 12 times).
#define CK_QVNNI_KERNEL(NAME, ROWS, R)                                                                                    \
    CK_AVX512_VNNI static void NAME(int taps, size_t kq, const uint8_t *const *rows, const int8_t *b0, const int8_t *b1, \
                                    int32_t *acc) {                                                                      \
        ROWS(CK_QDECLARE)                                                                                                \
        if (b1) {                                                                                                        \
            for (int t = 0; t < taps; t++, rows += CK_QMR_VNNI) {                                                        \
                ROWS(CK_QPOINTER)                                                                                        \
                for (size_t q = 0; q < kq; q++, b0 += CK_QPANEL_QUAD, b1 += CK_QPANEL_QUAD) {                            \
                    __m512i w0 = _mm512_loadu_si512(b0), w1 = _mm512_loadu_si512(b1);                                    \
                    ROWS(CK_QSTEP2)                                                                                      \
                }                                                                                                        \
            }                                                                                                            \
        } else {                                                                                                         \
            for (int t = 0; t < taps; t++, rows += CK_QMR_VNNI) {                                                        \
                ROWS(CK_QPOINTER)                                                                                        \
                for (size_t q = 0; q < kq; q++, b0 += CK_QPANEL_QUAD) {                                                  \
                    __m512i w0 = _mm512_loadu_si512(b0);                                                                 \
                    ROWS(CK_QSTEP1)                                                                                      \
                }                                                                                                        \
            }                                                                                                            \
        }                                                                                                                \
        ROWS(CK_QSTORE)                                                                                                  \
    }
#define CK_QDECLARE(r) __m512i c##r##0 = _mm512_setzero_si512(), c##r##1 = _mm512_setzero_si512();
#define CK_QPOINTER(r) const uint8_t *a##r = rows[r];
#define CK_QSTEP2(r) { __m512i x = _mm512_set1_epi32(ck_q_load32(a##r + 4 * q)); c##r##0 = _mm512_dpbusd_epi32(c##r##0, x, w0); c##r##1 = _mm512_dpbusd_epi32(c##r##1, x, w1); }
#define CK_QSTEP1(r) c##r##0 = _mm512_dpbusd_epi32(c##r##0, _mm512_set1_epi32(ck_q_load32(a##r + 4 * q)), w0);
#define CK_QSTORE(r) _mm512_storeu_si512(acc + r * 32, c##r##0); _mm512_storeu_si512(acc + r * 32 + 16, c##r##1);
#define CK_QROWS12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define CK_QROWS4(X) X(0) X(1) X(2) X(3)
#define CK_QROWS1(X) X(0)
CK_QVNNI_KERNEL(ck_qigemm_vnni12, CK_QROWS12, 12)
CK_QVNNI_KERNEL(ck_qigemm_vnni4, CK_QROWS4, 4)
CK_QVNNI_KERNEL(ck_qigemm_vnni1, CK_QROWS1, 1)
#undef CK_QVNNI_KERNEL
#undef CK_QDECLARE
#undef CK_QPOINTER
#undef CK_QSTEP2
#undef CK_QSTEP1
#undef CK_QSTORE
#undef CK_QROWS12
#undef CK_QROWS4
#undef CK_QROWS1

CK_AVX512_VNNI static void ck_qigemm_vnni(int mr, int taps, size_t kq, const uint8_t *const *rows, const int8_t *b0,
                                          const int8_t *b1, int32_t *acc) {
    if (mr == 1) ck_qigemm_vnni1(taps, kq, rows, b0, b1, acc);
    else if (mr <= 4) ck_qigemm_vnni4(taps, kq, rows, b0, b1, acc);
    else ck_qigemm_vnni12(taps, kq, rows, b0, b1, acc);
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
    const uint8_t **rows = ck_qconv_row_buffer((size_t)job->view_taps * tile);
    size_t panel_bytes = job->quads * CK_QPANEL_QUAD;
    // AVX2: this task's panels widened to s16 once, then every tile of the task reads them (from L2); VNNI with kv
    // not a multiple of 4: re-laid per view tap. Otherwise the stored panels as they are.
    const int8_t *own = job->w + ((size_t)group * job->panels + j0) * panel_bytes;
    size_t own_panel = panel_bytes;
    const int16_t *wide = NULL;
    if (job->path == CK_QPATH_AVX2) {
        own_panel = 2 * (size_t)job->view_taps * job->k_round * CK_QNR;
        uint8_t *buffer = ck_qconv_scratch(&ck_qconv_panels, &ck_qconv_panels_bytes, (size_t)(j1 - j0) * own_panel);
        for (int j = j0; j < j1; j++)
            ck_qconv_widen_panel(job, job->w + ((size_t)group * job->panels + j) * panel_bytes,
                                 (int16_t *)(void *)(buffer + (size_t)(j - j0) * own_panel));
        wide = (const int16_t *)(const void *)buffer;
    } else if (job->relaid) {
        own_panel = (size_t)job->view_taps * job->k_round * CK_QNR;
        int8_t *relaid = ck_qconv_scratch(&ck_qconv_panels, &ck_qconv_panels_bytes, (size_t)(j1 - j0) * own_panel);
        for (int j = j0; j < j1; j++)
            ck_qconv_relay_panel(job, job->w + ((size_t)group * job->panels + j) * panel_bytes, relaid + (size_t)(j - j0) * own_panel);
        own = relaid;
    }
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
                ck_qigemm_vnni(mr, job->view_taps, (size_t)job->k_round / 4, rows, b, pair ? b + own_panel : NULL, acc);
                ck_q_store_avx512(acc, 32, mr, ck_min(pair ? 2 * CK_QNR : CK_QNR, g->group_out - j * CK_QNR), pixel0, col0, &job->out);
                j += pair ? 2 : 1;
            } else {
                const int16_t *b = (const int16_t *)(const void *)((const uint8_t *)wide + (size_t)(j - j0) * own_panel);
                for (int r0 = 0; r0 < mr; r0 += 4) {
                    if (mr - r0 == 1) ck_qigemm_avx2_1(job->view_taps, job->k_round / 2, rows, tile, r0, b, acc);
                    else ck_qigemm_avx2(job->view_taps, job->k_round / 2, rows, tile, r0, b, acc);
                }
                ck_q_store_avx2(acc, 32, mr, ck_min(CK_QNR, g->group_out - j * CK_QNR), pixel0, col0, &job->out);
                j++;
            }
        }
    }
#endif
}

static int ck_qconv_path(ck_isa isa) {
    return ck_isa_avx512_vnni(isa) ? CK_QPATH_VNNI : ck_isa_avx2(isa) ? CK_QPATH_AVX2 : CK_QPATH_SCALAR;
}

/// The bias for `path`: the caller's for the scalar reference and for AVX2 (whose inputs have x_zp subtracted); with
/// −x_zp·Σw folded in for VNNI (Σ (x − x_zp)·w = Σ x·w − x_zp·Σw; padding reads x_zp), wrapping arithmetic. Then
/// the folded requantization's plan (ck_quant.h), from the caller's bias.
static ck_qprepared *ck_qconv_derive(const ck_conv_nhwc *g, const void *packed_w, const ck_qepilogue *e, int path) {
    ck_qprepared *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    int gi = g->group_in > 0 ? g->group_in : 0;
    size_t quads = ((size_t)g->kernel_h * g->kernel_w * (size_t)gi + 3) / 4;
    const int32_t *sums = (const int32_t *)(const void *)((const int8_t *)packed_w +
                                                         (size_t)g->groups * ck_ceil_div(g->group_out, CK_QNR) * quads * CK_QPANEL_QUAD);
    *p = (ck_qprepared){.depthwise = 0, .path = path, .channels = g->groups * g->group_out,
                        .k = (int64_t)g->kernel_h * g->kernel_w * gi, .x_zero_point = e->x_zero_point};
    uint32_t fold = path == CK_QPATH_VNNI ? (uint32_t)0 - (uint32_t)e->x_zero_point : 0;
    if (!ck_qprepared_bias(p, e, sums, fold)) {
        free(p);
        return NULL;
    }
    return p;
}

void *ck_qconv_prepare(const ck_conv_nhwc *geometry, const void *packed_w, const ck_qepilogue *epilogue, int depthwise) {
    if (geometry->groups <= 0 || geometry->group_out <= 0 || geometry->kernel_h <= 0 || geometry->kernel_w <= 0) return NULL;
    if (depthwise) return ck_qdw_prepare(geometry, packed_w, epilogue, CK_ISA_AUTO);
    return ck_qconv_derive(geometry, packed_w, epilogue, ck_qconv_path(CK_ISA_AUTO));
}

void ck_qconv_prepared_free(void *prepared) { ck_qprepared_release(prepared); }

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
    job.path = ck_qconv_path(isa);
    int gi = g->group_in > 0 ? g->group_in : 0;
    job.taps = g->kernel_h * g->kernel_w;
    job.panels = ck_ceil_div(g->group_out, CK_QNR);
    job.quads = ((size_t)job.taps * (size_t)gi + 3) / 4;
    job.mr = job.path == CK_QPATH_VNNI ? CK_QMR_VNNI : CK_QMR_AVX2;
    job.tiles_per_image = ck_ceil_div(g->out_h * g->out_w, job.mr);
    job.tiles = g->batch * job.tiles_per_image;
    if (threads <= 0) threads = ck_num_threads();
    int channels = g->groups * g->group_out;
    double work = (double)job.tiles * job.mr * channels * (double)job.taps * gi;
    if (work < CK_Q_PARALLEL_MIN_WORK) threads = 1;

    // The view the vector paths read (see ck_qconv_job).
    int vnni = job.path == CK_QPATH_VNNI;
    job.view = *g;
    job.row_mode = job.path != CK_QPATH_SCALAR && g->groups == 1 && g->kernel_w > 1 && g->dilation_w == 1 &&
                   gi > 0 && gi < CK_QCONV_ROW_MODE_CHANNELS;
    job.kv = gi;
    if (job.row_mode) {
        ck_conv_nhwc *v = &job.view;
        v->in_h = (g->out_h - 1) * g->stride_h + (g->kernel_h - 1) * g->dilation_h + 1;
        v->in_w = (g->out_w - 1) * g->stride_w + g->kernel_w;
        v->kernel_w = 1;
        v->pad_top = v->pad_left = 0;
        job.kv = g->kernel_w * gi;
    }
    job.view_taps = job.view.kernel_h * job.view.kernel_w;
    job.k_round = vnni ? (job.kv + 3) / 4 * 4 : job.kv + job.kv % 2;
    job.relaid = vnni && (job.kv % 4 != 0 || job.row_mode);
    job.copied = job.path == CK_QPATH_AVX2 || job.relaid;
    size_t element = job.path == CK_QPATH_AVX2 ? 2 : 1;
    // Elements per group in the copy: the rounded run of a tap, or (row mode) the channels alone, the run reading
    // on into the next pixels against zero weights.
    int group_elements = job.row_mode ? gi : job.k_round;

    uint8_t stack_pad[CK_QCONV_STACK_PAD];
    uint8_t *heap_pad = NULL;
    size_t pad_bytes = element * (size_t)job.k_round + 4;
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
    if (job.copied) {
        size_t view_pixels = (size_t)g->batch * job.view.in_h * job.view.in_w;
        size_t pixel_bytes = element * (size_t)g->groups * group_elements;
        // Slack after the last pixel: a row-mode run reads up to k_round − kv elements on.
        size_t slack = element * (size_t)(job.k_round - job.kv + 4);
        ck_qconv_copy_job copy = {&job, ck_qconv_scratch(&ck_qconv_input, &ck_qconv_input_bytes, view_pixels * pixel_bytes + slack),
                                  group_elements};
        memset((uint8_t *)copy.dst + view_pixels * pixel_bytes, 0, slack);
        int rows = g->batch * job.view.in_h;
        if (threads > 1 && rows > 1) ck_parallel_run(threads, rows, ck_qconv_copy_input, &copy);
        else for (int i = 0; i < rows; i++) ck_qconv_copy_input(&copy, i);
        job.src = copy.dst;
        job.src_pixel = (ptrdiff_t)pixel_bytes;
        job.src_group = (ptrdiff_t)(element * (size_t)group_elements);
    }
    const ck_conv_nhwc *v = &job.view;
    if (job.view_taps <= CK_QCONV_MAX_TAP_OFFSETS) {
        for (int i = 0; i < v->kernel_h; i++)
            for (int j = 0; j < v->kernel_w; j++)
                job.tap_offset_storage[i * v->kernel_w + j] =
                    ((ptrdiff_t)i * v->dilation_h * v->in_w + (ptrdiff_t)j * v->dilation_w) * job.src_pixel;
        job.tap_offsets = job.tap_offset_storage;
    }

    // The layer's bias and folding plan: prepared once (ck_qconv_prepare) or derived for this call.
    const ck_qprepared *prepared = ck_qprepared_for(epilogue, 0, job.path, channels, (int64_t)job.taps * gi);
    ck_qprepared *own = NULL;
    if (!prepared) {
        own = ck_qconv_derive(g, packed_w, epilogue, job.path);
        if (!own) abort();  // out of memory, as Swift traps on a failed allocation
        prepared = own;
    }
    job.out = (ck_qout){prepared->bias, epilogue->multiplier, epilogue->shift, epilogue->scale, epilogue->y_zero_point,
                        epilogue->clamp_min, epilogue->clamp_max, y, g->y_stride, prepared->unfolded};
    ck_q_set_residual(&job.out, epilogue);

    // Tasks are (panel block, tile block) pairs chosen as conv_nhwc.c does: the split that reads the least weights
    // and input in all, panel blocks within CK_QCONV_B_BLOCK_BYTES (of the panels the kernel reads).
    int wanted = threads > 1 ? threads * CK_QCONV_TASKS_PER_THREAD : 1;
    size_t panel_bytes = job.path == CK_QPATH_AVX2 ? 2 * (size_t)job.view_taps * job.k_round * CK_QNR
                         : job.relaid             ? (size_t)job.view_taps * job.k_round * CK_QNR
                                                  : job.quads * CK_QPANEL_QUAD;
    if (panel_bytes == 0) panel_bytes = CK_QPANEL_QUAD;
    int step = vnni ? 2 : 1;
    double weight_bytes = (double)panel_bytes * job.panels, input_bytes = (double)job.tiles * job.mr * panel_bytes / CK_QNR;
    ck_choose_task_grid(job.panels, job.tiles, g->groups, wanted, panel_bytes, CK_QCONV_B_BLOCK_BYTES, step, weight_bytes, input_bytes,
                        &job.panel_block, &job.tile_block);
    job.panel_blocks = ck_ceil_div(job.panels, job.panel_block);
    job.tile_blocks = ck_ceil_div(job.tiles, job.tile_block);
    int tasks = g->groups * job.panel_blocks * job.tile_blocks;
    if (threads > 1) ck_parallel_run(threads, tasks, ck_qconv_task, &job);
    else for (int i = 0; i < tasks; i++) ck_qconv_task(&job, i);
    free(heap_pad);
    ck_qprepared_release(own);
}

void ck_qconv2d_nhwc(const ck_conv_nhwc *geometry, const uint8_t *x, const void *packed_w, const ck_qepilogue *epilogue, void *y) {
    ck_qconv2d_nhwc_with(geometry, x, packed_w, epilogue, y, CK_ISA_AUTO, 0);
}

// MARK: - Few-row products with a per-call input grid (dynamically quantized recurrent steps)

/// Multiply-adds from which ck_qgemv_f32 splits its panels between threads.
#define CK_QGEMV_PARALLEL_MIN_WORK (1 << 17)

typedef struct {
    int m, n, k;
    const uint8_t *x;
    int32_t x_zero_point;
    float x_scale;
    const int8_t *w;
    const int32_t *sums;
    const float *w_scale;
    float *y;
    ptrdiff_t ldy;
    int panels_per_task;
    int vnni;  // the AVX-512 VNNI path, else AVX2
} ck_qgemv_job;

#ifdef CK_X86
/// Columns p·16 … of every row for `count` (1…4) consecutive panels: one vpdpbusd per panel and quad of k, the
/// panels' accumulators independent so the adds overlap; the last quad's x bytes past k are read as zeros.
CK_AVX512_VNNI static inline __attribute__((always_inline)) void ck_qgemv_panels_vnni(const ck_qgemv_job *job, int p, int count) {
    int k = job->k, kq = (k + 3) / 4, full = k / 4;
    const int8_t *w = job->w + (size_t)p * kq * 64;
    for (int i = 0; i < job->m; i++) {
        const uint8_t *x = job->x + (size_t)i * k;
        int32_t tail = 0;
        if (full < kq) memcpy(&tail, x + 4 * full, (size_t)(k - 4 * full));
        __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512(), a2 = _mm512_setzero_si512(), a3 = _mm512_setzero_si512();
        for (int q = 0; q < kq; q++) {
            __m512i xq = _mm512_set1_epi32(q < full ? ck_q_load32(x + 4 * q) : tail);
            const int8_t *wq = w + (size_t)q * 64;
            a0 = _mm512_dpbusd_epi32(a0, xq, _mm512_loadu_si512(wq));
            if (count > 1) a1 = _mm512_dpbusd_epi32(a1, xq, _mm512_loadu_si512(wq + (size_t)kq * 64));
            if (count > 2) a2 = _mm512_dpbusd_epi32(a2, xq, _mm512_loadu_si512(wq + (size_t)2 * kq * 64));
            if (count > 3) a3 = _mm512_dpbusd_epi32(a3, xq, _mm512_loadu_si512(wq + (size_t)3 * kq * 64));
        }
        __m512i acc[4] = {a0, a1, a2, a3};
        __m512i zp = _mm512_set1_epi32(job->x_zero_point);
        __m512 xs = _mm512_set1_ps(job->x_scale);
        for (int j = 0; j < count; j++) {
            int c0 = (p + j) * 16, live = job->n - c0 < 16 ? job->n - c0 : 16;
            __mmask16 mask = (__mmask16)((1u << live) - 1u);
            __m512i sums = _mm512_maskz_loadu_epi32(mask, job->sums + c0);
            __m512 scale = _mm512_mul_ps(xs, _mm512_maskz_loadu_ps(mask, job->w_scale + c0));
            __m512i centred = _mm512_sub_epi32(acc[j], _mm512_mullo_epi32(zp, sums));
            _mm512_mask_storeu_ps(job->y + (size_t)i * job->ldy + c0, mask, _mm512_mul_ps(_mm512_cvtepi32_ps(centred), scale));
        }
    }
}

CK_AVX512_VNNI static void ck_qgemv_group4_vnni(const ck_qgemv_job *job, int p) { ck_qgemv_panels_vnni(job, p, 4); }
CK_AVX512_VNNI static void ck_qgemv_group_vnni(const ck_qgemv_job *job, int p, int count) { ck_qgemv_panels_vnni(job, p, count); }

/// One panel (16 columns) of every row without VNNI: u8 and s8 widened to 16 bits and multiplied in pairs by
/// vpmaddwd, exact (vpmaddubsw's 16-bit pair sums would saturate: 2·255·127 > 32767); the pair sums are added
/// across each quad at the end. Same integers, then the same float operations, as the VNNI path.
CK_AVX2 static void ck_qgemv_panel_avx2(const ck_qgemv_job *job, int p) {
    int k = job->k, kq = (k + 3) / 4, full = k / 4;
    const int8_t *w = job->w + (size_t)p * kq * 64;
    int c0 = p * 16, live = job->n - c0 < 16 ? job->n - c0 : 16;
    static const int32_t lanes[24] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    __m256i mask0 = _mm256_loadu_si256((const __m256i *)(lanes + 16 - live));
    __m256i mask1 = _mm256_loadu_si256((const __m256i *)(lanes + (live > 8 ? 24 - live : 16)));
    __m256i sums0 = _mm256_maskload_epi32(job->sums + c0, mask0), sums1 = _mm256_maskload_epi32(job->sums + c0 + 8, mask1);
    __m256 xs = _mm256_set1_ps(job->x_scale);
    __m256 scale0 = _mm256_mul_ps(xs, _mm256_maskload_ps(job->w_scale + c0, mask0));
    __m256 scale1 = _mm256_mul_ps(xs, _mm256_maskload_ps(job->w_scale + c0 + 8, mask1));
    __m256i zp = _mm256_set1_epi32(job->x_zero_point);
    for (int i = 0; i < job->m; i++) {
        const uint8_t *x = job->x + (size_t)i * k;
        int32_t tail = 0;
        if (full < kq) memcpy(&tail, x + 4 * full, (size_t)(k - 4 * full));
        __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256(), a2 = _mm256_setzero_si256(), a3 = _mm256_setzero_si256();
        for (int q = 0; q < kq; q++) {
            // x0 x1 x2 x3 four times, as 16-bit; each 16 weight bytes are 4 columns × the quad's 4 k.
            __m256i x16 = _mm256_cvtepu8_epi16(_mm_set1_epi32(q < full ? ck_q_load32(x + 4 * q) : tail));
            const int8_t *wq = w + (size_t)q * 64;
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)wq)), x16));
            a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wq + 16))), x16));
            a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wq + 32))), x16));
            a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wq + 48))), x16));
        }
        // Pair sums [c0 c0 c1 c1 | c2 c2 c3 c3] and [c4 …]: hadd gives [c0 c1 c4 c5 | c2 c3 c6 c7]; reorder the 64-bit pairs.
        __m256i lo = _mm256_permute4x64_epi64(_mm256_hadd_epi32(a0, a1), 0xD8);
        __m256i hi = _mm256_permute4x64_epi64(_mm256_hadd_epi32(a2, a3), 0xD8);
        float *y = job->y + (size_t)i * job->ldy + c0;
        __m256i centred0 = _mm256_sub_epi32(lo, _mm256_mullo_epi32(zp, sums0)), centred1 = _mm256_sub_epi32(hi, _mm256_mullo_epi32(zp, sums1));
        _mm256_maskstore_ps(y, mask0, _mm256_mul_ps(_mm256_cvtepi32_ps(centred0), scale0));
        _mm256_maskstore_ps(y + 8, mask1, _mm256_mul_ps(_mm256_cvtepi32_ps(centred1), scale1));
    }
}

static void ck_qgemv_task(void *context, int index) {
    const ck_qgemv_job *job = context;
    int panels = (job->n + 15) / 16;
    int p0 = index * job->panels_per_task, p1 = ck_min(panels, p0 + job->panels_per_task);
    if (!job->vnni) {
        for (int p = p0; p < p1; p++) ck_qgemv_panel_avx2(job, p);
        return;
    }
    for (int p = p0; p < p1; p += 4) {
        // The full group with its count a constant, so the branches on it leave the inner loop.
        if (p + 4 <= p1) ck_qgemv_group4_vnni(job, p);
        else ck_qgemv_group_vnni(job, p, p1 - p);
    }
}
#endif

int ck_qgemv_f32_with(int m, int n, int k, const uint8_t *x, int x_zero_point, float x_scale, const void *packed_w, const float *w_scale,
                      float *y, ptrdiff_t ldy, ck_isa isa) {
#ifdef CK_X86
    int vnni = ck_isa_avx512_vnni(isa);
    if (m <= 0 || n <= 0 || k <= 0 || !(vnni || ck_isa_avx2(isa))) return 0;
    int kq = (k + 3) / 4, panels = (n + 15) / 16;
    ck_qgemv_job job = {m, n, k, x, x_zero_point, x_scale, packed_w, (const int32_t *)((const int8_t *)packed_w + (size_t)panels * kq * 64),
                        w_scale, y, ldy, panels, vnni};
    // Threaded from CK_QGEMV_PARALLEL_MIN_WORK: a recurrent step's product (262 K multiply-adds for hidden size 256)
    // is short, but the pool's workers spin between a step's products, so splitting it costs little.
    int threads = (double)m * n * k >= CK_QGEMV_PARALLEL_MIN_WORK ? ck_num_threads() : 1;
    if (threads > 1) {
        // Whole groups of four panels per task, a few tasks per thread.
        int tasks = ck_min(ck_ceil_div(panels, 4), threads * 2);
        job.panels_per_task = ck_ceil_div(ck_ceil_div(panels, tasks), 4) * 4;
        ck_parallel_run(threads, ck_ceil_div(panels, job.panels_per_task), ck_qgemv_task, &job);
    } else {
        ck_qgemv_task(&job, 0);
    }
    return 1;
#else
    (void)m; (void)n; (void)k; (void)x; (void)x_zero_point; (void)x_scale; (void)packed_w; (void)w_scale; (void)y; (void)ldy; (void)isa;
    return 0;
#endif
}

int ck_qgemv_f32(int m, int n, int k, const uint8_t *x, int x_zero_point, float x_scale, const void *packed_w, const float *w_scale,
                 float *y, ptrdiff_t ldy) {
    return ck_qgemv_f32_with(m, n, k, x, x_zero_point, x_scale, packed_w, w_scale, y, ldy, CK_ISA_AUTO);
}
