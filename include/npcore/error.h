#pragma once
// One exception hierarchy for the whole library (public: programs catch these). Messages name what failed
// (layer, file, key), the bad value and the rule, e.g. "features.layer1.conv: input has 3 channels, the
// layer takes 16". The C API maps each class to a status code (npcore/npcore_c.h).
#include <stdexcept>
#include <string>

#include "npcore/export.h"

namespace npcore {

// Base of every error the library throws on bad input or misuse.
class NPCORE_API Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// A core or layer configuration that is invalid (unknown key, bad value, unsupported option).
class NPCORE_API ConfigError : public Error {
 public:
  using Error::Error;
};

// A tensor shape that a layer or kernel cannot take.
class NPCORE_API ShapeError : public Error {
 public:
  using Error::Error;
};

// A file that cannot be read or written, or whose bytes do not follow its format.
class NPCORE_API FormatError : public Error {
 public:
  using Error::Error;
};

// A state_dict that does not match the core: missing, unexpected or mis-shaped keys, bad values.
class NPCORE_API WeightError : public Error {
 public:
  using Error::Error;
};

// A kernel backend that cannot run a request, or a failure inside a backend library (oneDNN).
class NPCORE_API BackendError : public Error {
 public:
  using Error::Error;
};

// Misuse of the API: a call out of order (plan before prepare), a workspace another plan made, a null
// pointer or too small an output buffer.
class NPCORE_API UsageError : public Error {
 public:
  using Error::Error;
};

// Out of memory, or a request beyond a memory cap; the message names the sizes.
class NPCORE_API ResourceError : public Error {
 public:
  using Error::Error;
};

}  // namespace npcore
