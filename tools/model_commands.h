#pragma once
// The whole-model side of `npcore run`, `npcore bench` and `npcore demo` (cores/model.h): each command
// asks is_model_description() of its JSON file and hands a model here.
#include <string>

#include "engine/options.h"

namespace npcore::tool {

struct ModelRunArgs {
  std::string config, weights, input, output, pupil, data_key;
  EngineOptions engine;
  bool quiet = false;
};
// npcore run MODEL.json --weights W --input X [--pupil-center P] [--data-key K|all] --output Y.
void run_model(const ModelRunArgs& a);

struct ModelBenchArgs {
  std::string config;
  EngineOptions engine;  // threads resolved
  int64_t batch = 1, height = 0, width = 0;
  int64_t channels = 0;     // from --input-shape C,H,W (0: not given); must equal the core's input channels
  std::string input_shape;  // the --input-shape text, for messages
  int warmup = 3, runs = 20;
  int64_t seed = -1;
  int64_t sessions = 0, neurons = 0;  // > 0: replace the readouts by this many sessions of this many neurons
  bool json = false;
};
// Throws UsageError unless c (the C of --input-shape `text`; 0: not given) equals the core's input channels.
void check_input_channels(const std::string& text, int64_t c, int64_t core_channels, const char* core);

// npcore bench MODEL.json: the core alone and the whole model, interleaved in one run, and the readouts'
// share.
void bench_model(const ModelBenchArgs& a);

// The whole-model part of `npcore demo`: the tutorial core with a 1000-neuron FullGaussian2d readout.
void demo_model(const EngineOptions& opt, int runs);

}  // namespace npcore::tool
