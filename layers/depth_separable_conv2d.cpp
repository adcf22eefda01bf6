#include "layers/depth_separable_conv2d.h"

namespace npcore {
namespace {

// The fused block's kernel as an op.
class FusedDepthSeparableOp final : public Op {
 public:
  FusedDepthSeparableOp(std::unique_ptr<ConvKernel> k, double flops, std::vector<ConvRun> runs)
      : k_(std::move(k)), flops_(flops), runs_(std::move(runs)) {}
  size_t scratch_floats() const override { return k_->scratch_floats(); }
  std::unique_ptr<RunState> make_state() const override { return k_->make_state(); }
  double conv_flops() const override { return flops_; }
  void list_convs(std::vector<ConvRun>& out) const override { out.insert(out.end(), runs_.begin(), runs_.end()); }

 protected:
  void do_run(const Tensor& in, Tensor& out, float* scratch, RunState* state) const override {
    k_->run(in, out, scratch, state);
  }

 private:
  std::unique_ptr<ConvKernel> k_;
  double flops_;
  std::vector<ConvRun> runs_;  // the three convs, reported as "fused-pointwise" / "fused-depthwise"
};

ConvRun fused_run(const Conv2d& c, const Shape& in, const EngineOptions& opt, const char* algorithm) {
  ConvRun r;
  r.layer = c.label();
  r.params = c.params();
  r.in = in;
  r.backend = Backend::Native;
  r.algorithm = algorithm;
  r.isa = resolve_isa(opt.isa);
  return r;
}

}  // namespace

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
        std::vector<ConvRun> runs{fused_run(*pw1, in, opt, "fused-pointwise"), fused_run(*dw, mid, opt, "fused-depthwise"),
                                  fused_run(*pw2, dws, opt, "fused-pointwise")};
        auto op = std::make_unique<FusedDepthSeparableOp>(std::move(k), flops, std::move(runs));
        op->in_shape = in;
        op->out_shape = pw2->output_shape(dws);
        return op;
      }
    }
  }
  return Sequential::make_op(in, opt);
}

}  // namespace npcore
