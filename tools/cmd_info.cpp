// npcore info FILE: lists the tensors of a weights or io file.
#include <cstdio>

#include "cores/ref_case.h"
#include "tools/commands.h"
#include "weights/safetensors.h"
#include "weights/weight_spec.h"

namespace npcore::tool {

void register_info(CLI::App& app, int& status) {
  auto file = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("info", "List the tensors (name, dtype, shape) of a weights or io file");
  cmd->add_option("file", *file, "A .safetensors file or a torch.save checkpoint (.pth, .pt, .bin)")->required();
  cmd->callback([file, &status] {
    StateDict sd = load_weights_file(*file);
    size_t bytes = 0;
    for (const std::string& name : sd.order()) {
      const StoredTensor& t = sd.at(name);
      std::printf("%-56s %-5s %s\n", name.c_str(), dtype_name(t.dtype), shape_str(t.shape).c_str());
      bytes += t.nbytes;
    }
    std::printf("%zu tensors, %zu bytes of data\n", sd.size(), bytes);
    status = 0;
  });
}

// Commands written in later steps register as stubs that say so.
}  // namespace npcore::tool
