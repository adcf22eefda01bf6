// npcore info FILE: lists the tensors of a weights or io file (safetensors, torch.save checkpoint) or the
// array of a .npy file, from their headers: no tensor data is copied, gathered or decompressed.
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "engine/isa.h"

#include "tools/commands.h"
#include "tools/conv_report.h"
#include "weights/mapped_file.h"
#include "weights/npy.h"
#include "weights/text_util.h"
#include "weights/weights_file.h"

namespace npcore::tool {
namespace {

void print_row(const std::string& name, const char* dtype, const std::vector<int64_t>& shape) {
  std::printf("%-56s %-5s %s\n", printable(name).c_str(), dtype, shape_str(shape).c_str());
}

}  // namespace

void register_info(CLI::App& app, int& status) {
  auto file = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "info",
      "List the tensors (name, dtype, shape) of a weights or io file (.safetensors, or a torch.save "
      "checkpoint such as .pth), or the array of a NumPy .npy file. Only headers are read: tensor data is "
      "not copied, decompressed or checked. Without a file: the CPU's instruction set and the one the "
      "engine's native kernels use (NPCORE_ISA lowers it).");
  cmd->add_option("file", *file,
                  "A .safetensors file, a torch.save checkpoint (.pth, .pt, .bin) or a .npy array");
  cmd->add_flag("--json", *as_json,
                "Print one JSON object: file, format, tensors (name, dtype, shape), bytes of data (and "
                "metadata of a safetensors file); without a file: cpu_model, cpu_isa, engine_isa, forced_by_NPCORE_ISA, kernels (built), runnable (on this CPU)");
  cmd->callback([file, as_json, &status] {
    auto print_json = [](const nlohmann::json& j) {
      std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    };
    if (file->empty()) {
      const bool forced = std::getenv("NPCORE_ISA") && *std::getenv("NPCORE_ISA");
      const Isa engine = resolve_isa(Isa::Auto);  // throws for a bad NPCORE_ISA, naming it
      int n = 0;
      const Isa* built = built_isas(&n);
      nlohmann::json kernels = nlohmann::json::array(), runnable = nlohmann::json::array();
      std::string built_text;
      for (int i = 0; i < n; ++i) {
        kernels.push_back(isa_name(built[i]));
        if (cpu_supports(built[i])) runnable.push_back(isa_name(built[i]));
        built_text += std::string(i ? ", " : "") + isa_name(built[i]) +
                      (cpu_supports(built[i]) ? "" : " (not on this CPU)");
      }
      if (*as_json) {
        print_json({{"cpu_model", cpu_model_name()},
                    {"cpu_isa", isa_name(cpu_isa())},
                    {"engine_isa", isa_name(engine)},
                    {"forced_by_NPCORE_ISA", forced},
                    {"kernels", kernels},
                    {"runnable", runnable}});
      } else {
        std::printf("cpu: %s\n", cpu_model_name().c_str());
        std::printf("cpu isa: %s\n", isa_name(cpu_isa()));
        std::printf("engine isa: %s%s (the native backend's kernels; --isa or NPCORE_ISA=generic|avx2|avx512 "
                    "lowers it)\n",
                    isa_name(engine), forced ? ", set by NPCORE_ISA" : ", the CPU's best");
        std::printf("kernels built: %s; chosen once at run time\n", built_text.c_str());
        std::printf("per convolution, the algorithm (and ISA) each runs with: npcore check -v, npcore bench\n");
      }
      status = 0;
      return;
    }
    {
      auto mapped = MappedFile::open(*file);
      if (sniff_file_kind(mapped->data(), mapped->size()) == FileKind::Npy) {
        const NpyHeader h = parse_npy_header(mapped->data(), mapped->size(), *file);
        const char* dtype = h.item_size == 4 ? "F32" : h.item_size == 8 ? "F64" : "F16";
        uint64_t numel = 1;
        for (int64_t d : h.shape) numel *= uint64_t(d);
        if (*as_json) {
          print_json({{"file", *file}, {"format", "npy"}, {"dtype", dtype}, {"shape", h.shape},
                      {"fortran_order", h.fortran_order}, {"bytes", numel * h.item_size}});
          status = 0;
          return;
        }
        print_row("(array)", dtype, h.shape);
        std::printf("1 array (NumPy .npy %d.%d, %s order), %llu bytes of data\n", h.major, h.minor,
                    h.fortran_order ? "Fortran" : "C", (unsigned long long)(numel * h.item_size));
        status = 0;
        return;
      }
    }
    const StateDictFile sd = read_state_dict(*file, TensorData::ShapesOnly);
    uint64_t bytes = 0;
    if (*as_json) {
      nlohmann::json tensors = nlohmann::json::array();
      for (const std::string& name : sd.tensors.order()) {
        const StoredTensor& t = sd.tensors.at(name);
        tensors.push_back({{"name", name}, {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}});
        bytes += t.nbytes;
      }
      print_json({{"file", *file}, {"format", sd.format}, {"tensors", tensors}, {"bytes", bytes},
                  {"metadata", sd.metadata}});
      status = 0;
      return;
    }
    for (const std::string& name : sd.tensors.order()) {
      const StoredTensor& t = sd.tensors.at(name);
      print_row(name, dtype_name(t.dtype), t.shape);
      bytes += t.nbytes;
    }
    std::printf("%zu tensors, %llu bytes of data (%s)\n", sd.tensors.size(), (unsigned long long)bytes,
                sd.format.c_str());
    status = 0;
  });
}

}  // namespace npcore::tool
