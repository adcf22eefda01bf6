#include "weights/weight_spec.h"

#include <set>

#include "engine/error.h"

namespace npcore {

bool WeightSpec::ignored(const std::string& key) const {
  for (const auto& p : ignored_)
    if (key.compare(0, p.size(), p) == 0) return true;
  return false;
}

void WeightSpec::check(const StateDict& sd, const std::string& what) const {
  std::vector<std::string> missing, mismatched, wrong_dtype, unexpected;
  std::set<std::string> known;
  for (const Entry& e : entries_) {
    known.insert(e.key);
    const StoredTensor* t = sd.find(e.key);
    if (!t) {
      if (e.kind != Kind::Counter) missing.push_back(e.key + " " + shape_str(e.shape));
      continue;
    }
    if (t->shape != e.shape)
      mismatched.push_back(e.key + ": file has " + shape_str(t->shape) + ", " + what + " expects " +
                           shape_str(e.shape));
    const bool is_float = is_float_dtype(t->dtype);
    if (e.kind == Kind::Float && !is_float)
      wrong_dtype.push_back(e.key + ": dtype " + dtype_name(t->dtype) + ", expected a floating-point dtype");
    if (e.kind == Kind::Counter && (is_float || t->dtype == DType::Bool))
      wrong_dtype.push_back(e.key + ": dtype " + dtype_name(t->dtype) + ", expected an integer");
  }
  for (const std::string& k : sd.order())
    if (!known.count(k) && !ignored(k)) unexpected.push_back(printable(k) + " " + sd.at(k).shape_str());
  if (missing.empty() && mismatched.empty() && wrong_dtype.empty() && unexpected.empty()) return;

  std::string msg = sd.source() + ": state_dict does not match " + what + ":";
  auto list = [&](const char* title, const std::vector<std::string>& v) {
    if (v.empty()) return;
    msg += std::string(" ") + title + " (" + std::to_string(v.size()) + "): " + list_some(v) + ".";
  };
  list("missing", missing);
  list("unexpected", unexpected);
  list("shape mismatch", mismatched);
  list("wrong dtype", wrong_dtype);
  throw WeightError(msg);
}

}  // namespace npcore
