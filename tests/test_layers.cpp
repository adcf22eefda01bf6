// Every layer against a direct computation written here on seeded random input and parameters:
// BatchNorm2d (eval formula, also rotation-equivariant), Bias2d, Scale2d, each activation, Sequential
// fusion (fused == unfused, on every backend), AttentionConv and SqueezeExcitationBlock against plain
// re-implementations, the single-layer PyTorch dumps, and shape errors that name the layer.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>

#include "cores/factory.h"
#include "cores/ref_case.h"
#include "engine/error.h"
#include "layers/activations.h"
#include "layers/attention_conv.h"
#include "layers/batch_norm2d.h"
#include "layers/conv2d.h"
#include "layers/depth_separable_conv2d.h"
#include "layers/max_pool2d.h"
#include "layers/sequential.h"
#include "layers/squeeze_excitation.h"
#include "tests/test_util.h"
#include "weights/weight_spec.h"

using namespace npcore;
using Catch::Matchers::Contains;

namespace {

EngineOptions options(Backend b, bool fuse = true) {
  EngineOptions o;
  o.backend = b;
  o.fuse = fuse;
  return o;
}

// Prepares `layer` and runs it once on `in` (out of place).
Tensor run_layer(Layer& layer, const Tensor& in, const EngineOptions& opt) {
  prepare_layer(layer, opt);
  auto op = layer.plan(in.shape(), opt);
  Tensor out(op->out_shape);
  AlignedBuffer scratch = aligned_floats(op->scratch_floats());
  auto state = op->make_state();
  op->run(in, out, scratch.get(), state.get());
  return out;
}

// Gives every tensor `layer` declares seeded random values (variances positive, counters skipped),
// loads them strictly and returns them.
StateDict load_random(Layer& layer, uint64_t seed) {
  WeightSpec spec;
  layer.declare(spec);
  StateDict sd("random parameters");
  uint64_t s = seed;
  for (const auto& e : spec.entries()) {
    if (e.kind != WeightSpec::Kind::Float) continue;
    Tensor t = test::random_tensor(Shape(e.shape.begin(), e.shape.end()), ++s, 0.5f);
    if (e.key.size() >= 11 && e.key.compare(e.key.size() - 11, 11, "running_var") == 0)
      for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = 0.2f + std::fabs(t.data()[i]);
    sd.add_float(e.key, t);
  }
  spec.check(sd, layer.type());
  layer.load(sd);
  return sd;
}

// Index of element (n, c, h, w) of a dense NCHW shape.
int64_t at(const Shape& s, int64_t n, int64_t c, int64_t h, int64_t w) {
  return ((n * s[1] + c) * s[2] + h) * s[3] + w;
}

// Every element within `bound` * (1 + |ref|).
void check_close(const Tensor& got, const std::vector<double>& ref, double bound) {
  REQUIRE(got.numel() == int64_t(ref.size()));
  Tensor g = got.clone();
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i)
    worst = std::max(worst, std::fabs(double(g.data()[i]) - ref[i]) / (1.0 + std::fabs(ref[i])));
  INFO("worst |y - ref| / (1 + |ref|) = " << worst << ", bound " << bound);
  CHECK(worst <= bound);
}

std::string cases_dir() {
  const std::string r = test::ref_dir();
  return r.empty() ? test::fixture_dir() : r;
}

}  // namespace

TEST_CASE("BatchNorm2d computes the eval formula, also shared across rotations", "[layers]") {
  for (int64_t rotations : {0, 1, 4}) {
    const int64_t repeat = std::max<int64_t>(1, rotations);
    for (bool affine : {true, false}) {
      DYNAMIC_SECTION("rotations " << rotations << (affine ? ", affine" : ", not affine")) {
        const int64_t C = 5;
        BatchNorm2d bn("features.layer0.norm", C, affine, 1e-5, rotations);
        StateDict sd = load_random(bn, 40 + rotations);
        const std::string p = rotations > 0 ? "features.layer0.norm.batch_norm." : "features.layer0.norm.";
        CHECK(sd.contains(p + "running_mean"));
        CHECK(sd.contains(p + "weight") == affine);
        const Tensor mean = sd.get_float(p + "running_mean"), var = sd.get_float(p + "running_var");
        const Tensor weight = affine ? sd.get_float(p + "weight") : Tensor(),
                     bias = affine ? sd.get_float(p + "bias") : Tensor();
        Tensor x = test::random_tensor({2, C * repeat, 3, 4}, 9, 2.0f);
        Tensor y = run_layer(bn, x, options(Backend::Reference));
        std::vector<double> ref(size_t(x.numel()));
        for (int64_t n = 0; n < 2; ++n)
          for (int64_t ch = 0; ch < C * repeat; ++ch)
            for (int64_t i = 0; i < 12; ++i) {
              const int64_t c = ch % C;  // channel r*C + c shares entry c
              const int64_t k = at(x.shape(), n, ch, 0, 0) + i;
              double v = (x.data()[k] - mean.data()[c]) / std::sqrt(double(var.data()[c]) + 1e-5);
              if (affine) v = v * weight.data()[c] + bias.data()[c];
              ref[size_t(k)] = v;
            }
        check_close(y, ref, 1e-6);
      }
    }
  }
}

TEST_CASE("Bias2d and Scale2d add and multiply per channel, also shared across rotations", "[layers]") {
  for (int64_t rotations : {0, 1, 3}) {
    const int64_t repeat = std::max<int64_t>(1, rotations);
    DYNAMIC_SECTION("rotations " << rotations) {
      const int64_t C = 4;
      Bias2d bias("features.layer1.bias", C, rotations);
      Scale2d scale("features.layer1.scale", C, rotations);
      StateDict sb = load_random(bias, 1), ss = load_random(scale, 2);
      const std::vector<int64_t> pshape =
          rotations > 0 ? std::vector<int64_t>{1, 1, C, 1, 1} : std::vector<int64_t>{1, C, 1, 1};
      CHECK(sb.at("features.layer1.bias.bias").shape == pshape);
      CHECK(ss.at("features.layer1.scale.scale").shape == pshape);
      const Tensor b = sb.get_float("features.layer1.bias.bias"),
                   s = ss.get_float("features.layer1.scale.scale");
      Tensor x = test::random_tensor({2, C * repeat, 5, 3}, 4);
      Tensor yb = run_layer(bias, x, options(Backend::Reference));
      Tensor ys = run_layer(scale, x, options(Backend::Reference));
      std::vector<double> rb(size_t(x.numel())), rs(size_t(x.numel()));
      for (int64_t n = 0; n < 2; ++n)
        for (int64_t ch = 0; ch < C * repeat; ++ch)
          for (int64_t i = 0; i < 15; ++i) {
            const int64_t k = at(x.shape(), n, ch, 0, 0) + i;
            rb[size_t(k)] = double(x.data()[k]) + b.data()[ch % C];
            rs[size_t(k)] = double(x.data()[k]) * s.data()[ch % C];
          }
      check_close(yb, rb, 1e-7);
      check_close(ys, rs, 1e-7);
    }
  }
}

TEST_CASE("activations match their definitions", "[layers]") {
  auto elu = [](double x, double alpha) { return x > 0 ? x : alpha * std::expm1(x); };
  struct Case {
    const char* name;
    Activation act;
    std::function<double(double)> f;
  };
  const std::vector<Case> cases = {
      {"AdaptiveELU", {ActKind::ELU, 1.0f, 0.5f, 0.25f}, [&](double x) { return elu(x - 0.5, 1.0) + 0.25; }},
      {"Elu1", {ActKind::ELU, 1.0f, 0.0f, 1.0f}, [&](double x) { return elu(x, 1.0) + 1.0; }},
      {"ELU", {ActKind::ELU, 0.3f, 0.0f, 0.0f}, [&](double x) { return elu(x, 0.3); }},
      {"ReLU", {ActKind::ReLU}, [](double x) { return x > 0 ? x : 0.0; }},
      {"Sigmoid", {ActKind::Sigmoid}, [](double x) { return 1.0 / (1.0 + std::exp(-x)); }},
      {"Exp", {ActKind::Exp}, [](double x) { return std::exp(x); }},
      {"Log1Exp", {ActKind::Log1Exp}, [](double x) { return std::log(1.0 + std::exp(x)); }},
      {"SoftThreshold",
       {ActKind::SoftThreshold},
       [](double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }},
  };
  for (const Case& c : cases) {
    DYNAMIC_SECTION(c.name) {
      ActivationLayer layer("features.layer0.nonlin", c.name, c.act);
      CHECK(std::string(layer.type()) == c.name);
      Tensor x = test::random_tensor({2, 3, 7, 9}, 5, 3.0f);
      x.data()[0] = 0.0f;  // the kink of ELU/ReLU
      x.data()[1] = -30.0f;
      x.data()[2] = 30.0f;
      Tensor y = run_layer(layer, x, options(Backend::Reference));
      std::vector<double> ref(size_t(x.numel()));
      for (int64_t i = 0; i < x.numel(); ++i) ref[size_t(i)] = c.f(double(x.data()[i]));
      check_close(y, ref, 2e-6);
    }
  }
}

TEST_CASE("Sequential fusion: conv + norm + bias/scale + activation fused equals unfused", "[layers]") {
  struct Case {
    const char* name;
    std::function<std::unique_ptr<Sequential>()> build;
    const char* fused_stage;  // what stage_names() says after fusion
    size_t unfused_stages;
  };
  const std::string L = "features.layer1";
  const std::vector<Case> cases = {
      {"conv + affine BatchNorm + AdaptiveELU",
       [&] {
         auto s = std::make_unique<Sequential>(L);
         s->add(std::make_unique<Conv2d>(L + ".conv", Conv2dParams::square(6, 8, 3, 1, 1)));
         s->add(std::make_unique<BatchNorm2d>(L + ".norm", 8));
         s->add(std::make_unique<ActivationLayer>(L + ".nonlin", "AdaptiveELU",
                                                  Activation{ActKind::ELU, 1, 0.3f, 0.1f}));
         return s;
       },
       "features.layer1.conv+norm+nonlin", 3},
      {"conv + BatchNorm + Scale2d + ELU, strided and dilated, no conv bias",
       [&] {
         auto s = std::make_unique<Sequential>(L);
         s->add(std::make_unique<Conv2d>(L + ".conv", Conv2dParams::square(6, 8, 3, 2, 2, 2, 1, false)));
         s->add(std::make_unique<BatchNorm2d>(L + ".norm", 8, false));
         s->add(std::make_unique<Scale2d>(L + ".scale", 8));
         s->add(std::make_unique<ActivationLayer>(L + ".nonlin", "ELU", Activation{ActKind::ELU, 0.7f}));
         return s;
       },
       "features.layer1.conv+norm+scale+nonlin", 4},
      {"conv + BatchNorm + Bias2d + Sigmoid, grouped",
       [&] {
         auto s = std::make_unique<Sequential>(L);
         s->add(std::make_unique<Conv2d>(L + ".conv", Conv2dParams::square(6, 8, 5, 1, 2, 1, 2, true)));
         s->add(std::make_unique<BatchNorm2d>(L + ".norm", 8, false));
         s->add(std::make_unique<Bias2d>(L + ".bias", 8));
         s->add(std::make_unique<ActivationLayer>(L + ".nonlin", "Sigmoid", Activation{ActKind::Sigmoid}));
         return s;
       },
       "features.layer1.conv+norm+bias+nonlin", 4},
      {"depth-separable conv + BatchNorm + Elu1 (fusion into the nested Sequential)",
       [&] {
         auto s = std::make_unique<Sequential>(L);
         s->add(std::make_unique<DepthSeparableConv2d>(L + ".ds_conv", 6,
                                                       Conv2dParams::square(8, 8, 3, 1, 2, 2)));
         s->add(std::make_unique<BatchNorm2d>(L + ".norm", 8));
         s->add(std::make_unique<ActivationLayer>(L + ".nonlin", "Elu1", Activation{ActKind::ELU, 1, 0, 1}));
         return s;
       },
       "features.layer1.ds_conv+norm+nonlin", 3},
      {"conv + BatchNorm + Exp + SqueezeExcitation (the block stays separate)",
       [&] {
         auto s = std::make_unique<Sequential>(L);
         s->add(std::make_unique<Conv2d>(L + ".conv", Conv2dParams::square(6, 8, 1)));
         s->add(std::make_unique<BatchNorm2d>(L + ".norm", 8));
         s->add(std::make_unique<ActivationLayer>(L + ".nonlin", "Exp", Activation{ActKind::Exp}));
         s->add(std::make_unique<SqueezeExcitationBlock>(L + ".seg_ex_block", 8, 4));
         return s;
       },
       "features.layer1.conv+norm+nonlin", 4},
  };
  const Tensor x = test::random_tensor({2, 6, 11, 13}, 21);
  for (const Case& c : cases) {
    for (Backend b : all_backends()) {
      DYNAMIC_SECTION(c.name << " on " << backend_name(b)) {
        auto seq = c.build();
        load_random(*seq, 100);
        const Tensor oracle = run_layer(*seq, x, options(Backend::Reference, false));
        CHECK(seq->stage_names().size() == c.unfused_stages);
        const Tensor unfused = run_layer(*seq, x, options(b, false));
        const Tensor fused = run_layer(*seq, x, options(b, true));
        CHECK(seq->stage_names().front() == c.fused_stage);
        const double e1 = test::normalised_error(fused, unfused), e2 = test::normalised_error(fused, oracle);
        INFO("fused vs unfused " << e1 << ", fused vs reference unfused " << e2 << " (bound 1e-5)");
        CHECK(e1 <= 1e-5);
        CHECK(e2 <= 1e-5);
      }
    }
  }
}

TEST_CASE("Sequential fusion: conv + ReLU + 2x2 max pool (VGG) fused equals unfused", "[layers]") {
  // The native backend absorbs the pool into the conv: its Winograd kernel pools in the output transform
  // (16 -> 16 channels on AVX2/AVX-512), another algorithm pools after the conv (6 -> 16 channels: direct;
  // every conv on the generic ISA). The other backends keep the pool as its own stage.
  const std::string L = "features.TransferLearning";
  for (int64_t in_ch : {6, 16}) {
    const Tensor x = test::random_tensor({2, in_ch, 11, 13}, 22);  // odd sizes: floor pooling drops a row and column
    for (Backend b : all_backends()) {
      DYNAMIC_SECTION(in_ch << " input channels on " << backend_name(b)) {
        Sequential seq(L);
        seq.add(std::make_unique<Conv2d>(L + ".2", Conv2dParams::square(in_ch, 16, 3, 1, 1)));
        seq.add(std::make_unique<ActivationLayer>(L + ".3", "ReLU", Activation{ActKind::ReLU}));
        seq.add(std::make_unique<MaxPool2d>(L + ".4", MaxPool2dParams::square(2)));
        load_random(seq, 200);
        const Tensor oracle = run_layer(seq, x, options(Backend::Reference, false));
        const Tensor unfused = run_layer(seq, x, options(b, false));
        CHECK(seq.stage_names().size() == 3);
        const Tensor fused = run_layer(seq, x, options(b, true));
        REQUIRE(fused.shape() == Shape{2, 16, 5, 6});
        // Absorbed only where the kernel pools: native Winograd (>= 16 channels, not the generic ISA).
        if (b == Backend::Native && in_ch >= 16 && resolve_isa(Isa::Auto) != Isa::Generic) {
          CHECK(seq.stage_names() == std::vector<std::string>{L + ".2+3+4"});
        } else {
          CHECK(seq.stage_names() == std::vector<std::string>{L + ".2+3", L + ".4"});
        }
        const double e1 = test::normalised_error(fused, unfused), e2 = test::normalised_error(fused, oracle);
        INFO("fused vs unfused " << e1 << ", fused vs reference unfused " << e2 << " (bound 1e-5)");
        CHECK(e1 <= 1e-5);
        CHECK(e2 <= 1e-5);

        // Fused for a vector ISA, planned for the generic one (no Winograd there): the op pools after
        // the conv, with the same result.
        if (b == Backend::Native && in_ch >= 16 && cpu_supports(Isa::Avx2)) {
          EngineOptions fuse_opt = options(b, true), plan_opt = options(b, true);
          fuse_opt.isa = Isa::Avx2;
          plan_opt.isa = Isa::Generic;
          prepare_layer(seq, fuse_opt);
          CHECK(seq.stage_names() == std::vector<std::string>{L + ".2+3+4"});
          auto op = seq.plan(x.shape(), plan_opt);
          Tensor y(op->out_shape);
          AlignedBuffer scratch = aligned_floats(op->scratch_floats());
          auto state = op->make_state();
          op->run(x, y, scratch.get(), state.get());
          CHECK(test::normalised_error(y, oracle) <= 1e-5);
        }
      }
    }
  }
}

TEST_CASE("AttentionConv matches a direct implementation of its forward", "[layers]") {
  struct Cfg {
    int64_t in, out, k, pad;
    bool bias;
  };
  for (const Cfg cfg : {Cfg{4, 6, 3, 1, true}, Cfg{3, 4, 5, 2, false}}) {
    DYNAMIC_SECTION("in " << cfg.in << ", out " << cfg.out << ", k " << cfg.k << (cfg.bias ? ", bias" : "")) {
      AttentionConv layer("", cfg.in, cfg.out, cfg.k, 1, cfg.pad, 1, cfg.bias);
      StateDict sd = load_random(layer, 7);
      const Tensor x = test::random_tensor({2, cfg.in, 6, 7}, 8);
      const Tensor y = run_layer(layer, x, options(Backend::Reference));

      const int64_t N = 2, C = cfg.out, H = 6, W = 7, K = cfg.k, P = cfg.pad;
      // The three 1x1 convs' parameters: weight [C, in], bias [C] (zero without bias).
      struct Conv1x1 {
        Tensor w, b;
      };
      auto params = [&](const std::string& conv) {
        Conv1x1 c{sd.get_float(conv + ".weight"), Tensor({C})};
        if (cfg.bias) c.b = sd.get_float(conv + ".bias");
        return c;
      };
      const Conv1x1 cq = params("query_conv"), ck = params("key_conv"), cv = params("value_conv");
      // A 1x1 conv of the zero-padded input at padded position (hp, wp): the padding holds the bias.
      auto conv1x1 = [&](const Conv1x1& c, int64_t n, int64_t o, int64_t hp, int64_t wp) {
        double s = c.b.data()[o];
        const int64_t h = hp - P, ww = wp - P;
        if (h < 0 || h >= H || ww < 0 || ww >= W) return s;
        for (int64_t i = 0; i < cfg.in; ++i)
          s += double(c.w.data()[o * cfg.in + i]) * x.data()[at(x.shape(), n, i, h, ww)];
        return s;
      };
      const Tensor rel_h = sd.get_float("rel_h"),
                   rel_w = sd.get_float("rel_w");  // [C/2,1,1,K,1], [C/2,1,1,1,K]
      std::vector<double> ref(size_t(N * C * H * W));
      for (int64_t n = 0; n < N; ++n)
        for (int64_t o = 0; o < C; ++o)
          for (int64_t h = 0; h < H; ++h)
            for (int64_t ww = 0; ww < W; ++ww) {
              const double q = conv1x1(cq, n, o, h + P, ww + P);
              std::vector<double> logit, val;
              for (int64_t i = 0; i < K; ++i)
                for (int64_t j = 0; j < K; ++j) {
                  const double rel = o < C / 2 ? rel_h.data()[o * K + i] : rel_w.data()[(o - C / 2) * K + j];
                  logit.push_back(q * (conv1x1(ck, n, o, h + i, ww + j) + rel));
                  val.push_back(conv1x1(cv, n, o, h + i, ww + j));
                }
              const double mx = *std::max_element(logit.begin(), logit.end());
              double den = 0, acc = 0;
              for (size_t t = 0; t < logit.size(); ++t) den += std::exp(logit[t] - mx);
              for (size_t t = 0; t < logit.size(); ++t) acc += std::exp(logit[t] - mx) / den * val[t];
              ref[size_t(at({N, C, H, W}, n, o, h, ww))] = acc;
            }
      check_close(y, ref, 1e-5);
    }
  }
}

TEST_CASE("SqueezeExcitationBlock matches a direct implementation", "[layers]") {
  const int64_t C = 12, R = 4, Hd = C / R;
  SqueezeExcitationBlock se("", C, R);
  StateDict sd = load_random(se, 3);
  const Tensor w1 = sd.get_float("se.1.weight"), b1 = sd.get_float("se.1.bias"),
               w2 = sd.get_float("se.3.weight"), b2 = sd.get_float("se.3.bias");
  CHECK(w1.shape() == Shape{Hd, C});
  const Tensor x = test::random_tensor({3, C, 5, 6}, 4);
  const Tensor y = run_layer(se, x, options(Backend::Reference));
  std::vector<double> ref(size_t(x.numel()));
  for (int64_t n = 0; n < 3; ++n) {
    std::vector<double> mean(static_cast<size_t>(C)), hid(static_cast<size_t>(Hd)),
        gate(static_cast<size_t>(C));
    for (int64_t c = 0; c < C; ++c) {
      for (int64_t i = 0; i < 30; ++i) mean[size_t(c)] += x.data()[at(x.shape(), n, c, 0, 0) + i];
      mean[size_t(c)] /= 30.0;
    }
    for (int64_t j = 0; j < Hd; ++j) {
      double s = b1.data()[j];
      for (int64_t c = 0; c < C; ++c) s += double(w1.data()[j * C + c]) * mean[size_t(c)];
      hid[size_t(j)] = std::max(s, 0.0);
    }
    for (int64_t c = 0; c < C; ++c) {
      double s = b2.data()[c];
      for (int64_t j = 0; j < Hd; ++j) s += double(w2.data()[c * Hd + j]) * hid[size_t(j)];
      gate[size_t(c)] = 1.0 / (1.0 + std::exp(-s));
    }
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < 30; ++i) {
        const int64_t k = at(x.shape(), n, c, 0, 0) + i;
        ref[size_t(k)] = x.data()[k] * gate[size_t(c)];
      }
  }
  check_close(y, ref, 1e-6);
}

TEST_CASE("single-layer PyTorch dumps pass on every backend", "[layers]") {
  std::vector<std::string> cases;
  for (const std::string& p : test::list_cases(cases_dir() + "/layers")) {
    const std::string name = p.substr(p.rfind('/') + 1);
    if (name.rfind("attention_", 0) == 0 || name.rfind("depth_separable_", 0) == 0 ||
        name.rfind("se_block_", 0) == 0)
      cases.push_back(p);
  }
  REQUIRE(cases.size() >= 4);
  for (const std::string& p : cases) {
    for (Backend b : all_backends()) {
      DYNAMIC_SECTION(p.substr(p.rfind('/') + 1) << " on " << backend_name(b)) {
        CaseOptions opt;
        opt.engine = options(b);
        CaseResult r;
        try {
          r = run_reference_case(p, opt);
        } catch (const Error& e) {
          FAIL("could not run: " << e.what());
        }
        INFO(r.kind << ": worst normalised error " << r.worst_normalised);
        for (const TensorCheck& c : r.checks)
          INFO(c.name << ": max|y-ref| " << c.max_abs_err << ", bound " << c.bound << " " << c.problem);
        CHECK(r.pass);
      }
    }
  }
}

TEST_CASE("shape errors name the layer", "[layers]") {
  auto expect_shape_error = [](const std::function<void()>& f, std::vector<std::string> words) {
    try {
      f();
      FAIL("no ShapeError");
    } catch (const ShapeError& e) {
      INFO("message: " << e.what());
      for (const auto& w : words) CHECK_THAT(std::string(e.what()), Contains(w));
    }
  };
  Conv2d conv("features.layer1.conv", Conv2dParams::square(8, 8, 3, 1, 1));
  expect_shape_error(
      [&] {
        conv.output_shape({1, 6, 10, 10});
      },
      {"features.layer1.conv", "6 channels", "takes 8"});
  expect_shape_error([&] { conv.output_shape({6, 10, 10}); }, {"features.layer1.conv", "rank 4"});
  Conv2d big("features.layer0.conv", Conv2dParams::square(1, 4, 9));
  expect_shape_error(
      [&] {
        big.output_shape({1, 1, 5, 20});
      },
      {"features.layer0.conv", "smaller than the dilated kernel"});
  BatchNorm2d bn("features.layer0.norm", 8);
  expect_shape_error([&] { bn.output_shape({1, 4, 3, 3}); }, {"features.layer0.norm", "4 channels"});
  SqueezeExcitationBlock se("features.layer2.seg_ex_block", 8, 2);
  expect_shape_error([&] { se.output_shape({1, 16, 3, 3}); }, {"features.layer2.seg_ex_block"});
  AttentionConv att("features.layer1.attention_conv", 4, 4, 3, 2, 1, 1, true);
  expect_shape_error(
      [&] {
        att.output_shape({1, 4, 8, 8});
      },
      {"features.layer1.attention_conv", "AttentionConv needs it to equal the input size"});
  // Through a Sequential and through planning, the failing child is named.
  Sequential seq("features.layer1");
  seq.add(std::make_unique<Conv2d>("features.layer1.conv", Conv2dParams::square(8, 8, 3, 1, 1)));
  seq.add(std::make_unique<BatchNorm2d>("features.layer1.norm", 6));
  expect_shape_error(
      [&] {
        seq.output_shape({1, 8, 5, 5});
      },
      {"features.layer1.norm", "8 channels", "takes 6"});
  prepare_layer(seq, options(Backend::Reference, false));
  expect_shape_error(
      [&] {
        seq.plan({1, 8, 5, 5}, options(Backend::Reference, false));
      },
      {"features.layer1.norm", "8 channels"});
  // Fusion refuses to fold a mis-sized norm into the conv rather than read past its parameters.
  expect_shape_error([&] { prepare_layer(seq, options(Backend::Reference, true)); },
                     {"features.layer1.conv", "6 channels", "outputs 8"});
  // A core names the block whose conv cannot take the image.
  auto core = make_core(R"({"core": "Stacked2dCore", "config": {"input_channels": 1, "hidden_channels": 4,
      "input_kern": 5, "hidden_kern": 3, "layers": 2, "pad_input": false}})",
                        "t");
  expect_shape_error([&] { core->output_shape({1, 1, 4, 40}); }, {"features.layer0.conv", "smaller"});
  expect_shape_error([&] { core->output_shape({1, 3, 40, 40}); }, {"Stacked2dCore", "3 channels", "takes 1"});
}
