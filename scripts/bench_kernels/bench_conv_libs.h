// The field's convolutions behind one interface, for bench_conv.c: XNNPACK and oneDNN, each dlopen'ed at run time
// (bench_conv_libs.c), so a machine without one still builds the benchmark and prints "-" in its column.
#ifndef BENCH_CONV_LIBS_H
#define BENCH_CONV_LIBS_H

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

#endif
