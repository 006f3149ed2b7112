// ck_internal.h — what the CKernels source files share and the public header does not promise: instruction-set
// macros, small integer helpers, the pool's thread-count-explicit entry point, the activations in scalar and
// AVX2 form, and the vector exp. Not installed; include only from Sources/CKernels/*.c.
#ifndef CK_INTERNAL_H
#define CK_INTERNAL_H

#include "ckernels.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define CK_X86 1
/// AVX2 and FMA code is compiled per function, so the library still runs on baseline x86-64.
#define CK_AVX2 __attribute__((target("avx2,fma")))
/// AVX-512 code likewise (F, VL and DQ: float FMAs, masks, 256-bit forms).
#define CK_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma")))
/// The quantized kernels' AVX-512 code: BW (byte and word lanes) and VNNI (vpdpbusd) besides.
#define CK_AVX512_VNNI __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx512vnni,avx2,fma")))
#endif

#define CK_HIDDEN __attribute__((visibility("hidden")))

static inline int ck_min(int a, int b) { return a < b ? a : b; }
static inline int ck_max(int a, int b) { return a > b ? a : b; }
static inline int ck_ceil_div(int a, int b) { return (a + b - 1) / b; }

/// Multiply-adds below which a product runs on the calling thread (about 15 µs of one core): a sleeping worker
/// takes tens of microseconds to wake, so smaller products do not gain from a second core.
#define CK_PARALLEL_MIN_WORK (1 << 20)

/// Whether the CPU and the OS support AVX2 and FMA, and AVX-512 (F, VL, DQ with the OS saving the opmask and zmm
/// state) (cpuid + xgetbv, read once).
CK_HIDDEN int ck_cpu_has_avx2_fma(void);
CK_HIDDEN int ck_cpu_has_avx512(void);
/// AVX-512 as above plus BW and VNNI.
CK_HIDDEN int ck_cpu_has_avx512_vnni(void);
/// Whether the CPU splits 512-bit operations into 256-bit halves (Zen 4): AVX-512 tiles then win only by their shape.
CK_HIDDEN int ck_cpu_avx512_half_width(void);

/// Whether a call that asked for `isa` (CK_ISA_AUTO: the active one) runs the AVX2/FMA path (also under the
/// AVX-512 levels: kernels without an AVX-512 form use their AVX2 one): resolved once per call, on the caller's
/// thread, so one call never mixes paths and the *_with entry points need no global switch.
static inline int ck_isa_avx2(ck_isa isa) {
    if (isa == CK_ISA_AUTO) isa = ck_active_isa();
    return isa >= CK_ISA_AVX2_FMA && isa <= CK_ISA_AVX512_VNNI && ck_cpu_has_avx2_fma();
}

/// Whether a call that asked for `isa` runs the AVX-512 path of the kernels that have one.
static inline int ck_isa_avx512(ck_isa isa) {
    if (isa == CK_ISA_AUTO) isa = ck_active_isa();
    return (isa == CK_ISA_AVX512 || isa == CK_ISA_AVX512_VNNI) && ck_cpu_has_avx512();
}

/// Whether a call that asked for `isa` runs the quantized kernels' AVX-512 VNNI path.
static inline int ck_isa_avx512_vnni(ck_isa isa) {
    if (isa == CK_ISA_AUTO) isa = ck_active_isa();
    return isa == CK_ISA_AVX512_VNNI && ck_cpu_has_avx512_vnni();
}

/// ck_parallel_for on at most `threads` threads (the caller counts as one).
CK_HIDDEN void ck_parallel_run(int threads, int count, void (*body)(void *context, int index), void *context);

/// Rows of the float GEMM's AVX-512 tile (the channels-last convolution's 12 × 32 tile with one tap).
#define CK_GEMM_MR512 12
/// One such tile (conv_nhwc.c): C[r, ·] = epilogue(Σ_p rows[r][p] · B[p, ·]) for r < mr and up to 32 columns over
/// the packed slivers b0 and b1 (b1 NULL: 16 columns), summed over kc in one pass, k in order, as the 6 × 16 AVX2
/// tile sums one depth block — so with kc the whole depth both give the same bits. The epilogue: a bias per
/// column (or NULL), then the activation; no accumulation. rows holds CK_GEMM_MR512 pointers (past mr repeating a
/// live row).
CK_HIDDEN void ck_gemm_tile_avx512(int kc, const float *const *rows, const float *b0, const float *b1, float *c, ptrdiff_t ldc,
                                   int mr, int nr, const float *bias, const ck_epilogue *ep);

/// The rows of a broadcasting binary kernel (ck_binary_f32, ck_qbinary_u8) as an odometer over the outer axes
/// 0…last−1 of `shape`: row `row`'s index per axis and its element offsets in the two operands (strides as, bs).
static inline void ck_rows_seek(int last, const int *shape, const ptrdiff_t *as, const ptrdiff_t *bs, ptrdiff_t row, ptrdiff_t *index_of,
                                ptrdiff_t *oa, ptrdiff_t *ob) {
    *oa = 0;
    *ob = 0;
    for (int d = last - 1; d >= 0; d--) {
        index_of[d] = row % shape[d];
        row /= shape[d];
        *oa += index_of[d] * as[d];
        *ob += index_of[d] * bs[d];
    }
}

/// The next row after ck_rows_seek's or this one's.
static inline void ck_rows_next(int last, const int *shape, const ptrdiff_t *as, const ptrdiff_t *bs, ptrdiff_t *index_of, ptrdiff_t *oa,
                                ptrdiff_t *ob) {
    for (int d = last - 1; d >= 0; d--) {
        *oa += as[d];
        *ob += bs[d];
        if (++index_of[d] < shape[d]) break;
        *oa -= shape[d] * as[d];
        *ob -= shape[d] * bs[d];
        index_of[d] = 0;
    }
}

/// The logistic in the scalar path's form, shared by the fallback epilogues and ck_sigmoid_inplace.
static inline float ck_logistic_scalar1(float v) { return v >= 0 ? 1.0f / (1.0f + expf(-v)) : expf(v) / (1.0f + expf(v)); }

static inline float ck_act_scalar(float x, const ck_epilogue *ep) {
    switch (ep->activation) {
    case CK_ACT_NONE: return x;
    case CK_ACT_RELU: return x > 0 ? x : 0;
    case CK_ACT_CLIP: {
        float y = x < ep->param0 ? ep->param0 : x;
        return y > ep->param1 ? ep->param1 : y;
    }
    case CK_ACT_LEAKY_RELU: {
        float s = ep->param0 * x;
        return x < 0 ? s : x;
    }
    case CK_ACT_HARD_SIGMOID: {
        float t = ep->param0 * x;
        t = t + ep->param1;
        float u = t < 1 ? t : 1;
        return u >= 0 ? u : 0;
    }
    case CK_ACT_HARD_SWISH: {
        float t = x / 6;
        t = t + 0.5f;
        float u = t < 1 ? t : 1;
        float v = u >= 0 ? u : 0;
        return x * v;
    }
    case CK_ACT_SIGMOID: return ck_logistic_scalar1(x);
    case CK_ACT_SILU: return x * ck_logistic_scalar1(x);
    case CK_ACT_TANH: return tanhf(x);
    case CK_ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case CK_ACT_GELU_TANH: {
        float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
        return 0.5f * x * (1.0f + tanhf(inner));
    }
    }
    return x;
}

#ifdef CK_X86
/// Lane masks for the first n of 8 lanes (n = 0 … 8), for the masked loads and stores of row tails.
static const int32_t ck_lane_masks[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

CK_AVX2 static inline __m256i ck_mask8(int n) { return _mm256_loadu_si256((const __m256i *)(ck_lane_masks + 8 - n)); }

// exp(x) = 2^n · e^r with n = round(x·log2 e) and r = x − n·ln 2 (ln 2 split in two for accuracy), e^r from a
// degree-6 polynomial on |r| ≤ ln2/2 (Cephes' expf coefficients, ≤ 2 ulp); x is clamped to ±88.3 so 2^n stays a
// normal float, and below −88.3 the result is 0. NaN inputs give NaN.
CK_AVX2 static inline __m256 ck_exp8(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-88.3762626647949f);
    __m256 v = _mm256_max_ps(_mm256_min_ps(x, hi), lo);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(v, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), v);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 r2 = _mm256_mul_ps(r, r);
    p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    // Below the clamp e^x is under every normal float: 0, as expf underflows (and e^-inf = 0). NaN stays NaN.
    y = _mm256_andnot_ps(_mm256_cmp_ps(x, lo, _CMP_LT_OQ), y);
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

/// e^z for the logistic kernels (ck_logistic8 here, ck_logistic16 in vector_math.c): n = round(z·log₂e),
/// t = z − n·ln 2 in two parts (Cody–Waite), then 1 + t·(c1 + t·(c2 + t·(c3 + t·(c4 + t·c5)))) on |t| ≤ ln 2 / 2:
/// XNNPACK's rr2-p5 minimax coefficients.
#define CK_EXP_LOG2E 1.44269504088896341f
#define CK_EXP_LN2_HI 0x1.62E400p-1f
#define CK_EXP_LN2_LO 0x1.7F7D1Cp-20f
#define CK_EXP_C5 0x1.0F9F9Cp-7f
#define CK_EXP_C4 0x1.573A1Ap-5f
#define CK_EXP_C3 0x1.555A80p-3f
#define CK_EXP_C2 0x1.FFFDC6p-2f
#define CK_EXP_C1 0x1.FFFFF6p-1f

/// The logistic (x·logistic for Silu) from e = e^z, z = −|x|, which never overflows: logistic(x) = 1/(1 + e) for
/// x ≥ 0 and e/(1 + e) below (no cancellation for large |x|). e^z by the CK_EXP constants above, with n rounded by
/// the 1.5·2²³ shift and 2ⁿ added to the exponent bits, so z is clamped at −126·ln 2 (rounded toward 0), where 2ⁿ
/// is the smallest normal power and the reduced t ≥ 0; below it, for x < 0, the logistic is under every normal
/// float and is 0. The exponent-bit trick would turn a NaN into a number, so NaN is restored at the end.
/// ≤ 2.6·10⁻⁷ relative against double (every 296th float), 3.5 ulp, exactly 1 where the logistic rounds to 1; 16
/// vector operations against the 24 of the previous form (the degree-7 Cephes polynomial, the sign handled by
/// compare-and-blend, 0 from −87 on).
CK_AVX2 static inline __m256 ck_logistic8(__m256 x, int silu) {
    const __m256 one = _mm256_set1_ps(1.0f), floor = _mm256_set1_ps(-0x1.5D589Ep+6f);  // −87.33654
    __m256 z = _mm256_max_ps(_mm256_or_ps(x, _mm256_set1_ps(-0.0f)), floor);
    const __m256 shift = _mm256_set1_ps(12582912.0f);
    __m256 k = _mm256_fmadd_ps(z, _mm256_set1_ps(CK_EXP_LOG2E), shift);
    __m256 n = _mm256_sub_ps(k, shift);
    __m256 t = _mm256_fmadd_ps(n, _mm256_set1_ps(-CK_EXP_LN2_HI), z);
    t = _mm256_fmadd_ps(n, _mm256_set1_ps(-CK_EXP_LN2_LO), t);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(CK_EXP_C5), t, _mm256_set1_ps(CK_EXP_C4));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(CK_EXP_C3));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(CK_EXP_C2));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(CK_EXP_C1));
    p = _mm256_fmadd_ps(p, t, one);
    __m256 e = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), _mm256_slli_epi32(_mm256_castps_si256(k), 23)));
    // x's sign bit picks e/(1 + e).
    __m256 s = _mm256_div_ps(_mm256_blendv_ps(one, e, x), _mm256_add_ps(one, e));
    s = _mm256_andnot_ps(_mm256_cmp_ps(x, floor, _CMP_LT_OQ), s);
    __m256 y = silu ? _mm256_mul_ps(x, s) : s;
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

/// tanh as a rational function on [−7.905, 7.905] (clamped outside, where it is ±1 in float), x itself below
/// |x| < 0.0004: within a few ulp. The coefficients are the minimax fit Eigen and TensorFlow use.
CK_AVX2 static inline __m256 ck_tanh8(__m256 a) {
    const __m256 clamp = _mm256_set1_ps(7.90531110763549805f);
    __m256 x = _mm256_max_ps(_mm256_min_ps(a, clamp), _mm256_sub_ps(_mm256_setzero_ps(), clamp));
    __m256 tiny = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), a), _mm256_set1_ps(0.0004f), _CMP_LT_OQ);
    __m256 x2 = _mm256_mul_ps(x, x);
    __m256 p = _mm256_fmadd_ps(x2, _mm256_set1_ps(-2.76076847742355e-16f), _mm256_set1_ps(2.00018790482477e-13f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-8.60467152213735e-11f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(5.12229709037114e-08f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(1.48572235717979e-05f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(6.37261928875436e-04f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(4.89352455891786e-03f));
    p = _mm256_mul_ps(x, p);
    __m256 q = _mm256_fmadd_ps(x2, _mm256_set1_ps(1.19825839466702e-06f), _mm256_set1_ps(1.18534705686654e-04f));
    q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(2.26843463243900e-03f));
    q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(4.89352518554385e-03f));
    __m256 y = _mm256_blendv_ps(_mm256_div_ps(p, q), a, tiny);
    return _mm256_blendv_ps(y, a, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));  // NaN stays NaN
}

/// erf as a rational function on [−4, 4] (clamped outside, where it is ±1 in float): within a few ulp. Eigen's and
/// TensorFlow's minimax coefficients.
CK_AVX2 static inline __m256 ck_erf8(__m256 a) {
    __m256 x = _mm256_max_ps(_mm256_min_ps(a, _mm256_set1_ps(4.0f)), _mm256_set1_ps(-4.0f));
    __m256 x2 = _mm256_mul_ps(x, x);
    __m256 p = _mm256_fmadd_ps(x2, _mm256_set1_ps(-2.72614225801306e-10f), _mm256_set1_ps(2.77068142495902e-08f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-2.10102402082508e-06f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-5.69250639462346e-05f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-7.34990630326855e-04f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-2.95459980854025e-03f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-1.60960333262415e-02f));
    p = _mm256_mul_ps(x, p);
    __m256 q = _mm256_fmadd_ps(x2, _mm256_set1_ps(-1.45660718464996e-05f), _mm256_set1_ps(-2.13374055278905e-04f));
    q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(-1.68282697438203e-03f));
    q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(-7.37332916720468e-03f));
    q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(-1.42647390514189e-02f));
    __m256 y = _mm256_div_ps(p, q);
    return _mm256_blendv_ps(y, a, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
}

CK_AVX2 static inline __m256 ck_act_avx2(__m256 x, const ck_epilogue *ep) {
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1);
    switch (ep->activation) {
    case CK_ACT_NONE: return x;
    case CK_ACT_RELU: return _mm256_max_ps(x, zero);  // x > 0 ? x : 0 (NaN → 0, as the scalar form)
    case CK_ACT_CLIP: {
        __m256 lo = _mm256_set1_ps(ep->param0), hi = _mm256_set1_ps(ep->param1);
        __m256 y = _mm256_blendv_ps(x, lo, _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
        return _mm256_blendv_ps(y, hi, _mm256_cmp_ps(y, hi, _CMP_GT_OQ));
    }
    case CK_ACT_LEAKY_RELU: {
        __m256 s = _mm256_mul_ps(_mm256_set1_ps(ep->param0), x);
        return _mm256_blendv_ps(x, s, _mm256_cmp_ps(x, zero, _CMP_LT_OQ));
    }
    case CK_ACT_HARD_SIGMOID: {
        __m256 t = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(ep->param0), x), _mm256_set1_ps(ep->param1));
        __m256 u = _mm256_blendv_ps(one, t, _mm256_cmp_ps(t, one, _CMP_LT_OQ));
        return _mm256_blendv_ps(zero, u, _mm256_cmp_ps(u, zero, _CMP_GE_OQ));
    }
    case CK_ACT_HARD_SWISH: {
        __m256 t = _mm256_add_ps(_mm256_div_ps(x, _mm256_set1_ps(6)), _mm256_set1_ps(0.5f));
        __m256 u = _mm256_blendv_ps(one, t, _mm256_cmp_ps(t, one, _CMP_LT_OQ));
        __m256 v = _mm256_blendv_ps(zero, u, _mm256_cmp_ps(u, zero, _CMP_GE_OQ));
        return _mm256_mul_ps(x, v);
    }
    case CK_ACT_SIGMOID: return ck_logistic8(x, 0);
    case CK_ACT_SILU: return ck_logistic8(x, 1);
    case CK_ACT_TANH: return ck_tanh8(x);
    case CK_ACT_GELU: {
        __m256 e = ck_erf8(_mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f)));
        return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    }
    case CK_ACT_GELU_TANH: {
        __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
        __m256 inner = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f), _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, x));
        return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.0f), ck_tanh8(inner)));
    }
    }
    return x;
}


/// Whether an activation needs the transcendental functions (exp, tanh, erf): epilogues apply those in a second
/// pass over the stored tile (`ck_act_rows_avx2`), where each loop is specialized and keeps its constants in
/// registers, instead of per vector in registers through the general switch.
static inline int ck_act_is_transcendental(ck_activation a) {
    return a == CK_ACT_SIGMOID || a == CK_ACT_SILU || a == CK_ACT_TANH || a == CK_ACT_GELU || a == CK_ACT_GELU_TANH;
}

#ifdef CK_X86
/// Sigmoid (silu = 0) or Silu over rows × cols floats at c (rows ldc apart), in place, 16 lanes at a time: the
/// AVX-512 form (ck_logistic16 in vector_math.c: 2ⁿ by vscalefps, the reciprocal from vrcp14ps and one Newton
/// step instead of a division), ≤ 3·10⁻⁷ relative error like ck_logistic8, 1 where the logistic rounds to 1.
CK_HIDDEN void ck_logistic_rows_avx512(float *c, ptrdiff_t ldc, int rows, int cols, int silu);
#endif

/// The activations a tile's store applies as it writes (none, Relu, Clip), as a clamp kind: 0, 1 or 2; −1 for the
/// others, which take the general path. The switch over all activations (`ck_act_avx2`) per row of a 6 × 16 tile was
/// ≈10 % of mobilenet_v2's run on AVX2 (`ck_tail_row_avx2` in `perf`): these kinds are compiled into the store.
static inline int ck_clamp_kind(ck_activation a) { return a == CK_ACT_NONE ? 0 : a == CK_ACT_RELU ? 1 : a == CK_ACT_CLIP ? 2 : -1; }

/// One 16-float row of a full tile: + bias (the two vectors, when has_bias), + residual (when not NULL), clamped as
/// `kind` says, stored. Relu is max(x, 0) (NaN → 0, as ck_act_avx2); Clip max then min with the bound first, which
/// returns x for NaN and keeps −0, as the compare-and-blend form does. Inlined into loops over constant kinds.
CK_AVX2 static inline __attribute__((always_inline)) void ck_clamped_row_avx2(float *dst, __m256 v0, __m256 v1, int has_bias, __m256 b0,
                                                                              __m256 b1, const float *residual, int kind, __m256 lo,
                                                                              __m256 hi) {
    if (has_bias) {
        v0 = _mm256_add_ps(v0, b0);
        v1 = _mm256_add_ps(v1, b1);
    }
    if (residual) {
        v0 = _mm256_add_ps(v0, _mm256_loadu_ps(residual));
        v1 = _mm256_add_ps(v1, _mm256_loadu_ps(residual + 8));
    }
    if (kind == 1) {
        v0 = _mm256_max_ps(v0, _mm256_setzero_ps());
        v1 = _mm256_max_ps(v1, _mm256_setzero_ps());
    } else if (kind == 2) {
        v0 = _mm256_min_ps(hi, _mm256_max_ps(lo, v0));
        v1 = _mm256_min_ps(hi, _mm256_max_ps(lo, v1));
    }
    _mm256_storeu_ps(dst, v0);
    _mm256_storeu_ps(dst + 8, v1);
}

/// A full 6 × 16 tile's twelve accumulators (c00 … c51 in the caller) stored by ck_clamped_row_avx2, one loop body
/// per clamp kind; `RESIDUAL(r)` is row r's residual pointer or NULL.
#define CK_CLAMPED_TILE_AVX2(dst, ldc, kind, has_bias, b0, b1, RESIDUAL, lo, hi)                                   \
    do {                                                                                                          \
        switch (kind) {                                                                                           \
        case 0: CK_CLAMPED_ROWS_AVX2(dst, ldc, 0, has_bias, b0, b1, RESIDUAL, lo, hi); break;                     \
        case 1: CK_CLAMPED_ROWS_AVX2(dst, ldc, 1, has_bias, b0, b1, RESIDUAL, lo, hi); break;                     \
        default: CK_CLAMPED_ROWS_AVX2(dst, ldc, 2, has_bias, b0, b1, RESIDUAL, lo, hi); break;                    \
        }                                                                                                         \
    } while (0)
#define CK_CLAMPED_ROWS_AVX2(dst, ldc, kind, has_bias, b0, b1, RESIDUAL, lo, hi)                                   \
    ck_clamped_row_avx2((dst), c00, c01, has_bias, b0, b1, RESIDUAL(0), kind, lo, hi);                            \
    ck_clamped_row_avx2((dst) + (ldc), c10, c11, has_bias, b0, b1, RESIDUAL(1), kind, lo, hi);                    \
    ck_clamped_row_avx2((dst) + 2 * (ldc), c20, c21, has_bias, b0, b1, RESIDUAL(2), kind, lo, hi);                \
    ck_clamped_row_avx2((dst) + 3 * (ldc), c30, c31, has_bias, b0, b1, RESIDUAL(3), kind, lo, hi);                \
    ck_clamped_row_avx2((dst) + 4 * (ldc), c40, c41, has_bias, b0, b1, RESIDUAL(4), kind, lo, hi);                \
    ck_clamped_row_avx2((dst) + 5 * (ldc), c50, c51, has_bias, b0, b1, RESIDUAL(5), kind, lo, hi)

/// rows × cols floats at c (rows ldc apart), in place: one specialized loop per activation (the switch is
/// outside the loops), 8 columns at a time and the last ones masked; Sigmoid and Silu 16 at a time when ep->wide.
CK_AVX2 static inline void ck_act_rows_avx2(float *c, ptrdiff_t ldc, int rows, int cols, const ck_epilogue *ep) {
    __m256i tail = ck_mask8(cols % 8);
#define CK_ACT_LOOP(EXPR)                                                                   \
    for (int r = 0; r < rows; r++) {                                                        \
        float *row = c + r * ldc;                                                           \
        int j = 0;                                                                          \
        for (; j + 8 <= cols; j += 8) {                                                     \
            __m256 x = _mm256_loadu_ps(row + j);                                            \
            _mm256_storeu_ps(row + j, (EXPR));                                              \
        }                                                                                   \
        if (j < cols) {                                                                     \
            __m256 x = _mm256_maskload_ps(row + j, tail);                                   \
            _mm256_maskstore_ps(row + j, tail, (EXPR));                                     \
        }                                                                                   \
    }
    if (ep->wide && (ep->activation == CK_ACT_SIGMOID || ep->activation == CK_ACT_SILU)) {
        ck_logistic_rows_avx512(c, ldc, rows, cols, ep->activation == CK_ACT_SILU);
        return;
    }
    switch (ep->activation) {
    case CK_ACT_SIGMOID: CK_ACT_LOOP(ck_logistic8(x, 0)) break;
    case CK_ACT_SILU: CK_ACT_LOOP(ck_logistic8(x, 1)) break;
    case CK_ACT_TANH: CK_ACT_LOOP(ck_tanh8(x)) break;
    default: CK_ACT_LOOP(ck_act_avx2(x, ep)) break;
    }
#undef CK_ACT_LOOP
}
#endif

/// The task grid of an indirect-GEMM convolution (float and quantized): blocks of `panel_block` weight panels (a
/// multiple of `step`, at most `block_bytes` of them) × blocks of `tile_block` output tiles, chosen to read the least
/// data in all — every tile block reads all weights once, every panel block all inputs once — while giving the pool
/// `wanted` tasks. `weight_bytes` is all panels, `input_bytes` all tiles' inputs.
static inline void ck_choose_task_grid(int panels, int tiles, int groups, int wanted, size_t panel_bytes, size_t block_bytes, int step,
                                       double weight_bytes, double input_bytes, int *panel_block, int *tile_block) {
    int most = (int)(block_bytes / panel_bytes);
    if (most < step) most = step;
    most -= most % step;
    double best = -1;
    for (int block = ck_min(most, panels + panels % step); block >= step; block -= step) {
        int panel_blocks = ck_ceil_div(panels, block);
        int tile_blocks = ck_ceil_div(wanted, groups * panel_blocks);
        if (tile_blocks > tiles) tile_blocks = tiles;
        if (tile_blocks < 1) tile_blocks = 1;
        int tb = ck_ceil_div(tiles, tile_blocks);
        tile_blocks = ck_ceil_div(tiles, tb);
        double cost = weight_bytes * tile_blocks + input_bytes * panel_blocks;
        if (best < 0 || cost < best) {
            best = cost;
            *panel_block = block;
            *tile_block = tb;
        }
        if (groups * panel_blocks >= wanted) break;  // smaller blocks only read the input more often
    }
    if (*panel_block > panels) *panel_block = panels;
}

#endif
