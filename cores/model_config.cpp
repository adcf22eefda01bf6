// make_model: the JSON model description (../shared/ref/README.md, models/) to a Model.
#include <cmath>
#include <nlohmann/json.hpp>

#include "cores/config_reader.h"
#include "cores/factory.h"
#include "cores/model.h"
#include "engine/error.h"
#include "weights/json_guard.h"
#include "weights/text_util.h"

namespace npcore {
namespace {

using json = nlohmann::json;

json parse(const std::string& text, const std::string& source) {
  json j;
  std::string why;
  if (parse_json_limited(text.data(), text.data() + text.size(), kMaxConfigDepth, &j, &why) != JsonParse::Ok)
    throw ConfigError(source + ": not valid JSON: " + why);
  return j;
}

// A list of `len` positive integers, or throws naming `what`.
Shape int_list(const json& v, size_t len, const std::string& what) {
  if (!v.is_array() || v.size() != len)
    throw ConfigError(what + " must be a list of " + std::to_string(len) + " integers (got " + brief(v) +
                      ")");
  Shape s;
  for (const auto& e : v) {
    if (!e.is_number_integer() || e.get<int64_t>() <= 0)
      throw ConfigError(what + " must hold positive integers (got " + brief(v) + ")");
    s.push_back(e.get<int64_t>());
  }
  return s;
}

}  // namespace

bool is_model_description(const std::string& json_text) {
  json j;
  std::string why;
  if (parse_json_limited(json_text.data(), json_text.data() + json_text.size(), kMaxConfigDepth, &j, &why) !=
      JsonParse::Ok)
    return false;
  return j.is_object() && j.contains("model");
}

std::unique_ptr<Model> make_model(const std::string& json_text, const std::string& source) {
  const json j = parse(json_text, source);
  if (!j.is_object() || !j.contains("model"))
    throw ConfigError(source + ": a model description needs 'model': 'FiringRateEncoder'");
  if (!j["model"].is_string() || j["model"].get<std::string>() != "FiringRateEncoder")
    throw ConfigError(source + ": unknown model " + brief(j["model"]) + "; accepted: FiringRateEncoder");
  for (const char* k : {"core", "readout"})
    if (!j.contains(k) || !j[k].is_object())
      throw ConfigError(source + ": lacks the object '" + std::string(k) + "'");

  // The core, as a core description of its own.
  auto core = make_core(j["core"].dump(), source + ": core");

  // Output nonlinearity.
  OutputNonlinearity nl = OutputNonlinearity::Elu;
  const std::string nl_name =
      j.contains("nonlinearity_type") && !j["nonlinearity_type"].is_null()
          ? (j["nonlinearity_type"].is_string() ? j["nonlinearity_type"].get<std::string>() : "?")
          : "elu";
  if (nl_name == "identity")
    nl = OutputNonlinearity::Identity;
  else if (nl_name != "elu")
    throw ConfigError(source + ": nonlinearity_type " + brief(j["nonlinearity_type"]) +
                      " is not supported; accepted: elu, identity");
  if (j.contains("nonlinearity_config") && !j["nonlinearity_config"].is_null() &&
      !(j["nonlinearity_config"].is_object() && j["nonlinearity_config"].empty()))
    throw ConfigError(source + ": nonlinearity_config is not supported (elu and identity take none)");
  float offset = 0.f;
  if (j.contains("elu_offset") && !j["elu_offset"].is_null()) {
    if (!j["elu_offset"].is_number() || !std::isfinite(j["elu_offset"].get<double>()))
      throw ConfigError(source + ": elu_offset must be a finite number (got " + brief(j["elu_offset"]) + ")");
    offset = j["elu_offset"].get<float>();
  }
  if (j.contains("modulator") && !j["modulator"].is_null())
    throw ConfigError(source + ": a modulator is not supported");

  // The readouts' in_shape: given, or the core's output at input_shape; both must agree.
  const json& ro = j["readout"];
  const std::string rwhere = source + ": readout";
  if (!ro.contains("type") || !ro["type"].is_string())
    throw ConfigError(rwhere + ": lacks 'type' (FullGaussian2d, PointPooled2d or FullFactorized2d)");
  const std::string type = ro["type"].get<std::string>();
  const json config = ro.contains("config") ? ro["config"] : json::object();
  if (!config.is_object()) throw ConfigError(rwhere + ": 'config' must be an object");
  Shape in_shape;
  Shape from_core;
  if (j.contains("input_shape") && !j["input_shape"].is_null()) {
    const Shape input = int_list(j["input_shape"], 4, source + ": input_shape");
    const Shape out = core->output_shape(input);
    from_core = Shape{out[1], out[2], out[3]};
  }
  const json* given = config.contains("in_shape") ? &config["in_shape"]
                                                  : (ro.contains("in_shape") ? &ro["in_shape"] : nullptr);
  if (given && !given->is_null()) {
    in_shape = int_list(*given, 3, rwhere + ": in_shape");
    if (from_core.rank() == 3 && from_core != in_shape)
      throw ConfigError(rwhere + ": in_shape " + in_shape.str() + " does not match the core's output " +
                        from_core.str() + " at input_shape " + j["input_shape"].dump());
  } else if (from_core.rank() == 3) {
    in_shape = from_core;
  } else {
    throw ConfigError(source +
                      ": the readouts need their in_shape: give 'input_shape' [N, C, H, W] of the "
                      "model or 'in_shape' [C, H, W] in the readout");
  }

  // Sessions: n_neurons, in the order of data_keys when given.
  if (!ro.contains("n_neurons") || !ro["n_neurons"].is_object() || ro["n_neurons"].empty())
    throw ConfigError(rwhere + ": lacks 'n_neurons' (data_key -> number of neurons)");
  const json& nn = ro["n_neurons"];
  std::vector<std::string> keys;
  if (j.contains("data_keys") && !j["data_keys"].is_null()) {
    if (!j["data_keys"].is_array()) throw ConfigError(source + ": data_keys must be a list of strings");
    for (const auto& k : j["data_keys"]) {
      if (!k.is_string()) throw ConfigError(source + ": data_keys must be a list of strings");
      if (!nn.contains(k.get<std::string>()))
        throw ConfigError(source + ": data_key '" + k.get<std::string>() +
                          "' has no entry in readout n_neurons");
      keys.push_back(k.get<std::string>());
    }
    if (keys.size() != nn.size())
      throw ConfigError(source + ": data_keys lists " + std::to_string(keys.size()) +
                        " keys but readout n_neurons has " + std::to_string(nn.size()));
  } else {
    for (const auto& [k, v] : nn.items()) keys.push_back(k);
  }

  const json* sh = j.contains("shifter") && !j["shifter"].is_null() ? &j["shifter"] : nullptr;
  if (sh) {
    if (!sh->is_object() || !sh->contains("type") || !(*sh)["type"].is_string())
      throw ConfigError(source + ": shifter must be an object with 'type' (MLPShifter) and 'config'");
    if ((*sh)["type"].get<std::string>() != "MLPShifter")
      throw ConfigError(source + ": unknown shifter type '" + (*sh)["type"].get<std::string>() +
                        "'; accepted: MLPShifter");
  }

  std::vector<ModelSession> sessions;
  for (const std::string& key : keys) {
    const json& cnt = nn[key];
    if (!cnt.is_number_integer() || cnt.get<int64_t>() < 1)
      throw ConfigError(rwhere + ": n_neurons['" + printable(key) + "'] must be a positive integer (got " +
                        brief(cnt) + ")");
    ModelSession s;
    s.data_key = key;
    ConfigReader r(config, rwhere + " " + type + " config");
    r.ignore("in_shape");
    s.readout = make_readout(type, r, key, "readout." + key, in_shape, cnt.get<int64_t>());
    if (sh) {
      const json sc = sh->contains("config") ? (*sh)["config"] : json::object();
      ConfigReader c(sc, source + ": shifter MLPShifter config");
      const int64_t in = c.get_int("input_channels", 2);
      const int64_t hidden = c.get_int("hidden_channels_shifter", 2);
      const int64_t layers = c.get_int("shift_layers", 1);
      const bool bias = c.get_bool("bias", true);
      c.ignore("gamma_shifter");
      c.finish();
      if (in < 1) c.fail("input_channels", "must be positive");
      if (hidden < 1) c.fail("hidden_channels_shifter", "must be positive");
      if (layers < 1) c.fail("shift_layers", "must be at least 1");
      if (!s.readout->takes_shift())
        throw ConfigError(source + ": a shifter cannot drive a " + std::string(s.readout->type()) +
                          " readout (it takes no shift)");
      s.shifter = std::make_unique<MlpShifter>("shifter." + key, in, hidden, layers, bias);
    }
    sessions.push_back(std::move(s));
  }
  return std::make_unique<Model>(std::move(core), std::move(sessions), nl, offset);
}

std::unique_ptr<Model> load_model(const std::string& path) {
  return make_model(read_text_file(path), path);
}

}  // namespace npcore
