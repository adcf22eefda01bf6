// The npcore command, run as a separate process: bad input gives exit status 2 and one line on stderr
// naming the problem, and no output file; `run` writes what Core::forward computes (.npy and
// .safetensors); `info`, `check`, `demo` and --help work.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdlib>

#include "cores/factory.h"
#include "cores/ref_case.h"
#include "engine/error.h"
#include "tests/test_util.h"
#include "weights/npy.h"
#include "weights/safetensors.h"

using namespace npcore;
using Catch::Matchers::Contains;

#ifdef NPCORE_TOOL_PATH

namespace {

struct Result {
  int status = -1;
  std::string out, err;
};

// Runs `npcore ARGS` with stdout and stderr captured in `logs`.
Result npcore_cmd(const std::string& args, const test::TempDir& logs) {
  const std::string cmd = std::string("'") + NPCORE_TOOL_PATH + "' " + args + " >'" + logs.file("stdout") +
                          "' 2>'" + logs.file("stderr") + "' </dev/null";
  const int rc = std::system(cmd.c_str());
  Result r;
  r.status = rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  r.out = test::read_file(logs.file("stdout"));
  r.err = test::read_file(logs.file("stderr"));
  return r;
}

std::string q(const std::string& path) {
  return "'" + path + "'";
}

const char* kCoreJson = R"({"core": "Stacked2dCore", "config": {"input_channels": 1, "hidden_channels": 4,
    "input_kern": 5, "hidden_kern": 3, "layers": 2}})";

// A work folder with core.json, weights.safetensors (a deterministic init) and input.npy.
struct Workdir {
  test::TempDir dir, logs;
  std::unique_ptr<Core> core = make_core(kCoreJson, "core.json");
  Tensor input = test::random_tensor({2, 1, 12, 14}, 5);

  Workdir() {
    test::write_file(dir.file("core.json"), kCoreJson);
    core->init(11);
    StateDict sd = core->state_dict();
    std::vector<std::pair<std::string, StoredTensor>> list;
    for (const std::string& k : sd.order()) list.emplace_back(k, sd.at(k));
    write_safetensors(dir.file("weights.safetensors"), list);
    write_npy(dir.file("input.npy"), input);
  }
  std::string f(const std::string& name) const { return dir.file(name); }
  Result run(const std::string& args) const { return npcore_cmd(args, logs); }
  // `npcore run` on this folder's config and weights.
  Result run_core(const std::string& input, const std::string& output, const std::string& extra = "") const {
    return run("run " + q(f("core.json")) + " --weights " + q(f("weights.safetensors")) + " --input " +
               q(input) + " --output " + q(output) + " " + extra);
  }
  Tensor forward(const Tensor& x, Backend b) const {
    EngineOptions opt;
    opt.backend = b;
    core->prepare(opt);
    return core->forward(x);
  }
};

// Exit status 2, exactly one line on stderr holding every word, nothing written to `output`.
void expect_failure(const Result& r, const std::vector<std::string>& words, const std::string& output = "") {
  INFO("stderr: " << r.err << "stdout: " << r.out);
  CHECK(r.status == 2);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK_THAT(r.err, Contains("npcore: error: "));
  for (const auto& w : words) CHECK_THAT(r.err, Contains(w));
  if (!output.empty()) CHECK_FALSE(test::file_exists(output));
}

}  // namespace

TEST_CASE("cli: --help of the command and of each subcommand exits 0", "[cli]") {
  test::TempDir logs;
  Result r = npcore_cmd("--help", logs);
  CHECK(r.status == 0);
  for (const char* sub : {"run", "check", "info", "demo"}) CHECK_THAT(r.out, Contains(sub));
  r = npcore_cmd("run --help", logs);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("--weights") && Contains("--input") && Contains("--output") &&
                        Contains("--backend") && Contains("--threads") && Contains("--no-fuse") &&
                        Contains("(C, H, W)"));
  r = npcore_cmd("demo --help", logs);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("--batch") && Contains("--backend") && Contains("--threads"));
  r = npcore_cmd("", logs);
  CHECK(r.status == 2);  // a subcommand is required
}

TEST_CASE("cli: run refuses bad input with one line naming the problem and writes nothing", "[cli]") {
  Workdir w;
  const std::string out = w.f("out.npy");
  SECTION("missing config file") {
    expect_failure(w.run("run " + q(w.f("absent.json")) + " --weights " + q(w.f("weights.safetensors")) +
                         " --input " + q(w.f("input.npy")) + " --output " + q(out)),
                   {"absent.json", "cannot open"}, out);
  }
  SECTION("malformed JSON") {
    test::write_file(w.f("core.json"), "{\"core\": \"Stacked2dCore\",\n \"config\": {\"input_channels\": 1,");
    expect_failure(w.run_core(w.f("input.npy"), out), {"core.json", "not valid JSON"}, out);
  }
  SECTION("unknown config key") {
    test::write_file(w.f("core.json"), R"({"core": "Stacked2dCore", "config": {"input_channels": 1,
        "hidden_channels": 4, "input_kern": 5, "hidden_kern": 3, "layers": 2, "hiden_kern": 3}})");
    expect_failure(w.run_core(w.f("input.npy"), out),
                   {"core.json", "unknown key 'hiden_kern'", "accepted keys"}, out);
  }
  SECTION("wrong input channel count") {
    write_npy(w.f("rgb.npy"), test::random_tensor({1, 3, 12, 14}, 1));
    expect_failure(w.run_core(w.f("rgb.npy"), out), {"rgb.npy", "3 channels", "takes 1"}, out);
  }
  SECTION("input neither 3-D nor 4-D") {
    write_npy(w.f("x5.npy"), test::random_tensor({1, 1, 1, 12, 14}, 1));
    expect_failure(w.run_core(w.f("x5.npy"), out), {"x5.npy", "[1, 1, 1, 12, 14]", "(N, C, H, W)"}, out);
  }
  SECTION("input image too small for the kernels") {
    write_npy(w.f("tiny.npy"), test::random_tensor({1, 1, 2, 2}, 1));
    test::write_file(w.f("core.json"), R"({"core": "Stacked2dCore", "config": {"input_channels": 1,
        "hidden_channels": 4, "input_kern": 5, "hidden_kern": 3, "layers": 2, "pad_input": false}})");
    expect_failure(w.run_core(w.f("tiny.npy"), out), {"tiny.npy", "features.layer0.conv", "smaller"}, out);
  }
  SECTION("missing weights key") {
    StateDict sd = load_weights_file(w.f("weights.safetensors"));
    std::vector<std::pair<std::string, StoredTensor>> list;
    for (const std::string& k : sd.order())
      if (k != "features.layer1.conv.bias") list.emplace_back(k, sd.at(k));
    write_safetensors(w.f("weights.safetensors"), list);
    expect_failure(w.run_core(w.f("input.npy"), out),
                   {"weights.safetensors", "missing (1)", "features.layer1.conv.bias [4]"}, out);
  }
  SECTION("a safetensors input with several tensors, none named 'input'") {
    write_safetensors(w.f("in.safetensors"), {{"a", w.input}, {"b", w.input}});
    expect_failure(w.run_core(w.f("in.safetensors"), out), {"in.safetensors", "'a', 'b'", "named 'input'"},
                   out);
  }
  SECTION("a truncated .npy input") {
    const std::string bytes = test::read_file(w.f("input.npy"));
    test::write_file(w.f("cut.npy"), bytes.substr(0, bytes.size() - 10));
    expect_failure(w.run_core(w.f("cut.npy"), out), {"cut.npy", "truncated"}, out);
  }
  SECTION("an unsupported output type or folder") {
    expect_failure(w.run_core(w.f("input.npy"), w.f("out.txt")), {"out.txt", "unsupported output"},
                   w.f("out.txt"));
    expect_failure(w.run_core(w.f("input.npy"), w.f("nowhere/out.npy")), {"nowhere", "does not exist"});
  }
  SECTION("an unknown backend") {
    expect_failure(w.run_core(w.f("input.npy"), out, "--backend cuda"), {"'cuda'", "reference"}, out);
  }
  // Whatever failed, only the files put there are left: no output, no temporary file.
  const auto entries = w.dir.entries();
  for (const std::string& e : entries) {
    INFO(e);
    CHECK((e == "core.json" || e == "weights.safetensors" || e == "input.npy" ||
           e.find(".npy") != std::string::npos || e == "in.safetensors"));
    CHECK(e.find(".tmp") == std::string::npos);
    CHECK(e.rfind("out", 0) != 0);
  }
}

TEST_CASE("cli: run writes .npy and .safetensors outputs equal to Core::forward", "[cli]") {
  for (Backend b : all_backends()) {
    DYNAMIC_SECTION("on " << backend_name(b)) {
      Workdir w;
      const std::string backend = std::string("--backend ") + backend_name(b);
      Result r = w.run_core(w.f("input.npy"), w.f("out.npy"), backend);
      INFO("stderr: " << r.err);
      REQUIRE(r.status == 0);
      CHECK_THAT(r.out, Contains("out.npy") && Contains("[2, 8, 12, 14]"));
      const Tensor expected = w.forward(w.input, b);
      CHECK(test::normalised_error(read_npy(w.f("out.npy")), expected) <= 1e-6);

      // Options before the positional, and a safetensors output with metadata.
      r = w.run("run " + backend + " -q --output " + q(w.f("out.safetensors")) + " --input " +
                q(w.f("input.npy")) + " --weights " + q(w.f("weights.safetensors")) + " " +
                q(w.f("core.json")));
      REQUIRE(r.status == 0);
      CHECK(r.out.empty());
      SafetensorsFile f = read_safetensors(w.f("out.safetensors"));
      CHECK(f.tensors.order() == std::vector<std::string>{"output"});
      CHECK(test::normalised_error(f.tensors.get_float("output"), expected) <= 1e-6);
      CHECK(f.metadata.at("core") == "Stacked2dCore");
      CHECK(f.metadata.at("config") == w.f("core.json"));

      // Unfused gives the same within float rounding.
      r = w.run_core(w.f("input.npy"), w.f("unfused.npy"), backend + " --no-fuse --threads 1");
      REQUIRE(r.status == 0);
      CHECK(test::normalised_error(read_npy(w.f("unfused.npy")), expected) <= 1e-5);
    }
  }
}

TEST_CASE("cli: run takes a 3-D input as one image and safetensors inputs", "[cli]") {
  Workdir w;
  const Tensor image = w.input.batch(1, 1).clone();
  write_npy(w.f("chw.npy"), image.reshape({1, 12, 14}));
  Result r = w.run_core(w.f("chw.npy"), w.f("one.npy"), "--backend reference");
  INFO("stderr: " << r.err);
  REQUIRE(r.status == 0);
  const Tensor one = read_npy(w.f("one.npy"));
  CHECK(one.shape() == Shape{1, 8, 12, 14});
  CHECK(test::normalised_error(one, w.forward(image, Backend::Reference)) <= 1e-6);

  // The tensor named 'input' among others, or the only tensor whatever its name.
  write_safetensors(w.f("io.safetensors"), {{"output", image}, {"input", w.input}});
  r = w.run_core(w.f("io.safetensors"), w.f("a.npy"), "--backend reference");
  REQUIRE(r.status == 0);
  CHECK(read_npy(w.f("a.npy")).shape() == Shape{2, 8, 12, 14});
  write_safetensors(w.f("only.safetensors"), {{"images", image}});
  r = w.run_core(w.f("only.safetensors"), w.f("b.npy"), "--backend reference");
  REQUIRE(r.status == 0);
  CHECK(read_npy(w.f("b.npy")).shape() == Shape{1, 8, 12, 14});
}

TEST_CASE("cli: a failed run keeps an existing output file intact", "[cli]") {
  Workdir w;
  test::write_file(w.f("out.npy"), "old");
  write_npy(w.f("rgb.npy"), test::random_tensor({1, 3, 12, 14}, 1));
  Result r = w.run_core(w.f("rgb.npy"), w.f("out.npy"), "--backend reference");
  CHECK(r.status == 2);
  CHECK(test::read_file(w.f("out.npy")) == "old");
}

TEST_CASE("cli: info lists the tensors of a file", "[cli]") {
  Workdir w;
  Result r = w.run("info " + q(w.f("weights.safetensors")));
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("features.layer0.conv.weight") && Contains("F32") && Contains("[4, 1, 5, 5]") &&
                        Contains("tensors"));
  r = w.run("info " + q(w.f("absent.safetensors")));
  expect_failure(r, {"absent.safetensors"});
}

TEST_CASE("cli: check passes a reference case", "[cli]") {
  test::TempDir logs;
  const std::string prefix = test::fixture_dir() + "/stacked2d_strides";
  Result r = npcore_cmd("check " + q(prefix) + " --backend reference", logs);
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("PASS") && Contains("stacked2d_strides") && Contains("1 passed, 0 failed"));
  r = npcore_cmd("check " + q(test::fixture_dir() + "/absent_case") + " --backend reference", logs);
  CHECK(r.status != 0);
}

TEST_CASE("cli: demo runs the notebook's cores and says how to load weights", "[cli]") {
  test::TempDir logs;
  Result r = npcore_cmd("demo --backend reference --batch 1 --runs 1", logs);
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("Stacked2dCore") && Contains("SE2dCore") && Contains("latency") &&
                        Contains("npcore run") &&
                        Contains("npcore convert vgg16-397923af.pth vgg16.safetensors --features-only"));
  // Both cores print the notebook's output shape (for a batch of one).
  const std::string shape = "output shape: [1, 64, 144, 256]";
  const size_t first = r.out.find(shape);
  REQUIRE(first != std::string::npos);
  CHECK(r.out.find(shape, first + 1) != std::string::npos);
}

#else

TEST_CASE("cli: the npcore tool was not built (NPCORE_BUILD_TOOLS=OFF)", "[cli]") {
  WARN("npcore was not built: the command-line tests did not run");
}

#endif
