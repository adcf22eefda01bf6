// `npcore run`, `check` and `bench` on whole models (the fixtures in tests/fixtures/models, so that a
// clone without ../shared runs them): the rates of every data_key equal the PyTorch dump; a shifter
// without pupil positions, an unknown data_key and several sessions into one .npy are refused with one
// line; bench shows the readouts' share.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "tests/test_util.h"
#include "weights/safetensors.h"

using namespace npcore;
using Catch::Matchers::Contains;

#ifdef NPCORE_TOOL_PATH

namespace {

std::string fx(const std::string& name) {
  return test::fixture_dir() + "/models/" + name;
}

}  // namespace

TEST_CASE("model cli: run writes every data_key's rates, equal to PyTorch's", "[model][cli]") {
  test::TempDir dir, logs;
  const std::string c = "model_stacked2d_gaussian_shifter";
  const std::string io = test::quoted(fx(c + ".io.safetensors"));
  const std::string base = "run " + test::quoted(fx(c + ".json")) + " --weights " +
                           test::quoted(fx(c + ".weights.safetensors")) + " --input " + io;
  test::CmdResult r = test::run_npcore(
      base + " --pupil-center " + io + " --output " + test::quoted(dir.file("all.safetensors")), logs);
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Contains("session_a [3, 40], session_b [3, 25]"));
  const SafetensorsFile got = read_safetensors(dir.file("all.safetensors"));
  const SafetensorsFile ref = read_safetensors(fx(c + ".io.safetensors"));
  CHECK(got.tensors.order() == std::vector<std::string>{"session_a", "session_b"});
  for (const char* k : {"session_a", "session_b"}) {
    INFO(k);
    CHECK(test::normalised_error(got.tensors.get_float(k),
                                 ref.tensors.get_float(std::string("output/") + k)) < 1e-5);
  }

  // Bad input: one line on stderr, exit status 2, nothing written.
  r = test::run_npcore(base + " --output " + test::quoted(dir.file("x.safetensors")), logs);
  CHECK(r.status == 2);
  CHECK(r.err_lines() == 1);
  CHECK_THAT(r.err, Contains("has a shifter (MLPShifter): give --pupil-center with shape [3, 2]"));
  r = test::run_npcore(
      base + " --pupil-center " + io + " --data-key session_x --output " + test::quoted(dir.file("x.npy")),
      logs);
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("no data_key 'session_x'; the model has: session_a, session_b"));
  r = test::run_npcore(base + " --pupil-center " + io + " --output " + test::quoted(dir.file("x.npy")), logs);
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("write .safetensors (a tensor per data_key) or pick one with --data-key"));
  CHECK_FALSE(test::file_exists(dir.file("x.npy")));
  CHECK_FALSE(test::file_exists(dir.file("x.safetensors")));
}

TEST_CASE("model cli: check and bench take model descriptions", "[model][cli]") {
  test::TempDir logs;
  test::CmdResult r =
      test::run_npcore("check " + test::quoted(fx("model_rot_pointpooled")) + " --backend reference", logs);
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("PASS") && Contains("RotationEquivariant2dCore+PointPooled2d"));
  r = test::run_npcore("bench " + test::quoted(fx("model_stacked2d_gaussian_cortex.json")) +
                           " --runs 2 --warmup 1 --sessions 3 --neurons 50",
                       logs);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("3 x FullGaussian2d, 150 neurons") && Contains("core alone") &&
                        Contains("whole model") && Contains("of the model") && Contains("core convolutions: "));
  // --input-shape: HxW sets the image; C must be the core's input channels (1 here).
  r = test::run_npcore("bench " + test::quoted(fx("model_stacked2d_gaussian_cortex.json")) +
                           " --runs 1 --warmup 0 --input-shape 1,20,24 --json",
                       logs);
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const nlohmann::json j = nlohmann::json::parse(r.out);
  CHECK(j["height"] == 20);
  CHECK(j["width"] == 24);
  CHECK(j["isa"].is_string());
  REQUIRE(j["convs"].size() >= 1);
  CHECK(j["convs"][0]["input_shape"] == nlohmann::json({1, 1, 20, 24}));
  r = test::run_npcore("bench " + test::quoted(fx("model_stacked2d_gaussian_cortex.json")) +
                           " --runs 1 --warmup 0 --input-shape 2,20,24",
                       logs);
  CHECK(r.status == 2);
  CHECK(r.err_lines() == 1);
  CHECK_THAT(r.err, Contains("C is 2") && Contains("takes 1 input channel"));
}

#endif
