#pragma once
// neuralpredictors' AttentionConv (stand-alone self-attention, Ramachandran et al. 2019): 1x1 query,
// key and value convs (keys and values on the zero-padded input, so padded positions hold the conv
// bias); the key of each k x k window gets a learned position term, rel_h (by window row) on the first
// half of the channels and rel_w (by window column) on the second; per channel and position, softmax
// over the window of query * key weights the values. Output size must equal the input size, which
// PyTorch's view requires too (padding (k-1)/2, stride 1).
#include "layers/conv2d.h"

namespace npcore {

class AttentionConv : public Layer {
 public:
  AttentionConv(std::string name, int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride,
                int64_t padding, int64_t groups, bool bias);
  const char* type() const override { return "AttentionConv"; }
  Shape output_shape(const Shape& in) const override;
  void declare(WeightSpec& spec) const override;
  void load(const StateDict& sd) override;
  void init(Rng& rng) override;
  void save(StateDict& sd) const override;
  void prepare(const EngineOptions& opt) override;
  std::unique_ptr<Op> make_op(const Shape& in, const EngineOptions& opt) const override;

 private:
  int64_t in_, out_, k_, stride_, pad_;
  Conv2d query_, key_, value_;
  Tensor rel_h_, rel_w_;  // [out/2, k] each (stored as [out/2,1,1,k,1] and [out/2,1,1,1,k])
};

}  // namespace npcore
