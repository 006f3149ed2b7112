// ckernels.h — onnxc's single-precision GEMM for CPUs: an AVX2/FMA path chosen at run time (cpuid + xgetbv) and a
// portable scalar fallback, with a persistent pthread pool. See docs/benchmarks.md ("GEMM kernels") for why this
// kernel and not a library's.
//
// The product
//   C[m×n] = act(A[m×k] · B[k×n] (+ C if accumulate) (+ bias))
// with A and B given either as strided matrices (element (i, j) at data[i·rs + j·cs], so transposes cost nothing)
// or in the packed layouts below, and C row-major with leading dimension ldc.
//
// Packed layouts (ours, stable: the compiler stores prepacked weights in this form, so changing them is a format
// change). Both are independent of the cache blocking, which only picks sub-ranges of them.
//
//   packed B (k × n):  ceil(n / CK_NR) panels of CK_NR columns; panel j holds rows 0..<k, each CK_NR consecutive
//                      floats: packed[(j·k + p)·CK_NR + c] = B[p, j·CK_NR + c], columns past n are 0.
//                      Size: ck_sgemm_packed_b_size(k, n) floats.
//   packed A (m × k):  ceil(m / CK_MR) panels of CK_MR rows; panel i holds columns 0..<k, each CK_MR consecutive
//                      floats: packed[(i·k + p)·CK_MR + r] = A[i·CK_MR + r, p], rows past m are 0.
//                      Size: ck_sgemm_packed_a_size(m, k) floats.
//
// Summation order: every element of C sums over k in increasing order in blocks of 256, whatever the thread
// count, so results do not depend on threading. Pointers passed in need no particular alignment.
#ifndef CKERNELS_H
#define CKERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Register tile: CK_MR rows of A by CK_NR columns of B (6 × 16 = 12 AVX2 accumulators).
#define CK_MR 6
#define CK_NR 16

/// The activation an epilogue applies. The numbering is onnxc's; the formulas are the runtime's standalone kernels'
/// (Relu: x > 0 ? x : 0; Clip: min(max(x, p0), p1) as x < p0 ? p0 : x, then > p1 ? p1; LeakyRelu: x < 0 ? p0·x : x;
/// HardSigmoid: max(0, min(1, p0·x + p1)); HardSwish: x · max(0, min(1, x / 6 + 0.5))). Activations that need
/// transcendental functions (Sigmoid, Tanh, Silu, Gelu) are not here: the caller applies them after the product.
typedef enum {
    CK_ACT_NONE = 0,
    CK_ACT_RELU = 1,
    CK_ACT_CLIP = 2,
    CK_ACT_LEAKY_RELU = 3,
    CK_ACT_HARD_SIGMOID = 4,
    CK_ACT_HARD_SWISH = 5,
} ck_activation;

/// Where the epilogue's bias vector goes: one value per row of C (a convolution's output channel) or per column
/// (a Gemm or MatMul bias).
typedef enum {
    CK_BIAS_NONE = 0,
    CK_BIAS_ROW = 1,
    CK_BIAS_COLUMN = 2,
} ck_bias_kind;

/// What happens to a tile of C after its last block of k: add C's previous contents (accumulate), add the bias,
/// apply the activation, in that order.
typedef struct {
    ck_bias_kind bias_kind;
    const float *bias;
    ck_activation activation;
    float param0, param1;
    int accumulate;
} ck_epilogue;

/// A GEMM operand: a strided matrix (element (i, j) at data[i·rs + j·cs]) or, when packed is nonzero, data in the
/// packed layout of its side (rs and cs unused).
typedef struct {
    const float *data;
    ptrdiff_t rs, cs;
    int packed;
} ck_operand;

/// Instruction sets the kernel can run. CK_ISA_AUTO picks the best one the CPU and OS support.
typedef enum {
    CK_ISA_AUTO = 0,
    CK_ISA_SCALAR = 1,
    CK_ISA_AVX2_FMA = 2,
} ck_isa;

/// The instruction set products run with now (never CK_ISA_AUTO).
ck_isa ck_active_isa(void);
/// Forces an instruction set (for tests and benchmarks); asking for one the CPU lacks, or CK_ISA_AUTO, selects the
/// best supported. Returns the one now active. Not for use while products run.
ck_isa ck_set_isa(ck_isa isa);

/// Threads a product may use (the caller counts as one). Default: the ONNXC_NUM_THREADS environment variable if
/// set, otherwise the number of physical cores.
int ck_num_threads(void);
/// Sets the thread count (at least 1); returns the count now in force.
int ck_set_num_threads(int n);

size_t ck_sgemm_packed_a_size(int m, int k);
size_t ck_sgemm_packed_b_size(int k, int n);
/// Packs the strided matrix A (m × k; element (i, p) at a[i·rs + p·cs]) into `packed` (ck_sgemm_packed_a_size floats).
void ck_sgemm_pack_a(int m, int k, const float *a, ptrdiff_t rs, ptrdiff_t cs, float *packed);
/// Packs the strided matrix B (k × n; element (p, j) at b[p·rs + j·cs]) into `packed` (ck_sgemm_packed_b_size floats).
void ck_sgemm_pack_b(int k, int n, const float *b, ptrdiff_t rs, ptrdiff_t cs, float *packed);

/// C = epilogue(A · B) on up to ck_num_threads() threads; operands strided or packed (unpacked ones are packed
/// internally, per call). With k = 0 the product is zero and the epilogue still runs. epilogue may be NULL (plain
/// C = A · B).
void ck_sgemm(int m, int n, int k, ck_operand a, ck_operand b, float *c, ptrdiff_t ldc, const ck_epilogue *epilogue);

/// Same as ck_sgemm on the calling thread only (for callers that run many small products in parallel themselves).
void ck_sgemm_serial(int m, int n, int k, ck_operand a, ck_operand b, float *c, ptrdiff_t ldc, const ck_epilogue *epilogue);

/// ck_sgemm with an explicit instruction set (CK_ISA_AUTO: the active one; one the CPU lacks falls back to the best
/// supported) and thread count (0: ck_num_threads()), without touching the global settings: for tests that
/// compare paths while other products run.
void ck_sgemm_with(int m, int n, int k, ck_operand a, ck_operand b, float *c, ptrdiff_t ldc, const ck_epilogue *epilogue,
                   ck_isa isa, int threads);

/// Shorthand: C = A · B with a prepacked B (the compile-time-packed weight case).
void ck_sgemm_packed(int m, int n, int k, const float *a, ptrdiff_t rs_a, ptrdiff_t cs_a, const float *packed_b,
                     float *c, ptrdiff_t ldc, const ck_epilogue *epilogue);

/// The im2col matrix of a 2-D convolution, read without being built: row p = (channel c, kernel row i, kernel
/// column j) in row-major order, column q = (output row oh, output column ow); element
/// x[c, oh·stride_h − pad_top + i·dilation_h, ow·stride_w − pad_left + j·dilation_w], 0 outside x.
/// x is `channels` planes of in_h × in_w.
typedef struct {
    const float *x;
    int channels, in_h, in_w, out_h, out_w, kernel_h, kernel_w;
    int stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w;
} ck_conv2d_input;

/// Y[m × out_h·out_w] (rows ldc apart) = epilogue(A · im2col(input)): a 2-D convolution (one group, one image) as
/// a GEMM whose B is packed straight from the input, one cache block at a time, so no im2col matrix is written.
/// A is m × (channels·kernel_h·kernel_w), strided or packed, as in ck_sgemm.
void ck_sconv2d(int m, ck_operand a, const ck_conv2d_input *input, float *y, ptrdiff_t ldc, const ck_epilogue *epilogue);

/// Depthwise 2-D convolution of NCHW planes, one 2-D filter per channel:
///   y[b, c] = act(bias[c] + Σ_{i, j} w[c, i, j] · x[b, c, oh·sh − ph + i·dh, ow·sw − pw + j·dw])  (zero outside x),
/// summed tap by tap in row-major kernel order. x is batch × channels planes of in_h × in_w, y batch × channels planes
/// of out_h × out_w, w channels × kernel_h × kernel_w; bias may be NULL. The epilogue's bias fields are ignored (the
/// bias is per channel here); its activation applies. Planes run in parallel on the pool.
void ck_depthwise_conv2d(int batch, int channels, int in_h, int in_w, int out_h, int out_w, int kernel_h, int kernel_w,
                         int stride_h, int stride_w, int pad_top, int pad_left, int dilation_h, int dilation_w,
                         const float *x, const float *w, const float *bias, float *y, const ck_epilogue *epilogue);

/// Runs body(context, i) for i in 0..<count on the pool (the caller takes part). Nested or concurrent calls run
/// serially on the calling thread. body must not throw or longjmp.
void ck_parallel_for(int count, void (*body)(void *context, int index), void *context);

/// x[i] = sigmoid(x[i]) (1 / (1 + e^-x)) and x[i] = x[i]·sigmoid(x[i]) over n floats, in place: a vectorized exp
/// (≤ 2 ulp) on AVX2/FMA, libm's expf otherwise. NaN stays NaN.
void ck_sigmoid_inplace(float *x, size_t n);
void ck_silu_inplace(float *x, size_t n);
/// x[i] = e^(x[i] − maximum) over n floats in place, returning their sum: the exponentials of a softmax row.
float ck_softmax_exp(float *x, size_t n, float maximum);

#ifdef __cplusplus
}
#endif

#endif
