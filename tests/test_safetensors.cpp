// safetensors: write/read round trip, refusal of every kind of malformed file (FormatError with words
// naming the problem), and atomic writes that leave nothing behind when they fail.
#include <signal.h>
#include <sys/resource.h>

#include <catch2/catch.hpp>
#include <cstring>

#include "engine/error.h"
#include "tests/test_util.h"
#include "weights/safetensors.h"

using namespace npcore;
using Catch::Matchers::Contains;

namespace {

// A safetensors image from a header text and data bytes; `len` overrides the header length field.
std::string st_image(const std::string& header, const std::string& data = "", int64_t len = -1) {
  const uint64_t n = len >= 0 ? uint64_t(len) : header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return out + header + data;
}

// Writes `bytes` to a file in `dir` and reads it back, expecting a FormatError whose message holds the
// file name and every word of `words`.
void expect_refused(const test::TempDir& dir, const std::string& bytes, std::vector<std::string> words) {
  const std::string path = dir.file("bad.safetensors");
  test::write_file(path, bytes);
  INFO("expecting the words: " << Catch::Detail::stringify(words));
  try {
    read_safetensors(path);
    FAIL("read_safetensors accepted a malformed file");
  } catch (const FormatError& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    CHECK_THAT(msg, Contains(path));
    for (const auto& w : words) CHECK_THAT(msg, Contains(w));
  }
}

std::string floats(std::initializer_list<float> v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), std::data(v), s.size());
  return s;
}

}  // namespace

TEST_CASE("safetensors round trip keeps names, order, dtypes, shapes, bytes and metadata", "[safetensors]") {
  test::TempDir dir;
  const std::string path = dir.file("rt.safetensors");
  Tensor a = test::random_tensor({2, 3, 4, 5}, 11);
  std::vector<int64_t> counts = {7, -3, 1ll << 40};
  std::vector<uint16_t> halves = {0x3c00, 0xc000, 0x0001};  // 1, -2, smallest subnormal
  float scalar = 2.5f;

  auto stored = [](DType d, std::vector<int64_t> shape, const void* p, size_t n) {
    StoredTensor t;
    t.dtype = d;
    t.shape = std::move(shape);
    t.data = static_cast<const uint8_t*>(p);
    t.nbytes = n;
    return t;
  };
  std::vector<std::pair<std::string, StoredTensor>> in = {
      {"z.last_written_first", stored(DType::F32, {2, 3, 4, 5}, a.data(), size_t(a.numel()) * 4)},
      {"counts", stored(DType::I64, {3}, counts.data(), 24)},
      {"half", stored(DType::F16, {1, 3}, halves.data(), 6)},
      {"scalar", stored(DType::F32, {}, &scalar, 4)},
      {"empty", stored(DType::F32, {0, 4}, nullptr, 0)},
  };
  write_safetensors(path, in, {{"format", "pt"}, {"note", "round trip"}});
  CHECK(dir.entries() == std::vector<std::string>{"rt.safetensors"});

  SafetensorsFile f = read_safetensors(path);
  REQUIRE(f.tensors.order() ==
          std::vector<std::string>{"z.last_written_first", "counts", "half", "scalar", "empty"});
  for (const auto& [name, t] : in) {
    INFO(name);
    const StoredTensor& r = f.tensors.at(name);
    CHECK(r.dtype == t.dtype);
    CHECK(r.shape == t.shape);
    REQUIRE(r.nbytes == t.nbytes);
    if (t.nbytes) CHECK(std::memcmp(r.data, t.data, t.nbytes) == 0);
  }
  CHECK(f.metadata == std::map<std::string, std::string>{{"format", "pt"}, {"note", "round trip"}});
  // Typed access converts floating dtypes and refuses integers.
  Tensor h = f.tensors.get_float("half");
  CHECK(h.data()[0] == 1.0f);
  CHECK(h.data()[1] == -2.0f);
  CHECK(h.data()[2] == std::ldexp(1.0f, -24));
  CHECK(test::normalised_error(f.tensors.get_float("z.last_written_first"), a) == 0.0);
  CHECK_THROWS_AS(f.tensors.get_float("counts"), WeightError);
  // Every data offset of the file is 8-byte aligned (the header is padded with spaces).
  const std::string bytes = test::read_file(path);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | uint8_t(bytes[size_t(i)]);
  CHECK(hlen % 8 == 0);
}

TEST_CASE("safetensors writes float32 views dense", "[safetensors]") {
  test::TempDir dir;
  Tensor big = test::random_tensor({2, 6, 3, 4}, 5);
  Tensor view = big.channels(1, 3);
  write_safetensors(dir.file("v.safetensors"), {{"output", view}}, {{"core", "Stacked2dCore"}});
  SafetensorsFile f = read_safetensors(dir.file("v.safetensors"));
  CHECK(f.tensors.at("output").shape == std::vector<int64_t>{2, 3, 3, 4});
  CHECK(test::normalised_error(f.tensors.get_float("output"), view) == 0.0);
  CHECK(f.metadata.at("core") == "Stacked2dCore");
}

TEST_CASE("safetensors refuses malformed files with a message naming the problem", "[safetensors]") {
  test::TempDir dir;
  const std::string t8 = floats({1, 2});  // 8 bytes: two F32

  SECTION("shorter than 8 bytes") {
    expect_refused(dir, "abc", {"3 bytes", "shorter than the 8-byte"});
  }
  SECTION("empty file") {
    expect_refused(dir, "", {"0 bytes"});
  }
  SECTION("header length beyond the file") {
    expect_refused(dir, st_image("{}", "", 4096), {"header length 4096", "past the end of the file"});
  }
  SECTION("absurd header length") {
    expect_refused(dir, st_image("{}", "", int64_t(1) << 40), {"exceeds"});
  }
  SECTION("header not JSON") {
    expect_refused(dir, st_image("{\"a\": [1, 2"), {"not valid JSON"});
  }
  SECTION("header not an object") {
    expect_refused(dir, st_image("[1, 2, 3]"), {"not a JSON object"});
  }
  SECTION("tensor entry not an object") {
    expect_refused(dir, st_image(R"({"w": 3})"), {"'w'", "not described"});
  }
  SECTION("unknown dtype") {
    expect_refused(dir, st_image(R"({"w": {"dtype": "F31", "shape": [2], "data_offsets": [0, 8]}})", t8),
                   {"'w'", "unknown dtype", "F31"});
  }
  SECTION("missing field") {
    expect_refused(dir, st_image(R"({"w": {"dtype": "F32", "shape": [2]}})", t8),
                   {"'w'", "lacks", "data_offsets"});
  }
  SECTION("extra field") {
    expect_refused(dir,
                   st_image(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "x": 1}})", t8),
                   {"'w'", "fields other than"});
  }
  SECTION("negative dim") {
    expect_refused(dir, st_image(R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", t8),
                   {"'w'", "negative"});
  }
  SECTION("float dim") {
    expect_refused(dir, st_image(R"({"w": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}})", t8),
                   {"'w'", "non-integer"});
  }
  SECTION("huge dims overflow") {
    expect_refused(
        dir,
        st_image(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", t8),
        {"'w'", "too large"});
  }
  SECTION("data_offsets beyond the data (truncated file)") {
    expect_refused(dir, st_image(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", t8),
                   {"'w'", "beyond the 8 data bytes", "truncated"});
  }
  SECTION("data_offsets decreasing") {
    expect_refused(dir, st_image(R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}})", t8),
                   {"'w'", "decrease"});
  }
  SECTION("data_offsets not integers") {
    expect_refused(dir, st_image(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, "8"]}})", t8),
                   {"'w'", "data_offsets must be two non-negative integers"});
  }
  SECTION("size not matching dtype and shape") {
    expect_refused(dir, st_image(R"({"w": {"dtype": "F64", "shape": [2], "data_offsets": [0, 8]}})", t8),
                   {"'w'", "8 bytes for shape [2] of F64", "needs 16"});
  }
  SECTION("overlapping tensors") {
    expect_refused(dir,
                   st_image(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                            t8),
                   {"'a'", "'b'", "overlap"});
  }
  SECTION("duplicate tensor names") {
    expect_refused(dir,
                   st_image(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                            t8),
                   {"'a'", "appears twice"});
  }
  SECTION("non-string metadata") {
    expect_refused(dir, st_image(R"({"__metadata__": {"epoch": 3}})"),
                   {"__metadata__", "'epoch'", "not a string"});
  }
  SECTION("metadata not an object") {
    expect_refused(dir, st_image(R"({"__metadata__": "x"})"), {"__metadata__", "not an object"});
  }
  SECTION("a field repeated inside a tensor entry") {
    expect_refused(
        dir, st_image(R"({"w": {"dtype": "F32", "shape": [2], "dtype": "F64", "data_offsets": [0, 8]}})", t8),
        {"tensor 'w'", "the key 'dtype' twice"});
  }
  SECTION("a metadata key repeated") {
    expect_refused(dir, st_image(R"({"__metadata__": {"a": "1", "a": "2"}})"), {"__metadata__", "'a' twice"});
  }
  SECTION("data bytes before the first tensor") {
    expect_refused(dir, st_image(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", t8),
                   {"data bytes [0, 4)", "belong to no tensor", "'w'", "entirely indexed"});
  }
  SECTION("a hole between tensors") {
    expect_refused(dir,
                   st_image(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
                            t8 + floats({3})),
                   {"data bytes [4, 8)", "belong to no tensor", "'b'"});
  }
  SECTION("bytes after the last tensor") {
    expect_refused(dir, st_image(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", t8),
                   {"4 data bytes after the last tensor", "entirely indexed"});
    expect_refused(dir, st_image("{}", t8), {"8 data bytes after the last tensor"});
  }
}

TEST_CASE("safetensors: empty tensors may sit anywhere in the tiling, and file order is kept",
          "[safetensors]") {
  test::TempDir dir;
  const std::string path = dir.file("e.safetensors");
  test::write_file(path, st_image(R"({"z": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
                                      "empty": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]},
                                      "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
                                  floats({1, 2})));
  const SafetensorsFile f = read_safetensors(path);
  CHECK(f.tensors.order() == std::vector<std::string>{"z", "empty", "a"});
  CHECK(f.tensors.get_float("z").data()[0] == 2.0f);
}

TEST_CASE("safetensors refuses JSON nested deeper than a header, before anything recurses", "[safetensors]") {
  test::TempDir dir;
  // 100000 levels: copying or printing this value with nlohmann's recursive code overflows the stack.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  SECTION("in a dtype") {
    expect_refused(dir,
                   st_image(R"({"w": {"dtype": )" + deep + R"(, "shape": [1], "data_offsets": [0, 4]}})"),
                   {"nested deeper than 3 levels"});
  }
  SECTION("in the metadata") {
    expect_refused(dir, st_image(R"({"__metadata__": {"a": )" + deep + "}}"),
                   {"nested deeper than 3 levels"});
  }
  SECTION("just one level too deep") {
    expect_refused(dir, st_image(R"({"w": {"dtype": "F32", "shape": [[1]], "data_offsets": [0, 4]}})"),
                   {"nested deeper than 3 levels"});
  }
}

TEST_CASE("safetensors messages quote file values briefly and escape control characters", "[safetensors]") {
  test::TempDir dir;
  // A dtype value of 10000 strings: the message shows the start of it only.
  std::string big = "[";
  for (int i = 0; i < 10000; ++i) big += std::string(i ? "," : "") + "\"xxxxxxxxxx\"";
  big += "]";
  const std::string path = dir.file("big.safetensors");
  test::write_file(path, st_image(R"({"w": {"dtype": )" + big + R"(, "shape": [1], "data_offsets": [0, 4]}})",
                                  floats({1})));
  try {
    read_safetensors(path);
    FAIL("accepted");
  } catch (const FormatError& e) {
    const std::string msg = e.what();
    CHECK_THAT(msg, Contains("unknown dtype [\"xxxxxxxxxx\",") && Contains("..."));
    CHECK(msg.size() < path.size() + 200);
  }
  // A tensor name with a newline and an escape sequence is printed escaped, on one line.
  const std::string evil =
      st_image(R"({"a\nb\u001b[2J": {"dtype": "F31", "shape": [1], "data_offsets": [0, 4]}})", floats({1}));
  test::write_file(path, evil);
  try {
    read_safetensors(path);
    FAIL("accepted");
  } catch (const FormatError& e) {
    const std::string msg = e.what();
    CHECK_THAT(msg, Contains("tensor 'a\\nb\\x1b[2J'"));
    CHECK(msg.find('\n') == std::string::npos);
    CHECK(msg.find('\x1b') == std::string::npos);
  }
}

TEST_CASE("safetensors reading a missing file names it", "[safetensors]") {
  test::TempDir dir;
  try {
    read_safetensors(dir.file("absent.safetensors"));
    FAIL("no error");
  } catch (const FormatError& e) {
    CHECK_THAT(std::string(e.what()), Contains("absent.safetensors") && Contains("cannot open"));
  }
}

TEST_CASE("safetensors writes leave no partial file when they fail", "[safetensors]") {
  test::TempDir dir;
  Tensor a = test::random_tensor({64, 64, 16}, 3);  // 256 KiB

  SECTION("into a missing folder") {
    const std::string path = dir.file("missing/out.safetensors");
    CHECK_THROWS_AS(write_safetensors(path, {{"a", a}}), FormatError);
    CHECK_FALSE(test::file_exists(path));
    CHECK(dir.entries().empty());
  }
  SECTION("a reserved or repeated tensor name") {
    CHECK_THROWS_WITH(write_safetensors(dir.file("x.safetensors"), {{"a", a}, {"a", a}}), Contains("'a'"));
    CHECK_THROWS_AS(write_safetensors(dir.file("x.safetensors"), {{"__metadata__", a}}), FormatError);
    CHECK(dir.entries().empty());
  }
  SECTION("an I/O error in the middle of the data, and the old file kept") {
    const std::string path = dir.file("out.safetensors");
    test::write_file(path, "previous contents");
    // Limit the file size this process may write to 4 KiB: write() then fails with EFBIG part way.
    struct rlimit old {};
    REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
    auto old_handler = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = old;
    lim.rlim_cur = 4096;
    REQUIRE(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    bool threw = false;
    std::string msg;
    try {
      write_safetensors(path, {{"a", a}});
    } catch (const FormatError& e) {
      threw = true;
      msg = e.what();
    }
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_handler);
    CHECK(threw);
    CHECK_THAT(msg, Contains("out.safetensors") && Contains("write failed"));
    CHECK(test::read_file(path) == "previous contents");
    CHECK(dir.entries() == std::vector<std::string>{"out.safetensors"});
  }
}
