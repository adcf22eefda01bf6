#include "cores/ref_case.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "cores/factory.h"
#include "cores/model.h"
#include "engine/error.h"
#include "weights/json_guard.h"
#include "weights/safetensors.h"
#include "weights/text_util.h"
#include "weights/weight_spec.h"
#include "weights/weights_file.h"

namespace npcore {

std::string case_prefix(const std::string& path) {
  static const char* suffixes[] = {".weights.safetensors",
                                   ".io.safetensors",
                                   ".expected.safetensors",
                                   ".legacy_v1.pth",
                                   ".legacy.pth",
                                   ".pth",
                                   ".json"};
  for (const std::string_view suf : suffixes)
    if (path.size() > suf.size() && ends_with(path, suf)) return path.substr(0, path.size() - suf.size());
  return path;
}

std::vector<std::string> case_prefixes(const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  for (const auto& p : paths) {
    std::string c = case_prefix(p);
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  }
  return out;
}

TensorCheck compare_tensors(const std::string& name, const Tensor& got, const Tensor& ref) {
  TensorCheck c;
  c.name = name;
  if (got.shape() != ref.shape()) {
    c.problem = "shape " + got.shape().str() + ", reference " + ref.shape().str();
    c.max_abs_err = c.normalised = INFINITY;
    return c;
  }
  Tensor g = got.contiguous() ? got : got.clone();
  Tensor r = ref.contiguous() ? ref : ref.clone();
  double err = 0, mref = 0;
  bool nonfinite = false;
  for (int64_t i = 0; i < r.numel(); ++i) {
    const double a = g.data()[i], b = r.data()[i];
    if (!std::isfinite(a) && std::isfinite(b)) nonfinite = true;
    err = std::max(err, std::fabs(a - b));
    mref = std::max(mref, std::fabs(b));
  }
  if (nonfinite) err = INFINITY;
  c.max_abs_err = err;
  c.max_abs_ref = mref;
  c.normalised = mref > 0 ? err / mref : err;
  c.bound = 1e-4 * std::max(1.0, mref);
  c.pass = err <= c.bound;
  if (nonfinite) c.problem = "non-finite values where the reference is finite";
  return c;
}

CaseResult run_reference_case(const std::string& prefix_in, const CaseOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string prefix = case_prefix(prefix_in);
  CaseResult res;
  res.name = prefix.substr(prefix.rfind('/') == std::string::npos ? 0 : prefix.rfind('/') + 1);
  const std::string json_path = prefix + ".json";
  const std::string text = read_text_file(json_path);
  nlohmann::json j;
  std::string why;
  if (parse_json_limited(text.data(), text.data() + text.size(), kMaxConfigDepth, &j, &why) != JsonParse::Ok)
    throw ConfigError(json_path + ": not valid JSON: " + why);
  const bool is_module = j.is_object() && j.contains("module");
  const bool is_model = j.is_object() && j.contains("model");
  StateDict weights = load_weights_file(opt.weights.empty() ? prefix + ".weights.safetensors" : opt.weights);
  SafetensorsFile io = read_safetensors(prefix + ".io.safetensors");
  const Tensor input = io.tensors.get_float("input");

  std::vector<std::pair<std::string, Tensor>> produced;
  if (is_model) {
    // A whole model: act/core (the core's output) and output/<data_key> for every session.
    auto model = make_model(text, json_path);
    res.kind = std::string(model->core().type()) + "+" +
               model->sessions().front().readout->type();
    model->load(weights);
    model->prepare(opt.engine);
    Tensor pupil;
    if (io.tensors.contains("pupil_center")) pupil = io.tensors.get_float("pupil_center");
    std::vector<size_t> all;
    for (size_t s = 0; s < model->sessions().size(); ++s) all.push_back(s);
    Tensor core_out;
    std::vector<Tensor> outs = model->forward(input, pupil.empty() ? nullptr : &pupil, all, &core_out);
    produced.emplace_back("act/core", core_out);
    res.convs = model->core().plan(input.shape())->convs();
    for (size_t s = 0; s < all.size(); ++s) produced.emplace_back("output/" + model->sessions()[s].data_key, outs[s]);
  } else if (is_module) {
    auto layer = make_module(text, json_path);
    res.kind = layer->type();
    WeightSpec spec;
    layer->declare(spec);
    spec.check(weights, res.kind);
    layer->load(weights);
    prepare_layer(*layer, opt.engine);
    auto op = layer->plan(input.shape(), opt.engine);
    Tensor out(op->out_shape);
    AlignedBuffer scratch = aligned_floats(op->scratch_floats());
    auto state = op->make_state();
    op->run(input, out, scratch.get(), state.get());
    op->list_convs(res.convs);
    produced.emplace_back("output", out);
    for (auto& [name, t] : layer->debug_tensors()) produced.emplace_back(name, t);
  } else {
    auto core = make_core(text, json_path);
    res.kind = core->type();
    core->load(weights);
    core->prepare(opt.engine);
    TapFn tap = [&](const std::string& block, const Tensor& t) {
      produced.emplace_back("act/" + block, t.clone());
    };
    auto plan = core->plan(input.shape());
    res.convs = plan->convs();
    plan->run(input, &tap);  // block by block, every block's output
    // The output from a run without a tap: the path programs take (with several threads, the batch split
    // or the forward's team, cores/core.h), which the tapped run does not.
    Tensor out = plan->run(input);
    produced.emplace_back("output", out);
  }
  // Every reference tensor but the input is compared; one the engine did not produce fails the case.
  res.pass = true;
  for (const std::string& name : io.tensors.order()) {
    if (name == "input" || name == "pupil_center") continue;
    const Tensor ref = io.tensors.get_float(name);
    const Tensor* got = nullptr;
    for (const auto& [n, t] : produced)
      if (n == name) got = &t;
    TensorCheck c;
    if (got) {
      c = compare_tensors(name, *got, ref);
    } else {
      c.name = name;
      c.problem = "not produced by the engine";
      c.max_abs_err = c.normalised = INFINITY;
    }
    res.pass = res.pass && c.pass;
    res.worst_normalised = std::max(res.worst_normalised, c.normalised);
    res.checks.push_back(c);
  }
  if (res.checks.empty()) throw FormatError(prefix + ".io.safetensors: holds no tensor to compare");
  // The engine produced the blocks in order: the first failing one is where the engine departs.
  for (const auto& [n, t] : produced) {
    if (n.rfind("act/", 0) != 0) continue;
    for (const TensorCheck& c : res.checks)
      if (c.name == n && !c.pass && res.first_departing_block.empty()) {
        res.first_departing_block = n.substr(4);
        res.first_departing_error = c.normalised;
      }
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace npcore
