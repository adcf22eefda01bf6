#pragma once
// One exception hierarchy for the whole library. Messages name what failed (layer, file, key), the bad
// value and the rule, e.g. "features.layer1.conv: input has 3 channels, the layer takes 16".
#include <stdexcept>
#include <string>

namespace npcore {

// Base of every error the library throws on bad input or misuse.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// A core or layer configuration that is invalid (unknown key, bad value, unsupported option).
class ConfigError : public Error {
 public:
  using Error::Error;
};

// A tensor shape that a layer or kernel cannot take.
class ShapeError : public Error {
 public:
  using Error::Error;
};

// A file that cannot be read or written, or whose bytes do not follow its format.
class FormatError : public Error {
 public:
  using Error::Error;
};

// A state_dict that does not match the core: missing, unexpected or mis-shaped keys, bad values.
class WeightError : public Error {
 public:
  using Error::Error;
};

// A kernel backend that cannot run a request, or a failure inside a backend library (oneDNN).
class BackendError : public Error {
 public:
  using Error::Error;
};

// Misuse of the API: plan() before prepare(), a workspace that another plan made, a run state from
// another kernel. The call was wrong, not the data or the backend.
class UsageError : public Error {
 public:
  using Error::Error;
};

// An allocation that failed or that would pass EngineOptions::max_memory; the message names the sizes.
class ResourceError : public Error {
 public:
  using Error::Error;
};

}  // namespace npcore
