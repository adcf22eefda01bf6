// npcore::CoreHandle (include/npcore/core.h) over the engine's Core, Plan and Workspace: one plan and
// workspace per input shape seen, kept, so that a steady-state forward() allocates nothing.
#include "npcore/core.h"

#include <new>

#include "api/handle_util.h"
#include "cores/factory.h"
#include "engine/isa.h"
#include "engine/options.h"
#include "engine/workspace.h"
#include "npcore/version.h"
#include "weights/weights_file.h"

namespace npcore {

const char* version() {
  return NPCORE_VERSION_STRING;
}

namespace api_detail {

std::string shape_str(const Shape4& s) {
  // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on "[" + std::to_string(...).
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

Shape to_shape(const Shape4& s) {
  for (int64_t d : s)
    if (d < 1)
      throw ShapeError("input shape " + shape_str(s) + ": every dimension (N, C, H, W) must be >= 1");
  return Shape{s[0], s[1], s[2], s[3]};
}

EngineOptions engine_options(const CoreOptions& o) {
  if (o.threads < 0)
    throw UsageError("CoreOptions.threads = " + std::to_string(o.threads) +
                     ": must be >= 0 (0: OpenMP's default)");
  EngineOptions e;
  e.backend = parse_backend(o.backend);
  e.threads = o.threads;
  e.winograd = o.winograd;
  e.fuse = o.fuse;
  e.isa = parse_isa(o.isa, "CoreOptions.isa");
  resolve_isa(e.isa);  // refuses an ISA this CPU lacks now, not at the first forward
  e.precision = parse_precision(o.precision, "CoreOptions.precision");
  return e;
}

}  // namespace api_detail

using api_detail::engine_options;
using api_detail::to_shape;

struct CoreHandle::Impl {
  struct Planned {
    Shape4 shape;
    std::unique_ptr<Plan> plan;
    Workspace ws;
  };
  std::unique_ptr<Core> core;
  CoreOptions options;
  std::vector<Planned> plans;  // few shapes in practice: a linear search allocates nothing

  Planned& planned(const Shape4& s) {
    for (Planned& p : plans)
      if (p.shape == s) return p;
    Shape in = to_shape(s);
    Planned p;
    p.shape = s;
    try {
      p.plan = core->plan(in);
      p.ws = p.plan->make_workspace();
      plans.push_back(std::move(p));
    } catch (const std::bad_alloc&) {
      const size_t have = p.ws.scratch_floats * sizeof(float);
      throw ResourceError(std::string(core->type()) + ": out of memory planning for input " + in.str() +
                          (have ? " (workspace of " + std::to_string(have) + " bytes)" : std::string()));
    }
    return plans.back();
  }
};

namespace {

std::unique_ptr<Core> finish_load(std::unique_ptr<Core> core, const std::string& weights_path,
                                  const CoreOptions& options) {
  const EngineOptions eo = engine_options(options);
  core->load(load_weights_file(weights_path));
  core->prepare(eo);
  return core;
}

}  // namespace

CoreHandle::CoreHandle(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CoreHandle::CoreHandle(CoreHandle&&) noexcept = default;
CoreHandle& CoreHandle::operator=(CoreHandle&&) noexcept = default;
CoreHandle::~CoreHandle() = default;

CoreHandle CoreHandle::load(const std::string& config_path, const std::string& weights_path,
                            const CoreOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->core = finish_load(load_core(config_path), weights_path, options);
  return CoreHandle(std::move(impl));
}

CoreHandle CoreHandle::load_from_string(const std::string& config_json, const std::string& weights_path,
                                        const CoreOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->core = finish_load(make_core(config_json, "<config string>"), weights_path, options);
  return CoreHandle(std::move(impl));
}

CoreHandle::Impl& CoreHandle::impl() const {
  if (!impl_) throw UsageError("CoreHandle: used after being moved from");
  return *impl_;
}

std::string CoreHandle::type() const {
  return impl().core->type();
}

int64_t CoreHandle::input_channels() const {
  return impl().core->input_channels();
}

const CoreOptions& CoreHandle::options() const {
  return impl().options;
}

Shape4 CoreHandle::output_shape(const Shape4& input_shape) const {
  const Shape out = impl().core->output_shape(to_shape(input_shape));
  return {out[0], out[1], out[2], out[3]};
}

void CoreHandle::prepare(const Shape4& input_shape) {
  impl().planned(input_shape);
}

void CoreHandle::forward(const float* input, const Shape4& input_shape, float* output, size_t output_floats) {
  Impl& self = impl();
  if (!input || !output)
    throw UsageError(std::string(self.core->type()) + ": forward() got a null " +
                     (input ? "output" : "input") + " pointer");
  Impl::Planned& p = self.planned(input_shape);
  const Shape& out_shape = p.plan->output_shape();
  if (output_floats < size_t(out_shape.numel()))
    throw UsageError(std::string(self.core->type()) + ": the output buffer holds " +
                     std::to_string(output_floats) + " floats, the output " + out_shape.str() + " needs " +
                     std::to_string(out_shape.numel()));
  // The engine's tensors are views here: the input is only read.
  const Tensor in = Tensor::wrap(const_cast<float*>(input), p.plan->input_shape());
  Tensor out = Tensor::wrap(output, out_shape);
  p.plan->run(in, out, p.ws);
}

std::vector<float> CoreHandle::forward(const float* input, const Shape4& input_shape) {
  const Shape4 os = output_shape(input_shape);
  std::vector<float> out(size_t(os[0] * os[1] * os[2] * os[3]));
  forward(input, input_shape, out.data(), out.size());
  return out;
}

}  // namespace npcore
