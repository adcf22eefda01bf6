// The C API (include/npcore/npcore_c.h) over CoreHandle: every exception becomes a status code and this
// thread's last-error message; none crosses into C.
#include "npcore/npcore_c.h"

#include <new>
#include <string>
#include <vector>

#include "npcore/core.h"
#include "npcore/error.h"
#include "npcore/model.h"

struct npcore_core {
  npcore::CoreHandle handle;
  std::string type;
};

struct npcore_model {
  npcore::ModelHandle handle;
  std::string core_type;
  std::vector<std::string> data_keys;
};

namespace {

thread_local std::string last_error;

npcore_status fail(npcore_status s, const char* what) {
  try {
    last_error = what;
  } catch (...) {
    last_error.clear();
  }
  return s;
}

// Runs fn, mapping what it throws to a status (most derived class first).
template <class F>
npcore_status guarded(F&& fn) {
  try {
    fn();
    return NPCORE_OK;
  } catch (const npcore::ConfigError& e) {
    return fail(NPCORE_CONFIG_ERROR, e.what());
  } catch (const npcore::ShapeError& e) {
    return fail(NPCORE_SHAPE_ERROR, e.what());
  } catch (const npcore::FormatError& e) {
    return fail(NPCORE_FORMAT_ERROR, e.what());
  } catch (const npcore::WeightError& e) {
    return fail(NPCORE_WEIGHT_ERROR, e.what());
  } catch (const npcore::BackendError& e) {
    return fail(NPCORE_BACKEND_ERROR, e.what());
  } catch (const npcore::UsageError& e) {
    return fail(NPCORE_USAGE_ERROR, e.what());
  } catch (const npcore::ResourceError& e) {
    return fail(NPCORE_RESOURCE_ERROR, e.what());
  } catch (const std::bad_alloc&) {
    return fail(NPCORE_RESOURCE_ERROR, "out of memory");
  } catch (const std::exception& e) {
    return fail(NPCORE_ERROR, e.what());
  } catch (...) {
    return fail(NPCORE_ERROR, "unknown error");
  }
}

npcore::Shape4 shape4(const int64_t* s, const char* what) {
  if (!s) throw npcore::UsageError(std::string("npcore: ") + what + " is NULL");
  return {s[0], s[1], s[2], s[3]};
}

void need(const void* p, const char* fn, const char* what) {
  if (!p) throw npcore::UsageError(std::string(fn) + ": " + what + " is NULL");
}

npcore_status load(const char* config, bool is_text, const char* weights, const char* backend, int threads,
                   npcore_core** out) {
  const char* fn = is_text ? "npcore_core_load_string" : "npcore_core_load";
  return guarded([&] {
    need(out, fn, "out");
    *out = nullptr;
    need(config, fn, is_text ? "config_json" : "config_path");
    need(weights, fn, "weights_path");
    npcore::CoreOptions opt;
    if (backend) opt.backend = backend;
    opt.threads = threads;
    npcore::CoreHandle h = is_text ? npcore::CoreHandle::load_from_string(config, weights, opt)
                                   : npcore::CoreHandle::load(config, weights, opt);
    std::string type = h.type();
    *out = new npcore_core{std::move(h), std::move(type)};
  });
}

npcore_status load_model(const char* config, bool is_text, const char* weights, const char* backend,
                         int threads, npcore_model** out) {
  const char* fn = is_text ? "npcore_model_load_string" : "npcore_model_load";
  return guarded([&] {
    need(out, fn, "out");
    *out = nullptr;
    need(config, fn, is_text ? "config_json" : "config_path");
    need(weights, fn, "weights_path");
    npcore::ModelOptions opt;
    if (backend) opt.backend = backend;
    opt.threads = threads;
    npcore::ModelHandle h = is_text ? npcore::ModelHandle::load_from_string(config, weights, opt)
                                    : npcore::ModelHandle::load(config, weights, opt);
    std::string type = h.core_type();
    std::vector<std::string> keys = h.data_keys();
    *out = new npcore_model{std::move(h), std::move(type), std::move(keys)};
  });
}

}  // namespace

extern "C" {

const char* npcore_version(void) {
  return npcore::version();
}

const char* npcore_last_error(void) {
  return last_error.c_str();
}

const char* npcore_status_name(npcore_status status) {
  switch (status) {
    case NPCORE_OK:
      return "NPCORE_OK";
    case NPCORE_ERROR:
      return "NPCORE_ERROR";
    case NPCORE_CONFIG_ERROR:
      return "NPCORE_CONFIG_ERROR";
    case NPCORE_SHAPE_ERROR:
      return "NPCORE_SHAPE_ERROR";
    case NPCORE_FORMAT_ERROR:
      return "NPCORE_FORMAT_ERROR";
    case NPCORE_WEIGHT_ERROR:
      return "NPCORE_WEIGHT_ERROR";
    case NPCORE_BACKEND_ERROR:
      return "NPCORE_BACKEND_ERROR";
    case NPCORE_USAGE_ERROR:
      return "NPCORE_USAGE_ERROR";
    case NPCORE_RESOURCE_ERROR:
      return "NPCORE_RESOURCE_ERROR";
  }
  return "unknown npcore_status";
}

npcore_status npcore_core_load(const char* config_path, const char* weights_path, const char* backend,
                               int threads, npcore_core** out) {
  return load(config_path, false, weights_path, backend, threads, out);
}

npcore_status npcore_core_load_string(const char* config_json, const char* weights_path, const char* backend,
                                      int threads, npcore_core** out) {
  return load(config_json, true, weights_path, backend, threads, out);
}

void npcore_core_free(npcore_core* core) {
  delete core;
}

const char* npcore_core_type(const npcore_core* core) {
  return core ? core->type.c_str() : "";
}

npcore_status npcore_core_input_channels(const npcore_core* core, int64_t* out) {
  return guarded([&] {
    need(core, "npcore_core_input_channels", "core");
    need(out, "npcore_core_input_channels", "out");
    *out = core->handle.input_channels();
  });
}

npcore_status npcore_core_output_shape(const npcore_core* core, const int64_t input_shape[4],
                                       int64_t output_shape[4]) {
  return guarded([&] {
    need(core, "npcore_core_output_shape", "core");
    need(output_shape, "npcore_core_output_shape", "output_shape");
    const npcore::Shape4 s = core->handle.output_shape(shape4(input_shape, "input_shape"));
    for (int i = 0; i < 4; ++i) output_shape[i] = s[size_t(i)];
  });
}

npcore_status npcore_core_prepare(npcore_core* core, const int64_t input_shape[4]) {
  return guarded([&] {
    need(core, "npcore_core_prepare", "core");
    core->handle.prepare(shape4(input_shape, "input_shape"));
  });
}

npcore_status npcore_core_forward(npcore_core* core, const float* input, const int64_t input_shape[4],
                                  float* output, size_t output_floats) {
  return guarded([&] {
    need(core, "npcore_core_forward", "core");
    core->handle.forward(input, shape4(input_shape, "input_shape"), output, output_floats);
  });
}

npcore_status npcore_model_load(const char* config_path, const char* weights_path, const char* backend,
                                int threads, npcore_model** out) {
  return load_model(config_path, false, weights_path, backend, threads, out);
}

npcore_status npcore_model_load_string(const char* config_json, const char* weights_path, const char* backend,
                                       int threads, npcore_model** out) {
  return load_model(config_json, true, weights_path, backend, threads, out);
}

void npcore_model_free(npcore_model* model) {
  delete model;
}

const char* npcore_model_core_type(const npcore_model* model) {
  return model ? model->core_type.c_str() : "";
}

size_t npcore_model_data_key_count(const npcore_model* model) {
  return model ? model->data_keys.size() : 0;
}

const char* npcore_model_data_key(const npcore_model* model, size_t index) {
  return model && index < model->data_keys.size() ? model->data_keys[index].c_str() : nullptr;
}

npcore_status npcore_model_neurons(const npcore_model* model, const char* data_key, int64_t* out) {
  return guarded([&] {
    need(model, "npcore_model_neurons", "model");
    need(data_key, "npcore_model_neurons", "data_key");
    need(out, "npcore_model_neurons", "out");
    *out = model->handle.neurons(data_key);
  });
}

npcore_status npcore_model_input_channels(const npcore_model* model, int64_t* out) {
  return guarded([&] {
    need(model, "npcore_model_input_channels", "model");
    need(out, "npcore_model_input_channels", "out");
    *out = model->handle.input_channels();
  });
}

npcore_status npcore_model_pupil_channels(const npcore_model* model, int64_t* out) {
  return guarded([&] {
    need(model, "npcore_model_pupil_channels", "model");
    need(out, "npcore_model_pupil_channels", "out");
    *out = model->handle.pupil_channels();
  });
}

npcore_status npcore_model_prepare(npcore_model* model, const int64_t input_shape[4]) {
  return guarded([&] {
    need(model, "npcore_model_prepare", "model");
    model->handle.prepare(shape4(input_shape, "input_shape"));
  });
}

npcore_status npcore_model_forward(npcore_model* model, const float* input, const int64_t input_shape[4],
                                   const float* pupil, size_t pupil_floats, const char* data_key,
                                   float* output, size_t output_floats) {
  return guarded([&] {
    need(model, "npcore_model_forward", "model");
    need(data_key, "npcore_model_forward", "data_key");
    // The model's own copy of the key: a std::string made from the caller's text could allocate.
    for (const std::string& key : model->data_keys)
      if (key == data_key)
        return model->handle.forward(input, shape4(input_shape, "input_shape"), pupil, pupil_floats, key,
                                     output, output_floats);
    model->handle.neurons(data_key);  // throws UsageError listing the data_keys
  });
}

npcore_status npcore_model_forward_all(npcore_model* model, const float* input, const int64_t input_shape[4],
                                       const float* pupil, size_t pupil_floats, float* const* outputs,
                                       const size_t* output_floats, size_t count) {
  return guarded([&] {
    need(model, "npcore_model_forward_all", "model");
    model->handle.forward_all(input, shape4(input_shape, "input_shape"), pupil, pupil_floats, outputs,
                              output_floats, count);
  });
}

}  // extern "C"
