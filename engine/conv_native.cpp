// The native backend (engine/conv.h): picks the algorithm and the instruction set for a convolution and
// makes the kernel from that ISA's dispatch table (engine/native/kernels.h): the tiled FFT for 5x5..9x9
// kernels (fft_eligible below), Winograd where eligible and accurate enough (engine/winograd.h: 3x3, and
// 5x5/7x7 with precision fast where the FFT does not run), else the register-blocked direct convolution
// for stride 1 and groups 1, else gemm (strides, groups; everything on the generic ISA), so this backend
// runs every convolution. allow_winograd false: neither FFT nor Winograd.
#include "engine/error.h"
#include "engine/native/kernels.h"
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

enum class Algo { Fft, Winograd, Direct, Gemm };

Algo choose(const ConvSpec& spec, const Shape& in, const native::Kernels* k) {
  if (!k) return Algo::Gemm;
  const Conv2dParams& p = spec.params;
  if (spec.allow_winograd && fft_eligible(spec)) return Algo::Fft;
  if (spec.allow_winograd && winograd_eligible(spec, in) && (p.kernel_h == 3 || spec.precision == Precision::Fast))
    return Algo::Winograd;
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
    case Algo::Direct: return "direct";
    default: return "gemm";
  }
}

std::unique_ptr<ConvKernel> make_native_conv(const ConvSpec& spec, const Shape& in) {
  const native::Kernels* k = native::kernels(spec.isa);
  switch (choose(spec, in, k)) {
    case Algo::Fft: return k->fft(spec, in);
    case Algo::Winograd: return k->winograd(spec, in);
    case Algo::Direct: return k->direct(spec, in);
    default: return std::make_unique<DelegatingConv>(make_gemm_conv(spec, in));
  }
}

}  // namespace npcore
