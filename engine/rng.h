#pragma once
// Deterministic random numbers for initialising weights and making test inputs: the same seed gives the
// same values on every machine and compiler (no std:: distributions, whose output is unspecified).
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
