#include "layers/attention_conv.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/parallel.h"
#include "engine/rng.h"
#include "layers/batch_norm2d.h"
#include "weights/state_dict.h"
#include "weights/weight_spec.h"

namespace npcore {
namespace {

struct AttentionState final : RunState {
  std::unique_ptr<RunState> q, k, v;
};

class AttentionOp final : public Op {
 public:
  std::unique_ptr<Op> q, k, v;  // 1x1 convs: q on the input, k and v on the padded input
  Tensor rel_h, rel_w;  // [C/2, K] each, copies owned by the plan
  int64_t C = 0, K = 0, pad = 0;
  int threads = 1;

  // padded input | q | k | v | conv scratch
  size_t padded_floats() const { return round_floats(size_t(k->in_shape.numel())); }
  size_t q_floats() const { return round_floats(size_t(q->out_shape.numel())); }
  size_t kv_floats() const { return round_floats(size_t(k->out_shape.numel())); }
  size_t scratch_floats() const override {
    return padded_floats() + q_floats() + 2 * kv_floats() +
           std::max({q->scratch_floats(), k->scratch_floats(), v->scratch_floats()});
  }
  std::unique_ptr<RunState> make_state() const override {
    auto s = std::make_unique<AttentionState>();
    s->q = q->make_state();
    s->k = k->make_state();
    s->v = v->make_state();
    return s;
  }
  double conv_flops() const override { return q->conv_flops() + k->conv_flops() + v->conv_flops(); }
  void list_convs(std::vector<ConvRun>& out) const override {
    q->list_convs(out);
    k->list_convs(out);
    v->list_convs(out);
  }


 protected:
  void do_run(const Tensor& in, Tensor& out, float* scratch, RunState* state) const override {
    auto* st = static_cast<AttentionState*>(state);
    const int64_t N = in.dim(0), Cin = in.dim(1), H = in.dim(2), W = in.dim(3);
    const int64_t Hp = H + 2 * pad, Wp = W + 2 * pad;
    Tensor padded = Tensor::wrap(scratch, k->in_shape);
    Tensor qo = Tensor::wrap(scratch + padded_floats(), q->out_shape);
    Tensor ko = Tensor::wrap(qo.data() + q_floats(), k->out_shape);
    Tensor vo = Tensor::wrap(ko.data() + kv_floats(), v->out_shape);
    float* conv_scratch = vo.data() + kv_floats();
    // [N, Cin, H, W] -> zero-padded [N, Cin, Hp, Wp]: each padded row written once, borders as zeros.
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < Cin; ++c)
        for (int64_t hp = 0; hp < Hp; ++hp) {
          float* row = padded.image(n) + (c * Hp + hp) * Wp;
          const int64_t h = hp - pad;
          if (h < 0 || h >= H) {
            std::fill(row, row + Wp, 0.0f);
            continue;
          }
          std::fill(row, row + pad, 0.0f);
          std::copy_n(in.image(n) + (c * H + h) * W, W, row + pad);
          std::fill(row + pad + W, row + Wp, 0.0f);
        }
    q->run(in, qo, conv_scratch, st->q.get());
    k->run(padded, ko, conv_scratch, st->k.get());
    v->run(padded, vo, conv_scratch, st->v.get());

    const int64_t half = C / 2;
    const float* rh = rel_h.data();
    const float* rw = rel_w.data();
    parallel_for(N * C, threads, [&](int64_t job) {
      const int64_t n = job / C, c = job % C;
      {
        const float* qp = qo.image(n) + c * H * W;
        const float* kp = ko.image(n) + c * Hp * Wp;
        const float* vp = vo.image(n) + c * Hp * Wp;
        float* op = out.image(n) + c * H * W;
        float logits[64 * 64];
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w) {
            const float qv = qp[h * W + w];
            float mx = -INFINITY;
            for (int64_t i = 0; i < K; ++i)
              for (int64_t j = 0; j < K; ++j) {
                const float rel = c < half ? rh[c * K + i] : rw[(c - half) * K + j];
                const float l = qv * (kp[(h + i) * Wp + (w + j)] + rel);
                logits[i * K + j] = l;
                mx = std::max(mx, l);
              }
            float den = 0.0f;
            for (int64_t t = 0; t < K * K; ++t) {
              logits[t] = std::exp(logits[t] - mx);
              den += logits[t];
            }
            float acc = 0.0f;
            for (int64_t i = 0; i < K; ++i)
              for (int64_t j = 0; j < K; ++j) acc += logits[i * K + j] / den * vp[(h + i) * Wp + (w + j)];
            op[h * W + w] = acc;
          }
      }
    });
  }
};

}  // namespace

AttentionConv::AttentionConv(std::string name, int64_t in_channels, int64_t out_channels, int64_t kernel_size,
                             int64_t stride, int64_t padding, int64_t groups, bool bias)
    : Layer(name),
      in_(in_channels),
      out_(out_channels),
      k_(kernel_size),
      stride_(stride),
      pad_(padding),
      query_(name.empty() ? "query_conv" : name + ".query_conv", Conv2dParams::square(in_channels, out_channels, 1, 1, 0, 1, 1, bias)),
      key_(name.empty() ? "key_conv" : name + ".key_conv", Conv2dParams::square(in_channels, out_channels, 1, 1, 0, 1, 1, bias)),
      value_(name.empty() ? "value_conv" : name + ".value_conv", Conv2dParams::square(in_channels, out_channels, 1, 1, 0, 1, 1, bias)) {
  if (out_channels % 2)
    throw ConfigError(label() + ": out_channels " + std::to_string(out_channels) +
                      " must be even (the key channels are split in halves for rel_h and rel_w)");
  if (groups <= 0 || out_channels % groups)
    throw ConfigError(label() + ": out_channels " + std::to_string(out_channels) + " must be divisible by groups " +
                      std::to_string(groups));
  if (kernel_size <= 0 || kernel_size > 64)
    throw ConfigError(label() + ": kernel_size " + std::to_string(kernel_size) + " must be in 1..64");
  if (stride <= 0 || padding < 0) throw ConfigError(label() + ": stride must be positive and padding non-negative");
  rel_h_ = Tensor({out_ / 2, k_});
  rel_w_ = Tensor({out_ / 2, k_});
}

Shape AttentionConv::output_shape(const Shape& in) const {
  check_channels(label(), in, in_);
  const int64_t ho = (in[2] + 2 * pad_ - k_) / stride_ + 1, wo = (in[3] + 2 * pad_ - k_) / stride_ + 1;
  if (in[2] + 2 * pad_ < k_ || in[3] + 2 * pad_ < k_ || ho != in[2] || wo != in[3])
    throw ShapeError(label() + ": input " + in.str() + " with kernel " + std::to_string(k_) + ", stride " +
                     std::to_string(stride_) + ", padding " + std::to_string(pad_) + " gives windows on a " +
                     std::to_string(ho) + "x" + std::to_string(wo) +
                     " grid; AttentionConv needs it to equal the input size (stride 1, padding (k-1)/2)");
  return {in[0], out_, in[2], in[3]};
}

void AttentionConv::declare(WeightSpec& spec) const {
  spec.expect(key("rel_h"), {out_ / 2, 1, 1, k_, 1});
  spec.expect(key("rel_w"), {out_ / 2, 1, 1, 1, k_});
  key_.declare(spec);
  query_.declare(spec);
  value_.declare(spec);
}

void AttentionConv::load(const StateDict& sd) {
  rel_h_ = sd.get_float(key("rel_h")).reshape({out_ / 2, k_});
  rel_w_ = sd.get_float(key("rel_w")).reshape({out_ / 2, k_});
  key_.load(sd);
  query_.load(sd);
  value_.load(sd);
}

void AttentionConv::init(Rng& rng) {
  // neuralpredictors re-initialises every nn.Conv2d of a core with xavier_normal and zero bias,
  // these included; rel_h and rel_w are standard normal.
  rng.fill_normal(rel_h_, 0.0f, 1.0f);
  rng.fill_normal(rel_w_, 0.0f, 1.0f);
  key_.init(rng);
  query_.init(rng);
  value_.init(rng);
}

void AttentionConv::save(StateDict& sd) const {
  sd.add_float(key("rel_h"), rel_h_.reshape({out_ / 2, 1, 1, k_, 1}));
  sd.add_float(key("rel_w"), rel_w_.reshape({out_ / 2, 1, 1, 1, k_}));
  key_.save(sd);
  query_.save(sd);
  value_.save(sd);
}

void AttentionConv::prepare(const EngineOptions& opt) {
  query_.prepare(opt);
  key_.prepare(opt);
  value_.prepare(opt);
}

std::unique_ptr<Op> AttentionConv::make_op(const Shape& in, const EngineOptions& opt) const {
  Shape out = output_shape(in);
  auto op = std::make_unique<AttentionOp>();
  op->in_shape = in;
  op->out_shape = out;
  op->C = out_;
  op->K = k_;
  op->pad = pad_;
  op->rel_h = rel_h_.clone();
  op->rel_w = rel_w_.clone();
  op->threads = planned_threads();
  op->q = query_.plan(in, opt);
  op->k = key_.plan({in[0], in[1], in[2] + 2 * pad_, in[3] + 2 * pad_}, opt);
  op->v = value_.plan({in[0], in[1], in[2] + 2 * pad_, in[3] + 2 * pad_}, opt);
  return op;
}

}  // namespace npcore
