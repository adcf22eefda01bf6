#pragma once
// A readout: neuralpredictors' per-session module that maps the core's feature map [N, C, H, W] to one
// value per neuron [N, neurons] (FullGaussian2d, PointPooled2d, FullFactorized2d), in eval mode. Its
// life follows the layers': build (from a config) -> declare + load (strict) -> prepare (clamp
// positions, normalise masks, transpose features; once) -> run (many times, from any thread, with
// scratch memory of scratch_floats()). Names follow the model's state_dict: "readout.session_a".
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/options.h"
#include "engine/tensor.h"

namespace npcore {

class StateDict;
class WeightSpec;
class ConfigReader;

class Readout {
 public:
  // `in_shape` is the readout's [C, H, W] (the core's output for one image).
  Readout(std::string name, Shape in_shape, int64_t outdims)
      : name_(std::move(name)), in_shape_(in_shape), outdims_(outdims) {}
  virtual ~Readout() = default;
  Readout(const Readout&) = delete;
  Readout& operator=(const Readout&) = delete;

  virtual const char* type() const = 0;
  const std::string& name() const { return name_; }
  std::string key(const std::string& field) const { return name_ + "." + field; }
  const Shape& in_shape() const { return in_shape_; }
  int64_t outdims() const { return outdims_; }
  // Whether a feature map of another height and width than in_shape is accepted (PyTorch's
  // FullGaussian2d only warns; PointPooled2d and FullFactorized2d refuse).
  virtual bool any_spatial_size() const { return false; }
  // Whether the readout takes a per-image shift of its positions (from a shifter).
  virtual bool takes_shift() const { return true; }

  // The state_dict keys and shapes it reads.
  virtual void declare(WeightSpec& spec) const = 0;
  // Reads the declared tensors (checked by WeightSpec::check) and the integer buffers it checks itself.
  virtual void load(const StateDict& sd) = 0;
  // Sets parameters deterministically (as a trained model might have them), for demos and benchmarks.
  virtual void init(uint64_t seed) = 0;
  // Derived quantities of the eval forward, computed once.
  virtual void prepare(const EngineOptions& opt) = 0;
  bool prepared() const { return prepared_; }

  // Floats of scratch memory run() needs for a feature map of shape `x` [N, C, H, W].
  virtual size_t scratch_floats(const Shape& x) const { return 0; }
  // Throws ShapeError naming this readout unless it can read a feature map of shape `x` [N, C, H, W].
  virtual void check_input(const Shape& x) const;
  // out [N, outdims] (dense) = readout(x); shift is [N, 2] (dense) or null. Allocates nothing.
  virtual void run(const Tensor& x, const float* shift, float* out, float* scratch, int threads) const = 0;

 protected:
  std::string name_;
  Shape in_shape_;
  int64_t outdims_;
  bool prepared_ = false;
};

// Builds a readout of `type` (FullGaussian2d, PointPooled2d, FullFactorized2d or the aliases
// SpatialXFeatureLinear and FullSXF) from its config; throws ConfigError listing the accepted types or
// options.
// `data_key` picks this session's entry of shared_match_ids; `name` is the state_dict prefix.
std::unique_ptr<Readout> make_readout(const std::string& type, ConfigReader& config,
                                      const std::string& data_key, const std::string& name,
                                      const Shape& in_shape, int64_t outdims);
// The accepted readout type names.
const std::vector<std::string>& readout_names();

// Reads an integer index buffer (feature_sharing_index) of shape [n] with values in [0, limit); throws
// WeightError naming the key otherwise.
std::vector<int64_t> read_index_buffer(const StateDict& sd, const std::string& key, int64_t n, int64_t limit);

}  // namespace npcore
