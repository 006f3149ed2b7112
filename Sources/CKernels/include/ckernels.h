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
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Register tile: CK_MR rows of A by CK_NR columns of B (6 × 16 = 12 AVX2 accumulators).
#define CK_MR 6
#define CK_NR 16

/// The activation an epilogue applies. The numbering is onnxc's; the formulas are the runtime's standalone kernels'
/// (Relu: x > 0 ? x : 0; Clip: min(max(x, p0), p1) as x < p0 ? p0 : x, then > p1 ? p1; LeakyRelu: x < 0 ? p0·x : x;
/// HardSigmoid: max(0, min(1, p0·x + p1)); HardSwish: x · max(0, min(1, x / 6 + 0.5)); Sigmoid: 1 / (1 + e^-x) and
/// Silu: x · sigmoid(x), with the vector exp of ck_sigmoid_inplace on AVX2 and libm's expf otherwise, so an epilogue
/// computes what ck_sigmoid_inplace / ck_silu_inplace would; Tanh; Gelu: 0.5·x·(1 + erf(x/√2)); GeluTanh:
/// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) — tanh and erf as rational approximations within a few ulp on AVX2,
/// libm's tanhf and erff otherwise).
typedef enum {
    CK_ACT_NONE = 0,
    CK_ACT_RELU = 1,
    CK_ACT_CLIP = 2,
    CK_ACT_LEAKY_RELU = 3,
    CK_ACT_HARD_SIGMOID = 4,
    CK_ACT_HARD_SWISH = 5,
    CK_ACT_SIGMOID = 6,
    CK_ACT_SILU = 7,
    CK_ACT_TANH = 8,
    CK_ACT_GELU = 9,
    CK_ACT_GELU_TANH = 10,
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
    /// Set by the kernels, not the caller: 16-lane (AVX-512) Sigmoid and Silu, from the call's instruction set, so a
    /// fused activation computes exactly what the standalone one does on the same level.
    int wide;
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
    /// AVX-512 (F, VL, DQ): the kernels that have an AVX-512 form use it (the channels-last convolution); the others
    /// run their AVX2 form. Sums run in the same order on either path, so results are the same.
    CK_ISA_AVX512 = 3,
    /// AVX-512 as above plus BW and VNNI (vpdpbusd): the quantized kernels' fast path; every float kernel runs as
    /// under CK_ISA_AVX512. Each level includes the ones below it, so asking for a lower one runs that path.
    CK_ISA_AVX512_VNNI = 4,
} ck_isa;

/// The instruction set products run with now (never CK_ISA_AUTO).
ck_isa ck_active_isa(void);
/// Forces an instruction set (for tests and benchmarks); asking for one the CPU lacks, or CK_ISA_AUTO, selects the
/// best supported. Returns the one now active. Not for use while products run. The default is the best level the
/// CPU has, or a lower one named by the ONNXC_ISA environment variable (scalar, avx2, avx512, avx512vnni).
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

/// Asks the C allocator (glibc) to keep freed memory for reuse: no heap trimming below 256 MB and no mmap for blocks
/// under 32 MB. Its defaults give a freed heap top above 128 KB, and every large block, back to the kernel at once,
/// and each return (a brk shrink, an munmap) is a TLB shootdown that interrupts the pool's spinning workers — while
/// the next run asks for the same bytes again. Process-wide, so only a host program should call it (the onnxc CLI
/// does). Returns 1 when both settings took.
int ck_keep_freed_memory(void);

/// Starts the pool's workers now (a no-op job on every thread), so that a model's first product does not also pay
/// for creating and scheduling them: for loaders to call once the model is ready.
void ck_pool_warm_up(void);

/// Runs body(context, i) for i in 0..<count on the pool (the caller takes part). Nested or concurrent calls run
/// serially on the calling thread. body must not throw or longjmp.
void ck_parallel_for(int count, void (*body)(void *context, int index), void *context);

/// x[i] = sigmoid(x[i]) (1 / (1 + e^-x)) and x[i] = x[i]·sigmoid(x[i]) over n floats, in place: a vectorized exp
/// (≤ 2 ulp) on AVX2/FMA, libm's expf otherwise. NaN stays NaN.
void ck_sigmoid_inplace(float *x, size_t n);
void ck_silu_inplace(float *x, size_t n);
/// x[i] = e^(x[i] − maximum) over n floats in place, returning their sum: the exponentials of a softmax row.
float ck_softmax_exp(float *x, size_t n, float maximum);
/// The arithmetic of ck_binary_f32.
typedef enum { CK_BINARY_ADD = 0, CK_BINARY_SUB = 1, CK_BINARY_MUL = 2, CK_BINARY_DIV = 3 } ck_binary_op;

/// y = a op b over a row-major output of `rank` dims (1…8) `shape`, each operand read at the element offsets of its
/// per-axis strides (0 along the axes it is broadcast over): y[i…] = a[Σ i·as] op b[Σ i·bs]. The last axis is
/// vectorized when both operands are contiguous (stride 1) or broadcast (stride 0) along it. Large outputs run on
/// the pool. IEEE arithmetic, one operation per element. Returns 0 when the rank is out of range (nothing written).
int ck_binary_f32(int op, int rank, const int *shape, const ptrdiff_t *a_strides, const ptrdiff_t *b_strides, const float *a,
                  const float *b, float *y);
/// y[r·ldy + c] = a[r·lda + c] op b[r·ldb + c] for rows × columns (strides in floats): ck_binary_f32's arithmetic on
/// same-shape operands whose rows lie inside wider tensors (channel windows), the output's too. Returns 0 when a
/// size exceeds INT_MAX (nothing written).
int ck_binary_rows_f32(int op, size_t rows, size_t columns, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                       float *y, ptrdiff_t ldy);

/// Copies `rows` rows of row_bytes bytes, row r from src + r·src_stride to dst + r·dst_stride (strides in bytes):
/// the blocks of a Concat, Split or Slice along one axis. Large copies run on the pool.
void ck_copy_rows(size_t rows, size_t row_bytes, const void *src, ptrdiff_t src_stride, void *dst, ptrdiff_t dst_stride);
/// Output row r (row_bytes bytes) = source row sources[r] of src, or zeros where sources[r] < 0: a nearest-neighbour
/// resize of whole pixels, say. Large gathers run on the pool.
void ck_gather_rows(size_t rows, size_t row_bytes, const void *src, const int64_t *sources, void *dst);

/// x[i] = activation(x[i]) in place, with exactly the formulas of the GEMM and convolution epilogues (so an
/// activation applied on its own equals the fused one).
void ck_activation_inplace(float *x, size_t n, ck_activation activation, float param0, float param1);

/// One LSTM step's gates for one batch row with ONNX's default activations, no peepholes, clip or input_forget:
/// a = pre + rec in gate order i, o, f, c (hidden values each); c ← σ(a_f)·c + σ(a_i)·tanh(a_c), h ← σ(a_o)·tanh(c).
/// Each element gets the bits ck_activation_inplace and the op-by-op arithmetic give, in one pass.
void ck_lstm_gates(int hidden, const float *pre, const float *rec, float *c, float *h);

// MARK: - Channels-last (NHWC) convolution

/// The geometry of a 2-D convolution of channels-last tensors: X is batch × in_h × in_w pixels, each x_stride floats
/// apart (at least groups·group_in), Y batch × out_h × out_w pixels y_stride floats apart (at least
/// groups·group_out). Output channel o of group g reads input channels g·group_in …< (g + 1)·group_in.
/// x_channel_stride 0 (or 1) means X's channels are contiguous (channels last); any other value reads X channels
/// first — channel planes x_channel_stride floats apart, pixels x_stride (1) apart, images groups·group_in planes
/// apart — so a stem convolution reads an NCHW image without a transpose first (ck_conv2d_nhwc only).
typedef struct {
    int batch, in_h, in_w, out_h, out_w;
    int kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w;
    int groups, group_in, group_out;
    ptrdiff_t x_stride, y_stride;
    ptrdiff_t x_channel_stride;
} ck_conv_nhwc;

/// What follows the product, in this order, while the tile is in registers: the bias (one value per output
/// channel, or NULL), a residual (a tensor of Y's pixels, residual_stride floats apart, added element by element,
/// or NULL), the activation.
typedef struct {
    const float *bias;
    const float *residual;
    ptrdiff_t residual_stride;
    ck_activation activation;
    float param0, param1;
} ck_conv_epilogue;

/// Packed NHWC convolution weights (ours, stable: the compiler stores them in this form). For each group g and each
/// panel j of CK_NR output channels, taps (kernel row, then kernel column) × group_in rows of CK_NR floats:
///   packed[((g·panels + j)·taps·group_in + t·group_in + c)·CK_NR + col] = W[g·group_out + j·CK_NR + col, c, i, jw]
/// with t = i·kernel_w + jw, panels = ceil(group_out / CK_NR), and 0 for output channels past group_out.
/// W is ONNX's [groups·group_out, group_in, kernel_h, kernel_w].
size_t ck_conv_nhwc_packed_size(int groups, int group_out, int group_in, int kernel_h, int kernel_w);
void ck_conv_nhwc_pack(int groups, int group_out, int group_in, int kernel_h, int kernel_w, const float *w, float *packed);

/// Y = epilogue(conv(X, W)) for channels-last X and Y and weights packed by ck_conv_nhwc_pack, on the pool. Each
/// output sums its taps in (kernel row, kernel column, input channel) order, whatever the thread count; padding
/// taps read zeros. epilogue may be NULL.
void ck_conv2d_nhwc(const ck_conv_nhwc *geometry, const float *x, const float *packed_w, const ck_conv_epilogue *epilogue,
                    float *y);

/// Whether ck_conv2d_nhwc_winograd computes this convolution: 3×3, stride 1, dilation 1, one group, channels-last
/// input (any padding: taps outside the image read zeros, as in the direct form).
int ck_conv_nhwc_winograd_applies(const ck_conv_nhwc *geometry);
/// Floats of workspace ck_conv2d_nhwc_winograd needs (the transformed weights: 16/9 of the packed ones).
size_t ck_conv_nhwc_winograd_workspace(const ck_conv_nhwc *geometry);
/// ck_conv2d_nhwc by Winograd F(2×2, 3×3): 2.25× fewer multiply-adds, from the same packed weights, which it
/// transforms into `workspace` (64-byte aligned, ck_conv_nhwc_winograd_workspace floats; NULL: allocated and freed
/// per call). Rounding differs from the direct sums but its error against exact sums is of the same size. Only for
/// geometries ck_conv_nhwc_winograd_applies accepts.
void ck_conv2d_nhwc_winograd(const ck_conv_nhwc *geometry, const float *x, const float *packed_w, const ck_conv_epilogue *epilogue,
                             float *workspace, float *y);

/// Packed depthwise weights (ours, stable): for each block of CK_NR channels, taps × CK_NR floats:
///   packed[(cb·taps + t)·CK_NR + col] = W[cb·CK_NR + col, 0, i, jw], 0 past the last channel. W is [channels, 1, kh, kw].
size_t ck_depthwise_nhwc_packed_size(int channels, int kernel_h, int kernel_w);
void ck_depthwise_nhwc_pack(int channels, int kernel_h, int kernel_w, const float *w, float *packed);

/// A depthwise convolution (groups = channels, group_in = group_out = 1 in the geometry) of channels-last tensors:
/// each output channel sums its taps in (kernel row, kernel column) order, then the epilogue. On the pool.
void ck_depthwise2d_nhwc(const ck_conv_nhwc *geometry, const float *x, const float *packed_w, const ck_conv_epilogue *epilogue,
                         float *y);

// MARK: - Channels-last pooling and layout transposes

/// The geometry of a 2-D pool over channels-last tensors (pixels x_stride / y_stride floats apart, at least
/// `channels`). Windows read only taps inside the image; a window with none gives 0.
typedef struct {
    int batch, in_h, in_w, out_h, out_w, channels;
    int kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w;
    ptrdiff_t x_stride, y_stride;
} ck_pool_nhwc;

/// Max over each window's taps (−∞ start; a NaN tap is skipped, as in `x > m ? x : m`), on the pool.
void ck_maxpool2d_nhwc(const ck_pool_nhwc *geometry, const float *x, float *y);
/// Sum of each window's taps in (row, column) order divided by their count, or by the kernel size when
/// count_include_pad is nonzero.
void ck_avgpool2d_nhwc(const ck_pool_nhwc *geometry, const float *x, float *y, int count_include_pad);
/// y[n, c] = mean (or max, when max is nonzero) over the pixels of x[n, ·, c] (x: batch × pixels × channels, dense).
void ck_global_pool_nhwc(int batch, int pixels, int channels, const float *x, float *y, int max);
/// y[n] = x[n]ᵀ for batch row-major rows × cols matrices (NCHW → NHWC with rows = C, cols = H·W; NHWC → NCHW the
/// other way round), in cache tiles, on the pool when large.
void ck_transpose_batched(int batch, int rows, int cols, const float *x, float *y);

/// The channels-last kernels above with an explicit instruction set (CK_ISA_AUTO: the active one; one the CPU lacks
/// falls back to the best supported) and thread count (0: ck_num_threads(); small problems still run on the calling
/// thread), without touching the global settings: for tests that compare paths while other products run, as
/// ck_sgemm_with. The instruction set is chosen once per call.
void ck_conv2d_nhwc_with(const ck_conv_nhwc *geometry, const float *x, const float *packed_w,
                         const ck_conv_epilogue *epilogue, float *y, ck_isa isa, int threads);
void ck_conv2d_nhwc_winograd_with(const ck_conv_nhwc *geometry, const float *x, const float *packed_w,
                                  const ck_conv_epilogue *epilogue, float *workspace, float *y, ck_isa isa, int threads);
void ck_depthwise2d_nhwc_with(const ck_conv_nhwc *geometry, const float *x, const float *packed_w,
                              const ck_conv_epilogue *epilogue, float *y, ck_isa isa, int threads);
void ck_maxpool2d_nhwc_with(const ck_pool_nhwc *geometry, const float *x, float *y, ck_isa isa, int threads);
void ck_avgpool2d_nhwc_with(const ck_pool_nhwc *geometry, const float *x, float *y, int count_include_pad, ck_isa isa,
                            int threads);
void ck_global_pool_nhwc_with(int batch, int pixels, int channels, const float *x, float *y, int max, ck_isa isa);
void ck_transpose_batched_with(int batch, int rows, int cols, const float *x, float *y, int threads);

// MARK: - Quantized (u8 × s8) channels-last convolution
//
// Scheme (ONNX Runtime's QDQ default and the TFLite spec agree): activations uint8, asymmetric per tensor (scale s,
// zero point z); weights int8, symmetric per output channel (zero point 0, values in [−127, 127]; −128 is computed
// exactly too); bias int32 with scale s_x·s_w[c]; int32 accumulation; output uint8 requantized with
// TFLite's fixed-point multipliers, or float32.
//
// Instruction sets (chosen once per call, like the float kernels'; measurements at the top of qconv_nhwc.c and in
// docs/benchmarks.md, "Quantized kernels"):
//   CK_ISA_AVX512_VNNI  vpdpbusd (u8 × s8, four products summed into an s32 lane, no saturation): exact as is; a
//                       12-pixel × 32-channel tile. The depthwise kernel runs its AVX2 form.
//   CK_ISA_AVX2_FMA,    VPMADDUBSW (u8 × s8 → saturating s16 pair sums) cannot take full-range operands (2·255·127 >
//   CK_ISA_AVX512       32767). The AVX2 path widens instead: x − x_zero_point as s16 (once per call, into a
//                       per-thread buffer: 2 bytes per input channel), weights to s16 per task (from the stored int8
//                       panels, kept in L2), and VPMADDWD sums pairs exactly into s32. Measured faster than the exact
//                       alternative, VPMADDUBSW(|x'|, VPSIGNB(w, x')) with x' = x − 128 (195 vs 133 GOP/s per core in
//                       the register tile here, and fewer multiply-port µops on Intel cores), with full 8-bit weights
//                       (no 7-bit reduce_range).
//   CK_ISA_SCALAR       portable C, the reference: plain loops over the geometry, padding taps skipped.
// Integer sums are exact, and every path requantizes with the same integer operations, so all paths and thread
// counts give bit-identical outputs.
//
// Accumulation: acc = bias[c] + Σ (x − x_zero_point)·w over the taps inside the image, in int32 arithmetic modulo
// 2^32 (exact whenever the true sum fits an int32: always for K = taps·group_in ≤ 32,000 and |bias| < 2^30). The
// VNNI path folds −x_zero_point·Σw into the bias with the packed Σw and reads padding taps as pixels of
// x_zero_point, which add exactly 0; the AVX2 path subtracts x_zero_point while widening and reads zeros there.
//
// Requantization (TFLite's MultiplyByQuantizedMultiplier, the two-rounding form), per output channel c:
//   round_fixed(acc, M, shift) = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc << left, M), right)
//   left = min(max(shift, 0), 31), right = min(max(−shift, 0), 31);
//   acc << left wraps modulo 2^32; SaturatingRoundingDoublingHighMul(a, M) = (a·M + 2^30) >> 31 with a·M exact in
//   int64 — the same as TFLite's nudge-and-truncate; RoundingDivideByPOT rounds half away from zero.
//   M must be in [0, 2^31) (ck_quantize_multiplier gives [2^30, 2^31), or 0); TFLite's saturation of M = a = −2^31
//   then never arises.
//   u8 output:  y = clamp(y_zero_point + round_fixed(acc, multiplier[c], shift[c]), clamp_min, clamp_max)  (the
//               addition wraps modulo 2^32, as the vector form does)
//   f32 output: y = (float)acc · scale[c]  (round to nearest, then one float multiply)

/// TFLite's QuantizeMultiplier: real = multiplier · 2^(shift − 31), multiplier in [2^30, 2^31), from frexp and
/// round-half-away-from-zero of the significand times 2^31 (0.5 → (2^30, 0), 0.25 → (2^30, −1), 1.0 → (2^30, 1),
/// 0.75 → (3·2^29, 0)). real = 0 (and |real| below about 2^−32, where shift < −31) gives (0, 0); real ≥ 2^30 is
/// capped at (2^31 − 1, 30), as TFLite's single-rounding build does, since larger left shifts are meaningless.
/// Negative reals are outside the scheme.
void ck_quantize_multiplier(double real, int32_t *multiplier, int *shift);
/// round_fixed above, for one value: what every quantized kernel computes before the output zero point and clamp.
int32_t ck_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift);

/// Packed convolution weights (ours, stable: the compiler stores them in this form). With K = taps·group_in
/// (taps = kernel_h·kernel_w, k = t·group_in + c for tap t = i·kernel_w + j and input channel c), Kq = ceil(K / 4)
/// quads and panels = ceil(group_out / 16):
///   bytes [0, W), W = groups·panels·Kq·64, int8:
///     packed[((g·panels + p)·Kq + q)·64 + col·4 + i] = W[g·group_out + p·16 + col, c, kh, kw] for k = 4q + i,
///     0 for k ≥ K and for output channels past group_out (each 4-byte group is one vpdpbusd lane);
///   then groups·group_out int32 (native byte order, offset W, so 4-byte aligned): sum[o] = Σ_k W[o, k].
/// W is ONNX's [groups·group_out, group_in, kernel_h, kernel_w]. Size in bytes: ck_qconv_nhwc_packed_size.
size_t ck_qconv_nhwc_packed_size(int groups, int group_out, int group_in, int kernel_h, int kernel_w);
void ck_qconv_nhwc_pack(int groups, int group_out, int group_in, int kernel_h, int kernel_w, const int8_t *w, void *packed);

/// Packed depthwise weights (ours, stable): blocks = ceil(channels / 16), for each block of 16 channels taps × 16
/// int8, packed[(cb·taps + t)·16 + col] = W[cb·16 + col, 0, i, j] (0 past the last channel), then `channels` int32
/// at offset blocks·taps·16: sum[c] = Σ_t W[c, 0, t] (the vector paths fold −x_zero_point·sum into the bias).
/// W is [channels, 1, kernel_h, kernel_w].
size_t ck_qdepthwise_nhwc_packed_size(int channels, int kernel_h, int kernel_w);
void ck_qdepthwise_nhwc_pack(int channels, int kernel_h, int kernel_w, const int8_t *w, void *packed);

/// The epilogue of one quantized convolution (formulas above), per output channel c of all groups·group_out.
typedef struct {
    const int32_t *bias;        ///< per output channel, or NULL (0)
    int32_t x_zero_point;       ///< 0…255
    // u8 output (scale == NULL):
    const int32_t *multiplier;  ///< per output channel, in [0, 2^31)
    const int32_t *shift;       ///< per output channel: the left shift (negative: right)
    int32_t y_zero_point;
    int32_t clamp_min, clamp_max;  ///< in output quantized units, 0 ≤ clamp_min ≤ clamp_max ≤ 255 (fused Relu: clamp_min = y_zero_point)
    // f32 output instead (y is float *): scale[c] = s_x·s_w[c]; NULL for u8 output.
    const float *scale;
    // u8 output only: a fused quantized Add of a residual tensor (NULL: none). Each output y (after its zero point
    // and clamps) and the residual byte r at the same pixel and channel become ck_qadd_u8_float's result, exactly:
    // with (a, b) = (r, y) if residual_is_a else (y, r), saturate(round_half_even(fmaf(b − add_zb, add_kb,
    // (a − add_za)·add_ka)) + add_zy) (the sum first clamped to ±512), ka and kb the Add's a_scale/y_scale and
    // b_scale/y_scale.
    const uint8_t *residual;
    ptrdiff_t residual_stride;  ///< bytes between the residual's pixels
    float add_ka, add_kb;
    int32_t add_za, add_zb, add_zy;
    int32_t residual_is_a;
    // What ck_qconv_prepare derived for this layer and this epilogue's constants (NULL: each call derives its own).
    const void *prepared;
} ck_qepilogue;

/// A quantized convolution's per-layer constants, derived once instead of on every call: the path's bias (with
/// −x_zero_point·Σw folded in where the path wants it), the folded requantization's plan and, for the depthwise
/// kernel, its widened weights and lane-ordered constants — per call, that serial work held mobilenet_v2 int8's 7×7
/// layers to 1.2× on two threads. Only the geometry's groups, group_in, group_out, kernel_h and kernel_w are read;
/// the epilogue's bias, multipliers, shifts, scales, zero points must stay those of every call that passes it as
/// ck_qepilogue.prepared (a call on another instruction set, channel count or x zero point derives its own). NULL
/// when memory ran out. Free with ck_qconv_prepared_free (NULL is fine).
void *ck_qconv_prepare(const ck_conv_nhwc *geometry, const void *packed_w, const ck_qepilogue *epilogue, int depthwise);
void ck_qconv_prepared_free(void *prepared);

/// Y = epilogue(conv(X, W)) for channels-last u8 X and weights packed by ck_qconv_nhwc_pack, on the pool. The
/// geometry is the float kernels' ck_conv_nhwc with strides in elements: x_stride in bytes, y_stride in bytes (u8
/// output) or floats (f32 output); x_channel_stride must be 0 or 1 (channels last). A Gemm/MatMul X[M×K]·Wᵀ is the
/// 1×1 convolution over in_h = M, in_w = 1. y is uint8_t * or float * per the epilogue. Pointers need no alignment.
/// The AVX2 path (and the VNNI path for channel counts not a multiple of 4, or below 16 with kernel_w > 1) first
/// copies X into a per-thread buffer of the calling thread, and tasks keep widened weights in per-thread buffers:
/// both grow to the largest call's need (about twice the input; about 256 KB of panels, or the one or two panels of a
/// larger K) and are kept. Concurrent calls from different threads are safe (the pool runs one at a time, the others
/// run on their callers).
void ck_qconv2d_nhwc(const ck_conv_nhwc *geometry, const uint8_t *x, const void *packed_w, const ck_qepilogue *epilogue, void *y);
/// A depthwise convolution (groups = channels, group_in = group_out = 1) of channels-last u8 tensors, weights packed
/// by ck_qdepthwise_nhwc_pack, on the pool.
void ck_qdepthwise2d_nhwc(const ck_conv_nhwc *geometry, const uint8_t *x, const void *packed_w, const ck_qepilogue *epilogue,
                          void *y);
/// The two above with an explicit instruction set and thread count, as ck_conv2d_nhwc_with (CK_ISA_AUTO: the active
/// one; one the CPU lacks falls back to the best supported; threads 0: ck_num_threads()).
void ck_qconv2d_nhwc_with(const ck_conv_nhwc *geometry, const uint8_t *x, const void *packed_w, const ck_qepilogue *epilogue,
                          void *y, ck_isa isa, int threads);
void ck_qdepthwise2d_nhwc_with(const ck_conv_nhwc *geometry, const uint8_t *x, const void *packed_w,
                               const ck_qepilogue *epilogue, void *y, ck_isa isa, int threads);

/// y[i·ldy + c] = x_scale · w_scale[c] · Σ_k (x[i·k + kk] − x_zero_point) · W[c, kk] for rows i < m and columns c < n:
/// a product of a few uint8 rows (contiguous, k bytes each) on a grid known only now with int8 weights packed by
/// ck_qconv_nhwc_pack (groups 1, 1×1, group_in = k, group_out = n), float out — a dynamically quantized recurrent
/// op's step, where the convolution kernel's per-call set-up costs as much as the product. Integer sums are
/// exact; each output is one float conversion and two float multiplies, the same on the AVX-512 VNNI and AVX2
/// paths. Without AVX2 it returns 0 and writes nothing (the caller then uses ck_qconv2d_nhwc).
int ck_qgemv_f32(int m, int n, int k, const uint8_t *x, int x_zero_point, float x_scale, const void *packed_w, const float *w_scale,
                 float *y, ptrdiff_t ldy);
/// ck_qgemv_f32 on an explicit instruction set (CK_ISA_AUTO: the active one), for tests that compare the paths.
int ck_qgemv_f32_with(int m, int n, int k, const uint8_t *x, int x_zero_point, float x_scale, const void *packed_w, const float *w_scale,
                      float *y, ptrdiff_t ldy, ck_isa isa);

// MARK: - Transformer kernels

/// Shapes of one fused attention call over `batch` (broadcast) entries: per entry, Q is sq × d (row-major), Kt
/// d × sk, V sk × dv, Y rows × dv; rows is sq, or the mask's row count when a one-row Q is broadcast up by it. The
/// mask (optional) is read at mask[entry offset + row·mask_row_stride + column·mask_column_stride] (strides 0
/// broadcast).
typedef struct {
    int batch, sq, rows, d, sk, dv;
    ptrdiff_t mask_row_stride, mask_column_stride;
} ck_attention_shape;

/// Y = softmax(scale · Q·Kt + mask) · V per batch entry (offsets, in floats, of each operand's entry), in blocks of
/// 32 query rows on the pool: Kt and V are packed once, the products run on the packed GEMM, the softmax with the
/// vector exp. A row whose scores are all −∞ gives NaN, as Softmax does.
void ck_attention(const ck_attention_shape *shape, const float *q, const ptrdiff_t *q_offsets, const float *kt,
                  const ptrdiff_t *kt_offsets, const float *v, const ptrdiff_t *v_offsets, const float *mask,
                  const ptrdiff_t *mask_offsets, float scale, float *y);

/// y[r] = (x[r] − mean) / sqrt(variance + epsilon) · scale + bias for `rows` contiguous rows of `length` floats
/// (bias may be NULL); mean and inv_std (1/sqrt(variance + epsilon)), when not NULL, receive the statistics.
void ck_layernorm(int rows, int length, const float *x, const float *scale, const float *bias, float epsilon, float *y,
                  float *mean, float *inv_std);

// MARK: - Dense linear algebra (compile-time fits)

/// Overwrites the lower triangle of the symmetric n × n row-major matrix `a` with L, A = L·Lᵀ (the upper triangle
/// is left as given). Returns 0 if A is not positive definite (a stops part way), 1 otherwise.
int ck_cholesky_f64(int n, double *a);
/// Solves L·Lᵀ·X = B in place for the n × m row-major B, with L from ck_cholesky_f64.
void ck_cholesky_solve_f64(int n, const double *l, int m, double *b);

#ifdef __cplusplus
}
#endif

#endif
