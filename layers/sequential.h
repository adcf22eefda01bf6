#pragma once
// torch.nn.Sequential: children run in order. fuse() decides fusion: a child that can absorb (a conv)
// takes the per-channel affine layers and the activation that follow it, and those children are skipped
// when planning. The plan runs the remaining ops through two ping-pong buffers, writing the last
// out-of-place op straight into the caller's output and running trailing in-place ops there.
#include "layers/layer.h"

namespace npcore {

class Sequential : public Layer {
 public:
  explicit Sequential(std::string name) : Layer(std::move(name)) {}
  const char* type() const override { return "Sequential"; }
  // Adds a child; its name should be this name + "." + its key in the PyTorch module.
  Layer& add(LayerPtr child);
  const std::vector<LayerPtr>& children() const { return children_; }
  bool empty() const { return children_.empty(); }

  Shape output_shape(const Shape& in) const override;
  void declare(WeightSpec& spec) const override;
  void load(const StateDict& sd) override;
  void init(Rng& rng) override;
  void save(StateDict& sd) const override;

  bool can_absorb_affine() const override;
  bool can_absorb_activation() const override;
  void absorb_affine(const ChannelAffine& a) override;
  void absorb_activation(const Activation& a) override;
  bool can_absorb_max_pool() const override;
  void absorb_max_pool(const MaxPool2dParams& p) override;
  void reset_fusion() override;
  void fuse(const EngineOptions& opt) override;

  void prepare(const EngineOptions& opt) override;
  std::unique_ptr<Op> make_op(const Shape& in, const EngineOptions& opt) const override;
  // Names of the children that run after fusion ("features.layer0.conv" with "+norm+nonlin" appended
  // for what it absorbed), for --layers breakdowns and docs.
  std::vector<std::string> stage_names() const;

 private:
  bool tail_open() const;  // nothing follows the last running child
  std::vector<LayerPtr> children_;
  std::vector<size_t> active_;                  // children that run, after fusion
  std::vector<std::vector<size_t>> absorbed_;   // per active child, the children it absorbed
  bool fused_ = false;
  bool prepared_ = false;
};

}  // namespace npcore
