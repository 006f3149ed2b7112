/* onnxc_runtime.h — the C interface of the onnxc runtime: load a compiled model (.oxc), run it, read outputs.
 *
 * Link with the `OnnxcRuntimeC` library product (libOnnxcRuntimeC.so). It depends on neither protobuf-c nor
 * the compiler. A loaded model is immutable and may be shared by threads; each onnxc_run call uses its own
 * arena. Every function that can fail returns NULL or a negative value and sets a message that
 * onnxc_last_error() returns (per thread, valid until the thread's next call).
 *
 * Data types use ONNX's TensorProto.DataType codes (1 float, 6 int32, 7 int64, 9 bool, 10 float16, 11 double…).
 */
#ifndef ONNXC_RUNTIME_H
#define ONNXC_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct onnxc_model onnxc_model;
typedef struct onnxc_result onnxc_result;

/* A dense tensor: row-major, little-endian. For inputs the caller owns every pointer; for outputs the pointers
 * stay valid until onnxc_result_free. */
typedef struct onnxc_tensor {
    const char *name;
    int32_t dtype;
    int32_t rank;
    const int64_t *shape;
    const void *data;
    size_t byte_count;
} onnxc_tensor;

/* Maps the file and validates it (checksums, offsets, opcodes); constants are used in place. */
onnxc_model *onnxc_model_load(const char *path);
/* Copies `size` bytes (the caller may free them after the call). */
onnxc_model *onnxc_model_load_bytes(const void *bytes, size_t size);
void onnxc_model_free(onnxc_model *model);

size_t onnxc_model_input_count(const onnxc_model *model);
size_t onnxc_model_output_count(const onnxc_model *model);
/* Names valid while the model is loaded; NULL when the index is out of range. */
const char *onnxc_model_input_name(const onnxc_model *model, size_t index);
const char *onnxc_model_output_name(const onnxc_model *model, size_t index);

/* Input or output `index` as declared: name, dtype (0 when not a tensor), rank (-1 when unknown) and shape
 * (-1 for a dim known only at run time); data is NULL. Returns 0, or -1 when out of range. */
int onnxc_model_input_info(const onnxc_model *model, size_t index, onnxc_tensor *out);
int onnxc_model_output_info(const onnxc_model *model, size_t index, onnxc_tensor *out);

/* Runs the model on `count` named inputs. NULL on failure (see onnxc_last_error). */
onnxc_result *onnxc_run(const onnxc_model *model, const onnxc_tensor *inputs, size_t count);
size_t onnxc_result_count(const onnxc_result *result);
/* Fills `out` with output `index` (in the model's output order). Returns 0, or -1 when out of range. */
int onnxc_result_output(const onnxc_result *result, size_t index, onnxc_tensor *out);
void onnxc_result_free(onnxc_result *result);

/* The last error on this thread, or "" when none. */
const char *onnxc_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* ONNXC_RUNTIME_H */
