// The field's convolutions behind one interface, for bench_conv.c: XNNPACK and oneDNN, each dlopen'ed at run time
// (bench_conv_libs.c), so a machine without one still builds the benchmark and prints "-" in its column.
#ifndef BENCH_CONV_LIBS_H
#define BENCH_CONV_LIBS_H

#include <stdint.h>

/// One layer, one image, with the fused bias and ReLU of onnxc's Conv + Relu.
typedef struct {
    const char *name;
    int cin, cout, in_size, out_size, kernel, stride, pad, groups;
    const float *x;    ///< NHWC input, in_size² pixels of cin floats (with slack after the end: see XNN_EXTRA_BYTES)
    const float *w;    ///< ONNX weights [cout, cin / groups, kernel, kernel]
    const float *bias; ///< cout floats
    float *y;          ///< NHWC output, out_size² pixels of cout floats
} conv_problem;

typedef struct {
    const char *column; ///< column title
    const char *key;    ///< its name on bench_conv's command line
    /// Loads the library for `threads` threads; 0 (with the reason on stderr) when it is missing or unusable.
    int (*load)(int threads);
    /// Everything done once per layer (weight packing or reorder, operator setup), outside the timed calls; NULL
    /// (with the reason on stderr) when the library declines the layer.
    void *(*create)(const conv_problem *problem);
    /// One forward call, writing problem->y.
    void (*run)(void *op);
    void (*destroy)(void *op);
} conv_library;

extern const conv_library xnnpack_library, dnnl_library;

/// One quantized layer (bench_conv --int8): u8 activations with a zero point, int8 weights symmetric per output
/// channel, int32 bias, u8 output with a fused Relu (clamped below at y_zero_point). Real multipliers per output
/// channel (s_x·s_w[c] / s_y with s_x = s_y = 1, so s_w[c] = real[c]).
typedef struct {
    const char *name;
    int cin, cout, in_size, out_size, kernel, stride, pad, groups;
    const uint8_t *x;  ///< NHWC, in_size² pixels of cin bytes (with slack after the end)
    int x_zero_point;
    const int8_t *w;   ///< ONNX weights [cout, cin / groups, kernel, kernel]
    const int32_t *bias;
    const float *real;
    int y_zero_point;
    uint8_t *y;        ///< NHWC output, out_size² pixels of cout bytes
} qconv_problem;

typedef struct {
    const char *column;
    const char *key;
    int (*load)(int threads);
    void *(*create)(const qconv_problem *problem);
    void (*run)(void *op);
    /// Writes the last run's output as u8 (zero point y_zero_point) to y, for the check.
    void (*fetch)(void *op, uint8_t *y);
    void (*destroy)(void *op);
} qconv_library;

/// XNNPACK's qc8 convolution (s8 activations: ours XOR 0x80, per-channel s8 weights, fp32 requantization) and
/// oneDNN's int8 convolution primitive (u8 source with a zero point, s8 weights, s32 bias, per-channel output
/// scales, u8 destination); dnnl_avx2 is the same primitive with DNNL_MAX_CPU_ISA=AVX2 (its non-VNNI kernels), which
/// must run in a process of its own.
extern const qconv_library xnnpack_qc8_library, dnnl_int8_library, dnnl_int8_avx2_library;

#endif
