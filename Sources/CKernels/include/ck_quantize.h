#pragma once
#include <stddef.h>
#include <stdint.h>
#include "ckernels.h"

// MARK: - Per-tensor (de)quantization and uint8 pooling, for int8 models' float islands and data movement

/// y = saturate(round_half_even(x / scale) + zero_point) to 0…255: ONNX QuantizeLinear per tensor (uint8). The
/// AVX2 and scalar paths give the same bytes (IEEE division, then the same rounding). NaN gives zero_point.
void ck_quantize_u8(size_t n, const float *x, float scale, int zero_point, uint8_t *y);
/// y = (x − zero_point) · scale: ONNX DequantizeLinear per tensor (uint8), exact in float.
void ck_dequantize_u8(size_t n, const uint8_t *x, float scale, int zero_point, float *y);
/// The same for int8 x (an int8 model's embedding rows).
void ck_dequantize_s8(size_t n, const int8_t *x, float scale, int zero_point, float *y);
/// MaxPool of channels-last uint8 tensors (strides in bytes): the float pool's geometry and windows; a window
/// with no tap inside the image gives 0. On the pool, by output rows.
void ck_maxpool2d_nhwc_u8(const ck_pool_nhwc *geometry, const uint8_t *x, uint8_t *y);

/// AveragePool of a channels-last uint8 tensor between two grids (the float pool's geometry and windows):
/// y = saturate(round_half_even((Σ x − taps·x_zp) · x_scale / (y_scale · d)) + y_zp) over each window's in-image
/// taps, d = kernel_h·kernel_w with count_include_pad, else the taps (int32 sums, one float rounding). On the pool,
/// by output rows.
void ck_qavgpool2d_nhwc_u8(const ck_pool_nhwc *geometry, const uint8_t *x, float x_scale, int x_zero_point, float y_scale, int y_zero_point,
                           int count_include_pad, uint8_t *y);

/// y = x widened from IEEE float16 (little-endian bit patterns) to float32, exactly (F16C where the CPU has it).
void ck_half_to_float(size_t n, const uint16_t *x, float *y);
/// ONNX DynamicQuantizeLinear: the grid of x's range (widened to include 0) into *scale and *zero_point, then y as
/// ck_quantize_u8 with it (the interpreter's formula: scale = (max − min) / 255, zero point saturate(round(−min/scale))).
void ck_dynamic_quantize_u8(size_t n, const float *x, uint8_t *y, float *scale, uint8_t *zero_point);
/// y[i] = table[x[i]]: an element-wise function of a quantized tensor, tabulated over its 256 values (AVX-512 VBMI
/// where the CPU has it and the active instruction set is AVX-512 or above, else AVX2 VPSHUFB; on the pool).
void ck_lookup_u8(size_t n, const uint8_t *x, const uint8_t *table, uint8_t *y);
/// y = saturate(round_half_even((a − a_zp)·(a_scale/y_scale) + (b − b_zp)·(b_scale/y_scale)) + y_zp) for two uint8
/// tensors of n elements (ONNX Runtime's float QLinearAdd; the scalar and AVX2 paths give the same bytes). y may
/// be a or b. On the pool in 64 K-element chunks.
void ck_qadd_u8_float(size_t n, const uint8_t *a, float a_scale, int a_zero_point, const uint8_t *b, float b_scale, int b_zero_point,
                      float y_scale, int y_zero_point, uint8_t *y);
/// y[b] = x[b]ᵀ for `batch` row-major rows × cols byte matrices, on the pool (tiled).
void ck_transpose_batched_u8(int batch, int rows, int cols, const uint8_t *x, uint8_t *y);
/// GlobalAveragePool of a channels-last uint8 tensor [batch, pixels, channels] between two grids:
/// y[b, c] = saturate(round((Σ_p x − pixels·x_zp) · x_scale / (pixels · y_scale)) + y_zp).
void ck_qglobal_avgpool_nhwc_u8(int batch, int pixels, int channels, const uint8_t *x, float x_scale, int x_zero_point, float y_scale,
                                int y_zero_point, uint8_t *y);
/// y[b, p, c] = saturate(round((a[b, p, c] − a_zp) · (gate[b, c] − g_zp) · a_scale · g_scale / y_scale) + y_zp): a
/// squeeze-excitation gate (one value per image and channel) applied to a channels-last uint8 tensor.
void ck_qmul_channel_u8(int batch, int pixels, int channels, const uint8_t *a, float a_scale, int a_zero_point, const uint8_t *gate,
                        float gate_scale, int gate_zero_point, float y_scale, int y_zero_point, uint8_t *y);
/// The arithmetic of ck_qbinary_u8.
typedef enum { CK_QBINARY_ADD = 0, CK_QBINARY_MUL = 1 } ck_qbinary_op;
/// y = a op b on uint8 grids with NumPy broadcasting: a row-major output of `rank` dims (1…8) `shape`, each operand
/// read at its per-axis element strides (0 along the axes it is broadcast over), as ck_binary_f32. Add is
/// ck_qadd_u8_float's arithmetic; Mul is saturate(round_half_even((a − a_zp)·((b − b_zp)·k)) + y_zp) with
/// k = a_scale·b_scale/y_scale in float32, ck_qmul_channel_u8's (the product clamped to ±512 first). Operands of
/// the output's shape give those kernels' bytes; the scalar and AVX2 paths agree. On the pool by rows (long rows
/// in 64 K-element pieces). Returns 0 when the rank or op is out of range (nothing written).
int ck_qbinary_u8(int op, int rank, const int *shape, const ptrdiff_t *a_strides, const ptrdiff_t *b_strides, const uint8_t *a,
                  float a_scale, int a_zero_point, const uint8_t *b, float b_scale, int b_zero_point, float y_scale, int y_zero_point,
                  uint8_t *y);
