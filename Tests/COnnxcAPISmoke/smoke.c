#include "onnxc_api_smoke.h"
#include "onnxc_runtime.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(...) do { snprintf(message, capacity, __VA_ARGS__); goto done; } while (0)

int onnxc_api_smoke(const char *path, double *sum, char *message, size_t capacity) {
    int status = 1;
    onnxc_model *model = NULL;
    onnxc_result *result = NULL;
    onnxc_tensor *inputs = NULL;
    int64_t **shapes = NULL;
    float **buffers = NULL;
    size_t count = 0;

    if (onnxc_model_load("/nonexistent/model.oxc") != NULL) FAIL("loading a missing file succeeded");
    if (strlen(onnxc_last_error()) == 0) FAIL("no error message for a missing file");
    if (onnxc_run(NULL, NULL, 0) != NULL) FAIL("running a NULL model succeeded");

    model = onnxc_model_load(path);
    if (model == NULL) FAIL("load: %s", onnxc_last_error());
    count = onnxc_model_input_count(model);
    inputs = calloc(count ? count : 1, sizeof *inputs);
    shapes = calloc(count ? count : 1, sizeof *shapes);
    buffers = calloc(count ? count : 1, sizeof *buffers);
    for (size_t i = 0; i < count; i++) {
        onnxc_tensor info;
        if (onnxc_model_input_info(model, i, &info) != 0) FAIL("input_info %zu: %s", i, onnxc_last_error());
        if (info.dtype != 1) FAIL("input %s is not float", info.name);
        if (info.rank < 0) FAIL("input %s has unknown rank", info.name);
        shapes[i] = calloc(info.rank ? (size_t)info.rank : 1, sizeof(int64_t));
        size_t elements = 1;
        for (int32_t d = 0; d < info.rank; d++) {
            shapes[i][d] = info.shape[d] < 0 ? 1 : info.shape[d];
            elements *= (size_t)shapes[i][d];
        }
        buffers[i] = malloc(elements ? elements * sizeof(float) : 1);
        for (size_t e = 0; e < elements; e++) buffers[i][e] = 0.5f;
        inputs[i] = (onnxc_tensor){ info.name, 1, info.rank, shapes[i], buffers[i], elements * sizeof(float) };
    }
    if (count > 0) {
        onnxc_tensor wrong = inputs[0];
        wrong.byte_count += 4;
        if (onnxc_run(model, &wrong, 1) != NULL) FAIL("a wrongly sized input was accepted");
        if (strlen(onnxc_last_error()) == 0) FAIL("no message for a wrongly sized input");
    }
    result = onnxc_run(model, inputs, count);
    if (result == NULL) FAIL("run: %s", onnxc_last_error());
    if (onnxc_result_count(result) != onnxc_model_output_count(model)) FAIL("output count differs");
    onnxc_tensor out;
    if (onnxc_result_output(result, 0, &out) != 0) FAIL("result_output: %s", onnxc_last_error());
    if (out.dtype != 1) FAIL("first output is not float");
    if (strcmp(out.name, onnxc_model_output_name(model, 0)) != 0) FAIL("output name %s", out.name);
    double total = 0;
    for (size_t e = 0; e < out.byte_count / sizeof(float); e++) total += ((const float *)out.data)[e];
    *sum = total;
    if (onnxc_result_output(result, 99, &out) != -1) FAIL("an out-of-range output succeeded");
    status = 0;
done:
    onnxc_result_free(result);
    onnxc_model_free(model);
    for (size_t i = 0; i < count; i++) { if (shapes) free(shapes[i]); if (buffers) free(buffers[i]); }
    free(shapes);
    free(buffers);
    free(inputs);
    return status;
}
