#pragma once
// torch.nn.Conv2d, plus what fusion folds into it: a following per-channel affine (eval BatchNorm,
// Bias2D, Scale2D) goes into the weights and bias at prepare(); a following activation runs in the
// kernel's epilogue; a 2x2 max pool after those (native backend only, where its Winograd kernel runs: see
// fuse()) runs in that kernel's output transform.
#include <memory>

#include "engine/packed_weights.h"
#include "layers/layer.h"
#include "layers/max_pool2d.h"

namespace npcore {

class Conv2d : public Layer {
 public:
  Conv2d(std::string name, const Conv2dParams& params);
  const char* type() const override { return "Conv2d"; }
  const Conv2dParams& params() const { return p_; }
  Shape output_shape(const Shape& in) const override;

  void declare(WeightSpec& spec) const override;
  void load(const StateDict& sd) override;
  void init(Rng& rng) override;  // xavier_normal weights, zero bias (neuralpredictors' init_conv)
  void save(StateDict& sd) const override;
  // Sets the parameters directly ([out, in/groups, kh, kw] and [out] or empty).
  void set_weights(Tensor weight, Tensor bias);
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  // The packed forms made so far (null before prepare()).
  const WeightPacks* packs() const { return packs_.get(); }

  bool can_absorb_affine() const override { return !has_act_ && !has_pool_; }
  bool can_absorb_activation() const override { return !has_act_ && !has_pool_; }
  // Only where the kernel will pool (the native Winograd kernel, as fuse() found for the options).
  bool can_absorb_max_pool() const override { return kernel_pools_ && !has_pool_; }
  void absorb_affine(const ChannelAffine& a) override;
  void absorb_activation(const Activation& a) override;
  void absorb_max_pool(const MaxPool2dParams& p) override;
  void reset_fusion() override;
  void fuse(const EngineOptions& opt) override;

  void prepare(const EngineOptions& opt) override;
  // What its kernel computes after prepare(): folded weight and bias, absorbed activation, the options'
  // algorithm settings and the shared weight packs (points into this layer's tensors).
  ConvSpec spec(const EngineOptions& opt) const;
  // Kernels for any input shape share one packed copy of the folded weights per packed form.
  std::unique_ptr<Op> make_op(const Shape& in, const EngineOptions& opt) const override;
  // The conv alone (no absorbed pool) as an op.
  std::unique_ptr<Op> unpooled_op(const ConvSpec& spec, const Shape& in, const EngineOptions& opt) const;
  // This conv on `in` as a report entry (list_convs) running `algorithm` with `isa`.
  ConvRun conv_run(const Shape& in, Backend backend, std::string algorithm, Isa isa) const;

 private:
  Conv2dParams p_;
  Tensor weight_, bias_;                // as in the state_dict
  ChannelAffine affine_;                // absorbed, applied after the bias
  Activation act_;                      // absorbed
  bool has_act_ = false;
  MaxPool2dParams pool_;                // absorbed (has_pool_), after the activation
  bool has_pool_ = false;
  bool kernel_pools_ = false;           // fuse(): the native kernel for these options can pool
  Tensor folded_weight_, folded_bias_;  // made by prepare()
  // The packed forms of the folded weights, made by the first kernel that needs each and shared by every
  // kernel (any input shape, any thread); replaced by prepare(), so older kernels keep their own.
  std::shared_ptr<WeightPacks> packs_;
  bool prepared_ = false;
};

// A conv kernel (or a fused kernel doing several convs) behind the Op interface: runs the kernel on
// in -> out, reports `flops` and the convs it runs (`runs`, for list_convs).
std::unique_ptr<Op> make_kernel_op(std::unique_ptr<ConvKernel> k, double flops, std::vector<ConvRun> runs,
                                   const Shape& in, const Shape& out);

}  // namespace npcore
