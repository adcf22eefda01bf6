// The npcore command, run as a separate process: bad input and command-line mistakes give exit status 2
// and one line on stderr naming the problem (and the subcommand's help), and no output file; `run` writes
// exactly what Core::forward computes (.npy and .safetensors); `info` lists safetensors, .pth and .npy
// files from their headers; `check` exits 0/1/2 as documented; `convert`, `demo` and --help work.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "cores/factory.h"
#include "cores/ref_case.h"
#include "engine/error.h"
#include "engine/isa.h"
#include "tests/test_util.h"
#include "weights/npy.h"
#include "npcore/version.h"
#include "weights/safetensors.h"
#include "weights/weights_file.h"

using namespace npcore;
using Catch::Matchers::Contains;

#ifdef NPCORE_TOOL_PATH

namespace {

using Result = test::CmdResult;
using test::quoted;

Result npcore_cmd(const std::string& args, const test::TempDir& logs) {
  return test::run_npcore(args, logs);
}

std::string q(const std::string& path) {
  return quoted(path);
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
  CHECK(r.err_lines() == 1);
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
      // The command and Core::forward run the same plan on the same backend and thread count: equal.
      const Tensor expected = w.forward(w.input, b);
      CHECK(test::normalised_error(read_npy(w.f("out.npy")), expected) == 0.0);

      // Options before the positional, and a safetensors output with metadata.
      r = w.run("run " + backend + " -q --output " + q(w.f("out.safetensors")) + " --input " +
                q(w.f("input.npy")) + " --weights " + q(w.f("weights.safetensors")) + " " +
                q(w.f("core.json")));
      REQUIRE(r.status == 0);
      CHECK(r.out.empty());
      SafetensorsFile f = read_safetensors(w.f("out.safetensors"));
      CHECK(f.tensors.order() == std::vector<std::string>{"output"});
      CHECK(test::normalised_error(f.tensors.get_float("output"), expected) == 0.0);
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
  CHECK(test::normalised_error(one, w.forward(image, Backend::Reference)) == 0.0);

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

TEST_CASE("cli: --version prints the project's version; info and check --json print one JSON object", "[cli]") {
  Workdir w;
  Result r = w.run("--version");
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains(std::string("npcore ") + NPCORE_VERSION_STRING));
  r = w.run("info --json " + q(w.f("weights.safetensors")));
  REQUIRE(r.status == 0);
  const nlohmann::json info = nlohmann::json::parse(r.out);
  CHECK(info["format"] == "safetensors");
  bool found = false;
  for (const auto& t : info["tensors"])
    if (t["name"] == "features.layer0.conv.weight") found = t["shape"] == nlohmann::json({4, 1, 5, 5});
  CHECK(found);
  const std::string ref = q(test::fixture_dir() + "/stacked2d_strides");
  r = w.run("check --json --backend gemm " + ref + " " + q(w.f("absent")));
  CHECK(r.status == 1);
  const nlohmann::json check = nlohmann::json::parse(r.out);
  CHECK(check["passed"] == 1);
  CHECK(check["errors"] == 1);
  REQUIRE(check["cases"].size() == 2);
  CHECK(check["cases"][0]["pass"] == true);
  CHECK(check["cases"][0]["first_departing_block"].is_null());
  CHECK(check["cases"][0]["checks"].size() == 4);
  // Each case lists the convolutions it ran: stacked2d_strides has 3 (one per block), on gemm.
  CHECK(check["backend"] == "gemm");
  CHECK(check["isa"].is_string());
  REQUIRE(check["cases"][0]["convs"].size() == 3);
  CHECK(check["cases"][0]["convs"][0]["layer"] == "features.layer0.conv");
  for (const auto& c : check["cases"][0]["convs"]) {
    CHECK(c["algorithm"] == "gemm");
    CHECK(c["backend"] == "gemm");
    CHECK(c["kernel"].size() == 2);
    CHECK(c["input_shape"].size() == 4);
  }
  CHECK_THAT(check["cases"][1]["error"].get<std::string>(), Contains("absent"));
}

TEST_CASE("cli: check exits 0 when every case passes, 1 when some fail or cannot run, 2 when none runs",
          "[cli]") {
  test::TempDir dir, logs;
  const std::string pass = test::fixture_dir() + "/stacked2d_strides";
  // A copy of the case whose reference output is off by 1e-3 of its range: over the 1e-4 bound.
  const std::string fail = dir.file("stacked2d_strides_off");
  for (const char* suffix : {".json", ".weights.safetensors"})
    test::write_file(fail + suffix, test::read_file(pass + suffix));
  {
    const SafetensorsFile io = read_safetensors(pass + ".io.safetensors");
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const std::string& n : io.tensors.order()) {
      Tensor t = io.tensors.get_float(n);
      if (n == "output") {
        float m = 0;
        for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::fabs(t.data()[i]));
        t.data()[0] += 1e-3f * std::max(m, 1.0f);
      }
      tensors.emplace_back(n, t);
    }
    write_safetensors(fail + ".io.safetensors", tensors);
  }
  const std::string absent = dir.file("absent_case");
  const std::string opts = " --backend reference --threads 1";

  Result r = npcore_cmd("check " + q(pass) + opts, logs);
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.err.empty());
  CHECK_THAT(r.out, Contains("PASS") && Contains("stacked2d_strides") && Contains("1 passed, 0 failed"));
  CHECK_THAT(r.out, Contains("convolutions: 3 reference"));
  r = npcore_cmd("check -v " + q(pass) + " --threads 1", logs);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("features.layer0.conv") && Contains("Conv2d(1, "));

  r = npcore_cmd("check " + q(pass) + " " + q(fail) + opts, logs);
  CHECK(r.status == 1);
  CHECK_THAT(r.out,
             Contains("FAIL  stacked2d_strides_off") && Contains("1 passed, 1 failed, 0 could not run"));

  // A case that cannot run is reported on stdout with the others and on stderr.
  r = npcore_cmd("check " + q(pass) + " " + q(absent) + opts, logs);
  CHECK(r.status == 1);
  CHECK_THAT(r.out, Contains("ERROR") && Contains("1 passed, 0 failed, 1 could not run"));
  CHECK(r.err_lines() == 1);
  CHECK_THAT(r.err, Contains("npcore check: error: ") && Contains("absent_case.json"));

  r = npcore_cmd("check " + q(absent) + " " + q(dir.file("other_absent")) + opts, logs);
  CHECK(r.status == 2);
  CHECK(r.err_lines() == 2);
  CHECK_THAT(r.out, Contains("0 passed, 0 failed, 2 could not run"));

  // The exit statuses are documented in the command's help.
  r = npcore_cmd("check --help", logs);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("Exit status: 0 every case passed; 1 some case failed or could not run") &&
                        Contains("2 no case could run"));
}

TEST_CASE("cli: command-line mistakes are one line on stderr naming the subcommand's help", "[cli]") {
  test::TempDir logs;
  const std::string huge = "1" + std::string(300, '0');
  struct Case {
    std::string args, sub, words;
  };
  const Case cases[] = {
      {"run", "run", "config is required"},
      {"run core.json -w w.safetensors -i x.npy -o y.npy --threads " + huge, "run",
       "--threads: must be an integer from 0 to 1024"},
      {"run core.json -w w.safetensors -i x.npy -o y.npy --threads 1025", "run", "got '1025'"},
      {"run core.json -w w.safetensors -i x.npy -o y.npy --threads -1", "run", "--threads"},
      {"run core.json -w w.safetensors -i x.npy -o y.npy --bogus", "run", "--bogus"},
      {"check", "check", "prefix is required"},
      {"convert", "convert", "required"},
      {"bench core.json --runs 0", "bench", "--runs"},
      {"bench core.json --batch " + huge, "bench", "digits"},
      {"demo --batch 0", "demo", "--batch"},
      {"--bogus", "", "subcommand"},
  };
  for (const Case& c : cases) {
    INFO("npcore " << c.args.substr(0, 80));
    const Result r = npcore_cmd(c.args, logs);
    INFO("stderr: " << r.err);
    CHECK(r.status == 2);
    CHECK(r.err_lines() == 1);
    CHECK(r.err.size() < 400);
    const std::string cmd = c.sub.empty() ? "npcore" : "npcore " + c.sub;
    CHECK_THAT(r.err,
               Contains(cmd + ": error: ") && Contains("see '" + cmd + " --help'") && Contains(c.words));
    CHECK(r.out.empty());
  }
}

TEST_CASE("cli: info lists a .pth and a .npy from their headers, names escaped", "[cli]") {
  test::TempDir logs;
  Result r = npcore_cmd("info " + q(test::fixture_dir() + "/pth/layouts.pth"), logs);
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("transposed") && Contains("F32") && Contains("[6, 4]") && Contains("half") &&
                        Contains("F16") && Contains("13 tensors") && Contains("(pytorch zip)"));
  // The CRC is a property of the data, which info does not read.
  r = npcore_cmd("info " + q(test::fixture_dir() + "/pth/bad_crc.pth"), logs);
  CHECK(r.status == 0);
  // A tensor expanded from 4 bytes to 2 GiB is refused from its shape alone.
  r = npcore_cmd("info " + q(test::fixture_dir() + "/pth/expand.pth"), logs);
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("expand.pth") && Contains("2147483648 bytes from 4 bytes"));
  r = npcore_cmd("info " + q(test::fixture_dir() + "/npy/f4_2x3x4.npy"), logs);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("(array)") && Contains("F32") && Contains("[2, 3, 4]") && Contains("96 bytes"));

  test::TempDir dir;
  write_safetensors(dir.file("evil.safetensors"), {{"a\nb\x1b[2J", Tensor({2})}});
  r = npcore_cmd("info " + q(dir.file("evil.safetensors")), logs);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("a\\nb\\x1b[2J"));
  CHECK(r.out.find('\x1b') == std::string::npos);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 2);
}

TEST_CASE("cli: run names the file and tensor of an input of rank above 6", "[cli]") {
  Workdir w;
  StoredTensor t;
  const float one = 1.0f;
  t.dtype = DType::F32;
  t.shape = {1, 1, 1, 1, 1, 1, 1};
  t.data = reinterpret_cast<const uint8_t*>(&one);
  t.nbytes = 4;
  write_safetensors(w.f("r7.safetensors"), std::vector<std::pair<std::string, StoredTensor>>{{"input", t}});
  expect_failure(w.run_core(w.f("r7.safetensors"), w.f("out.npy")),
                 {"r7.safetensors", "tensor 'input' [1, 1, 1, 1, 1, 1, 1]", "7 dimensions"}, w.f("out.npy"));
}

TEST_CASE("cli: convert writes safetensors, refuses mismatches and existing files, leaves nothing on failure",
          "[cli][convert]") {
  test::TempDir dir, logs;
  const std::string in = test::fixture_dir() + "/pth/layouts.pth";
  // Options after and before the positionals.
  Result r = npcore_cmd("convert " + q(in) + " " + q(dir.file("a.safetensors")), logs);
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("a.safetensors") && Contains("13 tensors") && Contains("pytorch zip"));
  const SafetensorsFile a = read_safetensors(dir.file("a.safetensors"));
  CHECK(a.tensors.order() == read_state_dict(in).tensors.order());
  CHECK(a.metadata.at("source") == "layouts.pth");
  r = npcore_cmd("convert -q --force " + q(in) + " " + q(dir.file("b.safetensors")), logs);
  CHECK(r.status == 0);
  CHECK(r.out.empty());
  CHECK(test::read_file(dir.file("b.safetensors")) == test::read_file(dir.file("a.safetensors")));

  // An existing output is kept unless --force.
  r = npcore_cmd("convert " + q(in) + " " + q(dir.file("a.safetensors")), logs);
  expect_failure(r, {"a.safetensors", "already exists; use --force"});
  r = npcore_cmd("convert " + q(in) + " --force " + q(dir.file("a.safetensors")), logs);
  CHECK(r.status == 0);

  // --model checks the features against the torchvision model and refuses a mismatch, listing problems.
  StateDict sd("vgg-like");
  sd.add_float("features.0.weight", Tensor({64, 3, 5, 5}));
  sd.add_float("features.0.bias", Tensor({64}));
  std::vector<std::pair<std::string, StoredTensor>> list;
  for (const std::string& k : sd.order()) list.emplace_back(k, sd.at(k));
  write_safetensors(dir.file("vgg_like.safetensors"), list);
  r = npcore_cmd(
      "convert --model vgg16 " + q(dir.file("vgg_like.safetensors")) + " " + q(dir.file("m.safetensors")),
      logs);
  expect_failure(r,
                 {"vgg_like.safetensors", "do not match torchvision vgg16.features",
                  "features.0.weight: shape [64, 3, 5, 5], vgg16 has [64, 3, 3, 3]"},
                 dir.file("m.safetensors"));
  r = npcore_cmd("convert " + q(dir.file("vgg_like.safetensors")) + " " + q(dir.file("m.safetensors")) +
                     " --model alexnet2",
                 logs);
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("npcore convert: error: ") && Contains("--model"));

  // Refused inputs exit 2 and leave neither the output nor a temporary file.
  for (const char* bad : {"evil_os_system.pth", "expand.pth", "bad_crc.pth", "truncated.pth"}) {
    INFO(bad);
    r = npcore_cmd("convert " + q(test::fixture_dir() + "/pth/" + bad) + " " + q(dir.file("x.safetensors")),
                   logs);
    expect_failure(r, {bad}, dir.file("x.safetensors"));
  }
  r = npcore_cmd("convert " + q(dir.file("absent.pth")) + " " + q(dir.file("x.safetensors")), logs);
  CHECK(r.status == 2);
  CHECK(r.err_lines() == 1);
  CHECK(dir.entries() == std::vector<std::string>{"a.safetensors", "b.safetensors", "vgg_like.safetensors"});
}

TEST_CASE("cli: demo runs the notebook's cores and says how to load weights", "[cli]") {
  test::TempDir logs;
  Result r = npcore_cmd("demo --backend reference --batch 1 --runs 1", logs);
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("Stacked2dCore") && Contains("SE2dCore") && Contains("latency") &&
                        Contains("Whole model") && Contains("rates [1, 1000]") &&
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

TEST_CASE("cli: info without a file prints the CPU's ISA and the engine's, and --isa is checked", "[cli][isa]") {
  test::TempDir logs;
  const test::CmdResult r = test::run_npcore("info", logs);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains(std::string("cpu isa: ") + isa_name(cpu_isa())));
  CHECK_THAT(r.out, Contains("engine isa: "));
  CHECK_THAT(r.out, Contains("kernels built: generic"));
  const test::CmdResult j = test::run_npcore("info --json", logs);
  REQUIRE(j.status == 0);
  const nlohmann::json info = nlohmann::json::parse(j.out);
  CHECK(info["cpu_isa"] == isa_name(cpu_isa()));
  CHECK(info["engine_isa"] == isa_name(resolve_isa(Isa::Auto)));
  CHECK(info["cpu_model"].is_string());
  REQUIRE(info["kernels"].size() >= 1);
  CHECK(info["kernels"][0] == "generic");
  bool engine_runnable = false;
  for (const auto& k : info["runnable"]) engine_runnable |= k == info["engine_isa"];
  CHECK(engine_runnable);
  const test::CmdResult bad = test::run_npcore("check x.json --isa sse9", logs);
  CHECK(bad.status == 2);
  CHECK(bad.err_lines() == 1);
  CHECK_THAT(bad.err, Contains("--isa") && Contains("sse9"));
  if (!cpu_supports(Isa::Avx512)) {
    const test::CmdResult lacking = test::run_npcore("check x.json --isa avx512", logs);
    CHECK(lacking.status == 2);
    CHECK_THAT(lacking.err, Contains("avx512") && Contains("not supported by this CPU"));
  }
}
