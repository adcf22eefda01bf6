#include "weights/checkpoint_convert.h"

#include <sys/stat.h>

#include "engine/error.h"
#include "weights/mapped_file.h"
#include "weights/safetensors.h"
#include "weights/torch_checkpoint.h"

namespace npcore {

ConvertReport convert_checkpoint(const std::string& in, const std::string& out, const ConvertOptions& opt) {
  struct stat st {};
  if (!opt.force && ::stat(out.c_str(), &st) == 0)
    throw FormatError(out + ": already exists; use --force to overwrite it");

  ConvertReport rep;
  auto file = MappedFile::open(in);
  StateDict sd;
  if (looks_like_torch_checkpoint(file->data(), file->size())) {
    TorchCheckpoint ck = parse_torch_checkpoint(file->data(), file->size(), in, file);
    rep.source_format = std::string("pytorch ") + torch_format_name(ck.format);
    rep.copied_bytes = ck.copied_bytes;
    sd = std::move(ck.tensors);
  } else {
    sd = parse_safetensors(file->data(), file->size(), in, file).tensors;
    rep.source_format = "safetensors";
  }

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
      std::string msg = in + ": the tensors do not match " + opt.check_what + " (" +
                        std::to_string(problems.size()) + " problem" + (problems.size() > 1 ? "s" : "") +
                        "): ";
      const size_t shown = std::min<size_t>(problems.size(), 12);
      for (size_t i = 0; i < shown; ++i) msg += (i ? "; " : "") + problems[i];
      if (shown < problems.size()) msg += "; ... and " + std::to_string(problems.size() - shown) + " more";
      throw WeightError(msg);
    }
  }

  const size_t slash = in.rfind('/');
  rep.metadata = opt.metadata;
  rep.metadata["source"] = slash == std::string::npos ? in : in.substr(slash + 1);
  rep.metadata["source_bytes"] = std::to_string(file->size());
  rep.metadata["source_format"] = rep.source_format;
  write_safetensors(out, tensors, rep.metadata);
  rep.tensors = tensors.size();
  return rep;
}

}  // namespace npcore
