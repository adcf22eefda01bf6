// Winograd F(2x2, r x r): the transforms are exact (checked in double), and the native backend's Winograd
// kernel agrees with the reference kernel over awkward shapes (odd sizes, partial tile vectors, channel
// counts that are not multiples of the micro-tile, batches, strided views, every activation).
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <random>
#include <type_traits>

#include "engine/conv.h"
#include "engine/native/kernels.h"
#include "engine/parallel.h"
#include "engine/winograd.h"
#include "tests/test_util.h"

using namespace npcore;

TEST_CASE("Winograd transforms compute the correlation exactly", "[winograd]") {
  for (int r : {3, 5, 7}) {
    CAPTURE(r);
    const WinogradTransforms t = winograd_transforms(2, r);
    const int a = t.alpha;
    REQUIRE(a == r + 1);
    std::mt19937 gen(r);
    std::normal_distribution<double> nd;
    for (int trial = 0; trial < 5; ++trial) {
      std::vector<double> d(size_t(a * a)), g(size_t(r * r));
      for (double& v : d) v = nd(gen);
      for (double& v : g) v = nd(gen);
      // U = G g G^T [a, a], V = B^T d B [a, a]
      std::vector<double> U(size_t(a * a), 0.0), V(size_t(a * a), 0.0), Y(4, 0.0);
      for (int i = 0; i < a; ++i)
        for (int j = 0; j < a; ++j) {
          for (int k = 0; k < r; ++k)
            for (int l = 0; l < r; ++l) U[size_t(i * a + j)] += t.G[size_t(i * r + k)] * g[size_t(k * r + l)] * t.G[size_t(j * r + l)];
          for (int k = 0; k < a; ++k)
            for (int l = 0; l < a; ++l) V[size_t(i * a + j)] += t.BT[size_t(i * a + k)] * d[size_t(k * a + l)] * t.BT[size_t(j * a + l)];
        }
      // Y = A^T (U . V) A [2, 2]
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j)
          for (int k = 0; k < a; ++k)
            for (int l = 0; l < a; ++l)
              Y[size_t(i * 2 + j)] += t.AT[size_t(i * a + k)] * U[size_t(k * a + l)] * V[size_t(k * a + l)] * t.AT[size_t(j * a + l)];
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) {
          double direct = 0;
          for (int k = 0; k < r; ++k)
            for (int l = 0; l < r; ++l) direct += d[size_t((i + k) * a + j + l)] * g[size_t(k * r + l)];
          CHECK(std::fabs(Y[size_t(i * 2 + j)] - direct) <= 1e-9 * (1.0 + std::fabs(direct)));
        }
    }
  }
}

namespace {

// The native Winograd kernel itself: the backend computes 5x5 and 7x7 convs with the FFT kernel
// (tests/test_fft_conv.cpp) in both precisions.
void run_winograd(const ConvSpec& spec, const Tensor& x, Tensor& y) {
  const std::unique_ptr<ConvKernel> k = native::kernels(spec.isa)->winograd(spec, x.shape());
  AlignedBuffer scratch = aligned_floats(k->scratch_floats() + 16);
  k->run(x, y, scratch.get(), nullptr);
}

struct WinoCase {
  int64_t n, ic, oc, k, h, w, pad;
  Activation act;
};

// A case's random input, weights (scaled so that outputs are O(1)) and bias from seeds seed .. seed + 2,
// and its spec for the kernel on `isa` (precision fast: the kernel is made directly, whatever the default
// path would choose). Not copyable: spec points into wt and b.
struct WinoSetup {
  WinoSetup(const WinoCase& c, Isa isa, uint64_t seed)
      : p(Conv2dParams::square(c.ic, c.oc, c.k, 1, c.pad)),
        x(test::random_tensor({c.n, c.ic, c.h, c.w}, seed)),
        wt(test::random_tensor(p.weight_shape(), seed + 1, 1.0f / float(c.k * std::sqrt(double(c.ic))))),
        b(test::random_tensor({c.oc}, seed + 2, 0.1f)),
        spec{p, wt.data(), b.data(), c.act},
        os(p.output_shape(x.shape(), "test")) {
    spec.precision = Precision::Fast;
    spec.isa = isa;
  }
  WinoSetup(const WinoSetup&) = delete;
  WinoSetup& operator=(const WinoSetup&) = delete;

  Conv2dParams p;
  Tensor x, wt, b;
  ConvSpec spec;
  Shape os;  // the conv output's shape
};

// MaxPool2d(2, 2) of conv (floor mode), as the fused pool must compute it.
Tensor max_pool_ref(const Tensor& conv) {
  const Shape& os = conv.shape();
  Tensor ref({os[0], os[1], os[2] / 2, os[3] / 2});
  const Shape& ps = ref.shape();
  for (int64_t n = 0; n < ps[0]; ++n)
    for (int64_t ch = 0; ch < ps[1]; ++ch)
      for (int64_t i = 0; i < ps[2]; ++i)
        for (int64_t j = 0; j < ps[3]; ++j) {
          const float* q = conv.image(n) + (ch * os[2] + 2 * i) * os[3] + 2 * j;
          ref.image(n)[(ch * ps[2] + i) * ps[3] + j] = std::max({q[0], q[1], q[os[3]], q[os[3] + 1]});
        }
  return ref;
}

}  // namespace

TEST_CASE("native Winograd kernel agrees with the reference kernel", "[winograd]") {
  const Activation elu{ActKind::ELU, 1.0f, 0.3f, -0.2f};
  const WinoCase cases[] = {
      {1, 64, 64, 7, 36, 64, 3, elu},        // the seed cores' hidden layer, smaller image
      {2, 16, 24, 7, 17, 29, 3, elu},        // odd sizes: partial tiles and tile vectors, OC % 16 != 0
      {1, 20, 36, 5, 23, 50, 2, {ActKind::Sigmoid}},
      {1, 64, 128, 3, 18, 32, 1, {ActKind::ReLU}},  // VGG-like, 3 tile vectors per block
      {3, 17, 19, 3, 9, 100, 1, {ActKind::Log1Exp, 1.0f, 0.5f, 0.0f}},  // scalar-epilogue activation
      {1, 32, 16, 3, 40, 7, 0, {ActKind::None}},  // no padding, narrow
      {1, 16, 16, 7, 7, 7, 3, {ActKind::Exp, 1.0f, 2.0f, 0.0f}},  // one tile row of partial tiles
  };
  for (Isa isa : {Isa::Avx2, Isa::Avx512}) {
    if (!cpu_supports(isa)) {
      WARN("Winograd kernel, ISA " << isa_name(isa) << ": not run on this CPU");
      continue;
    }
    for (const WinoCase& c : cases) {
      WinoSetup s(c, isa, 11);
      const Tensor& x = s.x;
      ConvSpec& spec = s.spec;
      const Shape& os = s.os;
      INFO(isa_name(isa) << ": " << s.p.str() << " on " << x.shape().str() << ", " << c.act.str());
      REQUIRE(winograd_eligible(spec, x.shape()));
      Tensor ref(os), got(os);
      conv_once(Backend::Reference, spec, x, ref);
      run_winograd(spec, x, got);
      const double err = test::normalised_error(got, ref);
      CAPTURE(err);
      // F(2, 7) multiplies float32 rounding by its transforms' range (up to ~5); the bound is the
      // documented accuracy of the algorithm, a few times what these cases reach.
      CHECK(err <= (c.k == 7 ? 2e-5 : 5e-6));

      // Strided views: a channel range of a bigger input and output.
      Tensor big_in({c.n, c.ic + 3, c.h, c.w}), big_out({c.n, c.oc + 5, os[2], os[3]});
      big_in.channels(2, c.ic).copy_from(x);
      big_out.fill(NAN);
      Tensor view_out = big_out.channels(4, c.oc);
      run_winograd(spec, big_in.channels(2, c.ic), view_out);
      CHECK(test::normalised_error(view_out, got) == 0.0);
      CHECK(std::isnan(big_out.channels(0, 4).data()[0]));

      // allow_winograd = false: direct summation.
      spec.allow_winograd = false;
      Tensor direct(os);
      conv_once(Backend::Native, spec, x, direct);
      CHECK(test::normalised_error(direct, ref) <= 5e-6);  // float32 sums of up to 3136 terms
    }
  }
}

TEST_CASE("native packs subnormal weights as zero without changing results beyond rounding", "[winograd]") {
  // Half the weights subnormal (as sparsity penalties can leave them): the packed kernels drop them.
  for (int64_t k : {3, 7}) {
    Conv2dParams p = Conv2dParams::square(16, 16, k, 1, k / 2);
    const Tensor x = test::random_tensor({1, 16, 12, 20}, 21);
    Tensor wt = test::random_tensor(p.weight_shape(), 22, 0.05f);
    for (int64_t i = 0; i < wt.numel(); i += 2) wt.data()[i] = (i % 4 ? 1.0f : -1.0f) * 3e-40f;
    ConvSpec spec{p, wt.data(), nullptr, {ActKind::None}};
    spec.precision = Precision::Fast;
    Tensor ref(p.output_shape(x.shape(), "test")), got(ref.shape()), direct(ref.shape());
    conv_once(Backend::Reference, spec, x, ref);
    conv_once(Backend::Native, spec, x, got);  // Winograd for 3x3, FFT for 7x7
    spec.allow_winograd = false;
    conv_once(Backend::Native, spec, x, direct);
    CAPTURE(k);
    CHECK(test::normalised_error(got, ref) <= 2e-5);
    CHECK(test::normalised_error(direct, ref) <= 5e-6);
  }
}

TEST_CASE("the kernels' compile-time transforms equal the constructed ones", "[winograd]") {
  auto check = [](auto tag, int r) {
    constexpr int A = decltype(tag)::value;
    const WinogradTransforms t = winograd_transforms(2, r);
    for (int i = 0; i < A * A; ++i) CHECK(WinogradConst<A>::BT[size_t(i)] == float(t.BT[size_t(i)]));
    for (int i = 0; i < 2 * A; ++i) CHECK(WinogradConst<A>::AT[size_t(i)] == float(t.AT[size_t(i)]));
  };
  check(std::integral_constant<int, 4>{}, 3);
  check(std::integral_constant<int, 6>{}, 5);
  check(std::integral_constant<int, 8>{}, 7);
}

TEST_CASE("native Winograd kernel with a fused 2x2 max pool agrees with the reference conv, then pooling",
          "[winograd]") {
  // ConvSpec::pool_2x2: the output transform keeps the maximum of each tile's 2 x 2 activated pixels.
  const WinoCase cases[] = {
      {1, 64, 128, 3, 18, 32, 1, {ActKind::ReLU}},                     // VGG-like
      {2, 17, 19, 3, 9, 101, 1, {ActKind::ReLU}},                      // odd sizes (last row and column dropped), batch 2
      {3, 20, 36, 3, 5, 6, 1, {ActKind::ELU, 1.0f, 0.3f, -0.2f}},      // small image, one partial tile vector
      {1, 16, 24, 3, 11, 37, 0, {ActKind::None}},                      // no padding: 9x35 conv output
      {1, 19, 17, 3, 14, 30, 1, {ActKind::Log1Exp, 1.0f, 0.5f, 0.0f}},  // scalar-only activation, before the max
      {1, 16, 16, 3, 3, 3, 1, {ActKind::ReLU}},                        // 1x1 pooled output
      {1, 16, 16, 7, 13, 21, 3, {ActKind::ELU}},                       // F(2x2, 7x7): the kernel alone
  };
  for (Isa isa : {Isa::Avx2, Isa::Avx512}) {
    if (!cpu_supports(isa)) {
      WARN("Winograd kernel with max pool, ISA " << isa_name(isa) << ": not run on this CPU");
      continue;
    }
    for (const WinoCase& c : cases) {
      WinoSetup s(c, isa, 31);
      const Tensor& x = s.x;
      ConvSpec& spec = s.spec;
      const Shape& os = s.os;
      const Shape ps{os[0], os[1], os[2] / 2, os[3] / 2};
      INFO(isa_name(isa) << ": " << s.p.str() << " on " << x.shape().str() << ", " << c.act.str());
      Tensor conv(os), got(ps);
      conv_once(Backend::Reference, spec, x, conv);
      const Tensor ref = max_pool_ref(conv);
      spec.pool_2x2 = true;
      // The backend runs 7x7 convs with the FFT (no pool), so only the kernel itself pools those.
      CHECK(native_pools(spec, x.shape()) == (c.k == 3));
      got.fill(NAN);
      run_winograd(spec, x, got);
      const double err = test::normalised_error(got, ref);
      CAPTURE(err);
      CHECK(err <= (c.k == 7 ? 2e-5 : 5e-6));
      // Through the backend's factory, and into a channel range of a bigger output (strided view).
      Tensor big_out({c.n, c.oc + 5, ps[2], ps[3]});
      big_out.fill(NAN);
      Tensor view_out = big_out.channels(4, c.oc);
      if (c.k == 3)
        conv_once(Backend::Native, spec, x, view_out);
      else
        run_winograd(spec, x, view_out);
      CHECK(test::normalised_error(view_out, got) == 0.0);
      CHECK(std::isnan(big_out.channels(0, 4).data()[0]));
    }
  }
  // Every other choice refuses the fused pool rather than ignoring it.
  Conv2dParams p = Conv2dParams::square(16, 16, 3, 1, 1);
  const Tensor x = test::random_tensor({1, 16, 8, 8}, 34);
  const Tensor wt = test::random_tensor(p.weight_shape(), 35, 0.1f);
  ConvSpec spec{p, wt.data(), nullptr, {ActKind::ReLU}};
  spec.pool_2x2 = true;
  Tensor y({1, 16, 4, 4});
  CHECK_THROWS_WITH(conv_once(Backend::Reference, spec, x, y), Catch::Contains("fused 2x2 max pool"));
  spec.allow_winograd = false;
  CHECK_FALSE(native_pools(spec, x.shape()));
  CHECK_THROWS_WITH(conv_once(Backend::Native, spec, x, y), Catch::Contains("fused 2x2 max pool"));
}

TEST_CASE("native Winograd kernel: blocks of tile rows over every band remainder, pooled or not, 1 and 2 threads",
          "[winograd]") {
  // A block is a column of up to VECS tile rows (bands of VECS rows walked column by column), whose
  // patches share the first pass of their overlapping rows: heights give 1 .. 7 tile rows (partial last
  // bands, the bottom padding row inside a run), widths 1 .. 3 tile vectors per row (partial vectors), a
  // batch of 2 (blocks that cross images), with and without padding. Every tile's arithmetic is its own,
  // so the thread count must not change one bit.
  for (Isa isa : {Isa::Avx2, Isa::Avx512}) {
    if (!cpu_supports(isa)) {
      WARN("Winograd kernel, tile-row blocks, ISA " << isa_name(isa) << ": not run on this CPU");
      continue;
    }
    for (int64_t pad : {1, 0})
      for (int64_t h : {3, 4, 5, 8, 11, 13, 14})
        for (int64_t w : {7, 30, 45, 70})
          for (bool pool : {false, true}) {
            const WinoCase c{2, 16, 18, 3, h, w, pad, {ActKind::ELU, 1.0f, 0.3f, -0.2f}};
            WinoSetup s(c, isa, 41);
            INFO(isa_name(isa) << ": " << s.p.str() << " on " << s.x.shape().str() << (pool ? ", pooled" : ""));
            Tensor conv(s.os);
            conv_once(Backend::Reference, s.spec, s.x, conv);
            const Tensor ref = pool ? max_pool_ref(conv) : conv;
            s.spec.pool_2x2 = pool;
            Tensor one(ref.shape()), two(ref.shape());
            {
              PlanThreads threads(1);
              run_winograd(s.spec, s.x, one);
            }
            {
              PlanThreads threads(2);
              run_winograd(s.spec, s.x, two);
            }
            const double err = test::normalised_error(one, ref);
            CAPTURE(err);
            CHECK(err <= 5e-6);
            CHECK(test::normalised_error(two, one) == 0.0);
          }
  }
}
