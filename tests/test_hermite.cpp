// HermiteConv2D: the engine's Hermite basis and rotation matrices against PyTorch's, the filter bank and
// output of the single-layer dumps on every backend, rotation equivariance, and refusals.
#include <catch2/catch.hpp>

#include <cmath>
#include <set>
#include <tuple>

#include "cores/factory.h"
#include "cores/ref_case.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "layers/hermite_conv2d.h"
#include "tests/rotation_test_util.h"
#include "tests/test_util.h"
#include "weights/safetensors.h"
#include "weights/weight_spec.h"

using namespace npcore;

namespace {

// Single-layer HermiteConv2D cases: ../shared/ref/layers/hermite_*, else the project's fixture copies.
std::vector<std::string> hermite_cases() {
  std::vector<std::string> out;
  for (const std::string& dir :
       {test::ref_dir().empty() ? std::string() : test::ref_dir() + "/layers", test::fixture_dir() + "/layers"})
    for (const std::string& c : test::list_cases(dir))
      if (c.substr(c.rfind('/') + 1).rfind("hermite_", 0) == 0) out.push_back(c);
  return out;
}

// max|a - b| / max|b| between the engine's double values and a stored float tensor.
double basis_error(const std::vector<double>& own, const Tensor& file) {
  REQUIRE(int64_t(own.size()) == file.numel());
  double err = 0, mx = 0;
  for (size_t i = 0; i < own.size(); ++i) {
    err = std::max(err, std::fabs(double(file.data()[i]) - own[i]));
    mx = std::max(mx, std::fabs(own[i]));
  }
  return err / mx;
}

// Compares every HermiteConv2D of `layers` with its stored H and Rs; records (k, up, R) in `seen`.
// Bound: 1e-6 of max|H| (float32 storage rounds to 6e-8 of each value; PyTorch computed in double too).
void check_basis(const std::vector<const HermiteConv2D*>& layers, const StateDict& sd,
                 std::set<std::tuple<int64_t, int64_t, int64_t>>& seen) {
  for (const HermiteConv2D* h : layers) {
    const auto& p = h->params();
    INFO(h->label() << ": k " << p.filter_size << ", upsampling " << p.upsampling << ", rotations "
                    << p.num_rotations);
    const double eh = basis_error(h->basis().H, sd.get_float(h->key("rotate_hermite.H")));
    CHECK(eh <= 1e-6);
    double er = 0;
    for (int64_t i = 0; i < p.num_rotations; ++i)
      er = std::max(er, basis_error(h->rotations()[size_t(i)],
                                    sd.get_float(h->key("rotate_hermite.Rs." + std::to_string(i)))));
    CHECK(er <= 1e-6);
    seen.insert({p.filter_size, p.upsampling, p.num_rotations});
  }
}

HermiteConv2dParams params(int64_t in, int64_t out, int64_t k, int64_t R, int64_t up, bool first) {
  HermiteConv2dParams p;
  p.input_features = in;
  p.output_features = out;
  p.filter_size = k;
  p.pad_h = p.pad_w = k / 2;
  p.num_rotations = R;
  p.upsampling = up;
  p.first_layer = first;
  return p;
}

Tensor run_layer(Layer& l, const Tensor& x, Backend b) {
  EngineOptions opt;
  opt.backend = b;
  prepare_layer(l, opt);
  auto op = l.plan(x.shape(), opt);
  Tensor y(op->out_shape);
  AlignedBuffer scratch = aligned_floats(op->scratch_floats());
  auto st = op->make_state();
  op->run(x, y, scratch.get(), st.get());
  return y;
}

}  // namespace

TEST_CASE("hermite_2d: descriptors, unit norms and orthogonal rotation matrices", "[hermite]") {
  const HermiteBasis b = hermite_2d(4, 8, 2.0 * std::sqrt(4.0));
  // Ranks 0..3: mu {0}, {1,1}, {0,2,2}, {1,1,3,3}.
  CHECK(std::string(b.desc.begin(), b.desc.end()) == "zrizririri");
  CHECK(b.mu == std::vector<int64_t>{0, 1, 1, 0, 2, 2, 1, 1, 3, 3});
  const int64_t n = b.size(), P = b.npts;
  for (int64_t f = 0; f < n; ++f) {
    double ss = 0;
    for (int64_t i = 0; i < P * P; ++i) ss += b.H[size_t(f * P * P + i)] * b.H[size_t(f * P * P + i)];
    CHECK(std::fabs(ss - 1.0) < 1e-12);
  }
  // R(a) R(a)^T = I and R(a) R(b) = R(a + b).
  const auto Ra = hermite_rotation_matrix(b, 0.7), Rb = hermite_rotation_matrix(b, 0.4),
             Rab = hermite_rotation_matrix(b, 1.1);
  double orth = 0, comp = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0, t = 0;
      for (int64_t m = 0; m < n; ++m) {
        s += Ra[size_t(i * n + m)] * Ra[size_t(j * n + m)];
        t += Ra[size_t(i * n + m)] * Rb[size_t(m * n + j)];
      }
      orth = std::max(orth, std::fabs(s - (i == j ? 1.0 : 0.0)));
      comp = std::max(comp, std::fabs(t - Rab[size_t(i * n + j)]));
    }
  CHECK(orth < 1e-14);
  CHECK(comp < 1e-14);
}

TEST_CASE("hermite basis and rotation matrices agree with the PyTorch dumps", "[hermite]") {
  if (test::ref_dir().empty()) {
    WARN("../shared/ref absent: skipped the basis comparison over the reference cores");
  }
  std::set<std::tuple<int64_t, int64_t, int64_t>> seen;
  for (const std::string& c : hermite_cases()) {
    INFO(c);
    auto layer = make_module(read_text_file(c + ".json"), c + ".json");
    const auto* h = dynamic_cast<const HermiteConv2D*>(layer.get());
    REQUIRE(h);
    check_basis({h}, read_safetensors(c + ".weights.safetensors").tensors, seen);
  }
  if (!test::ref_dir().empty()) {
    std::vector<std::string> cores;
    for (const std::string& c : test::list_cases(test::ref_dir())) {
      const std::string base = c.substr(c.rfind('/') + 1);
      if (base.rfind("rot_", 0) == 0 || base == "seed_rotation_equivariant") cores.push_back(c);
    }
    CHECK(cores.size() >= 9);
    for (const std::string& c : cores) {
      INFO(c);
      auto core = load_core(c + ".json");
      std::vector<const HermiteConv2D*> hs;
      for (const auto& block : core->blocks())
        for (const auto& child : block->children())
          if (auto* h = dynamic_cast<const HermiteConv2D*>(child.get())) hs.push_back(h);
      CHECK(hs.size() == core->blocks().size());
      check_basis(hs, read_safetensors(c + ".weights.safetensors").tensors, seen);
    }
    // k 3..9, upsampling 1..3, 4, 6 and 8 rotations.
    CHECK(seen.size() >= 8);
  }
  CHECK(!seen.empty());
}

TEST_CASE("HermiteConv2D filter bank and output match the single-layer dumps on every backend", "[hermite]") {
  const auto cases = hermite_cases();
  REQUIRE(!cases.empty());
  if (test::ref_dir().empty())
    WARN("../shared/ref absent: only the fixture copies of hermite_* were checked");
  for (const std::string& c : cases)
    for (Backend b : all_backends()) {
      CaseOptions opt;
      opt.engine.backend = b;
      const CaseResult r = run_reference_case(c, opt);
      INFO(c << " on " << backend_name(b) << ": worst normalised error " << r.worst_normalised);
      CHECK(r.pass);  // max|y - ref| <= 1e-4 * max(1, max|ref|) on output and filter_bank
      bool bank = false;
      for (const TensorCheck& t : r.checks) {
        INFO(t.name << " normalised " << t.normalised << " " << t.problem);
        CHECK(t.pass);
        if (t.name == "filter_bank") {
          bank = true;
          // The bank is computed in double and rounded once: float32 rounding of its values.
          CHECK(t.normalised <= 1e-6);
        }
      }
      CHECK(bank);
    }
}

TEST_CASE("HermiteConv2D is equivariant to 90-degree rotations", "[hermite]") {
  // Rotating the input by 90 degrees (numpy.rot90) rotates the output and cycles its rotation channels
  // forward by R/4 (rotation r of the new output is rotation r - R/4 of the old); a hidden layer needs
  // its input's rotation channels cycled the same way. Odd kernels, "same" padding, stride 1, square
  // input. Bound: the filters of rotations r and r + R/4 are exact 90-degree rotations of each other up to
  // one float32 rounding, and the conv sums the same products in another order (the reference backend
  // accumulates in double and is exact here; float32 accumulation over in*k*k <= 1944 terms stays far
  // below): 1e-5 of max|y|, on every backend.
  struct Case {
    int64_t in, out, k, R, up;
    bool first;
  };
  for (const Case& c : {Case{1, 3, 5, 8, 2, true}, Case{3, 2, 7, 4, 3, true}, Case{2 * 8, 3, 5, 8, 2, false},
                        Case{3 * 4, 2, 3, 4, 1, false}, Case{2 * 12, 2, 9, 12, 2, false}}) {
    INFO("in " << c.in << ", out " << c.out << ", k " << c.k << ", R " << c.R << ", up " << c.up
               << (c.first ? ", first layer" : ", hidden layer"));
    HermiteConv2D layer("", params(c.in, c.out, c.k, c.R, c.up, c.first));
    Rng rng(7);
    layer.init(rng);
    const Tensor x = test::random_tensor({2, c.in, 13, 13}, 11);
    const int64_t s = c.R / 4;
    const Tensor gx = c.first ? test::rot90(x) : test::cycle_rotations(test::rot90(x), c.R, s);
    for (Backend b : all_backends()) {
      INFO("backend " << backend_name(b));
      const Tensor y = run_layer(layer, x, b);
      const Tensor gy = run_layer(layer, gx, b);
      const double err = test::normalised_error(gy, test::cycle_rotations(test::rot90(y), c.R, s));
      INFO("normalised error " << err);
      CHECK(err <= 1e-5);
      // The other direction is wrong by O(1): the test can tell them apart.
      const Tensor gx_wrong = c.first ? gx : test::cycle_rotations(test::rot90(x), c.R, -s);
      const Tensor gy_wrong = run_layer(layer, gx_wrong, b);
      CHECK(test::normalised_error(gy_wrong, test::cycle_rotations(test::rot90(y), c.R, -s)) > 0.1);
    }
  }
}

TEST_CASE("HermiteConv2D computes its filter bank once, at prepare", "[hermite]") {
  HermiteConv2D layer("features.layer0.hermite_conv", params(2, 3, 5, 4, 2, true));
  Rng rng(3);
  layer.init(rng);
  const Tensor x = test::random_tensor({1, 2, 9, 9}, 5);
  const Tensor y1 = run_layer(layer, x, Backend::Reference);
  const Tensor bank = layer.debug_tensors().at(0).second;
  CHECK(bank.shape() == Shape{12, 2, 5, 5});
  // New coeffs take effect at the next prepare, not before.
  EngineOptions opt;
  opt.backend = Backend::Reference;
  auto op = layer.plan(x.shape(), opt);
  layer.set_coeffs(test::random_tensor({15, 2, 3}, 9));
  CHECK_THROWS_AS(layer.plan(x.shape(), opt), UsageError);  // stale bank: prepare first
  const Tensor y2 = run_layer(layer, x, Backend::Reference);
  CHECK(test::normalised_error(y2, y1) > 0.1);
  CHECK(test::normalised_error(layer.debug_tensors().at(0).second, bank) > 0.1);
}

TEST_CASE("HermiteConv2D refuses a corrupted basis or rotation matrix and bad parameters", "[hermite]") {
  HermiteConv2D layer("features.layer1.hermite_conv", params(8, 2, 3, 4, 2, false));
  Rng rng(1);
  layer.init(rng);
  StateDict sd("test.safetensors");
  layer.save(sd);
  WeightSpec spec;
  layer.declare(spec);
  spec.check(sd, "HermiteConv2D");
  layer.load(sd);  // its own save loads

  SECTION("H") {
    Tensor h = sd.get_float("features.layer1.hermite_conv.rotate_hermite.H");
    h.data()[7] += 0.01f;
    const StateDict bad = test::with_replaced(sd, "features.layer1.hermite_conv.rotate_hermite.H", h);
    CHECK_THROWS_AS(layer.load(bad), WeightError);
    CHECK_THROWS_WITH(layer.load(bad), Catch::Contains("features.layer1.hermite_conv.rotate_hermite.H") &&
                                           Catch::Contains("max|diff| 1.0") &&
                                           Catch::Contains("hermite_2d(3, 6"));
  }
  SECTION("H transposed (another convention)") {
    Tensor h = sd.get_float("features.layer1.hermite_conv.rotate_hermite.H");
    Tensor t = h.clone();
    for (int64_t f = 0; f < 6; ++f)
      for (int64_t i = 0; i < 6; ++i)
        for (int64_t j = 0; j < 6; ++j) t.data()[(f * 6 + i) * 6 + j] = h.data()[(f * 6 + j) * 6 + i];
    CHECK_THROWS_AS(layer.load(test::with_replaced(sd, "features.layer1.hermite_conv.rotate_hermite.H", t)),
                    WeightError);
  }
  SECTION("Rs") {
    Tensor r = sd.get_float("features.layer1.hermite_conv.rotate_hermite.Rs.3");
    r.data()[0] = NAN;
    CHECK_THROWS_WITH(
        layer.load(test::with_replaced(sd, "features.layer1.hermite_conv.rotate_hermite.Rs.3", r)),
        Catch::Contains("rotate_hermite.Rs.3") && Catch::Contains("rotation matrix"));
  }
  SECTION("coeffs") {
    Tensor c = sd.get_float("features.layer1.hermite_conv.coeffs");
    c.data()[2] = INFINITY;
    CHECK_THROWS_WITH(layer.load(test::with_replaced(sd, "features.layer1.hermite_conv.coeffs", c)),
                      Catch::Contains("coeffs") && Catch::Contains("non-finite"));
  }
  SECTION("parameters") {
    const std::string base =
        R"({"module": "HermiteConv2D", "config": {"padding": 1, "stride": 1, "input_features": 4,
            "output_features": 2, "filter_size": FS, "num_rotations": NR, "upsampling": UP, "first_layer": false}})";
    auto cfg = [&](const char* fs, const char* nr, const char* up) {
      std::string s = base;
      s.replace(s.find("FS"), 2, fs);
      s.replace(s.find("NR"), 2, nr);
      s.replace(s.find("UP"), 2, up);
      return s;
    };
    CHECK_NOTHROW(make_module(cfg("3", "4", "2"), "h.json"));
    CHECK_THROWS_WITH(make_module(cfg("0", "4", "2"), "h.json"), Catch::Contains("filter_size 0"));
    CHECK_THROWS_WITH(make_module(cfg("3", "0", "2"), "h.json"), Catch::Contains("num_rotations 0"));
    CHECK_THROWS_AS(make_module(cfg("3", "4", "0"), "h.json"), ConfigError);
    std::string unknown = cfg("3", "4", "2");
    unknown.replace(unknown.find("\"first_layer\""), 0, "\"bias\": true, ");
    CHECK_THROWS_WITH(make_module(unknown, "h.json"), Catch::Contains("bias"));
  }
}
