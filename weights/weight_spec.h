#pragma once
// The tensors a core expects in its state_dict, declared by its layers before loading, and the strict
// check that compares them with a file: every missing, unexpected and mis-shaped key is reported at
// once, each with its name and both shapes.
#include <cstdint>
#include <string>
#include <vector>

#include "weights/state_dict.h"

namespace npcore {

class WeightSpec {
 public:
  enum class Kind {
    Float,    // a parameter or float buffer; any floating dtype is accepted and converted
    Counter,  // BatchNorm's num_batches_tracked: an integer scalar, optional (pre-0.4 files lack it)
  };
  struct Entry {
    std::string key;
    std::vector<int64_t> shape;
    Kind kind = Kind::Float;
  };

  void expect(const std::string& key, std::vector<int64_t> shape) {
    entries_.push_back({key, std::move(shape)});
  }
  void expect_counter(const std::string& key) { entries_.push_back({key, {}, Kind::Counter}); }
  // Keys under this prefix are accepted and ignored (training-only buffers).
  void ignore_prefix(const std::string& prefix) { ignored_.push_back(prefix); }

  const std::vector<Entry>& entries() const { return entries_; }
  bool ignored(const std::string& key) const;

  // Throws WeightError listing every problem; `what` names the core, e.g. "Stacked2dCore".
  void check(const StateDict& sd, const std::string& what) const;

 private:
  std::vector<Entry> entries_;
  std::vector<std::string> ignored_;
};

}  // namespace npcore
