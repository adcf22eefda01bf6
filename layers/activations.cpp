#include "layers/activations.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/parallel.h"
#include "weights/state_dict.h"
#include "weights/weight_spec.h"

namespace npcore {
namespace {

class ActivationOp final : public Op {
 public:
  // isa: Generic for the portable scalar loops (the reference backend's).
  ActivationOp(const Activation& a, Isa isa) : a_(a), isa_(resolve_isa(isa)), threads_(planned_threads()) {}
  bool in_place() const override { return true; }

 protected:
  void do_run(const Tensor& in, Tensor& out, float*, RunState*) const override {
    if (out.data() != in.data()) out.copy_from(in);
    const int64_t N = out.dim(0), img = out.image_size();
    // Split each image into chunks so that batch 1 still uses every thread.
    const int64_t chunk = 16384, per = (img + chunk - 1) / chunk;
    parallel_for(N * per, threads_, [&](int64_t job) {
      const int64_t n = job / per, b = (job % per) * chunk;
      apply_activation(a_, out.image(n) + b, std::min(chunk, img - b), isa_);
    });
  }

 private:
  Activation a_;
  Isa isa_;
  int threads_;
};

}  // namespace

ActivationLayer::ActivationLayer(std::string name, std::string type_name, const Activation& act)
    : Layer(std::move(name)), type_name_(std::move(type_name)), act_(act) {}

void ActivationLayer::declare(WeightSpec& spec) const {
  if (has_zero()) spec.expect(key("zero"), {});
}

void ActivationLayer::load(const StateDict& sd) {
  if (!has_zero()) return;
  const float z = sd.get_float(key("zero")).data()[0];
  if (!std::isfinite(z))
    throw WeightError(sd.source() + ": " + key("zero") + " = " + std::to_string(z) + ": must be finite");
  // logaddexp(x, z) = z + logaddexp(x - z, 0): the buffer shifts the activation's input and output.
  act_.in_shift += z - zero_;
  act_.out_shift += z - zero_;
  zero_ = z;
}

void ActivationLayer::init(Rng&) {
  if (!has_zero()) return;
  act_.in_shift -= zero_;
  act_.out_shift -= zero_;
  zero_ = 0.0f;
}

void ActivationLayer::save(StateDict& sd) const {
  if (!has_zero()) return;
  Tensor z(Shape{});
  z.data()[0] = zero_;
  sd.add_float(key("zero"), z);
}

std::unique_ptr<Op> ActivationLayer::make_op(const Shape& in, const EngineOptions& opt) const {
  return make_activation_op(act_, in, opt.backend == Backend::Reference ? Isa::Generic : opt.isa);
}

std::unique_ptr<Op> make_activation_op(const Activation& act, const Shape& in, Isa isa) {
  auto op = std::make_unique<ActivationOp>(act, isa);
  op->in_shape = op->out_shape = in;
  return op;
}

}  // namespace npcore
