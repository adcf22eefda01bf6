#include "layers/max_pool2d.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "engine/error.h"
#include "engine/parallel.h"

#include "engine/native/kernels.h"

namespace npcore {
namespace {

// PyTorch's pooling_output_shape for one dimension.
int64_t pooled_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dilation, bool ceil_mode) {
  const int64_t span = in + 2 * pad - dilation * (k - 1) - 1;
  if (span < 0) return 0;
  int64_t out = (span + (ceil_mode ? stride - 1 : 0)) / stride + 1;
  // With ceil_mode the last window must start inside the input or the left padding.
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

class MaxPoolOp final : public Op {
 public:
  // kernels: the ISA's vector kernels, or null for the portable loop (the reference backend's).
  MaxPoolOp(const MaxPool2dParams& p, const native::Kernels* kernels)
      : p_(p), kernels_(kernels), threads_(planned_threads()) {}

 protected:
  void do_run(const Tensor& in, Tensor& out, float*, RunState*) const override {
    const int64_t N = in.dim(0), C = in.dim(1), H = in.dim(2), W = in.dim(3);
    const int64_t OH = out.dim(2), OW = out.dim(3);
    const MaxPool2dParams p = p_;
    if (kernels_ && p.kernel_h == 2 && p.kernel_w == 2 && p.stride_h == 2 && p.stride_w == 2 && p.pad_h == 0 && p.pad_w == 0 &&
        p.dilation_h == 1 && p.dilation_w == 1 && 2 * OH <= H && 2 * OW <= W) {
      parallel_for(N * C, threads_, [&](int64_t j) {
        const int64_t n = j / C, c = j % C;
        kernels_->max_pool_2x2(in.image(n) + c * H * W, out.image(n) + c * OH * OW, H, W, OH, OW);
      });
      return;
    }
    parallel_for(N * C, threads_, [&](int64_t j) {
      const int64_t n = j / C, c = j % C;
      {
        const float* x = in.image(n) + c * H * W;
        float* y = out.image(n) + c * OH * OW;
        for (int64_t oh = 0; oh < OH; ++oh) {
          // The window's rows inside the input: start at the first valid dilated tap.
          int64_t h0 = oh * p.stride_h - p.pad_h;
          const int64_t h1 = std::min(h0 + (p.kernel_h - 1) * p.dilation_h + 1, H);
          while (h0 < 0) h0 += p.dilation_h;
          for (int64_t ow = 0; ow < OW; ++ow) {
            int64_t w0 = ow * p.stride_w - p.pad_w;
            const int64_t w1 = std::min(w0 + (p.kernel_w - 1) * p.dilation_w + 1, W);
            while (w0 < 0) w0 += p.dilation_w;
            float m = -std::numeric_limits<float>::infinity();
            for (int64_t h = h0; h < h1; h += p.dilation_h)
              for (int64_t w = w0; w < w1; w += p.dilation_w) {
                const float v = x[h * W + w];
                if (v > m || std::isnan(v)) m = v;  // as PyTorch: a NaN wins and stays
              }
            y[oh * OW + ow] = m;
          }
        }
      }
    });
  }

 private:
  MaxPool2dParams p_;
  const native::Kernels* kernels_;
  int threads_;
};

}  // namespace

MaxPool2dParams MaxPool2dParams::square(int64_t kernel, int64_t stride, int64_t padding, int64_t dilation,
                                        bool ceil_mode) {
  MaxPool2dParams p;
  p.kernel_h = p.kernel_w = kernel;
  p.stride_h = p.stride_w = stride > 0 ? stride : kernel;
  p.pad_h = p.pad_w = padding;
  p.dilation_h = p.dilation_w = dilation;
  p.ceil_mode = ceil_mode;
  return p;
}

std::string MaxPool2dParams::str() const {
  char buf[160];
  std::snprintf(buf, sizeof buf, "MaxPool2d(k=%lldx%lld, s=%lldx%lld, p=%lldx%lld, d=%lldx%lld%s)",
                (long long)kernel_h, (long long)kernel_w, (long long)stride_h, (long long)stride_w,
                (long long)pad_h, (long long)pad_w, (long long)dilation_h, (long long)dilation_w,
                ceil_mode ? ", ceil_mode" : "");
  return buf;
}

void MaxPool2dParams::validate(const std::string& where) const {
  auto fail = [&](const std::string& what) { throw ConfigError(where + ": invalid " + str() + ": " + what); };
  if (kernel_h <= 0 || kernel_w <= 0) fail("kernel dimensions must be positive");
  if (stride_h <= 0 || stride_w <= 0) fail("strides must be positive");
  if (dilation_h <= 0 || dilation_w <= 0) fail("dilation must be positive (1 means none)");
  if (pad_h < 0 || pad_w < 0) fail("padding must be non-negative");
  // PyTorch: "pad should be at most half of effective kernel size".
  if (pad_h > ((kernel_h - 1) * dilation_h + 1) / 2 || pad_w > ((kernel_w - 1) * dilation_w + 1) / 2)
    fail("padding must be at most half of the (dilated) kernel size");
}

Shape MaxPool2dParams::output_shape(const Shape& in, const std::string& where) const {
  if (in.rank() != 4) throw ShapeError(where + ": input must be NCHW (rank 4), got " + in.str());
  const int64_t oh = pooled_size(in[2], kernel_h, pad_h, stride_h, dilation_h, ceil_mode);
  const int64_t ow = pooled_size(in[3], kernel_w, pad_w, stride_w, dilation_w, ceil_mode);
  if (oh < 1 || ow < 1)
    throw ShapeError(where + ": input " + in.str() + " is too small for " + str() + " (output would be " +
                     std::to_string(oh) + "x" + std::to_string(ow) + ")");
  return {in[0], in[1], oh, ow};
}

MaxPool2d::MaxPool2d(std::string name, const MaxPool2dParams& params) : Layer(std::move(name)), p_(params) {
  p_.validate(label());
}

std::unique_ptr<Op> MaxPool2d::make_op(const Shape& in, const EngineOptions& opt) const {
  auto op = std::make_unique<MaxPoolOp>(p_, opt.backend == Backend::Reference ? nullptr : native::kernels(opt.isa));
  op->in_shape = in;
  op->out_shape = output_shape(in);
  return op;
}

bool MaxPool2d::as_max_pool_2x2(MaxPool2dParams* out) const {
  const MaxPool2dParams& p = p_;
  if (p.kernel_h != 2 || p.kernel_w != 2 || p.stride_h != 2 || p.stride_w != 2 || p.pad_h != 0 || p.pad_w != 0 ||
      p.dilation_h != 1 || p.dilation_w != 1 || p.ceil_mode)
    return false;
  if (out) *out = p;
  return true;
}

}  // namespace npcore
