#include "cores/core.h"

#include <omp.h>

#include <algorithm>

#include "engine/error.h"
#include "engine/rng.h"
#include "weights/state_dict.h"
#include "weights/weight_spec.h"

namespace npcore {
namespace {

struct CoreState final : RunState {
  std::vector<std::unique_ptr<RunState>> blocks;
};

// Shape of the channel concatenation of `parts`; throws ShapeError naming `what` if they differ
// elsewhere than in channels.
Shape concat_shape(const std::vector<Shape>& parts, const std::string& what) {
  Shape s = parts.at(0);
  for (size_t i = 1; i < parts.size(); ++i) {
    const Shape& p = parts[i];
    if (p[0] != s[0] || p[2] != s[2] || p[3] != s[3])
      throw ShapeError(what + ": cannot concatenate outputs of shapes " + s.str() + " and " + p.str() +
                       " along channels (batch, height and width must agree)");
    s[1] += p[1];
  }
  return s;
}

}  // namespace

// ---- Core -------------------------------------------------------------------------------------------

Shape Core::output_shape(const Shape& in) const {
  if (in.rank() != 4) throw ShapeError(std::string(type()) + ": input must be NCHW (rank 4), got " + in.str());
  if (in[1] != input_channels_)
    throw ShapeError(std::string(type()) + ": input " + in.str() + " has " + std::to_string(in[1]) +
                     " channels, the core takes " + std::to_string(input_channels_));
  std::vector<Shape> outs;
  for (size_t b = 0; b < blocks_.size(); ++b) {
    Shape bin = in;
    if (b > 0) {
      const size_t m = skip_ > 1 ? std::min<size_t>(size_t(skip_), b) : 1;
      std::vector<Shape> parts(outs.end() - long(m), outs.end());
      bin = concat_shape(parts, blocks_[b]->name() + " (skip input)");
    }
    outs.push_back(blocks_[b]->output_shape(bin));
  }
  std::vector<Shape> parts;
  for (int64_t i : stack_) parts.push_back(outs.at(size_t(i)));
  return concat_shape(parts, std::string(type()) + " stack");
}

WeightSpec Core::weight_spec() const {
  WeightSpec spec;
  for (const auto& b : blocks_) b->declare(spec);
  for (const auto& p : ignored_) spec.ignore_prefix(p);
  return spec;
}

void Core::load(const StateDict& sd) {
  weight_spec().check(sd, type());
  for (const auto& b : blocks_) b->load(sd);
  after_load(sd);
  prepared_ = false;
}

void Core::init(uint64_t seed) {
  Rng rng(seed);
  for (const auto& b : blocks_) b->init(rng);
  prepared_ = false;
}

StateDict Core::state_dict() const {
  StateDict sd(std::string(type()) + " parameters");
  for (const auto& b : blocks_) b->save(sd);
  return sd;
}

void Core::prepare(const EngineOptions& opt) {
  opt_ = opt;
  for (const auto& b : blocks_) prepare_layer(*b, opt);
  prepared_ = true;
}

std::unique_ptr<Plan> Core::plan(const Shape& in) const {
  if (!prepared_) throw BackendError(std::string(type()) + ": plan() before prepare()");
  auto p = std::unique_ptr<Plan>(new Plan());
  p->in_ = in;
  p->out_ = output_shape(in);  // validates the whole wiring first, with messages naming blocks
  p->threads_ = opt_.threads;
  // Kernels size their thread teams and per-thread scratch when made: make them under the plan's count.
  struct ThreadScope {
    int saved = omp_get_max_threads();
    explicit ThreadScope(int n) {
      if (n > 0) omp_set_num_threads(n);
    }
    ~ThreadScope() { omp_set_num_threads(saved); }
  } scope(opt_.threads);
  p->skip_ = skip_;
  p->ring_ = int(skip_ > 1 ? skip_ : 1) + 1;
  const size_t nb = blocks_.size();
  p->out_offsets_.assign(nb, {});
  {
    int64_t off = 0;
    std::vector<Shape> outs;
    for (size_t b = 0; b < nb; ++b) {
      Shape bin = in;
      if (b > 0) {
        const size_t m = skip_ > 1 ? std::min<size_t>(size_t(skip_), b) : 1;
        bin = concat_shape(std::vector<Shape>(outs.end() - long(m), outs.end()), blocks_[b]->name());
        if (m > 1) p->concat_floats_ = std::max(p->concat_floats_, size_t(bin.numel()));
      }
      auto op = blocks_[b]->plan(bin, opt_);
      outs.push_back(op->out_shape);
      p->block_scratch_ = std::max(p->block_scratch_, op->scratch_floats());
      p->names_.push_back(blocks_[b]->name());
      p->block_out_.push_back(op->out_shape);
      p->blocks_.push_back(std::move(op));
    }
    for (int64_t i : stack_) {
      p->out_offsets_[size_t(i)].push_back(off);
      off += outs[size_t(i)][1];
    }
  }
  p->slot_.assign(nb, -1);
  for (size_t b = 0; b < nb; ++b)
    if (p->out_offsets_[b].empty()) {
      p->slot_[b] = int(b % size_t(p->ring_));
      p->slot_floats_ = std::max(p->slot_floats_, size_t(p->block_out_[b].numel()));
    }
  return p;
}

Tensor Core::forward(const Tensor& in, const TapFn* tap) const {
  auto p = plan(in.shape());
  return p->run(in, tap);
}

// ---- Plan -------------------------------------------------------------------------------------------

Workspace Plan::make_workspace() const {
  Workspace ws;
  ws.scratch_floats = size_t(ring_) * round_floats(slot_floats_) + round_floats(concat_floats_) + block_scratch_;
  ws.scratch = aligned_floats(ws.scratch_floats);
  auto st = std::make_unique<CoreState>();
  for (const auto& b : blocks_) st->blocks.push_back(b->make_state());
  ws.state = std::move(st);
  return ws;
}

double Plan::conv_flops() const {
  double f = 0;
  for (const auto& b : blocks_) f += b->conv_flops();
  return f;
}

double Plan::block_conv_flops(size_t i) const { return blocks_.at(i)->conv_flops(); }

void Plan::run(const Tensor& in, Tensor& out, Workspace& ws, const TapFn* tap) const {
  if (in.shape() != in_)
    throw ShapeError("core input " + in.shape().str() + " does not match the planned shape " + in_.str());
  if (out.shape() != out_)
    throw ShapeError("core output " + out.shape().str() + " does not match the planned shape " + out_.str());
  auto* st = dynamic_cast<CoreState*>(ws.state.get());
  if (!ws.scratch || !st || st->blocks.size() != blocks_.size())
    throw BackendError("workspace was not made by this plan (use Plan::make_workspace)");
  if (threads_ > 0) omp_set_num_threads(threads_);  // this thread's ICV only

  float* ring = ws.scratch.get();
  float* concat = ring + size_t(ring_) * round_floats(slot_floats_);
  float* scratch = concat + round_floats(concat_floats_);
  // Where block b's output lives (no allocation: views only).
  auto output_of = [&](size_t b) -> Tensor {
    if (slot_[b] >= 0) return Tensor::wrap(ring + size_t(slot_[b]) * round_floats(slot_floats_), block_out_[b]);
    return out.channels(out_offsets_[b][0], block_out_[b][1]);
  };
  for (size_t b = 0; b < blocks_.size(); ++b) {
    Tensor bin;
    if (b == 0) {
      bin = in;
    } else {
      const size_t m = skip_ > 1 ? std::min<size_t>(size_t(skip_), b) : 1;
      if (m == 1) {
        bin = output_of(b - 1);
      } else {
        Shape s = block_out_[b - m];
        s[1] = 0;
        for (size_t k = b - m; k < b; ++k) s[1] += block_out_[k][1];
        bin = Tensor::wrap(concat, s);
        int64_t c = 0;
        for (size_t k = b - m; k < b; ++k) {
          Tensor part = bin.channels(c, block_out_[k][1]);
          part.copy_from(output_of(k));
          c += block_out_[k][1];
        }
      }
    }
    Tensor dst = output_of(b);
    blocks_[b]->run(bin, dst, scratch, st->blocks[b].get());
    for (size_t k = 1; k < out_offsets_[b].size(); ++k) {
      Tensor extra = out.channels(out_offsets_[b][k], block_out_[b][1]);
      extra.copy_from(dst);
    }
    if (tap) (*tap)(names_[b], dst);
  }
}

Tensor Plan::run(const Tensor& in, const TapFn* tap) const {
  Tensor out(out_);
  Workspace ws = make_workspace();
  run(in, out, ws, tap);
  return out;
}

}  // namespace npcore
