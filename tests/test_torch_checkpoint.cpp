// Reading torch.save checkpoints: the reference checkpoints read bitwise to their safetensors twins, every
// storage layout torch writes is honoured, and hostile or damaged files are refused with FormatErrors that
// name the problem (never a crash, never code execution).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "cores/ref_case.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "tests/test_util.h"
#include "weights/safetensors.h"
#include "weights/torch_checkpoint.h"
#include "weights/torch_pickle.h"
#include "weights/weights_file.h"

using namespace npcore;
namespace fs = std::filesystem;

namespace {

std::string pth_fixture(const std::string& name) {
  return test::fixture_dir() + "/pth/" + name;
}

// Same names, dtypes, shapes and bytes; otherwise `why` says what differs. (Names are compared as sets:
// the readers keep each file's order, and the safetensors package writes its header keys sorted by name,
// while torch.save keeps the state_dict's order.)
bool same_tensors(const StateDict& got, const StateDict& want, std::string* why) {
  std::vector<std::string> a = got.order(), b = want.order();
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  if (a != b) {
    *why = "names differ: " + std::to_string(got.size()) + " vs " + std::to_string(want.size()) + " tensors";
    return false;
  }
  for (const std::string& n : want.order()) {
    const StoredTensor &a = got.at(n), &b = want.at(n);
    if (a.dtype != b.dtype || a.shape != b.shape || a.nbytes != b.nbytes) {
      *why = n + ": " + dtype_name(a.dtype) + " " + a.shape_str() + " vs " + dtype_name(b.dtype) + " " +
             b.shape_str();
      return false;
    }
    if (a.nbytes && std::memcmp(a.data, b.data, a.nbytes) != 0) {
      *why = n + ": bytes differ";
      return false;
    }
  }
  return true;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE(f.good());
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// A byte string from a literal (embedded NULs kept).
template <size_t N>
std::string B(const char (&s)[N]) {
  return std::string(s, N - 1);
}

// Unpickles hand-made bytes.
void unpickle(const std::string& bytes) {
  TorchUnpickler up("test pickle");
  up.load(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

}  // namespace

TEST_CASE("every torchvision reference checkpoint reads bitwise to its expected tensors", "[pth]") {
  const std::string dir = test::ref_dir();
  if (dir.empty()) {
    WARN("../shared/ref is absent: torchvision checkpoints skipped (the fixtures below still run)");
    return;
  }
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir + "/torchvision")) {
    const std::string p = e.path().string();
    if (p.size() < 4 || p.compare(p.size() - 4, 4, ".pth") != 0) continue;
    INFO(p);
    TorchCheckpoint ck = read_torch_checkpoint(p);
    SafetensorsFile want = read_safetensors(case_prefix(p) + ".expected.safetensors");
    std::string why;
    const bool same = same_tensors(ck.tensors, want.tensors, &why);
    CAPTURE(why);
    CHECK(same);
    CHECK(ck.format == (p.find(".legacy") != std::string::npos ? TorchFormat::Legacy : TorchFormat::Zip));
    CHECK(ck.copied_bytes == 0);  // dense tensors point into the memory map
    ++n;
  }
  CHECK(n == 5);
}

TEST_CASE("the .pth and .legacy.pth of reference cases hold the tensors of NAME.weights.safetensors",
          "[pth]") {
  const std::string dir = test::ref_dir();
  if (dir.empty()) {
    WARN("../shared/ref is absent: reference .pth cases skipped");
    return;
  }
  for (const char* name : {"seed_stacked2d", "stacked2d_small", "se_small", "rot_small",
                           "seed_transfer_vgg16", "tl_vgg11_l8_rgb"}) {
    const std::string prefix = dir + "/" + name;
    SafetensorsFile want = read_safetensors(prefix + ".weights.safetensors");
    for (const char* suffix : {".pth", ".legacy.pth"}) {
      INFO(prefix + suffix);
      std::string why;
      const bool same = same_tensors(load_weights_file(prefix + suffix), want.tensors, &why);
      CAPTURE(why);
      CHECK(same);
    }
  }
}

TEST_CASE("strides, offsets, shared storages, dtypes, parameters and pickle protocol 4 are honoured",
          "[pth]") {
  SafetensorsFile want = read_safetensors(pth_fixture("layouts.expected.safetensors"));
  for (const char* f : {"layouts.pth", "layouts.legacy.pth", "layouts.proto4.pth"}) {
    INFO(f);
    TorchCheckpoint ck = read_torch_checkpoint(pth_fixture(f));
    std::string why;
    const bool same = same_tensors(ck.tensors, want.tensors, &why);
    CAPTURE(why);
    CHECK(same);
    // Only the non-dense views are copied: transposed [6,4], cols [4,2], broadcast [2,3] (F32).
    CHECK(ck.copied_bytes == (24 + 8 + 6) * 4);
  }
}

TEST_CASE("legacy storage views (pre-1.0 files) are honoured and bounded", "[pth]") {
  TorchCheckpoint ck = read_torch_checkpoint(pth_fixture("legacy_views.pth"));
  std::string why;
  const bool same = same_tensors(
      ck.tensors, read_safetensors(pth_fixture("legacy_views.expected.safetensors")).tensors, &why);
  CAPTURE(why);
  CHECK(same);
  CHECK(ck.copied_bytes == 0);
  CHECK_THROWS_WITH(
      read_torch_checkpoint(pth_fixture("legacy_view_beyond.pth")),
      Catch::Contains("storage view '103' covers elements [6, 6 + 6) of storage '100', which holds 10"));
}

TEST_CASE("weights files are told apart by content", "[pth]") {
  CHECK(load_weights_file(pth_fixture("layouts.expected.safetensors")).size() == 13);
  CHECK(load_weights_file(pth_fixture("layouts.legacy.pth")).size() == 13);
  const fs::path tmp = fs::temp_directory_path() / "npcore_test_not_weights.txt";
  write_file_atomically(tmp.string(), "hello, not weights\n");
  CHECK_THROWS_WITH(load_weights_file(tmp.string()), Catch::Contains("unsupported weights file"));
  const fs::path fake = fs::temp_directory_path() / "npcore_test_not_weights.pth";
  write_file_atomically(fake.string(), "hello, not weights\n");
  CHECK_THROWS_WITH(load_weights_file(fake.string()), Catch::Contains("not a PyTorch checkpoint"));
  fs::remove(tmp);
  fs::remove(fake);
}

TEST_CASE("hostile and damaged checkpoint files are refused with messages naming the problem", "[pth]") {
  struct Case {
    const char* file;
    const char* words;
  };
  const Case cases[] = {
      {"evil_os_system.pth", "refuses global posix.system"},
      {"evil_eval.legacy.pth", "refuses global __builtin__.eval"},
      {"whole_module.pth", "refuses global torch.nn.modules.linear.Linear"},
      {"nested.pth", "nested under 'state_dict'"},
      {"truncated.pth", "not a readable zip archive"},
      {"short_storage.pth",
       "storage '0' (short_storage/data/0) holds 16 bytes; the pickle says 6 F32 elements"},
      {"tensor_beyond_storage.pth",
       "tensor 'w' [4, 3] at offset 0 with stride (3, 1) needs element 11 of storage"},
      {"offset_beyond_storage.pth", "tensor 'w' [2] at offset 10 with stride (1) needs element 11"},
      {"missing_storage.pth", "storage '7' has no zip entry missing_storage/data/7"},
      // Zero strides expanding 4 bytes of storage to 2 GiB (zip and legacy).
      {"expand.pth",
       "tensor 'w' [32768, 16384] with stride (0, 0) repeats the elements of storage '0': it would take "
       "2147483648 bytes from 4 bytes of storage; more than 4 x the storage plus 1 MiB is refused"},
      {"expand.legacy.pth", "it would take 2147483648 bytes from 4 bytes of storage"},
      // Eight 1 MiB expansions of one float: each within the per-tensor rule, together far beyond the file.
      {"expand_many.pth",
       "tensor 'w1' [262144] (a dense copy of a strided tensor) brings the copies made "
       "while reading to 2097152 bytes from a file of 862 bytes; more than 4 x the file "
       "plus 1 MiB is refused"},
      {"bad_crc.pth", "zip entry 'bad_crc/data/0' fails its CRC-32 check"},
      {"pickle_too_big.pth",
       "zip entry 'pickle_too_big/data.pkl' is 67108865 bytes, more than the limit of 67108864"},
  };
  for (const Case& c : cases) {
    INFO(c.file);
    CHECK_THROWS_AS(read_torch_checkpoint(pth_fixture(c.file)), FormatError);
    CHECK_THROWS_WITH(read_torch_checkpoint(pth_fixture(c.file)), Catch::Contains(c.words));
  }
}

TEST_CASE("a shapes-only read lists every tensor without copying, decompressing or CRC-checking", "[pth]") {
  const SafetensorsFile want = read_safetensors(pth_fixture("layouts.expected.safetensors"));
  for (const char* f : {"layouts.pth", "layouts.legacy.pth"}) {
    INFO(f);
    const TorchCheckpoint ck = read_torch_checkpoint(pth_fixture(f), TensorData::ShapesOnly);
    CHECK(ck.copied_bytes == 0);
    REQUIRE(ck.tensors.order() == want.tensors.order());
    for (const std::string& n : want.tensors.order()) {
      INFO(n);
      CHECK(ck.tensors.at(n).dtype == want.tensors.at(n).dtype);
      CHECK(ck.tensors.at(n).shape == want.tensors.at(n).shape);
      CHECK(ck.tensors.at(n).nbytes == want.tensors.at(n).nbytes);
    }
    CHECK(ck.tensors.at("transposed").data == nullptr);  // a strided view: not gathered
    CHECK_THROWS_WITH(ck.tensors.get_float("transposed"), Catch::Contains("its data was not read"));
  }
  // The CRC belongs to the data, which is not read; the expansion rule is about shapes and still holds.
  CHECK(read_torch_checkpoint(pth_fixture("bad_crc.pth"), TensorData::ShapesOnly).tensors.size() == 1);
  CHECK_THROWS_WITH(read_torch_checkpoint(pth_fixture("expand.pth"), TensorData::ShapesOnly),
                    Catch::Contains("more than 4 x the storage plus 1 MiB"));
  CHECK_THROWS_WITH(read_torch_checkpoint(pth_fixture("expand_many.pth"), TensorData::ShapesOnly),
                    Catch::Contains("more than 4 x the file plus 1 MiB"));
}

TEST_CASE("one sniffer tells the formats apart; read_state_dict reads both state_dict formats", "[pth]") {
  auto kind = [](const std::string& bytes) {
    return sniff_file_kind(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  };
  CHECK(kind(B("PK\x03\x04....")) == FileKind::TorchZip);
  CHECK(kind(B("PK\x05\x06....")) == FileKind::TorchZip);
  CHECK(kind(B("\x80\x02\x8a\x0a")) == FileKind::TorchLegacy);
  CHECK(kind(B("\x93NUMPY\x01\x00")) == FileKind::Npy);
  CHECK(kind(B("\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}      ")) == FileKind::Safetensors);
  CHECK(kind(std::string(257, '\0') + "ustar\0" + std::string(300, '\0')) == FileKind::TorchTar);
  CHECK(kind("hello") == FileKind::Unknown);
  CHECK(kind("") == FileKind::Unknown);

  const StateDictFile zip = read_state_dict(pth_fixture("layouts.pth"));
  CHECK(zip.format == "pytorch zip");
  CHECK(zip.copied_bytes == (24 + 8 + 6) * 4);
  CHECK(read_state_dict(pth_fixture("layouts.legacy.pth")).format == "pytorch legacy");
  const StateDictFile st = read_state_dict(pth_fixture("layouts.expected.safetensors"));
  CHECK(st.format == "safetensors");
  CHECK(st.tensors.size() == 13);
  CHECK(st.file_bytes == fs::file_size(pth_fixture("layouts.expected.safetensors")));
  CHECK_THROWS_WITH(read_state_dict(test::fixture_dir() + "/npy/f4_7.npy"),
                    Catch::Contains("f4_7.npy: a NumPy .npy array, not a state_dict"));
}

TEST_CASE("the unpickler refuses globals, calls and opcodes a state_dict does not need", "[pth]") {
  using std::string;
  // os.system('ls') the protocol-2 way, and builtins.eval the protocol-4 way (STACK_GLOBAL).
  CHECK_THROWS_WITH(unpickle(B("\x80\x02"
                               "cos\nsystem\nX\x02\x00\x00\x00ls\x85R.")),
                    Catch::Contains("refuses global os.system"));
  CHECK_THROWS_WITH(unpickle(B("\x80\x04\x8c\x08"
                               "builtins\x8c\x04"
                               "eval\x93\x8c\x03"
                               "1+1\x85R.")),
                    Catch::Contains("refuses global builtins.eval"));
  CHECK_THROWS_WITH(unpickle(B("\x80\x02\xff.")), Catch::Contains("unknown pickle opcode 0xff at byte 2"));
  CHECK_THROWS_WITH(unpickle(B("\x80\x02)\x81.")), Catch::Contains("refuses pickle opcode NEWOBJ"));
  CHECK_THROWS_WITH(unpickle(B("\x80\x02"
                               "ctorch\nFloatStorage\n)R.")),
                    Catch::Contains("refuses to call torch.FloatStorage"));
  CHECK_THROWS_WITH(unpickle(B("\x80\x02]}b.")), Catch::Contains("refuses BUILD on a list"));
  CHECK_THROWS_WITH(unpickle(B("\x80\x02X\x06\x00\x00\x00moduleN\x86Q.")),
                    Catch::Contains("whole nn.Module"));
  CHECK_THROWS_WITH(unpickle(B("\x80\x02X\x03\x00\x00\x00"
                               "foo\x85Q.")),
                    Catch::Contains("unknown persistent id type 'foo'"));
}

TEST_CASE("the unpickler survives malformed pickles with clear errors", "[pth]") {
  using std::string;
  CHECK_THROWS_WITH(unpickle(B("\x80\x02t.")), Catch::Contains("no MARK"));
  CHECK_THROWS_WITH(unpickle(B("\x80\x02s.")), Catch::Contains("stack underflow"));
  CHECK_THROWS_WITH(unpickle(B("\x80\x02(.")), Catch::Contains("stack underflow"));  // STOP with only a MARK
  CHECK_THROWS_WITH(unpickle(B("\x80\x02h\x05.")), Catch::Contains("memo index 5 was never stored"));
  CHECK_THROWS_WITH(unpickle(B("\x80\x02X\xff\xff\xff\xff"
                               "ab.")),
                    Catch::Contains("truncated: needs 4294967295 more bytes"));
  CHECK_THROWS_WITH(unpickle(B("\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xff.")),
                    Catch::Contains("truncated"));
  CHECK_THROWS_WITH(unpickle(B("\x80\x02\x8b\x00\x00\x00\x10.")), Catch::Contains("LONG4 of"));
  CHECK_THROWS_WITH(unpickle(B("\x80\x02N")), Catch::Contains("no STOP"));
  CHECK_THROWS_WITH(unpickle(B("\x80\x02X\x02\x00\x00\x00\xc3\x28.")), Catch::Contains("not valid UTF-8"));
  CHECK_THROWS_WITH(unpickle(B("\x80\x09N.")), Catch::Contains("unsupported pickle protocol 9"));
  CHECK_THROWS_WITH(unpickle(B("\x80\x02"
                               "cos\nsys")),
                    Catch::Contains("not terminated by a newline"));
  CHECK_THROWS_WITH(unpickle(B("\x80\x02") + std::string(5000, '(') + "."), Catch::Contains("nested MARKs"));
  CHECK_THROWS_WITH(unpickle(B("\x80\x02]N}b.")), Catch::Contains("refuses BUILD"));
  // A list that contains itself is legal pickle; it must neither recurse nor leak into a crash.
  CHECK_NOTHROW(
      unpickle(B("\x80\x02]q\x00h\x00"
                 "a.")));
}

TEST_CASE("the unpickler walks nothing recursively: 100000 nested tuples load and free", "[pth]") {
  TorchUnpickler up("test pickle");
  const std::string deep = B("\x80\x02N") + std::string(100000, '\x85') + ".";  // ((((None,),),)...)
  const PyValue* v = &up.load(reinterpret_cast<const uint8_t*>(deep.data()), deep.size());
  int depth = 0;
  while (v->kind == PyValue::Kind::Tuple) {
    REQUIRE(v->items.size() == 1);
    v = v->items[0];
    ++depth;
  }
  CHECK(depth == 100000);
  CHECK(v->kind == PyValue::Kind::None);
}

TEST_CASE("the unpickler's memory is bounded by the pickle's bytes", "[pth]") {
  // A list of 1000 pairs, then OrderedDict(list) again and again: each REDUCE costs 7 bytes of pickle
  // and copies 2000 pointers. Without a budget, 64 KiB of pickle held 1.2 GB.
  std::string p =
      B("\x80\x02"
        "ccollections\nOrderedDict\nq\x00U\x01"
        "aU\x01"
        "b\x86q\x01"
        "0](");
  for (int i = 0; i < 1000; ++i) p += B("h\x01");
  p += B("eq\x02");
  SECTION("a few copies are fine") {
    TorchUnpickler up("amp.pkl");
    std::string ok = p;
    for (int i = 0; i < 2; ++i) ok += B("h\x00h\x02\x85R0");
    ok += B("N.");
    CHECK_NOTHROW(up.load(reinterpret_cast<const uint8_t*>(ok.data()), ok.size()));
  }
  SECTION("many copies are refused, naming the source and the limit") {
    std::string bomb = p;
    for (int i = 0; i < 10000; ++i) bomb += B("h\x00h\x02\x85R0");
    bomb += B("N.");
    TorchUnpickler up("amp.pkl");
    CHECK_THROWS_AS(up.load(reinterpret_cast<const uint8_t*>(bomb.data()), bomb.size()), FormatError);
    TorchUnpickler up2("amp.pkl");
    CHECK_THROWS_WITH(up2.load(reinterpret_cast<const uint8_t*>(bomb.data()), bomb.size()),
                      Catch::Contains("amp.pkl: the pickle builds") &&
                          Catch::Contains("more than the limit of 4 per byte read plus 4096") &&
                          Catch::Contains("pickle opcode REDUCE"));
  }
  SECTION("None, True and False are shared, so repeating them costs nothing") {
    std::string nones = B("\x80\x02");
    for (int i = 0; i < 200000; ++i) nones += B("N0\x88\x30\x89\x30");
    nones += B("(N\x88\x89N\x88\x89t.");
    TorchUnpickler up("nones.pkl");
    const PyValue& t = up.load(reinterpret_cast<const uint8_t*>(nones.data()), nones.size());
    REQUIRE(t.items.size() == 6);
    CHECK(t.items[0] == t.items[3]);
    CHECK(t.items[1] == t.items[4]);
    CHECK(t.items[2] == t.items[5]);
    CHECK(t.items[1]->i == 1);
    CHECK(t.items[2]->i == 0);
  }
}

TEST_CASE("the unpickler reads what state_dicts hold: OrderedDict (Python 2 form too), big ints, floats",
          "[pth]") {
  TorchUnpickler up("test pickle");
  // OrderedDict([['a', 1.5]]) as Python 2 pickled it: the items as REDUCE's argument.
  const std::string od =
      B("\x80\x02"
        "ccollections\nOrderedDict\n]"
        "(U\x01"
        "aG\x3f\xf8\x00\x00\x00\x00\x00\x00"
        "la\x85R.");
  const PyValue& v = up.load(reinterpret_cast<const uint8_t*>(od.data()), od.size());
  REQUIRE(v.kind == PyValue::Kind::Dict);
  CHECK(v.ordered);
  REQUIRE(v.items.size() == 2);
  CHECK(v.items[0]->s == "a");
  CHECK(v.items[1]->f == 1.5);
  // torch's legacy magic number is a 10-byte LONG1.
  const std::string magic = B("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.");
  const PyValue& m = up.load(reinterpret_cast<const uint8_t*>(magic.data()), magic.size());
  CHECK(m.kind == PyValue::Kind::BigInt);
  CHECK(m.s.size() == 10);
  const std::string neg = B("\x80\x02\x8a\x01\xfe.");  // LONG1 -2
  CHECK(up.load(reinterpret_cast<const uint8_t*>(neg.data()), neg.size()).i == -2);
}

TEST_CASE("mutated and truncated checkpoints raise npcore errors, never crash", "[pth]") {
  // Bytes flipped anywhere (pickle opcodes and lengths, zip headers, storage counts) and every truncation.
  // A run without sanitizers checks the errors; an ASan/UBSan build checks memory safety as well.
  Rng rng(2024);
  for (const char* name : {"layouts.legacy.pth", "layouts.pth", "layouts.proto4.pth"}) {
    const std::vector<uint8_t> orig = read_bytes(pth_fixture(name));
    int ok = 0, refused = 0;
    for (int iter = 0; iter < 1500; ++iter) {
      std::vector<uint8_t> b = orig;
      const int flips = 1 + int(rng.next_u64() % 4);
      // Half of the mutations hit the first 600 bytes, where the pickle (or the first zip entry) is.
      const size_t span = (iter % 2) ? b.size() : std::min<size_t>(b.size(), 600);
      for (int k = 0; k < flips; ++k) b[rng.next_u64() % span] = uint8_t(rng.next_u64());
      try {
        TorchCheckpoint ck = parse_torch_checkpoint(b.data(), b.size(), name, nullptr);
        // Touch every byte the reader claims is there.
        unsigned sum = 0;
        for (const auto& [n, t] : ck.tensors.tensors())
          for (size_t i = 0; i < t.nbytes; ++i) sum += t.data[i];
        (void)sum;
        ++ok;
      } catch (const Error&) {
        ++refused;
      }
    }
    INFO(name << ": " << ok << " mutated files read, " << refused << " refused");
    CHECK(ok + refused == 1500);
    CHECK(refused > 300);
    for (size_t len = 0; len < orig.size(); ++len) {
      INFO(name << " truncated to " << len << " bytes");
      CHECK_THROWS_AS(parse_torch_checkpoint(orig.data(), len, name, nullptr), FormatError);
    }
  }
}
