#pragma once
// npcore::ModelHandle: a whole neuralpredictors model (FiringRateEncoder: a core, one readout per
// recording session - data_key -, an optional MLPShifter per session driven by the pupil position, and
// the output nonlinearity) loaded from its JSON description and its state_dict, run on caller memory.
// The same shape of interface as CoreHandle (npcore/core.h); npcore/npcore_c.h has it for C and FFI.
//
//   npcore::ModelHandle model = npcore::ModelHandle::load("model.json", "model.pth");
//   std::vector<float> rates(size_t(n * model.neurons("session_a")));
//   model.forward(x, {n, 1, 36, 64}, nullptr, 0, "session_a", rates.data(), rates.size());
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "npcore/core.h"
#include "npcore/error.h"
#include "npcore/export.h"

namespace npcore {

// How a model is prepared and run: backend, threads, Winograd, fusion of its core (see CoreOptions).
using ModelOptions = CoreOptions;

class NPCORE_API ModelHandle {
 public:
  // Reads the model's description (JSON file {"model": "FiringRateEncoder", "core": {...}, "readout":
  // {...}, optional "shifter", ...}: docs/API.md) and its state_dict (core.*, readout.<data_key>.*,
  // shifter.<data_key>.*; .safetensors or a torch.save checkpoint .pth), loaded strictly, and prepares
  // it. Throws ConfigError, FormatError, WeightError (messages name the file and key), BackendError.
  static ModelHandle load(const std::string& config_path, const std::string& weights_path,
                          const ModelOptions& options = {});
  // The same with the description given as JSON text.
  static ModelHandle load_from_string(const std::string& config_json, const std::string& weights_path,
                                      const ModelOptions& options = {});

  ModelHandle(ModelHandle&&) noexcept;
  ModelHandle& operator=(ModelHandle&&) noexcept;
  ~ModelHandle();

  // The core's neuralpredictors class name, e.g. "Stacked2dCore".
  std::string core_type() const;
  // The recording sessions, in the order of the description's n_neurons; forward_all() writes in it.
  std::vector<std::string> data_keys() const;
  // Neurons (outputs per image) of a session; throws UsageError listing the data_keys for an unknown one.
  int64_t neurons(const std::string& data_key) const;
  // The input channels the core takes (C of the NCHW input).
  int64_t input_channels() const;
  // Whether forward() needs pupil positions (the model has a shifter), and the values per image it takes
  // (2: x, y; 0 without a shifter).
  bool needs_pupil() const;
  int64_t pupil_channels() const;
  const ModelOptions& options() const;

  // Plans for an NCHW input shape ahead of time (buffers, kernels), so that even the first forward() with
  // it allocates nothing. forward() does this itself for a shape it has not seen. Throws ShapeError when
  // the core or a readout cannot take the shape.
  void prepare(const Shape4& input_shape);

  // Runs the model on `input` (NCHW float32, C order, shape `input_shape`) and writes the firing rates of
  // session `data_key` ([N, neurons(data_key)], C order) to `output`, which holds `output_floats` floats.
  // `pupil` ([N, pupil_channels()] float32, C order, holding `pupil_floats` floats) is required exactly
  // when needs_pupil(); it is ignored otherwise (as neuralpredictors does). After the first call for a
  // shape (or prepare()), a call allocates nothing on the native, gemm and reference backends (pass the
  // key as a std::string kept by the caller, e.g. from data_keys(): a temporary one may allocate).
  // Throws UsageError (null pointer, too small an output, unknown data_key - the message lists the
  // model's), ShapeError (an input shape the model cannot take; missing or mis-sized pupil positions -
  // the message gives the expected shape). Not safe to call on one handle from two threads at once.
  void forward(const float* input, const Shape4& input_shape, const float* pupil, size_t pupil_floats,
               const std::string& data_key, float* output, size_t output_floats);
  // Every session from one run of the core: outputs[i] (holding output_floats[i] floats) receives the
  // rates of data_keys()[i]; both arrays have data_keys().size() entries (`count`, checked).
  void forward_all(const float* input, const Shape4& input_shape, const float* pupil, size_t pupil_floats,
                   float* const* outputs, const size_t* output_floats, size_t count);
  // Convenience: allocates and returns the rates of one session ([N, neurons(data_key)], C order).
  std::vector<float> forward(const float* input, const Shape4& input_shape, const float* pupil,
                             size_t pupil_floats, const std::string& data_key);

 private:
  struct Impl;
  explicit ModelHandle(std::unique_ptr<Impl> impl);
  Impl& impl() const;  // throws UsageError on a moved-from handle
  std::unique_ptr<Impl> impl_;
};

}  // namespace npcore
