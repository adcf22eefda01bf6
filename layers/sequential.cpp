#include "layers/sequential.h"

#include <algorithm>

#include "engine/error.h"
#include "layers/max_pool2d.h"

namespace npcore {
namespace {

struct SequentialState final : RunState {
  std::vector<std::unique_ptr<RunState>> children;
};

class SequentialOp final : public Op {
 public:
  std::vector<std::unique_ptr<Op>> ops;
  std::vector<Shape> shapes;      // output shape of each op
  std::vector<int> dest;          // per op: -1 the caller's out, 0/1 a ping-pong buffer, -2 in place
  size_t buf_floats = 0;          // each ping-pong buffer
  size_t child_scratch = 0;

  bool in_place() const override { return false; }
  size_t scratch_floats() const override { return 2 * round_floats(buf_floats) + child_scratch; }
  std::unique_ptr<RunState> make_state() const override {
    auto s = std::make_unique<SequentialState>();
    for (const auto& op : ops) s->children.push_back(op->make_state());
    return s;
  }
  double conv_flops() const override {
    double f = 0;
    for (const auto& op : ops) f += op->conv_flops();
    return f;
  }
  void list_convs(std::vector<ConvRun>& out) const override {
    for (const auto& op : ops) op->list_convs(out);
  }
  // Its own code only picks buffers; the children run one after another (each loop ends in a barrier).
  bool team_safe() const override {
    for (const auto& op : ops)
      if (!op->team_safe()) return false;
    return true;
  }

 protected:
  void do_run(const Tensor& in, Tensor& out, float* scratch, RunState* state) const override {
    auto* st = static_cast<SequentialState*>(state);
    float* bufs[2] = {scratch, scratch + round_floats(buf_floats)};
    float* child = scratch + 2 * round_floats(buf_floats);
    Tensor cur = in;
    for (size_t i = 0; i < ops.size(); ++i) {
      Tensor dst;
      if (dest[i] == -1) {
        dst = out;
      } else if (dest[i] == -2) {
        dst = cur;
      } else {
        dst = Tensor::wrap(bufs[dest[i]], shapes[i]);
      }
      ops[i]->run(cur, dst, child, st ? st->children[i].get() : nullptr);
      cur = dst;
    }
  }
};

}  // namespace

Layer& Sequential::add(LayerPtr child) {
  children_.push_back(std::move(child));
  prepared_ = false;
  return *children_.back();
}

Shape Sequential::output_shape(const Shape& in) const {
  Shape s = in;
  for (const auto& c : children_) s = c->output_shape(s);
  return s;
}

void Sequential::declare(WeightSpec& spec) const {
  for (const auto& c : children_) c->declare(spec);
}
void Sequential::load(const StateDict& sd) {
  for (const auto& c : children_) c->load(sd);
  prepared_ = false;
}
void Sequential::init(Rng& rng) {
  for (const auto& c : children_) c->init(rng);
  prepared_ = false;
}
void Sequential::save(StateDict& sd) const {
  for (const auto& c : children_) c->save(sd);
}

// Absorbing into a Sequential means absorbing into its last running child, and only when nothing
// follows that child.
bool Sequential::tail_open() const {
  return fused_ && !active_.empty() && active_.back() + absorbed_.back().size() + 1 == children_.size();
}
bool Sequential::can_absorb_affine() const { return tail_open() && children_[active_.back()]->can_absorb_affine(); }
bool Sequential::can_absorb_activation() const {
  return tail_open() && children_[active_.back()]->can_absorb_activation();
}
bool Sequential::can_absorb_max_pool() const { return tail_open() && children_[active_.back()]->can_absorb_max_pool(); }
void Sequential::absorb_max_pool(const MaxPool2dParams& p) { children_[active_.back()]->absorb_max_pool(p); }
void Sequential::absorb_affine(const ChannelAffine& a) { children_[active_.back()]->absorb_affine(a); }
void Sequential::absorb_activation(const Activation& a) { children_[active_.back()]->absorb_activation(a); }

void Sequential::reset_fusion() {
  for (const auto& c : children_) c->reset_fusion();
  active_.clear();
  absorbed_.clear();
  fused_ = false;
  prepared_ = false;
}

void Sequential::fuse(const EngineOptions& opt) {
  reset_fusion();
  for (size_t i = 0; i < children_.size(); ++i) {
    Layer& c = *children_[i];
    c.fuse(opt);  // a nested Sequential decides its own fusion before it may absorb
    if (opt.fuse && !active_.empty() && active_.back() + absorbed_.back().size() + 1 == i) {
      Layer& prod = *children_[active_.back()];
      ChannelAffine aff;
      Activation act;
      if (c.as_channel_affine(&aff) && prod.can_absorb_affine()) {
        prod.absorb_affine(aff);
        absorbed_.back().push_back(i);
        continue;
      }
      if (c.as_activation(&act) && prod.can_absorb_activation()) {
        prod.absorb_activation(act);
        absorbed_.back().push_back(i);
        continue;
      }
      // A max pool only for the native backend (its Winograd kernel pools in its output transform; other
      // algorithms pool after the conv, as the unfused layers would), so that the other backends stay the
      // unfused reference.
      MaxPool2dParams pool;
      if (opt.backend == Backend::Native && c.as_max_pool_2x2(&pool) && prod.can_absorb_max_pool()) {
        prod.absorb_max_pool(pool);
        absorbed_.back().push_back(i);
        continue;
      }
    }
    active_.push_back(i);
    absorbed_.emplace_back();
  }
  fused_ = true;
}

void Sequential::prepare(const EngineOptions& opt) {
  if (!fused_) {  // no fusion pass: every child runs
    active_.clear();
    absorbed_.clear();
    for (size_t i = 0; i < children_.size(); ++i) {
      active_.push_back(i);
      absorbed_.emplace_back();
    }
    fused_ = true;
  }
  for (size_t i : active_) children_[i]->prepare(opt);
  prepared_ = true;
}

std::vector<std::string> Sequential::stage_names() const {
  std::vector<std::string> v;
  for (size_t k = 0; k < active_.size(); ++k) {
    std::string s = children_[active_[k]]->name();
    for (size_t j : absorbed_[k]) {
      const std::string& n = children_[j]->name();
      s.append("+").append(n, n.rfind('.') + 1, std::string::npos);
    }
    v.push_back(s);
  }
  return v;
}

std::unique_ptr<Op> Sequential::make_op(const Shape& in, const EngineOptions& opt) const {
  if (!prepared_) throw UsageError(label() + ": plan() before prepare()");
  output_shape(in);  // validates every child, those absorbed by fusion too, naming the one that fails
  auto op = std::make_unique<SequentialOp>();
  op->in_shape = in;
  op->name = label();
  Shape s = in;
  for (size_t i : active_) {
    auto child = children_[i]->plan(s, opt);
    if (child->name.empty()) child->name = children_[i]->label();
    s = child->out_shape;
    op->shapes.push_back(s);
    op->child_scratch = std::max(op->child_scratch, child->scratch_floats());
    op->ops.push_back(std::move(child));
  }
  op->out_shape = s;
  if (op->ops.empty()) {
    // An empty Sequential is the identity: one copy.
    class CopyOp final : public Op {
     public:
      bool in_place() const override { return true; }

     protected:
      void do_run(const Tensor& in, Tensor& out, float*, RunState*) const override {
        if (out.data() != in.data()) out.copy_from(in);
      }
    };
    auto c = std::make_unique<CopyOp>();
    c->in_shape = c->out_shape = in;
    op->ops.push_back(std::move(c));
    op->shapes.push_back(in);
  }
  // Destinations: the last out-of-place op (or the first op, if all are in place) writes to out; ops
  // after it run in place on out; ops before it alternate between the two buffers.
  const size_t n = op->ops.size();
  size_t last_oop = 0;
  for (size_t i = 0; i < n; ++i)
    if (!op->ops[i]->in_place()) last_oop = i;
  op->dest.assign(n, 0);
  int next = 0;
  for (size_t i = 0; i < n; ++i) {
    if (i == last_oop) {
      op->dest[i] = -1;
    } else if (i > last_oop) {
      op->dest[i] = -2;
    } else if (op->ops[i]->in_place() && i > 0) {
      op->dest[i] = -2;
    } else {
      op->dest[i] = next;
      next ^= 1;
      op->buf_floats = std::max(op->buf_floats, size_t(op->shapes[i].numel()));
    }
  }
  return op;
}

}  // namespace npcore
