/* ctest npcore_c_api: the C API (npcore/npcore_c.h) from C. Loads a fixture core, checks its shapes and
 * its output against the PyTorch reference stored with it (within ../shared/ref's tolerance), and checks
 * that each kind of failure gives its status code and a message naming the problem; then the same for a
 * fixture whole model with a shifter (npcore_model_*: one session, all sessions, pupil positions).
 * Argument: the tests/fixtures folder. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <npcore/npcore_c.h>
#include <npcore/version.h>

static int failures = 0;
#define EXPECT(cond)                                                     \
  do {                                                                   \
    if (!(cond)) {                                                       \
      fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                        \
    }                                                                    \
  } while (0)

/* The raw bytes of tensor `name` in a safetensors file (F32 only): a minimal reader for the test. */
static float* read_tensor(const char* path, const char* name, size_t* count) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  unsigned char len8[8];
  if (fread(len8, 1, 8, f) != 8) {
    fclose(f);
    return NULL;
  }
  unsigned long long hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | len8[i];
  char* header = malloc(hlen + 1);
  if (fread(header, 1, hlen, f) != hlen) {
    free(header);
    fclose(f);
    return NULL;
  }
  header[hlen] = 0;
  char key[256];
  snprintf(key, sizeof key, "\"%s\"", name);
  char* at = strstr(header, key);
  float* data = NULL;
  if (at) {
    char* offs = strstr(at, "\"data_offsets\"");
    unsigned long long begin = 0, end = 0;
    if (offs && sscanf(strchr(offs, '[') + 1, "%llu , %llu", &begin, &end) == 2) {
      data = malloc(end - begin);
      fseek(f, (long)(8 + hlen + begin), SEEK_SET);
      if (fread(data, 1, end - begin, f) != end - begin) {
        free(data);
        data = NULL;
      }
      *count = (size_t)((end - begin) / 4);
    }
  }
  free(header);
  fclose(f);
  return data;
}

static double max_err(const float* y, const float* ref, size_t n, double* refmax) {
  double err = 0;
  *refmax = 0;
  for (size_t i = 0; i < n; ++i) {
    err = fmax(err, fabs((double)y[i] - ref[i]));
    *refmax = fmax(*refmax, fabs((double)ref[i]));
  }
  return err;
}

/* The whole model tests/fixtures/models/model_stacked2d_gaussian_shifter: 2 sessions (40 and 25
 * neurons), a shifter taking (N, 2) pupil positions, input [3, 1, 36, 64]. */
static void test_model(const char* fixtures) {
  char config[1024], weights[1024], io[1024];
  snprintf(config, sizeof config, "%s/models/model_stacked2d_gaussian_shifter.json", fixtures);
  snprintf(weights, sizeof weights, "%s/models/model_stacked2d_gaussian_shifter.weights.safetensors",
           fixtures);
  snprintf(io, sizeof io, "%s/models/model_stacked2d_gaussian_shifter.io.safetensors", fixtures);

  npcore_model* model = NULL;
  npcore_status s = npcore_model_load(config, weights, "gemm", 1, &model);
  if (s != NPCORE_OK) {
    fprintf(stderr, "model load: %s: %s\n", npcore_status_name(s), npcore_last_error());
    ++failures;
    return;
  }
  EXPECT(strcmp(npcore_model_core_type(model), "Stacked2dCore") == 0);
  EXPECT(npcore_model_data_key_count(model) == 2);
  EXPECT(strcmp(npcore_model_data_key(model, 0), "session_a") == 0);
  EXPECT(strcmp(npcore_model_data_key(model, 1), "session_b") == 0);
  EXPECT(npcore_model_data_key(model, 2) == NULL);
  int64_t v = 0;
  EXPECT(npcore_model_input_channels(model, &v) == NPCORE_OK && v == 1);
  EXPECT(npcore_model_pupil_channels(model, &v) == NPCORE_OK && v == 2);
  EXPECT(npcore_model_neurons(model, "session_a", &v) == NPCORE_OK && v == 40);
  EXPECT(npcore_model_neurons(model, "session_b", &v) == NPCORE_OK && v == 25);
  EXPECT(npcore_model_neurons(model, "session_c", &v) == NPCORE_USAGE_ERROR);
  printf("model usage error: %s\n", npcore_last_error());
  EXPECT(strstr(npcore_last_error(), "session_c") && strstr(npcore_last_error(), "session_a, session_b"));

  size_t nin = 0, npupil = 0, na = 0, nb = 0;
  float* x = read_tensor(io, "input", &nin);
  float* pupil = read_tensor(io, "pupil_center", &npupil);
  float* ref_a = read_tensor(io, "output/session_a", &na);
  float* ref_b = read_tensor(io, "output/session_b", &nb);
  EXPECT(x && pupil && ref_a && ref_b && nin == 3 * 36 * 64 && npupil == 6 && na == 3 * 40 && nb == 3 * 25);
  const int64_t in_shape[4] = {3, 1, 36, 64};
  EXPECT(npcore_model_prepare(model, in_shape) == NPCORE_OK);
  if (x && pupil && ref_a && ref_b) {
    float* ya = calloc(na, sizeof(float));
    float* yb = calloc(nb, sizeof(float));
    double refmax = 0, err = 0;
    /* One session. */
    EXPECT(npcore_model_forward(model, x, in_shape, pupil, npupil, "session_a", ya, na) == NPCORE_OK);
    err = max_err(ya, ref_a, na, &refmax);
    printf("model session_a: max|y - ref| = %.3e, max|ref| = %.3e\n", err, refmax);
    EXPECT(err <= 1e-4 * fmax(1.0, refmax));
    /* Every session from one run of the core. */
    memset(ya, 0, na * sizeof(float));
    float* outs[2] = {ya, yb};
    const size_t sizes[2] = {na, nb};
    EXPECT(npcore_model_forward_all(model, x, in_shape, pupil, npupil, outs, sizes, 2) == NPCORE_OK);
    err = max_err(ya, ref_a, na, &refmax);
    EXPECT(err <= 1e-4 * fmax(1.0, refmax));
    err = max_err(yb, ref_b, nb, &refmax);
    printf("model all sessions: session_b max|y - ref| = %.3e, max|ref| = %.3e\n", err, refmax);
    EXPECT(err <= 1e-4 * fmax(1.0, refmax));
    /* Pupil positions missing, or of the wrong size: the expected shape is named. */
    EXPECT(npcore_model_forward(model, x, in_shape, NULL, 0, "session_a", ya, na) == NPCORE_SHAPE_ERROR);
    printf("model pupil error: %s\n", npcore_last_error());
    EXPECT(strstr(npcore_last_error(), "[3, 2]") != NULL);
    EXPECT(npcore_model_forward(model, x, in_shape, pupil, 4, "session_a", ya, na) == NPCORE_SHAPE_ERROR);
    EXPECT(strstr(npcore_last_error(), "[3, 2]") != NULL);
    EXPECT(npcore_model_forward(model, x, in_shape, pupil, npupil, "session_x", ya, na) ==
           NPCORE_USAGE_ERROR);
    EXPECT(strstr(npcore_last_error(), "session_a, session_b") != NULL);
    EXPECT(npcore_model_forward(model, x, in_shape, pupil, npupil, "session_a", ya, na - 1) ==
           NPCORE_USAGE_ERROR);
    EXPECT(npcore_model_forward_all(model, x, in_shape, pupil, npupil, outs, sizes, 1) == NPCORE_USAGE_ERROR);
    EXPECT(npcore_model_forward(model, x, in_shape, pupil, npupil, NULL, ya, na) == NPCORE_USAGE_ERROR);
    free(ya);
    free(yb);
  }
  npcore_model_free(model);

  model = (npcore_model*)1;
  EXPECT(npcore_model_load("/nonexistent/model.json", weights, NULL, 0, &model) == NPCORE_FORMAT_ERROR);
  EXPECT(model == NULL);
  EXPECT(strstr(npcore_last_error(), "/nonexistent/model.json") != NULL);
  EXPECT(npcore_model_load_string("{\"model\": \"FiringRateEncoder\"}", weights, NULL, 0, &model) ==
         NPCORE_CONFIG_ERROR);
  printf("model config error: %s\n", npcore_last_error());
  npcore_model_free(NULL);
  free(x);
  free(pupil);
  free(ref_a);
  free(ref_b);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FIXTURE_DIR\n", argv[0]);
    return 2;
  }
  char config[1024], weights[1024], io[1024];
  snprintf(config, sizeof config, "%s/stacked2d_strides.json", argv[1]);
  snprintf(weights, sizeof weights, "%s/stacked2d_strides.weights.safetensors", argv[1]);
  snprintf(io, sizeof io, "%s/stacked2d_strides.io.safetensors", argv[1]);

  EXPECT(strcmp(npcore_version(), NPCORE_VERSION_STRING) == 0);

  npcore_core* core = NULL;
  npcore_status s = npcore_core_load(config, weights, "gemm", 1, &core);
  if (s != NPCORE_OK) {
    fprintf(stderr, "load: %s: %s\n", npcore_status_name(s), npcore_last_error());
    return 1;
  }
  EXPECT(strcmp(npcore_core_type(core), "Stacked2dCore") == 0);
  int64_t channels = 0;
  EXPECT(npcore_core_input_channels(core, &channels) == NPCORE_OK && channels == 1);

  const int64_t in_shape[4] = {2, 1, 64, 96};
  int64_t out_shape[4] = {0, 0, 0, 0};
  EXPECT(npcore_core_output_shape(core, in_shape, out_shape) == NPCORE_OK);
  EXPECT(out_shape[0] == 2 && out_shape[1] == 16 && out_shape[2] == 8 && out_shape[3] == 12);

  size_t nin = 0, nref = 0;
  float* x = read_tensor(io, "input", &nin);
  float* ref = read_tensor(io, "output", &nref);
  EXPECT(x && ref && nin == 2 * 64 * 96 && nref == 2 * 16 * 8 * 12);
  if (x && ref) {
    float* y = calloc(nref, sizeof(float));
    for (int run = 0; run < 2; ++run) { /* the second run reuses the plan */
      s = npcore_core_forward(core, x, in_shape, y, nref);
      EXPECT(s == NPCORE_OK);
      double err = 0, refmax = 0;
      for (size_t i = 0; i < nref; ++i) {
        err = fmax(err, fabs((double)y[i] - ref[i]));
        refmax = fmax(refmax, fabs((double)ref[i]));
      }
      printf("run %d: max|y - ref| = %.3e, max|ref| = %.3e\n", run, err, refmax);
      EXPECT(err <= 1e-4 * fmax(1.0, refmax));
    }
    /* Too small an output buffer. */
    EXPECT(npcore_core_forward(core, x, in_shape, y, nref - 1) == NPCORE_USAGE_ERROR);
    EXPECT(strstr(npcore_last_error(), "output buffer holds") != NULL);
    /* A shape the core cannot take (2 channels). */
    const int64_t bad[4] = {1, 2, 64, 96};
    EXPECT(npcore_core_forward(core, x, bad, y, nref) == NPCORE_SHAPE_ERROR);
    printf("shape error: %s\n", npcore_last_error());
    EXPECT(strstr(npcore_last_error(), "channels") != NULL);
    free(y);
  }
  EXPECT(npcore_core_forward(core, NULL, in_shape, NULL, 0) == NPCORE_USAGE_ERROR);
  npcore_core_free(core);

  /* Failures at load: each names the problem. */
  core = (npcore_core*)1;
  EXPECT(npcore_core_load("/nonexistent/core.json", weights, NULL, 0, &core) == NPCORE_FORMAT_ERROR);
  EXPECT(core == NULL);
  EXPECT(strstr(npcore_last_error(), "/nonexistent/core.json") != NULL);
  EXPECT(npcore_core_load(config, weights, "fastest", 0, &core) == NPCORE_CONFIG_ERROR);
  EXPECT(strstr(npcore_last_error(), "fastest") != NULL);
  EXPECT(npcore_core_load_string(
             "{\"core\": \"Stacked2dCore\", \"config\": {\"input_channels\": 1, \"hidden_channels\": 16, "
             "\"input_kern\": 5, \"hidden_kern\": 3, \"layerz\": 3}}",
             weights, NULL, 0, &core) == NPCORE_CONFIG_ERROR);
  printf("config error: %s\n", npcore_last_error());
  EXPECT(strstr(npcore_last_error(), "layerz") != NULL);
  EXPECT(npcore_core_load_string(
             "{\"core\": \"Stacked2dCore\", \"config\": {\"input_channels\": 1, "
             "\"hidden_channels\": 8, \"input_kern\": 5, \"hidden_kern\": 3, \"layers\": 3}}",
             weights, NULL, 0, &core) == NPCORE_WEIGHT_ERROR);
  printf("weight error: %s\n", npcore_last_error());
  EXPECT(npcore_core_load(config, NULL, NULL, 0, &core) == NPCORE_USAGE_ERROR);
  EXPECT(strcmp(npcore_status_name(NPCORE_SHAPE_ERROR), "NPCORE_SHAPE_ERROR") == 0);
  npcore_core_free(NULL);

  free(x);
  free(ref);
  test_model(argv[1]);
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("C API: all checks passed\n");
  return 0;
}
