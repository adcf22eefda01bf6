#pragma once
// Deterministic random numbers for initialising weights and making test inputs. The integer stream
// (splitmix64) and uniform() are the same everywhere for a seed; normal() goes through libm's log, sin
// and cos, so its last bits may differ between libm versions (no std:: distributions, whose algorithms
// are unspecified).
#include <cstdint>

#include "engine/tensor.h"

namespace npcore {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next_u64();           // splitmix64
  double uniform();              // [0, 1)
  double normal();               // standard normal (Box-Muller)
  void fill_normal(Tensor& t, float mean, float std);
  void fill_uniform(Tensor& t, float lo, float hi);

 private:
  uint64_t state_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

}  // namespace npcore
