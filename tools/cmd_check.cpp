// npcore check PREFIX...: runs PyTorch reference cases and reports the normalised error of each.
// Exit status: 0 every case passed; 1 some case failed or could not run (and some other case ran);
// 2 no case could run, or the command line is wrong.
#include <cstdio>

#include "cores/ref_case.h"
#include "engine/error.h"
#include "tools/commands.h"
#include "weights/text_util.h"

namespace npcore::tool {

void register_check(CLI::App& app, int& status) {
  struct Args {
    std::vector<std::string> prefixes;
    EngineFlags engine;
    std::string weights;
    bool verbose = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "check",
      "Compare the engine with PyTorch reference dumps (PREFIX.json, PREFIX.weights.safetensors, "
      "PREFIX.io.safetensors). A case passes when every compared tensor has max|y - ref| <= 1e-4 * max(1, "
      "max|ref|). Results go to stdout; a case that cannot run (missing or malformed file) is reported there "
      "and on stderr.\n"
      "Exit status: 0 every case passed; 1 some case failed or could not run while others ran; 2 no case "
      "could run, or the command line is wrong.");
  cmd->add_option("prefix", args->prefixes,
                  "Case prefixes, with or without .json (e.g. ../shared/ref/seed_*)")
      ->required();
  args->engine.add_to(cmd);
  cmd->add_option("--weights", args->weights, "Weights file to use in place of PREFIX.weights.safetensors");
  cmd->add_flag("-v,--verbose", args->verbose, "Print the error of every compared tensor");
  cmd->callback([args, &status] {
    CaseOptions opt;
    opt.engine = args->engine.options();
    opt.weights = args->weights;
    int failed = 0, errors = 0;
    double worst = 0;
    const std::vector<std::string> cases = case_prefixes(args->prefixes);
    for (const std::string& p : cases) {
      try {
        CaseResult r = run_reference_case(p, opt);
        worst = std::max(worst, r.worst_normalised);
        std::printf("%s  %-36s %-26s %-9s max|y-ref|/max|ref| = %.2e  (%zu tensors, %.2f s)\n",
                    r.pass ? "PASS" : "FAIL", r.name.c_str(), r.kind.c_str(),
                    backend_name(opt.engine.backend), r.worst_normalised, r.checks.size(), r.seconds);
        for (const TensorCheck& c : r.checks)
          if (args->verbose || !c.pass)
            std::printf("      %-34s %s  err %.3e  max|ref| %.3e  normalised %.2e  bound %.1e%s%s\n",
                        c.name.c_str(), c.pass ? "ok  " : "FAIL", c.max_abs_err, c.max_abs_ref, c.normalised,
                        c.bound, c.problem.empty() ? "" : "  ", c.problem.c_str());
        if (!r.pass) ++failed;
      } catch (const Error& e) {
        const std::string msg = printable(e.what());
        std::printf("ERROR %s\n      %s\n", p.c_str(), msg.c_str());
        std::fflush(stdout);
        std::fprintf(stderr, "npcore check: error: %s\n", msg.c_str());
        ++errors;
      }
      std::fflush(stdout);
    }
    const size_t n = cases.size();
    std::printf("%zu case%s on %s (ISA %s, CPU %s, precision %s): %zu passed, %d failed, %d could not run; worst "
                "normalised error %.2e\n",
                n, n == 1 ? "" : "s", backend_name(opt.engine.backend), isa_name(opt.engine.isa),
                isa_name(cpu_isa()), precision_name(opt.engine.precision), n - size_t(failed + errors), failed,
                errors, worst);
    status = (failed || errors) ? 1 : 0;
    if (errors == int(n)) status = 2;  // nothing ran
  });
}

}  // namespace npcore::tool
