#include "cores/factory.h"
#include "engine/guard.h"

#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cores/config_reader.h"
#include "cores/rotation_equivariant2d_core.h"
#include "cores/stacked2d_options.h"
#include "cores/transfer_learning_core.h"
#include "engine/error.h"
#include "weights/json_guard.h"
#include "layers/attention_conv.h"
#include "layers/conv2d.h"
#include "layers/depth_separable_conv2d.h"
#include "layers/hermite_conv2d.h"
#include "layers/squeeze_excitation.h"

namespace npcore {
namespace {

using json = nlohmann::json;
using CoreBuilder = std::function<std::unique_ptr<Core>(ConfigReader&)>;
using ModuleBuilder = std::function<std::unique_ptr<Layer>(ConfigReader&)>;

const std::map<std::string, CoreBuilder>& core_builders() {
  static const std::map<std::string, CoreBuilder> m = {
      {"Stacked2dCore",
       [](ConfigReader& r) -> std::unique_ptr<Core> {
         Stacked2dOptions o = parse_stacked2d_options(r, Stacked2dDefaults{});
         r.finish();
         return std::make_unique<Stacked2dCore>(o);
       }},
      {"SE2dCore",
       [](ConfigReader& r) -> std::unique_ptr<Core> {
         Stacked2dDefaults d;
         d.bias = false;
         d.se = true;
         Stacked2dOptions o = parse_stacked2d_options(r, d);
         r.finish();
         return std::make_unique<SE2dCore>(o);
       }},
      {"RotationEquivariant2dCore",
       [](ConfigReader& r) -> std::unique_ptr<Core> {
         Stacked2dOptions o = parse_stacked2d_options(r, Stacked2dDefaults{});
         RotationEquivariantOptions ro = parse_rotation_equivariant_options(r, o);
         r.finish();
         return std::make_unique<RotationEquivariant2dCore>(o, ro);
       }},
      {"TransferLearningCore",
       [](ConfigReader& r) -> std::unique_ptr<Core> {
         TransferLearningOptions o = parse_transfer_learning_options(r);
         r.finish();
         return std::make_unique<TransferLearningCore>(o);
       }},
  };
  return m;
}

const std::map<std::string, ModuleBuilder>& module_builders() {
  static const std::map<std::string, ModuleBuilder> m = {
      {"AttentionConv",
       [](ConfigReader& r) -> std::unique_ptr<Layer> {
         auto l = std::make_unique<AttentionConv>("", r.get_int("in_channels"), r.get_int("out_channels"),
                                                  r.get_int("kernel_size"), r.get_int("stride", 1),
                                                  r.get_int("padding", 0), r.get_int("groups", 1),
                                                  r.get_bool("bias", false));
         r.finish();
         return l;
       }},
      {"DepthSeparableConv2d",
       [](ConfigReader& r) -> std::unique_ptr<Layer> {
         const int64_t in = r.get_int("in_channels"), out = r.get_int("out_channels");
         Conv2dParams sp = Conv2dParams::square(out, out, r.get_int("kernel_size"), r.get_int("stride", 1),
                                                r.get_int("padding", 0), r.get_int("dilation", 1), out,
                                                r.get_bool("bias", true));
         r.finish();
         return std::make_unique<DepthSeparableConv2d>("", in, sp);
       }},
      {"SqueezeExcitationBlock",
       [](ConfigReader& r) -> std::unique_ptr<Layer> {
         auto l = std::make_unique<SqueezeExcitationBlock>("", r.get_int("in_ch"), r.get_int("reduction", 16));
         r.finish();
         return l;
       }},
      {"Conv2d",
       [](ConfigReader& r) -> std::unique_ptr<Layer> {
         Conv2dParams p = Conv2dParams::square(r.get_int("in_channels"), r.get_int("out_channels"),
                                               r.get_int("kernel_size"), r.get_int("stride", 1),
                                               r.get_int("padding", 0), r.get_int("dilation", 1),
                                               r.get_int("groups", 1), r.get_bool("bias", true));
         r.finish();
         return std::make_unique<Conv2d>("", p);
       }},
      {"HermiteConv2D",
       [](ConfigReader& r) -> std::unique_ptr<Layer> {
         HermiteConv2dParams p;
         p.input_features = r.get_int("input_features");
         p.output_features = r.get_int("output_features");
         p.filter_size = r.get_int("filter_size");
         p.pad_h = p.pad_w = r.get_int("padding");
         p.stride = r.get_int("stride");
         p.num_rotations = r.get_int("num_rotations");
         p.upsampling = r.get_int("upsampling");
         p.first_layer = r.get_bool("first_layer");
         r.finish();
         return std::make_unique<HermiteConv2D>("", p);
       }},
  };
  return m;
}

json parse_json(const std::string& text, const std::string& source) {
  json j;
  std::string why;
  if (parse_json_limited(text.data(), text.data() + text.size(), kMaxConfigDepth, &j, &why) != JsonParse::Ok)
    throw ConfigError(source + ": not valid JSON: " + why);
  return j;
}

template <class Map>
std::string names_of(const Map& m) {
  std::string s;
  for (const auto& [k, v] : m) s += (s.empty() ? "" : ", ") + k;
  return s;
}

}  // namespace

static std::unique_ptr<Core> make_core_unguarded(const std::string& json_text, const std::string& source) {
  json j = parse_json(json_text, source);
  if (!j.is_object()) throw ConfigError(source + ": must be a JSON object with 'core' and 'config'");
  if (!j.contains("core")) {
    if (j.contains("module"))
      throw ConfigError(source + ": describes a single module ('module'), not a core ('core')");
    throw ConfigError(source + ": lacks 'core' (one of " + names_of(core_builders()) + ")");
  }
  if (!j["core"].is_string()) throw ConfigError(source + ": 'core' must be a string");
  const std::string name = j["core"].get<std::string>();
  auto it = core_builders().find(name);
  if (it == core_builders().end())
    throw ConfigError(source + ": unknown core '" + name + "'; supported: " + names_of(core_builders()));
  if (!j.contains("config")) throw ConfigError(source + ": lacks 'config' (the core's keyword arguments)");
  ConfigReader r(j["config"], source + ": " + name + " config");
  return it->second(r);
}

std::unique_ptr<Core> load_core(const std::string& path) { return make_core(read_text_file(path), path); }

static std::unique_ptr<Layer> make_module_unguarded(const std::string& json_text, const std::string& source) {
  json j = parse_json(json_text, source);
  if (!j.is_object() || !j.contains("module") || !j["module"].is_string())
    throw ConfigError(source + ": lacks 'module' (the layer's class name)");
  const std::string name = j["module"].get<std::string>();
  auto it = module_builders().find(name);
  if (it == module_builders().end())
    throw ConfigError(source + ": unsupported module '" + name + "'; supported: " + names_of(module_builders()));
  if (!j.contains("config")) throw ConfigError(source + ": lacks 'config' (the module's constructor arguments)");
  ConfigReader r(j["config"], source + ": " + name + " config");
  return it->second(r);
}

const std::vector<std::string>& core_names() {
  static const std::vector<std::string> v = [] {
    std::vector<std::string> r;
    for (const auto& [k, b] : core_builders()) r.push_back(k);
    return r;
  }();
  return v;
}

const std::vector<std::string>& module_names() {
  static const std::vector<std::string> v = [] {
    std::vector<std::string> r;
    for (const auto& [k, b] : module_builders()) r.push_back(k);
    return r;
  }();
  return v;
}

std::string read_text_file(const std::string& path, size_t max_bytes) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw FormatError(path + ": cannot open for reading");
  std::ostringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  if (s.size() > max_bytes) throw FormatError(path + ": larger than " + std::to_string(max_bytes) + " bytes");
  return s;
}

std::unique_ptr<Core> make_core(const std::string& json_text, const std::string& source) {
  return guard_call(source, [&] { return make_core_unguarded(json_text, source); });
}

std::unique_ptr<Layer> make_module(const std::string& json_text, const std::string& source) {
  return guard_call(source, [&] { return make_module_unguarded(json_text, source); });
}

}  // namespace npcore
