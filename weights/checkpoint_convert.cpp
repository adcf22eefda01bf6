#include "weights/checkpoint_convert.h"

#include <sys/stat.h>

#include "engine/error.h"
#include "weights/safetensors.h"
#include "weights/text_util.h"
#include "weights/weights_file.h"

namespace npcore {

ConvertReport convert_checkpoint(const std::string& in, const std::string& out, const ConvertOptions& opt) {
  struct stat st {};
  if (!opt.force && ::stat(out.c_str(), &st) == 0)
    throw FormatError(out + ": already exists; use --force to overwrite it");

  ConvertReport rep;
  StateDictFile file = read_state_dict(in);
  const StateDict& sd = file.tensors;
  rep.source_format = file.format;
  rep.copied_bytes = file.copied_bytes;

  StateDict kept(in);
  std::vector<std::pair<std::string, StoredTensor>> tensors;
  for (const std::string& name : sd.order()) {
    if (opt.features_only && name.compare(0, 9, "features.") != 0) {
      ++rep.dropped;
      continue;
    }
    const StoredTensor& t = sd.at(name);
    tensors.emplace_back(name, t);
    kept.add(name, t);
    rep.tensor_bytes += t.nbytes;
  }
  if (tensors.empty())
    throw FormatError(in + ": no tensor to write" +
                      (opt.features_only ? std::string(" (none is under 'features.')") : std::string()));
  if (opt.check) {
    const std::vector<std::string> problems = opt.check(kept);
    if (!problems.empty()) {
      throw WeightError(in + ": the tensors do not match " + opt.check_what + " (" +
                        std::to_string(problems.size()) + " problem" + (problems.size() > 1 ? "s" : "") +
                        "): " + list_some(problems));
    }
  }

  const size_t slash = in.rfind('/');
  rep.metadata = opt.metadata;
  rep.metadata["source"] = slash == std::string::npos ? in : in.substr(slash + 1);
  rep.metadata["source_bytes"] = std::to_string(file.file_bytes);
  rep.metadata["source_format"] = rep.source_format;
  write_safetensors(out, tensors, rep.metadata);
  rep.tensors = tensors.size();
  return rep;
}

}  // namespace npcore
