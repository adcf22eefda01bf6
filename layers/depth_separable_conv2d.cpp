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

std::unique_ptr<Op> DepthSeparableConv2d::make_op(const Shape& in, const EngineOptions& opt) const {
  if (opt.fuse && opt.backend == Backend::Native && children().size() == 3) {
    const auto* pw1 = dynamic_cast<const Conv2d*>(children()[0].get());
    const auto* dw = dynamic_cast<const Conv2d*>(children()[1].get());
    const auto* pw2 = dynamic_cast<const Conv2d*>(children()[2].get());
    if (pw1 && dw && pw2) {
      const Shape mid = pw1->output_shape(in), dws = dw->output_shape(mid);
      if (auto k = make_native_depth_separable(pw1->spec(opt), dw->spec(opt), pw2->spec(opt), in)) {
        const double flops = pw1->params().flops(in) + dw->params().flops(mid) + pw2->params().flops(dws);
        // Reported as the three convs they are, with the fused kernel's names.
        const Isa isa = resolve_isa(opt.isa);
        std::vector<ConvRun> runs{pw1->conv_run(in, Backend::Native, "fused-pointwise", isa),
                                  dw->conv_run(mid, Backend::Native, "fused-depthwise", isa),
                                  pw2->conv_run(dws, Backend::Native, "fused-pointwise", isa)};
        return make_kernel_op(std::move(k), flops, std::move(runs), in, pw2->output_shape(dws));
      }
    }
  }
  return Sequential::make_op(in, opt);
}

}  // namespace npcore
