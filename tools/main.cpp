// npcore: the command-line tool, a thin user of the library. Every error is one line on stderr and exit
// status 2: command-line mistakes name the subcommand's help, other errors the file or key at fault.
#include <cstdio>
#include <exception>

#include "engine/error.h"
#include "npcore/version.h"
#include "tools/cli_checks.h"
#include "tools/commands.h"
#include "weights/text_util.h"

namespace npcore::tool {

void EngineFlags::add_to(CLI::App* cmd, bool with_fuse) {
  cmd->add_option(
         "--backend", backend,
         "Convolution kernel: native (default, fastest: the engine's own Winograd, FFT, direct, 1x1, depthwise "
         "and fused depth-separable kernels "
         "for AVX2 or AVX-512, chosen at run time; on the generic ISA it runs gemm), onednn, gemm "
         "(im2col + Eigen) or reference (direct loops, the oracle)")
      ->capture_default_str();
  cmd->add_option("--threads", threads, "OpenMP threads, 0 to 1024 (default 0: all cores)")
      ->check(thread_count_check());
  if (with_fuse) cmd->add_flag("--no-fuse", no_fuse,
                               "Run norms and activations as separate layers, and a depth-separable block's three "
                               "convs one by one");
  cmd->add_flag("--no-winograd", no_winograd,
                "native backend: sum every convolution directly (no Winograd F(2x2, 3x3), no FFT)");
  cmd->add_option("--isa", isa,
                  "Instruction set of the vector kernels: auto (default: NPCORE_ISA if set, else the CPU's "
                  "best), avx512, avx2 or generic (portable C++); one the CPU lacks is an error")
      ->capture_default_str();
  cmd->add_option("--precision", precision,
                  "accurate (default: Winograd for 3x3, FFT for 5x5..9x9, both at least as exact as PyTorch float32) "
                  "or fast (may also use Winograd F(2x2, 5x5) and F(2x2, 7x7), 2-4x the error, where the "
                  "FFT kernel does not run; none today; docs/ACCURACY.md)")
      ->capture_default_str();
  cmd->add_option("--max-memory", max_memory,
                  "Largest buffers one planned input shape may allocate (workspace + output), in bytes, or "
                  "with a unit: 512MB, 2GB, 1GiB (default 0: no cap); a larger shape fails before allocating")
      ->transform(CLI::AsSizeValue(false));
}

EngineOptions EngineFlags::options() const {
  EngineOptions o;
  o.backend = parse_backend(backend);
  o.threads = threads;
  o.fuse = !no_fuse;
  o.winograd = !no_winograd;
  o.isa = resolve_isa(parse_isa(isa, "--isa"));
  o.precision = parse_precision(precision, "--precision");
  o.max_memory = size_t(max_memory);
  return o;
}

namespace {

// A message on one line: control characters escaped, runs of more than 20 digits shortened (CLI11 echoes
// a value it cannot convert whole, and prints the range of its NonNegativeNumber check in full).
std::string one_line(const std::string& msg) {
  std::string s = printable(msg), out;
  for (size_t i = 0; i < s.size();) {
    size_t j = i;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
    if (j - i > 20) {
      out += s.substr(i, 12) + "...(" + std::to_string(j - i) + " digits)";
      i = j;
    } else if (j > i) {
      out += s.substr(i, j - i);
      i = j;
    } else {
      out.push_back(s[i++]);
    }
  }
  return out;
}

// The subcommand the command line names (its first word that is not an option), or "" if none.
std::string named_subcommand(const CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] == '-') continue;
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
      if (sub->get_name() == argv[i]) return argv[i];
    return "";
  }
  return "";
}

}  // namespace
}  // namespace npcore::tool

int main(int argc, char** argv) {
  using namespace npcore::tool;
  CLI::App app{
      "npcore: run the convolutional cores of neuralpredictors (Stacked2dCore, SE2dCore, ...) in C++"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("npcore ") + NPCORE_VERSION_STRING);
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
    const std::string sub = named_subcommand(app, argc, argv);
    const std::string cmd = sub.empty() ? "npcore" : "npcore " + sub;
    std::fprintf(stderr, "%s: error: %s; see '%s --help'\n", cmd.c_str(), one_line(e.what()).c_str(),
                 cmd.c_str());
    return 2;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "npcore: error: %s\n", one_line(e.what()).c_str());
    return 2;
  } catch (const npcore::Error& e) {
    std::fprintf(stderr, "npcore: error: %s\n", one_line(e.what()).c_str());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "npcore: error: out of memory\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "npcore: error: %s\n", one_line(e.what()).c_str());
    return 2;
  }
  return status;
}
