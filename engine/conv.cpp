#include "engine/conv.h"

#include <cstdio>

#include "engine/error.h"

namespace npcore {

Conv2dParams Conv2dParams::square(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding,
                                  int64_t dilation, int64_t groups, bool bias) {
  Conv2dParams p;
  p.in_channels = in;
  p.out_channels = out;
  p.kernel_h = p.kernel_w = kernel;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = padding;
  p.dilation_h = p.dilation_w = dilation;
  p.groups = groups;
  p.bias = bias;
  return p;
}

std::string Conv2dParams::str() const {
  char buf[200];
  std::snprintf(buf, sizeof buf, "Conv2d(%lld, %lld, k=%lldx%lld, s=%lldx%lld, p=%lldx%lld, d=%lldx%lld, g=%lld%s)",
                (long long)in_channels, (long long)out_channels, (long long)kernel_h, (long long)kernel_w,
                (long long)stride_h, (long long)stride_w, (long long)pad_h, (long long)pad_w,
                (long long)dilation_h, (long long)dilation_w, (long long)groups, bias ? ", bias" : "");
  return buf;
}

void Conv2dParams::validate(const std::string& where) const {
  auto fail = [&](const std::string& what) {
    throw ConfigError(where + ": invalid " + str() + ": " + what);
  };
  if (in_channels <= 0 || out_channels <= 0) fail("channel counts must be positive");
  if (kernel_h <= 0 || kernel_w <= 0) fail("kernel dimensions must be positive");
  if (stride_h <= 0 || stride_w <= 0) fail("strides must be positive");
  if (pad_h < 0 || pad_w < 0) fail("padding must be non-negative");
  if (dilation_h <= 0 || dilation_w <= 0) fail("dilation must be positive (1 means none)");
  if (groups <= 0) fail("groups must be positive");
  if (in_channels % groups || out_channels % groups)
    fail("in_channels and out_channels must be divisible by groups");
  const int64_t big = int64_t(1) << 20;
  if (in_channels > big || out_channels > big || kernel_h > 4096 || kernel_w > 4096 || stride_h > big ||
      stride_w > big || pad_h > big || pad_w > big || dilation_h > big || dilation_w > big)
    fail("a size is beyond the engine's limits (channels, strides, padding, dilation <= 2^20; kernel <= 4096)");
}

Shape Conv2dParams::output_shape(const Shape& in, const std::string& where) const {
  if (in.rank() != 4) throw ShapeError(where + ": input must be NCHW (rank 4), got " + in.str());
  if (in[1] != in_channels)
    throw ShapeError(where + ": input " + in.str() + " has " + std::to_string(in[1]) + " channels, the layer takes " +
                     std::to_string(in_channels));
  const int64_t eh = dilation_h * (kernel_h - 1) + 1, ew = dilation_w * (kernel_w - 1) + 1;
  const int64_t hp = in[2] + 2 * pad_h, wp = in[3] + 2 * pad_w;
  if (hp < eh || wp < ew)
    throw ShapeError(where + ": input " + in.str() + " padded to " + std::to_string(hp) + "x" + std::to_string(wp) +
                     " is smaller than the dilated kernel " + std::to_string(eh) + "x" + std::to_string(ew));
  return {in[0], out_channels, (hp - eh) / stride_h + 1, (wp - ew) / stride_w + 1};
}

double Conv2dParams::flops(const Shape& in) const {
  Shape out = output_shape(in, "flops");
  return 2.0 * double(out.numel()) * double(in_channels / groups) * double(kernel_h * kernel_w);
}

const char* backend_name(Backend b) {
  switch (b) {
    case Backend::Reference: return "reference";
    case Backend::Gemm: return "gemm";
    case Backend::OneDnn: return "onednn";
    case Backend::Native: return "native";
  }
  return "?";
}

Backend parse_backend(const std::string& name) {
  for (Backend b : all_backends())
    if (name == backend_name(b)) return b;
  throw ConfigError("unknown backend '" + name + "': expected one of reference, gemm, onednn, native");
}

const std::vector<Backend>& all_backends() {
  static const std::vector<Backend> v = {Backend::Reference, Backend::Gemm, Backend::OneDnn, Backend::Native};
  return v;
}

void check_run_shapes(Backend backend, const Conv2dParams& p, const Shape& planned_in, const Shape& planned_out,
                      const Tensor& in, const Tensor& out) {
  if (in.shape() != planned_in || out.shape() != planned_out)
    throw ShapeError(std::string(backend_name(backend)) + " conv " + p.str() + ": kernel made for input " +
                     planned_in.str() + " -> " + planned_out.str() + ", run with " + in.shape().str() + " -> " +
                     out.shape().str());
}

bool conv_supported(Backend backend, const ConvSpec& spec, const Shape& in, std::string* why) {
  if (backend == Backend::OneDnn) return onednn_conv_supported(spec, in, why);
  return true;  // reference and gemm run every valid convolution
}

std::unique_ptr<ConvKernel> make_conv_kernel(Backend backend, const ConvSpec& spec, const Shape& in) {
  spec.params.validate("conv");
  spec.params.output_shape(in, "conv");
  std::string why;
  if (!conv_supported(backend, spec, in, &why))
    throw BackendError(std::string(backend_name(backend)) + " cannot run " + spec.params.str() + ": " + why);
  if (spec.pool_2x2 && backend != Backend::Native)
    throw UsageError(std::string(backend_name(backend)) + " conv " + spec.params.str() +
                     ": a fused 2x2 max pool is the native backend's only");
  switch (backend) {
    case Backend::Reference: return make_reference_conv(spec, in);
    case Backend::Gemm: return make_gemm_conv(spec, in);
    case Backend::OneDnn: return make_onednn_conv(spec, in);
    case Backend::Native: return make_native_conv(spec, in);
  }
  throw BackendError("unknown backend");
}

void conv_once(Backend backend, const ConvSpec& spec, const Tensor& in, Tensor& out) {
  auto k = make_conv_kernel(backend, spec, in.shape());
  AlignedBuffer scratch = aligned_floats(k->scratch_floats());
  auto state = k->make_state();
  k->run(in, out, scratch.get(), state.get());
}

}  // namespace npcore
