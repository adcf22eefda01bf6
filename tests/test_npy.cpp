// .npy: files written by numpy 1.24 (tests/fixtures/npy, made by make_npy_fixtures.py) read with the
// right values and written byte-identically; round trips; refusal of malformed, unsupported and
// hostile headers (FormatError naming the file and the rule); atomic writes.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "engine/error.h"
#include "tests/test_util.h"
#include "weights/npy.h"

using namespace npcore;
using Catch::Matchers::Contains;

namespace {

std::string npy_dir() {
  return test::fixture_dir() + "/npy/";
}

// A .npy image with `dict` as the header text, padded like numpy's (version 1.0 unless given).
std::string npy_image(const std::string& dict, const std::string& data, int major = 1) {
  std::string h = dict;
  const size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + h.size() + 1) % 64) h.push_back(' ');
  h.push_back('\n');
  std::string out = "\x93NUMPY";
  out.push_back(char(major));
  out.push_back('\0');
  const size_t len_bytes = major == 1 ? 2 : 4;
  for (size_t i = 0; i < len_bytes; ++i) out.push_back(char((h.size() >> (8 * i)) & 0xff));
  return out + h + data;
}

std::string f32_bytes(std::initializer_list<float> v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), std::data(v), s.size());
  return s;
}

void expect_refused(const test::TempDir& dir, const std::string& bytes, std::vector<std::string> words) {
  const std::string path = dir.file("bad.npy");
  test::write_file(path, bytes);
  INFO("expecting the words: " << Catch::Detail::stringify(words));
  try {
    Tensor t = read_npy(path);
    FAIL("read_npy accepted a malformed file, shape " << t.shape().str());
  } catch (const FormatError& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    CHECK_THAT(msg, Contains(path));
    for (const auto& w : words) CHECK_THAT(msg, Contains(w));
  }
}

}  // namespace

TEST_CASE("npy reads float32 files written by numpy", "[npy]") {
  SECTION("3-D, C order") {
    Tensor t = read_npy(npy_dir() + "f4_2x3x4.npy");
    REQUIRE(t.shape() == Shape{2, 3, 4});
    for (int64_t i = 0; i < 24; ++i) REQUIRE(t.data()[i] == float(i) * 0.25f - 3.0f);
  }
  SECTION("4-D") {
    Tensor t = read_npy(npy_dir() + "f4_2x1x3x5.npy");
    REQUIRE(t.shape() == Shape{2, 1, 3, 5});
    for (int64_t i = 0; i < 30; ++i) REQUIRE(t.data()[i] == float(i) * 0.5f - 7.0f);
  }
  SECTION("1-D, 0-D and empty") {
    Tensor v = read_npy(npy_dir() + "f4_7.npy");
    REQUIRE(v.shape() == Shape{7});
    for (int64_t i = 0; i < 7; ++i) REQUIRE(v.data()[i] == float(i) - 3.0f);
    Tensor s = read_npy(npy_dir() + "f4_scalar.npy");
    CHECK(s.rank() == 0);
    CHECK(s.data()[0] == 1.5f);
    Tensor e = read_npy(npy_dir() + "f4_0x3.npy");
    CHECK(e.shape() == Shape{0, 3});
  }
  SECTION("header versions 2.0 and 3.0") {
    Tensor a = read_npy(npy_dir() + "f4_v2_3.npy"), b = read_npy(npy_dir() + "f4_v3_3.npy");
    REQUIRE(a.shape() == Shape{3});
    REQUIRE(b.shape() == Shape{3});
    for (int i = 0; i < 3; ++i) {
      CHECK(a.data()[i] == float(i + 1));
      CHECK(b.data()[i] == float(i + 4));
    }
    const std::string bytes = test::read_file(npy_dir() + "f4_v3_3.npy");
    NpyHeader h = parse_npy_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "v3");
    CHECK(h.major == 3);
    CHECK(h.data_offset % 64 == 0);
  }
}

TEST_CASE("npy converts float64 and float16 to float32", "[npy]") {
  Tensor d = read_npy(npy_dir() + "f8_5.npy");
  REQUIRE(d.shape() == Shape{5});
  for (int i = 0; i < 5; ++i) CHECK(d.data()[i] == float(double(i) / 3.0));
  Tensor h = read_npy(npy_dir() + "f2_2x2.npy");
  REQUIRE(h.shape() == Shape{2, 2});
  CHECK(h.data()[0] == 0.5f);
  CHECK(h.data()[1] == -1.25f);
  CHECK(h.data()[2] == 65504.0f);
  CHECK(h.data()[3] == std::ldexp(1.0f, -24));  // float16's smallest subnormal
}

TEST_CASE("npy refuses Fortran order and non-float dtypes naming the file and the rule", "[npy]") {
  const std::string f = npy_dir() + "f4_fortran_3x2.npy";
  CHECK_THROWS_WITH(read_npy(f), Contains(f) && Contains("Fortran order") && Contains("only C order"));
  CHECK_THROWS_AS(read_npy(f), FormatError);
  const std::string i = npy_dir() + "i4_3.npy";
  CHECK_THROWS_WITH(read_npy(i), Contains(i) && Contains("'<i4'") && Contains("not supported"));
}

TEST_CASE("npy writes the bytes numpy.save writes", "[npy]") {
  test::TempDir dir;
  for (const char* name : {"f4_2x3x4.npy", "f4_2x1x3x5.npy", "f4_7.npy", "f4_scalar.npy", "f4_0x3.npy"}) {
    INFO(name);
    const std::string numpy_bytes = test::read_file(npy_dir() + name);
    Tensor t = read_npy(npy_dir() + name);
    write_npy(dir.file(name), t);
    const std::string ours = test::read_file(dir.file(name));
    CHECK(ours.size() == numpy_bytes.size());
    CHECK(ours == numpy_bytes);
    CHECK(npy_header(t.shape()).size() % 64 == 0);
  }
}

TEST_CASE("npy round trip of shapes up to rank 6 and of views", "[npy]") {
  test::TempDir dir;
  for (const Shape& s :
       {Shape{1}, Shape{3, 5}, Shape{2, 1, 36, 64}, Shape{1, 2, 3, 4, 5, 6}, Shape{12345678, 0}}) {
    INFO(s.str());
    Tensor t = test::random_tensor(s, 17);
    write_npy(dir.file("t.npy"), t);
    Tensor r = read_npy(dir.file("t.npy"));
    REQUIRE(r.shape() == s);
    if (t.numel()) CHECK(std::memcmp(r.data(), t.data(), size_t(t.numel()) * 4) == 0);
  }
  // A channel view is written dense, its own values only.
  Tensor big = test::random_tensor({3, 8, 5, 7}, 23);
  Tensor view = big.channels(2, 4);
  write_npy(dir.file("view.npy"), view);
  CHECK(test::normalised_error(read_npy(dir.file("view.npy")), view) == 0.0);
  CHECK(dir.entries() == std::vector<std::string>{"t.npy", "view.npy"});
}

TEST_CASE("npy refuses malformed and hostile headers", "[npy]") {
  test::TempDir dir;
  const std::string six = f32_bytes({1, 2, 3, 4, 5, 6});
  const std::string ok_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";

  SECTION("a valid hand-made file is accepted (the baseline of the cases below)") {
    test::write_file(dir.file("ok.npy"), npy_image(ok_dict, six));
    CHECK(read_npy(dir.file("ok.npy")).shape() == Shape{2, 3});
    test::write_file(
        dir.file("ok2.npy"),
        npy_image("{\"shape\": (2L, 3L), \"fortran_order\": False, \"descr\": \"<f4\"}", six, 2));
    CHECK(read_npy(dir.file("ok2.npy")).shape() == Shape{2, 3});
  }
  SECTION("not .npy") {
    expect_refused(dir, "PK\x03\x04 a zip file", {"magic string"});
  }
  SECTION("too short") {
    expect_refused(dir, "\x93NUM", {"magic string"});
  }
  SECTION("unsupported version") {
    std::string b = npy_image(ok_dict, six);
    b[6] = 4;
    expect_refused(dir, b, {"version 4.0", "not supported"});
  }
  SECTION("header length beyond the file") {
    std::string b = npy_image(ok_dict, six);
    b[8] = char(0xff);
    b[9] = char(0x0f);
    expect_refused(dir, b.substr(0, 40), {"header length 4095", "past the end"});
  }
  SECTION("header longer than numpy allows") {
    std::string b = npy_image(ok_dict, six, 2);
    b[8] = 0;
    b[9] = 0;
    b[10] = 1;  // bytes 8..11: the length, 65536
    b[11] = 0;
    expect_refused(dir, b, {"exceeds 10000"});
  }
  SECTION("header is not a dict") {
    expect_refused(dir, npy_image("['<f4', False, (2, 3)]", six), {"dict literal"});
  }
  SECTION("code in the header is never evaluated") {
    // Refused at the first token that is not a literal. The read runs with the scratch folder as the
    // working directory, so a reader that evaluated the header would leave 'pwned' beside bad.npy.
    const std::filesystem::path cwd = std::filesystem::current_path();
    std::filesystem::current_path(dir.path());
    expect_refused(dir, npy_image("{'descr': __import__('os').system('touch pwned'), 'shape': (2, 3)}", six),
                   {"'descr'", "quoted string"});
    std::filesystem::current_path(cwd);
    CHECK(dir.entries() == std::vector<std::string>{"bad.npy"});
  }
  SECTION("missing key") {
    expect_refused(dir, npy_image("{'descr': '<f4', 'shape': (2, 3), }", six), {"lacks 'fortran_order'"});
  }
  SECTION("unknown key") {
    expect_refused(dir, npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'x': 1}", six),
                   {"unexpected key 'x'"});
  }
  SECTION("duplicate key") {
    expect_refused(dir,
                   npy_image("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (6,)}", six),
                   {"'descr' appears twice"});
  }
  SECTION("fortran_order not a bool") {
    expect_refused(dir, npy_image("{'descr': '<f4', 'fortran_order': 0, 'shape': (6,)}", six),
                   {"True or False"});
  }
  SECTION("big-endian and structured dtypes") {
    expect_refused(dir, npy_image("{'descr': '>f4', 'fortran_order': False, 'shape': (6,)}", six),
                   {"big-endian"});
    expect_refused(dir, npy_image("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,)}", six),
                   {"structured"});
    expect_refused(dir, npy_image("{'descr': '|O', 'fortran_order': False, 'shape': (6,)}", six), {"'|O'"});
  }
  SECTION("shape: negative, float, not a tuple, unclosed, one element without comma") {
    expect_refused(dir, npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (-6,)}", six),
                   {"negative"});
    expect_refused(dir, npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (2.0, 3)}", six),
                   {"'shape'", "non-negative integers"});
    expect_refused(dir, npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3]}", six),
                   {"tuple"});
    expect_refused(dir, npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3}", six),
                   {"'shape'"});
    expect_refused(dir, npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (6)}", six),
                   {"write (6,)"});
    expect_refused(
        dir, npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", six),
        {"above 2^56"});
  }
  SECTION("rank above 6") {
    expect_refused(dir, npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,6)}", six),
                   {"7 dimensions"});
  }
  SECTION("text after the dict") {
    expect_refused(dir, npy_image(ok_dict + " junk", six), {"after the header dict"});
  }
  SECTION("truncated data: expected and actual bytes") {
    expect_refused(dir, npy_image(ok_dict, six.substr(0, 20)), {"truncated", "needs 24 bytes", "has 20"});
  }
  SECTION("trailing data") {
    expect_refused(dir, npy_image(ok_dict, six + "xxxx"), {"needs 24 bytes", "has 28", "trailing"});
  }
}

TEST_CASE("npy writes atomically", "[npy]") {
  test::TempDir dir;
  Tensor t = test::random_tensor({4, 4}, 1);
  const std::string path = dir.file("no/such/folder/x.npy");
  CHECK_THROWS_AS(write_npy(path, t), FormatError);
  CHECK_THROWS_WITH(write_npy(path, t), Contains("x.npy"));
  CHECK(dir.entries().empty());
  // Overwriting replaces the file whole.
  write_npy(dir.file("x.npy"), t);
  write_npy(dir.file("x.npy"), test::random_tensor({2}, 2));
  CHECK(read_npy(dir.file("x.npy")).shape() == Shape{2});
  CHECK(dir.entries() == std::vector<std::string>{"x.npy"});
}
