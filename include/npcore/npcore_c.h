/* npcore's C API: the same as npcore/core.h for C programs and FFI (Python ctypes, Rust, Julia).
 * Opaque handles; every function that can fail returns an npcore_status and never lets an exception
 * out; npcore_last_error() gives the failure's one-line message (per thread).
 *
 *   npcore_core* core = NULL;
 *   if (npcore_core_load("core.json", "core.pth", NULL, 0, &core) != NPCORE_OK)
 *     fprintf(stderr, "%s\n", npcore_last_error());
 *   int64_t in[4] = {1, 1, 64, 64}, out[4];
 *   npcore_core_output_shape(core, in, out);
 *   npcore_core_forward(core, x, in, y, y_floats);
 *   npcore_core_free(core);
 */
#ifndef NPCORE_NPCORE_C_H
#define NPCORE_NPCORE_C_H

#include <stddef.h>
#include <stdint.h>

#include "npcore/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What went wrong; one code per class of npcore/error.h. */
typedef enum npcore_status {
  NPCORE_OK = 0,
  NPCORE_ERROR = 1,         /* another failure (npcore::Error, std::exception) */
  NPCORE_CONFIG_ERROR = 2,  /* bad core description: unknown key, bad value, unknown backend */
  NPCORE_SHAPE_ERROR = 3,   /* a shape the core cannot take */
  NPCORE_FORMAT_ERROR = 4,  /* a file that cannot be read or does not follow its format */
  NPCORE_WEIGHT_ERROR = 5,  /* weights that do not match the core (missing, unexpected, mis-shaped keys) */
  NPCORE_BACKEND_ERROR = 6, /* a backend that cannot run the request */
  NPCORE_USAGE_ERROR = 7,   /* API misuse: null pointer, too small an output buffer */
  NPCORE_RESOURCE_ERROR = 8 /* out of memory */
} npcore_status;

/* A loaded, prepared core. Not to be used from two threads at once; make one per thread. */
typedef struct npcore_core npcore_core;

/* The library's version, e.g. "0.1.0". */
NPCORE_API const char* npcore_version(void);

/* The message of this thread's last failed call ("" if none); valid until the next call on the thread. */
NPCORE_API const char* npcore_last_error(void);

/* The name of a status code, e.g. "NPCORE_SHAPE_ERROR". */
NPCORE_API const char* npcore_status_name(npcore_status status);

/* Loads a core: its JSON description file, its weights (.safetensors or a torch.save .pth), a backend
 * ("native", "onednn", "gemm", "reference"; NULL for native) and a thread count (0: OpenMP's default).
 * On success *out holds the core (free it with npcore_core_free). */
NPCORE_API npcore_status npcore_core_load(const char* config_path, const char* weights_path,
                                          const char* backend, int threads, npcore_core** out);

/* The same with the JSON description given as text. */
NPCORE_API npcore_status npcore_core_load_string(const char* config_json, const char* weights_path,
                                                 const char* backend, int threads, npcore_core** out);

/* Frees a core (NULL is allowed). */
NPCORE_API void npcore_core_free(npcore_core* core);

/* The neuralpredictors class name ("Stacked2dCore"); lives as long as the core. */
NPCORE_API const char* npcore_core_type(const npcore_core* core);

/* The input channels the core takes; *out set on success. */
NPCORE_API npcore_status npcore_core_input_channels(const npcore_core* core, int64_t* out);

/* The output shape (NCHW) for an NCHW input shape. */
NPCORE_API npcore_status npcore_core_output_shape(const npcore_core* core, const int64_t input_shape[4],
                                                  int64_t output_shape[4]);

/* Plans for an input shape ahead of time so that even the first forward with it allocates nothing. */
NPCORE_API npcore_status npcore_core_prepare(npcore_core* core, const int64_t input_shape[4]);

/* Runs the core: input NCHW float32 in C order with shape input_shape; the output (output_shape(...), C
 * order) goes to `output`, which holds output_floats floats and must not overlap `input` (it holds
 * intermediate block outputs during the call). Allocation-free after the first call for a shape (native,
 * gemm, reference backends). */
NPCORE_API npcore_status npcore_core_forward(npcore_core* core, const float* input,
                                             const int64_t input_shape[4], float* output,
                                             size_t output_floats);

/* ---- whole models (npcore/model.h) ----
 *   npcore_model* model = NULL;
 *   if (npcore_model_load("model.json", "model.pth", NULL, 0, &model) != NPCORE_OK) ...
 *   int64_t neurons = 0;
 *   npcore_model_neurons(model, "session_a", &neurons);
 *   npcore_model_forward(model, x, in, pupil, pupil_floats, "session_a", rates, rates_floats);
 *   npcore_model_free(model);
 */

/* A loaded, prepared neuralpredictors model (FiringRateEncoder): a core, a readout per recording session
 * (data_key), optional shifters. Not to be used from two threads at once; make one per thread. */
typedef struct npcore_model npcore_model;

/* Loads a model: its JSON description file ({"model": "FiringRateEncoder", ...}), its state_dict
 * (.safetensors or a torch.save .pth), a backend (NULL for native) and a thread count (0: OpenMP's
 * default). On success *out holds the model (free it with npcore_model_free). */
NPCORE_API npcore_status npcore_model_load(const char* config_path, const char* weights_path,
                                           const char* backend, int threads, npcore_model** out);

/* The same with the JSON description given as text. */
NPCORE_API npcore_status npcore_model_load_string(const char* config_json, const char* weights_path,
                                                  const char* backend, int threads, npcore_model** out);

/* Frees a model (NULL is allowed). */
NPCORE_API void npcore_model_free(npcore_model* model);

/* The core's neuralpredictors class name ("Stacked2dCore"); lives as long as the model. */
NPCORE_API const char* npcore_model_core_type(const npcore_model* model);

/* The number of recording sessions (data_keys); 0 for NULL. */
NPCORE_API size_t npcore_model_data_key_count(const npcore_model* model);

/* The name of session `index` (0 <= index < npcore_model_data_key_count), NULL when out of range; lives
 * as long as the model. npcore_model_forward_all writes the sessions in this order. */
NPCORE_API const char* npcore_model_data_key(const npcore_model* model, size_t index);

/* The neurons (rates per image) of a session; an unknown data_key gives NPCORE_USAGE_ERROR and a message
 * listing the model's data_keys. */
NPCORE_API npcore_status npcore_model_neurons(const npcore_model* model, const char* data_key, int64_t* out);

/* The input channels the core takes. */
NPCORE_API npcore_status npcore_model_input_channels(const npcore_model* model, int64_t* out);

/* The values per image of the pupil positions the model's shifter takes (2), or 0 when the model has no
 * shifter and npcore_model_forward takes no pupil positions. */
NPCORE_API npcore_status npcore_model_pupil_channels(const npcore_model* model, int64_t* out);

/* Plans for an NCHW input shape ahead of time so that even the first forward with it allocates nothing. */
NPCORE_API npcore_status npcore_model_prepare(npcore_model* model, const int64_t input_shape[4]);

/* Runs the model on `input` (NCHW float32, C order, shape input_shape) and writes the firing rates of
 * session `data_key` ([N, neurons], C order) to `output`, which holds output_floats floats. `pupil`
 * ([N, pupil_channels] float32, C order, pupil_floats floats) is required when the model has a shifter
 * (NPCORE_SHAPE_ERROR naming the expected shape otherwise) and ignored when it has none (pass NULL, 0).
 * Allocation-free after the first call for a shape (native, gemm, reference backends). */
NPCORE_API npcore_status npcore_model_forward(npcore_model* model, const float* input,
                                              const int64_t input_shape[4], const float* pupil,
                                              size_t pupil_floats, const char* data_key, float* output,
                                              size_t output_floats);

/* Every session from one run of the core: outputs[i] (holding output_floats[i] floats) receives the rates
 * of npcore_model_data_key(model, i); count must be npcore_model_data_key_count(model). */
NPCORE_API npcore_status npcore_model_forward_all(npcore_model* model, const float* input,
                                                  const int64_t input_shape[4], const float* pupil,
                                                  size_t pupil_floats, float* const* outputs,
                                                  const size_t* output_floats, size_t count);

#ifdef __cplusplus
}
#endif

#endif /* NPCORE_NPCORE_C_H */
