#include "layers/activations.h"

namespace npcore {
namespace {

class ActivationOp final : public Op {
 public:
  explicit ActivationOp(const Activation& a) : a_(a) {}
  bool in_place() const override { return true; }
  void run(const Tensor& in, Tensor& out, float*, RunState*) const override {
    if (out.data() != in.data()) out.copy_from(in);
    const int64_t N = out.dim(0), img = out.image_size();
    // Split each image into chunks so that batch 1 still uses every thread.
    const int64_t chunk = 16384, per = (img + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (int64_t job = 0; job < N * per; ++job) {
      const int64_t n = job / per, b = (job % per) * chunk;
      apply_activation(a_, out.image(n) + b, std::min(chunk, img - b));
    }
  }

 private:
  Activation a_;
};

}  // namespace

ActivationLayer::ActivationLayer(std::string name, std::string type_name, const Activation& act)
    : Layer(std::move(name)), type_name_(std::move(type_name)), act_(act) {}

std::unique_ptr<Op> ActivationLayer::plan(const Shape& in, const EngineOptions&) const {
  return make_activation_op(act_, in);
}

std::unique_ptr<Op> make_activation_op(const Activation& act, const Shape& in) {
  auto op = std::make_unique<ActivationOp>(act);
  op->in_shape = op->out_shape = in;
  return op;
}

}  // namespace npcore
