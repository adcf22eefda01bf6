// The register-blocked direct convolution (stride 1, groups 1, any kernel size, padding and dilation) on
// plain NCHW in and out, over vector traits V (see simd_math.h). Vectorised along the output row: one
// micro-tile holds OCB output channels x (PW x W) output pixels of one row in PW*OCB accumulators; for
// every (input channel, kh, kw) it loads PW input vectors (the row shifted by kw), broadcasts OCB weights
// and issues OCB*PW FMAs. The input is first copied into a zero-bordered buffer (so the inner loop has no
// edge cases), the epilogue adds the bias and applies the activation in registers, and nothing is
// allocated per run.
#pragma once
#include <cstring>

#include "engine/native/common/simd_math.h"
#include "engine/parallel.h"

namespace npcore::native::NPCORE_ISA_NS {

template <class V, int OCB>
class DirectConv final : public ConvKernel {
 public:
  static constexpr int W = V::W;

  DirectConv(const ConvSpec& spec, const Shape& in) : p_(spec.params), in_(in) {
    out_ = p_.output_shape(in, "native conv");
    const int64_t KH = p_.kernel_h, KW = p_.kernel_w;
    wpack_ = shared_pack(spec, PackKey{"direct", resolve_isa(spec.isa), {OCB, 0, 0, 0}}, &pack_direct_weights);
    blocks_ = wpack_->blocks;
    epilogue_ = Epilogue<V>(spec.act, spec.bias, p_.out_channels, blocks_ * OCB);
    // Padded input plane: rows cover every row a kernel tap reads; a row is wide enough for the last
    // vector load of the last tile plus the kernel's reach, rounded to 16 floats.
    const int64_t OW = out_[3];
    rows_ = in[2] + 2 * p_.pad_h;
    if ((out_[2] - 1) + (KH - 1) * p_.dilation_h + 1 > rows_) rows_ = (out_[2] - 1) + (KH - 1) * p_.dilation_h + 1;
    int64_t row = (OW + W - 1) / W * W + (KW - 1) * p_.dilation_w;
    if (in[3] + 2 * p_.pad_w > row) row = in[3] + 2 * p_.pad_w;
    row_ = (row + 15) / 16 * 16;
    threads_ = planned_threads();
  }

  Backend backend() const override { return Backend::Native; }
  bool team_safe() const override { return true; }
  // Overridden here so that no function of npcore's own namespace is compiled for this ISA.
  std::unique_ptr<RunState> make_state() const override { return nullptr; }
  // One padded image, or one per thread when the batch is split by images.
  size_t scratch_floats() const override { return size_t(by_image() ? threads_ : 1) * image_floats(); }
  const float* packed_weights() const override { return wpack_->data(); }

  void run(const Tensor& in, Tensor& out, float* scratch, RunState*) const override {
    check_run_shapes(Backend::Native, p_, in_, out_, in, out);
    if (by_image()) {
      // A batch of at least as many images as threads: one parallel region, a thread pads and convolves
      // whole images in its own buffer (each region costs a fork and a join, which on a busy machine
      // wait for a descheduled thread).
      parallel_for_dynamic(in_[0], threads_, [&](int64_t n) {
        float* buf = scratch + size_t(thread_slot()) * image_floats();
        const float* x = in.image(n);
        float* y = out.image(n);
        for (int64_t r = 0; r < rows_; ++r) pad_row(x, buf, r);
        for (int64_t j = 0; j < row_units() * blocks_; ++j) row_job(buf, y, j / blocks_, j % blocks_);
      });
      return;
    }
    for (int64_t n = 0; n < in_[0]; ++n) {
      pad_image(in.image(n), scratch);
      const int64_t jobs = row_units() * blocks_;
      float* y = out.image(n);
      // Rows outermost: a thread's jobs cover whole rows, so its input rows stay in its cache.
      parallel_for(jobs, threads_, [&](int64_t j) { row_job(scratch, y, j / blocks_, j % blocks_); });
    }
  }

 private:
  // x [IC, H, W] -> buf [rows_, IC, row_]: padded rows, and within a row all input channels one after
  // another, so that a tile's loop over (kh, ic, kw) walks memory forwards. Zeros around the image.
  void pad_image(const float* x, float* buf) const {
    parallel_for(rows_, threads_, [&](int64_t r) { pad_row(x, buf, r); });
  }

  void pad_row(const float* x, float* buf, int64_t r) const {
    const int64_t IC = p_.in_channels, H = in_[2], Wd = in_[3];
    float* b = buf + r * IC * row_;
    const int64_t h = r - p_.pad_h;
    if (h < 0 || h >= H) {
      std::memset(b, 0, sizeof(float) * size_t(IC * row_));
      return;
    }
    for (int64_t c = 0; c < IC; ++c) {
      float* d = b + c * row_;
      std::memset(d, 0, sizeof(float) * size_t(p_.pad_w));
      std::memcpy(d + p_.pad_w, x + (c * H + h) * Wd, sizeof(float) * size_t(Wd));
      std::memset(d + p_.pad_w + Wd, 0, sizeof(float) * size_t(row_ - p_.pad_w - Wd));
    }
  }

  size_t image_floats() const { return size_t(p_.in_channels * rows_ * row_); }
  // Split the batch by images (else each image's rows between the threads).
  bool by_image() const { return threads_ > 1 && in_[0] >= threads_; }

  // Vectors per output row.
  int64_t row_vecs() const { return (out_[3] + W - 1) / W; }
  // One-chain rows of an odd vector count run in pairs, so that the two rows' last vectors make one tile.
  bool pair_rows() const { return one_chain() && row_vecs() % 2 == 1; }
  // A job's output rows: one, or a pair (pair_rows()); the last unit of an odd row count has one row.
  int64_t row_units() const { return pair_rows() ? (out_[2] + 1) / 2 : out_[2]; }

  // Output row unit u (row_units()) of channels [OCB b, OCB b + OCB), in tiles of 3 vectors; a remainder
  // of one vector becomes two tiles of 2 (a 1-vector tile runs at a third of the FMA rate), the last tile
  // masked. A sum of one chain (one_chain()) runs in tiles of 2 vectors: with OCB channels x 3 vectors,
  // GCC hoists the OCB weight broadcasts of a tap ahead of its FMAs, runs out of the 16 AVX2 registers and
  // keeps accumulators on the stack (profiled on the 9x9 1-channel input layer). There an odd vector
  // count pairs rows (the 56-pixel rows of the SENSORIUM core at 36x64: 7 vectors on AVX2), and the two
  // rows' last vectors run as one 2-vector tile (tile_tail_pair); a row left alone ends in a 1-vector tile.
  void row_job(const float* buf, float* y, int64_t u, int64_t b) const {
    const int64_t OW = out_[3], vecs = row_vecs(), last = OW - W * (vecs - 1);
    if (one_chain()) {
      const int64_t twos = vecs / 2, oh = pair_rows() ? 2 * u : u;
      const int64_t rows = pair_rows() && oh + 1 < out_[2] ? 2 : 1;
      if (twos > 0)
        for (int64_t r = 0; r < rows; ++r) row_one_chain(buf, y, oh + r, b, twos, vecs % 2 ? W : last);
      if (vecs % 2 == 0) return;
      if (rows == 2)
        tail_pair(buf, y, oh, b, twos * 2 * W, last);
      else
        tile<1>(buf, y, oh, b, twos * 2 * W, last);
      return;
    }
    const int64_t oh = u;
    int64_t threes = vecs / 3, twos = 0, ones = 0;
    if (vecs % 3 == 2) {
      twos = 1;
    } else if (vecs % 3 == 1) {
      if (threes > 0) {
        --threes;
        twos = 2;
      } else {
        ones = 1;
      }
    }
    int64_t ow = 0;
    for (int64_t t = 0; t < threes; ++t, ow += 3 * W) tile<3>(buf, y, oh, b, ow, twos || ones || t + 1 < threes ? W : last);
    for (int64_t t = 0; t < twos; ++t, ow += 2 * W) tile<2>(buf, y, oh, b, ow, t + 1 < twos ? W : last);
    if (ones) tile<1>(buf, y, oh, b, ow, last);
  }

  // A row's `twos` 2-vector one-chain tiles from ow = 0 (the last with `last` lanes) in one call, with the
  // kernel width (and dilation 1; a 3x3 kernel's height too) at compile time: with a 3x3 kernel a tile is
  // 9 taps, and a call per tile spent as long in its prologue and the kernel-row loop as in the FMAs
  // (perf annotate of vgg16's features.0, 1->64 at 144x256: 41% of the tile function in its FMA loop).
  void row_one_chain(const float* buf, float* y, int64_t oh, int64_t b, int64_t twos, int64_t last) const {
    const bool d1 = p_.dilation_w == 1, k3 = p_.kernel_h == 3;
    switch (p_.kernel_w) {
      case 9: d1 ? tiles_one_chain<0, 9, 1>(buf, y, oh, b, twos, last) : tiles_one_chain<0, 9, 0>(buf, y, oh, b, twos, last); break;
      case 7: d1 ? tiles_one_chain<0, 7, 1>(buf, y, oh, b, twos, last) : tiles_one_chain<0, 7, 0>(buf, y, oh, b, twos, last); break;
      case 5: d1 ? tiles_one_chain<0, 5, 1>(buf, y, oh, b, twos, last) : tiles_one_chain<0, 5, 0>(buf, y, oh, b, twos, last); break;
      case 3:
        if (k3)
          d1 ? tiles_one_chain<3, 3, 1>(buf, y, oh, b, twos, last) : tiles_one_chain<3, 3, 0>(buf, y, oh, b, twos, last);
        else
          d1 ? tiles_one_chain<0, 3, 1>(buf, y, oh, b, twos, last) : tiles_one_chain<0, 3, 0>(buf, y, oh, b, twos, last);
        break;
      default: tiles_one_chain<0, 0, 0>(buf, y, oh, b, twos, last); break;
    }
  }

  template <int KH_, int KW_, int DW_>
  void tiles_one_chain(const float* buf, float* y, int64_t oh, int64_t b, int64_t twos, int64_t last) const {
    for (int64_t t = 0; t < twos; ++t) tile_one_chain<2, KH_, KW_, DW_>(buf, y, oh, b, 2 * W * t, t + 1 < twos ? W : last);
  }

  template <int PW>
  void tile(const float* buf, float* y, int64_t oh, int64_t b, int64_t ow, int64_t last) const {
    if constexpr (PW == 1) {  // a one-chain row's odd last vector, when no row pairs with it
      if (one_chain()) {
        const bool d1 = p_.dilation_w == 1;  // compile-time tap offsets
        switch (p_.kernel_w) {
          case 9: d1 ? tile_one_chain<PW, 0, 9, 1>(buf, y, oh, b, ow, last) : tile_one_chain<PW, 0, 9, 0>(buf, y, oh, b, ow, last); break;
          case 7: d1 ? tile_one_chain<PW, 0, 7, 1>(buf, y, oh, b, ow, last) : tile_one_chain<PW, 0, 7, 0>(buf, y, oh, b, ow, last); break;
          case 5: d1 ? tile_one_chain<PW, 0, 5, 1>(buf, y, oh, b, ow, last) : tile_one_chain<PW, 0, 5, 0>(buf, y, oh, b, ow, last); break;
          case 3: d1 ? tile_one_chain<PW, 0, 3, 1>(buf, y, oh, b, ow, last) : tile_one_chain<PW, 0, 3, 0>(buf, y, oh, b, ow, last); break;
          default: tile_one_chain<PW, 0, 0, 0>(buf, y, oh, b, ow, last); break;
        }
        return;
      }
    }
    switch (p_.kernel_w) {  // a compile-time kernel width unrolls the innermost loop
      case 1: tile_k<PW, 1>(buf, y, oh, b, ow, last); break;
      case 3: tile_k<PW, 3>(buf, y, oh, b, ow, last); break;
      case 5: tile_k<PW, 5>(buf, y, oh, b, ow, last); break;
      case 7: tile_k<PW, 7>(buf, y, oh, b, ow, last); break;
      case 9: tile_k<PW, 9>(buf, y, oh, b, ow, last); break;
      default: tile_k<PW, 0>(buf, y, oh, b, ow, last); break;
    }
  }

  // tile_k for a one-chain sum (the 1-channel 9x9 input layer): the whole sum in the registers, in the
  // same (kh, ic, kw) order as tile_k's chunked loop, without its bookkeeping. A function of its own, so
  // that GCC allocates its registers apart from tile_k's partial totals.
  // KH_, KW_, DW_: the kernel height, width and width dilation if known at compile time, else 0. Inlined
  // into tiles_one_chain's loop over a row's tiles.
  template <int PW, int KH_, int KW_, int DW_>
  NPCORE_INLINE void tile_one_chain(const float* buf, float* y, int64_t oh, int64_t b, int64_t ow, int64_t last) const {
    const int64_t IC = p_.in_channels, KH = KH_ ? KH_ : p_.kernel_h, KW = KW_ ? KW_ : p_.kernel_w;
    const int64_t dh = p_.dilation_h, dw = DW_ ? DW_ : p_.dilation_w;
    typename V::reg acc[OCB][PW];
#pragma GCC unroll 8
    for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 3
      for (int q = 0; q < PW; ++q) acc[o][q] = V::zero();
    const float* w = wpack_->data() + size_t(b) * size_t(IC * KH * KW * OCB);
    int64_t kh = 0;
    if constexpr (PW == 1) {
      // One vector: OCB chains alone would run at half the FMA rate (4 on AVX2 against a latency of 4 and
      // 2 FMAs a cycle), so odd kernel rows sum into a second set, added at the end (two chains of about
      // half the terms each: no less exact).
      typename V::reg odd[OCB][1];
#pragma GCC unroll 8
      for (int o = 0; o < OCB; ++o) odd[o][0] = V::zero();
      for (; kh + 1 < KH; kh += 2) {
        for (int64_t ic = 0; ic < IC; ++ic) {
          const float* r = buf + ((oh + kh * dh) * IC + ic) * row_ + ow;
#pragma GCC unroll 9
          for (int64_t kw = 0; kw < KW; ++kw, w += OCB) outer_fma<V, OCB, PW>(acc, w, r + kw * dw);
        }
        for (int64_t ic = 0; ic < IC; ++ic) {
          const float* r = buf + ((oh + (kh + 1) * dh) * IC + ic) * row_ + ow;
#pragma GCC unroll 9
          for (int64_t kw = 0; kw < KW; ++kw, w += OCB) outer_fma<V, OCB, PW>(odd, w, r + kw * dw);
        }
      }
      for (; kh < KH; ++kh)
        for (int64_t ic = 0; ic < IC; ++ic) {
          const float* r = buf + ((oh + kh * dh) * IC + ic) * row_ + ow;
#pragma GCC unroll 9
          for (int64_t kw = 0; kw < KW; ++kw, w += OCB) outer_fma<V, OCB, PW>(acc, w, r + kw * dw);
        }
#pragma GCC unroll 8
      for (int o = 0; o < OCB; ++o) acc[o][0] = V::add(acc[o][0], odd[o][0]);
    } else {
      for (; kh < KH; ++kh) {
        const float* row = buf + (oh + kh * dh) * IC * row_ + ow;
        for (int64_t ic = 0; ic < IC; ++ic) {
          const float* r = row + ic * row_;
#pragma GCC unroll 9
          for (int64_t kw = 0; kw < KW; ++kw, w += OCB) outer_fma<V, OCB, PW>(acc, w, r + kw * dw);
        }
      }
    }
    epilogue_tile<PW>(acc, y, oh, b, ow, last);
  }

  // tile_tail_pair with the kernel width (and dilation 1) at compile time, as tile() picks tile_one_chain.
  void tail_pair(const float* buf, float* y, int64_t oh, int64_t b, int64_t ow, int64_t last) const {
    const bool d1 = p_.dilation_w == 1;
    switch (p_.kernel_w) {
      case 9: d1 ? tile_tail_pair<9, 1>(buf, y, oh, b, ow, last) : tile_tail_pair<9, 0>(buf, y, oh, b, ow, last); break;
      case 7: d1 ? tile_tail_pair<7, 1>(buf, y, oh, b, ow, last) : tile_tail_pair<7, 0>(buf, y, oh, b, ow, last); break;
      case 5: d1 ? tile_tail_pair<5, 1>(buf, y, oh, b, ow, last) : tile_tail_pair<5, 0>(buf, y, oh, b, ow, last); break;
      case 3: d1 ? tile_tail_pair<3, 1>(buf, y, oh, b, ow, last) : tile_tail_pair<3, 0>(buf, y, oh, b, ow, last); break;
      default: tile_tail_pair<0, 0>(buf, y, oh, b, ow, last); break;
    }
  }

  // The last vectors (at ow, `last` lanes) of output rows oh and oh + 1 as one OCB x 2 tile, vector q
  // holding row oh + q: 2 loads and OCB broadcasts per tap feed 2 OCB FMAs, as in a 2-vector tile of one
  // row. Each output is summed as tile_one_chain<1> sums it alone (the same bits whether paired or not):
  // even kernel rows in one chain, odd ones in another, added at the end; here the even rows of both
  // outputs first (2 OCB chains), their sums set aside on the stack, then the odd rows.
  template <int KW_, int DW_>
  void tile_tail_pair(const float* buf, float* y, int64_t oh, int64_t b, int64_t ow, int64_t last) const {
    const int64_t IC = p_.in_channels, KH = p_.kernel_h, KW = KW_ ? KW_ : p_.kernel_w;
    const int64_t dh = p_.dilation_h, dw = DW_ ? DW_ : p_.dilation_w;
    const int64_t down = IC * row_;  // output row oh + 1 reads the padded rows one below oh's
    const float* w0 = wpack_->data() + size_t(b) * size_t(IC * KH * KW * OCB);
    typename V::reg acc[OCB][2];
    alignas(64) float even[OCB][2][W];
    for (int64_t parity = 0; parity < 2; ++parity) {
#pragma GCC unroll 8
      for (int o = 0; o < OCB; ++o) acc[o][0] = acc[o][1] = V::zero();
      for (int64_t kh = parity; kh < KH; kh += 2) {
        const float* w = w0 + size_t(kh * IC * KW * OCB);
        for (int64_t ic = 0; ic < IC; ++ic) {
          const float* r = buf + ((oh + kh * dh) * IC + ic) * row_ + ow;
#pragma GCC unroll 9
          for (int64_t kw = 0; kw < KW; ++kw, w += OCB) {
            const auto x0 = V::load(r + kw * dw), x1 = V::load(r + down + kw * dw);
#pragma GCC unroll 16
            for (int o = 0; o < OCB; ++o) {
              const auto wv = V::set1(w[o]);
              acc[o][0] = V::fmadd(wv, x0, acc[o][0]);
              acc[o][1] = V::fmadd(wv, x1, acc[o][1]);
            }
          }
        }
      }
      if (parity == 0) {
#pragma GCC unroll 8
        for (int o = 0; o < OCB; ++o) {
          V::store(even[o][0], acc[o][0]);
          V::store(even[o][1], acc[o][1]);
        }
      }
    }
#pragma GCC unroll 8
    for (int o = 0; o < OCB; ++o) {
      acc[o][0] = V::add(V::load(even[o][0]), acc[o][0]);
      acc[o][1] = V::add(V::load(even[o][1]), acc[o][1]);
    }
    epilogue_tile<2, true>(acc, y, oh, b, ow, last);
  }

  // OCB channels x PW*W pixels starting at (oh, ow); the last vector stores only `last` lanes. KW_ is the
  // kernel width if known at compile time, else 0.
  template <int PW, int KW_>
  void tile_k(const float* buf, float* y, int64_t oh, int64_t b, int64_t ow, int64_t last) const {
    const int64_t IC = p_.in_channels, KH = p_.kernel_h, KW = KW_ ? KW_ : p_.kernel_w;
    const int64_t dh = p_.dilation_h, dw = p_.dilation_w;
    typename V::reg acc[OCB][PW];
#pragma GCC unroll 8
    for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 3
      for (int q = 0; q < PW; ++q) acc[o][q] = V::zero();
    // Two-level summation for accuracy: the registers sum at most kChunk input-channel rows of the kernel
    // (kChunk * KW terms), then are added to a running total in L1 and restart from zero. One long
    // chain of IC * KH * KW float32 additions would have several times the rounding error of PyTorch's
    // blocked sums (docs/ACCURACY.md); the flushes cost OCB * PW loads, adds and stores per chunk.
    alignas(64) float total[OCB][PW * W];
    bool first = true;
    const float* w = wpack_->data() + size_t(b) * size_t(IC * KH * KW * OCB);
    // With fewer than kChunk input channels the chunks of consecutive kernel rows share the registers
    // (a 1-channel 9x9 input layer: one chain of 81 terms instead of 9 flushes of 9).
    int64_t pending = 0;  // input-channel rows of KW terms in the registers
    for (int64_t kh = 0; kh < KH; ++kh) {
      const float* row = buf + (oh + kh * dh) * IC * row_ + ow;
      for (int64_t ic0 = 0; ic0 < IC; ic0 += kChunk) {
        const int64_t ic1 = ic0 + kChunk < IC ? ic0 + kChunk : IC;
        for (int64_t ic = ic0; ic < ic1; ++ic) {
          const float* r = row + ic * row_;
#pragma GCC unroll 9
          for (int64_t kw = 0; kw < KW; ++kw, w += OCB) outer_fma<V, OCB, PW>(acc, w, r + kw * dw);
        }
        if (kh + 1 == KH && ic1 == IC) break;  // the last chunk stays in registers
        pending += ic1 - ic0;
        const int64_t next = ic1 == IC ? (IC < kChunk ? IC : kChunk) : (IC - ic1 < kChunk ? IC - ic1 : kChunk);
        if (pending + next <= kChunk) continue;
        pending = 0;
#pragma GCC unroll 8
        for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 3
          for (int q = 0; q < PW; ++q) {
            float* t = &total[o][W * q];
            V::store(t, first ? acc[o][q] : V::add(V::load(t), acc[o][q]));
            acc[o][q] = V::zero();
          }
        first = false;
      }
    }
    if (!first) {
#pragma GCC unroll 8
      for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 3
        for (int q = 0; q < PW; ++q) acc[o][q] = V::add(V::load(&total[o][W * q]), acc[o][q]);
    }
    epilogue_tile<PW>(acc, y, oh, b, ow, last);
  }

  // Epilogue: bias and activation in registers (the activation's branch chosen once per tile), then the
  // store (masked for the row's tail). ROWS: vector q is row oh + q's vector at ow (tile_tail_pair), each
  // with `last` lanes; else vector q is at ow + W q of row oh and only the last one has `last` lanes.
  template <int PW, bool ROWS = false>
  NPCORE_INLINE void epilogue_tile(typename V::reg (&acc)[OCB][PW], float* y, int64_t oh, int64_t b, int64_t ow,
                                   int64_t last) const {
    using E = Epilogue<V>;
    switch (epilogue_.mode()) {
      case E::kShift: store_tile<PW, E::kShift, ROWS>(acc, y, oh, b, ow, last); break;
      case E::kElu: store_tile<PW, E::kElu, ROWS>(acc, y, oh, b, ow, last); break;
      default: store_tile<PW, E::kAny, ROWS>(acc, y, oh, b, ow, last); break;
    }
  }

  // Channels whose epilogue runs at once: the most (dividing OCB) with at most 8 vectors.
  static constexpr int epilogue_group(int pw) {
    int g = OCB;
    while (g > 1 && (g * pw > 8 || OCB % g != 0)) --g;
    return g;
  }

  // The epilogue epilogue_group(PW) channels at a time, its stages interleaved over their vectors
  // (Epilogue::apply_m_n): one vector at a time, the ELU's polynomial waits on its own latency. Measured
  // on the AVX2 4 x 2 tile (CPU time, 9x9 1->64 at 144x256): ELU one vector at a time 5.4 ms, 4 vectors
  // at a time 5.3-5.6, 8 at a time 4.9; on the 4 x 3 tile 6 at a time 5.7-6.1 against 5.9-6.7.
  template <int PW, int M, bool ROWS>
  NPCORE_INLINE void store_tile(typename V::reg (&acc)[OCB][PW], float* y, int64_t oh, int64_t b, int64_t ow,
                                int64_t last) const {
    constexpr int G = epilogue_group(PW);
    const int64_t OC = p_.out_channels, OHW = out_[3] * out_[2];
    const auto tail = V::mask_first(last);
#pragma GCC unroll 8
    for (int o0 = 0; o0 < OCB; o0 += G) {
      typename V::reg v[G * PW], sin[G * PW];
#pragma GCC unroll 8
      for (int g = 0; g < G; ++g) {
        const auto sh = epilogue_.shift(b * OCB + o0 + g);  // padded past OC
#pragma GCC unroll 3
        for (int q = 0; q < PW; ++q) {
          v[g * PW + q] = acc[o0 + g][q];
          sin[g * PW + q] = sh;
        }
      }
      epilogue_.template apply_m_n<M>(v, sin);
#pragma GCC unroll 8
      for (int g = 0; g < G; ++g) {
        const int64_t oc = b * OCB + o0 + g;
        if (oc >= OC) return;
        float* dst = y + oc * OHW + oh * out_[3] + ow;
        if constexpr (ROWS) {
#pragma GCC unroll 3
          for (int q = 0; q < PW; ++q) {
            float* d = dst + q * out_[3];
            if (last == W)
              V::store(d, v[g * PW + q]);
            else
              V::store_mask(d, tail, v[g * PW + q]);
            epilogue_.finish(d, last);
          }
          continue;
        }
#pragma GCC unroll 3
        for (int q = 0; q < PW; ++q) {
          if (q + 1 < PW || last == W)  // a masked store costs several plain ones on AMD cores
            V::store(dst + W * q, v[g * PW + q]);
          else
            V::store_mask(dst + W * q, tail, v[g * PW + q]);
        }
        epilogue_.finish(dst, W * (PW - 1) + last);
      }
    }
  }

  // Two-level summation for accuracy (tile_k): the registers sum at most kChunk input-channel rows of the
  // kernel before they are added to a running total.
  static constexpr int64_t kChunk = 16;
  // The whole sum fits one chunk: no partial totals.
  bool one_chain() const { return p_.in_channels * p_.kernel_h <= kChunk; }

  Conv2dParams p_;
  Shape in_, out_;
  int64_t blocks_ = 0, rows_ = 0, row_ = 0;
  PackedRef wpack_;  // shared with the layer's other kernels (engine/packed_weights.h)
  Epilogue<V> epilogue_;
  int threads_ = 1;
};

}  // namespace npcore::native::NPCORE_ISA_NS
