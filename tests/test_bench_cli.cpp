// `npcore bench`, run as a separate process on tiny cores: the text report names every quantity, --json
// is one object with the fields scripts read and values that agree with each other and with the core's
// convolution FLOPs counted by hand (direct-equivalent, and labelled so), --layers adds one row per
// block, and bad input exits 2 with one line. No timing is asserted (the machine is shared): only that
// times are positive and their order statistics ordered.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "engine/isa.h"
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
  // The warm-up touched every buffer: the timed runs fault no page in (no page zeroing).
  REQUIRE(j.contains("page_faults_timed"));
  if (!npcore::test::kernel_reclaims_pages())
    CHECK(j["page_faults_timed"] == 0);
  else if (j["page_faults_timed"] != 0)
    WARN("page_faults_timed " << j["page_faults_timed"] << ": the kernel reclaims pages on its own here "
                                 "(NUMA balancing or DAMON pageout), so the check is not decisive");
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

TEST_CASE("bench: --input-shape takes C,H,W or HxW and sets the image size", "[bench]") {
  npcore::test::TempDir dir;
  npcore::test::write_file(dir.file("core.json"), kTinyCore);
  // C,H,W: C equal to the core's input channels (1); H and W replace the file's input_shape (12x14).
  Result r = bench_cmd(q(dir.file("core.json")) + kCommon + " --json --input-shape 1,9,11", dir);
  INFO("stdout: " << r.out << "stderr: " << r.err);
  REQUIRE(r.status == 0);
  json j = json::parse(r.out);
  CHECK(j["channels"] == 1);
  CHECK(j["height"] == 9);
  CHECK(j["width"] == 11);
  CHECK(double(j["gflop"]) == Approx(2.0 * 9 * 11 * (4 * 1 * 25 + 4 * 4 * 9) / 1e9).epsilon(1e-9));
  // HxW (and X) leave C to the core.
  for (const char* shape : {"7x20", "7X20"}) {
    r = bench_cmd(q(dir.file("core.json")) + kCommon + " --json --batch 2 --input-shape " + shape, dir);
    REQUIRE(r.status == 0);
    j = json::parse(r.out);
    CHECK(j["batch"] == 2);
    CHECK(j["channels"] == 1);
    CHECK(j["height"] == 7);
    CHECK(j["width"] == 20);
  }
  // The text report shows the shape it ran.
  r = bench_cmd(q(dir.file("core.json")) + kCommon + " --input-shape 1,10,13", dir);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Contains("[1, 1, 10, 13]"));
}

TEST_CASE("bench: a bad --input-shape, or one with --height/--width, exits 2 with one line", "[bench]") {
  npcore::test::TempDir dir;
  npcore::test::write_file(dir.file("core.json"), kTinyCore);
  SECTION("C is not the core's input channels") {
    expect_failure(bench_cmd(q(dir.file("core.json")) + kCommon + " --input-shape 3,12,14", dir),
                   {"--input-shape 3,12,14", "C is 3", "takes 1 input channel", "Stacked2dCore", "HxW"});
  }
  SECTION("malformed") {
    for (const char* bad : {"12", "12x", "x14", "1,12", "1,2,3,4", "12x14x2", "1,12x14", "0x14", "12x0",
                            "-1,12,14", "a,b,c", "12*14", "1,12,99999999999", "1,12,70000"})
      expect_failure(bench_cmd(q(dir.file("core.json")) + kCommon + " --input-shape " + bad, dir),
                     {"--input-shape", "expected C,H,W", "or HxW"});
  }
  SECTION("with --height or --width") {
    for (const char* other : {" --height 12", " --width 14"}) {
      const Result r =
          bench_cmd(q(dir.file("core.json")) + kCommon + " --input-shape 12x14" + other, dir);
      INFO("stderr: " << r.err);
      CHECK(r.status == 2);
      CHECK(r.err_lines() == 1);
      CHECK_THAT(r.err, Contains("--input-shape") && Contains("excludes"));
      CHECK(r.out.empty());
    }
  }
  SECTION("an image the core cannot take") {
    npcore::test::write_file(dir.file("valid.json"),
                             R"({"core": "Stacked2dCore", "config": {"input_channels": 1,
        "hidden_channels": 4, "input_kern": 5, "hidden_kern": 3, "layers": 2, "pad_input": false}})");
    expect_failure(bench_cmd(q(dir.file("valid.json")) + kCommon + " --input-shape 3x3", dir),
                   {"features.layer0.conv"});
  }
}

TEST_CASE("bench: every convolution is reported with its algorithm and ISA", "[bench][isa]") {
  npcore::test::TempDir dir;
  npcore::test::write_file(dir.file("core.json"), kTinyCore);
  Result r = bench_cmd(q(dir.file("core.json")) + kCommon + " --json --layers", dir);
  INFO("stdout: " << r.out << "stderr: " << r.err);
  REQUIRE(r.status == 0);
  json j = json::parse(r.out);
  const std::string isa = j["isa"];
  CHECK(isa == npcore::isa_name(npcore::resolve_isa(npcore::Isa::Auto)));
  CHECK(j["cpu_isa"] == npcore::isa_name(npcore::cpu_isa()));
  CHECK(j["cpu_model"].is_string());
  REQUIRE(j["convs"].size() == 2);
  const json& c0 = j["convs"][0];
  CHECK(c0["layer"] == "features.layer0.conv");
  CHECK(c0["in_channels"] == 1);
  CHECK(c0["out_channels"] == 4);
  CHECK(c0["kernel"] == json({5, 5}));
  CHECK(c0["stride"] == json({1, 1}));
  CHECK(c0["padding"] == json({2, 2}));
  CHECK(c0["dilation"] == json({1, 1}));
  CHECK(c0["groups"] == 1);
  CHECK(c0["input_shape"] == json({1, 1, 12, 14}));
  const json& c1 = j["convs"][1];
  CHECK(c1["layer"] == "features.layer1.conv");
  CHECK(c1["kernel"] == json({3, 3}));
  CHECK(c1["input_shape"] == json({1, 4, 12, 14}));
  for (const json& c : j["convs"]) {
    CHECK(c["backend"] == "native");
    CHECK_FALSE(c["algorithm"].get<std::string>().empty());  // whatever the backend chose
    CHECK(c["isa"] == isa);
  }
  // Each block lists its own convolutions.
  REQUIRE(j["layers"].size() == 2);
  CHECK(j["layers"][0]["convs"].size() == 1);
  CHECK(j["layers"][0]["convs"][0]["layer"] == "features.layer0.conv");
  CHECK(j["layers"][1]["convs"][0]["layer"] == "features.layer1.conv");

  // --isa generic: the native backend has no vector kernels there and says which path it took.
  r = bench_cmd(q(dir.file("core.json")) + kCommon + " --json --isa generic", dir);
  REQUIRE(r.status == 0);
  j = json::parse(r.out);
  CHECK(j["isa"] == "generic");
  for (const json& c : j["convs"]) {
    CHECK(c["isa"] == "generic");
    CHECK_FALSE(c["algorithm"].get<std::string>().empty());
  }
  // Other backends: the algorithm is the backend, no ISA of ours.
  r = bench_cmd(q(dir.file("core.json")) + kCommon + " --json --backend reference", dir);
  REQUIRE(r.status == 0);
  j = json::parse(r.out);
  for (const json& c : j["convs"]) {
    CHECK(c["algorithm"] == "reference");
    CHECK(c["isa"].is_null());
  }
  // The text report lists them.
  r = bench_cmd(q(dir.file("core.json")) + kCommon, dir);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Contains("convolutions: ") && Contains("features.layer0.conv") &&
                        Contains("Conv2d(1, 4, k=5x5") && Contains("features.layer1.conv"));
}

TEST_CASE("bench: the fixed overhead of a forward is measured and reported", "[bench]") {
  npcore::test::TempDir dir;
  npcore::test::write_file(dir.file("core.json"), kTinyCore);
  Result r = bench_cmd(q(dir.file("core.json")) + kCommon + " --json", dir);
  INFO("stdout: " << r.out << "stderr: " << r.err);
  REQUIRE(r.status == 0);
  const json j = json::parse(r.out);
  REQUIRE(j["overhead"].is_object());
  const json& o = j["overhead"];
  // The tiny core pads its convolutions, so it takes a 1x1 image.
  CHECK(o["height"] == 1);
  CHECK(o["width"] == 1);
  CHECK(double(o["gflop"]) == Approx(2.0 * (4 * 1 * 25 + 4 * 4 * 9) / 1e9).epsilon(1e-9));
  const double med = o["median_ms"], lo = o["min_ms"];
  CHECK(lo > 0);
  CHECK(lo <= med);
  CHECK(double(o["share_of_median"]) == Approx(med / double(j["median_ms"])).epsilon(1e-9));
  r = bench_cmd(q(dir.file("core.json")) + kCommon, dir);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Contains("fixed overhead: median") && Contains("1x1 image") && Contains("of the median latency"));
}

TEST_CASE("bench: --help describes the measurement", "[bench]") {
  npcore::test::TempDir dir;
  const Result r = bench_cmd("--help", dir);
  CHECK(r.status == 0);
  for (const char* word :
       {"--batch", "--runs", "--warmup", "--threads", "--backend", "--height", "--width", "--json",
        "--layers", "p99", "FMA peak", "pretrained", "direct-equivalent", "--no-winograd", "--input-shape",
        "C,H,W", "HxW", "Fixed overhead", "algorithm and ISA"})
    CHECK_THAT(r.out, Contains(word));
}

#endif
