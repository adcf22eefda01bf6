// The native backend (engine/conv.h): picks the algorithm and the instruction set for a convolution and
// makes the kernel from that ISA's dispatch table (engine/native/kernels.h): the tiled FFT for 5x5..9x9
// kernels (fft_eligible below), Winograd where eligible and accurate enough (engine/winograd.h: 3x3, and
// 5x5/7x7 with precision fast where the FFT does not run), the channel GEMM for 1x1 convolutions (stride
// 1, no padding, groups 1), the vectorised depthwise convolution for groups = in = out channels (any
// kernel, stride, padding, dilation), else the register-blocked direct convolution for stride 1 and
// groups 1, else gemm (strides, other groups; everything on the generic ISA), so this backend runs every
// convolution. allow_winograd false: neither FFT nor Winograd.
#include "engine/error.h"
#include "engine/native/kernels.h"
#include "engine/parallel.h"
#include "engine/winograd.h"

namespace npcore {
namespace {

// Delegates to another kernel but reports itself as the native backend.
class DelegatingConv final : public ConvKernel {
 public:
  explicit DelegatingConv(std::unique_ptr<ConvKernel> k) : k_(std::move(k)) {}
  Backend backend() const override { return Backend::Native; }
  size_t scratch_floats() const override { return k_->scratch_floats(); }
  std::unique_ptr<RunState> make_state() const override { return k_->make_state(); }
  const float* packed_weights() const override { return k_->packed_weights(); }
  void run(const Tensor& in, Tensor& out, float* scratch, RunState* state) const override {
    k_->run(in, out, scratch, state);
  }

 private:
  std::unique_ptr<ConvKernel> k_;
};

// The tiled FFT convolution (engine/native/common/fft_conv.h): 16 x 16 input tiles, so kernels of 5..9
// per side (10 x 10 outputs per tile for 7x7); stride 1, no dilation or groups, and >= 16 channels in and
// out (the transforms cost per channel what the GEMM costs per channel pair). It is at least as exact
// as direct summation (docs/ACCURACY.md) and 2-3x faster on the seed cores' 7x7 64->64 convs.
bool fft_eligible(const ConvSpec& spec) {
  const Conv2dParams& p = spec.params;
  auto side = [](int64_t k) { return k >= 5 && k <= 9; };
  return p.groups == 1 && p.stride_h == 1 && p.stride_w == 1 && p.dilation_h == 1 && p.dilation_w == 1 &&
         side(p.kernel_h) && side(p.kernel_w) && p.in_channels >= 16 && p.out_channels >= 16;
}

enum class Algo { Fft, Winograd, Pointwise, Depthwise, Direct, Gemm };

Algo choose(const ConvSpec& spec, const Shape& in, const native::Kernels* k) {
  if (!k) return Algo::Gemm;
  const Conv2dParams& p = spec.params;
  if (spec.allow_winograd && fft_eligible(spec)) return Algo::Fft;
  if (spec.allow_winograd && winograd_eligible(spec, in) && (p.kernel_h == 3 || spec.precision == Precision::Fast))
    return Algo::Winograd;
  if (p.groups == 1 && p.kernel_h == 1 && p.kernel_w == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 &&
      p.pad_w == 0)
    return Algo::Pointwise;
  if (p.groups > 1 && p.groups == p.in_channels && p.groups == p.out_channels) return Algo::Depthwise;
  if (p.groups == 1 && p.stride_h == 1 && p.stride_w == 1) return Algo::Direct;
  return Algo::Gemm;
}

}  // namespace

const char* precision_name(Precision p) { return p == Precision::Fast ? "fast" : "accurate"; }

Precision parse_precision(const std::string& name, const std::string& where) {
  if (name == "accurate") return Precision::Accurate;
  if (name == "fast") return Precision::Fast;
  throw ConfigError(where + ": unknown precision '" + name + "': expected accurate or fast");
}

std::string native_algorithm(const ConvSpec& spec, const Shape& in, Isa* isa) {
  const Isa resolved = resolve_isa(spec.isa);
  if (isa) *isa = resolved;
  switch (choose(spec, in, native::kernels(resolved))) {
    case Algo::Fft: return "fft";
    case Algo::Winograd: return "winograd";
    case Algo::Pointwise: return "pointwise";
    case Algo::Depthwise: return "depthwise";
    case Algo::Direct: return "direct";
    default: return "gemm";
  }
}

bool native_pools(const ConvSpec& spec, const Shape& in) {
  return choose(spec, in, native::kernels(resolve_isa(spec.isa))) == Algo::Winograd;
}

std::unique_ptr<ConvKernel> make_native_depth_separable(const ConvSpec& pw1, const ConvSpec& dw, const ConvSpec& pw2,
                                                        const Shape& in) {
  const native::Kernels* k = native::kernels(dw.isa);
  if (!k || choose(pw1, in, k) != Algo::Pointwise) return nullptr;
  const Shape mid = pw1.params.output_shape(in, "depth-separable block");
  if (choose(dw, mid, k) != Algo::Depthwise) return nullptr;
  const Shape dws = dw.params.output_shape(mid, "depth-separable block");
  if (choose(pw2, dws, k) != Algo::Pointwise) return nullptr;
  // With fewer images than threads the rows are split between threads and each range recomputes the
  // depthwise halo of pw1: not worth it for short ranges (the unfused kernels split without overlap),
  // unless the image is small enough for its pw1 to be computed once and shared (ds_shared_pw1).
  const int threads = planned_threads();
  if (in[0] < threads && !ds_shared_pw1(dw.params, mid, threads)) {
    const int64_t ranges = (threads + in[0] - 1) / in[0], halo = (dw.params.kernel_h - 1) * dw.params.dilation_h;
    if (dws[2] / ranges < 4 * halo) return nullptr;
  }
  return k->depth_separable(pw1, dw, pw2, in);
}

std::unique_ptr<ConvKernel> make_native_conv(const ConvSpec& spec, const Shape& in) {
  const native::Kernels* k = native::kernels(spec.isa);
  const Algo algo = choose(spec, in, k);
  if (spec.pool_2x2 && algo != Algo::Winograd)
    throw UsageError("native conv " + spec.params.str() + ": a fused 2x2 max pool needs the Winograd kernel, " +
                     "this conv runs " + native_algorithm(spec, in));
  switch (algo) {
    case Algo::Fft: return k->fft(spec, in);
    case Algo::Winograd: return k->winograd(spec, in);
    case Algo::Pointwise: return k->pointwise(spec, in);
    case Algo::Depthwise: return k->depthwise(spec, in);
    case Algo::Direct: return k->direct(spec, in);
    default: return std::make_unique<DelegatingConv>(make_gemm_conv(spec, in));
  }
}

}  // namespace npcore
