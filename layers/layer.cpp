#include "layers/layer.h"

#include <algorithm>

#include "engine/error.h"
#include "engine/parallel.h"

namespace npcore {

void prepare_layer(Layer& layer, const EngineOptions& opt) {
  layer.reset_fusion();
  layer.fuse(opt);
  layer.prepare(opt);
}

ChannelAffine ChannelAffine::then(const ChannelAffine& next) const {
  // (x*s1 + t1)*s2 + t2 = x*(s1*s2) + (t1*s2 + t2)
  const size_t c = std::max({scale.size(), shift.size(), next.scale.size(), next.shift.size()});
  ChannelAffine r;
  if (!scale.empty() || !next.scale.empty()) {
    r.scale.assign(c, 1.0f);
    for (size_t i = 0; i < c; ++i)
      r.scale[i] = (scale.empty() ? 1.0f : scale[i]) * (next.scale.empty() ? 1.0f : next.scale[i]);
  }
  if (!shift.empty() || !next.shift.empty()) {
    r.shift.assign(c, 0.0f);
    for (size_t i = 0; i < c; ++i) {
      float t = shift.empty() ? 0.0f : shift[i];
      if (!next.scale.empty()) t *= next.scale[i];
      r.shift[i] = t + (next.shift.empty() ? 0.0f : next.shift[i]);
    }
  }
  return r;
}

std::unique_ptr<Op> Layer::plan(const Shape& in, const EngineOptions& opt) const {
  auto op = make_op(in, opt);
  if (op->name.empty()) op->name = label();
  return op;
}

void Op::run(const Tensor& in, Tensor& out, float* scratch, RunState* state) const {
  if (in.shape() != in_shape || out.shape() != out_shape)
    throw ShapeError((name.empty() ? std::string("op") : name) + ": planned for " + in_shape.str() + " -> " +
                     out_shape.str() + ", run with " + in.shape().str() + " -> " + out.shape().str());
  do_run(in, out, scratch, state);
}

void ChannelAffine::apply(Tensor& x, int threads) const {
  const int64_t N = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3);
  if ((!scale.empty() && int64_t(scale.size()) != C) || (!shift.empty() && int64_t(shift.size()) != C))
    throw ShapeError("channel affine: " + std::to_string(C) + " channels, parameters for " +
                     std::to_string(std::max(scale.size(), shift.size())));
  parallel_for(N * C, threads, [&](int64_t j) {
    const int64_t n = j / C, c = j % C;
    float* p = x.image(n) + c * HW;
    const float s = scale.empty() ? 1.0f : scale[c], t = shift.empty() ? 0.0f : shift[c];
#pragma omp simd
    for (int64_t i = 0; i < HW; ++i) p[i] = p[i] * s + t;
  });
}

}  // namespace npcore
