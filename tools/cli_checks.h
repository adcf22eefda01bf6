#pragma once
// Command-line checks shared by `npcore` and npcore_kernel_bench: values are checked as text before CLI11
// converts them, so that a 300-digit number is refused in a short message instead of echoed whole.
#include <CLI/CLI.hpp>
#include <string>

namespace npcore::tool {

// Parses the text of an integer in [lo, hi] (at most 9 digits); false otherwise.
inline bool parse_small_int(const std::string& s, long lo, long hi, long* out) {
  if (s.empty() || s.size() > 9) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  *out = std::stol(s);
  return *out >= lo && *out <= hi;
}

// The text, cut to `n` characters, for a message.
inline std::string quote_short(const std::string& s, size_t n = 12) {
  return "'" + (s.size() > n ? s.substr(0, n) + "..." : s) + "'";
}

// --threads N: 0 (all cores) to 1024.
inline CLI::Validator thread_count_check() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        long v;
        if (parse_small_int(s, 0, 1024, &v)) return "";
        return "must be an integer from 0 to 1024 (0: all cores), got " + quote_short(s);
      },
      "0..1024");
}

}  // namespace npcore::tool
