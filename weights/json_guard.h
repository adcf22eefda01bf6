#pragma once
// JSON read from files (safetensors headers, core descriptions) with bounded cost. nlohmann's parser is
// iterative, but copying or dumping a value recurses once per nesting level, so a file of 100000 '['
// overflows the stack. parse_json_limited refuses nesting beyond what the format needs while parsing,
// before any value that deep exists; brief() prints a value for a message in at most a few dozen
// characters however large or deep it is. Internal to the library and tools (it exposes nlohmann::json).
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace npcore {

// Nesting a core or module description may have ({"config": {"hidden_channels": [..]}} is 3).
constexpr int kMaxConfigDepth = 32;

// Called for every object key with its depth (1 for the keys of the top-level object); may throw.
using JsonKeyHook = std::function<void(int depth, const std::string& key)>;

enum class JsonParse { Ok, Invalid, TooDeep };
// Parses [begin, end) into *out. On malformed input (Invalid) or nesting deeper than `max_depth` (TooDeep;
// a scalar is depth 0, [1] depth 1, [[1]] depth 2), sets *error to a one-line reason: the parser's
// message, shortened, or "nested deeper than N levels". Exceptions thrown by `on_key` propagate.
JsonParse parse_json_limited(const char* begin, const char* end, int max_depth, nlohmann::json* out,
                             std::string* error, const JsonKeyHook& on_key = nullptr);

// `v` as compact JSON text (non-ASCII and control characters escaped), cut to at most `max_chars`
// characters with "..." at the end when longer. Never recurses deeper than max_chars levels.
std::string brief(const nlohmann::json& v, size_t max_chars = 60);

}  // namespace npcore
