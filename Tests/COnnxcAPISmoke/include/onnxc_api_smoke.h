#ifndef ONNXC_API_SMOKE_H
#define ONNXC_API_SMOKE_H
#include <stddef.h>

/* Loads the compiled model at `path` through the C interface, feeds every float input with 0.5 (unknown dims
 * as 1), runs it, and returns the sum of the first output's floats in *sum. Returns 0 on success; otherwise
 * writes the reason into `message`. Also checks error handling: a missing file and NULL arguments must fail
 * cleanly with a message. */
int onnxc_api_smoke(const char *path, double *sum, char *message, size_t capacity);

#endif
