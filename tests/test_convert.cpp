// convert_checkpoint (what `npcore convert` runs): tensors written bitwise unchanged and in checkpoint order,
// metadata, --force, --features-only, the --model check, and no output left behind by any failure.
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>

#include "cores/ref_case.h"
#include "cores/torchvision_features.h"
#include "engine/error.h"
#include "tests/test_util.h"
#include "weights/checkpoint_convert.h"
#include "weights/safetensors.h"
#include "weights/torch_checkpoint.h"

using namespace npcore;
namespace fs = std::filesystem;

namespace {

void check_bitwise(const StateDict& got, const StateDict& want) {
  REQUIRE(got.size() == want.size());
  for (const std::string& n : want.order()) {
    INFO(n);
    REQUIRE(got.contains(n));
    const StoredTensor &a = got.at(n), &b = want.at(n);
    CHECK(a.dtype == b.dtype);
    CHECK(a.shape == b.shape);
    REQUIRE(a.nbytes == b.nbytes);
    CHECK(std::memcmp(a.data, b.data, a.nbytes) == 0);
  }
}

ConvertOptions model_check(const std::string& model) {
  ConvertOptions o;
  o.check = [model](const StateDict& sd) { return check_torchvision_features(sd, model); };
  o.check_what = "torchvision " + model + ".features";
  return o;
}

}  // namespace

TEST_CASE("every torchvision reference checkpoint converts to its expected tensors, in file order",
          "[convert][pth]") {
  const std::string dir = test::ref_dir();
  if (dir.empty()) {
    WARN("../shared/ref is absent: conversion of the torchvision checkpoints skipped");
    return;
  }
  test::TempDir tmp;
  for (const auto& e : fs::directory_iterator(dir + "/torchvision")) {
    const std::string in = e.path().string();
    if (in.size() < 4 || in.compare(in.size() - 4, 4, ".pth") != 0) continue;
    INFO(in);
    const std::string out = tmp.file(e.path().stem().string() + ".safetensors");
    ConvertReport r = convert_checkpoint(in, out, {});
    SafetensorsFile got = read_safetensors(out);
    check_bitwise(got.tensors, read_safetensors(case_prefix(in) + ".expected.safetensors").tensors);
    CHECK(r.tensors == got.tensors.size());
    CHECK(r.copied_bytes == 0);
    CHECK(got.metadata.at("source") == e.path().filename().string());
    CHECK(got.metadata.at("source_bytes") == std::to_string(fs::file_size(e.path())));
    CHECK(got.metadata.at("source_format") ==
          (in.find(".legacy") != std::string::npos ? "pytorch legacy" : "pytorch zip"));
    // The data lies in the checkpoint's order.
    const TorchCheckpoint ck = read_torch_checkpoint(in);
    const auto& order = ck.tensors.order();
    for (size_t i = 1; i < order.size(); ++i)
      CHECK(got.tensors.at(order[i - 1]).data < got.tensors.at(order[i]).data);
  }
}

TEST_CASE("convert writes strided, offset and shared-storage tensors as dense bytes", "[convert][pth]") {
  test::TempDir tmp;
  const SafetensorsFile want = read_safetensors(test::fixture_dir() + "/pth/layouts.expected.safetensors");
  for (const char* f : {"layouts.pth", "layouts.legacy.pth"}) {
    INFO(f);
    ConvertReport r = convert_checkpoint(test::fixture_dir() + "/pth/" + f, tmp.file("out.safetensors"), {});
    CHECK(r.copied_bytes == (24 + 8 + 6) * 4);
    check_bitwise(read_safetensors(tmp.file("out.safetensors")).tensors, want.tensors);
    fs::remove(tmp.file("out.safetensors"));
  }
}

TEST_CASE("convert refuses to overwrite without force and leaves nothing behind on failure",
          "[convert][pth]") {
  test::TempDir tmp;
  const std::string in = test::fixture_dir() + "/pth/layouts.pth", out = tmp.file("w.safetensors");
  write_file_atomically(out, "keep me");
  CHECK_THROWS_AS(convert_checkpoint(in, out, {}), FormatError);
  CHECK_THROWS_WITH(convert_checkpoint(in, out, {}), Catch::Contains("already exists; use --force"));
  CHECK(fs::file_size(out) == 7);
  ConvertOptions force;
  force.force = true;
  CHECK(convert_checkpoint(in, out, force).tensors == 13);
  CHECK(read_safetensors(out).tensors.size() == 13);
  CHECK(tmp.entries().size() == 1);

  // Refused inputs and a failed check leave no output and no temporary file.
  CHECK_THROWS_WITH(
      convert_checkpoint(test::fixture_dir() + "/pth/evil_os_system.pth", tmp.file("evil.safetensors"), {}),
      Catch::Contains("refuses global posix.system"));
  CHECK_THROWS_AS(
      convert_checkpoint(test::fixture_dir() + "/pth/truncated.pth", tmp.file("t.safetensors"), {}),
      FormatError);
  CHECK_THROWS_AS(convert_checkpoint(in, tmp.file("m.safetensors"), model_check("vgg16")), WeightError);
  CHECK(tmp.entries().size() == 1);
}

TEST_CASE("convert --features-only drops everything outside features.", "[convert][pth]") {
  test::TempDir tmp;
  ConvertOptions opt;
  opt.features_only = true;
  CHECK_THROWS_WITH(
      convert_checkpoint(test::fixture_dir() + "/pth/layouts.pth", tmp.file("x.safetensors"), opt),
      Catch::Contains("no tensor to write (none is under 'features.')"));
  const std::string dir = test::ref_dir();
  if (dir.empty()) {
    WARN("../shared/ref is absent: --features-only on seed_stacked2d.pth skipped (the refusal above ran)");
    return;
  }
  const std::string in = dir + "/seed_stacked2d.pth";
  ConvertReport r = convert_checkpoint(in, tmp.file("f.safetensors"), opt);
  const StateDict all = read_torch_checkpoint(in).tensors;
  const StateDict got = read_safetensors(tmp.file("f.safetensors")).tensors;
  CHECK(r.dropped == 1);
  CHECK(got.size() + 1 == all.size());
  CHECK_FALSE(got.contains("_input_weights_regularizer.laplace.filter"));
  for (const std::string& n : got.order()) CHECK(n.rfind("features.", 0) == 0);
}

TEST_CASE("convert --model accepts the model's features and refuses others, listing the problems",
          "[convert][pth]") {
  const std::string dir = test::ref_dir();
  if (dir.empty()) {
    WARN("../shared/ref is absent: --model checks skipped");
    return;
  }
  test::TempDir tmp;
  const std::string tv = dir + "/torchvision/";
  CHECK(convert_checkpoint(tv + "tv_vgg16_l12.legacy_v1.pth", tmp.file("a.safetensors"), model_check("vgg16"))
            .tensors == 10);
  CHECK(convert_checkpoint(tv + "tv_vgg11_bn_l8.pth", tmp.file("b.safetensors"), model_check("vgg11_bn"))
            .tensors == 14);
  CHECK(convert_checkpoint(tv + "tv_alexnet_features.pth", tmp.file("c.safetensors"), model_check("alexnet"))
            .tensors == 10);
  CHECK_THROWS_WITH(
      convert_checkpoint(tv + "tv_vgg11_bn_l8.pth", tmp.file("d.safetensors"), model_check("vgg16")),
      Catch::Contains("do not match torchvision vgg16.features") &&
          Catch::Contains("features.1.weight: vgg16.features.1 is a ReLU, which has no tensor 'weight'") &&
          Catch::Contains("features.5.weight: shape [128], vgg16 has [128, 64, 3, 3]"));
  CHECK_THROWS_WITH(
      convert_checkpoint(tv + "tv_vgg16_l12.pth", tmp.file("e.safetensors"), model_check("vgg16_bn")),
      Catch::Contains("vgg16_bn.features.2 is a ReLU"));
  CHECK(tmp.entries().size() == 3);
}
