// `npcore bench`, run as a separate process on tiny cores: the text report names every quantity, --json
// is one object with the fields scripts read and values that agree with each other and with the core's
// convolution FLOPs counted by hand (direct-equivalent, and labelled so), --layers adds one row per
// block, and bad input exits 2 with one line. No timing is asserted (the machine is shared): only that
// times are positive and their order statistics ordered.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/test_util.h"

using Catch::Matchers::Contains;
using nlohmann::json;

#ifdef NPCORE_TOOL_PATH

namespace {

using Result = npcore::test::CmdResult;

// Runs `npcore bench ARGS` with stdout and stderr captured in `dir`.
Result bench_cmd(const std::string& args, const npcore::test::TempDir& dir) {
  return npcore::test::run_npcore("bench " + args, dir);
}

// A 2-layer Stacked2dCore on 12x14 images: layer0 is a 5x5 1->4 conv, layer1 a 3x3 4->4 conv, both
// padded to keep the size, so one image costs 2 * 12*14 * (4*1*25 + 4*4*9) FLOPs of convolution.
const char* kTinyCore = R"({"core": "Stacked2dCore", "config": {"input_channels": 1, "hidden_channels": 4,
    "input_kern": 5, "hidden_kern": 3, "layers": 2, "pad_input": true}, "input_shape": [1, 1, 12, 14], "seed": 7})";
constexpr double kTinyFlopsPerImage = 2.0 * 12 * 14 * (4 * 1 * 25 + 4 * 4 * 9);

const char* kCommon = " --runs 2 --warmup 1 --peak-repeats 1 --threads 1";

std::string q(const std::string& path) {
  return npcore::test::quoted(path);
}

void expect_failure(const Result& r, const std::vector<std::string>& words) {
  INFO("stderr: " << r.err << "stdout: " << r.out);
  CHECK(r.status == 2);
  CHECK(r.err_lines() == 1);
  CHECK_THAT(r.err, Contains("npcore: error: "));
  for (const auto& w : words) CHECK_THAT(r.err, Contains(w));
  CHECK(r.out.empty());
}

}  // namespace

TEST_CASE("bench: the text report names latency, per-image time, GFLOP, peak and RSS", "[bench]") {
  npcore::test::TempDir dir;
  npcore::test::write_file(dir.file("core.json"), kTinyCore);
  const Result r = bench_cmd(q(dir.file("core.json")) + kCommon, dir);
  INFO("stdout: " << r.out << "stderr: " << r.err);
  REQUIRE(r.status == 0);
  CHECK(r.err.empty());
  for (const char* word : {"Stacked2dCore", "native backend", "1 thread", "[1, 1, 12, 14]", "seed 7",
                           "1 warm-up, 2 timed", "median", "min", "p99", "per image", "GFLOP per batch",
                           "GFLOP/s", "of peak", "FMA peak", "peak RSS", "direct-equivalent"})
    CHECK_THAT(r.out, Contains(word));
  CHECK_THAT(r.out, !Contains("per block"));
}

TEST_CASE("bench: GFLOP are labelled direct-equivalent, and --no-winograd is reported", "[bench]") {
  npcore::test::TempDir dir;
  npcore::test::write_file(dir.file("core.json"), kTinyCore);
  Result r = bench_cmd(q(dir.file("core.json")) + kCommon + " --json", dir);
  REQUIRE(r.status == 0);
  json j = json::parse(r.out);
  CHECK(j["flops_basis"] == "direct-equivalent");
  r = bench_cmd(q(dir.file("core.json")) + kCommon + " --json --no-winograd", dir);
  REQUIRE(r.status == 0);
  j = json::parse(r.out);
  CHECK(j["winograd"] == false);
  CHECK(j["flops_basis"] == "direct-equivalent");
  CHECK(double(j["gflop"]) == Approx(kTinyFlopsPerImage / 1e9).epsilon(1e-9));  // the count does not change
  r = bench_cmd(q(dir.file("core.json")) + kCommon + " --no-winograd", dir);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Contains("native backend (no Winograd)") && !Contains("note: the native backend ran"));
  r = bench_cmd(q(dir.file("core.json")) + kCommon + " --backend gemm --json", dir);
  REQUIRE(r.status == 0);
  CHECK(json::parse(r.out)["winograd"] == false);
}

TEST_CASE("bench: --json has every required field with consistent values", "[bench]") {
  npcore::test::TempDir dir;
  npcore::test::write_file(dir.file("core.json"), kTinyCore);
  const Result r = bench_cmd(q(dir.file("core.json")) + kCommon + " --batch 3 --backend gemm --json", dir);
  INFO("stdout: " << r.out << "stderr: " << r.err);
  REQUIRE(r.status == 0);
  const json j = json::parse(r.out);  // one object, nothing else on stdout
  REQUIRE(j.is_object());
  for (const char* key : {"core", "batch", "threads", "backend", "median_ms", "min_ms", "p99_ms", "gflop",
                          "gflops", "peak_gflops", "peak_fraction", "peak_rss_mb", "per_image_ms"})
    CHECK(j.contains(key));
  CHECK(j["core"] == "Stacked2dCore");
  CHECK(j["batch"] == 3);
  CHECK(j["threads"] == 1);
  CHECK(j["backend"] == "gemm");
  CHECK(j["height"] == 12);
  CHECK(j["width"] == 14);
  CHECK(j["runs"] == 2);
  CHECK(j["times_ms"].size() == 2);
  const double med = j["median_ms"], lo = j["min_ms"], p99 = j["p99_ms"], hi = j["max_ms"];
  CHECK(lo > 0);
  CHECK(lo <= med);
  CHECK(med <= p99);
  CHECK(p99 <= hi);
  CHECK(double(j["per_image_ms"]) == Approx(med / 3));
  CHECK(double(j["gflop"]) == Approx(3 * kTinyFlopsPerImage / 1e9).epsilon(1e-9));
  CHECK(double(j["gflops"]) == Approx(double(j["gflop"]) / (med / 1e3)).epsilon(1e-9));
  CHECK(double(j["peak_gflops"]) > 0);
  CHECK(double(j["peak_fraction"]) == Approx(double(j["gflops"]) / double(j["peak_gflops"])).epsilon(1e-9));
  CHECK(double(j["peak_rss_mb"]) > 1);
  CHECK(double(j["peak_rss_mb"]) < 1e5);
  CHECK_FALSE(j.contains("layers"));
}

TEST_CASE("bench: --layers reports each block, and their FLOPs add up to the core's", "[bench]") {
  npcore::test::TempDir dir;
  npcore::test::write_file(dir.file("core.json"), kTinyCore);
  const Result r =
      bench_cmd(q(dir.file("core.json")) + kCommon + " --layers --json --height 10 --width 9", dir);
  INFO("stdout: " << r.out << "stderr: " << r.err);
  REQUIRE(r.status == 0);
  const json j = json::parse(r.out);
  CHECK(j["height"] == 10);
  CHECK(j["width"] == 9);
  REQUIRE(j["layers"].size() == 2);
  CHECK(j["layers"][0]["block"] == "features.layer0");
  CHECK(j["layers"][1]["block"] == "features.layer1");
  CHECK(double(j["layers"][0]["gflop"]) == Approx(2.0 * 10 * 9 * 4 * 25 / 1e9).epsilon(1e-9));
  CHECK(double(j["layers"][1]["gflop"]) == Approx(2.0 * 10 * 9 * 4 * 4 * 9 / 1e9).epsilon(1e-9));
  for (const json& l : j["layers"]) CHECK(double(l["median_ms"]) > 0);

  const Result text = bench_cmd(q(dir.file("core.json")) + kCommon + " --layers", dir);
  REQUIRE(text.status == 0);
  CHECK_THAT(text.out, Contains("per block") && Contains("features.layer0") && Contains("features.layer1"));
}

TEST_CASE("bench: a pretrained TransferLearningCore is timed with random weights and says so", "[bench]") {
  npcore::test::TempDir dir;
  npcore::test::write_file(dir.file("tl.json"), R"({"core": "TransferLearningCore", "config": {
      "input_channels": 1, "tl_model_name": "vgg11", "layers": 3}})");  // pretrained defaults to true
  Result r = bench_cmd(q(dir.file("tl.json")) + kCommon + " --height 16 --width 16 --json", dir);
  INFO("stdout: " << r.out << "stderr: " << r.err);
  REQUIRE(r.status == 0);
  const json j = json::parse(r.out);
  CHECK(j["core"] == "TransferLearningCore");
  CHECK(j["pretrained_overridden"] == true);
  // vgg11[:3] holds one conv, 3->64 3x3; the engine folds the repeated grayscale input into it (1->64).
  CHECK(double(j["gflop"]) == Approx(2.0 * 16 * 16 * 64 * 1 * 9 / 1e9).epsilon(1e-9));
  r = bench_cmd(q(dir.file("tl.json")) + kCommon + " --height 16 --width 16", dir);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Contains("pretrained: true taken as pretrained: false"));
}

TEST_CASE("bench: bad configs and options exit 2 with one line naming the problem", "[bench]") {
  npcore::test::TempDir dir;
  npcore::test::write_file(dir.file("core.json"), kTinyCore);
  SECTION("missing file") {
    expect_failure(bench_cmd(q(dir.file("absent.json")) + kCommon, dir), {"absent.json"});
  }
  SECTION("malformed JSON") {
    npcore::test::write_file(dir.file("bad.json"), "{\"core\": \"Stacked2dCore\", \"config\": {");
    expect_failure(bench_cmd(q(dir.file("bad.json")) + kCommon, dir), {"bad.json", "not valid JSON"});
  }
  SECTION("unknown core") {
    npcore::test::write_file(dir.file("bad.json"), R"({"core": "Stacked3dCore", "config": {}})");
    expect_failure(bench_cmd(q(dir.file("bad.json")) + kCommon, dir), {"bad.json", "Stacked3dCore"});
  }
  SECTION("unknown config key") {
    npcore::test::write_file(dir.file("bad.json"),
                             R"({"core": "Stacked2dCore", "config": {"input_channels": 1,
        "hidden_channels": 4, "input_kern": 5, "hidden_kern": 3, "layers": 2, "hiden_kern": 3}})");
    expect_failure(bench_cmd(q(dir.file("bad.json")) + kCommon, dir), {"bad.json", "hiden_kern"});
  }
  SECTION("malformed input_shape") {
    npcore::test::write_file(dir.file("bad.json"),
                             R"({"core": "Stacked2dCore", "config": {"input_channels": 1,
        "hidden_channels": 4, "input_kern": 5, "hidden_kern": 3, "layers": 2}, "input_shape": [1, 12, 14]})");
    expect_failure(bench_cmd(q(dir.file("bad.json")) + kCommon, dir),
                   {"bad.json", "input_shape", "[N, C, H, W]"});
  }
  SECTION("image too small for the kernels") {
    npcore::test::write_file(dir.file("bad.json"),
                             R"({"core": "Stacked2dCore", "config": {"input_channels": 1,
        "hidden_channels": 4, "input_kern": 5, "hidden_kern": 3, "layers": 2, "pad_input": false}})");
    expect_failure(bench_cmd(q(dir.file("bad.json")) + kCommon + " --height 3 --width 3", dir),
                   {"features.layer0.conv"});
  }
  SECTION("unknown backend") {
    expect_failure(bench_cmd(q(dir.file("core.json")) + kCommon + " --backend cuda", dir),
                   {"cuda", "native"});
  }
  SECTION("zero runs") {
    const Result r = bench_cmd(q(dir.file("core.json")) + " --runs 0", dir);
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Contains("--runs"));
  }
}

TEST_CASE("bench: --help describes the measurement", "[bench]") {
  npcore::test::TempDir dir;
  const Result r = bench_cmd("--help", dir);
  CHECK(r.status == 0);
  for (const char* word :
       {"--batch", "--runs", "--warmup", "--threads", "--backend", "--height", "--width", "--json",
        "--layers", "p99", "FMA peak", "pretrained", "direct-equivalent", "--no-winograd"})
    CHECK_THAT(r.out, Contains(word));
}

#endif
