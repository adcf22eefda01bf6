#pragma once
// 2D convolution: parameters shared by every backend, the kernel interface, and the backend registry.
// A kernel is created for one (parameters, weights, epilogue, input shape) and is then immutable: run()
// may be called from several threads at once, each with its own scratch memory and RunState.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/activation.h"
#include "engine/isa.h"
#include "engine/tensor.h"

namespace npcore {

class WeightPacks;  // engine/packed_weights.h

// torch.nn.Conv2d's constructor arguments (dilation counted from 1, as PyTorch does).
struct Conv2dParams {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  bool bias = true;

  // Square-kernel convenience constructor, the form neuralpredictors uses.
  static Conv2dParams square(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = 0,
                             int64_t dilation = 1, int64_t groups = 1, bool bias = true);
  // Throws ConfigError naming `where` and the rule when a value is out of range.
  void validate(const std::string& where) const;
  // Output shape for an NCHW input; throws ShapeError naming `where`.
  Shape output_shape(const Shape& in, const std::string& where) const;
  Shape weight_shape() const { return {out_channels, in_channels / groups, kernel_h, kernel_w}; }
  // Multiply-accumulates of one forward on `in`, times two (the FLOP count benchmarks report).
  double flops(const Shape& in) const;
  std::string str() const;  // "Conv2d(16, 32, k=3x3, s=1, p=1, d=1, g=1, bias)"
};

// How exact the native backend's algorithm choice must be (EngineOptions::precision, --precision).
enum class Precision { Accurate, Fast };
const char* precision_name(Precision p);  // "accurate", "fast"
// Parses "accurate" or "fast"; throws ConfigError naming `where` otherwise.
Precision parse_precision(const std::string& name, const std::string& where = "precision");

// What a conv computes after the sum: y = act(conv(x, weight) + bias[o]). BatchNorm, Bias2D and Scale2D
// are folded into weight and bias before a kernel is made.
struct ConvSpec {
  Conv2dParams params;
  const float* weight = nullptr;  // [out, in/groups, kh, kw], row-major; read during kernel creation only
  const float* bias = nullptr;    // [out] or null
  Activation act;
  // The native backend may compute an eligible conv (stride 1, >= 16 channels) with a fast algorithm:
  // Winograd F(2x2, 3x3) for 3x3 kernels (2.25x fewer multiplications), a tiled FFT for 5x5..9x9 ones
  // (about 8x fewer for 7x7). False keeps direct summation everywhere.
  bool allow_winograd = true;
  // Accurate (default): only algorithms at least as accurate as PyTorch's float32 path (docs/ACCURACY.md):
  // Winograd F(2x2, 3x3) and the FFT. Fast: may also use Winograd F(2x2, 5x5) and F(2x2, 7x7) (2-4x the
  // error) where the FFT does not run; today the FFT covers every such conv, so both run the same.
  Precision precision = Precision::Accurate;
  // The native backend's instruction set (Auto: NPCORE_ISA, else the CPU's best; engine/isa.h).
  Isa isa = Isa::Auto;
  // The packed forms of these weights made so far, shared by the kernels of every input shape (the
  // owning layer's; engine/packed_weights.h). Null: the kernel packs a private copy.
  WeightPacks* packs = nullptr;
  // The output is the conv's (activated) output max-pooled by 2x2 windows at stride 2 (MaxPool2d(2, 2),
  // floor mode): a following pooling layer absorbed by fusion. Only the native backend's Winograd kernel
  // takes it (native_pools); make_conv_kernel refuses it for every other choice.
  bool pool_2x2 = false;
};

// reference: direct loops, the oracle. gemm: im2col + Eigen. onednn: oneDNN's primitive. native: the
// engine's own AVX2 or AVX-512 kernels, chosen at run time (engine/isa.h, engine/native/): for stride-1
// ungrouped convs with >= 16 channels in and out, Winograd F(2x2, 3x3) for 3x3 kernels and a tiled FFT for
// 5x5..9x9 ones (neither when ConvSpec::allow_winograd is false), a register-blocked channel GEMM for 1x1
// convs (stride 1, no padding; "pointwise"), a vectorised depthwise conv for groups = in = out channels
// (any kernel, stride, padding, dilation; "depthwise"), a register-blocked direct convolution for other
// stride-1 ungrouped convs, and gemm for the rest (strided, other groupings; everything on the generic
// ISA). A depth-separable block (DepthSeparableConv2d) runs fused when fusion is on
// (make_native_depth_separable).
enum class Backend { Reference, Gemm, OneDnn, Native };
const char* backend_name(Backend b);
// Parses "reference", "gemm", "onednn", "native"; throws ConfigError listing them otherwise.
Backend parse_backend(const std::string& name);
const std::vector<Backend>& all_backends();

// Per-thread mutable state a prepared kernel or op may need (oneDNN memory handles), made once per
// workspace so that run() allocates nothing and several threads can run the same kernel.
class RunState {
 public:
  virtual ~RunState() = default;
};

// A convolution prepared for one input shape.
class ConvKernel {
 public:
  virtual ~ConvKernel() = default;
  virtual Backend backend() const = 0;
  // Floats of scratch memory one run() needs (64-byte aligned by the caller).
  virtual size_t scratch_floats() const { return 0; }
  virtual std::unique_ptr<RunState> make_state() const { return nullptr; }
  // The packed weights it reads (shared with the other kernels of its layer: engine/packed_weights.h),
  // or null if it keeps none of its own (reference: the spec's; onednn: its primitive's).
  virtual const float* packed_weights() const { return nullptr; }
  // Whether run() may be called by every thread of a forward's team at once (TeamScope, engine/parallel.h):
  // all its parallel work goes through parallel_for / parallel_for_dynamic with per-thread scratch slots
  // from thread_slot(), and its code outside those loops writes nothing shared.
  virtual bool team_safe() const { return false; }
  // in: the input shape given at creation; out: the output shape, either may be a batch/channel view.
  virtual void run(const Tensor& in, Tensor& out, float* scratch, RunState* state) const = 0;
};

// Throws ShapeError unless in/out have the shapes a kernel was made for (checked at the start of run()).
void check_run_shapes(Backend backend, const Conv2dParams& p, const Shape& planned_in, const Shape& planned_out,
                      const Tensor& in, const Tensor& out);

// Can `backend` run this convolution? If not, `why` says why.
bool conv_supported(Backend backend, const ConvSpec& spec, const Shape& in, std::string* why = nullptr);
// Creates a kernel; throws BackendError if the backend cannot run it.
std::unique_ptr<ConvKernel> make_conv_kernel(Backend backend, const ConvSpec& spec, const Shape& in);

// The implementations (engine/conv_reference.cpp, conv_gemm.cpp, conv_onednn.cpp, conv_native.cpp).
std::unique_ptr<ConvKernel> make_reference_conv(const ConvSpec& spec, const Shape& in);
std::unique_ptr<ConvKernel> make_gemm_conv(const ConvSpec& spec, const Shape& in);
std::unique_ptr<ConvKernel> make_onednn_conv(const ConvSpec& spec, const Shape& in);
std::unique_ptr<ConvKernel> make_native_conv(const ConvSpec& spec, const Shape& in);
bool onednn_conv_supported(const ConvSpec& spec, const Shape& in, std::string* why);

// The native backend's fused depth-separable block (1x1 pw1 -> depthwise dw -> 1x1 pw2, pw2 carrying the
// folded norm and activation), on `in`; null when it does not apply (generic ISA, a conv its kernels do
// not take, or too few rows per thread to split), and then the three convs run one by one.
std::unique_ptr<ConvKernel> make_native_depth_separable(const ConvSpec& pw1, const ConvSpec& dw, const ConvSpec& pw2,
                                                        const Shape& in);

// Whether the fused block, with fewer images than threads, computes pw1 of each image once into a full
// padded plane per channel that the image's row ranges share (no halo recomputed): for a depthwise conv
// `dw` of stride 1 along the width on pw1's output `mid`, when the plane (about 4 bytes x channels x padded
// rows x padded width) is at most 768 KB. Else the ranges recompute the halo and short ranges decline.
inline bool ds_shared_pw1(const Conv2dParams& dw, const Shape& mid, int threads) {
  if (threads < 2 || mid[0] >= threads || dw.stride_w != 1) return false;
  const int64_t rows = mid[2] + 2 * dw.pad_h, row = mid[3] + 2 * dw.pad_w + 16;
  return 4 * mid[1] * rows * row <= 768 * 1024;
}

// The algorithm the native backend picks for this convolution: "fft", "winograd", "pointwise", "depthwise",
// "direct" or "gemm", and the ISA it runs with (resolved from spec.isa).
std::string native_algorithm(const ConvSpec& spec, const Shape& in, Isa* isa = nullptr);
// True if the native backend can compute this conv on `in` with ConvSpec::pool_2x2 (its Winograd kernel).
bool native_pools(const ConvSpec& spec, const Shape& in);

// Runs a convolution once with a temporary workspace (tests, tools; not for steady-state use).
void conv_once(Backend backend, const ConvSpec& spec, const Tensor& in, Tensor& out);

}  // namespace npcore
