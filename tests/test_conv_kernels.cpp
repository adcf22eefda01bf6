// The fast Conv2d backends (gemm, onednn, native, the native one with Winograd or FFT where a case is eligible)
// against the reference kernel over a table of shapes, activations and views; concurrent runs;
// allocation-free steady state (gemm, native; onednn allocates inside the library, the same each run);
// refusal of invalid parameters and of runs on another shape (the allocation test's 5x5 32->32 conv runs
// the FFT kernel on native). test_winograd.cpp and test_fft_conv.cpp test the Winograd and FFT kernels on
// their own.
// Closeness bound: normalised error max|y - ref| / max|ref| <= 1e-5 (float32 sums over up to 3136 terms
// against the reference's double accumulation).
#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <thread>

#include "engine/conv.h"
#include "engine/error.h"
#include "tests/alloc_count.h"
#include "tests/test_util.h"

using namespace npcore;

namespace {

constexpr double kBound = 1e-5;
const Backend kFast[] = {Backend::Gemm, Backend::OneDnn, Backend::Native};

struct ConvCase {
  std::string name;
  Conv2dParams p;
  Shape in;
  Activation act = {};
  bool view_in = false, view_out = false;  // run on channel ranges of bigger tensors
};

Conv2dParams params(int64_t in, int64_t out, int64_t kh, int64_t kw, int64_t sh = 1, int64_t sw = 1,
                    int64_t ph = 0, int64_t pw = 0, int64_t dh = 1, int64_t dw = 1, int64_t groups = 1,
                    bool bias = true) {
  Conv2dParams p;
  p.in_channels = in;
  p.out_channels = out;
  p.kernel_h = kh;
  p.kernel_w = kw;
  p.stride_h = sh;
  p.stride_w = sw;
  p.pad_h = ph;
  p.pad_w = pw;
  p.dilation_h = dh;
  p.dilation_w = dw;
  p.groups = groups;
  p.bias = bias;
  return p;
}

Activation act(ActKind kind, float in_shift = 0.3f, float out_shift = -0.7f, float alpha = 1.0f) {
  Activation a;
  a.kind = kind;
  a.in_shift = in_shift;
  a.out_shift = out_shift;
  a.alpha = alpha;
  return a;
}

std::vector<ConvCase> shape_table() {
  using S = Conv2dParams;
  std::vector<ConvCase> t = {
      {"1x1 (no im2col)", S::square(16, 32, 1), {2, 16, 9, 11}},
      {"1x1 stride 2", S::square(8, 12, 1, 2), {1, 8, 9, 10}},
      {"1x1 padded", S::square(8, 12, 1, 1, 1), {1, 8, 5, 6}},
      {"1x1 pad beyond kernel", S::square(4, 6, 1, 1, 2), {2, 4, 3, 5}},
      {"3x3 same", S::square(8, 16, 3, 1, 1), {1, 8, 12, 10}},
      {"3x3 several tiles", S::square(8, 8, 3, 1, 1), {1, 8, 64, 72}},
      {"5x5 same", S::square(6, 10, 5, 1, 2), {1, 6, 13, 11}},
      {"7x7 same", S::square(8, 8, 7, 1, 3), {1, 8, 15, 16}},
      {"9x9 1->64 (input layer)", S::square(1, 64, 9, 1, 4), {1, 1, 20, 24}},
      {"9x9 valid", S::square(3, 5, 9), {1, 3, 17, 19}},
      {"64->64 7x7", S::square(64, 64, 7, 1, 3), {1, 64, 18, 20}},
      {"64->64 3x3 batch 3", S::square(64, 64, 3, 1, 1), {3, 64, 9, 7}},
      {"stride 2", S::square(8, 16, 3, 2, 1), {2, 8, 15, 17}},
      {"stride 3", S::square(6, 8, 5, 3, 2), {1, 6, 20, 19}},
      {"stride 3 unreached border", S::square(4, 4, 2, 3), {1, 4, 10, 11}},
      {"dilation 2", S::square(8, 8, 3, 1, 2, 2), {1, 8, 16, 14}},
      {"dilation 3", S::square(8, 8, 3, 1, 3, 3), {2, 8, 16, 14}},
      {"dilation 3 stride 2 valid", S::square(4, 8, 3, 2, 0, 3), {1, 4, 19, 17}},
      {"padding 0", S::square(8, 8, 3), {1, 8, 10, 12}},
      {"asymmetric kernel/pad 3x5 p1x2", params(8, 8, 3, 5, 1, 1, 1, 2), {1, 8, 11, 9}},
      {"asymmetric 1x7 s2x1 p0x3 d1x2", params(4, 6, 1, 7, 2, 1, 0, 3, 1, 2), {2, 4, 9, 16}},
      {"asymmetric pad 2x0", params(4, 4, 3, 3, 1, 1, 2, 0), {1, 4, 7, 9}},
      {"groups 2", S::square(8, 16, 3, 1, 1, 1, 2), {2, 8, 10, 9}},
      {"groups 4 stride 2", S::square(16, 8, 3, 2, 1, 1, 4), {1, 16, 13, 12}},
      {"depthwise", S::square(16, 16, 3, 1, 1, 1, 16), {2, 16, 11, 13}},
      {"depthwise dilated", S::square(12, 12, 3, 1, 2, 2, 12), {1, 12, 14, 10}},
      {"depthwise multiplier 2", S::square(8, 16, 5, 1, 2, 1, 8), {1, 8, 9, 9}},
      {"odd image 7x13", S::square(5, 7, 3, 1, 1), {3, 5, 7, 13}},
      {"1x1 image padded 3x3", S::square(4, 8, 3, 1, 1), {2, 4, 1, 1}},
      {"1x1 image 1x1 kernel", S::square(4, 8, 1), {3, 4, 1, 1}},
      {"no bias 3x3", S::square(8, 16, 3, 1, 1, 1, 1, false), {2, 8, 10, 12}},
      {"no bias 1x1", S::square(8, 4, 1, 1, 0, 1, 1, false), {1, 8, 6, 6}},
      {"no bias depthwise", S::square(8, 8, 3, 1, 1, 1, 8, false), {2, 8, 6, 7}},
  };
  // Every activation, with nonzero shifts, with and without bias.
  const ActKind kinds[] = {ActKind::None, ActKind::ELU,     ActKind::ReLU,         ActKind::Sigmoid,
                           ActKind::Exp,  ActKind::Log1Exp, ActKind::SoftThreshold};
  for (ActKind k : kinds) {
    t.push_back({std::string("act ") + act_kind_name(k), S::square(8, 8, 3, 1, 1), {2, 8, 10, 12}, act(k)});
    t.push_back({std::string("act no bias ") + act_kind_name(k),
                 S::square(8, 8, 3, 1, 1, 1, 1, false),
                 {1, 8, 9, 7},
                 act(k)});
  }
  t.push_back(
      {"act ELU alpha 0.7", S::square(8, 8, 3, 1, 1), {2, 8, 10, 12}, act(ActKind::ELU, -0.2f, 1.0f, 0.7f)});
  t.push_back({"act out_shift only", S::square(8, 8, 1), {1, 8, 5, 6}, act(ActKind::None, 0.0f, 1.0f)});
  // Views: channel ranges of bigger tensors, so batch_stride() > C*H*W.
  t.push_back({"view in 3x3", S::square(8, 16, 3, 1, 1), {3, 8, 10, 9}, {}, true, false});
  t.push_back({"view out 3x3", S::square(8, 16, 3, 1, 1), {3, 8, 10, 9}, {}, false, true});
  t.push_back({"view in+out 1x1", S::square(8, 16, 1), {2, 8, 10, 9}, act(ActKind::ELU), true, true});
  t.push_back({"view in+out grouped strided",
               S::square(8, 8, 3, 2, 1, 1, 2),
               {3, 8, 11, 9},
               act(ActKind::Log1Exp),
               true,
               true});
  t.push_back({"view in+out batch 1",
               S::square(8, 8, 3, 1, 1),
               {1, 8, 10, 9},
               act(ActKind::SoftThreshold),
               true,
               true});
  return t;
}

// Weights ~ N(0, 1/fan_in) so outputs stay O(1) and Exp does not overflow; bias ~ N(0, 0.5).
struct RandomConv {
  Tensor weight, bias;
  ConvSpec spec;
  RandomConv(const Conv2dParams& p, const Activation& a, uint64_t seed) {
    const double fan_in = double(p.in_channels / p.groups * p.kernel_h * p.kernel_w);
    weight = test::random_tensor(p.weight_shape(), seed, float(1.0 / std::sqrt(fan_in)));
    if (p.bias) bias = test::random_tensor({p.out_channels}, seed + 1, 0.5f);
    spec.params = p;
    spec.weight = weight.data();
    spec.bias = p.bias ? bias.data() : nullptr;
    spec.act = a;
  }
};

// Input for `shape`, as a dense tensor or as channels [2, 2 + C) of a [N, C + 3, H, W] tensor.
Tensor make_input(const Shape& shape, bool view, uint64_t seed) {
  if (!view) return test::random_tensor(shape, seed);
  Tensor big = test::random_tensor({shape[0], shape[1] + 3, shape[2], shape[3]}, seed);
  return big.channels(2, shape[1]);
}

// The message of the E that f() throws, or a note saying what happened instead.
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<another exception: ") + e.what() + ">";
  }
  return "<no exception>";
}

}  // namespace

TEST_CASE("gemm, onednn and native convs match the reference kernel", "[conv]") {
  for (Backend backend : kFast) {
    uint64_t seed = 100;
    for (const ConvCase& c : shape_table()) {
      seed += 10;
      const Shape out_shape = c.p.output_shape(c.in, "test");
      INFO("backend " << backend_name(backend) << ", case '" << c.name << "': " << c.p.str() << " on "
                      << c.in.str() << " -> " << out_shape.str() << ", " << c.act.str()
                      << (c.view_in ? ", input view" : "") << (c.view_out ? ", output view" : ""));
      RandomConv rc(c.p, c.act, seed);
      REQUIRE(conv_supported(backend, rc.spec, c.in));
      Tensor in = make_input(c.in, c.view_in, seed + 5);
      Tensor expected(out_shape);
      conv_once(Backend::Reference, rc.spec, in.clone(), expected);

      // Output: NaN-filled so unwritten pixels fail; as a view, the channels around it hold a sentinel.
      const float sentinel = 7.25f;
      Tensor big, out;
      if (c.view_out) {
        big = Tensor({out_shape[0], out_shape[1] + 3, out_shape[2], out_shape[3]});
        big.fill(sentinel);
        out = big.channels(1, out_shape[1]);
      } else {
        out = Tensor(out_shape);
      }
      out.fill(NAN);
      conv_once(backend, rc.spec, in, out);

      const double err = test::normalised_error(out, expected);
      CAPTURE(err);
      CHECK(err <= kBound);
      if (c.view_out) {
        int64_t touched = 0;
        for (int64_t n = 0; n < out_shape[0]; ++n) {
          const int64_t plane = out_shape[2] * out_shape[3];
          const float* img = big.image(n);
          for (int64_t i = 0; i < plane; ++i) touched += img[i] != sentinel;
          for (int64_t i = (1 + out_shape[1]) * plane; i < (3 + out_shape[1]) * plane; ++i)
            touched += img[i] != sentinel;
        }
        CHECK(touched == 0);
      }
    }
  }
}

TEST_CASE("onednn post-op activations compute the same function as apply_activation", "[conv]") {
  // Conv once without activation, apply it with the engine's own code, and compare with the fused
  // post-op: isolates oneDNN's eltwise implementations. Bound 1e-6 normalised.
  const ActKind kinds[] = {ActKind::ELU, ActKind::ReLU, ActKind::Sigmoid, ActKind::Exp};
  const Conv2dParams p = Conv2dParams::square(16, 16, 3, 1, 1);
  const Shape in_shape{2, 16, 24, 20};
  Tensor in = test::random_tensor(in_shape, 7, 1.5f);
  for (ActKind k : kinds) {
    for (float alpha : {1.0f, 0.6f}) {
      if (alpha != 1.0f && k != ActKind::ELU) continue;
      const Activation a = act(k, 0.25f, 0.5f, alpha);
      INFO(a.str());
      RandomConv fused(p, a, 3);
      RandomConv plain(p, Activation(), 3);
      Tensor y(p.output_shape(in_shape, "test")), manual(y.shape());
      conv_once(Backend::OneDnn, fused.spec, in, y);
      conv_once(Backend::OneDnn, plain.spec, in, manual);
      apply_activation(a, manual.data(), manual.numel());
      const double err = test::normalised_error(y, manual);
      CAPTURE(err);
      CHECK(err <= 1e-6);
    }
  }
}

TEST_CASE("concurrent runs of one kernel equal single-threaded runs", "[conv]") {
  // Four threads share one kernel, each with its own scratch, RunState, input and output, and run it
  // repeatedly; every result must equal (bit for bit) the same run made alone beforehand.
  const int kThreads = 4, kRepeats = 8;
  struct StressCase {
    const char* name;
    Conv2dParams p;
    Shape in;
    bool views;
  };
  const StressCase cases[] = {
      {"dense", Conv2dParams::square(16, 24, 3, 1, 1), {2, 16, 28, 30}, false},
      {"views", Conv2dParams::square(16, 16, 5, 1, 2, 1, 2), {3, 16, 17, 19}, true},
  };
  for (Backend backend : kFast) {
    for (const StressCase& sc : cases) {
      INFO(backend_name(backend) << " " << sc.name << ": " << sc.p.str() << " on " << sc.in.str());
      RandomConv rc(sc.p, act(ActKind::ELU), 11);
      auto kernel = make_conv_kernel(backend, rc.spec, sc.in);
      const Shape out_shape = sc.p.output_shape(sc.in, "test");
      std::vector<Tensor> inputs, expected;
      for (int t = 0; t < kThreads; ++t) {
        inputs.push_back(make_input(sc.in, sc.views, 50 + uint64_t(t)));
        Tensor e(out_shape);
        conv_once(backend, rc.spec, inputs.back(), e);
        Tensor r(out_shape);
        conv_once(Backend::Reference, rc.spec, inputs.back().clone(), r);
        REQUIRE(test::normalised_error(e, r) <= kBound);
        expected.push_back(e);
      }
      std::atomic<int> mismatches{0};
      std::vector<std::thread> threads;
      for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
          AlignedBuffer scratch = aligned_floats(kernel->scratch_floats());
          auto state = kernel->make_state();
          Tensor big({out_shape[0], out_shape[1] + 2, out_shape[2], out_shape[3]});
          Tensor out = sc.views ? big.channels(1, out_shape[1]) : Tensor(out_shape);
          for (int r = 0; r < kRepeats; ++r) {
            out.fill(NAN);
            kernel->run(inputs[size_t(t)], out, scratch.get(), state.get());
            if (test::normalised_error(out, expected[size_t(t)]) != 0.0) ++mismatches;
          }
        });
      }
      for (auto& th : threads) th.join();
      CHECK(mismatches.load() == 0);
    }
  }
}

TEST_CASE("gemm and native runs allocate nothing; onednn runs allocate the same each time", "[conv]") {
  if (!test::AllocCount::available()) {
    WARN("allocation counting needs glibc without sanitizers; skipped");
    return;
  }
  const Conv2dParams p = Conv2dParams::square(32, 32, 5, 1, 2);
  const Shape in_shape{2, 32, 40, 44};
  RandomConv rc(p, act(ActKind::ELU), 21);
  Tensor dense = test::random_tensor(in_shape, 22);
  Tensor view = make_input(in_shape, true, 23);
  Tensor out(p.output_shape(in_shape, "test"));
  for (Backend backend : kFast) {
    auto kernel = make_conv_kernel(backend, rc.spec, in_shape);
    AlignedBuffer scratch = aligned_floats(kernel->scratch_floats());
    auto state = kernel->make_state();
    for (const Tensor* in : {&dense, &view}) {
      const char* what = in == &dense ? "dense input" : "input view";
      kernel->run(*in, out, scratch.get(), state.get());  // warm-up: OpenMP's thread pool, oneDNN's caches
      int64_t n[2], bytes[2];
      for (int r = 0; r < 2; ++r) {
        test::AllocCount count;
        kernel->run(*in, out, scratch.get(), state.get());
        n[r] = count.count();
        bytes[r] = count.bytes();
      }
      INFO(backend_name(backend) << " " << what << ": " << n[0] << " allocations, " << bytes[0]
                                 << " bytes per run");
      if (backend == Backend::OneDnn) {
        // For plain NCHW oneDNN 2.6 picks its gemm convolution, whose sgemm driver allocates packing buffers
        // on every call, plus small bookkeeping per execute. Not ours to remove; it must at least be steady.
        WARN("onednn " << what << ": " << n[0] << " allocations, " << bytes[0]
                       << " bytes inside oneDNN per run");
        CHECK(n[1] == n[0]);
        CHECK(bytes[1] == bytes[0]);
      } else {
        CHECK(n[0] == 0);
        CHECK(n[1] == 0);
      }
    }
  }
}

TEST_CASE("make_conv_kernel refuses invalid parameters naming the rule", "[conv]") {
  const Shape in{1, 8, 10, 10};
  Tensor w = test::random_tensor({64, 8, 3, 3}, 1), b = test::random_tensor({64}, 2);
  auto spec_of = [&](const Conv2dParams& p) {
    ConvSpec s;
    s.params = p;
    s.weight = w.data();
    s.bias = b.data();
    return s;
  };
  struct Bad {
    Conv2dParams p;
    Shape in;
    const char* words;
    bool config;  // ConfigError (parameters) or ShapeError (input)
  };
  const Bad bad[] = {
      {Conv2dParams::square(8, 6, 3, 1, 1, 1, 4), in, "divisible by groups", true},
      {Conv2dParams::square(8, 8, 0), in, "kernel dimensions must be positive", true},
      {Conv2dParams::square(8, 8, 3, 0), in, "strides must be positive", true},
      {Conv2dParams::square(8, 8, 3, 1, -1), in, "padding must be non-negative", true},
      {Conv2dParams::square(8, 8, 3, 1, 1, 0), in, "dilation must be positive", true},
      {Conv2dParams::square(8, 8, 3, 1, 1, 1, 0), in, "groups must be positive", true},
      {Conv2dParams::square(0, 8, 3), in, "channel counts must be positive", true},
      {Conv2dParams::square(4, 8, 3), in, "the layer takes 4", false},
      {Conv2dParams::square(8, 8, 3), {8, 10, 10}, "rank 4", false},
      {Conv2dParams::square(8, 8, 5, 1, 0, 3), in, "smaller than the dilated kernel 13x13", false},
  };
  for (Backend backend : all_backends()) {
    for (const Bad& x : bad) {
      INFO(backend_name(backend) << ": " << x.p.str() << " on " << x.in.str() << ", expecting '" << x.words
                                 << "'");
      auto make = [&] { make_conv_kernel(backend, spec_of(x.p), x.in); };
      if (x.config)
        CHECK_THAT(message_of<ConfigError>(make), Catch::Matchers::Contains(x.words));
      else
        CHECK_THAT(message_of<ShapeError>(make), Catch::Matchers::Contains(x.words));
    }
  }
}

TEST_CASE("gemm, onednn and native kernels refuse a run on another shape", "[conv]") {
  const Conv2dParams p = Conv2dParams::square(4, 4, 3, 1, 1);
  RandomConv rc(p, Activation(), 5);
  for (Backend backend : kFast) {
    INFO(backend_name(backend));
    auto k = make_conv_kernel(backend, rc.spec, {1, 4, 8, 8});
    AlignedBuffer scratch = aligned_floats(k->scratch_floats());
    auto state = k->make_state();
    Tensor in({1, 4, 8, 9}), out({1, 4, 8, 9});
    CHECK_THAT(message_of<ShapeError>([&] { k->run(in, out, scratch.get(), state.get()); }),
               Catch::Matchers::Contains("kernel made for input [1, 4, 8, 8]"));
  }
}
