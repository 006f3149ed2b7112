// transformer.c — the non-GEMM parts of a transformer layer: fused attention (scores, scale, mask, softmax and the
// product with V, one block of query rows at a time so the score matrix never exists whole) and layer
// normalization over rows. Contract: include/ckernels.h.
#define _GNU_SOURCE
#include "ck_internal.h"

#include <stdlib.h>
#include <string.h>

// MARK: - Attention

/// Query rows per task: a block's scores (rows × Sk floats) stay in L1/L2 up to Sk ≈ 8k, and 32 rows are enough
/// for the GEMM's 6-row tiles.
#define CK_ATTENTION_ROWS 32

typedef struct {
    ck_attention_shape s;
    const float *q, *kt, *v, *mask;
    const ptrdiff_t *q_offsets, *kt_offsets, *v_offsets, *mask_offsets;
    float *y;
    float scale;
    int blocks;
    /// Kt and V of every batch entry in the GEMM's packed B layout (packed once, shared by all row blocks).
    float *packed_kt, *packed_v;
    size_t kt_size, v_size;
} ck_attention_job;

static void ck_attention_pack(void *context, int index) {
    ck_attention_job *job = context;
    const ck_attention_shape *s = &job->s;
    if (index < s->batch) {
        ck_sgemm_pack_b(s->d, s->sk, job->kt + job->kt_offsets[index], s->sk, 1, job->packed_kt + (size_t)index * job->kt_size);
    } else {
        int b = index - s->batch;
        ck_sgemm_pack_b(s->sk, s->dv, job->v + job->v_offsets[b], s->dv, 1, job->packed_v + (size_t)b * job->v_size);
    }
}

/// Per-thread room for one block's scores.
static _Thread_local float *ck_attention_scores = NULL;
static _Thread_local size_t ck_attention_scores_count = 0;

/// One row of scores: e_j = exp(scale·x_j + mask_j − max) in place, returning Σ e_j. The division by the sum is
/// left to the product with V (one multiplication per output value, dv of them, instead of one per score).
static float ck_attention_row_scalar(float *row, int n, float scale, const float *mask, ptrdiff_t mask_stride) {
    float maximum = -INFINITY;
    for (int j = 0; j < n; j++) {
        float v = scale != 1 ? row[j] * scale : row[j];
        if (mask) v = v + mask[(ptrdiff_t)j * mask_stride];
        row[j] = v;
        maximum = v > maximum ? v : maximum;
    }
    return ck_softmax_exp(row, (size_t)n, maximum);
}

#ifdef CK_X86
/// e^x for x ≤ 0 (scores minus their maximum), 8 lanes: XNNPACK's rr2-p5 (n by the 1.5·2²³ shift, 2ⁿ from n's
/// bits, the CK_EXP constants), 0 below ln(FLT_MIN), where e^x is subnormal (a score that small beside the row's
/// maximum, 1, adds nothing to the sum); −∞ gives 0, NaN stays NaN. ≤ 1.7·10⁻⁷ relative, 2 ulp against double on
/// every 37th non-positive float. 13 vector operations against ck_exp8's 22, which also clamps above and restores
/// NaN: the softmax exponentials were 30 % of bert_tiny's attention on AVX2.
CK_AVX2 static inline __m256 ck_exp_nonpositive8(__m256 x) {
    const __m256 magic = _mm256_set1_ps(0x1.8000FEp23f);
    __m256 n = _mm256_fmadd_ps(x, _mm256_set1_ps(CK_EXP_LOG2E), magic);
    __m256 s = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(n), 23));
    n = _mm256_sub_ps(n, magic);
    __m256 t = _mm256_fmadd_ps(n, _mm256_set1_ps(-CK_EXP_LN2_HI), x);
    t = _mm256_fmadd_ps(n, _mm256_set1_ps(-CK_EXP_LN2_LO), t);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(CK_EXP_C5), t, _mm256_set1_ps(CK_EXP_C4));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(CK_EXP_C3));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(CK_EXP_C2));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(CK_EXP_C1));
    t = _mm256_mul_ps(t, s);
    __m256 f = _mm256_fmadd_ps(t, p, s);
    return _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_set1_ps(-0x1.5D589Ep6f), _CMP_LT_OQ), f);
}

/// The scalar form's result in two passes over the row: the maximum of scale·x + mask, then the exponentials of
/// scale·x + mask − max, stored, and their sum (the scaled, masked scores are never stored on their own).
CK_AVX2 static float ck_attention_row_avx2(float *row, int n, float scale, const float *mask, ptrdiff_t mask_stride) {
    if (mask && mask_stride != 0 && mask_stride != 1) return ck_attention_row_scalar(row, n, scale, mask, mask_stride);
    const __m256 s = _mm256_set1_ps(scale), minus_inf = _mm256_set1_ps(-INFINITY);
    const float *m = mask && mask_stride == 1 ? mask : NULL;
    const __m256 broadcast = mask && mask_stride == 0 ? _mm256_set1_ps(mask[0]) : _mm256_setzero_ps();
    int full = n - n % 8;
    __m256i tail = ck_mask8(n % 8);
#define CK_SCORE(j) _mm256_fmadd_ps(_mm256_loadu_ps(row + (j)), s, m ? _mm256_loadu_ps(m + (j)) : broadcast)
#define CK_SCORE_TAIL(j) _mm256_fmadd_ps(_mm256_maskload_ps(row + (j), tail), s, m ? _mm256_maskload_ps(m + (j), tail) : broadcast)
    __m256 v0 = minus_inf, v1 = minus_inf;
    int j = 0;
    for (; j + 16 <= full; j += 16) {
        v0 = _mm256_max_ps(CK_SCORE(j), v0);
        v1 = _mm256_max_ps(CK_SCORE(j + 8), v1);
    }
    if (j < full) v0 = _mm256_max_ps(CK_SCORE(j), v0);
    if (full < n) v1 = _mm256_max_ps(_mm256_blendv_ps(minus_inf, CK_SCORE_TAIL(full), _mm256_castsi256_ps(tail)), v1);
    float lanes[8];
    _mm256_storeu_ps(lanes, _mm256_max_ps(v0, v1));
    float maximum = lanes[0];
    for (int l = 1; l < 8; l++) maximum = lanes[l] > maximum ? lanes[l] : maximum;
    // All scores −∞: e^(−∞ − −∞) is NaN, as Softmax gives.
    const __m256 mx = _mm256_set1_ps(maximum);
    __m256 sum0 = _mm256_setzero_ps(), sum1 = _mm256_setzero_ps();
    for (j = 0; j + 16 <= full; j += 16) {
        __m256 e0 = ck_exp_nonpositive8(_mm256_sub_ps(CK_SCORE(j), mx));
        __m256 e1 = ck_exp_nonpositive8(_mm256_sub_ps(CK_SCORE(j + 8), mx));
        _mm256_storeu_ps(row + j, e0);
        _mm256_storeu_ps(row + j + 8, e1);
        sum0 = _mm256_add_ps(sum0, e0);
        sum1 = _mm256_add_ps(sum1, e1);
    }
    if (j < full) {
        __m256 e = ck_exp_nonpositive8(_mm256_sub_ps(CK_SCORE(j), mx));
        _mm256_storeu_ps(row + j, e);
        sum0 = _mm256_add_ps(sum0, e);
    }
    if (full < n) {
        __m256 e = _mm256_and_ps(ck_exp_nonpositive8(_mm256_sub_ps(CK_SCORE_TAIL(full), mx)), _mm256_castsi256_ps(tail));
        _mm256_maskstore_ps(row + full, tail, e);
        sum1 = _mm256_add_ps(sum1, e);
    }
#undef CK_SCORE
#undef CK_SCORE_TAIL
    _mm256_storeu_ps(lanes, _mm256_add_ps(sum0, sum1));
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}
#endif

#ifdef CK_X86
/// The multiples of 8 of ck_scale_floats; returns how many it did.
CK_AVX2 static size_t ck_scale_floats_avx2(float *x, size_t n, float factor) {
    const __m256 f = _mm256_set1_ps(factor);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), f));
    return i;
}
#endif

/// x[i] *= factor for n floats (an output row of the product with V, by its softmax row's 1/Σ).
static void ck_scale_floats(float *x, size_t n, float factor) {
    size_t i = 0;
#ifdef CK_X86
    if (ck_isa_avx2(CK_ISA_AUTO)) {
        i = ck_scale_floats_avx2(x, n, factor);
    }
#endif
    for (; i < n; i++) x[i] *= factor;
}

static void ck_attention_task(void *context, int index) {
    const ck_attention_job *job = context;
    const ck_attention_shape *s = &job->s;
    int b = index / job->blocks, r0 = (index % job->blocks) * CK_ATTENTION_ROWS;
    int rows = ck_min(CK_ATTENTION_ROWS, s->rows - r0);
    size_t need = (size_t)rows * s->sk;
    if (need > ck_attention_scores_count) {
        free(ck_attention_scores);
        ck_attention_scores = aligned_alloc(64, (need * sizeof(float) + 63) / 64 * 64);
        if (!ck_attention_scores) abort();  // out of memory, as Swift traps on a failed allocation
        ck_attention_scores_count = need;
    }
    float *scores = ck_attention_scores;
    // A one-row Q broadcast up by the mask reads its one row for every output row.
    ptrdiff_t q_row = s->sq == 1 ? 0 : s->d;
    ck_operand qa = {job->q + job->q_offsets[b] + (ptrdiff_t)r0 * q_row, q_row, 1, 0};
    ck_operand ktb = {job->packed_kt + (size_t)b * job->kt_size, 0, 0, 1};
    ck_sgemm_serial(rows, s->sk, s->d, qa, ktb, scores, s->sk, NULL);
    float (*softmax)(float *, int, float, const float *, ptrdiff_t) = ck_attention_row_scalar;
#ifdef CK_X86
    if (ck_isa_avx2(CK_ISA_AUTO)) softmax = ck_attention_row_avx2;
#endif
    float inverse[CK_ATTENTION_ROWS];
    for (int i = 0; i < rows; i++) {
        const float *m = job->mask ? job->mask + job->mask_offsets[b] + (ptrdiff_t)(r0 + i) * s->mask_row_stride : NULL;
        inverse[i] = 1 / softmax(scores + (size_t)i * s->sk, s->sk, job->scale, m, s->mask_column_stride);
    }
    ck_operand pa = {scores, s->sk, 1, 0};
    ck_operand vb = {job->packed_v + (size_t)b * job->v_size, 0, 0, 1};
    float *y = job->y + ((size_t)b * s->rows + r0) * s->dv;
    ck_sgemm_serial(rows, s->dv, s->sk, pa, vb, y, s->dv, NULL);
    for (int i = 0; i < rows; i++) ck_scale_floats(y + (size_t)i * s->dv, (size_t)s->dv, inverse[i]);
}

void ck_attention(const ck_attention_shape *shape, const float *q, const ptrdiff_t *q_offsets, const float *kt,
                  const ptrdiff_t *kt_offsets, const float *v, const ptrdiff_t *v_offsets, const float *mask,
                  const ptrdiff_t *mask_offsets, float scale, float *y) {
    ck_attention_job job;
    memset(&job, 0, sizeof job);
    job.s = *shape;
    const ck_attention_shape *s = &job.s;
    if (s->batch <= 0 || s->rows <= 0 || s->dv <= 0) return;
    if (s->sk <= 0 || s->d < 0) {
        memset(y, 0, (size_t)s->batch * s->rows * s->dv * sizeof(float));
        return;
    }
    job.q = q; job.kt = kt; job.v = v; job.mask = mask;
    job.q_offsets = q_offsets; job.kt_offsets = kt_offsets; job.v_offsets = v_offsets; job.mask_offsets = mask_offsets;
    job.y = y;
    job.scale = scale;
    job.blocks = ck_ceil_div(s->rows, CK_ATTENTION_ROWS);
    job.kt_size = ck_sgemm_packed_b_size(s->d, s->sk);
    job.v_size = ck_sgemm_packed_b_size(s->sk, s->dv);
    float *packed = aligned_alloc(64, ((job.kt_size + job.v_size) * (size_t)s->batch * sizeof(float) + 63) / 64 * 64);
    if (!packed) abort();
    job.packed_kt = packed;
    job.packed_v = packed + job.kt_size * (size_t)s->batch;
    double work = (double)s->batch * s->rows * s->sk * (double)(s->d + s->dv);
    int threads = work < CK_PARALLEL_MIN_WORK ? 1 : ck_num_threads();
    if (threads > 1) {
        ck_parallel_run(threads, 2 * s->batch, ck_attention_pack, &job);
        ck_parallel_run(threads, s->batch * job.blocks, ck_attention_task, &job);
    } else {
        for (int i = 0; i < 2 * s->batch; i++) ck_attention_pack(&job, i);
        for (int i = 0; i < s->batch * job.blocks; i++) ck_attention_task(&job, i);
    }
    free(packed);
}

// MARK: - Layer normalization

typedef struct {
    int rows, length;
    const float *x, *scale, *bias;
    float epsilon;
    float *y, *mean, *inv_std;
    int rows_per_task;
} ck_layernorm_job;

#ifdef CK_X86
CK_AVX2 static float ck_sum8(__m256 v) {
    float lanes[8];
    _mm256_storeu_ps(lanes, v);
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

CK_AVX2 static void ck_layernorm_row_avx2(const ck_layernorm_job *job, int r) {
    int n = job->length, j = 0;
    const float *x = job->x + (size_t)r * n;
    float *y = job->y + (size_t)r * n;
    // Four independent sums: one chain of adds waits for each add's latency, 8 floats at a time (with the compiled
    // step, bert_tiny's 128 × 128 LayerNormalization went from 10 to 5 µs).
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (; j + 32 <= n; j += 32) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + j));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + j + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + j + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + j + 24));
    }
    for (; j + 8 <= n; j += 8) a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + j));
    float sum = ck_sum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; j < n; j++) sum += x[j];
    float mean = sum / (float)n;
    __m256 m = _mm256_set1_ps(mean);
    a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (j = 0; j + 32 <= n; j += 32) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + j), m), d1 = _mm256_sub_ps(_mm256_loadu_ps(x + j + 8), m);
        __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(x + j + 16), m), d3 = _mm256_sub_ps(_mm256_loadu_ps(x + j + 24), m);
        a0 = _mm256_fmadd_ps(d0, d0, a0);
        a1 = _mm256_fmadd_ps(d1, d1, a1);
        a2 = _mm256_fmadd_ps(d2, d2, a2);
        a3 = _mm256_fmadd_ps(d3, d3, a3);
    }
    for (; j + 8 <= n; j += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + j), m);
        a0 = _mm256_fmadd_ps(d, d, a0);
    }
    float squares = ck_sum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; j < n; j++) squares += (x[j] - mean) * (x[j] - mean);
    float inv = 1.0f / sqrtf(squares / (float)n + job->epsilon);
    __m256 vi = _mm256_set1_ps(inv);
    for (j = 0; j + 8 <= n; j += 8) {
        __m256 v = _mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), m), vi), _mm256_loadu_ps(job->scale + j));
        if (job->bias) v = _mm256_add_ps(v, _mm256_loadu_ps(job->bias + j));
        _mm256_storeu_ps(y + j, v);
    }
    for (; j < n; j++) y[j] = (x[j] - mean) * inv * job->scale[j] + (job->bias ? job->bias[j] : 0);
    if (job->mean) job->mean[r] = mean;
    if (job->inv_std) job->inv_std[r] = inv;
}
#endif

static void ck_layernorm_row_scalar(const ck_layernorm_job *job, int r) {
    int n = job->length;
    const float *x = job->x + (size_t)r * n;
    float *y = job->y + (size_t)r * n;
    float sum = 0;
    for (int j = 0; j < n; j++) sum += x[j];
    float mean = sum / (float)n, squares = 0;
    for (int j = 0; j < n; j++) squares += (x[j] - mean) * (x[j] - mean);
    float inv = 1.0f / sqrtf(squares / (float)n + job->epsilon);
    for (int j = 0; j < n; j++) y[j] = (x[j] - mean) * inv * job->scale[j] + (job->bias ? job->bias[j] : 0);
    if (job->mean) job->mean[r] = mean;
    if (job->inv_std) job->inv_std[r] = inv;
}

static void ck_layernorm_task(void *context, int index) {
    const ck_layernorm_job *job = context;
    int r0 = index * job->rows_per_task, r1 = ck_min(job->rows, r0 + job->rows_per_task);
#ifdef CK_X86
    if (ck_isa_avx2(CK_ISA_AUTO)) {
        for (int r = r0; r < r1; r++) ck_layernorm_row_avx2(job, r);
        return;
    }
#endif
    for (int r = r0; r < r1; r++) ck_layernorm_row_scalar(job, r);
}

void ck_layernorm(int rows, int length, const float *x, const float *scale, const float *bias, float epsilon, float *y,
                  float *mean, float *inv_std) {
    if (rows <= 0 || length <= 0) return;
    ck_layernorm_job job = {rows, length, x, scale, bias, epsilon, y, mean, inv_std, rows};
    double work = (double)rows * length;
    if (work < CK_PARALLEL_MIN_WORK / 4) {
        ck_layernorm_task(&job, 0);
        return;
    }
    int tasks = ck_num_threads() * 4;
    job.rows_per_task = ck_ceil_div(rows, tasks);
    ck_parallel_for(ck_ceil_div(rows, job.rows_per_task), ck_layernorm_task, &job);
}
