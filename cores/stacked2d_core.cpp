#include "cores/stacked2d_core.h"

#include "cores/stacked2d_options.h"
#include "engine/error.h"
#include "layers/activations.h"
#include "layers/attention_conv.h"
#include "layers/batch_norm2d.h"
#include "layers/conv2d.h"
#include "layers/depth_separable_conv2d.h"
#include "layers/squeeze_excitation.h"

namespace npcore {

// ---- configuration ----------------------------------------------------------------------------------

Activation parse_nonlinearity(ConfigReader& r, const std::string& type, double xshift, double yshift) {
  const nlohmann::json& cfg = r.raw("nonlinearity_config");
  if (!cfg.is_null() && !cfg.is_object()) r.fail("nonlinearity_config", "must be an object of keyword arguments");
  const nlohmann::json empty = nlohmann::json::object();
  ConfigReader c(cfg.is_null() ? empty : cfg, r.where() + ", nonlinearity_config of " + type);
  Activation a;
  if (type == "AdaptiveELU") {
    // Upstream builds AdaptiveELU from elu_shift and ignores nonlinearity_config.
    return Activation{ActKind::ELU, 1.0f, float(xshift), float(yshift)};
  } else if (type == "Elu1") {
    a = {ActKind::ELU, 1.0f, 0.0f, 1.0f};
  } else if (type == "Exp") {
    a.kind = ActKind::Exp;
  } else if (type == "Log1Exp") {
    a.kind = ActKind::Log1Exp;
  } else if (type == "SoftThreshold") {
    a.kind = ActKind::SoftThreshold;
  } else if (type == "ELU") {
    a.kind = ActKind::ELU;
    a.alpha = float(c.get_number("alpha", 1.0));
    c.get_bool("inplace", false);
  } else if (type == "ReLU") {
    a.kind = ActKind::ReLU;
    c.get_bool("inplace", false);
  } else if (type == "Sigmoid") {
    a.kind = ActKind::Sigmoid;
  } else {
    r.fail("nonlinearity_type",
           "is not a supported nonlinearity; supported: AdaptiveELU, Elu1, Exp, Log1Exp, SoftThreshold, ELU, ReLU, "
           "Sigmoid");
  }
  c.finish();
  return a;
}

namespace {

// `stack`: None -> every layer; int s -> range(layers)[s:]; list -> those indices (negative from the end).
std::vector<int64_t> parse_stack(ConfigReader& r, int64_t layers) {
  const nlohmann::json& v = r.raw("stack");
  std::vector<int64_t> out;
  if (v.is_null()) {
    for (int64_t i = 0; i < layers; ++i) out.push_back(i);
  } else if (v.is_number_integer()) {
    int64_t s = v.get<int64_t>();
    int64_t start = s < 0 ? std::max<int64_t>(0, layers + s) : std::min(s, layers);
    for (int64_t i = start; i < layers; ++i) out.push_back(i);
  } else if (v.is_array()) {
    for (const auto& e : v) {
      if (!e.is_number_integer()) r.fail("stack", "must be null, an integer or a list of layer indices");
      int64_t i = e.get<int64_t>();
      if (i < -layers || i >= layers)
        r.fail("stack", "index " + std::to_string(i) + " is out of range for " + std::to_string(layers) + " layers");
      out.push_back(i < 0 ? i + layers : i);
    }
  } else {
    r.fail("stack", "must be null, an integer or a list of layer indices");
  }
  if (out.empty()) r.fail("stack", "selects no layer (the output would be an empty concatenation)");
  return out;
}

}  // namespace

Stacked2dOptions parse_stacked2d_options(ConfigReader& r, const Stacked2dDefaults& d) {
  Stacked2dOptions o;
  o.input_channels = r.get_int("input_channels");
  if (o.input_channels <= 0) r.fail("input_channels", "must be positive");
  o.layers = r.get_int("layers", 3);
  if (o.layers < 1) r.fail("layers", "must be at least 1");
  const size_t L = size_t(o.layers);
  const bool hidden_is_list = r.raw("hidden_channels").is_array();
  o.hidden_channels = r.get_int_or_list("hidden_channels", L, L);
  for (int64_t h : o.hidden_channels)
    if (h <= 0) r.fail("hidden_channels", "must be positive");
  o.input_kern = r.get_int("input_kern");
  if (o.input_kern <= 0) r.fail("input_kern", "must be positive");
  o.hidden_kern = r.get_int_or_list("hidden_kern", L - 1, L - 1);
  for (size_t i = 0; i + 1 < L; ++i)
    if (o.hidden_kern[i] <= 0) r.fail("hidden_kern", "must be positive");
  o.skip = r.get_int("skip", 0);
  if (o.skip < 0) r.fail("skip", "must be non-negative");
  if (hidden_is_list && o.skip > 1)
    r.fail("skip", "> 1 with a list of hidden_channels is not implemented upstream (NotImplementedError)");
  o.stride = r.get_int("stride", 1);
  if (o.stride <= 0) r.fail("stride", "must be positive");
  o.input_stride = r.get_int("input_stride", 1);
  if (o.input_stride <= 0) r.fail("input_stride", "must be positive");
  o.final_nonlinearity = r.get_bool("final_nonlinearity", true);
  {
    const nlohmann::json& es = r.raw("elu_shift");
    if (!es.is_null()) {
      if (!es.is_array() || es.size() != 2 || !es[0].is_number() || !es[1].is_number())
        r.fail("elu_shift", "must be a pair of numbers [xshift, yshift]");
      o.elu_xshift = es[0].get<double>();
      o.elu_yshift = es[1].get<double>();
    }
  }
  o.bias = r.get_bool_or_list("bias", L, L, d.bias);
  o.pad_input = r.get_bool("pad_input", true);
  {
    const nlohmann::json& hp = r.raw("hidden_padding");
    if (hp.is_number_integer()) {
      if (hp.get<int64_t>() < 0) r.fail("hidden_padding", "must be non-negative");
      o.hidden_padding = std::make_pair(hp.get<int64_t>(), hp.get<int64_t>());
    } else if (hp.is_array() && hp.size() == 2 && hp[0].is_number_integer() && hp[1].is_number_integer()) {
      if (hp[0].get<int64_t>() < 0 || hp[1].get<int64_t>() < 0) r.fail("hidden_padding", "must be non-negative");
      o.hidden_padding = std::make_pair(hp[0].get<int64_t>(), hp[1].get<int64_t>());
      o.hidden_padding_is_pair = true;
    } else if (!hp.is_null()) {
      r.fail("hidden_padding", "must be null, an integer or a pair [h, w]");
    }
  }
  o.batch_norm = r.get_bool_or_list("batch_norm", L, L, true);
  const bool final_scale = r.get_bool("final_batchnorm_scale", true);
  if (r.raw("batch_norm_scale").is_array()) {
    o.batch_norm_scale = r.get_bool_or_list("batch_norm_scale", L, L, true);
  } else {
    const bool s = r.get_bool("batch_norm_scale", true);
    o.batch_norm_scale.assign(L - 1, s);
    o.batch_norm_scale.push_back(final_scale);
  }
  o.hidden_dilation = r.get_int("hidden_dilation", 1);
  if (o.hidden_dilation <= 0) r.fail("hidden_dilation", "must be positive");
  o.stack = parse_stack(r, o.layers);
  o.depth_separable = r.get_bool("depth_separable", false);
  o.attention_conv = r.get_bool("attention_conv", false);
  if (o.depth_separable && o.attention_conv)
    r.fail("attention_conv", "and depth_separable cannot both be true");
  o.linear = r.get_bool("linear", false);
  o.nonlinearity_type = r.get_string("nonlinearity_type", "AdaptiveELU");
  o.nonlinearity = parse_nonlinearity(r, o.nonlinearity_type, o.elu_xshift, o.elu_yshift);
  if (d.se) {
    o.n_se_blocks = r.get_int("n_se_blocks", 0);
    if (o.n_se_blocks < 0) r.fail("n_se_blocks", "must be non-negative");
    o.se_reduction = r.get_int("se_reduction", 32);
    if (o.se_reduction <= 0) r.fail("se_reduction", "must be positive");
  }
  // Upper bounds far beyond any real core, so that absurd values fail here with a message rather than as
  // an allocation of petabytes later.
  auto at_most = [&](const char* key, int64_t value, int64_t limit) {
    if (value > limit) r.fail(key, "is too large (at most " + std::to_string(limit) + ")");
  };
  at_most("input_channels", o.input_channels, 65536);
  at_most("layers", o.layers, 1024);
  for (int64_t h : o.hidden_channels) at_most("hidden_channels", h, 65536);
  at_most("input_kern", o.input_kern, 1024);
  for (size_t i = 0; i + 1 < L; ++i) at_most("hidden_kern", o.hidden_kern[i], 1024);
  at_most("skip", o.skip, 1024);
  at_most("stride", o.stride, 65536);
  at_most("input_stride", o.input_stride, 65536);
  at_most("hidden_dilation", o.hidden_dilation, 65536);
  if (o.hidden_padding) {
    at_most("hidden_padding", o.hidden_padding->first, 65536);
    at_most("hidden_padding", o.hidden_padding->second, 65536);
  }
  if (d.se) at_most("se_reduction", o.se_reduction, 1 << 20);
  // Training-only arguments: accepted, no effect on inference.
  for (const char* k : {"gamma_hidden", "gamma_input", "momentum", "laplace_padding", "input_regularizer", "use_avg_reg"})
    r.ignore(k);
  return o;
}

// ---- the core ---------------------------------------------------------------------------------------

Stacked2dCore::Stacked2dCore(const Stacked2dOptions& o, NoBuild) : o_(o) { set_common_wiring(); }

void Stacked2dCore::set_common_wiring() {
  input_channels_ = o_.input_channels;
  skip_ = o_.skip;
  stack_ = o_.stack;
  ignored_ = {"_input_weights_regularizer."};
}

void Stacked2dCore::add_norm_layers(Sequential& layer, int64_t l, int64_t rotations) const {
  const size_t i = size_t(l);
  if (!o_.batch_norm[i]) return;
  const int64_t c = o_.hidden_channels[i];
  const bool bias = o_.bias[i], scale = o_.batch_norm_scale[i];
  layer.add(std::make_unique<BatchNorm2d>(layer.key("norm"), c, bias && scale, 1e-5, rotations));
  if (bias && !scale) layer.add(std::make_unique<Bias2d>(layer.key("bias"), c, rotations));
  if (!bias && scale) layer.add(std::make_unique<Scale2d>(layer.key("scale"), c, rotations));
}

void Stacked2dCore::add_activation(Sequential& layer, int64_t l) const {
  if (o_.linear) return;
  if (l < o_.layers - 1 || o_.final_nonlinearity)
    layer.add(std::make_unique<ActivationLayer>(layer.key("nonlin"), o_.nonlinearity_type, o_.nonlinearity));
}

Stacked2dCore::Stacked2dCore(const Stacked2dOptions& o) : o_(o) {
  set_common_wiring();
  const auto& hc = o_.hidden_channels;
  // layer0: never a conv bias (upstream passes `bias and not batch_norm` on lists, always False).
  {
    auto layer = std::make_unique<Sequential>("features.layer0");
    layer->add(std::make_unique<Conv2d>(
        layer->key("conv"), Conv2dParams::square(o_.input_channels, hc[0], o_.input_kern, o_.input_stride,
                                                 o_.pad_input ? o_.input_kern / 2 : 0, 1, 1, false)));
    add_norm_layers(*layer, 0);
    add_activation(*layer, 0);
    blocks_.push_back(std::move(layer));
  }
  for (int64_t l = 1; l < o_.layers; ++l) {
    auto layer = std::make_unique<Sequential>("features.layer" + std::to_string(l));
    const int64_t in = o_.skip > 1 ? std::min(o_.skip, l) * hc[0] : hc[size_t(l - 1)];
    const int64_t out = hc[size_t(l)], k = o_.hidden_kern[size_t(l - 1)], d = o_.hidden_dilation;
    // `hidden_padding or default`: None and 0 mean the default ("same" for odd kernels).
    int64_t ph = ((k - 1) * d + 1) / 2, pw = ph;
    if (o_.hidden_padding && (o_.hidden_padding->first || o_.hidden_padding->second || o_.hidden_padding_is_pair)) {
      ph = o_.hidden_padding->first;
      pw = o_.hidden_padding->second;
    }
    // Hidden convs get `bias=<the whole list>`, which is truthy: they always have a bias.
    Conv2dParams p = Conv2dParams::square(in, out, k, o_.stride, 0, d, 1, true);
    p.pad_h = ph;
    p.pad_w = pw;
    if (o_.depth_separable) {
      layer->add(std::make_unique<DepthSeparableConv2d>(layer->key("ds_conv"), in, p));
    } else if (o_.attention_conv) {
      if (ph != pw)
        throw ConfigError("features.layer" + std::to_string(l) + ": AttentionConv needs square padding, got " +
                          std::to_string(ph) + " x " + std::to_string(pw));
      layer->add(std::make_unique<AttentionConv>(layer->key("attention_conv"), in, out, k, o_.stride, ph, 1, true));
    } else {
      layer->add(std::make_unique<Conv2d>(layer->key("conv"), p));
    }
    add_norm_layers(*layer, l);
    add_activation(*layer, l);
    if (o_.n_se_blocks > 0 && o_.layers - l <= o_.n_se_blocks)
      layer->add(std::make_unique<SqueezeExcitationBlock>(layer->key("seg_ex_block"), out, o_.se_reduction));
    blocks_.push_back(std::move(layer));
  }
}

}  // namespace npcore
