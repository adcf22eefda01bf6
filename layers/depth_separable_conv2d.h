#pragma once
// neuralpredictors' DepthSeparableConv2d: a Sequential of a 1x1 conv (`in_depth_conv`), a k x k
// depthwise conv with groups = out_channels (`spatial_conv`, carrying stride, padding and dilation) and
// a 1x1 conv (`out_depth_conv`). A following norm and activation fuse into out_depth_conv.
#include "layers/conv2d.h"
#include "layers/sequential.h"

namespace npcore {

class DepthSeparableConv2d : public Sequential {
 public:
  // `spatial` gives out_channels, kernel, stride, padding and dilation of the depthwise conv (its
  // in_channels and groups are set to out_channels here) and whether all three convs have a bias.
  DepthSeparableConv2d(std::string name, int64_t in_channels, Conv2dParams spatial);
  const char* type() const override { return "DepthSeparableConv2d"; }
};

}  // namespace npcore
