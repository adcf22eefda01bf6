// The bad-input catalogue: malformed files of every format, hostile pickles, bad configs, inputs a core
// cannot take, API misuse, a memory cap, and CLI mistakes. Each entry asserts the exception type (or the
// CLI's exit status) and the words of its one-line message: what, where and which rule. NaN and Inf
// inputs are not errors: they propagate through the core without a crash.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <functional>
#include <set>

#include "cores/factory.h"
#include "engine/error.h"
#include "tests/test_util.h"
#include "weights/npy.h"
#include "weights/safetensors.h"
#include "weights/state_dict.h"
#include "weights/torch_checkpoint.h"
#include "weights/torch_pickle.h"
#include "weights/weights_file.h"

using namespace npcore;

namespace {

// Names of the catalogue's entries (each a distinct malformed input; 61 in all, with the CLI's).
std::set<std::string>& catalogue() {
  static std::set<std::string> names;
  return names;
}

// Runs `f`, which must throw exactly an E (or a subclass) whose message contains every word.
template <class E>
void expect_error(const std::string& entry, const std::function<void()>& f, const std::vector<std::string>& words) {
  catalogue().insert(entry);
  INFO("entry: " << entry);
  try {
    f();
    FAIL("no exception");
  } catch (const E& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    CHECK(msg.find('\n') == std::string::npos);
    for (const auto& w : words) CHECK_THAT(msg, Catch::Contains(w));
  } catch (const std::exception& e) {
    FAIL("wrong exception type; message: " << e.what());
  }
}

std::string le64(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return out;
}
// A safetensors image from a header text and data bytes.
std::string st_image(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}
template <size_t N>
std::string B(const char (&s)[N]) {
  return std::string(s, N - 1);
}

const char* kCore = R"({"core": "Stacked2dCore", "config": {"input_channels": 1, "hidden_channels": 4,
    "input_kern": 5, "hidden_kern": 3, "layers": 2}})";

std::unique_ptr<Core> prepared_core(EngineOptions opt = {}) {
  auto core = make_core(kCore, "core.json");
  core->init(3);
  core->prepare(opt);
  return core;
}

std::string config_with(const std::string& extra) {
  return R"({"core": "Stacked2dCore", "config": {"input_channels": 1, "hidden_channels": 4,
      "input_kern": 5, "hidden_kern": 3, "layers": 2)" +
         extra + "}}";
}

std::string npy_with_header(const std::string& dict, const std::string& data = "") {
  std::string h = dict;
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::string out = B("\x93NUMPY\x01\x00");
  out += char(h.size() & 0xff);
  out += char(h.size() >> 8);
  return out + h + data;
}

}  // namespace

TEST_CASE("bad inputs: safetensors", "[bad_inputs]") {
  test::TempDir dir;
  const std::string p = dir.file("w.safetensors");
  auto read = [&](const std::string& bytes) {
    test::write_file(p, bytes);
    return [p] { read_safetensors(p); };
  };
  const std::string f8(8, '\0');
  expect_error<FormatError>("st: empty file", read(""), {p, "0 bytes", "shorter than the 8-byte header length"});
  expect_error<FormatError>("st: header length beyond the file", read(le64(1000) + "{}"),
                            {p, "header length 1000", "runs past the end of the file"});
  expect_error<FormatError>("st: header length above 100 MiB", read(le64(uint64_t(1) << 40) + "{}"),
                            {p, "exceeds 100 MiB"});
  expect_error<FormatError>("st: header not JSON", read(st_image("{\"a\": ", "")), {p, "not valid JSON"});
  expect_error<FormatError>("st: header not an object", read(st_image("[1, 2]", "")), {p, "not a JSON object"});
  expect_error<FormatError>(
      "st: unknown dtype",
      read(st_image(R"({"w": {"dtype": "F99", "shape": [2], "data_offsets": [0, 8]}})", f8)), {p, "'w'", "F99"});
  expect_error<FormatError>(
      "st: overlapping offsets",
      read(st_image(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                    std::string(12, '\0'))),
      {p, "overlap"});
  expect_error<FormatError>(
      "st: gap between tensors",
      read(st_image(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                        "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
                    std::string(12, '\0'))),
      {p, "bytes [4, 8) belong to no tensor", "a hole before tensor 'b'"});
  expect_error<FormatError>(
      "st: offsets beyond the file",
      read(st_image(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", f8)), {p, "'w'"});
  expect_error<FormatError>(
      "st: shape product overflowing 64 bits",
      read(st_image(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 8]}})",
                    f8)),
      {p, "'w'"});
  expect_error<FormatError>(
      "st: byte range disagrees with shape",
      read(st_image(R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", f8)), {p, "'w'"});
  expect_error<FormatError>(
      "st: negative dimension",
      read(st_image(R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", f8)), {p, "'w'"});
  expect_error<FormatError>("st: deep nesting",
                            read(st_image(std::string(5000, '[') + std::string(5000, ']'), "")), {p, "nest"});

  // Truncations of a real file at many offsets: each refused naming the file, none crashes.
  catalogue().insert("st: truncations at 40 offsets");
  const std::string whole = test::read_file(test::fixture_dir() + "/stacked2d_strides.weights.safetensors");
  for (size_t i = 0; i < 40; ++i) {
    const size_t cut = i < 20 ? i * 7 : whole.size() - 1 - (i - 20) * (whole.size() / 40);
    INFO("cut at " << cut << " of " << whole.size());
    test::write_file(p, whole.substr(0, cut));
    CHECK_THROWS_AS(read_safetensors(p), FormatError);
    CHECK_THROWS_WITH(read_safetensors(p), Catch::Contains(p));
  }
}

TEST_CASE("bad inputs: .pth checkpoints and pickles", "[bad_inputs]") {
  const std::string fx = test::fixture_dir() + "/pth/";
  auto read = [](const std::string& path) { return [path] { read_torch_checkpoint(path); }; };
  auto unpickle = [](const std::string& bytes) {
    return [bytes] {
      TorchUnpickler up("test pickle");
      up.load(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    };
  };
  expect_error<FormatError>("pth: forbidden global (zip)", read(fx + "evil_os_system.pth"),
                            {"evil_os_system.pth", "refuses global posix.system"});
  expect_error<FormatError>("pth: forbidden global (legacy)", read(fx + "evil_eval.legacy.pth"),
                            {"evil_eval.legacy.pth", "refuses global __builtin__.eval"});
  expect_error<FormatError>("pickle: REDUCE of a forbidden global",
                            unpickle(B("\x80\x02"
                                       "cos\nsystem\nX\x02\x00\x00\x00ls\x85R.")),
                            {"test pickle", "refuses global os.system"});
  expect_error<FormatError>("pickle: REDUCE of an allowed class it must not call",
                            unpickle(B("\x80\x02"
                                       "ctorch\nFloatStorage\n)R.")),
                            {"refuses to call torch.FloatStorage"});
  expect_error<FormatError>("pickle: deeply nested MARKs", unpickle(B("\x80\x02") + std::string(5000, '(') + "."),
                            {"nested MARKs"});
  expect_error<FormatError>("pth: storage shorter than size x stride", read(fx + "short_storage.pth"),
                            {"short_storage.pth", "holds 16 bytes", "6 F32 elements"});
  expect_error<FormatError>("pth: tensor beyond its storage", read(fx + "tensor_beyond_storage.pth"),
                            {"tensor 'w' [4, 3]", "stride (3, 1)", "needs element 11"});
  expect_error<FormatError>("pth: zero strides expanding 4 bytes to 2 GiB", read(fx + "expand.pth"),
                            {"repeats the elements of storage '0'", "2147483648 bytes"});
  expect_error<FormatError>("pth: missing storage entry", read(fx + "missing_storage.pth"),
                            {"storage '7' has no zip entry"});
  expect_error<FormatError>("pth: bad CRC", read(fx + "bad_crc.pth"), {"fails its CRC-32 check"});
  expect_error<FormatError>("pth: truncated zip", read(fx + "truncated.pth"),
                            {"truncated.pth", "not a readable zip archive"});
  expect_error<FormatError>("pth: whole nn.Module", read(fx + "whole_module.pth"),
                            {"refuses global torch.nn.modules.linear.Linear"});

  // Truncations of a zip and a legacy checkpoint at many offsets.
  catalogue().insert("pth: truncations at 30 offsets (zip and legacy)");
  test::TempDir dir;
  for (const char* name : {"layouts.pth", "layouts.legacy.pth"}) {
    const std::string whole = test::read_file(fx + name);
    const std::string p = dir.file(name);
    for (size_t i = 1; i <= 15; ++i) {
      const size_t cut = whole.size() * i / 16;
      INFO(name << " cut at " << cut << " of " << whole.size());
      test::write_file(p, whole.substr(0, cut));
      try {
        read_torch_checkpoint(p);
        FAIL("a truncated checkpoint was accepted");
      } catch (const FormatError& e) {
        CHECK_THAT(std::string(e.what()), Catch::Contains(name));
      }
    }
  }
}

TEST_CASE("bad inputs: .npy", "[bad_inputs]") {
  test::TempDir dir;
  const std::string p = dir.file("x.npy");
  auto read = [&](const std::string& bytes) {
    test::write_file(p, bytes);
    return [p] { read_npy(p); };
  };
  expect_error<FormatError>("npy: bad magic", read("NUMPY not really"), {p, "not a valid .npy file"});
  expect_error<FormatError>("npy: unsupported version", read(B("\x93NUMPY\x07\x00\x10\x00") + std::string(16, ' ')),
                            {p, "version"});
  expect_error<FormatError>("npy: header length beyond the file", read(B("\x93NUMPY\x01\x00\xff\x7f{")),
                            {p, "header"});
  expect_error<FormatError>("npy: integer dtype",
                            read(npy_with_header("{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }",
                                                 std::string(4, '\0'))),
                            {p, "<i4"});
  expect_error<FormatError>("npy: Fortran order",
                            read(npy_with_header("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }",
                                                 std::string(4, '\0'))),
                            {p, "Fortran"});
  expect_error<FormatError>("npy: negative dimension",
                            read(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }")),
                            {p, "'shape' has a negative dimension"});
  expect_error<FormatError>(
      "npy: shape product overflowing",
      read(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (72057594037927936, 72057594037927936), }")),
      {p, "shape [72057594037927936, 72057594037927936] is too large"});
  expect_error<FormatError>("npy: data shorter than the shape",
                            read(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
                                                 std::string(8, '\0'))),
                            {p});
  expect_error<FormatError>("npy: header not a dict", read(npy_with_header("[1, 2, 3]")), {p, "header"});
}

TEST_CASE("bad inputs: core configs", "[bad_inputs]") {
  auto make = [](const std::string& json) { return [json] { make_core(json, "c.json"); }; };
  expect_error<ConfigError>("config: not JSON", make("{\"core\": "), {"c.json", "not valid JSON"});
  expect_error<ConfigError>("config: unknown core", make(R"({"core": "Stacked3dCore", "config": {}})"),
                            {"c.json", "Stacked3dCore"});
  expect_error<ConfigError>("config: unknown key", make(config_with(R"(, "hiden_kern": 3)")),
                            {"c.json", "unknown key 'hiden_kern'"});
  expect_error<ConfigError>("config: negative hidden_channels", make(config_with(R"(, "hidden_channels": -4)")),
                            {"c.json", "hidden_channels", "-4"});
  expect_error<ConfigError>("config: huge hidden_channels",
                            make(config_with(R"(, "hidden_channels": 4611686018427387904)")),
                            {"c.json", "hidden_channels", "too large"});
  expect_error<ConfigError>("config: zero layers", make(config_with(R"(, "layers": 0)")), {"c.json", "layers"});
  expect_error<ConfigError>("config: wrong type", make(config_with(R"(, "input_kern": "five")")),
                            {"c.json", "input_kern"});
  expect_error<ConfigError>("config: stack index out of range", make(config_with(R"(, "stack": [5])")),
                            {"c.json", "stack", "index 5 is out of range for 2 layers"});
  expect_error<ConfigError>("config: deep nesting", make(std::string(100000, '[') + std::string(100000, ']')),
                            {"c.json", "nest"});
}

TEST_CASE("bad inputs: inputs a core cannot take, API misuse, memory cap", "[bad_inputs]") {
  auto core = prepared_core();
  auto plan = [&](Shape s) { return [&core, s] { core->plan(s); }; };
  expect_error<ShapeError>("input: wrong rank", plan({1, 1, 16}), {"Stacked2dCore", "rank 4"});
  expect_error<ShapeError>("input: wrong channel count", plan({1, 3, 16, 16}),
                           {"Stacked2dCore", "3 channels", "takes 1"});
  expect_error<ShapeError>("input: zero batch", plan({0, 1, 16, 16}), {"batch, height and width must be positive"});
  // pad_input false: a 5x5 kernel on a 3x3 image.
  auto unpadded = make_core(config_with(R"(, "pad_input": false)"), "c.json");
  unpadded->init(1);
  unpadded->prepare({});
  expect_error<ShapeError>("input: kernel larger than the padded input", [&] { unpadded->plan({1, 1, 3, 3}); },
                           {"features.layer0.conv", "smaller"});

  auto fresh = make_core(kCore, "core.json");
  fresh->init(1);
  expect_error<UsageError>("api: plan before prepare", [&] { fresh->plan({1, 1, 8, 8}); },
                           {"Stacked2dCore", "plan() before prepare()"});
  auto p1 = core->plan({1, 1, 8, 8});
  auto p2 = core->plan({1, 1, 9, 9});
  expect_error<UsageError>("api: workspace from another plan",
                           [&] {
                             Workspace ws = p1->make_workspace();
                             Tensor x({1, 1, 9, 9}), y(p2->output_shape());
                             p2->run(x, y, ws);
                           },
                           {"workspace was not made by this plan"});
  expect_error<ShapeError>("api: run with another shape than planned",
                           [&] {
                             Tensor x({1, 1, 9, 9});
                             p1->run(x);
                           },
                           {"[1, 1, 9, 9]", "planned shape [1, 1, 8, 8]"});

  EngineOptions capped;
  capped.max_memory = 100000;
  auto small = prepared_core(capped);
  CHECK_NOTHROW(small->plan({1, 1, 16, 16}));
  expect_error<ResourceError>("api: memory cap", [&] { small->plan({4, 1, 256, 256}); },
                              {"Stacked2dCore", "[4, 1, 256, 256]", "needs", "bytes", "memory cap of 100000 bytes"});
  expect_error<ShapeError>("api: shape beyond 2^62 elements", [&] { core->plan({1 << 20, 1, 1 << 20, 1 << 20}); },
                           {"Stacked2dCore: input [1048576, 1, 1048576, 1048576]", "more than 2^62 elements"});
  expect_error<ResourceError>("api: a tensor beyond the machine's memory",
                              [] { Tensor t({int64_t(1) << 20, int64_t(1) << 20, 1024}); },
                              {"out of memory allocating 4503599627370496 bytes"});

  StateDict sd = core->state_dict();
  StateDict missing("missing.safetensors");
  for (const auto& k : sd.order())
    if (k != "features.layer0.conv.weight") missing.add(k, sd.at(k));
  expect_error<WeightError>("weights: missing key", [&] { fresh->load(missing); },
                            {"features.layer0.conv.weight", "missing"});
}

TEST_CASE("bad inputs: NaN and Inf propagate through a core without a crash", "[bad_inputs]") {
  catalogue().insert("input: NaN and Inf values");
  for (Backend b : {Backend::Reference, Backend::Gemm, Backend::Native, Backend::OneDnn}) {
    EngineOptions opt;
    opt.backend = b;
    auto core = prepared_core(opt);
    Tensor x = test::random_tensor({1, 1, 12, 12}, 4);
    x.data()[13] = std::numeric_limits<float>::quiet_NaN();
    x.data()[100] = std::numeric_limits<float>::infinity();
    Tensor y;
    REQUIRE_NOTHROW(y = core->forward(x));
    bool any_nan = false;
    for (int64_t i = 0; i < y.numel(); ++i) any_nan |= std::isnan(y.data()[i]);
    CHECK(any_nan);
  }
}

#ifdef NPCORE_TOOL_PATH
TEST_CASE("bad inputs: the CLI", "[bad_inputs]") {
  test::TempDir dir, logs;
  test::write_file(dir.file("core.json"), kCore);
  auto core = prepared_core();
  write_npy(dir.file("x.npy"), test::random_tensor({1, 1, 32, 32}, 2));
  {
    StateDict sd = core->state_dict();
    std::vector<std::pair<std::string, StoredTensor>> list;
    for (const std::string& k : sd.order()) list.emplace_back(k, sd.at(k));
    write_safetensors(dir.file("w.safetensors"), list);
  }
  const std::string base = "run " + test::quoted(dir.file("core.json")) + " --weights " +
                           test::quoted(dir.file("w.safetensors")) + " --input " + test::quoted(dir.file("x.npy"));
  auto expect_cli = [&](const std::string& entry, const std::string& args, const std::vector<std::string>& words,
                        const std::string& output) {
    catalogue().insert(entry);
    INFO("entry: " << entry);
    const test::CmdResult r = test::run_npcore(args, logs);
    INFO("stderr: " << r.err);
    CHECK(r.status == 2);
    CHECK(r.err_lines() == 1);
    for (const auto& w : words) CHECK_THAT(r.err, Catch::Contains(w));
    CHECK_FALSE(test::file_exists(output));
  };
  const std::string missing_out = dir.file("no/such/folder/y.npy");
  expect_cli("cli: output in a missing folder", base + " --output " + test::quoted(missing_out),
             {"no/such/folder"}, missing_out);
  CHECK(dir.entries() == std::vector<std::string>{"core.json", "w.safetensors", "x.npy"});  // nothing partial
  // 16 KiB: below the output alone (2 layers x 4 channels x 32 x 32 floats = 32 KiB), whatever the kernels' scratch.
  expect_cli("cli: --max-memory too small", base + " --max-memory 16KiB --output " + test::quoted(dir.file("y.npy")),
             {"needs", "memory cap of 16384 bytes"}, dir.file("y.npy"));
  expect_cli("cli: --max-memory not a size", base + " --max-memory lots --output " + test::quoted(dir.file("y.npy")),
             {"--max-memory"}, dir.file("y.npy"));
  expect_cli("cli: negative --threads", base + " --threads -3 --output " + test::quoted(dir.file("y.npy")),
             {"--threads"}, dir.file("y.npy"));
  CHECK(test::run_npcore(base + " --max-memory 64MB --output " + test::quoted(dir.file("y.npy")), logs).status == 0);
}
#endif
