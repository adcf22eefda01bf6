// Strict state_dict loading: every missing, unexpected and mis-shaped key is reported, at once, with its
// name and both shapes; bad dtypes and impossible BatchNorm statistics are refused; training-only
// buffers and the optional num_batches_tracked are accepted.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "cores/factory.h"
#include "cores/ref_case.h"
#include "engine/error.h"
#include "tests/test_util.h"
#include "weights/safetensors.h"
#include "weights/weight_spec.h"

using namespace npcore;
using Catch::Matchers::Contains;

namespace {

const char* kCore = R"({"core": "Stacked2dCore", "config": {"input_channels": 1, "hidden_channels": 4,
    "input_kern": 3, "hidden_kern": 3, "layers": 2}})";

std::unique_ptr<Core> small_core() {
  return make_core(kCore, "small.json");
}

// The state_dict of a deterministically initialised core, with non-trivial BatchNorm statistics.
StateDict initial_state() {
  auto core = small_core();
  core->init(7);
  return core->state_dict();
}

// A tensor owned by a shared buffer that `sd` keeps alive.
StoredTensor owned_tensor(StateDict& sd, DType dtype, std::vector<int64_t> shape, const void* bytes,
                          size_t n) {
  auto buf = std::make_shared<std::vector<uint8_t>>(static_cast<const uint8_t*>(bytes),
                                                    static_cast<const uint8_t*>(bytes) + n);
  sd.keep_alive(buf);
  StoredTensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.data = buf->data();
  t.nbytes = n;
  return t;
}

// A copy of `src` without the keys `drop` says no to, keeping src's bytes alive.
StateDict copy_without(const StateDict& src, const std::function<bool(const std::string&)>& drop = nullptr) {
  StateDict out(src.source());
  out.keep_alive(std::make_shared<StateDict>(src));
  for (const std::string& k : src.order())
    if (!drop || !drop(k)) out.add(k, src.at(k));
  return out;
}

std::string load_error(const StateDict& sd) {
  auto core = small_core();
  try {
    core->load(sd);
  } catch (const WeightError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("weights: a complete state_dict loads and round-trips", "[weights]") {
  StateDict sd = initial_state();
  auto core = small_core();
  REQUIRE_NOTHROW(core->load(sd));
  StateDict back = core->state_dict();
  REQUIRE(back.order() == sd.order());
  for (const std::string& k : sd.order()) {
    INFO(k);
    CHECK(back.at(k).shape == sd.at(k).shape);
    CHECK(std::memcmp(back.at(k).data, sd.at(k).data, sd.at(k).nbytes) == 0);
  }
}

TEST_CASE("weights: missing key", "[weights]") {
  StateDict sd =
      copy_without(initial_state(), [](const std::string& k) { return k == "features.layer1.norm.bias"; });
  const std::string msg = load_error(sd);
  CHECK_THAT(
      msg, Contains("missing (1)") && Contains("features.layer1.norm.bias [4]") && Contains("Stacked2dCore"));
}

TEST_CASE("weights: unexpected keys, except the training-only regulariser buffers", "[weights]") {
  StateDict sd = copy_without(initial_state());
  const float v[9] = {};
  sd.add("_input_weights_regularizer.laplace.filter",
         owned_tensor(sd, DType::F32, {1, 1, 3, 3}, v, sizeof v));
  CHECK(load_error(sd).empty());
  sd.add("features.layer2.conv.weight", owned_tensor(sd, DType::F32, {1, 1, 3, 3}, v, sizeof v));
  const std::string msg = load_error(sd);
  CHECK_THAT(msg, Contains("unexpected (1)") && Contains("features.layer2.conv.weight [1, 1, 3, 3]"));
  CHECK_THAT(msg, !Contains("_input_weights_regularizer"));
}

TEST_CASE("weights: shape mismatch names the key and both shapes", "[weights]") {
  StateDict sd =
      copy_without(initial_state(), [](const std::string& k) { return k == "features.layer1.conv.weight"; });
  std::vector<float> w(4 * 4 * 5 * 5, 0.1f);
  sd.add("features.layer1.conv.weight", owned_tensor(sd, DType::F32, {4, 4, 5, 5}, w.data(), w.size() * 4));
  const std::string msg = load_error(sd);
  CHECK_THAT(
      msg,
      Contains("shape mismatch (1)") &&
          Contains("features.layer1.conv.weight: file has [4, 4, 5, 5], Stacked2dCore expects [4, 4, 3, 3]"));
}

TEST_CASE("weights: every problem is reported at once", "[weights]") {
  StateDict sd = copy_without(initial_state(), [](const std::string& k) {
    return k == "features.layer0.conv.weight" || k == "features.layer1.conv.bias" ||
           k == "features.layer0.norm.running_mean";
  });
  std::vector<float> b(5, 0.0f), m(3, 0.0f);
  sd.add("features.layer1.conv.bias", owned_tensor(sd, DType::F32, {5}, b.data(), 20));
  sd.add("features.layer0.norm.running_mean", owned_tensor(sd, DType::F32, {3}, m.data(), 12));
  sd.add("features.layer0.conv.bias", owned_tensor(sd, DType::F32, {4}, b.data(), 16));
  const std::string msg = load_error(sd);
  CHECK_THAT(msg, Contains("missing (1): features.layer0.conv.weight [4, 1, 3, 3]"));
  CHECK_THAT(msg, Contains("unexpected (1): features.layer0.conv.bias [4]"));
  CHECK_THAT(msg, Contains("shape mismatch (2)") && Contains("features.layer1.conv.bias: file has [5]") &&
                      Contains("features.layer0.norm.running_mean: file has [3]"));
  CHECK_THAT(msg, Contains("small") || Contains("parameters"));  // the source is named
}

TEST_CASE("weights: an integer dtype for a float parameter is refused", "[weights]") {
  StateDict sd =
      copy_without(initial_state(), [](const std::string& k) { return k == "features.layer1.conv.bias"; });
  std::vector<int32_t> b(4, 1);
  sd.add("features.layer1.conv.bias", owned_tensor(sd, DType::I32, {4}, b.data(), 16));
  CHECK_THAT(load_error(sd), Contains("wrong dtype (1)") &&
                                 Contains("features.layer1.conv.bias: dtype I32") &&
                                 Contains("floating-point"));
}

TEST_CASE("weights: float64 and float16 parameters are converted", "[weights]") {
  StateDict ref_sd = initial_state();
  StateDict sd = copy_without(ref_sd, [](const std::string& k) {
    return k == "features.layer1.conv.weight" || k == "features.layer0.norm.weight";
  });
  const Tensor w = ref_sd.get_float("features.layer1.conv.weight");
  std::vector<double> wd(w.data(), w.data() + w.numel());
  sd.add(
      "features.layer1.conv.weight",
      owned_tensor(sd, DType::F64, ref_sd.at("features.layer1.conv.weight").shape, wd.data(), wd.size() * 8));
  std::vector<uint16_t> ones(4, 0x3c00);  // float16 1.0, the value init() gives norm.weight
  sd.add("features.layer0.norm.weight", owned_tensor(sd, DType::F16, {4}, ones.data(), 8));
  auto a = small_core(), b = small_core();
  a->load(ref_sd);
  b->load(sd);
  EngineOptions opt;
  opt.backend = Backend::Reference;
  a->prepare(opt);
  b->prepare(opt);
  Tensor x = test::random_tensor({1, 1, 9, 11}, 3);
  CHECK(test::normalised_error(b->forward(x), a->forward(x)) == 0.0);
}

TEST_CASE("weights: BatchNorm running_var must be a non-negative number", "[weights]") {
  for (float bad : {-0.5f, std::numeric_limits<float>::quiet_NaN()}) {
    INFO("running_var[2] = " << bad);
    StateDict sd = copy_without(initial_state(),
                                [](const std::string& k) { return k == "features.layer1.norm.running_var"; });
    std::vector<float> v = {1.0f, 0.5f, bad, 2.0f};
    sd.add("features.layer1.norm.running_var", owned_tensor(sd, DType::F32, {4}, v.data(), 16));
    CHECK_THAT(load_error(sd),
               Contains("features.layer1.norm.running_var[2]") && Contains("variance must be non-negative"));
  }
}

TEST_CASE("weights: num_batches_tracked is optional and must be an integer scalar", "[weights]") {
  StateDict base = initial_state();
  REQUIRE_FALSE(base.contains("features.layer0.norm.num_batches_tracked"));
  CHECK(load_error(base).empty());  // absent: fine (pre-0.4 checkpoints lack it)

  StateDict sd = copy_without(base);
  const int64_t n = 1234;
  sd.add("features.layer0.norm.num_batches_tracked", owned_tensor(sd, DType::I64, {}, &n, 8));
  CHECK(load_error(sd).empty());

  StateDict bad = copy_without(base);
  const float f = 3.0f;
  bad.add("features.layer0.norm.num_batches_tracked", owned_tensor(bad, DType::F32, {}, &f, 4));
  CHECK_THAT(load_error(bad),
             Contains("features.layer0.norm.num_batches_tracked: dtype F32, expected an integer"));
}

TEST_CASE("weights: load_weights_file reads safetensors and refuses what is not a weights file", "[weights]") {
  test::TempDir dir;
  StateDict sd = initial_state();
  std::vector<std::pair<std::string, StoredTensor>> list;
  for (const std::string& k : sd.order()) list.emplace_back(k, sd.at(k));
  write_safetensors(dir.file("w.safetensors"), list);
  StateDict back = load_weights_file(dir.file("w.safetensors"));
  CHECK(back.source() == dir.file("w.safetensors"));
  auto core = small_core();
  CHECK_NOTHROW(core->load(back));

  // Messages about a file's state_dict name the file.
  StateDict missing =
      copy_without(back, [](const std::string& k) { return k == "features.layer0.conv.weight"; });
  CHECK_THAT(load_error(missing), Contains(dir.file("w.safetensors")));

  // .bin may be a torch.save checkpoint; one byte of text is neither that nor safetensors.
  test::write_file(dir.file("w.bin"), "x");
  CHECK_THROWS_AS(load_weights_file(dir.file("w.bin")), FormatError);
  CHECK_THROWS_WITH(load_weights_file(dir.file("w.bin")), Contains("w.bin") && Contains("not a PyTorch checkpoint"));
  test::write_file(dir.file("w.txt"), "not weights");
  CHECK_THROWS_WITH(load_weights_file(dir.file("w.txt")), Contains("w.txt") && Contains("unsupported"));
}

TEST_CASE("weights: get_float refuses rank above 6 and an impossible allocation, naming file and tensor",
          "[weights]") {
  StateDict sd("file.safetensors");
  const float one = 1.0f;
  sd.add("r7", owned_tensor(sd, DType::F32, {1, 1, 1, 1, 1, 1, 1}, &one, 4));
  CHECK_THROWS_AS(sd.get_float("r7"), WeightError);
  CHECK_THROWS_WITH(sd.get_float("r7"), Contains("file.safetensors: tensor 'r7' [1, 1, 1, 1, 1, 1, 1]") &&
                                            Contains("7 dimensions") && Contains("at most 6"));
  // 2^45 float16 values claimed (their bytes are never read: the float32 copy, 128 TiB, cannot be made).
  StoredTensor huge;
  huge.dtype = DType::F16;
  huge.shape = {int64_t(1) << 45};
  huge.data = reinterpret_cast<const uint8_t*>(&one);
  huge.nbytes = size_t(1) << 46;
  sd.add("huge", huge);
  CHECK_THROWS_AS(sd.get_float("huge"), WeightError);
  CHECK_THROWS_WITH(sd.get_float("huge"), Contains("file.safetensors: tensor 'huge'") &&
                                              Contains("cannot allocate 140737488355328 bytes"));
  // A key holding control characters is printed escaped.
  CHECK_THROWS_WITH(sd.at("a\nb"), Contains("missing tensor 'a\\nb'"));
}
