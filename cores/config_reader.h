#pragma once
// Reads a core's `config` object (neuralpredictors' keyword arguments) with PyTorch's defaults and
// types, remembering every key it was asked about so that finish() can refuse unknown keys by listing
// the accepted ones. Internal to the library (it exposes nlohmann::json).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace npcore {

class ConfigReader {
 public:
  // `where` prefixes every message, e.g. "seed.json: Stacked2dCore config".
  ConfigReader(const nlohmann::json& config, std::string where);

  bool has(const std::string& key) const;       // present and not null
  bool present(const std::string& key) const;   // present, possibly null
  // A required value (no default) throws ConfigError when absent.
  int64_t get_int(const std::string& key, std::optional<int64_t> def = std::nullopt);
  double get_number(const std::string& key, std::optional<double> def = std::nullopt);
  bool get_bool(const std::string& key, std::optional<bool> def = std::nullopt);
  std::string get_string(const std::string& key, std::optional<std::string> def = std::nullopt);
  // An int, or a list of ints (at least `min_len` long when a list); a scalar is repeated `n` times.
  std::vector<int64_t> get_int_or_list(const std::string& key, size_t n, size_t min_len,
                                       std::optional<int64_t> def = std::nullopt);
  // A bool, or a list of bools; a scalar is repeated `n` times.
  std::vector<bool> get_bool_or_list(const std::string& key, size_t n, size_t min_len,
                                     std::optional<bool> def = std::nullopt);
  // The raw value (null if absent); marks the key as known.
  const nlohmann::json& raw(const std::string& key);
  // Accepts a training-only key without reading it.
  void ignore(const std::string& key) { known_.insert(key); }

  // Throws ConfigError if the config has keys nobody asked about, listing the accepted ones.
  void finish() const;
  [[noreturn]] void fail(const std::string& key, const std::string& what) const;
  const std::string& where() const { return where_; }

 private:
  const nlohmann::json& cfg_;
  std::string where_;
  std::set<std::string> known_;
};

}  // namespace npcore
