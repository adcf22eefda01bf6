#include "weights/json_guard.h"

namespace npcore {
namespace {

using json = nlohmann::json;

// Thrown from the parser callback to stop at the first level too deep.
struct TooDeep {};

// Appends `v` to `out` until `out` holds more than `limit` characters. Each level appends at least one
// character before descending, so the recursion is at most `limit` deep.
void append_brief(const json& v, size_t limit, std::string& out) {
  if (out.size() > limit) return;
  if (v.is_object()) {
    out.push_back('{');
    bool first = true;
    for (auto it = v.begin(); it != v.end() && out.size() <= limit; ++it) {
      if (!first) out.push_back(',');
      first = false;
      append_brief(json(it.key().substr(0, limit + 1)), limit, out);
      out.push_back(':');
      append_brief(it.value(), limit, out);
    }
    out.push_back('}');
  } else if (v.is_array()) {
    out.push_back('[');
    bool first = true;
    for (auto it = v.begin(); it != v.end() && out.size() <= limit; ++it) {
      if (!first) out.push_back(',');
      first = false;
      append_brief(*it, limit, out);
    }
    out.push_back(']');
  } else if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    // Only the first limit+1 bytes can show; a sequence cut in two is replaced, not dumped invalid.
    out += json(s.substr(0, limit + 1)).dump(-1, ' ', true, json::error_handler_t::replace);
  } else {
    out += v.dump(-1, ' ', true, json::error_handler_t::replace);
  }
}

}  // namespace

JsonParse parse_json_limited(const char* begin, const char* end, int max_depth, json* out, std::string* error,
                             const JsonKeyHook& on_key) {
  // The callback's depth counts the containers around the event: a container starting at depth d is
  // nested d + 1 levels deep.
  json::parser_callback_t cb = [&](int depth, json::parse_event_t ev, json& parsed) {
    if ((ev == json::parse_event_t::object_start || ev == json::parse_event_t::array_start) &&
        depth + 1 > max_depth)
      throw TooDeep{};
    if (ev == json::parse_event_t::key && on_key) on_key(depth, parsed.get<std::string>());
    return true;
  };
  try {
    *out = json::parse(begin, end, cb);
    return JsonParse::Ok;
  } catch (const TooDeep&) {
    *error = "nested deeper than " + std::to_string(max_depth) + " levels";
    return JsonParse::TooDeep;
  } catch (const json::exception& e) {
    // The parser quotes the token it stopped at, which may be a whole long string.
    std::string msg = e.what();
    if (msg.size() > 200) msg = msg.substr(0, 197) + "...";
    *error = msg;
    return JsonParse::Invalid;
  }
}

std::string brief(const json& v, size_t max_chars) {
  if (max_chars < 4) max_chars = 4;
  std::string out;
  append_brief(v, max_chars, out);
  if (out.size() > max_chars) {
    out.resize(max_chars - 3);
    out += "...";
  }
  return out;
}

}  // namespace npcore
