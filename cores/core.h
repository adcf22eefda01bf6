#pragma once
// A core: neuralpredictors' `features` as a list of blocks (features.layer0, features.layer1, ... or
// features.TransferLearning, features.OutBatchNorm, ...), with Stacked2dCore's wiring: a block's input is
// the previous block's output, or with `skip > 1` the channel concatenation of the last min(skip, l)
// outputs; the core's output is the channel concatenation of the `stack` blocks' outputs.
//
// Life of a core: build (from a config) -> load(state_dict) or init(seed) -> prepare(options), once ->
// plan(input shape), once per shape -> Plan::run(input, output, workspace), many times, from any number
// of threads, each with its own Workspace. A steady-state run allocates nothing.
//
// Threads: a plan of B images for T > 1 threads with B >= T (any backend but oneDNN) splits the batch: each
// of the T threads runs whole images through the core planned for one image and one thread (its own
// workspace), taking the next image when done, so that one forward opens one thread team instead of one
// per kernel, and no layer of a small image is cut between threads; when T does not divide B and B < 4T,
// the last B mod T images run after, through the core planned for them with all T threads (the split the
// kernels choose per layer: rows, channels or images). Below T images every kernel splits its own work,
// and when every block's kernels allow it (ConvKernel::team_safe: the native 1x1, depthwise, direct and
// fused depth-separable kernels) and no block's output is copied (no skip concatenation, no block stacked
// twice), inside one team opened for the whole forward: the kernels' loops are shared out within it
// (engine/parallel.h, TeamScope), a barrier between layers instead of a fork and a join per kernel.
// Called inside an OpenMP parallel region (a user's team), a plan runs on the calling thread alone.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "layers/layer.h"
#include "layers/sequential.h"

namespace npcore {

class StateDict;
class WeightSpec;

// Called with each block's name ("features.layer0") and output during Plan::run, when given.
using TapFn = std::function<void(const std::string& block, const Tensor& output)>;

class Plan {
 public:
  const Shape& input_shape() const { return in_; }
  const Shape& output_shape() const { return out_; }
  // Memory and state for one thread; reuse it for every run on that thread.
  Workspace make_workspace() const;
  // Floats of one workspace's scratch (what make_workspace allocates besides small per-op state). A
  // batch-split plan run with a tap (per-block outputs of the whole batch) runs block by block instead and
  // allocates that path's scratch on its first such run (under EngineOptions::max_memory a plan splits
  // only if both fit the cap together).
  size_t workspace_floats() const;
  // Of those, the floats that hold blocks' outputs between blocks and skip concatenations (the rest is the
  // kernels' scratch, shared by the blocks one after the other). Buffers are reused once their value is
  // read for the last time, and a block output that is read before any block writes into the output
  // tensor is kept in the output tensor itself (so a 4-layer Stacked2dCore with stack -1 needs one
  // block-sized buffer, not two).
  size_t activation_floats() const;
  // Whether runs split the batch between threads (see above), and the images each such run gives to
  // the per-image plan (the rest go to the plan of the last images).
  bool splits_batch() const { return part_ != nullptr; }
  // Whether a run without a tap opens one thread team for the whole forward (see above).
  bool runs_as_team() const { return team_run_; }
  int64_t split_images() const { return split_images_; }
  // Runs the core. `in` and `out` must have the planned shapes (out may be a view) and must not overlap
  // (out serves as scratch before it receives the result); throws ShapeError for other shapes, and
  // UsageError for overlapping tensors or a workspace another plan made. Allocates nothing on the reference,
  // gemm and native backends (oneDNN allocates inside its own execute).
  void run(const Tensor& in, Tensor& out, Workspace& ws, const TapFn* tap = nullptr) const;
  // Convenience: allocates the output and a workspace.
  Tensor run(const Tensor& in, const TapFn* tap = nullptr) const;
  // Convolution FLOPs of one run.
  double conv_flops() const;
  // Each block's name and op, for per-block timing.
  size_t num_blocks() const { return blocks_.size(); }
  const std::string& block_name(size_t i) const { return names_[i]; }
  // Convolution FLOPs of block i in one run (per-block throughput in `npcore bench --layers`).
  double block_conv_flops(size_t i) const;
  // The convolutions block i runs, in order, with the algorithm and ISA each runs with.
  std::vector<ConvRun> block_convs(size_t i) const;
  // Every block's convolutions, in block order.
  std::vector<ConvRun> convs() const;

 private:
  friend class Core;
  std::string type_;  // the core's class name, for messages
  Shape in_, out_;
  int threads_ = 0;
  bool onednn_ = false;  // oneDNN reads OpenMP's setting at execute time
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<Op>> blocks_;
  std::vector<Shape> block_in_, block_out_;
  std::vector<std::vector<size_t>> sources_;       // per block: the blocks whose outputs form its input
  // Wiring.
  std::vector<std::vector<int64_t>> out_offsets_;  // per block: channel offsets in the output (one per stack entry)
  // Per block, where its output lives: -1 its channels of the output (a stack block); -2 the whole output
  // tensor (read by later blocks before any stack block writes there); k >= 0 the workspace buffer at
  // buffer_offset_[k].
  std::vector<int> slot_;
  std::vector<size_t> buffer_offset_;  // floats from the start of the workspace
  size_t buffers_floats_ = 0, concat_floats_ = 0, block_scratch_ = 0;
  // Batch split: the core planned for one image and one thread, the images run through it, and the plan
  // of the images left over (nullptr if none).
  std::unique_ptr<Plan> part_, rest_;
  int64_t split_images_ = 0;
  int team_ = 1;  // batch split: the threads (one part workspace each)
  size_t full_floats() const;  // scratch of the block-by-block path
  void run_split(const Tensor& in, Tensor& out, Workspace& ws) const;
  // Fewer images than threads: every block run by one team (team_run_), or each kernel with its own.
  bool team_run_ = false;
  void run_blocks(const Tensor& in, Tensor& out, Workspace& ws, const TapFn* tap) const;
};

class Core {
 public:
  virtual ~Core() = default;
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  // The neuralpredictors class name, e.g. "Stacked2dCore".
  virtual const char* type() const = 0;
  int64_t input_channels() const { return input_channels_; }
  // Output shape for an NCHW input; throws ShapeError naming the block that cannot take it.
  Shape output_shape(const Shape& in) const;
  const std::vector<std::unique_ptr<Sequential>>& blocks() const { return blocks_; }

  // The state_dict keys and shapes this core expects.
  WeightSpec weight_spec() const;
  // Loads a state_dict strictly (WeightError listing every missing, unexpected, mis-shaped key). Virtual so
  // that a core can accept another key layout (TransferLearningCore: torchvision checkpoints).
  virtual void load(const StateDict& sd);
  // Initialises every parameter deterministically, as a freshly built PyTorch core would be.
  virtual void init(uint64_t seed);
  // The parameters under their state_dict names.
  StateDict state_dict() const;

  // Folds, fuses and packs; once, after load/init. Required before plan().
  void prepare(const EngineOptions& opt);
  const EngineOptions& options() const { return opt_; }
  bool prepared() const { return prepared_; }
  // Kernels and buffer layout for one input shape. Throws UsageError before prepare(), ShapeError for an
  // input the core cannot take, ResourceError if the buffers would pass options().max_memory.
  std::unique_ptr<Plan> plan(const Shape& in) const;
  // Convenience for one-off use: plan, allocate, run.
  Tensor forward(const Tensor& in, const TapFn* tap = nullptr) const;

 protected:
  Core() = default;
  // Validation hook run after load (e.g. Hermite basis checks); default none.
  virtual void after_load(const StateDict& sd) {}
  // Per block, the earlier blocks whose outputs (concatenated along channels) form its input.
  std::vector<std::vector<size_t>> block_sources() const;
  // threads: the plan's thread count (<= 0: the options' count).
  std::unique_ptr<Plan> plan_unchecked(const Shape& in, int threads = 0) const;

  int64_t input_channels_ = 0;
  std::vector<std::unique_ptr<Sequential>> blocks_;
  int64_t skip_ = 0;                  // Stacked2dCore's skip (> 1 concatenates earlier outputs)
  std::vector<int64_t> stack_;        // blocks whose outputs are concatenated, in order
  std::vector<std::string> ignored_;  // state_dict prefixes accepted and ignored (training-only)

 private:
  EngineOptions opt_;
  bool prepared_ = false;
  std::string failed_load_;  // the source of a load that failed part-way (the core is unusable until fixed)
};

}  // namespace npcore
