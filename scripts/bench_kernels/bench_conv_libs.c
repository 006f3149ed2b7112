// XNNPACK's NHWC convolution and oneDNN's convolution primitive behind bench_conv_libs.h, both dlopen'ed so that
// bench_conv builds and runs on a machine without them (the column shows "-"). Versions: Debian bookworm's
// libxnnpack-dev 0.0~git20220216 and libdnnl-dev 2.6.3; see each section for what differs in other versions.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_conv_libs.h"

// MARK: - XNNPACK

// The entry points used, declared as in 0.0~git20220216's xnnpack.h rather than included: that header includes
// <pthreadpool.h>, which libxnnpack-dev does not pull in (it is in libpthreadpool-dev). Newer XNNPACK changed them
// (create takes code and weights caches, setup loses the pool and gains a reshape step before it); load() refuses
// such a library instead of calling it with the wrong arguments.
typedef struct xnn_operator *xnn_operator_t;
typedef struct pthreadpool *pthreadpool_t;
enum { XNN_STATUS_SUCCESS = 0 };

static struct {
    int (*initialize)(const void *allocator);
    int (*create)(uint32_t pad_top, uint32_t pad_right, uint32_t pad_bottom, uint32_t pad_left, uint32_t kernel_h,
                  uint32_t kernel_w, uint32_t stride_h, uint32_t stride_w, uint32_t dilation_h, uint32_t dilation_w,
                  uint32_t groups, size_t group_in, size_t group_out, size_t x_stride, size_t y_stride,
                  const float *kernel, const float *bias, float y_min, float y_max, uint32_t flags, xnn_operator_t *op);
    int (*setup)(xnn_operator_t op, size_t batch, size_t in_h, size_t in_w, const float *x, float *y, pthreadpool_t pool);
    int (*run)(xnn_operator_t op, pthreadpool_t pool);
    int (*delete_operator)(xnn_operator_t op);
    pthreadpool_t (*pthreadpool_create)(size_t threads);
    pthreadpool_t pool; // NULL at one thread: XNNPACK then runs on the caller, as ours does
} xnn;

static int xnn_load(int threads) {
    void *library = dlopen("libXNNPACK.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!library) { fprintf(stderr, "XNNPACK skipped: %s (apt-get install libxnnpack-dev)\n", dlerror()); return 0; }
    if (dlsym(library, "xnn_reshape_convolution2d_nhwc_f32")) {
        fprintf(stderr, "XNNPACK skipped: a newer API than 0.0~git20220216 (reshape/setup split), not declared here\n");
        return 0;
    }
    *(void **)&xnn.initialize = dlsym(library, "xnn_initialize");
    *(void **)&xnn.create = dlsym(library, "xnn_create_convolution2d_nhwc_f32");
    *(void **)&xnn.setup = dlsym(library, "xnn_setup_convolution2d_nhwc_f32");
    *(void **)&xnn.run = dlsym(library, "xnn_run_operator");
    *(void **)&xnn.delete_operator = dlsym(library, "xnn_delete_operator");
    // pthreadpool is XNNPACK's dependency, so the handle's lookup scope finds it.
    *(void **)&xnn.pthreadpool_create = dlsym(library, "pthreadpool_create");
    if (!xnn.initialize || !xnn.create || !xnn.setup || !xnn.run || !xnn.delete_operator || !xnn.pthreadpool_create) {
        fprintf(stderr, "XNNPACK skipped: an entry point is missing\n");
        return 0;
    }
    int status = xnn.initialize(NULL);
    if (status != XNN_STATUS_SUCCESS) { fprintf(stderr, "XNNPACK skipped: xnn_initialize returned %d\n", status); return 0; }
    if (threads > 1 && !(xnn.pool = xnn.pthreadpool_create((size_t)threads))) {
        fprintf(stderr, "XNNPACK skipped: pthreadpool_create(%d) failed\n", threads);
        return 0;
    }
    return 1;
}

static void *xnn_create(const conv_problem *p) {
    int gi = p->cin / p->groups, go = p->cout / p->groups, taps = p->kernel * p->kernel;
    // XNNPACK's kernel is [groups][group_out][kh][kw][group_in] (OHWI per group); ONNX's is OIHW. For depthwise
    // layers (group_in = group_out = 1) the two coincide, and XNNPACK picks its depthwise kernels by itself
    // (XNN_FLAG_DEPTHWISE_CONVOLUTION would only mean an HWC kernel layout).
    float *ohwi = malloc(sizeof(float) * (size_t)p->cout * gi * taps);
    for (int o = 0; o < p->cout; o++)
        for (int c = 0; c < gi; c++)
            for (int t = 0; t < taps; t++) ohwi[((size_t)o * taps + t) * gi + c] = p->w[((size_t)o * gi + c) * taps + t];
    xnn_operator_t op = NULL;
    int status = xnn.create(p->pad, p->pad, p->pad, p->pad, p->kernel, p->kernel, p->stride, p->stride, 1, 1, p->groups,
                            gi, go, p->cin, p->cout, ohwi, p->bias, 0.0f, INFINITY, 0, &op);
    free(ohwi); // packed into the operator's own buffer
    if (status != XNN_STATUS_SUCCESS) {
        fprintf(stderr, "XNNPACK %s: xnn_create_convolution2d_nhwc_f32 returned %d\n", p->name, status);
        return NULL;
    }
    // Setup builds the indirection buffer for these pointers; a runtime with a fixed arena does it once too.
    status = xnn.setup(op, 1, p->in_size, p->in_size, p->x, p->y, xnn.pool);
    if (status != XNN_STATUS_SUCCESS) {
        fprintf(stderr, "XNNPACK %s: xnn_setup_convolution2d_nhwc_f32 returned %d\n", p->name, status);
        xnn.delete_operator(op);
        return NULL;
    }
    return op;
}

static void xnn_run(void *op) {
    int status = xnn.run(op, xnn.pool);
    if (status != XNN_STATUS_SUCCESS) { fprintf(stderr, "xnn_run_operator returned %d\n", status); exit(1); }
}

static void xnn_destroy(void *op) { xnn.delete_operator(op); }

const conv_library xnnpack_library = {"XNNPACK", "xnnpack", xnn_load, xnn_create, xnn_run, xnn_destroy};

// XNNPACK's qc8 convolution (this version's int8 operator with per-channel weight scales). Its activations are s8,
// so the input is ours XOR 0x80 with the zero point moved by −128, and its s8 output XOR 0x80 is ours.
static struct {
    int (*create)(uint32_t pad_top, uint32_t pad_right, uint32_t pad_bottom, uint32_t pad_left, uint32_t kernel_h,
                  uint32_t kernel_w, uint32_t stride_h, uint32_t stride_w, uint32_t dilation_h, uint32_t dilation_w,
                  uint32_t groups, size_t group_in, size_t group_out, size_t x_stride, size_t y_stride, int8_t x_zero_point,
                  float x_scale, const float *kernel_scale, const int8_t *kernel, const int32_t *bias, int8_t y_zero_point,
                  float y_scale, int8_t y_min, int8_t y_max, uint32_t flags, xnn_operator_t *op);
    int (*setup)(xnn_operator_t op, size_t batch, size_t in_h, size_t in_w, const int8_t *x, int8_t *y, pthreadpool_t pool);
} xnn_qc8;

static int xnn_qc8_load(int threads) {
    if (!xnn_load(threads)) return 0;
    void *library = dlopen("libXNNPACK.so.0", RTLD_NOW | RTLD_LOCAL);  // loaded already: the same handle
    *(void **)&xnn_qc8.create = library ? dlsym(library, "xnn_create_convolution2d_nhwc_qc8") : NULL;
    *(void **)&xnn_qc8.setup = library ? dlsym(library, "xnn_setup_convolution2d_nhwc_qc8") : NULL;
    if (!xnn_qc8.create || !xnn_qc8.setup) { fprintf(stderr, "XNNPACK qc8 skipped: no qc8 convolution\n"); return 0; }
    return 1;
}

typedef struct {
    xnn_operator_t op;
    int8_t *x, *y;
    size_t y_count;
} xnn_qc8_op;

static void *xnn_qc8_create(const qconv_problem *p) {
    int gi = p->cin / p->groups, go = p->cout / p->groups, taps = p->kernel * p->kernel;
    size_t x_count = (size_t)p->in_size * p->in_size * p->cin;
    xnn_qc8_op *op = calloc(1, sizeof *op);
    op->x = malloc(x_count + 16);  // XNN_EXTRA_BYTES of slack
    for (size_t i = 0; i < x_count; i++) op->x[i] = (int8_t)(p->x[i] ^ 0x80);
    op->y_count = (size_t)p->out_size * p->out_size * p->cout;
    op->y = malloc(op->y_count);
    int8_t *ohwi = malloc((size_t)p->cout * gi * taps);
    for (int o = 0; o < p->cout; o++)
        for (int c = 0; c < gi; c++)
            for (int t = 0; t < taps; t++) ohwi[((size_t)o * taps + t) * gi + c] = p->w[((size_t)o * gi + c) * taps + t];
    int status = xnn_qc8.create(p->pad, p->pad, p->pad, p->pad, p->kernel, p->kernel, p->stride, p->stride, 1, 1, p->groups,
                                gi, go, p->cin, p->cout, (int8_t)(p->x_zero_point - 128), 1.0f, p->real, ohwi, p->bias,
                                (int8_t)(p->y_zero_point - 128), 1.0f, (int8_t)(p->y_zero_point - 128), 127, 0, &op->op);
    free(ohwi);
    if (status != XNN_STATUS_SUCCESS) {
        fprintf(stderr, "XNNPACK %s: xnn_create_convolution2d_nhwc_qc8 returned %d\n", p->name, status);
        return NULL;
    }
    status = xnn_qc8.setup(op->op, 1, p->in_size, p->in_size, op->x, op->y, xnn.pool);
    if (status != XNN_STATUS_SUCCESS) {
        fprintf(stderr, "XNNPACK %s: xnn_setup_convolution2d_nhwc_qc8 returned %d\n", p->name, status);
        return NULL;
    }
    return op;
}

static void xnn_qc8_run(void *opaque) { xnn_run(((xnn_qc8_op *)opaque)->op); }

static void xnn_qc8_fetch(void *opaque, uint8_t *y) {
    xnn_qc8_op *op = opaque;
    for (size_t i = 0; i < op->y_count; i++) y[i] = (uint8_t)op->y[i] ^ 0x80;
}

static void xnn_qc8_destroy(void *opaque) {
    xnn_qc8_op *op = opaque;
    xnn.delete_operator(op->op);
    free(op->x);
    free(op->y);
    free(op);
}

const qconv_library xnnpack_qc8_library = {"XNNPACK qc8", "xnnpack", xnn_qc8_load, xnn_qc8_create, xnn_qc8_run, xnn_qc8_fetch,
                                           xnn_qc8_destroy};

// MARK: - oneDNN

// The 2.x C API passes memory and operation descriptors by value, so its header supplies the types (only the
// types: every function is looked up in the dlopen'ed library). 3.x made descriptors opaque and replaced the
// *_desc_init functions: that version is not written here, and its soname (libdnnl.so.3) differs anyway.
#if __has_include(<oneapi/dnnl/dnnl.h>)
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#endif

#if defined(DNNL_VERSION_MAJOR) && DNNL_VERSION_MAJOR == 2

#define DNNL_ENTRY_POINTS(X)                                                                                            \
    X(engine_create) X(stream_create) X(stream_wait) X(memory_desc_init_by_tag) X(memory_desc_equal) X(memory_create) \
    X(memory_destroy) X(convolution_forward_desc_init) X(post_ops_create) X(post_ops_append_eltwise) X(post_ops_destroy) \
    X(primitive_attr_create) X(primitive_attr_set_post_ops) X(primitive_attr_destroy) X(primitive_desc_create)       \
    X(primitive_desc_query) X(primitive_desc_query_md) X(primitive_desc_destroy) X(reorder_primitive_desc_create)     \
    X(primitive_create) X(primitive_execute) X(primitive_destroy) X(status2str) X(fmt_kind2str)                      \
    X(primitive_attr_set_output_scales) X(primitive_attr_set_zero_points)

static struct {
#define DNNL_FIELD(name) __typeof__(dnnl_##name) *name;
    DNNL_ENTRY_POINTS(DNNL_FIELD)
#undef DNNL_FIELD
    dnnl_engine_t engine;
    dnnl_stream_t stream; // one per engine, for every primitive
} dnnl;

static int dnnl_load(int threads) {
    // OpenMP reads OMP_NUM_THREADS when libgomp loads, which dlopen is about to do; an explicit setting stays.
    char count[16];
    snprintf(count, sizeof count, "%d", threads);
    setenv("OMP_NUM_THREADS", count, 0);
    void *library = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!library) { fprintf(stderr, "oneDNN skipped: %s (apt-get install libdnnl-dev)\n", dlerror()); return 0; }
#define DNNL_LOOKUP(name)                                                                                               \
    if (!(*(void **)&dnnl.name = dlsym(library, "dnnl_" #name))) {                                                    \
        fprintf(stderr, "oneDNN skipped: no dnnl_" #name "\n");                                                       \
        return 0;                                                                                                      \
    }
    DNNL_ENTRY_POINTS(DNNL_LOOKUP)
#undef DNNL_LOOKUP
    if (dnnl.engine_create(&dnnl.engine, dnnl_cpu, 0) != dnnl_success ||
        dnnl.stream_create(&dnnl.stream, dnnl.engine, dnnl_stream_default_flags) != dnnl_success) {
        fprintf(stderr, "oneDNN skipped: no CPU engine or stream\n");
        return 0;
    }
    if (strcmp(getenv("OMP_NUM_THREADS"), count) != 0)
        fprintf(stderr, "oneDNN runs OMP_NUM_THREADS=%s threads, the others %d\n", getenv("OMP_NUM_THREADS"), threads);
    return 1;
}

/// A blocked layout in oneDNN's own notation (as ONEDNN_VERBOSE prints it): dimensions a, b, … from outermost to
/// innermost stride, capitalized when also blocked, then the inner blocks; e.g. ABcd8b8a is OIhw8i8o. Dimensions
/// of size 1, whose strides mean nothing, come first.
static void describe_layout(const dnnl_memory_desc_t *md, char *text, size_t size) {
    if (md->format_kind != dnnl_blocked) { snprintf(text, size, "%s", dnnl.fmt_kind2str(md->format_kind)); return; }
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    int order[DNNL_MAX_NDIMS], n = md->ndims;
    dnnl_dim_t key[DNNL_MAX_NDIMS];
    for (int d = 0; d < n; d++) order[d] = d, key[d] = md->dims[d] == 1 ? INT64_MAX : b->strides[d];
    for (int i = 1; i < n; i++) // stable insertion sort by decreasing stride
        for (int j = i; j > 0 && key[order[j]] > key[order[j - 1]]; j--) {
            int t = order[j]; order[j] = order[j - 1]; order[j - 1] = t;
        }
    size_t used = 0;
    for (int i = 0; i < n && used < size; i++) {
        int blocked = 0;
        for (int k = 0; k < b->inner_nblks; k++) blocked |= b->inner_idxs[k] == order[i];
        used += snprintf(text + used, size - used, "%c", (blocked ? 'A' : 'a') + order[i]);
    }
    for (int k = 0; k < b->inner_nblks && used < size; k++)
        used += snprintf(text + used, size - used, "%lld%c", (long long)b->inner_blks[k], 'a' + (int)b->inner_idxs[k]);
}

typedef struct {
    dnnl_primitive_t conv;
    dnnl_memory_t src, weights, bias, dst;
} dnnl_op;

#define DNNL_TRY(call)                                                                                                 \
    do {                                                                                                               \
        dnnl_status_t status_ = (call);                                                                                \
        if (status_ != dnnl_success) {                                                                                 \
            fprintf(stderr, "oneDNN %s: %s: %s\n", p->name, #call, dnnl.status2str(status_));                          \
            return NULL; /* what was made so far leaks: rare, and the process is short-lived */                        \
        }                                                                                                              \
    } while (0)

static void *dnnl_create(const conv_problem *p) {
    int grouped = p->groups > 1, gi = p->cin / p->groups, go = p->cout / p->groups;
    dnnl_dims_t src_dims = {1, p->cin, p->in_size, p->in_size}, dst_dims = {1, p->cout, p->out_size, p->out_size};
    dnnl_dims_t bias_dims = {p->cout}, strides = {p->stride, p->stride}, padding = {p->pad, p->pad};
    // Grouped weights are 5-D, [groups, group_out, group_in, kh, kw]: ONNX's OIHW read as goihw.
    dnnl_dims_t plain = {p->cout, gi, p->kernel, p->kernel}, per_group = {p->groups, go, gi, p->kernel, p->kernel};
    const dnnl_dim_t *weight_dims = grouped ? per_group : plain;
    dnnl_memory_desc_t src_md, dst_md, bias_md, weights_any, weights_onnx;
    DNNL_TRY(dnnl.memory_desc_init_by_tag(&src_md, 4, src_dims, dnnl_f32, dnnl_nhwc));
    DNNL_TRY(dnnl.memory_desc_init_by_tag(&dst_md, 4, dst_dims, dnnl_f32, dnnl_nhwc));
    DNNL_TRY(dnnl.memory_desc_init_by_tag(&bias_md, 1, bias_dims, dnnl_f32, dnnl_x));
    // Weights in the layout the chosen kernel wants (format "any"), reordered from ONNX's once, here.
    DNNL_TRY(dnnl.memory_desc_init_by_tag(&weights_any, grouped ? 5 : 4, weight_dims, dnnl_f32, dnnl_format_tag_any));
    DNNL_TRY(dnnl.memory_desc_init_by_tag(&weights_onnx, grouped ? 5 : 4, weight_dims, dnnl_f32, grouped ? dnnl_goihw : dnnl_oihw));
    dnnl_convolution_desc_t desc;
    // Direct, not auto: the comparison is between direct methods (auto may pick Winograd on AVX-512 3x3 layers).
    DNNL_TRY(dnnl.convolution_forward_desc_init(&desc, dnnl_forward_inference, dnnl_convolution_direct, &src_md,
                                                &weights_any, &bias_md, &dst_md, strides, padding, padding));
    dnnl_post_ops_t post_ops;
    dnnl_primitive_attr_t attr;
    DNNL_TRY(dnnl.post_ops_create(&post_ops));
    DNNL_TRY(dnnl.post_ops_append_eltwise(post_ops, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f));
    DNNL_TRY(dnnl.primitive_attr_create(&attr));
    DNNL_TRY(dnnl.primitive_attr_set_post_ops(attr, post_ops));
    dnnl_primitive_desc_t pd;
    DNNL_TRY(dnnl.primitive_desc_create(&pd, &desc, attr, dnnl.engine, NULL));
    const dnnl_memory_desc_t *weights_md = dnnl.primitive_desc_query_md(pd, dnnl_query_weights_md, 0);

    dnnl_op *op = calloc(1, sizeof *op);
    DNNL_TRY(dnnl.memory_create(&op->src, &src_md, dnnl.engine, (void *)p->x));
    DNNL_TRY(dnnl.memory_create(&op->dst, &dst_md, dnnl.engine, p->y));
    DNNL_TRY(dnnl.memory_create(&op->bias, &bias_md, dnnl.engine, (void *)p->bias));
    dnnl_memory_t onnx;
    DNNL_TRY(dnnl.memory_create(&onnx, &weights_onnx, dnnl.engine, (void *)p->w));
    if (dnnl.memory_desc_equal(weights_md, &weights_onnx)) {
        op->weights = onnx;
    } else {
        dnnl_primitive_desc_t reorder_pd;
        dnnl_primitive_t reorder;
        DNNL_TRY(dnnl.memory_create(&op->weights, weights_md, dnnl.engine, DNNL_MEMORY_ALLOCATE));
        DNNL_TRY(dnnl.reorder_primitive_desc_create(&reorder_pd, &weights_onnx, dnnl.engine, weights_md, dnnl.engine, NULL));
        DNNL_TRY(dnnl.primitive_create(&reorder, reorder_pd));
        dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, onnx}, {DNNL_ARG_TO, op->weights}};
        DNNL_TRY(dnnl.primitive_execute(reorder, dnnl.stream, 2, args));
        DNNL_TRY(dnnl.stream_wait(dnnl.stream));
        dnnl.primitive_destroy(reorder);
        dnnl.primitive_desc_destroy(reorder_pd);
        dnnl.memory_destroy(onnx);
    }
    const char *implementation = "?";
    dnnl.primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &implementation);
    char layout[64];
    describe_layout(weights_md, layout, sizeof layout);
    fprintf(stderr, "oneDNN %s: %s, weights %s\n", p->name, implementation, layout);
    DNNL_TRY(dnnl.primitive_create(&op->conv, pd));
    dnnl.primitive_desc_destroy(pd);
    dnnl.primitive_attr_destroy(attr);
    dnnl.post_ops_destroy(post_ops);
    return op;
}

static void dnnl_run(void *opaque) {
    dnnl_op *op = opaque;
    dnnl_exec_arg_t args[] = {
        {DNNL_ARG_SRC, op->src}, {DNNL_ARG_WEIGHTS, op->weights}, {DNNL_ARG_BIAS, op->bias}, {DNNL_ARG_DST, op->dst}};
    dnnl_status_t status = dnnl.primitive_execute(op->conv, dnnl.stream, 4, args);
    if (status == dnnl_success) status = dnnl.stream_wait(dnnl.stream);
    if (status != dnnl_success) { fprintf(stderr, "oneDNN convolution: %s\n", dnnl.status2str(status)); exit(1); }
}

static void dnnl_destroy(void *opaque) {
    dnnl_op *op = opaque;
    dnnl.primitive_destroy(op->conv);
    dnnl.memory_destroy(op->src);
    dnnl.memory_destroy(op->weights);
    dnnl.memory_destroy(op->bias);
    dnnl.memory_destroy(op->dst);
    free(op);
}


// MARK: - oneDNN int8

static int dnnl_native_loaded = 0, dnnl_avx2_loaded = 0;

static int dnnl_int8_load(int threads) {
    if (dnnl_avx2_loaded) { fprintf(stderr, "oneDNN int8 skipped: this process runs oneDNN capped at AVX2\n"); return 0; }
    dnnl_native_loaded = 1;
    return dnnl.engine || dnnl_load(threads);
}

/// The cap is read once, when oneDNN first asks for the CPU's instruction set, so it must be set before any use.
static int dnnl_int8_avx2_load(int threads) {
    if (dnnl_native_loaded) { fprintf(stderr, "oneDNN AVX2 skipped: run it in a process of its own (--libs dnnl-avx2)\n"); return 0; }
    dnnl_avx2_loaded = 1;
    setenv("DNNL_MAX_CPU_ISA", "AVX2", 1);
    return dnnl.engine || dnnl_load(threads);
}

static void *dnnl_int8_create(const qconv_problem *p) {
    int grouped = p->groups > 1, gi = p->cin / p->groups, go = p->cout / p->groups;
    dnnl_dims_t src_dims = {1, p->cin, p->in_size, p->in_size}, dst_dims = {1, p->cout, p->out_size, p->out_size};
    dnnl_dims_t bias_dims = {p->cout}, strides = {p->stride, p->stride}, padding = {p->pad, p->pad};
    dnnl_dims_t plain = {p->cout, gi, p->kernel, p->kernel}, per_group = {p->groups, go, gi, p->kernel, p->kernel};
    const dnnl_dim_t *weight_dims = grouped ? per_group : plain;
    dnnl_memory_desc_t src_md, dst_md, bias_md, weights_any, weights_onnx;
    DNNL_TRY(dnnl.memory_desc_init_by_tag(&src_md, 4, src_dims, dnnl_u8, dnnl_nhwc));
    DNNL_TRY(dnnl.memory_desc_init_by_tag(&dst_md, 4, dst_dims, dnnl_u8, dnnl_nhwc));
    DNNL_TRY(dnnl.memory_desc_init_by_tag(&bias_md, 1, bias_dims, dnnl_s32, dnnl_x));
    DNNL_TRY(dnnl.memory_desc_init_by_tag(&weights_any, grouped ? 5 : 4, weight_dims, dnnl_s8, dnnl_format_tag_any));
    DNNL_TRY(dnnl.memory_desc_init_by_tag(&weights_onnx, grouped ? 5 : 4, weight_dims, dnnl_s8, grouped ? dnnl_goihw : dnnl_oihw));
    dnnl_convolution_desc_t desc;
    DNNL_TRY(dnnl.convolution_forward_desc_init(&desc, dnnl_forward_inference, dnnl_convolution_direct, &src_md,
                                                &weights_any, &bias_md, &dst_md, strides, padding, padding));
    dnnl_primitive_attr_t attr;
    DNNL_TRY(dnnl.primitive_attr_create(&attr));
    // dst = saturate(round(real[c] · (Σ (x − x_zp)·w + bias))) + y_zp: per output channel (mask bit 1) scales.
    DNNL_TRY(dnnl.primitive_attr_set_output_scales(attr, p->cout, 1 << 1, p->real));
    int32_t x_zp = p->x_zero_point, y_zp = p->y_zero_point;
    if (x_zp) DNNL_TRY(dnnl.primitive_attr_set_zero_points(attr, DNNL_ARG_SRC, 1, 0, &x_zp));
    if (y_zp) DNNL_TRY(dnnl.primitive_attr_set_zero_points(attr, DNNL_ARG_DST, 1, 0, &y_zp));
    dnnl_post_ops_t post_ops;
    DNNL_TRY(dnnl.post_ops_create(&post_ops));
    if (!y_zp) {  // the fused Relu; with a zero point the u8 clamp at y_zp is not expressible this way, and not run
        DNNL_TRY(dnnl.post_ops_append_eltwise(post_ops, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f));
        DNNL_TRY(dnnl.primitive_attr_set_post_ops(attr, post_ops));
    }
    dnnl_primitive_desc_t pd;
    DNNL_TRY(dnnl.primitive_desc_create(&pd, &desc, attr, dnnl.engine, NULL));
    const dnnl_memory_desc_t *weights_md = dnnl.primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_op *op = calloc(1, sizeof *op);
    DNNL_TRY(dnnl.memory_create(&op->src, &src_md, dnnl.engine, (void *)p->x));
    DNNL_TRY(dnnl.memory_create(&op->dst, &dst_md, dnnl.engine, p->y));
    DNNL_TRY(dnnl.memory_create(&op->bias, &bias_md, dnnl.engine, (void *)p->bias));
    dnnl_memory_t onnx;
    DNNL_TRY(dnnl.memory_create(&onnx, &weights_onnx, dnnl.engine, (void *)p->w));
    dnnl_primitive_desc_t reorder_pd;
    dnnl_primitive_t reorder;
    // The reorder also writes the compensations the kernel keeps beside its weights (for the zero point, and on
    // non-VNNI machines for its own s8 shift of the activations).
    DNNL_TRY(dnnl.memory_create(&op->weights, weights_md, dnnl.engine, DNNL_MEMORY_ALLOCATE));
    DNNL_TRY(dnnl.reorder_primitive_desc_create(&reorder_pd, &weights_onnx, dnnl.engine, weights_md, dnnl.engine, NULL));
    DNNL_TRY(dnnl.primitive_create(&reorder, reorder_pd));
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, onnx}, {DNNL_ARG_TO, op->weights}};
    DNNL_TRY(dnnl.primitive_execute(reorder, dnnl.stream, 2, args));
    DNNL_TRY(dnnl.stream_wait(dnnl.stream));
    dnnl.primitive_destroy(reorder);
    dnnl.primitive_desc_destroy(reorder_pd);
    dnnl.memory_destroy(onnx);
    const char *implementation = "?";
    dnnl.primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &implementation);
    char layout[64];
    describe_layout(weights_md, layout, sizeof layout);
    fprintf(stderr, "oneDNN%s int8 %s: %s, weights %s\n", dnnl_avx2_loaded ? " (AVX2)" : "", p->name, implementation, layout);
    DNNL_TRY(dnnl.primitive_create(&op->conv, pd));
    dnnl.primitive_desc_destroy(pd);
    dnnl.primitive_attr_destroy(attr);
    dnnl.post_ops_destroy(post_ops);
    return op;
}

static void dnnl_int8_fetch(void *op, uint8_t *y) { (void)op; (void)y; }  // writes the problem's y itself

#else

static int dnnl_load(int threads) {
    (void)threads;
    fprintf(stderr, "oneDNN skipped: built without oneDNN 2.x's <oneapi/dnnl/dnnl.h> (apt-get install libdnnl-dev)\n");
    return 0;
}
static void *dnnl_create(const conv_problem *p) { (void)p; return NULL; }
static void dnnl_run(void *op) { (void)op; }
static void dnnl_destroy(void *op) { (void)op; }


static int dnnl_int8_load(int threads) { return dnnl_load(threads); }
static int dnnl_int8_avx2_load(int threads) { return dnnl_load(threads); }
static void *dnnl_int8_create(const qconv_problem *p) { (void)p; return NULL; }
static void dnnl_int8_fetch(void *op, uint8_t *y) { (void)op; (void)y; }
#endif

const conv_library dnnl_library = {"oneDNN", "dnnl", dnnl_load, dnnl_create, dnnl_run, dnnl_destroy};
const qconv_library dnnl_int8_library = {"oneDNN", "dnnl", dnnl_int8_load, dnnl_int8_create, dnnl_run, dnnl_int8_fetch,
                                         dnnl_destroy};
const qconv_library dnnl_int8_avx2_library = {"oneDNN AVX2", "dnnl-avx2", dnnl_int8_avx2_load, dnnl_int8_create, dnnl_run,
                                              dnnl_int8_fetch, dnnl_destroy};
