#pragma once
// A whole neuralpredictors model: FiringRateEncoder(core, readout, shifter=...). The core runs once per
// input; each recording session (data_key) reads that one feature map through its own readout, with the
// grid shifted per image by its MLPShifter when the model has one, and the output nonlinearity gives one
// firing rate per neuron: ELU(x + elu_offset) + 1 ("elu") or x ("identity").
//
// Life of a model, as a core's: build (make_model from JSON) -> load(state_dict) or init(seed) ->
// prepare(options), once -> plan(input shape) -> ModelPlan::run(...), many times, from any number of
// threads, each with its own ModelWorkspace. A steady-state run allocates nothing (the oneDNN backend's
// core aside). A plan reads the model's prepared readouts: keep the model alive and do not load or
// prepare it again while its plans run.
#include <memory>
#include <string>
#include <vector>

#include "cores/core.h"
#include "layers/mlp_shifter.h"
#include "layers/readout.h"

namespace npcore {

class StateDict;

// One recording session: its readout and optional shifter.
struct ModelSession {
  std::string data_key;
  std::unique_ptr<Readout> readout;
  std::unique_ptr<MlpShifter> shifter;  // null without a shifter
};

enum class OutputNonlinearity { Elu, Identity };

class Model;

// Memory and state for running one ModelPlan on one thread.
struct ModelWorkspace {
  Workspace core;
  AlignedBuffer buffer;  // the core's feature map, shifts, readout scratch
  size_t floats = 0;
  const void* owner = nullptr;
};

class ModelPlan {
 public:
  const Shape& input_shape() const { return in_; }
  // The core's feature map [N, C, H, W], read by every session.
  const Shape& core_output_shape() const { return core_->output_shape(); }
  const Plan& core_plan() const { return *core_; }
  ModelWorkspace make_workspace() const;

  // Runs the core once and the readouts of `sessions` (indices into Model::data_keys()) into outs[i]
  // ([N, neurons of that session], dense). `pupil` is [N, shifter input] and required exactly when the
  // model has a shifter. Throws ShapeError / ConfigError before any work on bad arguments.
  void run(const Tensor& in, const Tensor* pupil, const std::vector<size_t>& sessions, Tensor* outs,
           ModelWorkspace& ws, const TapFn* tap = nullptr) const;
  // The two halves of run(), for timing: the core into the workspace, then the readouts from it.
  void run_core(const Tensor& in, ModelWorkspace& ws, const TapFn* tap = nullptr) const;
  void run_readouts(const Tensor* pupil, const std::vector<size_t>& sessions, Tensor* outs,
                    ModelWorkspace& ws) const;
  // The feature map the last run_core() left in `ws`.
  Tensor core_output(const ModelWorkspace& ws) const;

 private:
  friend class Model;
  void check_args(const Tensor* pupil, const std::vector<size_t>& sessions, const Tensor* outs) const;
  const Model* model_ = nullptr;
  Shape in_;
  std::unique_ptr<Plan> core_;
  int threads_ = 1;
  size_t feat_floats_ = 0, shift_floats_ = 0, scratch_floats_ = 0;
};

class Model {
 public:
  Model(std::unique_ptr<Core> core, std::vector<ModelSession> sessions, OutputNonlinearity nl,
        float elu_offset);
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  Core& core() { return *core_; }
  const Core& core() const { return *core_; }
  const std::vector<ModelSession>& sessions() const { return sessions_; }
  std::vector<std::string> data_keys() const;
  // The index of a data_key; throws ConfigError listing the model's data_keys if it has no such one.
  size_t session_index(const std::string& data_key) const;
  int64_t neurons(size_t session) const { return sessions_.at(session).readout->outdims(); }
  bool has_shifter() const { return sessions_.front().shifter != nullptr; }
  // Values per image the shifter takes (0 without a shifter).
  int64_t pupil_channels() const { return has_shifter() ? sessions_.front().shifter->input_channels() : 0; }
  OutputNonlinearity nonlinearity() const { return nl_; }
  float elu_offset() const { return elu_offset_; }

  // Loads the model's state_dict (core.*, readout.<key>.*, shifter.<key>.*) strictly: a WeightError lists
  // every missing, unexpected and mis-shaped key of the core and of the readouts and shifters.
  void load(const StateDict& sd);
  // Deterministic parameters (demos and benchmarks).
  void init(uint64_t seed);
  void prepare(const EngineOptions& opt);
  bool prepared() const { return prepared_; }
  // Plans the core and the readouts for an input shape; throws ShapeError naming the readout and the
  // core's output when they do not fit.
  std::unique_ptr<ModelPlan> plan(const Shape& in) const;
  // Convenience: rates of `sessions` for one input (allocates).
  std::vector<Tensor> forward(const Tensor& in, const Tensor* pupil, const std::vector<size_t>& sessions,
                              Tensor* core_out = nullptr, const TapFn* tap = nullptr) const;

 private:
  friend class ModelPlan;
  std::unique_ptr<Core> core_;
  std::vector<ModelSession> sessions_;
  OutputNonlinearity nl_;
  float elu_offset_;
  bool prepared_ = false;
};

// Parses a model description (../shared/ref/models/*.json: "model": "FiringRateEncoder", "core",
// "readout" {type, config, n_neurons}, optional "shifter" {type: MLPShifter, config}, "elu_offset",
// "nonlinearity_type", and "input_shape" or the readout's "in_shape" to size the readouts). `source`
// prefixes messages. Throws ConfigError.
std::unique_ptr<Model> make_model(const std::string& json_text, const std::string& source);
std::unique_ptr<Model> load_model(const std::string& path);
// Whether a parsed description file is a model (has "model") rather than a core or a module.
bool is_model_description(const std::string& json_text);

}  // namespace npcore
