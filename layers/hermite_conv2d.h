#pragma once
// neuralpredictors' HermiteConv2D (layers/hermite.py): a convolution whose filters are linear combinations
// of a 2D Hermite basis, replicated at `num_rotations` rotations by rotating the combination coefficients.
// Its parameter is `coeffs` [n_coeffs, in, out]; the basis `rotate_hermite.H` and the rotation matrices
// `rotate_hermite.Rs.<i>` are stored in the state_dict too, but the engine computes them itself (in double
// precision) and only checks the file's copies against its own.
//
// The filter bank [out*R, in, k, k] depends on the parameters only, so it is computed once in prepare()
// (in double, then rounded to float32) and the forward is a plain bias-free Conv2d held inside this
// layer; a following norm and activation fuse into that conv as for any other Conv2d.
#include <vector>

#include "layers/conv2d.h"

namespace npcore {

// The 2D Hermite functions of hermite_2d(N, npts, xvalmax), sampled on an npts x npts grid.
struct HermiteBasis {
  int64_t rank = 0;         // N (the filter size)
  int64_t npts = 0;         // samples per axis (filter_size * upsampling)
  std::vector<double> H;    // [N(N+1)/2, npts, npts], each function of unit L2 norm on the grid
  std::vector<char> desc;   // per function: 'z' rotationally symmetric, 'r'/'i' real/imaginary part of a pair
  std::vector<int64_t> mu;  // per function: angular frequency
  int64_t size() const { return int64_t(desc.size()); }
};

// neuralpredictors' hermite_2d(N, npts, xvalmax): Gaussian-enveloped Laguerre-type polynomials times
// exp(i*mu*theta), sampled at linspace(-x, x, npts) with x = xvalmax * (1 - 1/npts) on both axes (row
// axis first, theta = atan2(row, column)). Throws ConfigError if a function vanishes on the grid.
HermiteBasis hermite_2d(int64_t N, int64_t npts, double xvalmax);

// neuralpredictors' rotation_matrix(desc, mu, angle): [n, n] row-major, 1 for 'z' functions and the 2x2
// block [[cos(mu a), sin(mu a)], [-sin(mu a), cos(mu a)]] for each ('r', 'i') pair.
std::vector<double> hermite_rotation_matrix(const HermiteBasis& basis, double angle);

// HermiteConv2D's constructor arguments (neuralpredictors' names); padding may differ per axis because
// RotationEquivariant2dCore passes `hidden_padding` through, which may be a pair.
struct HermiteConv2dParams {
  int64_t input_features = 0;   // all input channels (hidden layers: features * num_rotations)
  int64_t output_features = 0;  // per rotation; the layer outputs output_features * num_rotations
  int64_t filter_size = 0;
  int64_t pad_h = 0, pad_w = 0;
  int64_t stride = 1;
  int64_t num_rotations = 1;
  int64_t upsampling = 1;
  bool first_layer = true;  // hidden layers (false) roll the input channels by one rotation per rotation

  int64_t n_coeffs() const { return filter_size * (filter_size + 1) / 2; }
  // Throws ConfigError naming `where`, the value and the rule.
  void validate(const std::string& where) const;
};

// neuralpredictors.layers.hermite.HermiteConv2D (eval forward), with the filter bank precomputed.
class HermiteConv2D : public Layer {
 public:
  // `init_std`: the standard deviation init() draws coeffs with (RotationEquivariant2dCore's init_std).
  HermiteConv2D(std::string name, const HermiteConv2dParams& params, double init_std = 0.1);
  const char* type() const override { return "HermiteConv2D"; }
  const HermiteConv2dParams& params() const { return p_; }
  Shape output_shape(const Shape& in) const override { return conv_.output_shape(in); }

  // coeffs [n_coeffs, in, out], rotate_hermite.H [n_coeffs, k*up, k*up], rotate_hermite.Rs.<i> [n, n].
  void declare(WeightSpec& spec) const override;
  // Reads coeffs; throws WeightError naming the key if the file's H or Rs differ from the engine's
  // beyond float32 rounding (max|diff| > 1e-5 * max|engine's|).
  void load(const StateDict& sd) override;
  void init(Rng& rng) override;  // coeffs ~ normal(0, init_std), as init_conv_hermite upstream
  void save(StateDict& sd) const override;
  // {"filter_bank", [out*R, in, k, k]}: upstream's weights_all_rotations (before any fused norm).
  std::vector<std::pair<std::string, Tensor>> debug_tensors() const override;

  // Sets coeffs directly ([n_coeffs, in, out]; tests).
  void set_coeffs(Tensor coeffs);
  const Tensor& coeffs() const { return coeffs_; }
  // The engine's basis and rotation matrices (for rotation i, angle 2*pi*i/num_rotations).
  const HermiteBasis& basis() const { return basis_; }
  const std::vector<std::vector<double>>& rotations() const { return rs_; }
  // The filter bank [out*R, in, k, k] computed from the current coeffs, in double, rounded to float32.
  Tensor compute_filter_bank() const;

  // Fusion: the inner conv is the producer.
  bool can_absorb_affine() const override { return conv_.can_absorb_affine(); }
  bool can_absorb_activation() const override { return conv_.can_absorb_activation(); }
  void absorb_affine(const ChannelAffine& a) override { conv_.absorb_affine(a); }
  void absorb_activation(const Activation& a) override { conv_.absorb_activation(a); }
  void reset_fusion() override { conv_.reset_fusion(); }

  // Computes the filter bank (if coeffs changed) and prepares the inner conv.
  void prepare(const EngineOptions& opt) override;
  std::unique_ptr<Op> make_op(const Shape& in, const EngineOptions& opt) const override;

 private:
  // Compares a file tensor with the engine's values; throws WeightError naming `field`.
  void check_against(const StateDict& sd, const std::string& field, const std::vector<double>& own) const;

  HermiteConv2dParams p_;
  double init_std_;
  HermiteBasis basis_;
  std::vector<std::vector<double>> rs_;  // per rotation, [n, n]
  Tensor coeffs_;                        // [n_coeffs, in, out]
  Tensor filter_bank_;                   // [out*R, in, k, k], made by prepare()
  bool bank_ready_ = false;
  Conv2d conv_;  // bias-free, carries stride/padding and whatever fusion absorbs
};

}  // namespace npcore
