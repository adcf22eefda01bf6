// npcore convert IN OUT: a state_dict checkpoint (.pth from torch.save, zip or legacy format; or safetensors)
// to safetensors, tensors unchanged, streamed from the memory-mapped input, written atomically.
#include <cstdio>

#include "cores/torchvision_features.h"
#include "tools/commands.h"
#include "tools/progress.h"
#include "weights/checkpoint_convert.h"

namespace npcore::tool {

void register_convert(CLI::App& app, int& status) {
  struct Args {
    std::string in, out, model;
    bool features_only = false, force = false, quiet = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "convert",
      "Convert a PyTorch state_dict checkpoint to safetensors.\n"
      "Reads torch.save files of a state_dict (a dict or OrderedDict of tensors) in the zip format (torch >= "
      "1.6) "
      "and the legacy format (older files such as torchvision's model-zoo .pth), without executing any "
      "pickle "
      "code: only the pickle content of a state_dict is accepted. Every tensor is written unchanged (dtype, "
      "shape, "
      "bytes) under its name, in the checkpoint's order; __metadata__ records the source file's name, size "
      "and "
      "format. The output is written to a temporary file and renamed into place, so a failure leaves nothing "
      "behind.\n\n"
      "Example (ImageNet weights for TransferLearningCore, tl_model_name vgg16):\n"
      "  curl -LO https://download.pytorch.org/models/vgg16-397923af.pth\n"
      "  npcore convert vgg16-397923af.pth vgg16_features.safetensors --features-only --model vgg16");
  cmd->add_option("in", args->in, "Input checkpoint (.pth/.pt from torch.save, or .safetensors)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("out", args->out, "Output .safetensors file")->required();
  cmd->add_flag("--features-only", args->features_only,
                "Keep only tensors under 'features.' (drops a torchvision model's classifier.*)");
  cmd->add_option(
         "--model", args->model,
         "Check the features.* tensors against this torchvision model's features (names, shapes, "
         "dtypes; a file may hold the first layers only) and refuse a mismatch, listing the problems")
      ->check(CLI::IsMember(torchvision_model_names()));
  cmd->add_flag("-f,--force", args->force, "Overwrite OUT if it exists");
  cmd->add_flag("-q,--quiet", args->quiet, "Print nothing on success");
  cmd->callback([args, &status] {
    ConvertOptions opt;
    opt.features_only = args->features_only;
    opt.force = args->force;
    if (!args->model.empty()) {
      const std::string model = args->model;
      opt.check = [model](const StateDict& sd) { return check_torchvision_features(sd, model); };
      opt.check_what = "torchvision " + model + ".features";
      opt.metadata["checked_model"] = model;
    }
    Progress progress("npcore convert");
    progress.update("reading " + args->in + ", writing " + args->out + " ...", 0, 0, true);
    ConvertReport r = convert_checkpoint(args->in, args->out, opt);
    progress.done();
    if (!args->quiet) {
      std::printf("wrote %s: %zu tensors, %.1f MB, from %s (%s)", args->out.c_str(), r.tensors,
                  double(r.tensor_bytes) / 1e6, args->in.c_str(), r.source_format.c_str());
      if (r.dropped) std::printf("; dropped %zu not under features.", r.dropped);
      if (!args->model.empty()) std::printf("; features match %s", args->model.c_str());
      std::printf("\n");
    }
    status = 0;
  });
}

}  // namespace npcore::tool
