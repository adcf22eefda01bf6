#pragma once
// The boundary of a public call: npcore errors pass through; anything else the standard library throws
// (std::bad_alloc, std::length_error, std::out_of_range, ...) becomes an npcore error naming the call, so
// that no bare std:: exception escapes the library. Cheap: try/catch costs nothing when nothing throws.
#include <new>
#include <string>
#include <type_traits>

#include "engine/error.h"

namespace npcore {

// `where` names the call in messages: a string, or a function returning one (built only on failure, so
// that a guarded steady-state run allocates nothing).
template <class W, class F>
decltype(auto) guard_call(const W& where, F&& f) {
  auto name = [&]() -> std::string {
    if constexpr (std::is_invocable_v<const W&>)
      return where();
    else
      return std::string(where);
  };
  try {
    return f();
  } catch (const Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw ResourceError(name() + ": out of memory (an allocation failed)");
  } catch (const std::exception& e) {
    throw Error(name() + ": " + e.what());
  }
}

}  // namespace npcore
