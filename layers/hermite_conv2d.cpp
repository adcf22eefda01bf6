#include "layers/hermite_conv2d.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "engine/error.h"
#include "engine/rng.h"
#include "weights/state_dict.h"
#include "weights/weight_spec.h"

namespace npcore {
namespace {

// Limits the engine sets (upstream has none): beyond them the basis tensors grow to hundreds of MB and
// the polynomial evaluation loses precision, so no trained model uses such values.
constexpr int64_t kMaxFilterSize = 32, kMaxUpsampling = 8, kMaxRotations = 64;

// gamma(x) for the non-negative integer arguments hermite_coefficients uses: x! exactly up to 22!, then
// as tgamma rounds it (scipy's gamma agrees to the last bit or two; only ratios matter here).
double gamma_int(double x) {
  return std::tgamma(x);
}

// hermite_coefficients(mu, nu): polynomial coefficients (increasing powers of r^2), in double.
std::vector<double> hermite_coefficients(int64_t mu, int64_t nu) {
  std::vector<double> c(size_t(nu + 1));
  const double num0 = gamma_int(double(mu + nu + 1)) * gamma_int(double(nu + 1));
  for (int64_t r = 0; r <= nu; ++r) {
    const double num = num0 * std::pow(-2.0, double(nu - r));
    const double den =
        gamma_int(double(mu + 1 + r)) * gamma_int(double(1 + r)) * gamma_int(double(nu + 1 - r));
    c[size_t(r)] = num / den;
  }
  return c;
}

// numpy.polynomial.polynomial.polyval: Horner from the highest power.
double polyval(double x, const std::vector<double>& c) {
  double v = c.back();
  for (size_t i = c.size() - 1; i-- > 0;) v = c[i] + v * x;
  return v;
}

double factorial(int64_t n) {
  return std::tgamma(double(n + 1));
}

}  // namespace

// ---- the basis ----------------------------------------------------------------------------------------

HermiteBasis hermite_2d(int64_t N, int64_t npts, double xvalmax) {
  if (N < 1 || npts < 1) throw ConfigError("hermite_2d: rank and npts must be positive");
  HermiteBasis b;
  b.rank = N;
  b.npts = npts;
  // Sample points: numpy.linspace(-x, x, npts) with x = xvalmax * (1 - 1/npts).
  const double xm = xvalmax * (1.0 - 1.0 / double(npts));
  std::vector<double> xv(static_cast<size_t>(npts));
  if (npts == 1) {
    xv[0] = -xm;
  } else {
    const double step = 2.0 * xm / double(npts - 1);
    for (int64_t i = 0; i < npts; ++i) xv[size_t(i)] = double(i) * step - xm;
    xv.back() = xm;
  }
  // Functions in upstream's order: per rank, mu = sorted |-rank, -rank+2, ..., rank|, nu = (rank - mu)/2;
  // descriptors 'z' (even ranks, mu = 0) then ('r', 'i') pairs.
  std::vector<int64_t> nu;
  for (int64_t rank = 0; rank < N; ++rank) {
    std::vector<int64_t> m;
    for (int64_t v = -rank; v <= rank; v += 2) m.push_back(v < 0 ? -v : v);
    std::sort(m.begin(), m.end());
    for (int64_t v : m) {
      b.mu.push_back(v);
      nu.push_back((rank - v) / 2);
    }
    if (rank % 2 == 0) b.desc.push_back('z');
    for (int64_t k = 0; k < (rank + 1) / 2; ++k) {
      b.desc.push_back('r');
      b.desc.push_back('i');
    }
  }
  const int64_t n = b.size(), P = npts;
  b.H.assign(size_t(n * P * P), 0.0);
  for (int64_t f = 0; f < n; ++f) {
    const int64_t mu = b.mu[size_t(f)], nuf = nu[size_t(f)];
    const std::vector<double> coef = hermite_coefficients(mu, nuf);
    const double norm =
        std::sqrt(std::pow(2.0, double(mu + 2 * nuf)) * M_PI * factorial(mu + nuf) * factorial(nuf));
    double* h = b.H.data() + f * P * P;
    for (int64_t y = 0; y < P; ++y)
      for (int64_t x = 0; x < P; ++x) {
        const double yv = xv[size_t(y)], xx = xv[size_t(x)];
        const double radsq = yv * yv + xx * xx, theta = std::atan2(yv, xx);
        const double gauss = std::exp(-yv * yv / 4.0) * std::exp(-xx * xx / 4.0);
        const double radial = gauss * std::pow(radsq, double(mu) / 2.0) * polyval(radsq, coef) / norm;
        double v;
        switch (b.desc[size_t(f)]) {
          case 'z':
            v = radial * std::cos(double(mu) * theta) / std::sqrt(2.0);
            break;
          case 'r':
            v = radial * std::cos(double(mu) * theta);
            break;
          default:
            v = radial * std::sin(double(mu) * theta);
            break;
        }
        h[y * P + x] = v;
      }
    // Normalise to unit L2 norm on the grid.
    double ss = 0;
    for (int64_t i = 0; i < P * P; ++i) ss += h[i] * h[i];
    if (!(ss > 0) || !std::isfinite(ss))
      throw ConfigError("hermite_2d(" + std::to_string(N) + ", " + std::to_string(npts) +
                        "): basis function " + std::to_string(f) + " (mu " + std::to_string(mu) +
                        ") vanishes or overflows on the grid; use a larger filter_size * upsampling");
    const double s = 1.0 / std::sqrt(ss);
    for (int64_t i = 0; i < P * P; ++i) h[i] *= s;
  }
  return b;
}

std::vector<double> hermite_rotation_matrix(const HermiteBasis& basis, double angle) {
  const int64_t n = basis.size();
  std::vector<double> R(size_t(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const char d = basis.desc[size_t(i)];
    if (d == 'z') {
      R[size_t(i * n + i)] = 1.0;
    } else if (d == 'r') {  // an 'r' is always followed by its 'i'
      const double a = double(basis.mu[size_t(i)]) * angle, c = std::cos(a), s = std::sin(a);
      R[size_t(i * n + i)] = c;
      R[size_t(i * n + i + 1)] = s;
      R[size_t((i + 1) * n + i)] = -s;
      R[size_t((i + 1) * n + i + 1)] = c;
    }
  }
  return R;
}

// ---- HermiteConv2D ------------------------------------------------------------------------------------

void HermiteConv2dParams::validate(const std::string& where) const {
  auto fail = [&](const std::string& what) { throw ConfigError(where + ": HermiteConv2D " + what); };
  if (input_features <= 0 || output_features <= 0)
    fail("input_features " + std::to_string(input_features) + " and output_features " +
         std::to_string(output_features) + " must be positive");
  if (filter_size < 1 || filter_size > kMaxFilterSize)
    fail("filter_size " + std::to_string(filter_size) + " must be in [1, " + std::to_string(kMaxFilterSize) +
         "]");
  if (upsampling < 1 || upsampling > kMaxUpsampling)
    fail("upsampling " + std::to_string(upsampling) + " must be in [1, " + std::to_string(kMaxUpsampling) +
         "]");
  if (num_rotations < 1 || num_rotations > kMaxRotations)
    fail("num_rotations " + std::to_string(num_rotations) + " must be in [1, " +
         std::to_string(kMaxRotations) + "]");
  if (stride < 1) fail("stride " + std::to_string(stride) + " must be positive");
  if (pad_h < 0 || pad_w < 0) fail("padding must be non-negative");
}

namespace {
HermiteConv2dParams validated(HermiteConv2dParams p, const std::string& where) {
  p.validate(where);
  return p;
}
}  // namespace

HermiteConv2D::HermiteConv2D(std::string name, const HermiteConv2dParams& params, double init_std)
    : Layer(std::move(name)), p_(validated(params, label())), init_std_(init_std), conv_(this->name(), [&] {
        // The bank's layout: [out * R, in, k, k], no bias.
        Conv2dParams c = Conv2dParams::square(p_.input_features, p_.output_features * p_.num_rotations,
                                              p_.filter_size, p_.stride, 0, 1, 1, false);
        c.pad_h = p_.pad_h;
        c.pad_w = p_.pad_w;
        return c;
      }()) {
  if (!(init_std_ >= 0) || !std::isfinite(init_std_))
    throw ConfigError(label() + ": init_std " + std::to_string(init_std_) +
                      " must be a finite non-negative number");
  // hermite_2d(k, k * upsampling, 2 * sqrt(k)) as RotateHermite builds it.
  const int64_t k = p_.filter_size;
  basis_ = hermite_2d(k, k * p_.upsampling, 2.0 * std::sqrt(double(k)));
  for (int64_t i = 0; i < p_.num_rotations; ++i)
    rs_.push_back(hermite_rotation_matrix(basis_, double(i) * 2.0 * M_PI / double(p_.num_rotations)));
  coeffs_ = Tensor({p_.n_coeffs(), p_.input_features, p_.output_features});
}

void HermiteConv2D::declare(WeightSpec& spec) const {
  const int64_t n = p_.n_coeffs(), P = basis_.npts;
  spec.expect(key("coeffs"), {n, p_.input_features, p_.output_features});
  spec.expect(key("rotate_hermite.H"), {n, P, P});
  for (int64_t i = 0; i < p_.num_rotations; ++i)
    spec.expect(key("rotate_hermite.Rs." + std::to_string(i)), {n, n});
}

void HermiteConv2D::check_against(const StateDict& sd, const std::string& field,
                                  const std::vector<double>& own) const {
  const Tensor t = sd.get_float(key(field));
  if (t.numel() != int64_t(own.size()))
    throw WeightError(sd.source() + ": " + key(field) + " has " + std::to_string(t.numel()) +
                      " values, expected " + std::to_string(own.size()));
  double diff = 0, mx = 0;
  int64_t where = 0;
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double d = std::fabs(double(t.data()[i]) - own[size_t(i)]);
    if (!(d <= diff)) {  // also catches NaN
      diff = std::isnan(d) ? INFINITY : d;
      where = i;
    }
    mx = std::max(mx, std::fabs(own[size_t(i)]));
  }
  const double tol = 1e-5 * mx;
  if (!(diff <= tol)) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "max|diff| %.3e at flat index %lld > 1e-05 * max|engine's| = %.3e", diff,
                  (long long)where, tol);
    // A stand-alone module has no name: say what it is.
    const std::string what = name().empty() ? std::string(type()) + " " + key(field) : key(field);
    throw WeightError(
        sd.source() + ": " + what + " differs from the " +
        (field == "rotate_hermite.H" ? "Hermite basis hermite_2d(" : "rotation matrix for hermite_2d(") +
        std::to_string(p_.filter_size) + ", " + std::to_string(basis_.npts) + ", 2*sqrt(" +
        std::to_string(p_.filter_size) + ")) the engine computes: " + buf +
        " (the file is not from this layer configuration, or is corrupted)");
  }
}

void HermiteConv2D::load(const StateDict& sd) {
  check_against(sd, "rotate_hermite.H", basis_.H);
  for (int64_t i = 0; i < p_.num_rotations; ++i)
    check_against(sd, "rotate_hermite.Rs." + std::to_string(i), rs_[size_t(i)]);
  Tensor c = sd.get_float(key("coeffs"));
  for (int64_t i = 0; i < c.numel(); ++i)
    if (!std::isfinite(c.data()[i]))
      throw WeightError(sd.source() + ": " + key("coeffs") + " holds a non-finite value at flat index " +
                        std::to_string(i));
  set_coeffs(std::move(c));
}

void HermiteConv2D::init(Rng& rng) {
  rng.fill_normal(coeffs_, 0.0f, float(init_std_));
  bank_ready_ = false;
}

void HermiteConv2D::save(StateDict& sd) const {
  const int64_t n = p_.n_coeffs(), P = basis_.npts;
  sd.add_float(key("coeffs"), coeffs_);
  auto to_float = [](const std::vector<double>& v, const Shape& s) {
    Tensor t(s);
    for (size_t i = 0; i < v.size(); ++i) t.data()[i] = float(v[i]);
    return t;
  };
  sd.add_float(key("rotate_hermite.H"), to_float(basis_.H, {n, P, P}));
  for (int64_t i = 0; i < p_.num_rotations; ++i)
    sd.add_float(key("rotate_hermite.Rs." + std::to_string(i)), to_float(rs_[size_t(i)], {n, n}));
}

void HermiteConv2D::set_coeffs(Tensor coeffs) {
  const Shape want{p_.n_coeffs(), p_.input_features, p_.output_features};
  if (coeffs.shape() != want)
    throw ShapeError(label() + ": coeffs " + coeffs.shape().str() + ", expected " + want.str());
  coeffs_ = coeffs.contiguous() ? std::move(coeffs) : coeffs.clone();
  bank_ready_ = false;
}

Tensor HermiteConv2D::compute_filter_bank() const {
  const int64_t n = p_.n_coeffs(), k = p_.filter_size, up = p_.upsampling, P = basis_.npts;
  const int64_t I = p_.input_features, O = p_.output_features, R = p_.num_rotations, KK = k * k;
  // Downsampling sums each up x up block of the basis; it is linear, so it is done on H first:
  // Hd [n, k, k] = sum_{p,q} H[:, ky*up + p, kx*up + q].
  std::vector<double> Hd(size_t(n * KK), 0.0);
  for (int64_t a = 0; a < n; ++a)
    for (int64_t y = 0; y < P; ++y)
      for (int64_t x = 0; x < P; ++x)
        Hd[size_t(a * KK + (y / up) * k + x / up)] += basis_.H[size_t(a * P * P + y * P + x)];
  std::vector<double> C(size_t(n * I * O));  // coeffs [n, in, out] in double
  for (size_t i = 0; i < C.size(); ++i) C[i] = double(coeffs_.data()[i]);

  // Hidden layers roll the input-channel axis of rotation i's filters by i * (in / R) (upstream's
  // cat(w[shift:], w[:shift]) with shift = in - i * (in / R)): input j reads coefficients of input
  // (j - i * (in / R)) mod in, which pairs the rotation channels of the previous layer with this rotation.
  const int64_t per_rot = I / R;
  Tensor bank({O * R, I, k, k});
  std::vector<double> Crot(size_t(n * I * O));
  std::vector<double> w(static_cast<size_t>(KK));
  for (int64_t r = 0; r < R; ++r) {
    // Crot [n, in, out] = R_r [n, n] @ C [n, in*out]
    const std::vector<double>& Rm = rs_[size_t(r)];
    std::fill(Crot.begin(), Crot.end(), 0.0);
    for (int64_t a = 0; a < n; ++a)
      for (int64_t b = 0; b < n; ++b) {
        const double rab = Rm[size_t(a * n + b)];
        if (rab == 0.0) continue;
        for (int64_t e = 0; e < I * O; ++e) Crot[size_t(a * I * O + e)] += rab * C[size_t(b * I * O + e)];
      }
    const int64_t shift = (r > 0 && !p_.first_layer) ? r * per_rot : 0;
    for (int64_t o = 0; o < O; ++o)
      for (int64_t j = 0; j < I; ++j) {
        const int64_t src = ((j - shift) % I + I) % I;
        // w [k*k] = Hd^T [k*k, n] @ Crot[:, src, o] [n]
        std::fill(w.begin(), w.end(), 0.0);
        for (int64_t a = 0; a < n; ++a) {
          const double c = Crot[size_t(a * I * O + src * O + o)];
          const double* h = Hd.data() + a * KK;
          for (int64_t t = 0; t < KK; ++t) w[size_t(t)] += h[t] * c;
        }
        // output channel r * out + o (rotation-major), [out*R, in, k, k]
        float* dst = bank.data() + ((r * O + o) * I + j) * KK;
        for (int64_t t = 0; t < KK; ++t) dst[t] = float(w[size_t(t)]);
      }
  }
  return bank;
}

std::vector<std::pair<std::string, Tensor>> HermiteConv2D::debug_tensors() const {
  return {{"filter_bank", bank_ready_ ? filter_bank_ : compute_filter_bank()}};
}

void HermiteConv2D::prepare(const EngineOptions& opt) {
  if (!bank_ready_) {
    filter_bank_ = compute_filter_bank();
    conv_.set_weights(filter_bank_, Tensor());
    bank_ready_ = true;
  }
  conv_.prepare(opt);
}

std::unique_ptr<Op> HermiteConv2D::make_op(const Shape& in, const EngineOptions& opt) const {
  if (!bank_ready_) throw UsageError(label() + ": plan() before prepare()");
  return conv_.plan(in, opt);
}

}  // namespace npcore
