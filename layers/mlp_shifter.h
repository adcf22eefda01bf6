#pragma once
// Small fully connected stacks: neuralpredictors' MLP shifter (layers/shifters/mlp.py: Linear, Tanh, ...,
// Linear(., 2), Tanh, mapping each image's pupil position to a shift of the readout grid) and the
// FullGaussian2d grid_mean_predictor's mu_transform (Linear, ELU, ..., Linear(., 2), optional Tanh).
#include <cstdint>
#include <string>
#include <vector>

namespace npcore {

class StateDict;
class WeightSpec;
class Rng;

// One nn.Linear: y = W x + b, W [out, in].
struct DenseLayer {
  int64_t in = 0, out = 0;
  bool bias = true;
  std::vector<float> weight, b;
};

// nn.Sequential of Linear layers with an activation between them (and optionally after the last).
class DenseStack {
 public:
  enum class Act { None, Tanh, Elu };
  // `dims` = {in, hidden..., out}; Linear i is stored under `prefix`.<index of Linear i in the
  // Sequential> (0, 2, 4, ... since each is followed by an activation module).
  DenseStack(std::string prefix, std::vector<int64_t> dims, bool bias, Act between, Act after_last);
  void declare(WeightSpec& spec) const;
  void load(const StateDict& sd);
  void init(Rng& rng);
  int64_t in_features() const { return layers_.front().in; }
  int64_t out_features() const { return layers_.back().out; }
  // out[rows, out_features] = stack(in[rows, in_features]); `tmp` holds 2 * max width floats.
  void run(const float* in, int64_t rows, float* out, float* tmp) const;
  int64_t max_width() const;

 private:
  std::string prefix_;
  std::vector<DenseLayer> layers_;
  Act between_, after_last_;
};

// MLPShifter's module for one data_key (neuralpredictors' MLP): shift_layers Linear layers, each
// followed by Tanh, hidden width hidden_channels_shifter, input input_channels, output 2.
class MlpShifter {
 public:
  // `name` is its state_dict prefix, e.g. "shifter.session_a".
  MlpShifter(std::string name, int64_t input_channels, int64_t hidden_channels, int64_t shift_layers,
             bool bias);
  const std::string& name() const { return name_; }
  int64_t input_channels() const { return mlp_.in_features(); }
  void declare(WeightSpec& spec) const { mlp_.declare(spec); }
  void load(const StateDict& sd) { mlp_.load(sd); }
  void init(Rng& rng) { mlp_.init(rng); }
  // Floats of scratch run() needs.
  size_t scratch_floats() const { return size_t(2 * mlp_.max_width()); }
  // shift [n, 2] from pupil [n, input_channels].
  void run(const float* pupil, int64_t n, float* shift, float* scratch) const {
    mlp_.run(pupil, n, shift, scratch);
  }

 private:
  std::string name_;
  DenseStack mlp_;
};

}  // namespace npcore
