#include "layers/depth_separable_conv2d.h"

namespace npcore {

DepthSeparableConv2d::DepthSeparableConv2d(std::string name, int64_t in_channels, Conv2dParams spatial)
    : Sequential(std::move(name)) {
  const int64_t out = spatial.out_channels;
  spatial.in_channels = out;
  spatial.groups = out;
  add(std::make_unique<Conv2d>(key("in_depth_conv"), Conv2dParams::square(in_channels, out, 1, 1, 0, 1, 1, spatial.bias)));
  add(std::make_unique<Conv2d>(key("spatial_conv"), spatial));
  add(std::make_unique<Conv2d>(key("out_depth_conv"), Conv2dParams::square(out, out, 1, 1, 0, 1, 1, spatial.bias)));
}

}  // namespace npcore
