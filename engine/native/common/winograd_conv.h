// Winograd F(2x2, r x r) convolution over vector traits V (see simd_math.h), vectorised across W output
// tiles of one tile row at a time. Per block of up to VECS such vectors (mostly one column of VECS tile
// rows, see locate()):
//   input transform   V[p][ic][t] = (B^T d_t,ic B)[p]        p < alpha^2, d an alpha x alpha input patch
//   alpha^2 GEMMs      M[p][oc][t] = sum_ic U[p][oc][ic] V[p][ic][t]     U = G g G^T, made at creation
//   output transform  y_t,oc = A^T M[.][oc][t] A (2 x 2 pixels), + bias, activation, store
// With ConvSpec::pool_2x2 the output transform also takes the maximum of each tile's 2 x 2 activated pixels
// (a following MaxPool2d(2, 2), whose windows are the tiles) and stores that one value: the full-size
// output is never written.
// The weights' transform happens once; the run allocates nothing (per-thread V and M live in scratch).
#pragma once
#include <omp.h>

#include <array>

#include "engine/native/common/max_pool.h"
#include "engine/native/common/simd_math.h"
#include "engine/parallel.h"
#include "engine/winograd.h"

namespace npcore::native::NPCORE_ISA_NS {

// acc + c v for a coefficient c that is a compile-time constant once the caller's loops unroll: zero
// terms vanish and +-1 terms become an addition or a subtraction.
template <class V>
NPCORE_INLINE typename V::reg cfma(float c, typename V::reg v, typename V::reg acc) {
  if (c == 0.0f) return acc;
  if (c == 1.0f) return V::add(acc, v);
  if (c == -1.0f) return V::sub(acc, v);
  return V::fmadd(V::set1(c), v, acc);
}

// The GEMM micro-tile is OCB output channels x VECS tile vectors (OCB*VECS accumulators). For alpha 8
// (7x7 kernels) V and M of a block would not fit a core's L2 with U, so the block is one tile vector
// (OCB_BIG x 1).
template <class V, int OCB, int VECS, int OCB_BIG>
class WinogradConv final : public ConvKernel {
 public:
  static constexpr int W = V::W;
  // How many channels ahead the transforms prefetch the image rows they will read or write.
  static constexpr int64_t kAhead = 8;
  using reg = typename V::reg;
  using mask = typename V::mask;

  WinogradConv(const ConvSpec& spec, const Shape& in) : p_(spec.params), in_(in) {
    conv_ = p_.output_shape(in, "winograd conv");
    out_ = conv_;
    pool_ = spec.pool_2x2;
    if (pool_) {  // floor mode: an odd last row or column of the conv output has no window
      out_[2] = conv_[2] / 2;
      out_[3] = conv_[3] / 2;
    }
    a_ = int(p_.kernel_h) + 1;  // 4, 6 or 8: make_native_conv checked winograd_eligible
    P_ = a_ * a_;
    IC_ = p_.in_channels;
    OC_ = p_.out_channels;
    ocb_ = a_ >= 8 ? OCB_BIG : OCB;
    vecs_ = a_ >= 8 ? 1 : VECS;
    u_ = shared_pack(spec, PackKey{"winograd", resolve_isa(spec.isa), {ocb_, 0, 0, 0}}, &pack_winograd_weights);
    blocks_ = u_->blocks;
    epilogue_ = Epilogue<V>(spec.act, spec.bias, OC_, blocks_ * ocb_);
    TH_ = (conv_[2] + 1) / 2;
    TW_ = (conv_[3] + 1) / 2;
    tw_vecs_ = (TW_ + W - 1) / W;
    static_assert(VECS >= 1 && VECS <= 4, "block() keeps up to 4 tile vectors' positions");
    threads_ = planned_threads();
  }

  Backend backend() const override { return Backend::Native; }
  // Overridden here so that no function of npcore's own namespace is compiled for this ISA.
  std::unique_ptr<RunState> make_state() const override { return nullptr; }

  // One thread's V and M.
  size_t thread_floats() const {
    return round_floats(size_t(IC_) * size_t(stride())) + round_floats(size_t(blocks_ * ocb_) * size_t(stride()));
  }
  size_t scratch_floats() const override { return size_t(threads_) * thread_floats(); }
  const float* packed_weights() const override { return u_->data(); }

  // The tile vectors of every image, in the order of locate(), form one sequence cut into blocks of vecs_
  // vectors: a block may span two bands of tile rows or two images, so every block but the
  // last has a full GEMM micro-tile (no narrow remainder blocks at the end of each tile row), and a batch
  // is one parallel loop (no barrier per image). Blocks are handed out dynamically: on a shared machine a
  // descheduled thread does not hold the other one at the barrier.
  void run(const Tensor& in, Tensor& out, float* scratch, RunState*) const override {
    check_run_shapes(Backend::Native, p_, in_, out_, in, out);
    const int64_t total = in_[0] * TH_ * tw_vecs_;
    parallel_for_dynamic((total + vecs_ - 1) / vecs_, threads_, [&](int64_t j) {
      block(in, out, j * vecs_, total, scratch + size_t(thread_slot()) * thread_floats());
    });
  }

 private:
  // V is [IC][P][T] and M is [OC][P][T] (T = tiles per block): the input transform writes one input
  // channel's alpha^2 points contiguously, the output transform reads one output channel's contiguously,
  // and the GEMM for point p walks V and M with a stride of one channel. That stride is a cache line more
  // than P*T floats: a multiple of 4 KiB would put every channel of a point in the same L1 set.
  int64_t stride() const { return P_ * vecs_ * W + 16; }

  // Vector g of the sequence: the W tiles from tile column tx0 = W vx of tile row ty of image n. Each
  // image's tile rows are cut into bands of vecs_ rows (the last band may have fewer, rb); the sequence
  // walks image by image, band by band, and within a band column by column (vx), top to bottom:
  // g = n TH tw_vecs + band vecs_ tw_vecs + vx rb + (ty - band vecs_). A block (vecs_ consecutive vectors)
  // is then mostly one column of vecs_ tile rows: their alpha-row patches overlap by alpha - 2 rows, read
  // once from memory instead of again one tile row later, and the next block (the next column) shares the
  // lines at its edge. With one row per band (vecs_ 1) it is the plain row-major order.
  void locate(int64_t g, int64_t& img, int64_t& ty, int64_t& tx0) const {
    const int64_t per_image = TH_ * tw_vecs_, r = g % per_image;
    img = g / per_image;
    const int64_t band = r / (int64_t(vecs_) * tw_vecs_);
    int64_t rb = TH_ - band * vecs_;
    if (rb > vecs_) rb = vecs_;
    const int64_t q = r - band * vecs_ * tw_vecs_;
    ty = band * vecs_ + q % rb;
    tx0 = (q / rb) * W;
  }

  // Tile vectors [g0, g0 + vecs_) of the sequence (fewer at its end).
  void block(const Tensor& in, Tensor& out, int64_t g0, int64_t total, float* scratch) const {
    const int64_t nv = total - g0 < vecs_ ? total - g0 : vecs_;
    const int64_t T = vecs_ * W;  // V and M rows hold a whole block even when fewer tiles are used
    float* Vb = scratch;                                                 // [IC][P][T]
    float* M = scratch + round_floats(size_t(IC_) * size_t(stride()));  // [OC][P][T]
    int64_t img[4], ty[4], tx0[4];  // vecs_ <= 4 (checked in the constructor)
    for (int64_t v = 0; v < nv; ++v) locate(g0 + v, img[v], ty[v], tx0[v]);
    // Which lanes of the two loads per column offset j fall inside the image (zero padding outside).
    mask lo[4][8], hi[4][8];
    bool inside[4];
    const float* x[4];
    for (int64_t v = 0; v < nv; ++v) {
      x[v] = in.image(img[v]);
      for (int j = 0; j < a_; j += 2) {                   // input_transform loads at even j only
        const int64_t c0 = 2 * tx0[v] + j - p_.pad_w;  // image column of lane 0 of the low load
        lo[v][j] = lane_mask(c0);
        hi[v][j] = lane_mask(c0 + W);
      }
      // Every column the W tiles read inside the image: plain loads (masked ones are slower).
      const int64_t first = 2 * tx0[v] - p_.pad_w;
      inside[v] = first >= 0 && first + a_ - 2 + 2 * W <= in_[3];
    }
    // The block's vectors as runs of consecutive tile rows of one tile column of one image (mostly one
    // run: the block is a column of a band, see locate()); input_transform shares their rows' first pass.
    int64_t run_first[4], run_len[4], runs = 0;
    for (int64_t v = 0; v < nv; ++v) {
      if (runs > 0) {
        const int64_t f = run_first[runs - 1];
        if (img[v] == img[f] && tx0[v] == tx0[f] && ty[v] == ty[f] + (v - f)) {
          ++run_len[runs - 1];
          continue;
        }
      }
      run_first[runs] = v;
      run_len[runs++] = 1;
    }
    // Channel by channel, run by run: the patches of neighbouring blocks share lines, read while hot.
    for (int64_t ic = 0; ic < IC_; ++ic)
      for (int64_t q = 0; q < runs; ++q) {
        const int64_t v = run_first[q], n = run_len[q];
        float* dst = Vb + ic * stride() + v * W;
        switch (a_) {
          case 4: input_transform<4>(x[v], ty[v], n, tx0[v], ic, lo[v], hi[v], inside[v], dst, W, T); break;
          case 6: input_transform<6>(x[v], ty[v], n, tx0[v], ic, lo[v], hi[v], inside[v], dst, W, T); break;
          default: input_transform<8>(x[v], ty[v], n, tx0[v], ic, lo[v], hi[v], inside[v], dst, W, T); break;
        }
      }
    for (int p = 0; p < P_; ++p)
      for (int64_t b = 0; b < blocks_; ++b) {
        const float* u = u_->data() + size_t(p) * size_t(blocks_ * IC_ * ocb_) + size_t(b * IC_ * ocb_);
        const float* vp = Vb + size_t(p) * size_t(T);
        float* mp = M + size_t(b * ocb_) * size_t(stride()) + size_t(p) * size_t(T);
        if (a_ >= 8)
          gemm<OCB_BIG, 1>(u, vp, mp);
        else if (VECS >= 3 && nv == 3)
          gemm<OCB, (VECS >= 3 ? 3 : 1)>(u, vp, mp);
        else if (VECS >= 2 && nv == 2)
          gemm<OCB, (VECS >= 2 ? 2 : 1)>(u, vp, mp);
        else
          gemm<OCB, 1>(u, vp, mp);
      }
    for (int64_t v = 0; v < nv; ++v) {
      float* y = out.image(img[v]);
      for (int64_t oc = 0; oc < OC_; ++oc) {
        const float* src = M + oc * stride() + v * W;
        if (pool_) {
          switch (a_) {
            case 4: output_transform_pool<4>(src, T, y, ty[v], tx0[v], oc); break;
            case 6: output_transform_pool<6>(src, T, y, ty[v], tx0[v], oc); break;
            default: output_transform_pool<8>(src, T, y, ty[v], tx0[v], oc); break;
          }
          continue;
        }
        switch (a_) {
          case 4: output_transform<4>(src, T, y, ty[v], tx0[v], oc); break;
          case 6: output_transform<6>(src, T, y, ty[v], tx0[v], oc); break;
          default: output_transform<8>(src, T, y, ty[v], tx0[v], oc); break;
        }
      }
    }
  }

  // out[k] = sum_j BT[k][j] in[j] for k < A. The interpolation points come in pairs +p, -p (rows 2q-1 and
  // 2q of B^T), whose rows differ only in the sign of their odd-j coefficients: with E and O the sums over
  // even and odd j of the +p row, the two rows are E + O and E - O, which saves a third of the FMAs.
  template <int A>
  NPCORE_INLINE void bt_rows(const reg (&in)[A], reg (&out)[A]) const {
    constexpr std::array<float, A * A> bt = WinogradConst<A>::BT;
    auto dot = [&](int k, int j0, int step) __attribute__((always_inline)) {
      reg s = V::zero();
      bool first = true;
#pragma GCC unroll 8
      for (int j = j0; j < A; j += step) {
        const float c = bt[size_t(k * A + j)];
        if (c == 0.0f) continue;
        if (c == 1.0f)
          s = first ? in[j] : V::add(s, in[j]);
        else if (c == -1.0f)
          s = first ? V::sub(V::zero(), in[j]) : V::sub(s, in[j]);
        else
          s = first ? V::mul(V::set1(c), in[j]) : V::fmadd(V::set1(c), in[j], s);
        first = false;
      }
      return s;
    };
    out[0] = dot(0, 0, 1);
    out[A - 1] = dot(A - 1, 0, 1);
#pragma GCC unroll 4
    for (int k = 1; k + 1 < A; k += 2) {
      const reg e = dot(k, 0, 2), o = dot(k, 1, 2);
      out[k] = V::add(e, o);
      out[k + 1] = V::sub(e, o);
    }
  }

  // Lanes e of a W-float load starting at image column c with 0 <= c + e < width.
  mask lane_mask(int64_t c) const {
    int64_t first = -c, last = in_[3] - c;
    if (first < 0) first = 0;
    if (last > W) last = W;
    if (first >= last) return V::mask_range(0, 0);
    return V::mask_range(first, last);
  }

  // Image row ih of input channel ic, columns of the W tiles from tile column tx0: r[nu] = (d B)[nu] =
  // sum_j d[j] BT[nu][j] with d[j] = row[2k + j] for tile k < W; zeros for a row outside the image
  // (padding). Columns outside the image are masked out of the loads (masked lanes never touch memory);
  // `inside` says no column is outside (plain loads).
  template <int A>
  NPCORE_INLINE void input_row(const float* x, int64_t ih, int64_t tx0, int64_t ic, const mask* lo, const mask* hi,
                               bool inside, reg (&r)[A]) const {
    const int64_t H = in_[2], Wd = in_[3];
    if (ih < 0 || ih >= H) {
#pragma GCC unroll 8
      for (int nu = 0; nu < A; ++nu) r[nu] = V::zero();
      return;
    }
    // Address arithmetic in integers: the window may start left of the row (its lanes are masked).
    const uintptr_t row = reinterpret_cast<uintptr_t>(x + (ic * H + ih) * Wd);
    const intptr_t c0 = intptr_t(2 * tx0 - p_.pad_w);
    // The same row kAhead input channels further (kAhead planes on): hardware prefetchers do not follow
    // jumps of a whole plane, and one channel ahead (a few dozen cycles of work) is too close to hide
    // the latency of the L3 or memory the image comes from. Prefetches never fault.
    const char* next = reinterpret_cast<const char*>(row + uintptr_t((kAhead * H * Wd + c0) * intptr_t(sizeof(float))));
    // The window is 2W + A - 2 floats from column c0; c0 is rarely 16-float aligned (padding), so its
    // last line is one more than its length needs: prefetch every line and the last byte's.
    constexpr int kWindow = (2 * W + A - 2) * int(sizeof(float));
#pragma GCC unroll 4
    for (int off = 0; off < kWindow; off += 64) _mm_prefetch(next + off, _MM_HINT_T0);
    _mm_prefetch(next + kWindow - 1, _MM_HINT_T0);
    // d[j] = x[2k + j], k < W (tile k's column j). A is even: the 2W floats from column c0 + j hold
    // columns j (even lanes) and j + 1 (odd lanes) of the W tiles, so one pair of loads serves two j.
    reg d[A];
#pragma GCC unroll 8
    for (int j = 0; j < A; j += 2) {
      const float* src = reinterpret_cast<const float*>(row + uintptr_t((c0 + j) * intptr_t(sizeof(float))));
      const reg a = inside ? V::load(src) : V::loadz(lo[j], src);
      const reg b = inside ? V::load(src + W) : V::loadz(hi[j], src + W);
      d[j] = V::even(a, b);
      d[j + 1] = V::odd(a, b);
    }
    bt_rows<A>(d, r);
  }

  // W tiles (tx0 .. tx0+W-1) of each of the `rows` tile rows ty, ty + 1, ..., input channel ic of the image
  // x [IC, H, W]: V[p] = (B^T d B)[p] for each tile, written to v + k step + p * p_stride (W floats each) for
  // tile row ty + k. Tile rows k and k + 1 share A - 2 image rows: their first pass (d B) is done once and
  // kept, so a column of R tile rows takes A + 2 (R - 1) row passes instead of A R; every tile's V is the
  // same arithmetic as alone. A = alpha, known at compile time so that every loop unrolls.
  template <int A>
  void input_transform(const float* x, int64_t ty, int64_t rows, int64_t tx0, int64_t ic, const mask* lo,
                       const mask* hi, bool inside, float* v, int64_t step, int64_t p_stride) const {
    reg t[A][A];  // [nu][row i]: (d B)[i][nu] = sum_j d[i][j] BT[nu][j], stored transposed for the 2nd pass
    const int64_t ih0 = 2 * ty - p_.pad_h;
#pragma GCC unroll 8
    for (int i = 0; i < A; ++i) {
      reg r[A];
      input_row<A>(x, ih0 + i, tx0, ic, lo, hi, inside, r);
#pragma GCC unroll 8
      for (int nu = 0; nu < A; ++nu) t[nu][i] = r[nu];
    }
    for (int64_t k = 0;; ++k) {
#pragma GCC unroll 8
      for (int nu = 0; nu < A; ++nu) {
        reg r[A];
        bt_rows<A>(t[nu], r);  // V[xi][nu] = sum_i BT[xi][i] (d B)[i][nu]
#pragma GCC unroll 8
        for (int xi = 0; xi < A; ++xi) V::store(v + k * step + (xi * A + nu) * p_stride, r[xi]);
      }
      if (k + 1 == rows) break;
      // Tile row k + 1: rows 2 .. A-1 of this patch are its rows 0 .. A-3; two new image rows.
#pragma GCC unroll 8
      for (int nu = 0; nu < A; ++nu)
#pragma GCC unroll 8
        for (int i = 0; i + 2 < A; ++i) t[nu][i] = t[nu][i + 2];
#pragma GCC unroll 2
      for (int i = A - 2; i < A; ++i) {
        reg r[A];
        input_row<A>(x, ih0 + 2 * (k + 1) + i, tx0, ic, lo, hi, inside, r);
#pragma GCC unroll 8
        for (int nu = 0; nu < A; ++nu) t[nu][i] = r[nu];
      }
    }
  }

  // M [O oc][T] = U [O oc][IC] x V [IC][T] for the first NV tile vectors of one point; V's and M's rows
  // are stride() apart.
  template <int O, int NV>
  void gemm(const float* u, const float* v, float* m) const {
    const int64_t s = stride();
    reg acc[O][NV];
#pragma GCC unroll 16
    for (int o = 0; o < O; ++o)
#pragma GCC unroll 3
      for (int q = 0; q < NV; ++q) acc[o][q] = V::zero();
    // U streams from L2 (all alpha^2 points of it per block): fetch 32 input channels ahead. Four input
    // channels per step, so one prefetch per 64 bytes of U and less loop arithmetic; the same
    // FMA chains in the same order.
    int64_t ic = 0;
    for (; ic + 4 <= IC_; ic += 4, u += 4 * O, v += 4 * s) {
#pragma GCC unroll 4
      for (int l = 0; l < 4 * O; l += 16) _mm_prefetch(reinterpret_cast<const char*>(u + 32 * O + l), _MM_HINT_T0);
      outer_fma<V, O, NV>(acc, u, v);
      outer_fma<V, O, NV>(acc, u + O, v + s);
      outer_fma<V, O, NV>(acc, u + 2 * O, v + 2 * s);
      outer_fma<V, O, NV>(acc, u + 3 * O, v + 3 * s);
    }
    for (; ic < IC_; ++ic, u += O, v += s) {
      _mm_prefetch(reinterpret_cast<const char*>(u + 32 * O), _MM_HINT_T0);
      outer_fma<V, O, NV>(acc, u, v);
    }
#pragma GCC unroll 16
    for (int o = 0; o < O; ++o)
#pragma GCC unroll 3
      for (int q = 0; q < NV; ++q) V::store(m + o * s + W * q, acc[o][q]);
  }

  // t[xi][j] = sum_nu M[xi][nu] AT[j][nu] for W tiles: the first half of A^T M A.
  template <int A>
  NPCORE_INLINE void output_rows(const float* m, int64_t p_stride, reg (&t)[A][2]) const {
    constexpr std::array<float, 2 * A> at = WinogradConst<A>::AT;
#pragma GCC unroll 8
    for (int xi = 0; xi < A; ++xi) {
      reg s0 = V::zero(), s1 = V::zero();
#pragma GCC unroll 8
      for (int nu = 0; nu < A; ++nu) {
        const reg mv = V::load(m + (xi * A + nu) * p_stride);
        s0 = cfma<V>(at[size_t(nu)], mv, s0);
        s1 = cfma<V>(at[size_t(A + nu)], mv, s1);
      }
      t[xi][0] = s0;
      t[xi][1] = s1;
    }
  }

  // Output row i (0 or 1) of W tiles, columns 0 (c0) and 1 (c1): the second half of A^T M A.
  template <int A>
  NPCORE_INLINE void output_row(const reg (&t)[A][2], int i, reg& c0, reg& c1) const {
    constexpr std::array<float, 2 * A> at = WinogradConst<A>::AT;
    c0 = V::zero();
    c1 = V::zero();
#pragma GCC unroll 8
    for (int xi = 0; xi < A; ++xi) {
      c0 = cfma<V>(at[size_t(i * A + xi)], t[xi][0], c0);
      c1 = cfma<V>(at[size_t(i * A + xi)], t[xi][1], c1);
    }
  }

  // W tiles of one output channel: y = A^T M A (2 x 2 per tile), bias, activation, interleaved store.
  template <int A>
  void output_transform(const float* m, int64_t p_stride, float* y, int64_t ty, int64_t tx0, int64_t oc) const {
    const int64_t OH = out_[2], OW = out_[3];
    const int64_t x0 = 2 * tx0;
    int64_t valid = OW - x0;
    if (valid > 2 * W) valid = 2 * W;
    if (valid <= 0) return;
    reg t[A][2];
    output_rows<A>(m, p_stride, t);
    const reg sin = epilogue_.shift(oc);
    const mask m0 = V::mask_first(valid), m1 = V::mask_first(valid - W);
    for (int i = 0; i < 2; ++i) {
      const int64_t oy = 2 * ty + i;
      if (oy >= OH) break;
      reg c0, c1;  // output columns 0 and 1 of the W tiles
      output_row<A>(t, i, c0, c1);
      c0 = epilogue_.apply(c0, sin);
      c1 = epilogue_.apply(c1, sin);
      float* dst = y + (oc * OH + oy) * OW + x0;
      // The output rows kAhead channels on, for the same reason as the input transform's prefetch.
      const char* later = reinterpret_cast<const char*>(dst + kAhead * OH * OW);
      _mm_prefetch(later, _MM_HINT_T0);
      _mm_prefetch(later + 2 * W * sizeof(float) - 1, _MM_HINT_T0);
      // Masked stores are microcoded and slow on AMD (Zen 1, 2): only the row's last vector uses them.
      if (valid == 2 * W) {
        V::store(dst, V::interleave_lo(c0, c1));
        V::store(dst + W, V::interleave_hi(c0, c1));
      } else {
        V::store_mask(dst, m0, V::interleave_lo(c0, c1));
        if (valid > W) V::store_mask(dst + W, m1, V::interleave_hi(c0, c1));
      }
      epilogue_.finish(dst, valid);
    }
  }

  // W tiles of one output channel pooled: the maximum of each tile's 2 x 2 pixels after bias and
  // activation (NaN wins, as in PyTorch), one value per tile at pooled row ty, columns tx0 .. tx0 + W - 1.
  template <int A>
  void output_transform_pool(const float* m, int64_t p_stride, float* y, int64_t ty, int64_t tx0, int64_t oc) const {
    const int64_t PH = out_[2], PW = out_[3];
    if (ty >= PH) return;  // the conv output's odd last row
    int64_t valid = PW - tx0;
    if (valid > W) valid = W;
    if (valid <= 0) return;
    reg t[A][2];
    output_rows<A>(m, p_stride, t);
    const reg sin = epilogue_.shift(oc);
    reg c0, c1, d0, d1;
    output_row<A>(t, 0, c0, c1);
    output_row<A>(t, 1, d0, d1);
    const reg r = max_nan<V>(max_nan<V>(epilogue_.apply_all(c0, sin), epilogue_.apply_all(c1, sin)),
                             max_nan<V>(epilogue_.apply_all(d0, sin), epilogue_.apply_all(d1, sin)));
    float* dst = y + (oc * PH + ty) * PW + tx0;
    if (valid == W)
      V::store(dst, r);
    else
      V::store_mask(dst, V::mask_first(valid), r);
  }

  Conv2dParams p_;
  Shape in_, out_, conv_;  // out_: what run() writes (conv_, or conv_ pooled)
  bool pool_ = false;
  int a_ = 0, P_ = 0;
  int ocb_ = OCB, vecs_ = VECS;
  int64_t IC_ = 0, OC_ = 0, blocks_ = 0, TH_ = 0, TW_ = 0, tw_vecs_ = 0;
  PackedRef u_;  // U, shared with the layer's other kernels (engine/packed_weights.h)
  Epilogue<V> epilogue_;
  int threads_ = 1;
};

}  // namespace npcore::native::NPCORE_ISA_NS
