#include "cores/model.h"

#include <omp.h>

#include <cmath>
#include <cstring>

#include "engine/error.h"
#include "engine/parallel.h"
#include "engine/rng.h"
#include "weights/state_dict.h"
#include "weights/weight_spec.h"

namespace npcore {

// ---- Model ------------------------------------------------------------------------------------------

Model::Model(std::unique_ptr<Core> core, std::vector<ModelSession> sessions, OutputNonlinearity nl,
             float elu_offset)
    : core_(std::move(core)), sessions_(std::move(sessions)), nl_(nl), elu_offset_(elu_offset) {
  if (!core_) throw ConfigError("FiringRateEncoder: no core");
  if (sessions_.empty()) throw ConfigError("FiringRateEncoder: no readout (n_neurons names no data_key)");
  for (const auto& s : sessions_) {
    if (!s.readout) throw ConfigError("FiringRateEncoder: data_key '" + s.data_key + "' has no readout");
    if ((s.shifter != nullptr) != has_shifter())
      throw ConfigError("FiringRateEncoder: either every data_key has a shifter or none has");
  }
}

std::vector<std::string> Model::data_keys() const {
  std::vector<std::string> v;
  for (const auto& s : sessions_) v.push_back(s.data_key);
  return v;
}

size_t Model::session_index(const std::string& data_key) const {
  std::string keys;
  for (size_t i = 0; i < sessions_.size(); ++i) {
    if (sessions_[i].data_key == data_key) return i;
    keys += (i ? ", " : "") + sessions_[i].data_key;
  }
  throw ConfigError("FiringRateEncoder: no data_key '" + data_key + "'; the model has: " + keys);
}

void Model::load(const StateDict& sd) {
  prepared_ = false;
  // The core's keys without "core.", as a state_dict of their own (sharing the file's memory).
  StateDict core_sd(sd.source() + " (keys under core.)");
  core_sd.keep_alive(std::make_shared<StateDict>(sd));
  for (const std::string& k : sd.order())
    if (k.compare(0, 5, "core.") == 0) core_sd.add(k.substr(5), sd.at(k));
  WeightSpec spec;
  spec.ignore_prefix("core.");
  for (const auto& s : sessions_) {
    s.readout->declare(spec);
    if (s.shifter) s.shifter->declare(spec);
  }
  // Report the readouts' and the core's problems together.
  std::string problems;
  try {
    spec.check(sd, "FiringRateEncoder readouts and shifters");
  } catch (const WeightError& e) {
    problems = e.what();
  }
  try {
    core_->load(core_sd);
  } catch (const WeightError& e) {
    problems += (problems.empty() ? "" : "; ") + std::string(e.what());
  }
  if (!problems.empty()) throw WeightError(problems);
  for (const auto& s : sessions_) {
    s.readout->load(sd);
    if (s.shifter) s.shifter->load(sd);
  }
}

void Model::init(uint64_t seed) {
  prepared_ = false;
  core_->init(seed);
  Rng rng(seed ^ 0x5eed);
  for (const auto& s : sessions_) {
    s.readout->init(rng.next_u64());
    if (s.shifter) s.shifter->init(rng);
  }
}

void Model::prepare(const EngineOptions& opt) {
  prepared_ = false;
  core_->prepare(opt);
  for (const auto& s : sessions_) s.readout->prepare(opt);
  prepared_ = true;
}

std::unique_ptr<ModelPlan> Model::plan(const Shape& in) const {
  if (!prepared_) throw UsageError("FiringRateEncoder: plan() before prepare()");
  auto p = std::unique_ptr<ModelPlan>(new ModelPlan());
  p->model_ = this;
  p->in_ = in;
  p->core_ = core_->plan(in);
  const Shape& x = p->core_->output_shape();
  for (const auto& s : sessions_) {
    s.readout->check_input(x);
    p->scratch_floats_ = std::max(p->scratch_floats_, s.readout->scratch_floats(x));
    if (s.shifter) p->scratch_floats_ = std::max(p->scratch_floats_, s.shifter->scratch_floats());
  }
  p->feat_floats_ = round_floats(size_t(x.numel()));
  p->shift_floats_ = has_shifter() ? round_floats(sessions_.size() * size_t(2 * in[0])) : 0;
  p->threads_ = core_->options().threads > 0 ? core_->options().threads : planned_threads();
  return p;
}

std::vector<Tensor> Model::forward(const Tensor& in, const Tensor* pupil, const std::vector<size_t>& sessions,
                                   Tensor* core_out, const TapFn* tap) const {
  auto p = plan(in.shape());
  std::vector<Tensor> outs;
  for (size_t s : sessions) outs.emplace_back(Shape{in.dim(0), neurons(s < sessions_.size() ? s : 0)});
  ModelWorkspace ws = p->make_workspace();
  p->run(in, pupil, sessions, outs.data(), ws, tap);
  if (core_out) *core_out = p->core_output(ws).clone();
  return outs;
}

// ---- ModelPlan --------------------------------------------------------------------------------------

ModelWorkspace ModelPlan::make_workspace() const {
  ModelWorkspace ws;
  ws.core = core_->make_workspace();
  ws.floats = feat_floats_ + shift_floats_ + size_t(threads_) * round_floats(scratch_floats_);
  ws.buffer = aligned_floats(ws.floats);
  ws.owner = this;
  return ws;
}

Tensor ModelPlan::core_output(const ModelWorkspace& ws) const {
  return Tensor::wrap(ws.buffer.get(), core_->output_shape());
}

void ModelPlan::check_args(const Tensor* pupil, const std::vector<size_t>& sessions,
                           const Tensor* outs) const {
  const Model& m = *model_;
  const int64_t n = in_[0];
  for (size_t i = 0; i < sessions.size(); ++i) {
    if (sessions[i] >= m.sessions_.size())
      throw ConfigError("FiringRateEncoder: session index " + std::to_string(sessions[i]) +
                        " is out of range; the model has " + std::to_string(m.sessions_.size()) +
                        " data_keys");
    const Shape want{n, m.neurons(sessions[i])};
    if (outs && (outs[i].shape() != want || !outs[i].contiguous()))
      throw ShapeError("FiringRateEncoder: output for data_key '" + m.sessions_[sessions[i]].data_key +
                       "' is " + outs[i].shape().str() + ", expected a dense " + want.str());
  }
  if (m.has_shifter()) {
    const Shape want{n, m.pupil_channels()};
    if (!pupil)
      throw ShapeError("FiringRateEncoder: the model has a shifter (MLPShifter): pupil positions " +
                       want.str() + " (one row per image) are required");
    if (pupil->shape() != want || !pupil->contiguous())
      throw ShapeError("FiringRateEncoder: pupil positions are " + pupil->shape().str() +
                       ", the shifter expects " + want.str() + " (one row of " + std::to_string(want[1]) +
                       " values per image)");
  }
}

void ModelPlan::run_core(const Tensor& in, ModelWorkspace& ws, const TapFn* tap) const {
  if (ws.owner != this || !ws.buffer)
    throw UsageError(
        "FiringRateEncoder: the workspace was not made by this plan (use its make_workspace())");
  Tensor feat = core_output(ws);
  core_->run(in, feat, ws.core, tap);
}

void ModelPlan::run_readouts(const Tensor* pupil, const std::vector<size_t>& sessions, Tensor* outs,
                             ModelWorkspace& ws) const {
  if (ws.owner != this || !ws.buffer)
    throw UsageError(
        "FiringRateEncoder: the workspace was not made by this plan (use its make_workspace())");
  check_args(pupil, sessions, outs);
  const Model& m = *model_;
  const Tensor feat = core_output(ws);
  float* shifts = ws.buffer.get() + feat_floats_;  // [sessions of the model][N, 2]
  float* scratch = shifts + shift_floats_;         // per thread: round_floats(scratch_floats_)
  const size_t per_thread = round_floats(scratch_floats_);
  const int64_t n = in_[0];
  // The shifters first (tiny), one slot per session of the model.
  if (m.has_shifter())
    for (size_t s : sessions)
      m.sessions_[s].shifter->run(pupil->data(), n, shifts + s * size_t(2 * n), scratch);
  auto readout = [&](size_t i, float* sc, int threads) {
    const ModelSession& s = m.sessions_[sessions[i]];
    float* y = outs[i].data();
    s.readout->run(feat, s.shifter ? shifts + sessions[i] * size_t(2 * n) : nullptr, y, sc, threads);
    if (m.nl_ == OutputNonlinearity::Elu) {
      const float off = m.elu_offset_;
      const int64_t count = n * s.readout->outdims();
      for (int64_t k = 0; k < count; ++k) {
        const float v = y[k] + off;
        y[k] = (v > 0.f ? v : std::expm1(v)) + 1.f;
      }
    }
  };
  if (runs_parallel(int64_t(sessions.size()), threads_)) {
    // Several sessions: one parallel region over them (each readout on one thread), not one per session.
    parallel_for_dynamic(int64_t(sessions.size()), threads_, [&](int64_t i) {
      readout(size_t(i), scratch + size_t(thread_slot()) * per_thread, 1);
    });
  } else {
    for (size_t i = 0; i < sessions.size(); ++i) readout(i, scratch, threads_);
  }
}

void ModelPlan::run(const Tensor& in, const Tensor* pupil, const std::vector<size_t>& sessions, Tensor* outs,
                    ModelWorkspace& ws, const TapFn* tap) const {
  check_args(pupil, sessions, outs);  // before the core's work
  run_core(in, ws, tap);
  run_readouts(pupil, sessions, outs, ws);
}

}  // namespace npcore
