// npcore run CONFIG.json --weights W --input X --output Y: one forward pass of a core (or of a whole
// model, tools/cmd_model.cpp) on an input file.
// Everything is validated (config, weights, input shape, output path) before anything is computed, and
// the output is written atomically, so a failed run never leaves a partial output file.
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "cores/factory.h"
#include "cores/ref_case.h"
#include "engine/error.h"
#include "cores/model.h"
#include "tools/commands.h"
#include "tools/io_files.h"
#include "tools/model_commands.h"
#include "weights/npy.h"
#include "weights/safetensors.h"
#include "weights/text_util.h"

namespace npcore::tool {

void register_run(CLI::App& app, int& status) {
  struct Args {
    std::string config, weights, input, output, pupil, data_key;
    EngineFlags engine;
    bool quiet = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "run",
      "Run a core, or a whole model, on an input file and write its output.\n"
      "The input is a .npy array (float32, or float64/float16 converted; C order) or a .safetensors file "
      "(the "
      "tensor named 'input', or its only tensor), of shape (N, C, H, W); a 3-D array (C, H, W) is taken as a "
      "batch of one image. The output is written as .npy or .safetensors (tensor 'output', with metadata "
      "naming the core and config) according to the extension of --output, atomically: a failed run leaves "
      "no output file.\n"
      "A model description (\"model\": \"FiringRateEncoder\", with \"core\", \"readout\" and optional "
      "\"shifter\") gives firing rates [N, neurons] per data_key: --data-key picks one (default: all); with "
      "several the output must be .safetensors, one tensor named by each data_key. A model with a shifter "
      "needs --pupil-center (N, 2).");
  cmd->add_option(
         "config", args->config,
         "Core description: JSON with \"core\" (e.g. Stacked2dCore) and \"config\" (its neuralpredictors "
         "keyword arguments), or a model description (\"model\": \"FiringRateEncoder\")")
      ->required();
  cmd->add_option(
         "-w,--weights", args->weights,
         "The core's (or model's) state_dict with PyTorch key names: .safetensors, or a torch.save checkpoint "
         "(.pth/.pt, zip or legacy format; read without executing any pickle code). Loaded strictly: "
         "every missing, unexpected or mis-shaped key is an error")
      ->required();
  cmd->add_option("-i,--input", args->input,
                  "Input images: .npy or .safetensors, shape (N, C, H, W) or (C, H, W)")
      ->required();
  cmd->add_option("-o,--output", args->output, "Output file: .npy or .safetensors (chosen by this extension)")
      ->required();
  cmd->add_option("--pupil-center", args->pupil,
                  "Models with a shifter: pupil positions, .npy or .safetensors ('pupil_center' or the only "
                  "tensor), shape (N, 2)");
  cmd->add_option("--data-key", args->data_key, "Models: the session to read out, or 'all' (the default)");
  args->engine.add_to(cmd);
  cmd->add_flag("-q,--quiet", args->quiet, "Print nothing on success");
  cmd->callback([args, &status] {
    const Args& a = *args;
    const EngineOptions opt = a.engine.options();
    if (is_model_description(read_text_file(a.config))) {
      run_model({a.config, a.weights, a.input, a.output, a.pupil, a.data_key, opt, a.quiet});
      status = 0;
      return;
    }
    if (!a.pupil.empty() || !a.data_key.empty())
      throw UsageError("--pupil-center and --data-key are for models; " + a.config + " describes a core");
    check_output_path(a.output);
    auto core = load_core(a.config);
    core->load(load_weights_file(a.weights));
    Tensor input = read_input_images(a.input);
    Shape out_shape;
    try {
      out_shape = core->output_shape(input.shape());
    } catch (const ShapeError& e) {
      throw ShapeError(a.input + ": " + e.what());
    }
    core->prepare(opt);
    auto plan = core->plan(input.shape());
    Tensor output(out_shape);
    Workspace ws = plan->make_workspace();
    const auto t0 = std::chrono::steady_clock::now();
    plan->run(input, output, ws);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

    if (ends_with(a.output, ".npy")) {
      write_npy(a.output, output);
    } else {
      write_safetensors(a.output, {{"output", output}},
                        {{"core", core->type()},
                         {"config", a.config},
                         {"weights", a.weights},
                         {"input", a.input},
                         {"backend", backend_name(opt.backend)}});
    }
    if (!a.quiet)
      std::printf("%s: %s %s -> output %s (%s, %.1f ms)\n", a.output.c_str(), core->type(),
                  input.shape().str().c_str(), out_shape.str().c_str(), backend_name(opt.backend), ms);
    status = 0;
  });
}

}  // namespace npcore::tool
