// Convolution on a oneDNN 2.6 convolution_forward primitive (forward_inference, direct algorithm).
//
// Made once per kernel: the primitive for plain NCHW src/dst with the weights in whatever layout the
// primitive prefers (reordered once from PyTorch's oihw / goihw), f32 bias, the activation as post-ops
// where oneDNN computes the same function, and scratchpad_mode::user so that each run's scratchpad comes
// out of the caller's scratch and concurrent runs share no memory.
//
// Strided views: the batched primitive assumes images N*C*H*W apart. When a run's input or output steps
// between images by more than one image (a channel range of a bigger tensor) and N > 1, a second
// primitive made for batch 1 runs once per image (images themselves are always dense). Batch 1 never
// needs it, since a single image's stride is never used.
#include <omp.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <oneapi/dnnl/dnnl.hpp>

#include "engine/conv.h"
#include "engine/error.h"
#include "engine/parallel.h"

namespace npcore {
namespace {

using dnnl::memory;
using dt = memory::data_type;
using tag = memory::format_tag;

// The CPU engine all kernels share; immutable once made.
const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// Activations whose f oneDNN has as an eltwise post-op computing the same function.
bool act_as_post_op(ActKind k) {
  switch (k) {
    case ActKind::None:
    case ActKind::ELU:
    case ActKind::ReLU:
    case ActKind::Sigmoid:
    case ActKind::Exp:
      return true;
    // Log1Exp must overflow to inf for large x like upstream's naive log(1 + exp(x)), which oneDNN's
    // soft_relu does not; SoftThreshold has no post-op. Both are applied after the primitive.
    case ActKind::Log1Exp:
    case ActKind::SoftThreshold:
      return false;
  }
  return false;
}

// A primitive's arguments as oneDNN's C API takes them, so that a run builds no std::unordered_map.
struct Binding {
  memory src, dst, scratchpad;
  std::array<dnnl_exec_arg_t, 5> args{};
  int nargs = 0;
};

// Per-thread state: the stream and the src/dst/scratchpad memory objects whose data handles each run sets.
struct OneDnnState final : RunState {
  dnnl::stream stream;
  Binding batched, per_image;
};

class OneDnnConv final : public ConvKernel {
 public:
  OneDnnConv(const ConvSpec& spec, const Shape& in)
      : p_(spec.params), act_(spec.act), in_(in), threads_(planned_threads()) {
    out_ = p_.output_shape(in, "onednn conv");
    post_op_act_ = act_as_post_op(act_.kind);
    try {
      build(spec);
    } catch (const dnnl::error& e) {
      throw BackendError(describe("cannot create", e.status, e.what()));
    }
  }

  Backend backend() const override { return Backend::OneDnn; }

  size_t scratch_floats() const override { return scratch_floats_; }

  std::unique_ptr<RunState> make_state() const override {
    try {
      auto st = std::make_unique<OneDnnState>();
      st->stream = dnnl::stream(cpu_engine());
      bind(st->batched, pd_, weights_);
      if (in_[0] > 1) bind(st->per_image, pd1_, weights1_);
      return st;
    } catch (const dnnl::error& e) {
      throw BackendError(describe("cannot make run state for", e.status, e.what()));
    }
  }

  void run(const Tensor& in, Tensor& out, float* scratch, RunState* state) const override {
    check_run_shapes(Backend::OneDnn, p_, in_, out_, in, out);
    auto* st = dynamic_cast<OneDnnState*>(state);
    if (!st)
      throw UsageError("onednn conv " + p_.str() + ": run() needs the RunState made by make_state()");

    if (in_[0] == 1 || (in.contiguous() && out.contiguous())) {
      execute(prim_, st->batched, in.data(), out.data(), scratch, st->stream);
    } else {
      for (int64_t n = 0; n < in_[0]; ++n)
        execute(prim1_, st->per_image, in.image(n), out.image(n), scratch, st->stream);
    }

    if (!post_op_act_) {
      const int64_t N = out_[0], C = out_[1], plane = out_[2] * out_[3];
      parallel_for(N * C, threads_,
                   [&](int64_t job) { apply_activation(act_, out.image(job / C) + job % C * plane, plane); });
    }
  }

 private:
  void build(const ConvSpec& spec) {
    const dnnl::engine& eng = cpu_engine();
    const int64_t G = p_.groups, OC = p_.out_channels, IC = p_.in_channels;
    const memory::dims user_dims = G > 1 ? memory::dims{G, OC / G, IC / G, p_.kernel_h, p_.kernel_w}
                                         : memory::dims{OC, IC, p_.kernel_h, p_.kernel_w};
    const tag user_tag = G > 1 ? tag::goihw : tag::oihw;

    // The epilogue: fold in_shift into the bias (act(conv + b - in_shift)), f as a post-op, out_shift as a
    // linear post-op. Without a post-op f, the bias stays as given and the whole activation runs after.
    dnnl::post_ops ops;
    std::vector<float> bias(size_t(OC), 0.0f);
    if (spec.bias) std::copy_n(spec.bias, OC, bias.begin());
    has_bias_ = spec.bias != nullptr;
    if (post_op_act_) {
      float out_shift = act_.out_shift;
      if (act_.in_shift != 0.0f) {
        for (float& b : bias) b -= act_.in_shift;
        has_bias_ = true;
      }
      switch (act_.kind) {
        case ActKind::None:  // y = conv + b - in_shift + out_shift: all of it is bias
          if (out_shift != 0.0f) {
            for (float& b : bias) b += out_shift;
            has_bias_ = true;
          }
          out_shift = 0.0f;
          break;
        case ActKind::ELU:
          ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_elu, act_.alpha, 0.0f);
          break;
        case ActKind::ReLU:
          ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
          break;
        case ActKind::Sigmoid:
          ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_logistic, 0.0f, 0.0f);
          break;
        case ActKind::Exp:
          ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_exp, 0.0f, 0.0f);
          break;
        default:
          break;
      }
      if (out_shift != 0.0f) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_linear, 1.0f, out_shift);
    }
    attr_.set_post_ops(ops);
    attr_.set_scratchpad_mode(dnnl::scratchpad_mode::user);

    const memory::desc weights_any(user_dims, dt::f32, tag::any);
    pd_ = make_pd(in_[0], weights_any);
    prim_ = dnnl::convolution_forward(pd_);

    // Weights: reordered once into the primitive's layout; spec.weight is not kept.
    dnnl::stream s(eng);
    memory user_weights({user_dims, dt::f32, user_tag}, eng, const_cast<float*>(spec.weight));
    weights_ = memory(pd_.weights_desc(), eng);
    dnnl::reorder(user_weights, weights_).execute(s, user_weights, weights_);
    if (has_bias_) {
      bias_ = memory(pd_.bias_desc(), eng);
      std::memcpy(bias_.get_data_handle(), bias.data(), bias.size() * sizeof(float));
    }
    size_t scratch_bytes = pd_.scratchpad_desc().get_size();

    if (in_[0] > 1) {
      pd1_ = make_pd(1, weights_any);
      prim1_ = dnnl::convolution_forward(pd1_);
      if (pd1_.weights_desc() == pd_.weights_desc()) {
        weights1_ = weights_;
      } else {
        weights1_ = memory(pd1_.weights_desc(), eng);
        dnnl::reorder(user_weights, weights1_).execute(s, user_weights, weights1_);
      }
      scratch_bytes = std::max(scratch_bytes, pd1_.scratchpad_desc().get_size());
    }
    s.wait();
    scratch_floats_ = (scratch_bytes + sizeof(float) - 1) / sizeof(float);
  }

  // The primitive descriptor for `batch` dense NCHW images. oneDNN counts dilation from 0.
  dnnl::convolution_forward::primitive_desc make_pd(int64_t batch, const memory::desc& weights) const {
    const memory::desc src({batch, in_[1], in_[2], in_[3]}, dt::f32, tag::nchw);
    const memory::desc dst({batch, out_[1], out_[2], out_[3]}, dt::f32, tag::nchw);
    const memory::dims strides{p_.stride_h, p_.stride_w}, dilates{p_.dilation_h - 1, p_.dilation_w - 1};
    // PyTorch pads both sides equally; oneDNN, like PyTorch, drops the rows a stride does not reach.
    const memory::dims pad{p_.pad_h, p_.pad_w};
    const auto prop = dnnl::prop_kind::forward_inference;
    const auto alg = dnnl::algorithm::convolution_direct;
    if (has_bias_) {
      const memory::desc bias({p_.out_channels}, dt::f32, tag::x);
      return {{prop, alg, src, weights, bias, dst, strides, dilates, pad, pad}, attr_, cpu_engine()};
    }
    return {{prop, alg, src, weights, dst, strides, dilates, pad, pad}, attr_, cpu_engine()};
  }

  // Memory objects without buffers for one primitive's per-run arguments, and the argument list.
  void bind(Binding& b, const dnnl::convolution_forward::primitive_desc& pd, const memory& weights) const {
    const dnnl::engine& eng = cpu_engine();
    b.src = memory(pd.src_desc(), eng, DNNL_MEMORY_NONE);
    b.dst = memory(pd.dst_desc(), eng, DNNL_MEMORY_NONE);
    b.nargs = 0;
    b.args[b.nargs++] = {DNNL_ARG_SRC, b.src.get()};
    b.args[b.nargs++] = {DNNL_ARG_WEIGHTS, weights.get()};
    if (has_bias_) b.args[b.nargs++] = {DNNL_ARG_BIAS, bias_.get()};
    b.args[b.nargs++] = {DNNL_ARG_DST, b.dst.get()};
    if (pd.scratchpad_desc().get_size() > 0) {
      b.scratchpad = memory(pd.scratchpad_desc(), eng, DNNL_MEMORY_NONE);
      b.args[b.nargs++] = {DNNL_ARG_SCRATCHPAD, b.scratchpad.get()};
    }
  }

  void execute(const dnnl::primitive& prim, const Binding& b, const float* src, float* dst, float* scratch,
               const dnnl::stream& stream) const {
    check(dnnl_memory_set_data_handle_v2(b.src.get(), const_cast<float*>(src), nullptr), "set src");
    check(dnnl_memory_set_data_handle_v2(b.dst.get(), dst, nullptr), "set dst");
    if (b.scratchpad)
      check(dnnl_memory_set_data_handle_v2(b.scratchpad.get(), scratch, nullptr), "set scratchpad");
    check(dnnl_primitive_execute(prim.get(), stream.get(), b.nargs, b.args.data()), "execute");
    check(dnnl_stream_wait(stream.get()), "wait for");
  }

  void check(dnnl_status_t status, const char* what) const {
    if (status != dnnl_success) throw BackendError(describe(what, status, "call failed"));
  }

  // "onednn: cannot create Conv2d(...) on [1, 16, 36, 64]: <oneDNN message> (status)"
  std::string describe(const std::string& what, dnnl_status_t status, const char* message) const {
    return "onednn: " + what + " " + p_.str() + " on input " + in_.str() + ": " + message + " (" +
           dnnl_status2str(status) + ")";
  }

  Conv2dParams p_;
  Activation act_;
  Shape in_, out_;
  bool post_op_act_ = true, has_bias_ = false;
  int threads_ = 1;
  dnnl::primitive_attr attr_;
  dnnl::convolution_forward::primitive_desc pd_, pd1_;  // batch N, and batch 1 for strided views
  dnnl::convolution_forward prim_, prim1_;
  memory weights_, weights1_, bias_;  // shared read-only by every run
  size_t scratch_floats_ = 0;
};

}  // namespace

bool onednn_conv_supported(const ConvSpec&, const Shape&, std::string*) {
  // oneDNN's reference convolution takes every stride, padding, dilation and group count that Conv2dParams
  // validates, so every valid spec has an implementation.
  return true;
}

std::unique_ptr<ConvKernel> make_onednn_conv(const ConvSpec& spec, const Shape& in) {
  return std::make_unique<OneDnnConv>(spec, in);
}

}  // namespace npcore
