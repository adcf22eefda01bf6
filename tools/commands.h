#pragma once
// The npcore command's subcommands. Each register_* adds one CLI11 subcommand whose callback does the
// work; errors are thrown (npcore::Error) and turned into one line on stderr and exit status 2 by main.
#include <CLI/CLI.hpp>
#include <string>

#include "layers/layer.h"

namespace npcore::tool {

// Thrown for command-line usage problems found after parsing (exit status 2).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void register_check(CLI::App& app, int& status);
void register_info(CLI::App& app, int& status);
void register_run(CLI::App& app, int& status);
void register_demo(CLI::App& app, int& status);
void register_bench(CLI::App& app, int& status);
void register_convert(CLI::App& app, int& status);

// Shared options: --backend NAME, --threads N, --no-fuse, --no-winograd, --max-memory BYTES.
struct EngineFlags {
  std::string backend = "native";
  int threads = 0;
  bool no_fuse = false;
  bool no_winograd = false;
  std::string isa = "auto";
  std::string precision = "accurate";
  uint64_t max_memory = 0;
  void add_to(CLI::App* cmd, bool with_fuse = true);
  EngineOptions options() const;  // validates
};

}  // namespace npcore::tool
