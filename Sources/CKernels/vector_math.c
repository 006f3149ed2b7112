// vector_math.c — Sigmoid, Silu and softmax exponentials over float buffers.
#define _GNU_SOURCE
#include "ck_internal.h"

#include <string.h>

// ---------------------------------------------------------------------------------------------------------------
// Logistic functions over float buffers, in place: Sigmoid and Silu (x·sigmoid(x)) are most of EfficientNet's and
// YOLO's non-GEMM time, and libm's expf per element costs ~8 ns where a vector exp costs well under 1.
// The vector exp (ck_exp8) is in ck_internal.h.

#ifdef CK_X86
CK_AVX2 static void ck_logistic_avx2(float *x, size_t n, int silu) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, ck_logistic8(_mm256_loadu_ps(x + i), silu));
    if (i < n) {
        float tail[8] = {0};
        memcpy(tail, x + i, (n - i) * sizeof(float));
        _mm256_storeu_ps(tail, ck_logistic8(_mm256_loadu_ps(tail), silu));
        memcpy(x + i, tail, (n - i) * sizeof(float));
    }
}
#endif

static void ck_logistic_scalar(float *x, size_t n, int silu) {
    for (size_t i = 0; i < n; i++) {
        float s = ck_logistic_scalar1(x[i]);
        x[i] = silu ? x[i] * s : s;
    }
}

static void ck_logistic(float *x, size_t n, int silu) {
#ifdef CK_X86
    if (ck_active_isa() == CK_ISA_AVX2_FMA) { ck_logistic_avx2(x, n, silu); return; }
#endif
    ck_logistic_scalar(x, n, silu);
}

#ifdef CK_X86
CK_AVX2 static float ck_softmax_exp_avx2(float *x, size_t n, float maximum) {
    const __m256 m = _mm256_set1_ps(maximum);
    __m256 total = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = ck_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        _mm256_storeu_ps(x + i, e);
        total = _mm256_add_ps(total, e);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, total);
    float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    if (i < n) {
        float tail[8];
        for (size_t j = 0; j < 8; j++) tail[j] = j < n - i ? x[i + j] - maximum : -INFINITY;
        __m256 e = ck_exp8(_mm256_loadu_ps(tail));
        _mm256_storeu_ps(tail, e);
        for (size_t j = 0; j < n - i; j++) { x[i + j] = tail[j]; sum += tail[j]; }
    }
    return sum;
}
#endif

float ck_softmax_exp(float *x, size_t n, float maximum) {
#ifdef CK_X86
    if (ck_active_isa() == CK_ISA_AVX2_FMA) return ck_softmax_exp_avx2(x, n, maximum);
#endif
    float sum = 0;
    for (size_t i = 0; i < n; i++) { x[i] = expf(x[i] - maximum); sum += x[i]; }
    return sum;
}

void ck_sigmoid_inplace(float *x, size_t n) { ck_logistic(x, n, 0); }
void ck_silu_inplace(float *x, size_t n) { ck_logistic(x, n, 1); }

// MARK: - Activations over buffers

#ifdef CK_X86
CK_AVX2 static void ck_activation_avx2(float *x, size_t n, const ck_epilogue *ep) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, ck_act_avx2(_mm256_loadu_ps(x + i), ep));
    if (i < n) {
        float tail[8] = {0};
        memcpy(tail, x + i, (n - i) * sizeof(float));
        _mm256_storeu_ps(tail, ck_act_avx2(_mm256_loadu_ps(tail), ep));
        memcpy(x + i, tail, (n - i) * sizeof(float));
    }
}
#endif

void ck_activation_inplace(float *x, size_t n, ck_activation activation, float param0, float param1) {
    ck_epilogue ep = {CK_BIAS_NONE, NULL, activation, param0, param1, 0};
#ifdef CK_X86
    if (ck_active_isa() == CK_ISA_AVX2_FMA) { ck_activation_avx2(x, n, &ep); return; }
#endif
    for (size_t i = 0; i < n; i++) x[i] = ck_act_scalar(x[i], &ep);
}
