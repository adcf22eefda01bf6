// npcore::ModelHandle (include/npcore/model.h) over the engine's Model, ModelPlan and ModelWorkspace: one
// plan and workspace per input shape seen, kept, and the session lists and output views made at load, so
// that a steady-state forward() allocates nothing.
#include "npcore/model.h"

#include <new>

#include "api/handle_util.h"
#include "cores/model.h"
#include "engine/error.h"
#include "weights/weights_file.h"

namespace npcore {

using api_detail::engine_options;
using api_detail::to_shape;

struct ModelHandle::Impl {
  struct Planned {
    Shape4 shape;
    std::unique_ptr<ModelPlan> plan;
    ModelWorkspace ws;
  };
  std::unique_ptr<Model> model;
  ModelOptions options;
  std::vector<Planned> plans;  // few shapes in practice: a linear search allocates nothing
  std::vector<size_t> one;     // {session} for forward(): one entry, reused
  std::vector<size_t> all;     // 0 .. sessions-1 for forward_all()
  std::vector<Tensor> outs;    // views of the caller's outputs, one per session

  // The session of a data_key; throws UsageError listing the model's data_keys (allocates only then).
  size_t session(const std::string& data_key) const {
    const auto& sessions = model->sessions();
    for (size_t i = 0; i < sessions.size(); ++i)
      if (sessions[i].data_key == data_key) return i;
    std::string keys;
    for (size_t i = 0; i < sessions.size(); ++i) {
      if (i) keys += ", ";
      keys += sessions[i].data_key;
    }
    throw UsageError("FiringRateEncoder: no data_key '" + data_key + "'; the model has: " + keys);
  }

  Planned& planned(const Shape4& s) {
    for (Planned& p : plans)
      if (p.shape == s) return p;
    const Shape in = to_shape(s);
    Planned p;
    p.shape = s;
    try {
      p.plan = model->plan(in);
      p.ws = p.plan->make_workspace();
      plans.push_back(std::move(p));
    } catch (const std::bad_alloc&) {
      const size_t have = p.ws.floats * sizeof(float);
      throw ResourceError("FiringRateEncoder: out of memory planning for input " + in.str() +
                          (have ? " (workspace of " + std::to_string(have) + " bytes)" : std::string()));
    }
    return plans.back();
  }

  // Checks the arguments shared by forward() and forward_all(), plans, and returns the plan and the
  // pupil positions as a tensor (empty without a shifter).
  Planned& begin(const char* fn, const float* input, const Shape4& input_shape, const float* pupil,
                 size_t pupil_floats, Tensor& pupil_view) {
    if (!input) throw UsageError(std::string("FiringRateEncoder: ") + fn + "() got a null input pointer");
    Planned& p = planned(input_shape);
    if (model->has_shifter()) {
      const Shape want{input_shape[0], model->pupil_channels()};
      if (!pupil)
        throw ShapeError("FiringRateEncoder: the model has a shifter (MLPShifter): pupil positions " +
                         want.str() + " (one row of " + std::to_string(want[1]) +
                         " values per image) are required");
      if (pupil_floats != size_t(want.numel()))
        throw ShapeError("FiringRateEncoder: the pupil positions hold " + std::to_string(pupil_floats) +
                         " floats, the shifter expects " + want.str() + " (" + std::to_string(want.numel()) +
                         ": one row of " + std::to_string(want[1]) + " values per image)");
      pupil_view = Tensor::wrap(const_cast<float*>(pupil), want);
    }
    return p;
  }

  Tensor output_view(size_t s, int64_t n, float* output, size_t output_floats) const {
    const ModelSession& session = model->sessions()[s];
    const Shape shape{n, model->neurons(s)};
    if (!output)
      throw UsageError("FiringRateEncoder: the output for data_key '" + session.data_key +
                       "' is a null pointer");
    if (output_floats < size_t(shape.numel()))
      throw UsageError("FiringRateEncoder: the output buffer for data_key '" + session.data_key + "' holds " +
                       std::to_string(output_floats) + " floats, the rates " + shape.str() + " need " +
                       std::to_string(shape.numel()));
    return Tensor::wrap(output, shape);
  }

  void init_sessions() {
    const size_t n = model->sessions().size();
    one.assign(1, 0);
    all.resize(n);
    for (size_t i = 0; i < n; ++i) all[i] = i;
    outs.resize(n);
  }
};

namespace {

void finish_load(Model& model, const std::string& weights_path, const ModelOptions& options) {
  const EngineOptions eo = engine_options(options);
  model.load(load_weights_file(weights_path));
  model.prepare(eo);
}

}  // namespace

ModelHandle::ModelHandle(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ModelHandle::ModelHandle(ModelHandle&&) noexcept = default;
ModelHandle& ModelHandle::operator=(ModelHandle&&) noexcept = default;
ModelHandle::~ModelHandle() = default;

ModelHandle ModelHandle::load(const std::string& config_path, const std::string& weights_path,
                              const ModelOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->model = load_model(config_path);
  finish_load(*impl->model, weights_path, options);
  impl->init_sessions();
  return ModelHandle(std::move(impl));
}

ModelHandle ModelHandle::load_from_string(const std::string& config_json, const std::string& weights_path,
                                          const ModelOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->model = make_model(config_json, "<config string>");
  finish_load(*impl->model, weights_path, options);
  impl->init_sessions();
  return ModelHandle(std::move(impl));
}

ModelHandle::Impl& ModelHandle::impl() const {
  if (!impl_) throw UsageError("ModelHandle: used after being moved from");
  return *impl_;
}

std::string ModelHandle::core_type() const {
  return impl().model->core().type();
}

std::vector<std::string> ModelHandle::data_keys() const {
  return impl().model->data_keys();
}

int64_t ModelHandle::neurons(const std::string& data_key) const {
  const Impl& self = impl();
  return self.model->neurons(self.session(data_key));
}

int64_t ModelHandle::input_channels() const {
  return impl().model->core().input_channels();
}

bool ModelHandle::needs_pupil() const {
  return impl().model->has_shifter();
}

int64_t ModelHandle::pupil_channels() const {
  return impl().model->pupil_channels();
}

const ModelOptions& ModelHandle::options() const {
  return impl().options;
}

void ModelHandle::prepare(const Shape4& input_shape) {
  impl().planned(input_shape);
}

void ModelHandle::forward(const float* input, const Shape4& input_shape, const float* pupil,
                          size_t pupil_floats, const std::string& data_key, float* output,
                          size_t output_floats) {
  Impl& self = impl();
  const size_t s = self.session(data_key);
  Tensor pupil_view;
  Impl::Planned& p = self.begin("forward", input, input_shape, pupil, pupil_floats, pupil_view);
  self.one[0] = s;
  self.outs[0] = self.output_view(s, input_shape[0], output, output_floats);
  // The engine's tensors are views here: the input and the pupil positions are only read.
  const Tensor in = Tensor::wrap(const_cast<float*>(input), p.plan->input_shape());
  p.plan->run(in, self.model->has_shifter() ? &pupil_view : nullptr, self.one, self.outs.data(), p.ws);
}

void ModelHandle::forward_all(const float* input, const Shape4& input_shape, const float* pupil,
                              size_t pupil_floats, float* const* outputs, const size_t* output_floats,
                              size_t count) {
  Impl& self = impl();
  if (!outputs || !output_floats)
    throw UsageError(std::string("FiringRateEncoder: forward_all() got a null ") +
                     (outputs ? "output_floats" : "outputs") + " array");
  if (count != self.all.size())
    throw UsageError("FiringRateEncoder: forward_all() got " + std::to_string(count) +
                     " outputs, the model has " + std::to_string(self.all.size()) +
                     " data_keys (one output each, in the order of data_keys())");
  Tensor pupil_view;
  Impl::Planned& p = self.begin("forward_all", input, input_shape, pupil, pupil_floats, pupil_view);
  for (size_t i = 0; i < count; ++i)
    self.outs[i] = self.output_view(i, input_shape[0], outputs[i], output_floats[i]);
  const Tensor in = Tensor::wrap(const_cast<float*>(input), p.plan->input_shape());
  p.plan->run(in, self.model->has_shifter() ? &pupil_view : nullptr, self.all, self.outs.data(), p.ws);
}

std::vector<float> ModelHandle::forward(const float* input, const Shape4& input_shape, const float* pupil,
                                        size_t pupil_floats, const std::string& data_key) {
  const int64_t n = to_shape(input_shape)[0];
  std::vector<float> out(size_t(n * neurons(data_key)));
  forward(input, input_shape, pupil, pupil_floats, data_key, out.data(), out.size());
  return out;
}

}  // namespace npcore
