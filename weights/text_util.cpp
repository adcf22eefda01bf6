#include "weights/text_util.h"

#include <algorithm>

namespace npcore {

std::string printable(std::string_view s) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7f) {
      out += std::string("\\x") + hex[c >> 4] + hex[c & 15];
    } else if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(s[i + 1]) <= 0x9f) {
      // U+0080..U+009F in UTF-8: C1 controls (0x9b is a CSI introducer on some terminals).
      const unsigned char d = static_cast<unsigned char>(s[++i]);
      out += std::string("\\u00") + hex[d >> 4] + hex[d & 15];
    } else {
      out.push_back(char(c));
    }
  }
  return out;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string shape_str(const std::vector<int64_t>& dims, const char* open, const char* close) {
  std::string s = open;
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + close;
}

std::string list_some(const std::vector<std::string>& items, size_t max_shown, const char* sep) {
  std::string s;
  const size_t shown = std::min(items.size(), max_shown);
  for (size_t i = 0; i < shown; ++i) {
    if (i) s += sep;
    s += items[i];
  }
  if (shown < items.size()) {
    s += sep;
    s += "... and " + std::to_string(items.size() - shown) + " more";
  }
  return s;
}

}  // namespace npcore
