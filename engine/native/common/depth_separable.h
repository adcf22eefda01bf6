// The depth-separable block fused (neuralpredictors' DepthSeparableConv2d with its norm and activation
// folded into the last conv): 1x1 (pw1) -> depthwise (dw) -> 1x1 (pw2) + epilogue, over vector traits V,
// without writing the two intermediate maps at full size. A job is a range of output rows of one image
// (the whole image when the batch covers the threads, else ceil(threads / N) ranges); it walks its rows in
// steps of S output rows sized so that a step's data stays in L2 where it can (at 144x256 the ring of 2
// steps is ~0.6 MB; strips of columns that fit were tried and measured no faster):
//   1. pw1 on the image rows the step's depthwise taps read (the halo) that are not yet computed, into T1
//      (no recomputation inside a job); the input pixels go through an L1 panel as in PointwiseConv.
//      With stride 1 along the width (job_ring) T1 is a ring of padded rows per channel, laid out as the
//      depthwise conv's zero-bordered plane, which pw1 writes in place; else (job) T1 is [C][rows][W],
//      the rows kept from the previous step moved to its front;
//   2. per channel, the step's output rows of the depthwise conv into T2 [C][S OW]: read from the ring in
//      place, or after copying the channel's T1 rows into the zero-bordered plane P (depthwise_pad);
//   3. pw2 from T2 straight into the output rows, with the final epilogue (folded norm, activation).
// Each stage uses the stand-alone kernels' micro-kernels (pointwise_conv.h, depthwise_conv.h), so the
// results equal the unfused path's up to the order of nothing: the same sums in the same order.
#pragma once
#include <cstring>

#include "engine/native/common/depthwise_conv.h"
#include "engine/native/common/pointwise_conv.h"

namespace npcore::native::NPCORE_ISA_NS {

template <class V, int OCB, int PV>
class DepthSeparableConv final : public ConvKernel {
 public:
  static constexpr int64_t kTile = int64_t(PV) * V::W;

  DepthSeparableConv(const ConvSpec& s1, const ConvSpec& sd, const ConvSpec& s2, const Shape& in)
      : p1_(s1.params), pd_(sd.params), p2_(s2.params), in_(in) {
    const Shape mid = p1_.output_shape(in, "native depth-separable block");
    const Shape dws = pd_.output_shape(mid, "native depth-separable block");
    out_ = p2_.output_shape(dws, "native depth-separable block");
    // Each spec carries its own layer's packs, so the fused block shares the stand-alone kernels' forms.
    w1_ = shared_pack(s1, PackKey{"pointwise", resolve_isa(s1.isa), {OCB, 0, 0, 0}}, &pack_pointwise_weights);
    w2_ = shared_pack(s2, PackKey{"pointwise", resolve_isa(s2.isa), {OCB, 0, 0, 0}}, &pack_pointwise_weights);
    wd_ = shared_pack(sd, PackKey{"depthwise", resolve_isa(sd.isa), {}}, &pack_depthwise_weights);
    blocks1_ = w1_->blocks;
    blocks2_ = w2_->blocks;
    e1_ = Epilogue<V>(s1.act, s1.bias, p1_.out_channels, blocks1_ * OCB);
    ed_ = Epilogue<V>(sd.act, sd.bias, pd_.out_channels, pd_.out_channels);
    e2_ = Epilogue<V>(s2.act, s2.bias, p2_.out_channels, blocks2_ * OCB);
    L_ = DepthwiseLayout(pd_, in[3], out_[3], V::W);
    threads_ = planned_threads();
    const int64_t N = in[0], OH = out_[2];
    ranges_ = N >= threads_ ? 1 : (threads_ + N - 1) / N;
    if (ranges_ > OH) ranges_ = OH;
    // pw1's input panel: L1-sized, as PointwiseConv's.
    panel_tiles_ = 6144 / (p1_.in_channels * kTile);
    if (panel_tiles_ < 1) panel_tiles_ = 1;
    // Stride 1 along the width: pw1 writes T1 as the depthwise conv's zero-bordered rows, in a ring (no
    // copies); else T1 is moved and copied into P (see job).
    ring_ = pd_.stride_w == 1;
    // Step: the most output rows whose T1 + T2 (+ P) fit in 384 KB, at most a range; at least the
    // depthwise halo when T1's kept rows are moved (so that moving costs at most as much as computing the
    // new ones), at least kDepthwiseGroup rows with the ring, and a multiple of it when the depthwise
    // conv takes its rows in groups (depthwise_rows: a row left over runs alone, at about half the speed).
    const int64_t halo = (pd_.kernel_h - 1) * pd_.dilation_h, per_range = (OH + ranges_ - 1) / ranges_;
    int64_t S = 1;
    while (S < per_range && step_floats(S + 1) * 4 <= 384 * 1024) ++S;
    const int64_t least = ring_ ? kDepthwiseGroup : halo;
    if (S < least) S = least < per_range ? least : per_range;
    step_ = whole_groups(S, per_range);
    // Fewer images than threads on a small image (ds_shared_pw1, engine/conv.h): pw1 of each image once,
    // into a full padded plane per channel shared by the image's ranges (the team splits its rows, then a
    // barrier), so that no range recomputes the depthwise halo; a range's steps then hold T2 and the panel.
    shared_ = ring_ && ranges_ > 1 && ds_shared_pw1(pd_, mid, threads_);
    if (shared_) {
      shared_ld_ = in_rows(OH) * L_.row;
      if ((shared_ld_ / 16) % 2 == 0) shared_ld_ += 16;
      S = 1;
      while (S < per_range && (C2(S + 1) + panel_floats()) * 4 <= 384 * 1024) ++S;
      step_ = whole_groups(S, per_range);
    }
  }

  Backend backend() const override { return Backend::Native; }
  bool team_safe() const override { return true; }
  std::unique_ptr<RunState> make_state() const override { return nullptr; }
  size_t scratch_floats() const override { return shared_floats() + size_t(threads_) * thread_floats(); }

  void run(const Tensor& in, Tensor& out, float* scratch, RunState*) const override {
    check_run_shapes(Backend::Native, pd_, in_, out_, in, out);
    const int64_t jobs = in_[0] * ranges_, OH = out_[2];
    if (shared_) {
      // pw1 of every padded row of every image into the shared planes (the loop's barrier ends it), then
      // each range's depthwise + pw2 from them.
      const int64_t C = pd_.out_channels, R = in_rows(OH);
      float* panels = scratch + shared_floats();
      parallel_for(in_[0] * R, threads_, [&](int64_t j) {
        const int64_t n = j / R;
        float* panel = panels + size_t(thread_slot()) * thread_floats() + C2(step_);
        pw1_row(in.image(n), scratch + size_t(n * C * shared_ld_), shared_ld_, R, j % R, panel, true);
      });
      parallel_for(jobs, threads_, [&](int64_t j) {
        const int64_t n = j / ranges_, k = j % ranges_;
        float* s = panels + size_t(thread_slot()) * thread_floats();
        job_ring(in.image(n), out.image(n), s, k * OH / ranges_, (k + 1) * OH / ranges_,
                 scratch + size_t(n * C * shared_ld_));
      });
      return;
    }
    parallel_for_dynamic(jobs, threads_, [&](int64_t j) {
      const int64_t n = j / ranges_, k = j % ranges_;
      float* s = scratch + size_t(thread_slot()) * thread_floats();
      job(in.image(n), out.image(n), s, k * OH / ranges_, (k + 1) * OH / ranges_);
    });
  }

 private:
  // S rounded down to a multiple of kDepthwiseGroup when the depthwise conv groups its rows and S is not
  // a whole range (a range's last step may be shorter).
  int64_t whole_groups(int64_t S, int64_t per_range) const {
    const bool grouped = pd_.stride_h == 1 && pd_.dilation_h == 1 && pd_.stride_w == 1;
    return grouped && S > kDepthwiseGroup && S < per_range ? S - S % kDepthwiseGroup : S;
  }
  // Padded input rows of the depthwise conv that S output rows read.
  int64_t in_rows(int64_t S) const { return (S - 1) * pd_.stride_h + (pd_.kernel_h - 1) * pd_.dilation_h + 1; }
  // T2's channel stride for S rows: whole tiles, not a multiple of 4 KB (L1 set aliasing across channels).
  int64_t t2_ld(int64_t S) const {
    // An odd number of 64-byte lines, so that a chunk's C rows spread over every L1 set.
    int64_t ld = (S * out_[3] + kTile - 1) / kTile * kTile;
    ld = (ld + 15) / 16 * 16;
    if ((ld / 16) % 2 == 0) ld += 16;
    return ld;
  }
  // T1's channel stride: S steps' image rows (moved), or a ring of in_rows(S) padded rows of L_.row floats
  // (an odd number of 64-byte lines, as T2).
  int64_t t1_ld(int64_t S) const {
    if (!ring_) return in_rows(S) * in_[3];
    int64_t ld = in_rows(S) * L_.row;
    if ((ld / 16) % 2 == 0) ld += 16;
    return ld;
  }
  int64_t panel_floats() const { return p1_.in_channels * panel_tiles_ * kTile; }
  int64_t step_floats(int64_t S) const {
    const int64_t C = pd_.out_channels;
    return C * t1_ld(S) + C * t2_ld(S) + (ring_ ? 0 : in_rows(S) * L_.row) + panel_floats();
  }
  int64_t C2(int64_t S) const { return pd_.out_channels * t2_ld(S); }
  size_t thread_floats() const {
    return size_t(((shared_ ? C2(step_) + panel_floats() : step_floats(step_)) + 15) / 16 * 16);
  }
  size_t shared_floats() const { return shared_ ? size_t(in_[0] * pd_.out_channels * shared_ld_) : 0; }

  // pw1 of padded row r into its slot r % R of T1 (ld1 floats per channel, L_.row per row, image column x at
  // x + pad_w); a row above or below the image is zeros. `borders`: also zero the row's columns outside
  // the image (else T1 was zeroed whole before).
  void pw1_row(const float* x, float* t1, int64_t ld1, int64_t R, int64_t r, float* panel, bool borders) const {
    const int64_t Cin = p1_.in_channels, C = pd_.out_channels, H = in_[2], Wd = in_[3], pw = pd_.pad_w;
    float* row = t1 + (r % R) * L_.row + pw;
    const int64_t h = r - pd_.pad_h;
    if (h < 0 || h >= H) {
      for (int64_t c = 0; c < C; ++c)
        std::memset(row - (borders ? pw : 0) + c * ld1, 0, sizeof(float) * size_t(borders ? L_.row : Wd));
      return;
    }
    if (borders) {
      for (int64_t c = 0; c < C; ++c) {
        std::memset(row - pw + c * ld1, 0, sizeof(float) * size_t(pw));
        std::memset(row + Wd + c * ld1, 0, sizeof(float) * size_t(L_.row - pw - Wd));
      }
    }
    // The row in chunks of the L1 panel's width. The copy also prefetches (to L2) the same pixels of the next
    // image row, which the next call copies: the input map is larger than the caches, its Cin channel rows
    // are Cin streams too many for the hardware prefetchers, and the copy otherwise waits for memory.
    const int64_t chunk = panel_tiles_ * kTile;
    const int64_t next = h + 1 < H ? Wd : 0;  // offset of the next row, or none
    for (int64_t px = 0; px < Wd; px += chunk) {
      const int64_t valid = Wd - px < chunk ? Wd - px : chunk, len = (valid + V::W - 1) / V::W * V::W;
      // Copied in vectors (a row of a chunk is a few hundred bytes: memcpy's size dispatch cost more than
      // the copy); the last vector masked, zeros up to len.
      const int64_t full = valid / V::W * V::W;
      const typename V::mask tail = V::mask_first(valid - full);
      for (int64_t ic = 0; ic < Cin; ++ic) {
        const float* src = x + (ic * H + h) * Wd + px;
        float* dst = panel + ic * len;
        if (next)
          for (int64_t o = 0; o < valid; o += 16) __builtin_prefetch(src + next + o, 0, 2);
        for (int64_t o = 0; o < full; o += V::W) V::store(dst + o, V::load(src + o));
        if (full < valid) V::store(dst + full, V::loadz(tail, src + full));
      }
      pointwise_panel<V, OCB, PV>(w1_->data(), blocks1_, Cin, C, panel, len, valid, row + px, ld1, e1_);
    }
  }

  // Output rows [oh_a, oh_b) of one image, stride 1 along the width. T1 is a ring of in_rows(step_) padded
  // rows per channel, laid out as depthwise_pad lays out a plane (L_.row floats, image column x at x + pad_w,
  // zeros around): pw1 writes each new image row into its slot (padded row r at r % ring) and the depthwise
  // conv reads the ring in place; rows above and below the image are zero rows.
  // `shared`: T1 is the image's whole padded plane, already computed (run), and scratch holds T2 and the
  // panel only.
  void job_ring(const float* x, float* y, float* scratch, int64_t oh_a, int64_t oh_b,
                const float* shared = nullptr) const {
    const int64_t C = pd_.out_channels;
    const int64_t OH = out_[2], OW = out_[3], KK = pd_.kernel_h * pd_.kernel_w;
    const int64_t R = shared ? in_rows(OH) : in_rows(step_), ld1 = shared ? shared_ld_ : t1_ld(step_);
    const int64_t ld2 = t2_ld(step_);
    float* t1 = shared ? nullptr : scratch;
    float* t2 = shared ? scratch : t1 + C * ld1;
    float* panel = t2 + C * ld2;
    if (!shared) std::memset(t1, 0, sizeof(float) * size_t(C * ld1));  // the borders stay zero
    const float* tr = shared ? shared : t1;
    const int64_t chunk = panel_tiles_ * kTile;
    int64_t next = oh_a * pd_.stride_h;  // the first padded row not yet in the ring
    for (int64_t s0 = oh_a; s0 < oh_b; s0 += step_) {
      const int64_t s1 = s0 + step_ < oh_b ? s0 + step_ : oh_b;
      const int64_t pr0 = s0 * pd_.stride_h, pr1 = (s1 - 1) * pd_.stride_h + (pd_.kernel_h - 1) * pd_.dilation_h + 1;
      // 1. pw1 of the padded rows [max(next, pr0), pr1) into their slots (they replace rows before pr0).
      if (!shared)
        for (int64_t r = next > pr0 ? next : pr0; r < pr1; ++r) pw1_row(x, t1, ld1, R, r, panel, false);
      if (pr1 > next) next = pr1;
      // 2. T2 = the depthwise conv's output rows [s0, s1), channel by channel, from the ring.
      const int64_t valid2 = (s1 - s0) * OW, len2 = (valid2 + kTile - 1) / kTile * kTile;
      for (int64_t c = 0; c < C; ++c) {
        // The ring is larger than L2 at 144x256: the next channel's rows are prefetched meanwhile.
        depthwise_rows<V>(pd_, L_, wd_->data() + c * KK, tr + c * ld1, 0, s0, s1, OW, t2 + c * ld2, c, ed_, R,
                          c + 1 < C ? tr + (c + 1) * ld1 : nullptr, R * L_.row);
        if (len2 > valid2) std::memset(t2 + c * ld2 + valid2, 0, sizeof(float) * size_t(len2 - valid2));
      }
      // 3. pw2 from T2 into the output rows, in chunks of the L1 panel's width. Meanwhile the next step's
      // first input row is prefetched (to L2), spread over the chunks: pw1_row prefetches each row it
      // copies but the first of a step, whose prefetch the depthwise conv's pass over the ring evicts.
      const int64_t h = next - pd_.pad_h, nchunks = (valid2 + chunk - 1) / chunk;
      const bool ahead = !shared && s1 < oh_b && h >= 0 && h < in_[2];
      const int64_t lines = (in_[3] + 15) / 16, per_chunk = (p1_.in_channels * lines + nchunks - 1) / nchunks;
      int64_t line = 0;
      for (int64_t px = 0; px < valid2; px += chunk) {
        for (int64_t e = line + per_chunk; ahead && line < e && line < p1_.in_channels * lines; ++line)
          __builtin_prefetch(x + ((line / lines) * in_[2] + h) * in_[3] + (line % lines) * 16, 0, 2);
        const int64_t v = valid2 - px < chunk ? valid2 - px : chunk;
        pointwise_panel<V, OCB, PV>(w2_->data(), blocks2_, C, p2_.out_channels, t2 + px, ld2, v, y + s0 * OW + px,
                                    OH * OW, e2_);
      }
    }
  }

  // Output rows [oh_a, oh_b) of one image.
  void job(const float* x, float* y, float* scratch, int64_t oh_a, int64_t oh_b) const {
    if (ring_) {
      job_ring(x, y, scratch, oh_a, oh_b);
      return;
    }
    const int64_t Cin = p1_.in_channels, C = pd_.out_channels, H = in_[2], Wd = in_[3];
    const int64_t OH = out_[2], OW = out_[3], KK = pd_.kernel_h * pd_.kernel_w;
    const int64_t ld1 = t1_ld(step_), ld2 = t2_ld(step_);
    float* t1 = scratch;
    float* t2 = t1 + C * ld1;
    float* plane = t2 + C * ld2;
    float* panel = plane + in_rows(step_) * L_.row;
    int64_t have0 = 0, have1 = 0;  // image rows held in T1 (from its front)
    for (int64_t s0 = oh_a; s0 < oh_b; s0 += step_) {
      const int64_t s1 = s0 + step_ < oh_b ? s0 + step_ : oh_b;
      const int64_t pr0 = s0 * pd_.stride_h, pr1 = (s1 - 1) * pd_.stride_h + (pd_.kernel_h - 1) * pd_.dilation_h + 1;
      const int64_t h0 = clamp(pr0 - pd_.pad_h, 0, H), h1 = clamp(pr1 - pd_.pad_h, 0, H);
      // 1. T1 = pw1 of image rows [h0, h1): keep what the last step computed, compute the rest.
      if (have1 > h0 && h0 > have0) {
        for (int64_t c = 0; c < C; ++c)
          std::memmove(t1 + c * ld1, t1 + c * ld1 + (h0 - have0) * Wd, sizeof(float) * size_t((have1 - h0) * Wd));
      }
      if (have1 <= h0 || have0 > h0) have1 = h0;  // nothing usable kept
      have0 = h0;
      const int64_t chunk = panel_tiles_ * kTile;
      for (int64_t px = have1 * Wd; px < h1 * Wd; px += chunk) {
        const int64_t valid = h1 * Wd - px < chunk ? h1 * Wd - px : chunk, len = (valid + kTile - 1) / kTile * kTile;
        for (int64_t ic = 0; ic < Cin; ++ic) {
          std::memcpy(panel + ic * len, x + ic * H * Wd + px, sizeof(float) * size_t(valid));
          if (valid < len) std::memset(panel + ic * len + valid, 0, sizeof(float) * size_t(len - valid));
        }
        pointwise_panel<V, OCB, PV>(w1_->data(), blocks1_, Cin, C, panel, len, valid, t1 + (px - h0 * Wd), ld1, e1_);
      }
      if (h1 > have1) have1 = h1;
      // 2. T2 = the depthwise conv's output rows [s0, s1), channel by channel.
      const int64_t valid2 = (s1 - s0) * OW, len2 = (valid2 + kTile - 1) / kTile * kTile;
      for (int64_t c = 0; c < C; ++c) {
        depthwise_pad(pd_, L_, t1 + c * ld1, h0, h1, Wd, pr0, pr1, plane);
        depthwise_rows<V>(pd_, L_, wd_->data() + c * KK, plane, pr0, s0, s1, OW, t2 + c * ld2, c, ed_);
        if (len2 > valid2) std::memset(t2 + c * ld2 + valid2, 0, sizeof(float) * size_t(len2 - valid2));
      }
      // 3. pw2 from T2 into the output rows.
      // In chunks of the L1 panel's width, so that a chunk's C rows stay in L1 across the channel blocks.
      for (int64_t px = 0; px < valid2; px += chunk) {
        const int64_t v = valid2 - px < chunk ? valid2 - px : chunk;
        pointwise_panel<V, OCB, PV>(w2_->data(), blocks2_, C, p2_.out_channels, t2 + px, ld2, v, y + s0 * OW + px,
                                    OH * OW, e2_);
      }
    }
  }

  Conv2dParams p1_, pd_, p2_;
  Shape in_, out_;
  DepthwiseLayout L_;
  int64_t blocks1_ = 0, blocks2_ = 0, ranges_ = 1, panel_tiles_ = 1, step_ = 1;
  PackedRef w1_, wd_, w2_;  // each shared with its layer's other kernels (engine/packed_weights.h)
  Epilogue<V> e1_, ed_, e2_;
  int64_t shared_ld_ = 0;  // the shared plane's channel stride
  int threads_ = 1;
  bool ring_ = false;
  bool shared_ = false;  // pw1 once per image into a shared padded plane (run)  // T1 as the depthwise conv's padded rows in a ring (stride_w 1)
};

}  // namespace npcore::native::NPCORE_ISA_NS
