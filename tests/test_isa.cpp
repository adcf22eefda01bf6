// Runtime ISA dispatch (engine/isa.h, engine/native/): choosing and refusing ISAs, and every vector
// kernel variant this CPU can run (AVX2, AVX-512) against the scalar reference. Variants the CPU cannot run
// are listed by a WARN ("not run on this CPU").
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "engine/conv.h"
#include "engine/error.h"
#include "engine/isa.h"
#include "engine/native/kernels.h"
#include "engine/parallel.h"
#include "engine/winograd.h"
#include "layers/activations.h"
#include "layers/max_pool2d.h"
#include "tests/test_util.h"

using namespace npcore;

namespace {

const Isa kVectorIsas[] = {Isa::Avx2, Isa::Avx512};

using test::runnable_isas;

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) {
      had_ = true;
      old_ = old;
    }
    if (value)
      setenv(name, value, 1);
    else
      unsetenv(name);
  }
  ~ScopedEnv() {
    if (had_)
      setenv(name_.c_str(), old_.c_str(), 1);
    else
      unsetenv(name_.c_str());
  }

 private:
  std::string name_, old_;
  bool had_ = false;
};

}  // namespace

TEST_CASE("ISA names parse, and an ISA the CPU lacks is a clear error", "[isa]") {
  for (Isa isa : {Isa::Auto, Isa::Generic, Isa::Avx2, Isa::Avx512}) CHECK(parse_isa(isa_name(isa)) == isa);
  CHECK_THROWS_WITH(parse_isa("sse9", "--isa"), Catch::Contains("--isa") && Catch::Contains("sse9") &&
                                                    Catch::Contains("generic, avx2, avx512"));
  CHECK(resolve_isa(Isa::Generic) == Isa::Generic);
  CHECK(cpu_supports(Isa::Generic));
  WARN("this CPU's ISA: " << isa_name(cpu_isa()));
  for (Isa isa : kVectorIsas)
    if (!cpu_supports(isa))
      CHECK_THROWS_WITH(resolve_isa(isa), Catch::Contains(isa_name(isa)) && Catch::Contains("not supported by this CPU"));
    else
      CHECK(resolve_isa(isa) == isa);
}

TEST_CASE("NPCORE_ISA lowers the ISA of Auto and is checked", "[isa]") {
  {
    ScopedEnv e("NPCORE_ISA", nullptr);
    CHECK(resolve_isa(Isa::Auto) == cpu_isa());
  }
  {
    ScopedEnv e("NPCORE_ISA", "generic");
    CHECK(resolve_isa(Isa::Auto) == Isa::Generic);
    CHECK(native::kernels(Isa::Auto) == nullptr);
    // An explicit choice wins over the environment.
    if (cpu_supports(Isa::Avx2)) CHECK(resolve_isa(Isa::Avx2) == Isa::Avx2);
  }
  {
    ScopedEnv e("NPCORE_ISA", "avx1024");
    CHECK_THROWS_WITH(resolve_isa(Isa::Auto), Catch::Contains("NPCORE_ISA") && Catch::Contains("avx1024"));
  }
  if (!cpu_supports(Isa::Avx512)) {
    ScopedEnv e("NPCORE_ISA", "avx512");
    CHECK_THROWS_WITH(resolve_isa(Isa::Auto), Catch::Contains("NPCORE_ISA") && Catch::Contains("not supported"));
  }
}

TEST_CASE("native algorithm choice: Winograd for 3x3, FFT for 5x5/7x7 in both precisions", "[isa]") {
  const Tensor w = test::random_tensor({32, 32, 7, 7}, 1);
  for (Isa isa : runnable_isas("algorithm choice")) {
    for (int64_t k : {3, 5, 7}) {
      ConvSpec spec{Conv2dParams::square(32, 32, k, 1, k / 2), w.data(), nullptr, {}};
      spec.isa = isa;
      Isa used = Isa::Auto;
      CHECK(native_algorithm(spec, {1, 32, 20, 20}, &used) == (k == 3 ? "winograd" : "fft"));
      CHECK(used == isa);
      spec.precision = Precision::Fast;
      CHECK(native_algorithm(spec, {1, 32, 20, 20}) == (k == 3 ? "winograd" : "fft"));
      spec.allow_winograd = false;
      CHECK(native_algorithm(spec, {1, 32, 20, 20}) == "direct");
    }
    ConvSpec strided{Conv2dParams::square(32, 32, 3, 2, 1), w.data(), nullptr, {}};
    strided.isa = isa;
    CHECK(native_algorithm(strided, {1, 32, 20, 20}) == "gemm");
    ConvSpec one{Conv2dParams::square(32, 32, 1), w.data(), nullptr, {}};
    one.isa = isa;
    CHECK(native_algorithm(one, {1, 32, 20, 20}) == "pointwise");
    one.params.pad_h = one.params.pad_w = 1;  // a padded 1x1 has zero borders: the direct conv
    CHECK(native_algorithm(one, {1, 32, 20, 20}) == "direct");
    ConvSpec depthwise{Conv2dParams::square(32, 32, 7, 2, 3, 1, 32), w.data(), nullptr, {}};
    depthwise.isa = isa;
    CHECK(native_algorithm(depthwise, {1, 32, 20, 20}) == "depthwise");
    depthwise.params.out_channels = 64;  // channel multiplier 2: gemm
    CHECK(native_algorithm(depthwise, {1, 32, 20, 20}) == "gemm");
  }
  ConvSpec generic{Conv2dParams::square(32, 32, 3, 1, 1), w.data(), nullptr, {}};
  generic.isa = Isa::Generic;
  CHECK(native_algorithm(generic, {1, 32, 20, 20}) == "gemm");
}

TEST_CASE("every direct-conv variant the CPU runs matches the reference", "[isa]") {
  struct Case {
    int64_t n, ic, oc, k, dil, pad, h, w;
    Activation act;
  };
  const Case cases[] = {
      {1, 3, 5, 1, 1, 1, 7, 9, {}},                                    // 1x1 padded, channels below one block
      {2, 16, 19, 3, 1, 1, 11, 37, {ActKind::ELU, 1.0f, 0.2f, 1.0f}},  // odd width: masked tails
      {1, 8, 12, 5, 2, 4, 13, 25, {ActKind::ReLU}},                    // dilation
      {1, 1, 16, 7, 1, 3, 20, 33, {ActKind::Sigmoid}},                 // the seed cores' first layer
      {1, 6, 9, 4, 1, 0, 10, 17, {ActKind::SoftThreshold}},            // even kernel, scalar activation
      {1, 32, 8, 3, 1, 1, 5, 8, {ActKind::Exp, 1.0f, 1.0f, 0.0f}},     // one vector exactly (AVX2)
      // One-chain sums (input channels x kernel rows <= 16: tile_one_chain, 2-vector tiles, the ELU two
      // channels at a time): the 9x9 1->64 input layer valid and padded, odd widths (an odd vector count
      // ends in a 1-vector tile), batch > 1, channels not a multiple of a block, other activations.
      {1, 1, 64, 9, 1, 0, 20, 37, {ActKind::ELU, 1.0f, 0.0f, 1.0f}},   // SENSORIUM layer0 (pad 0)
      {2, 1, 64, 9, 1, 4, 18, 33, {ActKind::ELU, 1.0f, 0.3f, -0.2f}},  // seed layer0 (pad 4), 5 vectors
      {3, 1, 19, 9, 1, 0, 12, 30, {}},                                 // no activation, 3 vectors
      {1, 1, 10, 9, 1, 4, 9, 15, {ActKind::SoftThreshold}},            // scalar activation, 2 vectors
      {2, 2, 12, 7, 1, 3, 11, 29, {ActKind::ReLU}},                    // 2 channels x 7 rows = 14
      {1, 1, 6, 5, 2, 3, 12, 21, {ActKind::ELU, 0.5f, 0.0f, 0.0f}},    // dilation, kernel width 5
      // Odd vector counts pair rows (the two rows' last vectors in one tile; a row left over alone):
      // output widths 40 (5 vectors on AVX2, 3 on AVX-512) and 37 (a masked last vector), 5 (one vector);
      // 1, 2 and 3 output rows; and widths that do not pair (32: 4 vectors on AVX2, 2 on AVX-512).
      {1, 1, 64, 9, 1, 0, 9, 48, {ActKind::ELU, 1.0f, 0.0f, 1.0f}},    // 1 row: alone
      {2, 1, 64, 9, 1, 0, 10, 48, {ActKind::ELU, 1.0f, 0.0f, 1.0f}},   // 2 rows: one pair
      {3, 1, 20, 9, 1, 0, 11, 45, {ActKind::ELU, 1.0f, 0.1f, 0.0f}},   // 3 rows, masked, channels % OCB
      {2, 1, 16, 9, 1, 0, 12, 13, {ActKind::SoftThreshold}},           // one vector a row, 4 rows
      {1, 1, 8, 9, 1, 4, 7, 32, {ActKind::ReLU}},                      // no odd vector
      {2, 1, 64, 3, 1, 1, 5, 40, {ActKind::ReLU}},                     // VGG's first conv (3x3), odd
      {1, 1, 64, 3, 1, 1, 6, 64, {ActKind::ReLU}},                     // 3x3, no odd vector
      {2, 1, 12, 3, 2, 2, 7, 37, {ActKind::ELU, 1.0f, 0.0f, 0.0f}},    // 3x3 dilated, masked, 7 rows
      {1, 2, 24, 5, 1, 2, 9, 21, {}},                                  // 5x5, 2 channels, 3 vectors
      {2, 1, 9, 7, 1, 3, 6, 11, {ActKind::Sigmoid}},                   // 7x7, 2 vectors (1 on AVX-512)
      {1, 3, 8, 4, 1, 0, 8, 44, {ActKind::ELU, 1.0f, 0.0f, 0.0f}},     // even kernel (runtime width)
  };
  for (Isa isa : runnable_isas("direct conv")) {
    for (const Case& c : cases) {
      for (int threads : {1, 2, 3}) {
        PlanThreads plan(threads);
        Conv2dParams p = Conv2dParams::square(c.ic, c.oc, c.k, 1, c.pad, c.dil);
        const Tensor x = test::random_tensor({c.n, c.ic, c.h, c.w}, 3);
        const Tensor wt = test::random_tensor(p.weight_shape(), 4, 1.0f / float(c.k * std::sqrt(double(c.ic))));
        const Tensor b = test::random_tensor({c.oc}, 5, 0.1f);
        ConvSpec spec{p, wt.data(), b.data(), c.act};
        spec.isa = isa;
        spec.allow_winograd = false;
        INFO(isa_name(isa) << " " << p.str() << " " << c.act.str() << " batch " << c.n << " threads " << threads);
        REQUIRE(native_algorithm(spec, x.shape()) == "direct");
        const Shape os = p.output_shape(x.shape(), "test");
        Tensor ref(os), got(os);
        conv_once(Backend::Reference, spec, x, ref);
        conv_once(Backend::Native, spec, x, got);
        CHECK(test::normalised_error(got, ref) <= 5e-6);
      }
    }
  }
}

TEST_CASE("direct conv: paired rows give the bits of rows run alone, at any thread count", "[isa]") {
  // Rows of an odd vector count run in pairs, the two last vectors as one tile; each output keeps its own
  // summation order. A valid conv of the image without its first row has the same output rows but one,
  // paired the other way ((1, 2), (3, 4) instead of (0, 1), (2, 3), 4 alone): they must be bit-identical,
  // and so must the outputs with 1, 2 and 3 threads.
  for (Isa isa : runnable_isas("direct conv row pairs")) {
    for (int64_t width : {45, 48, 13, 40})
      for (int64_t k : {9, 3}) {
        const Conv2dParams p = Conv2dParams::square(1, 16, k, 1, 0);
        const Tensor wt = test::random_tensor(p.weight_shape(), 4, 1.0f / float(k));
        const Tensor b = test::random_tensor({16}, 5, 0.1f);
        ConvSpec spec{p, wt.data(), b.data(), {ActKind::ELU, 1.0f, 0.0f, 0.0f}};
        spec.isa = isa;
        spec.allow_winograd = false;
        const int64_t h = k + 4;  // 5 output rows; without the first input row 4
        const Tensor x = test::random_tensor({2, 1, h, width}, 3);
        Tensor shorter({2, 1, h - 1, width});
        for (int64_t n = 0; n < 2; ++n)
          for (int64_t i = 0; i < (h - 1) * width; ++i) shorter.image(n)[i] = x.image(n)[width + i];
        const Shape os = p.output_shape(x.shape(), "test"), ss = p.output_shape(shorter.shape(), "test");
        Tensor one(os);
        {
          PlanThreads plan(1);
          conv_once(Backend::Native, spec, x, one);
        }
        for (int threads : {1, 2, 3}) {
          INFO(isa_name(isa) << " " << p.str() << " width " << width << " threads " << threads);
          PlanThreads plan(threads);
          Tensor got(os), cut(ss);
          conv_once(Backend::Native, spec, x, got);
          conv_once(Backend::Native, spec, shorter, cut);
          int64_t differ = 0, differ_cut = 0;
          for (int64_t n = 0; n < 2; ++n)
            for (int64_t c = 0; c < 16; ++c)
              for (int64_t i = 0; i < os[2] * os[3]; ++i) {
                const float g = got.image(n)[c * os[2] * os[3] + i];
                differ += g != one.image(n)[c * os[2] * os[3] + i];
                if (i >= os[3]) differ_cut += g != cut.image(n)[c * ss[2] * ss[3] + i - os[3]];
              }
          CHECK(differ == 0);
          CHECK(differ_cut == 0);
        }
      }
  }
}

TEST_CASE("every pointwise (1x1) and depthwise variant the CPU runs matches the reference", "[isa]") {
  // n, in channels, out channels (pointwise), kernel h/w, stride h/w, pad h/w, dilation h/w, h, w, act.
  struct Case {
    int64_t n, ic, oc, kh, kw, sh, sw, ph, pw, dh, dw, h, w;
    Activation act;
    bool bias;
  };
  const Activation elu{ActKind::ELU, 0.3f, -0.2f, 1.0f};
  const Case pointwise[] = {
      {1, 64, 64, 1, 1, 1, 1, 0, 0, 1, 1, 36, 64, elu, true},                    // the issue-12 block
      // ELU on values shifted positive: groups of 4 vectors skip the polynomial (Epilogue::elu_rows), the
      // masked tail of the plane (28 x 37) does not; the case above mixes both signs. 2 images.
      {2, 64, 64, 1, 1, 1, 1, 0, 0, 1, 1, 28, 37, {ActKind::ELU, 0.3f, -1.5f, 1.0f}, true},
      {2, 3, 5, 1, 1, 1, 1, 0, 0, 1, 1, 7, 9, {}, true},                          // channels below a block
      {3, 17, 19, 1, 1, 1, 1, 0, 0, 1, 1, 5, 13, {ActKind::Sigmoid}, false},      // odd everything
      {1, 40, 9, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, {ActKind::SoftThreshold}, true},  // one pixel, scalar act
      {1, 33, 24, 1, 1, 1, 1, 0, 0, 1, 1, 12, 16, {ActKind::ReLU}, true},        // plane = whole tiles
      {2, 8, 8, 1, 1, 1, 1, 0, 0, 1, 1, 11, 23, {ActKind::Exp, 1.0f, 1.0f, 0.0f}, true},
  };
  const Case depthwise[] = {
      {1, 64, 64, 7, 7, 1, 1, 3, 3, 1, 1, 36, 64, elu, true},                // the issue-12 block
      {2, 5, 5, 3, 3, 1, 1, 2, 2, 2, 2, 13, 17, {ActKind::ReLU}, true},      // layers/depth_separable_k3_d2
      {1, 3, 3, 5, 5, 2, 2, 2, 2, 1, 1, 15, 21, {ActKind::Sigmoid}, false},  // stride 2
      {2, 4, 4, 3, 5, 3, 2, 1, 0, 2, 1, 19, 26, {ActKind::SoftThreshold}, true},  // asymmetric, stride 3x2
      {1, 7, 7, 9, 9, 1, 1, 0, 0, 1, 1, 9, 41, {}, true},                   // valid, one output row
      {3, 9, 9, 7, 7, 1, 3, 3, 3, 1, 2, 8, 35, {ActKind::Exp, 1.0f, 1.0f, 0.0f}, true},  // stride 3, dilation
      {1, 2, 2, 2, 4, 1, 1, 1, 2, 1, 1, 1, 1, elu, true},                   // 1x1 image, even kernel
      // Stride 1: groups of 4 rows (tiles of 3 vectors), then a pair (tiles of 4), then one row alone;
      // rows of whole and masked tiles (8 lanes; 16 on AVX-512).
      {1, 6, 6, 5, 5, 1, 1, 2, 2, 1, 1, 13, 29, elu, true},                 // 4 groups + 1 row
      {2, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, 9, 57, {ActKind::ReLU}, true},      // 3x3: 2 groups + 1 row
      {1, 4, 4, 7, 7, 1, 1, 3, 3, 1, 1, 11, 100, {}, true},                 // 7x7: 2 groups, a pair, 1 row
      {2, 3, 3, 7, 7, 1, 1, 3, 3, 1, 1, 14, 21, elu, true},                 // 3 groups + a pair, masked tile
      {1, 2, 2, 3, 3, 1, 1, 1, 1, 1, 1, 2, 70, {}, true},                   // a pair only (3x3 on 2 rows)
      {1, 3, 3, 3, 3, 1, 1, 1, 1, 2, 1, 10, 30, {}, true},                  // dilated rows: no pairs
  };
  for (Isa isa : runnable_isas("pointwise/depthwise conv")) {
    for (int pass = 0; pass < 2; ++pass) {
      const bool dw = pass == 1;
      for (const Case& c : dw ? std::vector<Case>(std::begin(depthwise), std::end(depthwise))
                              : std::vector<Case>(std::begin(pointwise), std::end(pointwise))) {
        Conv2dParams p;
        p.in_channels = c.ic;
        p.out_channels = c.oc;
        p.kernel_h = c.kh;
        p.kernel_w = c.kw;
        p.stride_h = c.sh;
        p.stride_w = c.sw;
        p.pad_h = c.ph;
        p.pad_w = c.pw;
        p.dilation_h = c.dh;
        p.dilation_w = c.dw;
        p.groups = dw ? c.ic : 1;
        p.bias = c.bias;
        const Tensor x = test::random_tensor({c.n, c.ic, c.h, c.w}, 13);
        const double fan_in = double(p.in_channels / p.groups * c.kh * c.kw);
        const Tensor wt = test::random_tensor(p.weight_shape(), 14, float(1.0 / std::sqrt(fan_in)));
        const Tensor b = test::random_tensor({c.oc}, 15, 0.1f);
        ConvSpec spec{p, wt.data(), c.bias ? b.data() : nullptr, c.act};
        spec.isa = isa;
        INFO(isa_name(isa) << " " << p.str() << " on " << x.shape().str() << " " << c.act.str());
        REQUIRE(native_algorithm(spec, x.shape()) == (dw ? "depthwise" : "pointwise"));
        const Shape os = p.output_shape(x.shape(), "test");
        Tensor ref(os), got(os);
        got.fill(NAN);  // unwritten pixels fail
        conv_once(Backend::Reference, spec, x, ref);
        conv_once(Backend::Native, spec, x, got);
        CHECK(test::normalised_error(got, ref) <= 5e-6);
      }
    }
  }
}

TEST_CASE("every vector activation the CPU runs matches the scalar loop", "[isa]") {
  std::vector<float> x;
  for (int i = -2000; i <= 2000; ++i) x.push_back(float(i) * 0.05f);  // -100 .. 100
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 88.0f, 89.0f, -87.5f, -104.5f}) x.push_back(v);
  const ActKind kinds[] = {ActKind::None, ActKind::ELU, ActKind::ReLU, ActKind::Sigmoid, ActKind::Exp};
  for (Isa isa : runnable_isas("activations")) {
    for (ActKind k : kinds) {
      const Activation a{k, 0.7f, 0.25f, -0.5f};
      for (size_t n : {x.size(), size_t(5), size_t(13)}) {  // lengths with a masked tail
        std::vector<float> ref(x.begin(), x.begin() + long(n)), got = ref;
        apply_activation_scalar(a, ref.data(), int64_t(n));
        apply_activation(a, got.data(), int64_t(n), isa);
        for (size_t i = 0; i < n; ++i) {
          INFO(isa_name(isa) << " " << a.str() << " at x = " << x[i]);
          if (std::isinf(ref[i])) {
            CHECK(got[i] == ref[i]);
          } else {
            // A few ulp of f (before the output shift), or an absolute 1e-37 where f is near zero.
            CHECK(std::fabs(got[i] - ref[i]) <= 4e-7f * (std::fabs(ref[i]) + std::fabs(a.out_shift)) + 1e-37f);
          }
        }
      }
    }
    // NaN passes through.
    for (ActKind k : kinds) {
      float v = std::numeric_limits<float>::quiet_NaN();
      apply_activation({k}, &v, 1, isa);
      CHECK(std::isnan(v));
    }
  }
}

TEST_CASE("every vector max-pooling variant the CPU runs matches the reference", "[isa]") {
  MaxPool2d pool("pool", MaxPool2dParams::square(2, 2));
  for (const Shape& s : {Shape{2, 3, 9, 41}, Shape{1, 2, 8, 32}, Shape{1, 1, 4, 3}}) {
    Tensor x = test::random_tensor(s, 7);
    x.data()[5] = std::numeric_limits<float>::quiet_NaN();  // a NaN wins its window, as in PyTorch
    EngineOptions ref_opt;
    ref_opt.backend = Backend::Reference;
    const Shape os = pool.output_shape(s);
    Tensor ref(os);
    pool.make_op(s, ref_opt)->run(x, ref, nullptr, nullptr);
    for (Isa isa : runnable_isas("max pooling")) {
      EngineOptions opt;
      opt.isa = isa;
      Tensor got(os);
      pool.make_op(s, opt)->run(x, got, nullptr, nullptr);
      for (int64_t i = 0; i < ref.numel(); ++i) {
        INFO(isa_name(isa) << " " << s.str() << " at " << i);
        if (std::isnan(ref.data()[i]))
          CHECK(std::isnan(got.data()[i]));
        else
          CHECK(got.data()[i] == ref.data()[i]);
      }
    }
  }
}

TEST_CASE("which ISA variants this suite ran", "[isa][mode]") {
  std::string ran = "generic", not_run;
  for (Isa isa : kVectorIsas) {
    if (cpu_supports(isa))
      ran += std::string(", ") + isa_name(isa);
    else
      not_run += std::string(not_run.empty() ? "" : ", ") + isa_name(isa);
  }
  WARN("ISA variants run: " << ran << "; not run on this CPU: " << (not_run.empty() ? "none" : not_run));
  CHECK(native::kernels(Isa::Generic) == nullptr);
  for (Isa isa : kVectorIsas)
    if (cpu_supports(isa)) CHECK(native::kernels(isa)->isa == isa);
}

TEST_CASE("every fused depth-separable block the CPU runs matches the three convs on the reference", "[isa]") {
  // pw1 (in -> C, 1x1) -> depthwise (k, stride, pad, dilation) -> pw2 (C -> out, 1x1, act): kernel-level,
  // against three reference convs; 1, 2 and 3 threads (fewer images than threads split the rows).
  struct Case {
    int64_t n, in, c, out, k, s, pad, dil, h, w;
    Activation act;
    int64_t sh = 0;  // stride down the columns, if not s
  };
  const Activation elu{ActKind::ELU, 0.3f, -0.2f, 1.0f};
  const Case cases[] = {
      {1, 64, 64, 64, 7, 1, 3, 1, 28, 56, elu},              // the issue-12 hidden layer at 36x64
      {2, 64, 64, 64, 7, 1, 3, 1, 28, 37, {ActKind::ELU, 1.0f, -1.5f, 0.0f}},  // ELU mostly on positives
      {3, 5, 12, 7, 3, 1, 2, 2, 13, 17, {ActKind::ReLU}},    // layers/depth_separable_k3_d2-like, odd channels
      {2, 16, 19, 21, 5, 2, 2, 1, 31, 23, {ActKind::Sigmoid}},  // stride 2
      {1, 24, 64, 40, 7, 1, 3, 1, 70, 100, elu},             // many steps per job (T1 rows moved)
      {2, 8, 9, 8, 7, 1, 0, 1, 40, 15, {}},                  // valid depthwise, narrow rows
      // The ring of pw1 rows (stride 1 along the width): rows in pw1 chunks of 96, 96 and 11 pixels
      // (1- and 2-vector rest tiles), an odd number of rows (depthwise row groups, pairs and one row alone).
      {1, 64, 64, 64, 7, 1, 3, 1, 37, 203, elu},
      {2, 8, 10, 6, 5, 1, 2, 1, 23, 19, elu, 2},             // stride 2 down the columns, 1 along the rows
      {1, 7, 13, 5, 3, 1, 3, 3, 12, 33, {ActKind::ReLU}},    // dilation 3: padded rows above and below
  };
  for (Isa isa : runnable_isas("depth-separable block")) {
    for (int threads : {1, 2, 3}) {  // 2 and 3 threads on batch 1 and 2: pw1 shared by the ranges
      for (const Case& c : cases) {
        PlanThreads plan(threads);
        const Conv2dParams p1 = Conv2dParams::square(c.in, c.c, 1);
        Conv2dParams pd = Conv2dParams::square(c.c, c.c, c.k, c.s, c.pad, c.dil, c.c);
        if (c.sh) pd.stride_h = c.sh;
        const Conv2dParams p2 = Conv2dParams::square(c.c, c.out, 1);
        const Tensor x = test::random_tensor({c.n, c.in, c.h, c.w}, 21);
        const Tensor w1 = test::random_tensor(p1.weight_shape(), 22, float(1.0 / std::sqrt(double(c.in))));
        const Tensor wd = test::random_tensor(pd.weight_shape(), 23, 1.0f / float(c.k));
        const Tensor w2 = test::random_tensor(p2.weight_shape(), 24, float(1.0 / std::sqrt(double(c.c))));
        const Tensor b1 = test::random_tensor({c.c}, 25, 0.1f), bd = test::random_tensor({c.c}, 26, 0.1f);
        const Tensor b2 = test::random_tensor({c.out}, 27, 0.1f);
        ConvSpec s1{p1, w1.data(), b1.data(), {}}, sd{pd, wd.data(), bd.data(), {}}, s2{p2, w2.data(), b2.data(), c.act};
        s1.isa = sd.isa = s2.isa = isa;
        INFO(isa_name(isa) << ", " << threads << " threads, " << pd.str() << " on " << x.shape().str() << ", "
                           << c.in << " -> " << c.c << " -> " << c.out << ", " << c.act.str());
        const Shape ms = p1.output_shape(x.shape(), "test"), ds = pd.output_shape(ms, "test");
        const Shape os = p2.output_shape(ds, "test");
        Tensor m(ms), d(ds), ref(os), got(os);
        conv_once(Backend::Reference, s1, x, m);
        conv_once(Backend::Reference, sd, m, d);
        conv_once(Backend::Reference, s2, d, ref);
        // The table's kernel itself: make_native_depth_separable declines batch 1 on 28 rows with 2 threads.
        auto k = native::kernels(isa)->depth_separable(s1, sd, s2, x.shape());
        AlignedBuffer scratch = aligned_floats(k->scratch_floats() + 1);
        got.fill(NAN);
        k->run(x, got, scratch.get(), nullptr);
        CHECK(test::normalised_error(got, ref) <= 5e-6);
      }
    }
  }
  // Not fused: the generic ISA; a conv the kernels do not take (a padded 1x1).
  const Tensor w = test::random_tensor({8, 8, 3, 3}, 1);
  ConvSpec s1{Conv2dParams::square(8, 8, 1), w.data(), nullptr, {}};
  ConvSpec sd{Conv2dParams::square(8, 8, 3, 1, 1, 1, 8), w.data(), nullptr, {}};
  ConvSpec s2 = s1;
  s1.isa = sd.isa = s2.isa = Isa::Generic;
  CHECK(!make_native_depth_separable(s1, sd, s2, {2, 8, 20, 20}));
  if (cpu_supports(Isa::Avx2)) {
    s1.isa = sd.isa = s2.isa = Isa::Avx2;
    CHECK(make_native_depth_separable(s1, sd, s2, {2, 8, 20, 20}));
    PlanThreads two(2);  // batch 1 on 2 threads: 2 ranges of 10 rows, under 4 x the halo of 2 rows
    CHECK(make_native_depth_separable(s1, sd, s2, {1, 8, 10, 20}));  // small: pw1 shared by the ranges
    CHECK(!make_native_depth_separable(s1, sd, s2, {1, 8, 10, 4000}));  // a plane over 768 KB: declined
    CHECK(make_native_depth_separable(s1, sd, s2, {1, 8, 16, 4000}));
    s2.params.pad_h = 1;
    CHECK(!make_native_depth_separable(s1, sd, s2, {2, 8, 20, 20}));
  }
}
