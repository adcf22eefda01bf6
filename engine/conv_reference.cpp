// The oracle: direct convolution loops, accumulated in double, written to be read. Other backends are
// tested against it. OpenMP over (image, output channel) keeps the seed cores testable in seconds.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "engine/conv.h"
#include "engine/error.h"
#include "engine/parallel.h"

namespace npcore {
namespace {

class ReferenceConv final : public ConvKernel {
 public:
  ReferenceConv(const ConvSpec& spec, const Shape& in) : p_(spec.params), act_(spec.act), in_(in) {
    out_ = p_.output_shape(in, "reference conv");
    weight_.assign(spec.weight, spec.weight + p_.weight_shape().numel());
    if (spec.bias) bias_.assign(spec.bias, spec.bias + p_.out_channels);
    threads_ = planned_threads();
  }

  Backend backend() const override { return Backend::Reference; }

  // One double accumulator plane per thread.
  size_t scratch_floats() const override { return 2 * size_t(out_[2] * out_[3]) * size_t(threads_); }

  void run(const Tensor& in, Tensor& out, float* scratch, RunState*) const override {
    check_run_shapes(Backend::Reference, p_, in_, out_, in, out);
    const int64_t N = in_[0], H = in_[2], W = in_[3];
    const int64_t OC = p_.out_channels, OH = out_[2], OW = out_[3];
    const int64_t icg = p_.in_channels / p_.groups, ocg = OC / p_.groups;
    const int64_t KH = p_.kernel_h, KW = p_.kernel_w;
    double* planes = reinterpret_cast<double*>(scratch);

    parallel_for_dynamic(N * OC, threads_, [&](int64_t job) {
      const int64_t n = job / OC, oc = job % OC, g = oc / ocg;
      double* acc = planes + size_t(thread_slot()) * size_t(OH * OW);
      std::fill(acc, acc + OH * OW, bias_.empty() ? 0.0 : double(bias_[oc]));
      const float* x = in.image(n);
      for (int64_t icl = 0; icl < icg; ++icl) {
        const float* xc = x + (g * icg + icl) * H * W;  // [H, W] plane of this input channel
        const float* wk = weight_.data() + (oc * icg + icl) * KH * KW;
        for (int64_t kh = 0; kh < KH; ++kh) {
          for (int64_t kw = 0; kw < KW; ++kw) {
            const double wv = wk[kh * KW + kw];
            for (int64_t oh = 0; oh < OH; ++oh) {
              const int64_t ih = oh * p_.stride_h - p_.pad_h + kh * p_.dilation_h;
              if (ih < 0 || ih >= H) continue;
              const float* xr = xc + ih * W;
              double* ar = acc + oh * OW;
              // Output columns whose input column lies inside the image.
              const int64_t off = kw * p_.dilation_w - p_.pad_w;
              int64_t lo = off >= 0 ? 0 : (-off + p_.stride_w - 1) / p_.stride_w;
              int64_t hi = std::min(OW, (W - 1 - off) / p_.stride_w + 1);
              if (W - 1 - off < 0) hi = 0;
              for (int64_t ow = lo; ow < hi; ++ow) ar[ow] += wv * double(xr[ow * p_.stride_w + off]);
            }
          }
        }
      }
      float* y = out.image(n) + oc * OH * OW;
      for (int64_t i = 0; i < OH * OW; ++i) y[i] = float(acc[i]);
      if (!act_.is_identity()) apply_activation_scalar(act_, y, OH * OW);
    });
  }

 private:
  Conv2dParams p_;
  Activation act_;
  Shape in_, out_;
  std::vector<float> weight_, bias_;
  int threads_ = 1;
};

}  // namespace

std::unique_ptr<ConvKernel> make_reference_conv(const ConvSpec& spec, const Shape& in) {
  return std::make_unique<ReferenceConv>(spec, in);
}

}  // namespace npcore
