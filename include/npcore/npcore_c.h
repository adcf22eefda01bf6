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
 * order) goes to `output`, which holds output_floats floats. Allocation-free after the first call for a
 * shape (native, gemm, reference backends). */
NPCORE_API npcore_status npcore_core_forward(npcore_core* core, const float* input,
                                             const int64_t input_shape[4], float* output,
                                             size_t output_floats);

#ifdef __cplusplus
}
#endif

#endif /* NPCORE_NPCORE_C_H */
