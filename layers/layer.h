#pragma once
// The layer interface. A Layer mirrors one PyTorch module and carries its state_dict name
// ("features.layer1.conv"), so that every message can name it. Its life has separate steps:
//   output_shape (validates)  ->  declare + load (strict)  or  init (deterministic)
//   ->  prepare (fold, fuse; once)  ->  plan (kernels for one input shape)  ->  Op::run (many times)
// Fusion: a producer (a conv) may absorb the per-channel affine layers (BatchNorm, Bias2D, Scale2D) and
// the activation that follow it, and then a 2x2 max pool; Sequential decides, layers only say what they are.
#include <memory>
#include <string>
#include <vector>

#include "engine/activation.h"
#include "engine/conv.h"
#include "engine/options.h"
#include "engine/tensor.h"
#include "engine/workspace.h"

namespace npcore {

class StateDict;
struct MaxPool2dParams;
class WeightSpec;
class Rng;

// A per-channel affine map y = x * scale[c] + shift[c] (eval-mode BatchNorm, Bias2D, Scale2D).
// An empty vector means identity for that part.
struct ChannelAffine {
  std::vector<float> scale, shift;
  // The map "this, then next".
  ChannelAffine then(const ChannelAffine& next) const;
  // Applies to an NCHW tensor in place, with `threads` threads.
  void apply(Tensor& x, int threads) const;
};

// One convolution of a planned op as it will run, for reports (`npcore check` and `npcore bench`).
struct ConvRun {
  std::string layer;      // the conv's label, e.g. "features.layer1.conv"
  Conv2dParams params;
  Shape in;               // its planned input shape
  Backend backend = Backend::Native;
  // native: what native_algorithm() returns ("winograd", "direct", "gemm", ...); other backends: their name.
  std::string algorithm;
  Isa isa = Isa::Generic;  // native: the ISA its kernel runs with; other backends: Generic (no vector kernels of ours)
};

// A layer prepared for one input shape: immutable, runnable from several threads, each passing its own
// scratch memory and state (see Workspace).
class Op {
 public:
  virtual ~Op() = default;
  Shape in_shape, out_shape;
  std::string name;  // the layer's label, for messages
  // True if run() may be given the same tensor as in and out.
  virtual bool in_place() const { return false; }
  virtual size_t scratch_floats() const { return 0; }
  virtual std::unique_ptr<RunState> make_state() const { return nullptr; }
  // Runs the op; throws ShapeError naming the layer unless in and out have the planned shapes.
  void run(const Tensor& in, Tensor& out, float* scratch, RunState* state) const;
  // Convolution FLOPs of one run (for benchmarks); 0 for layers that do no convolution.
  virtual double conv_flops() const { return 0.0; }
  // Appends the convolutions this op runs, in order (an op that runs convolutions overrides it; one that
  // contains other ops forwards to them). Default: none.
  virtual void list_convs(std::vector<ConvRun>& out) const {}
  // Whether every thread of a forward's team may run it at once (ConvKernel::team_safe); default no.
  virtual bool team_safe() const { return false; }

 protected:
  // The work, on tensors of the planned shapes.
  virtual void do_run(const Tensor& in, Tensor& out, float* scratch, RunState* state) const = 0;
};

class Layer {
 public:
  explicit Layer(std::string name) : name_(std::move(name)) {}
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  // The state_dict prefix of this module, e.g. "features.layer0.norm" ("" for a stand-alone module).
  const std::string& name() const { return name_; }
  // The state_dict key of one of its tensors or children: key("weight") is "features.layer0.conv.weight".
  std::string key(const std::string& field) const { return name_.empty() ? field : name_ + "." + field; }
  // How messages name it: its state_dict name, or its type for a stand-alone module.
  std::string label() const { return name_.empty() ? std::string(type()) : name_; }
  // The PyTorch class name, e.g. "BatchNorm2d".
  virtual const char* type() const = 0;
  // Output shape for an input shape; throws ShapeError naming this layer.
  virtual Shape output_shape(const Shape& in) const = 0;

  // Declares the state_dict keys (full names) and shapes this layer reads.
  virtual void declare(WeightSpec& spec) const {}
  // Reads the declared tensors (already checked by WeightSpec::check).
  virtual void load(const StateDict& sd) {}
  // Sets parameters as PyTorch initialises them (deterministically, from rng).
  virtual void init(Rng& rng) {}
  // Writes its parameters under their state_dict names (for dumping deterministic weights).
  virtual void save(StateDict& sd) const {}
  // Derived tensors worth checking against PyTorch (HermiteConv2D's "filter_bank"); after prepare().
  virtual std::vector<std::pair<std::string, Tensor>> debug_tensors() const { return {}; }

  // Fusion queries: is this layer a per-channel affine map / a pointwise activation (in eval mode)?
  virtual bool as_channel_affine(ChannelAffine* out) const { return false; }
  virtual bool as_activation(Activation* out) const { return false; }
  // A producer that can fold a following affine and then one activation into its own output.
  virtual bool can_absorb_affine() const { return false; }
  virtual bool can_absorb_activation() const { return false; }
  virtual void absorb_affine(const ChannelAffine& a) {}
  virtual void absorb_activation(const Activation& a) {}
  // A 2x2 stride-2 max pool (as_max_pool_2x2) after the producer's output; nothing is absorbed after it.
  virtual bool as_max_pool_2x2(MaxPool2dParams* out) const { return false; }
  virtual bool can_absorb_max_pool() const { return false; }
  virtual void absorb_max_pool(const MaxPool2dParams& p) {}
  // Forgets what was absorbed (called before fusion decisions are made again).
  virtual void reset_fusion() {}
  // Makes fusion decisions inside this layer (Sequential); called top-down once, before prepare().
  virtual void fuse(const EngineOptions& opt) {}

  // Once, after loading or init and after fusion decisions: fold parameters, precompute filters.
  virtual void prepare(const EngineOptions& opt) {}
  // Kernels for one input shape; the op carries this layer's label for its messages.
  std::unique_ptr<Op> plan(const Shape& in, const EngineOptions& opt) const;

 protected:
  // What plan() makes (each layer's own).
  virtual std::unique_ptr<Op> make_op(const Shape& in, const EngineOptions& opt) const = 0;

 private:
  std::string name_;
};

using LayerPtr = std::unique_ptr<Layer>;

// The whole preparation of a stand-alone layer: forget old fusion, fuse (if opt.fuse), prepare.
void prepare_layer(Layer& layer, const EngineOptions& opt);

}  // namespace npcore
