#pragma once
// torch.nn.MaxPool2d: the maximum over each (dilated) kernel window, padding counting as -inf, output
// size rounded down or, with ceil_mode, up (a window may then start in the padding but not beyond it).
// NaN propagates as in PyTorch's CPU kernel. No parameters.
#include "layers/layer.h"

namespace npcore {

// torch.nn.MaxPool2d's constructor arguments (stride defaults to the kernel size, as in PyTorch).
struct MaxPool2dParams {
  int64_t kernel_h = 2, kernel_w = 2;
  int64_t stride_h = 2, stride_w = 2;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  bool ceil_mode = false;

  // Square form as torchvision writes it: MaxPool2d(kernel_size=k, stride=s) (s = 0: stride = kernel).
  static MaxPool2dParams square(int64_t kernel, int64_t stride = 0, int64_t padding = 0, int64_t dilation = 1,
                                bool ceil_mode = false);
  // Throws ConfigError naming `where` and the rule.
  void validate(const std::string& where) const;
  // Output shape for an NCHW input; throws ShapeError naming `where`.
  Shape output_shape(const Shape& in, const std::string& where) const;
  std::string str() const;  // "MaxPool2d(k=3x3, s=2x2, p=0x0, d=1x1)"
};

class MaxPool2d : public Layer {
 public:
  MaxPool2d(std::string name, const MaxPool2dParams& params);
  const char* type() const override { return "MaxPool2d"; }
  const MaxPool2dParams& params() const { return p_; }
  Shape output_shape(const Shape& in) const override { return p_.output_shape(in, label()); }
  // Kernel 2, stride 2, no padding, no dilation, floor mode: what a conv's kernel can pool (Conv2d).
  bool as_max_pool_2x2(MaxPool2dParams* out) const override;
  std::unique_ptr<Op> make_op(const Shape& in, const EngineOptions& opt) const override;

 private:
  MaxPool2dParams p_;
};

}  // namespace npcore
