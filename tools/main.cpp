// npcore: the command-line tool, a thin user of the library.
#include <cstdio>
#include <exception>

#include "engine/error.h"
#include "tools/commands.h"

namespace npcore::tool {

void EngineFlags::add_to(CLI::App* cmd, bool with_fuse) {
  cmd->add_option("--backend", backend, "Convolution kernel: native (default, fastest: the engine's own AVX-512 kernels), onednn, gemm (im2col + Eigen) or reference (direct loops, the oracle)")
      ->capture_default_str();
  cmd->add_option("--threads", threads, "OpenMP threads (default: all cores)")->check(CLI::NonNegativeNumber);
  if (with_fuse) cmd->add_flag("--no-fuse", no_fuse, "Run norms and activations as separate layers");
  cmd->add_flag("--no-winograd", no_winograd,
                "native backend: sum every convolution directly (no Winograd F(2x2, r x r) for 3x3/5x5/7x7)");
}

EngineOptions EngineFlags::options() const {
  EngineOptions o;
  o.backend = parse_backend(backend);
  o.threads = threads;
  o.fuse = !no_fuse;
  o.winograd = !no_winograd;
  return o;
}

}  // namespace npcore::tool

int main(int argc, char** argv) {
  using namespace npcore::tool;
  CLI::App app{"npcore: run the convolutional cores of neuralpredictors (Stacked2dCore, SE2dCore, ...) in C++"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "npcore 0.1.0");
  int status = 0;
  register_check(app, status);
  register_info(app, status);
  register_run(app, status);
  register_demo(app, status);
  register_bench(app, status);
  register_convert(app, status);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "npcore: error: %s\nRun 'npcore --help' for usage.\n", e.what());
    return 2;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "npcore: error: %s\n", e.what());
    return 2;
  } catch (const npcore::Error& e) {
    std::fprintf(stderr, "npcore: error: %s\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "npcore: error: out of memory\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "npcore: error: %s\n", e.what());
    return 2;
  }
  return status;
}
