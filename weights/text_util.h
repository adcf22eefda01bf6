#pragma once
// Small text helpers shared by the readers, the tools and the tests: names from files made safe to print,
// shapes as text, bounded lists of problems.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace npcore {

// `s` with control characters (C0, DEL and the C1 range U+0080..U+009F) written as escapes (\n, \t,
// \x1b, \u009b), so that a tensor name or key read from a file cannot move the cursor, clear a
// terminal or split a one-line message. Other bytes, backslash included, are kept.
std::string printable(std::string_view s);

bool ends_with(std::string_view s, std::string_view suffix);

// "[16, 1, 5, 5]" (or with other brackets, e.g. "(3, 1)" for strides).
std::string shape_str(const std::vector<int64_t>& dims, const char* open = "[", const char* close = "]");

// The first `max_shown` items joined by `sep`, then "<sep>... and N more" if there are more.
std::string list_some(const std::vector<std::string>& items, size_t max_shown = 12, const char* sep = "; ");

}  // namespace npcore
