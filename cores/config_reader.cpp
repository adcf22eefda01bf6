#include "cores/config_reader.h"

#include "engine/error.h"
#include "weights/json_guard.h"
#include "weights/text_util.h"

namespace npcore {

namespace {
const nlohmann::json kNull;
}

ConfigReader::ConfigReader(const nlohmann::json& config, std::string where)
    : cfg_(config), where_(std::move(where)) {
  if (!cfg_.is_object())
    throw ConfigError(where_ + ": must be a JSON object, got " + std::string(cfg_.type_name()));
  // Builders copy and print values, which recurses per nesting level: a config parsed without
  // parse_json_limited is checked here, by a walk that does not recurse.
  std::vector<std::pair<const nlohmann::json*, int>> todo{{&cfg_, 1}};
  while (!todo.empty()) {
    auto [v, depth] = todo.back();
    todo.pop_back();
    if (depth > kMaxConfigDepth - 1)
      throw ConfigError(where_ + ": nested deeper than " + std::to_string(kMaxConfigDepth - 1) +
                        " levels (a config needs 2 or 3)");
    for (const auto& child : *v)
      if (child.is_structured()) todo.emplace_back(&child, depth + 1);
  }
}

bool ConfigReader::present(const std::string& key) const {
  return cfg_.contains(key);
}
bool ConfigReader::has(const std::string& key) const {
  return cfg_.contains(key) && !cfg_.at(key).is_null();
}

void ConfigReader::fail(const std::string& key, const std::string& what) const {
  const std::string got = cfg_.contains(key) ? brief(cfg_.at(key)) : std::string("nothing");
  throw ConfigError(where_ + ": '" + printable(key) + "' " + what + " (got " + got + ")");
}

const nlohmann::json& ConfigReader::raw(const std::string& key) {
  known_.insert(key);
  return cfg_.contains(key) ? cfg_.at(key) : kNull;
}

int64_t ConfigReader::get_int(const std::string& key, std::optional<int64_t> def) {
  const auto& v = raw(key);
  if (v.is_null()) {
    if (!def) fail(key, "is required");
    return *def;
  }
  if (!v.is_number_integer()) fail(key, "must be an integer");
  return v.get<int64_t>();
}

double ConfigReader::get_number(const std::string& key, std::optional<double> def) {
  const auto& v = raw(key);
  if (v.is_null()) {
    if (!def) fail(key, "is required");
    return *def;
  }
  if (!v.is_number()) fail(key, "must be a number");
  return v.get<double>();
}

bool ConfigReader::get_bool(const std::string& key, std::optional<bool> def) {
  const auto& v = raw(key);
  if (v.is_null()) {
    if (!def) fail(key, "is required");
    return *def;
  }
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number_integer() && (v.get<int64_t>() == 0 || v.get<int64_t>() == 1)) return v.get<int64_t>() == 1;
  fail(key, "must be true or false");
}

std::string ConfigReader::get_string(const std::string& key, std::optional<std::string> def) {
  const auto& v = raw(key);
  if (v.is_null()) {
    if (!def) fail(key, "is required");
    return *def;
  }
  if (!v.is_string()) fail(key, "must be a string");
  return v.get<std::string>();
}

std::vector<int64_t> ConfigReader::get_int_or_list(const std::string& key, size_t n, size_t min_len,
                                                   std::optional<int64_t> def) {
  const auto& v = raw(key);
  if (v.is_array()) {
    std::vector<int64_t> out;
    for (const auto& e : v) {
      if (!e.is_number_integer()) fail(key, "must be an integer or a list of integers");
      out.push_back(e.get<int64_t>());
    }
    if (out.size() < min_len) fail(key, "as a list needs at least " + std::to_string(min_len) + " entries");
    return out;
  }
  return std::vector<int64_t>(n, get_int(key, def));
}

std::vector<bool> ConfigReader::get_bool_or_list(const std::string& key, size_t n, size_t min_len,
                                                 std::optional<bool> def) {
  const auto& v = raw(key);
  if (v.is_array()) {
    std::vector<bool> out;
    for (const auto& e : v) {
      if (!e.is_boolean()) fail(key, "must be a bool or a list of bools");
      out.push_back(e.get<bool>());
    }
    if (out.size() < min_len) fail(key, "as a list needs at least " + std::to_string(min_len) + " entries");
    return out;
  }
  return std::vector<bool>(n, get_bool(key, def));
}

void ConfigReader::finish() const {
  std::vector<std::string> unknown;
  for (auto it = cfg_.begin(); it != cfg_.end(); ++it)
    if (!known_.count(it.key())) unknown.push_back(printable(it.key()));
  if (unknown.empty()) return;
  std::string msg = where_ + ": unknown key" + (unknown.size() > 1 ? "s " : " ");
  for (std::string& k : unknown) k = "'" + k + "'";
  msg += list_some(unknown, 12, ", ");
  msg += "; accepted keys are:";
  for (const auto& k : known_) msg += " " + k;
  throw ConfigError(msg);
}

}  // namespace npcore
