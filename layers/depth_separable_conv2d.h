#pragma once
// neuralpredictors' DepthSeparableConv2d: a Sequential of a 1x1 conv (`in_depth_conv`), a k x k
// depthwise conv with groups = out_channels (`spatial_conv`, carrying stride, padding and dilation) and
// a 1x1 conv (`out_depth_conv`). A following norm and activation fuse into out_depth_conv. With fusion on
// and the native backend, the three convs run as one fused kernel over bands of rows
// (make_native_depth_separable) where it applies; else (--no-fuse, other backends) one by one.
#include "layers/conv2d.h"
#include "layers/sequential.h"

namespace npcore {

class DepthSeparableConv2d : public Sequential {
 public:
  // `spatial` gives out_channels, kernel, stride, padding and dilation of the depthwise conv (its
  // in_channels and groups are set to out_channels here) and whether all three convs have a bias.
  DepthSeparableConv2d(std::string name, int64_t in_channels, Conv2dParams spatial);
  const char* type() const override { return "DepthSeparableConv2d"; }
  // Its fused kernel has no pooling epilogue.
  bool can_absorb_max_pool() const override { return false; }

 protected:
  std::unique_ptr<Op> make_op(const Shape& in, const EngineOptions& opt) const override;
};

}  // namespace npcore
