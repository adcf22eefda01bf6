#include "cores/core.h"

#include "engine/parallel.h"

#include <algorithm>
#include <exception>

#include "engine/error.h"
#include "engine/guard.h"
#include "engine/rng.h"
#include "weights/state_dict.h"
#include "weights/weight_spec.h"

namespace npcore {
namespace {

struct CoreState final : RunState {
  std::vector<std::unique_ptr<RunState>> blocks;
  std::vector<Workspace> parts;  // batch split: one workspace of the per-image plan per thread
  Workspace rest;                // batch split: the workspace of the plan of the last images
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

// Throws ResourceError if a plan's buffers (`workspace` bytes of scratch and `output` bytes) pass `cap`.
void check_memory_cap(const std::string& type, const Shape& in, size_t workspace, size_t output, size_t cap) {
  if (cap == 0 || workspace + output <= cap) return;
  throw ResourceError(type + ": input " + in.str() + " needs " + std::to_string(workspace + output) +
                      " bytes (workspace " + std::to_string(workspace) + " + output " + std::to_string(output) +
                      "), more than the memory cap of " + std::to_string(cap) + " bytes (max_memory)");
}

// Plan::slot_ values besides buffer numbers.
constexpr int kInOutput = -1, kOutputScratch = -2;

// Where each block's output lives between blocks (Plan::slot_). Blocks in the stack write their channels
// of the output. Every other block's output (its value) takes a buffer from its block until its last
// reader has run (a block never writes a buffer it reads, so two values share a buffer only if their
// spans [writer, last reader] are disjoint). A value of the output's shape whose last reader runs before
// the first stack block may live in the output tensor itself, which nothing else uses by then. Values are
// placed from the last block to the first, into the output when they can, else into the first buffer free
// over their span (a new one if none is): a chain of blocks alternates between the output and one buffer.
struct BufferLayout {
  std::vector<int> slot;       // per block: kInOutput, kOutputScratch or a buffer
  std::vector<size_t> offset;  // per buffer: floats from the first
  size_t floats = 0;           // all buffers, each rounded up to whole cache lines
};

BufferLayout layout_buffers(const std::vector<Shape>& outs, const std::vector<std::vector<size_t>>& sources,
                            const std::vector<bool>& in_stack, const Shape& out_shape) {
  using Span = std::pair<size_t, size_t>;
  const size_t nb = outs.size();
  std::vector<size_t> last(nb);
  for (size_t b = 0; b < nb; ++b) last[b] = b;
  for (size_t b = 0; b < nb; ++b)
    for (size_t k : sources[b]) last[k] = std::max(last[k], b);
  size_t first_stack = nb;
  for (size_t b = nb; b-- > 0;)
    if (in_stack[b]) first_stack = b;
  const auto free_over = [](const std::vector<Span>& used, Span s) {
    for (const Span& u : used)
      if (u.first <= s.second && s.first <= u.second) return false;
    return true;
  };
  BufferLayout L;
  L.slot.assign(nb, kInOutput);
  std::vector<Span> in_out;
  std::vector<std::vector<Span>> used;
  std::vector<size_t> size;
  for (size_t b = nb; b-- > 0;) {
    if (in_stack[b]) continue;
    const Span span{b, last[b]};
    if (last[b] < first_stack && outs[b] == out_shape && free_over(in_out, span)) {
      L.slot[b] = kOutputScratch;
      in_out.push_back(span);
      continue;
    }
    size_t k = 0;
    while (k < used.size() && !free_over(used[k], span)) ++k;
    if (k == used.size()) {
      used.emplace_back();
      size.push_back(0);
    }
    used[k].push_back(span);
    size[k] = std::max(size[k], size_t(outs[b].numel()));
    L.slot[b] = int(k);
  }
  for (size_t s : size) {
    L.offset.push_back(L.floats);
    L.floats += round_floats(s);
  }
  return L;
}

// Whether two tensors of the same batch size share memory: each is a run of equally spaced images (batch
// views), so both runs are walked once in address order.
bool overlap(const Tensor& a, const Tensor& b) {
  const int64_t n = a.shape()[0];
  if (n != b.shape()[0] || a.numel() == 0 || b.numel() == 0) return false;
  const auto span = [](const Tensor& t, int64_t i) {
    const uintptr_t s = reinterpret_cast<uintptr_t>(t.data()) + uintptr_t(i * t.batch_stride()) * sizeof(float);
    return std::pair<uintptr_t, uintptr_t>{s, s + uintptr_t(t.image_size()) * sizeof(float)};
  };
  for (int64_t i = 0, j = 0; i < n && j < n;) {
    const auto x = span(a, i), y = span(b, j);
    if (x.second <= y.first) {
      ++i;
    } else if (y.second <= x.first) {
      ++j;
    } else {
      return true;
    }
  }
  return false;
}

}  // namespace

// ---- Core -------------------------------------------------------------------------------------------

std::vector<std::vector<size_t>> Core::block_sources() const {
  // Block 0 reads the core's input; block b > 0 the previous block's output or, with skip > 1, the
  // channel concatenation of the last min(skip, b) blocks' outputs, oldest first.
  std::vector<std::vector<size_t>> src(blocks_.size());
  for (size_t b = 1; b < blocks_.size(); ++b) {
    const size_t m = skip_ > 1 ? std::min<size_t>(size_t(skip_), b) : 1;
    for (size_t k = b - m; k < b; ++k) src[b].push_back(k);
  }
  return src;
}

Shape Core::output_shape(const Shape& in) const {
  if (in.rank() != 4) throw ShapeError(std::string(type()) + ": input must be NCHW (rank 4), got " + in.str());
  if (in[0] <= 0 || in[2] <= 0 || in[3] <= 0)
    throw ShapeError(std::string(type()) + ": input " + in.str() + ": batch, height and width must be positive");
  if (in[1] != input_channels_)
    throw ShapeError(std::string(type()) + ": input " + in.str() + " has " + std::to_string(in[1]) +
                     " channels, the core takes " + std::to_string(input_channels_));
  const auto src = block_sources();
  std::vector<Shape> outs;
  for (size_t b = 0; b < blocks_.size(); ++b) {
    Shape bin = in;
    if (b > 0) {
      std::vector<Shape> parts;
      for (size_t k : src[b]) parts.push_back(outs[k]);
      bin = concat_shape(parts, blocks_[b]->label() + " (skip input)");
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
  guard_call(std::string(type()) + ": load", [&] {
    weight_spec().check(sd, type());
    // Value checks (a negative variance, a Hermite basis that disagrees) happen inside the layers' load,
    // after earlier blocks took their new weights: a load that fails leaves the core unusable until a load
    // or init succeeds, rather than running a mix of two state_dicts. Existing plans are unaffected (they
    // own copies of their weights).
    prepared_ = false;
    failed_load_ = sd.source();
    for (const auto& b : blocks_) b->load(sd);
    after_load(sd);
    failed_load_.clear();
  });
}

void Core::init(uint64_t seed) {
  guard_call(std::string(type()) + ": init", [&] {
    Rng rng(seed);
    for (const auto& b : blocks_) b->init(rng);
    failed_load_.clear();
    prepared_ = false;
  });
}

StateDict Core::state_dict() const {
  StateDict sd(std::string(type()) + " parameters");
  for (const auto& b : blocks_) b->save(sd);
  return sd;
}

void Core::prepare(const EngineOptions& opt) {
  guard_call(std::string(type()) + ": prepare", [&] {
    if (!failed_load_.empty())
      throw WeightError(std::string(type()) + ": loading " + failed_load_ +
                        " failed part-way; load a state_dict (or init) successfully before prepare()");
    opt_ = opt;
    for (const auto& b : blocks_) prepare_layer(*b, opt);
    prepared_ = true;
  });
}

std::unique_ptr<Plan> Core::plan(const Shape& in) const {
  try {
    return plan_unchecked(in);
  } catch (const ShapeError& e) {
    // Shape::numel's overflow check (a block's tensor of more than 2^62 elements) knows no core: name it.
    const std::string msg = e.what();
    if (msg.rfind(type(), 0) == 0) throw;
    throw ShapeError(std::string(type()) + ": input " + in.str() + ": " + msg);
  }
}

std::unique_ptr<Plan> Core::plan_unchecked(const Shape& in, int threads) const {
  return guard_call(std::string(type()) + ": plan " + in.str(), [&] {
    if (!prepared_) throw UsageError(std::string(type()) + ": plan() before prepare()");
    auto p = std::unique_ptr<Plan>(new Plan());
    p->type_ = type();
    p->in_ = in;
    p->out_ = output_shape(in);  // validates the whole wiring first, with messages naming blocks
    p->threads_ = threads > 0 ? threads : opt_.threads;
    p->onednn_ = opt_.backend == Backend::OneDnn;
    // Kernels and ops size their thread teams and per-thread scratch when made: make them under the plan's
    // count (passed explicitly; OpenMP's settings stay the program's).
    PlanThreads scope(p->threads_);
    const int team = planned_threads();
    p->sources_ = block_sources();
    const size_t nb = blocks_.size();
    std::vector<bool> in_stack(nb);
    for (int64_t i : stack_) in_stack[size_t(i)] = true;
    // Block output shapes and where they live, from the shapes alone (before any kernel is made, so that
    // the memory cap is checked before packing).
    std::vector<Shape> outs;
    for (size_t b = 0; b < nb; ++b) {
      Shape bin = in;
      if (b > 0) {
        bin = outs[p->sources_[b][0]];
        bin[1] = 0;
        for (size_t k : p->sources_[b]) bin[1] += outs[k][1];
        if (p->sources_[b].size() > 1) p->concat_floats_ = std::max(p->concat_floats_, size_t(bin.numel()));
      }
      p->block_in_.push_back(bin);
      outs.push_back(blocks_[b]->output_shape(bin));
    }
    p->out_offsets_.assign(nb, {});
    int64_t off = 0;
    for (int64_t i : stack_) {
      p->out_offsets_[size_t(i)].push_back(off);
      off += outs[size_t(i)][1];
    }
    BufferLayout layout = layout_buffers(outs, p->sources_, in_stack, p->out_);
    p->slot_ = std::move(layout.slot);
    p->buffer_offset_ = std::move(layout.offset);
    p->buffers_floats_ = layout.floats;
    check_memory_cap(type(), in, p->activation_floats() * sizeof(float), size_t(p->out_.numel()) * sizeof(float),
                     opt_.max_memory);
    for (size_t b = 0; b < nb; ++b) {
      auto op = blocks_[b]->plan(p->block_in_[b], opt_);
      op->name = blocks_[b]->label();
      if (op->out_shape != outs[b])
        throw ShapeError(blocks_[b]->label() + ": planned output " + op->out_shape.str() +
                         " differs from its output_shape " + outs[b].str());
      p->block_scratch_ = std::max(p->block_scratch_, op->scratch_floats());
      p->names_.push_back(blocks_[b]->name());
      p->block_out_.push_back(op->out_shape);
      p->blocks_.push_back(std::move(op));
    }
    // The batch split (core.h): at least one image per thread. The block-by-block ops above stay for runs
    // with a tap (per-block outputs of the whole batch).
    if (!p->onednn_ && team > 1 && in[0] >= team) {
      Shape one = in;
      one[0] = 1;
      p->part_ = plan_unchecked(one, 1);
      p->team_ = team;
      const int64_t left = in[0] % team;
      p->split_images_ = left > 0 && in[0] < 4 * int64_t(team) ? in[0] - left : in[0];
      if (p->split_images_ < in[0]) {
        Shape rest = in;
        rest[0] = in[0] - p->split_images_;
        p->rest_ = plan_unchecked(rest, team);
      }
      // Under a memory cap, a tapped run (which adds the block-by-block scratch to the split's) must fit
      // it too; else the plan does not split.
      if (opt_.max_memory &&
          (p->workspace_floats() + p->full_floats()) * sizeof(float) + size_t(p->out_.numel()) * sizeof(float) >
              opt_.max_memory) {
        p->part_.reset();
        p->rest_.reset();
        p->split_images_ = 0;
      }
    } else if (!p->onednn_ && team > 1) {
      // One team for the whole forward (core.h): the run's only serial writes are the concatenations and
      // the copies of blocks stacked twice.
      bool ok = true;
      for (size_t b = 0; b < nb; ++b)
        ok = ok && p->blocks_[b]->team_safe() && p->sources_[b].size() <= 1 && p->out_offsets_[b].size() <= 1;
      p->team_run_ = ok;
      p->team_ = team;
    }
    check_memory_cap(type(), in, p->workspace_floats() * sizeof(float), size_t(p->out_.numel()) * sizeof(float),
                     opt_.max_memory);
    return p;
  });
}

Tensor Core::forward(const Tensor& in, const TapFn* tap) const {
  auto p = plan(in.shape());
  return p->run(in, tap);
}

// ---- Plan -------------------------------------------------------------------------------------------

Workspace Plan::make_workspace() const {
  return guard_call(type_ + ": make_workspace", [&] {
    Workspace ws;
    auto st = std::make_unique<CoreState>();
    for (const auto& b : blocks_) st->blocks.push_back(b->make_state());
    if (part_) {
      for (int t = 0; t < team_; ++t) st->parts.push_back(part_->make_workspace());
      if (rest_) st->rest = rest_->make_workspace();
    } else {
      ws.scratch_floats = full_floats();
      ws.scratch = aligned_floats(ws.scratch_floats);
    }
    ws.state = std::move(st);
    ws.owner = this;
    return ws;
  });
}

size_t Plan::workspace_floats() const {
  if (part_) return size_t(team_) * part_->workspace_floats() + (rest_ ? rest_->workspace_floats() : 0);
  return full_floats();
}

size_t Plan::full_floats() const { return activation_floats() + block_scratch_; }

size_t Plan::activation_floats() const { return buffers_floats_ + round_floats(concat_floats_); }

double Plan::conv_flops() const {
  double f = 0;
  for (const auto& b : blocks_) f += b->conv_flops();
  return f;
}

double Plan::block_conv_flops(size_t i) const { return blocks_.at(i)->conv_flops(); }

std::vector<ConvRun> Plan::block_convs(size_t i) const {
  std::vector<ConvRun> out;
  blocks_.at(i)->list_convs(out);
  return out;
}

std::vector<ConvRun> Plan::convs() const {
  std::vector<ConvRun> out;
  for (const auto& b : blocks_) b->list_convs(out);
  return out;
}

void Plan::run(const Tensor& in, Tensor& out, Workspace& ws, const TapFn* tap) const {
  guard_call([this] { return type_ + ": run"; }, [&] {
    if (in.shape() != in_)
      throw ShapeError(type_ + ": core input " + in.shape().str() + " does not match the planned shape " + in_.str());
    if (out.shape() != out_)
      throw ShapeError(type_ + ": core output " + out.shape().str() + " does not match the planned shape " + out_.str());
    if (ws.owner != this || !ws.state)
      throw UsageError(type_ + ": the workspace was not made by this plan (use its make_workspace())");
    if (overlap(in, out))
      throw UsageError(type_ + ": the output overlaps the input (the output serves as scratch during the run)");
    if (part_ && !tap) return run_split(in, out, ws);
    if (ws.scratch_floats < full_floats()) {  // a batch-split plan's first run with a tap
      ws.scratch = aligned_floats(full_floats());
      ws.scratch_floats = full_floats();
    }
    // Kernels were made for the plan's thread count and pass it to OpenMP themselves; only oneDNN reads this
    // thread's OpenMP setting at execute time.
    OneDnnThreads scope(onednn_ ? threads_ : 0);
    if (team_run_ && !tap && runs_parallel(2, team_)) {
      std::exception_ptr err;
#pragma omp parallel num_threads(team_)
      {
        TeamScope team;
        try {
          run_blocks(in, out, ws, nullptr);
        } catch (...) {  // shape errors: every member throws at the same point, none waits at a barrier
#pragma omp critical(npcore_forward_team)
          if (!err) err = std::current_exception();
        }
      }
      if (err) std::rethrow_exception(err);
    } else {
      run_blocks(in, out, ws, tap);
    }
  });
}

// Every block in order, on the calling thread (or, inside a forward's team, on each member).
void Plan::run_blocks(const Tensor& in, Tensor& out, Workspace& ws, const TapFn* tap) const {
  auto* st = static_cast<CoreState*>(ws.state.get());
  {
    float* buffers = ws.scratch.get();
    float* concat = buffers + buffers_floats_;
    float* scratch = concat + round_floats(concat_floats_);
    // Where block b's output lives (no allocation: views only).
    auto output_of = [&](size_t b) -> Tensor {
      if (slot_[b] >= 0) return Tensor::wrap(buffers + buffer_offset_[size_t(slot_[b])], block_out_[b]);
      if (slot_[b] == kOutputScratch) return out;
      return out.channels(out_offsets_[b][0], block_out_[b][1]);
    };
    for (size_t b = 0; b < blocks_.size(); ++b) {
      Tensor bin;
      if (b == 0) {
        bin = in;
      } else if (sources_[b].size() == 1) {
        bin = output_of(sources_[b][0]);
      } else {  // skip > 1: concatenate the sources' outputs
        bin = Tensor::wrap(concat, block_in_[b]);
        int64_t c = 0;
        for (size_t k : sources_[b]) {
          Tensor part = bin.channels(c, block_out_[k][1]);
          part.copy_from(output_of(k));
          c += block_out_[k][1];
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
}

// The batch split: images [0, split_images_) one by one through part_, each thread with its own workspace
// and taking the next image when done (a descheduled thread delays one image, not every layer); then the
// rest through rest_ with every thread.
void Plan::run_split(const Tensor& in, Tensor& out, Workspace& ws) const {
  auto* st = static_cast<CoreState*>(ws.state.get());
  const int64_t n = split_images_;
  if (runs_parallel(n, team_)) {
    std::exception_ptr err;
#pragma omp parallel num_threads(team_)
    {
      Workspace& w = st->parts[size_t(omp_get_thread_num())];
#pragma omp for schedule(dynamic, 1)
      for (int64_t i = 0; i < n; ++i) {
        try {
          Tensor x = in.batch(i, 1), y = out.batch(i, 1);
          part_->run(x, y, w);
        } catch (...) {
#pragma omp critical(npcore_batch_split)
          if (!err) err = std::current_exception();
        }
      }
    }
    if (err) std::rethrow_exception(err);
  } else {
    for (int64_t i = 0; i < n; ++i) {
      Tensor x = in.batch(i, 1), y = out.batch(i, 1);
      part_->run(x, y, st->parts[0]);
    }
  }
  if (rest_) {
    Tensor x = in.batch(n, in_[0] - n), y = out.batch(n, in_[0] - n);
    rest_->run(x, y, st->rest);
  }
}

Tensor Plan::run(const Tensor& in, const TapFn* tap) const {
  return guard_call(type_ + ": run", [&] {
    Tensor out(out_);
    Workspace ws = make_workspace();
    run(in, out, ws, tap);
    return out;
  });
}

}  // namespace npcore
