// npcore check PREFIX...: runs PyTorch reference cases and reports the normalised error of each.
// Exit status: 0 every case passed; 1 some case failed or could not run (and some other case ran);
// 2 no case could run, or the command line is wrong.
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cores/ref_case.h"
#include "engine/error.h"
#include "tools/commands.h"
#include "tools/conv_report.h"
#include "weights/text_util.h"

namespace npcore::tool {

void register_check(CLI::App& app, int& status) {
  struct Args {
    std::vector<std::string> prefixes;
    EngineFlags engine;
    std::string weights;
    bool verbose = false;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "check",
      "Compare the engine with PyTorch reference dumps (PREFIX.json, PREFIX.weights.safetensors, "
      "PREFIX.io.safetensors). A case passes when every compared tensor has max|y - ref| <= 1e-4 * max(1, "
      "max|ref|). Results go to stdout; a case that cannot run (missing or malformed file) is reported there "
      "and on stderr. Under each case: how many convolutions ran with each algorithm (e.g. winograd, "
      "direct, gemm) and the ISA; --verbose lists them one by one.\n"
      "Exit status: 0 every case passed; 1 some case failed or could not run while others ran; 2 no case "
      "could run, or the command line is wrong.");
  cmd->add_option("prefix", args->prefixes,
                  "Case prefixes, with or without .json (e.g. ../shared/ref/seed_*)")
      ->required();
  args->engine.add_to(cmd);
  cmd->add_option("--weights", args->weights, "Weights file to use in place of PREFIX.weights.safetensors");
  cmd->add_flag("-v,--verbose", args->verbose,
                "Print the error of every compared tensor, each convolution with the algorithm and ISA it ran "
                "with, and the first block whose activation departs from the reference");
  cmd->add_flag("--json", args->json,
                "Print one JSON object (backend, isa, cpu_isa; cases with their checks, their convolutions "
                "(convs: layer, parameters, input_shape, algorithm, isa), first departing block; totals) "
                "instead of the table");
  cmd->callback([args, &status] {
    CaseOptions opt;
    opt.engine = args->engine.options();
    opt.weights = args->weights;
    int failed = 0, errors = 0;
    double worst = 0;
    const std::vector<std::string> cases = case_prefixes(args->prefixes);
    nlohmann::json jcases = nlohmann::json::array();
    // JSON has no infinity: a tensor that could not be compared has a null error.
    auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); };
    for (const std::string& p : cases) {
      try {
        CaseResult r = run_reference_case(p, opt);
        worst = std::max(worst, r.worst_normalised);
        if (!r.pass) ++failed;
        if (args->json) {
          nlohmann::json jc = {{"prefix", p}, {"name", r.name}, {"kind", r.kind}, {"pass", r.pass},
                               {"worst_normalised", num(r.worst_normalised)}, {"seconds", r.seconds}};
          jc["convs"] = convs_json(r.convs);
          jc["first_departing_block"] =
              r.first_departing_block.empty() ? nlohmann::json() : nlohmann::json(r.first_departing_block);
          for (const TensorCheck& c : r.checks)
            jc["checks"].push_back({{"name", c.name}, {"pass", c.pass}, {"max_abs_err", num(c.max_abs_err)},
                                    {"max_abs_ref", num(c.max_abs_ref)}, {"normalised", num(c.normalised)},
                                    {"bound", c.bound}, {"problem", c.problem}});
          jcases.push_back(jc);
          continue;
        }
        std::printf("%s  %-36s %-26s %-9s max|y-ref|/max|ref| = %.2e  (%zu tensors, %.2f s)\n",
                    r.pass ? "PASS" : "FAIL", r.name.c_str(), r.kind.c_str(),
                    backend_name(opt.engine.backend), r.worst_normalised, r.checks.size(), r.seconds);
        std::printf("      convolutions: %s\n", convs_summary(r.convs).c_str());
        if (args->verbose) print_convs(r.convs, "        ");
        for (const TensorCheck& c : r.checks)
          if (args->verbose || !c.pass)
            std::printf("      %-34s %s  err %.3e  max|ref| %.3e  normalised %.2e  bound %.1e%s%s\n",
                        c.name.c_str(), c.pass ? "ok  " : "FAIL", c.max_abs_err, c.max_abs_ref, c.normalised,
                        c.bound, c.problem.empty() ? "" : "  ", c.problem.c_str());
        if (args->verbose && !r.first_departing_block.empty())
          std::printf("      first block departing from the reference: %s (normalised error %.2e)\n",
                      r.first_departing_block.c_str(), r.first_departing_error);
      } catch (const Error& e) {
        const std::string msg = printable(e.what());
        if (args->json) {
          jcases.push_back({{"prefix", p}, {"error", msg}});
        } else {
          std::printf("ERROR %s\n      %s\n", p.c_str(), msg.c_str());
        }
        std::fflush(stdout);
        std::fprintf(stderr, "npcore check: error: %s\n", msg.c_str());
        ++errors;
      }
      std::fflush(stdout);
    }
    const size_t n = cases.size();
    if (args->json) {
      const nlohmann::json out = {{"backend", backend_name(opt.engine.backend)}, {"isa", isa_name(opt.engine.isa)},
                                  {"cpu_isa", isa_name(cpu_isa())}, {"precision", precision_name(opt.engine.precision)},
                                  {"cases", jcases},
                                  {"passed", n - size_t(failed + errors)}, {"failed", failed},
                                  {"errors", errors}, {"worst_normalised", num(worst)}};
      std::printf("%s\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      std::printf("%zu case%s on %s (ISA %s, CPU %s, precision %s): %zu passed, %d failed, %d could not run; worst "
                  "normalised error %.2e\n",
                  n, n == 1 ? "" : "s", backend_name(opt.engine.backend), isa_name(opt.engine.isa),
                  isa_name(cpu_isa()), precision_name(opt.engine.precision), n - size_t(failed + errors), failed,
                  errors, worst);
    }
    status = (failed || errors) ? 1 : 0;
    if (errors == int(n)) status = 2;  // nothing ran
  });
}

}  // namespace npcore::tool
