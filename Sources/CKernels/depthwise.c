// depthwise.c — direct depthwise 2-D convolution of NCHW planes.
#define _GNU_SOURCE
#include "ck_internal.h"

// MARK: - Depthwise convolution

typedef struct {
    int batch, channels, in_h, in_w, out_h, out_w, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left;
    int dilation_h, dilation_w;
    const float *x, *w, *bias;
    float *y;
    ck_epilogue ep;
} ck_depthwise_job;

/// Adds the bias to a row and applies the activation: one loop per activation, so each vectorizes.
__attribute__((always_inline)) static inline void ck_row_epilogue(float *row, int n, float bias, const ck_epilogue *ep) {
    float lo = ep->param0, hi = ep->param1;
    switch (ep->activation) {
    case CK_ACT_NONE: for (int i = 0; i < n; i++) row[i] = row[i] + bias; break;
    case CK_ACT_RELU: for (int i = 0; i < n; i++) { float v = row[i] + bias; row[i] = v > 0 ? v : 0; } break;
    case CK_ACT_CLIP:
        for (int i = 0; i < n; i++) { float v = row[i] + bias; v = v < lo ? lo : v; row[i] = v > hi ? hi : v; }
        break;
    default: for (int i = 0; i < n; i++) row[i] = ck_act_scalar(row[i] + bias, ep); break;
    }
}

/// One plane: each output row accumulates its taps in place (kernel row, then kernel column), then the epilogue.
__attribute__((always_inline)) static inline void ck_depthwise_plane(const ck_depthwise_job *job, int plane) {
    int c = plane % job->channels;
    const float *x = job->x + (size_t)plane * job->in_h * job->in_w;
    const float *w = job->w + (size_t)c * job->kernel_h * job->kernel_w;
    float *y = job->y + (size_t)plane * job->out_h * job->out_w;
    float bias = job->bias ? job->bias[c] : 0;
    int sw = job->stride_w, ow_count = job->out_w;
    for (int oh = 0; oh < job->out_h; oh++) {
        float *row = y + (size_t)oh * ow_count;
        for (int o = 0; o < ow_count; o++) row[o] = 0;
        for (int i = 0; i < job->kernel_h; i++) {
            int ih = oh * job->stride_h - job->pad_top + i * job->dilation_h;
            if (ih < 0 || ih >= job->in_h) continue;
            const float *in_row = x + (size_t)ih * job->in_w;
            for (int j = 0; j < job->kernel_w; j++) {
                // Output columns whose input column iw = ow·sw − pw + j·dw lies inside the row.
                int shift = j * job->dilation_w - job->pad_left;
                int lo = shift >= 0 ? 0 : (-shift + sw - 1) / sw;
                int hi = job->in_w - 1 - shift < 0 ? 0 : (job->in_w - 1 - shift) / sw + 1;
                if (hi > ow_count) hi = ow_count;
                float weight = w[i * job->kernel_w + j];
                const float *src = in_row + shift;
                if (sw == 1) {
                    for (int o = lo; o < hi; o++) row[o] += weight * src[o];
                } else if (sw == 2) {
                    for (int o = lo; o < hi; o++) row[o] += weight * src[2 * o];
                } else {
                    for (int o = lo; o < hi; o++) row[o] += weight * src[(ptrdiff_t)o * sw];
                }
            }
        }
        ck_row_epilogue(row, ow_count, bias, &job->ep);
    }
}

static void ck_depthwise_task_scalar(void *context, int plane) { ck_depthwise_plane(context, plane); }

#ifdef CK_X86
CK_AVX2 static void ck_depthwise_task_avx2(void *context, int plane) { ck_depthwise_plane(context, plane); }
#endif

void ck_depthwise_conv2d(int batch, int channels, int in_h, int in_w, int out_h, int out_w, int kernel_h, int kernel_w,
                         int stride_h, int stride_w, int pad_top, int pad_left, int dilation_h, int dilation_w,
                         const float *x, const float *w, const float *bias, float *y, const ck_epilogue *epilogue) {
    ck_depthwise_job job = {batch, channels, in_h, in_w, out_h, out_w, kernel_h, kernel_w, stride_h, stride_w,
                            pad_top, pad_left, dilation_h, dilation_w, x, w, bias, y, {0}};
    if (epilogue) job.ep = *epilogue;
    job.ep.wide = ck_isa_avx512(CK_ISA_AUTO);
    int planes = batch * channels;
    void (*task)(void *, int) = ck_depthwise_task_scalar;
#ifdef CK_X86
    if (ck_isa_avx2(CK_ISA_AUTO)) task = ck_depthwise_task_avx2;
#endif
    double work = (double)planes * out_h * out_w * kernel_h * kernel_w;
    if (work < CK_PARALLEL_MIN_WORK / 4) {
        for (int p = 0; p < planes; p++) task(&job, p);
    } else {
        ck_parallel_for(planes, task, &job);
    }
}

