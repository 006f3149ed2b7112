// Convolution throughput on the layers onnxc's CNNs contain: CKernels' channels-last indirect GEMM
// (ck_conv2d_nhwc, weights packed once) against its channels-first GEMM (ck_sconv2d, weights packed once, B packed
// from the input per call), and — when present — XNNPACK's NHWC convolution and oneDNN's convolution primitive
// (dlopen'ed; see bench_conv_libs.c), every one with the bias and ReLU fused. Built and run by
// scripts/bench_kernels.py --conv, which sets the thread counts through the environment.
//
// Usage: bench_conv [--libs ours,xnnpack,dnnl] [LAYER...]: the implementations to run ("ours" is both of our
// columns; the others print "-") and the layers whose names contain any LAYER (all by default).
// Threads: ck_num_threads() (ONNXC_NUM_THREADS, else the physical cores) for ours and for XNNPACK's pthreadpool;
// oneDNN's OpenMP takes OMP_NUM_THREADS, set to the same count unless already set.
// BENCH_SECONDS: the least time of calls in one timing round (default 0.2; a tiny value only checks the results).
// BENCH_FASTEST: report each call's fastest single run instead of the round's mean (for a machine shared with other work).
//
// Every result is checked against a double-precision direct convolution before it is timed. The machine may be
// shared, so the implementations run interleaved: for each layer, ROUNDS rounds, each timing every implementation
// for at least BENCH_SECONDS (after a 20 ms pause that lets other pools' spinning threads go idle, and a warm-up
// call that brings its data back into cache); an implementation's rate is its best round.
// Output: one tab-separated line per layer: name, GFLOP, GFLOP/s per implementation, then each one's largest
// relative error, "-" for one that did not run.
//
// bench_conv --int8 [--libs ours,xnnpack,dnnl,dnnl-avx2] [LAYER...]: the same layers quantized (u8 activations with
// a zero point, int8 weights per output channel, int32 bias, u8 output with TFLite's requantization and a fused
// Relu): ck_qconv2d_nhwc / ck_qdepthwise2d_nhwc on the AVX-512 VNNI and AVX2 paths, our float NHWC kernel on the
// same layer for scale, XNNPACK's qc8 convolution and oneDNN's int8 primitive (dnnl-avx2: capped at AVX2, in a
// process of its own). Rates in GOP/s (2 ops per multiply-add); err is the largest |y − ours| in output units against
// our scalar path (the libraries round with float scales, so ±1 is expected from them; ours must be 0).
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <stdint.h>

#include "bench_conv_libs.h"
#include "ckernels.h"

#define ROUNDS 3

typedef struct {
    const char *name;
    int cin, cout, size, kernel, stride, pad, groups;
    /// --int8 only: a Gemm/MatMul X[m × cin]·Wᵀ as the compiler runs it, the 1×1 convolution over in_h = m, in_w = 1
    /// (0: a square convolution of size × size).
    int m;
} layer;

static const layer layers[] = {
    {"resnet50 conv1 7x7/2 3->64 @224", 3, 64, 224, 7, 2, 3, 1},
    {"resnet50 l1 1x1 64->64 @56", 64, 64, 56, 1, 1, 0, 1},
    {"resnet50 l1 3x3 64->64 @56", 64, 64, 56, 3, 1, 1, 1},
    {"resnet50 l1 1x1 64->256 @56", 64, 256, 56, 1, 1, 0, 1},
    {"resnet50 l1 1x1 256->64 @56", 256, 64, 56, 1, 1, 0, 1},
    {"resnet50 l2 3x3/2 128->128 @56", 128, 128, 56, 3, 2, 1, 1},
    {"resnet50 l2 1x1 128->512 @28", 128, 512, 28, 1, 1, 0, 1},
    {"resnet50 l2 1x1 512->128 @28", 512, 128, 28, 1, 1, 0, 1},
    {"resnet50 l2 3x3 128->128 @28", 128, 128, 28, 3, 1, 1, 1},
    {"resnet50 l3 3x3 256->256 @14", 256, 256, 14, 3, 1, 1, 1},
    {"resnet50 l3 1x1 1024->256 @14", 1024, 256, 14, 1, 1, 0, 1},
    {"resnet50 l3 1x1 256->1024 @14", 256, 1024, 14, 1, 1, 0, 1},
    {"resnet50 l4 3x3 512->512 @7", 512, 512, 7, 3, 1, 1, 1},
    {"resnet50 l4 1x1 512->2048 @7", 512, 2048, 7, 1, 1, 0, 1},
    {"resnet50 l4 1x1 2048->512 @7", 2048, 512, 7, 1, 1, 0, 1},
    {"mobilenet_v2 1x1 16->96 @112", 16, 96, 112, 1, 1, 0, 1},
    {"mobilenet_v2 1x1 96->24 @56", 96, 24, 56, 1, 1, 0, 1},
    {"mobilenet_v2 1x1 144->24 @56", 144, 24, 56, 1, 1, 0, 1},
    {"mobilenet_v2 1x1 192->32 @28", 192, 32, 28, 1, 1, 0, 1},
    {"mobilenet_v2 1x1 160->960 @7", 160, 960, 7, 1, 1, 0, 1},
    {"mobilenet_v2 1x1 320->1280 @7", 320, 1280, 7, 1, 1, 0, 1},
    {"mobilenet_v2 dw 3x3 32 @112", 32, 32, 112, 3, 1, 1, 32},
    {"mobilenet_v2 dw 3x3/2 96 @112", 96, 96, 112, 3, 2, 1, 96},
    {"mobilenet_v2 dw 3x3 144 @56", 144, 144, 56, 3, 1, 1, 144},
    {"mobilenet_v2 dw 3x3/2 144 @56", 144, 144, 56, 3, 2, 1, 144},
    {"mobilenet_v2 dw 3x3 960 @7", 960, 960, 7, 3, 1, 1, 960},
    {"efficientnet_b0 dw 5x5/2 144 @56", 144, 144, 56, 5, 2, 2, 144},
    {"efficientnet_b0 dw 5x5 480 @14", 480, 480, 14, 5, 1, 2, 480},
    {"efficientnet_b0 dw 5x5 1152 @7", 1152, 1152, 7, 5, 1, 2, 1152},
    {"dw 3x3 64 @16 (in L1/L2)", 64, 64, 16, 3, 1, 1, 64},
    {"dw 3x3 16 @64 (in L2)", 16, 16, 64, 3, 1, 1, 16},
    {"yolo 3x3/2 16->32 @160", 16, 32, 160, 3, 2, 1, 1},
    {"yolo 3x3 16->16 @80", 16, 16, 80, 3, 1, 1, 1},
    {"yolo 3x3 32->32 @40", 32, 32, 40, 3, 1, 1, 1},
    {"yolo 3x3 64->64 @20", 64, 64, 20, 3, 1, 1, 1},
    {"yolo 3x3 128->128 @10", 128, 128, 10, 3, 1, 1, 1},
    {"yolo stem 3x3/2 3->16 @320", 3, 16, 320, 3, 2, 1, 1},
    {"mobilenet_v2 stem 3x3/2 3->32 @224", 3, 32, 224, 3, 2, 1, 1},
    {"gemm M=1 2048->1000 (resnet50 fc)", 2048, 1000, 1, 1, 1, 0, 1, 1},
    {"gemm M=16 64->256 (bert_tiny ffn1)", 64, 256, 1, 1, 1, 0, 1, 16},
    {"gemm M=16 768->3072 (bert-base ffn1, 16 tokens)", 768, 3072, 1, 1, 1, 0, 1, 16},
    {"gemm M=128 768->3072 (bert-base ffn1)", 768, 3072, 1, 1, 1, 0, 1, 128},
    {"gemm M=128 3072->768 (bert-base ffn2)", 3072, 768, 1, 1, 1, 0, 1, 128},
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static float *random_floats(size_t n, unsigned seed) {
    float *v = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        v[i] = (float)((seed >> 9) & 0xFFFF) / 32768.0f - 1.0f;
    }
    return v;
}

/// Seconds per call over at least `seconds` of calls, after a pause and one warm-up call; with BENCH_FASTEST set,
/// the fastest single call instead (on a machine shared with other work, the calls that no other process
/// interrupted).
static double time_round(void (*f)(void *), void *arg, double seconds) {
    static int fastest = -1;
    if (fastest < 0) fastest = getenv("BENCH_FASTEST") != NULL;
    usleep(20000);
    f(arg);
    int calls = 0;
    double start = now(), elapsed, least = 1e30;
    do {
        double t0 = now();
        f(arg);
        double t1 = now();
        least = fmin(least, t1 - t0);
        calls++;
        elapsed = t1 - start;
    } while (elapsed < seconds);
    return fastest ? least : elapsed / calls;
}

typedef struct {
    const layer *l;
    int out;
    float *x_nchw, *x_nhwc, *w, *packed_nhwc, *packed_nchw, *bias, *y, *workspace;
    ck_conv_nhwc g;
} bench;

static void run_nhwc(void *arg) {
    bench *b = arg;
    ck_conv_epilogue ep = {b->bias, NULL, 0, CK_ACT_RELU, 0, 0};
    if (b->l->groups == b->l->cin && b->l->groups == b->l->cout && b->l->groups > 1) {
        ck_depthwise2d_nhwc(&b->g, b->x_nhwc, b->packed_nhwc, &ep, b->y);
        return;
    }
    ck_conv2d_nhwc(&b->g, b->x_nhwc, b->packed_nhwc, &ep, b->y);
}

/// The Winograd F(2×2, 3×3) form of the channels-last convolution, workspace given (as the runtime's frame does).
static void run_winograd(void *arg) {
    bench *b = arg;
    ck_conv_epilogue ep = {b->bias, NULL, 0, CK_ACT_RELU, 0, 0};
    ck_conv2d_nhwc_winograd(&b->g, b->x_nhwc, b->packed_nhwc, &ep, b->workspace, b->y);
}

static void run_nchw(void *arg) {
    bench *b = arg;
    const layer *l = b->l;
    ck_epilogue ep = {CK_BIAS_ROW, b->bias, CK_ACT_RELU, 0, 0, 0};
    if (l->groups == l->cin && l->groups > 1) {
        ck_depthwise_conv2d(1, l->cin, l->size, l->size, b->out, b->out, l->kernel, l->kernel, l->stride, l->stride,
                            l->pad, l->pad, 1, 1, b->x_nchw, b->w, b->bias, b->y, &ep);
        return;
    }
    ck_conv2d_input in = {b->x_nchw, l->cin, l->size, l->size, b->out, b->out, l->kernel, l->kernel,
                          l->stride, l->stride, l->pad, l->pad, 1, 1};
    ck_operand a = {b->packed_nchw, 0, 0, 1};
    if (l->kernel == 1 && l->stride == 1) {
        ck_operand bx = {b->x_nchw, b->out * b->out, 1, 0};
        ck_sgemm(l->cout, b->out * b->out, l->cin, a, bx, b->y, b->out * b->out, &ep);
    } else {
        ck_sconv2d(l->cout, a, &in, b->y, b->out * b->out, &ep);
    }
}

/// Output rows the reference covers: all of a small output, every 7th of a large one (the direct convolution in
/// double would otherwise take longer than the timing).
static int checked_row_step(const bench *b) { return b->out > 20 ? 7 : 1; }

/// The direct convolution in double, with bias and ReLU, at the checked output rows: [row][ow][o].
static double *reference(const bench *b) {
    const layer *l = b->l;
    int gi = l->cin / l->groups, go = l->cout / l->groups, step = checked_row_step(b);
    double *r = malloc(sizeof(double) * ((b->out + step - 1) / step) * b->out * l->cout), *next = r;
    for (int oh = 0; oh < b->out; oh += step) {
        for (int ow = 0; ow < b->out; ow++) {
            for (int o = 0; o < l->cout; o++) {
                int g = o / go;
                double s = b->bias[o];
                for (int c = 0; c < gi; c++)
                    for (int i = 0; i < l->kernel; i++)
                        for (int j = 0; j < l->kernel; j++) {
                            int ih = oh * l->stride - l->pad + i, iw = ow * l->stride - l->pad + j;
                            if (ih < 0 || iw < 0 || ih >= l->size || iw >= l->size) continue;
                            s += (double)b->w[((o * gi + c) * l->kernel + i) * l->kernel + j] *
                                 b->x_nhwc[((size_t)ih * l->size + iw) * l->cin + g * gi + c];
                        }
                *next++ = s < 0 ? 0 : s;
            }
        }
    }
    return r;
}

/// Largest |y − reference| / (1 + |reference|) over the checked rows; output (pixel p, channel o) is at
/// y[p·pixel_stride + o·channel_stride] (NHWC: cout, 1; NCHW: 1, out²).
static double max_error(const bench *b, const double *r, ptrdiff_t pixel_stride, ptrdiff_t channel_stride) {
    double worst = 0;
    for (int oh = 0; oh < b->out; oh += checked_row_step(b))
        for (int ow = 0; ow < b->out; ow++)
            for (int o = 0; o < b->l->cout; o++) {
                double s = *r++, y = b->y[((ptrdiff_t)oh * b->out + ow) * pixel_stride + o * channel_stride];
                double e = fabs(y - s) / (1 + fabs(s));
                if (!(e <= worst)) worst = e; // a NaN counts as the worst
            }
    return worst;
}

enum { OURS_NHWC, OURS_WINOGRAD, OURS_NCHW, XNNPACK, DNNL, IMPLS };
static const char *columns[IMPLS] = {"ours NHWC", "ours Winograd", "ours NCHW", "XNNPACK", "oneDNN"};
static const char *keys[IMPLS] = {"ours", "ours", "ours", "xnnpack", "dnnl"};
static const conv_library *libraries[IMPLS] = {NULL, NULL, NULL, &xnnpack_library, &dnnl_library};

// MARK: - int8

enum { Q_VNNI, Q_AVX2, Q_FP32, Q_XNNPACK, Q_DNNL, Q_DNNL_AVX2, QIMPLS };
static const char *qcolumns[QIMPLS] = {"ours VNNI", "ours AVX2", "ours fp32", "XNNPACK qc8", "oneDNN", "oneDNN AVX2"};
static const char *qkeys[QIMPLS] = {"ours", "ours", "ours", "xnnpack", "dnnl", "dnnl-avx2"};
static const qconv_library *qlibraries[QIMPLS] = {NULL, NULL, NULL, &xnnpack_qc8_library, &dnnl_int8_library, &dnnl_int8_avx2_library};

typedef struct {
    const layer *l;
    int out, depthwise;
    ck_conv_nhwc g;
    uint8_t *x, *y;
    int8_t *w;
    void *packed;
    int32_t *bias, *multiplier, *shift;
    float *real;
    ck_qepilogue ep;
    ck_isa isa;
    bench *f;  // the float form of the layer
} qbench;

static void run_q(void *arg) {
    qbench *q = arg;
    if (q->depthwise) ck_qdepthwise2d_nhwc_with(&q->g, q->x, q->packed, &q->ep, q->y, q->isa, 0);
    else ck_qconv2d_nhwc_with(&q->g, q->x, q->packed, &q->ep, q->y, q->isa, 0);
}

static void run_q_fp32(void *arg) { run_nhwc(((qbench *)arg)->f); }

/// Whether `key` is one of the comma-separated names in `list`.
static int listed(const char *list, const char *key) {
    size_t n = strlen(key);
    for (const char *p = list; (p = strstr(p, key)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == 0)) return 1;
    return 0;
}

static int main_int8(const char *libs, char **filters, int nfilters, double seconds) {
    int threads = ck_num_threads();
    int has_vnni = ck_active_isa() == CK_ISA_AVX512_VNNI;
    int selected[QIMPLS];
    for (int i = 0; i < QIMPLS; i++) {
        selected[i] = listed(libs, qkeys[i]);
        if (i == Q_VNNI && !has_vnni) selected[i] = 0;
        if (selected[i] && qlibraries[i] && !qlibraries[i]->load(threads)) selected[i] = 0;
    }
    printf("layer\tGOP");
    for (int i = 0; i < QIMPLS; i++) printf("\t%s", qcolumns[i]);
    for (int i = 0; i < QIMPLS; i++) if (i != Q_FP32) printf("\terr %s", qcolumns[i]);
    printf("\n");
    for (size_t li = 0; li < sizeof layers / sizeof *layers; li++) {
        const layer *l = &layers[li];
        int wanted = nfilters == 0;
        for (int f = 0; f < nfilters; f++) wanted |= strstr(l->name, filters[f]) != NULL;
        if (!wanted) continue;
        qbench q;
        memset(&q, 0, sizeof q);
        q.l = l;
        q.out = (l->size + 2 * l->pad - l->kernel) / l->stride + 1;
        // The input and output images: size² (out²) pixels, or m × 1 for a Gemm.
        int in_h = l->m ? l->m : l->size, in_w = l->m ? 1 : l->size, out_h = l->m ? l->m : q.out, out_w = l->m ? 1 : q.out;
        int gi = l->cin / l->groups, go = l->cout / l->groups, taps = l->kernel * l->kernel;
        q.depthwise = l->groups == l->cin && l->groups == l->cout && l->groups > 1;
        size_t xn = (size_t)l->cin * in_h * in_w, wn = (size_t)l->cout * gi * taps, yn = (size_t)l->cout * out_h * out_w;
        unsigned seed = 11;
        q.x = malloc(xn + 64);
        for (size_t i = 0; i < xn + 64; i++) { seed = seed * 1103515245u + 12345u; q.x[i] = (uint8_t)(seed >> 16); }
        q.w = malloc(wn);
        for (size_t i = 0; i < wn; i++) { seed = seed * 1103515245u + 12345u; q.w[i] = (int8_t)((int)((seed >> 16) % 255) - 127); }
        q.bias = malloc(sizeof(int32_t) * l->cout);
        q.multiplier = malloc(sizeof(int32_t) * l->cout);
        q.shift = malloc(sizeof(int32_t) * l->cout);
        q.real = malloc(sizeof(float) * l->cout);
        // Outputs spread over the u8 range: |acc| ≈ 74·73·sqrt(K) for uniform x − x_zp and w.
        double spread = 60.0 / (74.0 * 73.0 * sqrt((double)gi * taps));
        for (int c = 0; c < l->cout; c++) {
            seed = seed * 1103515245u + 12345u;
            q.bias[c] = (int32_t)((seed >> 16) % 20001) - 10000;
            q.real[c] = (float)(spread * (0.5 + (double)((seed >> 8) % 1000) / 1000.0));
            int shift;
            ck_quantize_multiplier(q.real[c], &q.multiplier[c], &shift);
            q.shift[c] = shift;
        }
        q.ep = (ck_qepilogue){q.bias, 114, q.multiplier, q.shift, 0, 0, 255, NULL};
        q.y = malloc(yn);
        if (q.depthwise) {
            q.packed = malloc(ck_qdepthwise_nhwc_packed_size(l->cin, l->kernel, l->kernel));
            ck_qdepthwise_nhwc_pack(l->cin, l->kernel, l->kernel, q.w, q.packed);
        } else {
            q.packed = malloc(ck_qconv_nhwc_packed_size(l->groups, go, gi, l->kernel, l->kernel));
            ck_qconv_nhwc_pack(l->groups, go, gi, l->kernel, l->kernel, q.w, q.packed);
        }
        q.g = (ck_conv_nhwc){1, in_h, in_w, out_h, out_w, l->kernel, l->kernel, l->stride, l->stride, l->pad, l->pad,
                             1, 1, l->groups, gi, go, l->cin, l->cout, 0};
        // The reference: our scalar path.
        uint8_t *reference = malloc(yn);
        q.isa = CK_ISA_SCALAR;
        run_q(&q);
        memcpy(reference, q.y, yn);

        // The float layer, for the fp32 column.
        bench f;
        memset(&f, 0, sizeof f);
        f.l = l;
        f.out = q.out;
        f.x_nhwc = random_floats(xn + 16, 1);
        f.w = random_floats(wn, 2);
        f.bias = random_floats((size_t)l->cout, 3);
        f.y = malloc(yn * sizeof(float));
        if (q.depthwise) {
            f.packed_nhwc = malloc(ck_depthwise_nhwc_packed_size(l->cin, l->kernel, l->kernel) * sizeof(float));
            ck_depthwise_nhwc_pack(l->cin, l->kernel, l->kernel, f.w, f.packed_nhwc);
        } else {
            f.packed_nhwc = malloc(ck_conv_nhwc_packed_size(l->groups, go, gi, l->kernel, l->kernel) * sizeof(float));
            ck_conv_nhwc_pack(l->groups, go, gi, l->kernel, l->kernel, f.w, f.packed_nhwc);
        }
        f.g = q.g;
        q.f = &f;

        qconv_problem problem = {l->name, l->cin, l->cout, l->size, q.out, l->kernel, l->stride, l->pad, l->groups,
                                 q.x, q.ep.x_zero_point, q.w, q.bias, q.real, q.ep.y_zero_point, q.y};
        qbench vnni = q, avx2 = q;
        vnni.isa = CK_ISA_AVX512_VNNI;
        avx2.isa = CK_ISA_AVX2_FMA;
        void *ops[QIMPLS] = {0};
        void (*runs[QIMPLS])(void *) = {run_q, run_q, run_q_fp32, NULL, NULL, NULL};
        if (selected[Q_VNNI]) ops[Q_VNNI] = &vnni;
        if (selected[Q_AVX2]) ops[Q_AVX2] = &avx2;
        if (selected[Q_FP32]) ops[Q_FP32] = &q;
        for (int i = 0; i < QIMPLS; i++)  // the libraries' adapters take square images only
            if (selected[i] && qlibraries[i] && !l->m) { ops[i] = qlibraries[i]->create(&problem); runs[i] = qlibraries[i]->run; }

        double error[QIMPLS], best[QIMPLS];
        for (int i = 0; i < QIMPLS; i++) {
            best[i] = 1e30;
            error[i] = 0;
            if (!ops[i] || i == Q_FP32) continue;
            memset(q.y, 0xA5, yn);
            runs[i](ops[i]);
            if (qlibraries[i]) qlibraries[i]->fetch(ops[i], q.y);
            for (size_t k = 0; k < yn; k++) {
                double e = fabs((double)q.y[k] - reference[k]);
                if (e > error[i]) error[i] = e;
            }
        }
        for (int round = 0; round < ROUNDS; round++)
            for (int i = 0; i < QIMPLS; i++)
                if (ops[i]) best[i] = fmin(best[i], time_round(runs[i], ops[i], seconds));

        double ops_count = 2.0 * yn * gi * taps;
        printf("%s\t%.3f", l->name, ops_count / 1e9);
        for (int i = 0; i < QIMPLS; i++) {
            if (ops[i]) printf("\t%.1f", ops_count / best[i] / 1e9); else printf("\t-");
        }
        for (int i = 0; i < QIMPLS; i++) {
            if (i == Q_FP32) continue;
            if (ops[i]) printf("\t%.0f", error[i]); else printf("\t-");
        }
        printf("\n");
        fflush(stdout);
        for (int i = 0; i < QIMPLS; i++)
            if (ops[i] && qlibraries[i]) qlibraries[i]->destroy(ops[i]);
        free(q.x); free(q.w); free(q.bias); free(q.multiplier); free(q.shift); free(q.real); free(q.y); free(q.packed);
        free(reference); free(f.x_nhwc); free(f.w); free(f.bias); free(f.y); free(f.packed_nhwc);
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *libs = NULL;
    char **filters = argv + 1;
    int nfilters = argc - 1, int8 = 0;
    if (nfilters >= 1 && strcmp(filters[0], "--int8") == 0) { int8 = 1; filters++; nfilters--; }
    if (nfilters >= 2 && strcmp(filters[0], "--libs") == 0) { libs = filters[1]; filters += 2; nfilters -= 2; }
    const char *seconds_env = getenv("BENCH_SECONDS");
    double seconds = seconds_env ? atof(seconds_env) : 0.2;
    if (int8) return main_int8(libs ? libs : "ours,xnnpack,dnnl", filters, nfilters, seconds);
    if (!libs) libs = "ours,xnnpack,dnnl";
    int threads = ck_num_threads();
    int selected[IMPLS];
    for (int i = 0; i < IMPLS; i++) {
        selected[i] = strstr(libs, keys[i]) != NULL;
        if (selected[i] && libraries[i] && !libraries[i]->load(threads)) selected[i] = 0;
    }
    printf("layer\tGFLOP");
    for (int i = 0; i < IMPLS; i++) printf("\t%s", columns[i]);
    for (int i = 0; i < IMPLS; i++) printf("\terr %s", columns[i]);
    printf("\n");
    for (size_t li = 0; li < sizeof layers / sizeof *layers; li++) {
        const layer *l = &layers[li];
        int wanted = nfilters == 0;
        for (int f = 0; f < nfilters; f++) wanted |= strstr(l->name, filters[f]) != NULL;
        if (!wanted || l->m) continue;  // the Gemm rows are --int8's
        bench b;
        memset(&b, 0, sizeof b);
        b.l = l;
        b.out = (l->size + 2 * l->pad - l->kernel) / l->stride + 1;
        int gi = l->cin / l->groups, go = l->cout / l->groups;
        int depthwise = l->groups == l->cin && l->groups == l->cout && l->groups > 1;
        size_t xn = (size_t)l->cin * l->size * l->size, wn = (size_t)l->cout * gi * l->kernel * l->kernel;
        size_t yn = (size_t)l->cout * b.out * b.out;
        b.x_nchw = random_floats(xn, 1);
        // XNNPACK may read up to XNN_EXTRA_BYTES (16) past the end of its input.
        b.x_nhwc = calloc(xn + 16, sizeof(float));
        for (int c = 0; c < l->cin; c++)
            for (int p = 0; p < l->size * l->size; p++) b.x_nhwc[(size_t)p * l->cin + c] = b.x_nchw[(size_t)c * l->size * l->size + p];
        b.w = random_floats(wn, 2);
        b.bias = random_floats((size_t)l->cout, 3);
        b.y = malloc(yn * sizeof(float));
        if (depthwise) {
            b.packed_nhwc = malloc(ck_depthwise_nhwc_packed_size(l->cin, l->kernel, l->kernel) * sizeof(float));
            ck_depthwise_nhwc_pack(l->cin, l->kernel, l->kernel, b.w, b.packed_nhwc);
        } else {
            b.packed_nhwc = malloc(ck_conv_nhwc_packed_size(l->groups, go, gi, l->kernel, l->kernel) * sizeof(float));
            ck_conv_nhwc_pack(l->groups, go, gi, l->kernel, l->kernel, b.w, b.packed_nhwc);
        }
        if (l->groups == 1) {
            b.packed_nchw = malloc(ck_sgemm_packed_a_size(l->cout, gi * l->kernel * l->kernel) * sizeof(float));
            ck_sgemm_pack_a(l->cout, gi * l->kernel * l->kernel, b.w, gi * l->kernel * l->kernel, 1, b.packed_nchw);
        }
        b.g = (ck_conv_nhwc){1, l->size, l->size, b.out, b.out, l->kernel, l->kernel, l->stride, l->stride, l->pad, l->pad,
                             1, 1, l->groups, gi, go, l->cin, l->cout, 0};
        conv_problem problem = {l->name, l->cin, l->cout, l->size, b.out, l->kernel, l->stride, l->pad, l->groups,
                                b.x_nhwc, b.w, b.bias, b.y};

        // Every implementation's state for this layer (weights in its own form), made outside the timing.
        void *ops[IMPLS] = {0};
        void (*runs[IMPLS])(void *) = {run_nhwc, run_winograd, run_nchw, NULL, NULL};
        if (selected[OURS_NHWC]) ops[OURS_NHWC] = &b;
        if (selected[OURS_WINOGRAD] && ck_conv_nhwc_winograd_applies(&b.g)) {
            b.workspace = aligned_alloc(64, (ck_conv_nhwc_winograd_workspace(&b.g) * sizeof(float) + 63) / 64 * 64);
            ops[OURS_WINOGRAD] = &b;
        }
        if (selected[OURS_NCHW] && (l->groups == 1 || depthwise)) ops[OURS_NCHW] = &b;
        for (int i = 0; i < IMPLS; i++)
            if (selected[i] && libraries[i]) { ops[i] = libraries[i]->create(&problem); runs[i] = libraries[i]->run; }

        // All write b.y, each checked right after its first call.
        double *r = reference(&b), error[IMPLS], best[IMPLS];
        for (int i = 0; i < IMPLS; i++) {
            best[i] = 1e30;
            if (!ops[i]) continue;
            memset(b.y, 0xff, yn * sizeof(float)); // NaN: an output left unwritten fails the check
            runs[i](ops[i]);
            error[i] = i == OURS_NCHW ? max_error(&b, r, 1, (ptrdiff_t)b.out * b.out) : max_error(&b, r, l->cout, 1);
        }
        for (int round = 0; round < ROUNDS; round++)
            for (int i = 0; i < IMPLS; i++)
                if (ops[i]) best[i] = fmin(best[i], time_round(runs[i], ops[i], seconds));

        double flops = 2.0 * yn * gi * l->kernel * l->kernel;
        printf("%s\t%.3f", l->name, flops / 1e9);
        for (int i = 0; i < IMPLS; i++) {
            if (ops[i]) printf("\t%.1f", flops / best[i] / 1e9); else printf("\t-");
        }
        for (int i = 0; i < IMPLS; i++) {
            if (ops[i]) printf("\t%.1e", error[i]); else printf("\t-");
        }
        printf("\n");
        fflush(stdout);
        for (int i = 0; i < IMPLS; i++)
            if (ops[i] && libraries[i]) libraries[i]->destroy(ops[i]);
        free(r); free(b.x_nchw); free(b.x_nhwc); free(b.w); free(b.bias); free(b.y); free(b.packed_nhwc); free(b.packed_nchw);
        free(b.workspace);
    }
    return 0;
}
