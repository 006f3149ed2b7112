// gemm.c — the single-precision GEMM: blocking, the AVX2/FMA and scalar microkernels, packing, the product and
// the 2-D convolution that packs B straight from its input. Layouts and contract: include/ckernels.h.
#define _GNU_SOURCE
#include "ck_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

// MARK: - Blocking

/// Depth block: a 6 × 256 sliver of packed A (6 KB) and a 256 × 16 sliver of packed B (16 KB) stay in L1 while
/// the microkernel runs; the summation over k breaks into blocks of this size (fixed, so results do not depend
/// on anything else).
#define CK_KC 256
/// Rows of C per task (12 panels of A: 72 × 256 × 4 = 72 KB of packed A stays in L2 while B slivers pass over it).
#define CK_MC 72
/// Columns of C per task (16 slivers of B: 256 KB per depth block, half of this machine's 512 KB L2).
#define CK_NC 256
/// B floats from which a one- or two-row product runs threaded (256 KB: where a core's share of B stops fitting
/// in half its L2 and the product becomes a stream from L3).
#define CK_SKINNY_MIN_B (1 << 16)
/// Columns the one-row kernel covers per call: four B slivers.
#define CK_ROW_PANELS 4
/// Tasks per thread the grid aims for, so the dynamic scheduler can even out unequal tiles.
#define CK_TASKS_PER_THREAD 4


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
    // Transcendental activations run in a second, specialized pass over the stored tile (still in L1).
    int late = tile.last && ck_act_is_transcendental(ep->activation);
    ck_epilogue early = *ep;
    if (late) early.activation = CK_ACT_NONE;
    const ck_epilogue *const full = ep;
    ep = &early;
    int kind = tile.last ? ck_clamp_kind(ep->activation) : 0;
    if (mr == CK_MR && nr == CK_NR && !add_old && kind >= 0 && !(tile.last && ep->bias_kind == CK_BIAS_ROW)) {
        int has_bias = tile.last && ep->bias_kind == CK_BIAS_COLUMN;
        __m256 b0 = has_bias ? _mm256_loadu_ps(ep->bias + tile.col0) : _mm256_setzero_ps();
        __m256 b1 = has_bias ? _mm256_loadu_ps(ep->bias + tile.col0 + 8) : _mm256_setzero_ps();
        __m256 lo = _mm256_set1_ps(ep->param0), hi = _mm256_set1_ps(ep->param1);
#define CK_NO_RESIDUAL(r) ((const float *)NULL)
        CK_CLAMPED_TILE_AVX2(c, ldc, kind, has_bias, b0, b1, CK_NO_RESIDUAL, lo, hi);
#undef CK_NO_RESIDUAL
        if (late) ck_act_rows_avx2(c, ldc, CK_MR, CK_NR, full);
        return;
    }
    if (mr == CK_MR && nr == CK_NR) {
        const float *cb = ep->bias_kind == CK_BIAS_COLUMN ? ep->bias + tile.col0 : NULL;
        ck_store_row_avx2(c + 0 * ldc, c00, c01, add_old, tile.last, 0, cb, tile, ep);
        ck_store_row_avx2(c + 1 * ldc, c10, c11, add_old, tile.last, 1, cb, tile, ep);
        ck_store_row_avx2(c + 2 * ldc, c20, c21, add_old, tile.last, 2, cb, tile, ep);
        ck_store_row_avx2(c + 3 * ldc, c30, c31, add_old, tile.last, 3, cb, tile, ep);
        ck_store_row_avx2(c + 4 * ldc, c40, c41, add_old, tile.last, 4, cb, tile, ep);
        ck_store_row_avx2(c + 5 * ldc, c50, c51, add_old, tile.last, 5, cb, tile, ep);
        if (late) ck_act_rows_avx2(c, ldc, CK_MR, CK_NR, full);
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
    if (late) ck_act_rows_avx2(c, ldc, mr, nr, full);
}


/// A one-row tile against CK_ROW_PANELS full B slivers (64 columns, `panel_stride` floats apart): 8 accumulators,
/// each summing its columns in k order exactly as the 6 × 16 tile does, so a row's values do not depend on how many
/// rows the product has. The 6 × 16 kernel on one live row does six times the FMAs (the repeated row) and waits on
/// two dependency chains per k step; a matrix–vector product (a recurrent op's step, a classifier at batch 1) then
/// runs at a sixth of this kernel's speed.
CK_AVX2 static void ck_row_kernel_avx2(int kc, const float *a, ptrdiff_t csa, const float *b, ptrdiff_t panel_stride, float *c,
                                       ck_tile tile, const ck_epilogue *ep) {
    __m256 acc[2 * CK_ROW_PANELS];
    for (int q = 0; q < 2 * CK_ROW_PANELS; q++) acc[q] = _mm256_setzero_ps();
    const float *b0 = b, *b1 = b + panel_stride, *b2 = b + 2 * panel_stride, *b3 = b + 3 * panel_stride;
    ptrdiff_t off = 0;
    for (int p = 0; p < kc; p++) {
        __m256 x = _mm256_broadcast_ss(a + off);
        acc[0] = _mm256_fmadd_ps(x, _mm256_loadu_ps(b0), acc[0]);
        acc[1] = _mm256_fmadd_ps(x, _mm256_loadu_ps(b0 + 8), acc[1]);
        acc[2] = _mm256_fmadd_ps(x, _mm256_loadu_ps(b1), acc[2]);
        acc[3] = _mm256_fmadd_ps(x, _mm256_loadu_ps(b1 + 8), acc[3]);
        acc[4] = _mm256_fmadd_ps(x, _mm256_loadu_ps(b2), acc[4]);
        acc[5] = _mm256_fmadd_ps(x, _mm256_loadu_ps(b2 + 8), acc[5]);
        acc[6] = _mm256_fmadd_ps(x, _mm256_loadu_ps(b3), acc[6]);
        acc[7] = _mm256_fmadd_ps(x, _mm256_loadu_ps(b3 + 8), acc[7]);
        off += csa;
        b0 += CK_NR; b1 += CK_NR; b2 += CK_NR; b3 += CK_NR;
    }
    int add_old = !tile.first || ep->accumulate;
    int late = tile.last && ck_act_is_transcendental(ep->activation);
    ck_epilogue early = *ep;
    if (late) early.activation = CK_ACT_NONE;
    for (int q = 0; q < CK_ROW_PANELS; q++) {
        ck_tile t = tile;
        t.col0 = tile.col0 + q * CK_NR;
        const float *cb = ep->bias_kind == CK_BIAS_COLUMN ? ep->bias + t.col0 : NULL;
        ck_store_row_avx2(c + q * CK_NR, acc[2 * q], acc[2 * q + 1], add_old, tile.last, 0, cb, t, &early);
    }
    if (late) ck_act_rows_avx2(c, 0, 1, CK_ROW_PANELS * CK_NR, ep);
}
#endif

static ck_microkernel ck_kernel(ck_isa isa) {
    if (isa == CK_ISA_AUTO) isa = ck_active_isa();
#ifdef CK_X86
    if (ck_isa_avx2(isa)) return ck_microkernel_avx2;
#endif
    return ck_microkernel_scalar;
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
    int row_kernel;                  // one-row tiles of full slivers take ck_row_kernel_avx2
    int tiles512;                    // the AVX-512 12 × 32 tiles (ck_gemm_tile_avx512) where they give the same sums
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
        int j = j0;
#ifdef CK_X86
        // A one-row task: four full slivers per call of the one-row kernel while they last.
        if (job->row_kernel && i1 - i0 == 1) {
            ptrdiff_t panel_stride = (ptrdiff_t)(!pack_b ? k : kc) * CK_NR;
            const float *ap = job->a_direct ? job->a.data + (ptrdiff_t)i0 * job->a.rs + pc
                                            : job->packed_a + ((size_t)(i0 / CK_MR) * k + pc) * CK_MR;
            ptrdiff_t csa = job->a_direct ? 1 : CK_MR;
            for (; j + CK_ROW_PANELS * CK_NR <= j1; j += CK_ROW_PANELS * CK_NR) {
                const float *bp = !pack_b ? job->b.data + ((size_t)(j / CK_NR) * k + pc) * CK_NR
                                          : ck_b_block + (size_t)(j - j0) * kc;
                tile.row0 = i0;
                tile.col0 = j;
                ck_row_kernel_avx2(kc, ap, csa, bp, panel_stride, job->c + (ptrdiff_t)i0 * job->ldc + j, tile, &job->ep);
            }
        }
        // Several rows over the whole depth at once: the AVX-512 tiles, two slivers per call, 12 rows read in place.
        if (job->tiles512 && i1 - i0 > 1) {
            const float *bias = job->ep.bias_kind == CK_BIAS_COLUMN ? job->ep.bias : NULL;
            const float *rows[CK_GEMM_MR512];
            for (; j < j1; j += 2 * CK_NR) {
                const float *bp = !pack_b ? job->b.data + (size_t)(j / CK_NR) * k * CK_NR : ck_b_block + (size_t)(j - j0) * kc;
                int pair = j + CK_NR < j1;
                int nr = ck_min(pair ? 2 * CK_NR : CK_NR, job->n - j);
                for (int i = i0; i < i1; i += CK_GEMM_MR512) {
                    int mr = ck_min(CK_GEMM_MR512, i1 - i);
                    for (int r = 0; r < CK_GEMM_MR512; r++) rows[r] = job->a.data + (ptrdiff_t)(i + (r < mr ? r : mr - 1)) * job->a.rs;
                    ck_gemm_tile_avx512(k, rows, bp, pair ? bp + (size_t)k * CK_NR : NULL, job->c + (ptrdiff_t)i * job->ldc + j,
                                        job->ldc, mr, nr, bias ? bias + j : NULL, &job->ep);
                }
            }
        }
#endif
        for (; j < j1; j += CK_NR) {
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
    job.ep.wide = ck_isa_avx512(isa);
    job.kernel = ck_kernel(isa);
#ifdef CK_X86
    job.row_kernel = job.kernel == ck_microkernel_avx2;
#endif
    double work = (double)m * n * (k > 0 ? k : 1);
    // A product of one or two rows streams B once and does little else with it (a recurrent op's step: 1 MB of
    // R per step, 262 K multiply-adds): splitting B's columns between threads splits that traffic, so it runs
    // threaded from CK_SKINNY_MIN_B floats of B however few its multiply-adds are, in a task per thread (or per
    // CK_NC columns).
    int skinny = m <= 2 && (double)n * k >= CK_SKINNY_MIN_B && n >= 2 * CK_ROW_PANELS * CK_NR;
    if (work < CK_PARALLEL_MIN_WORK && !skinny) threads = 1;

    // A row-major A needs no packing: the microkernel reads 6 rows in place (1 KB of each per depth block).
    job.a_direct = !a.packed && a.cs == 1;
#ifdef CK_X86
    // The AVX-512 tiles sum like the 6 × 16 one only within one depth block, read A's rows in place, and take no
    // accumulation or row bias.
    job.tiles512 = job.row_kernel && ck_isa_avx512(isa) && k <= CK_KC && !job.ep.accumulate && job.ep.bias_kind != CK_BIAS_ROW
                   && job.a_direct && !conv;
#endif
    // The task grid: blocks of CK_MC × CK_NC, split further (columns first) until each thread has a few tasks.
    // When the columns alone give every thread enough tasks, a task takes all rows: B is then packed once, per
    // task, and A (rows read in place, or packed) streams from L2/L3 past each B sliver.
    int mc = ck_min(CK_MC, ck_ceil_div(m, CK_MR) * CK_MR), nc = ck_min(CK_NC, ck_ceil_div(n, CK_NR) * CK_NR);
    if (ck_ceil_div(n, nc) >= threads * CK_TASKS_PER_THREAD || (threads == 1 && n >= CK_NC)) mc = m;
    if (skinny && threads > 1) {
        mc = m;
        // At most CK_NC columns: a task packing an unpacked B holds one depth block of its columns (ck_b_block).
        nc = ck_min(CK_NC, ck_ceil_div(ck_ceil_div(n, threads), CK_ROW_PANELS * CK_NR) * CK_ROW_PANELS * CK_NR);
    } else if (threads > 1) {
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

