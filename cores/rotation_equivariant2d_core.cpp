#include "cores/rotation_equivariant2d_core.h"

#include <cmath>

#include "cores/config_reader.h"
#include "engine/error.h"
#include "layers/batch_norm2d.h"
#include "layers/hermite_conv2d.h"

namespace npcore {

RotationEquivariantOptions parse_rotation_equivariant_options(ConfigReader& r, const Stacked2dOptions& o) {
  RotationEquivariantOptions ro;
  ro.num_rotations = r.get_int("num_rotations", 8);
  if (ro.num_rotations < 1) r.fail("num_rotations", "must be positive");
  ro.upsampling = r.get_int("upsampling", 2);
  if (ro.upsampling < 1) r.fail("upsampling", "must be positive");
  ro.rot_eq_batch_norm = r.get_bool("rot_eq_batch_norm", true);
  ro.init_std = r.get_number("init_std", 0.1);
  if (!(ro.init_std >= 0) || !std::isfinite(ro.init_std))
    r.fail("init_std", "must be a finite non-negative number");
  if (o.skip > 0)
    r.fail("skip", "> 0 is not implemented for RotationEquivariant2dCore (NotImplementedError upstream)");
  // Stacked2dCore arguments this core's layer builders never read upstream: input_stride (layer0 uses
  // `stride`), hidden_dilation, depth_separable and attention_conv (the conv kind is always HermiteConv2D).
  // parse_stacked2d_options has read and validated them; they are accepted and have no effect here.
  return ro;
}

RotationEquivariant2dCore::RotationEquivariant2dCore(const Stacked2dOptions& o,
                                                     const RotationEquivariantOptions& r)
    : Stacked2dCore(o, NoBuild{}), r_(r) {
  if (o_.skip > 0)
    throw ConfigError("RotationEquivariant2dCore: skip " + std::to_string(o_.skip) +
                      " > 0 is not implemented (NotImplementedError upstream)");
  const int64_t R = r_.num_rotations;
  const auto& hc = o_.hidden_channels;
  for (int64_t l = 0; l < o_.layers; ++l) {
    auto layer = std::make_unique<Sequential>("features.layer" + std::to_string(l));
    HermiteConv2dParams p;
    p.output_features = hc[size_t(l)];
    p.num_rotations = R;
    p.upsampling = r_.upsampling;
    p.stride = o_.stride;  // every layer, layer0 included: input_stride is not used
    if (l == 0) {
      p.input_features = o_.input_channels;
      p.filter_size = o_.input_kern;
      p.pad_h = p.pad_w = o_.pad_input ? o_.input_kern / 2 : 0;
      p.first_layer = true;
    } else {
      p.input_features = hc[size_t(l - 1)] * R;
      p.filter_size = o_.hidden_kern[size_t(l - 1)];
      // Upstream sets self.hidden_padding = hidden_kern[l-1] // 2 when it is None, at l = 1, and every
      // later layer reuses it. A given value is used as is (0 included; a pair is (h, w)).
      if (o_.hidden_padding) {
        p.pad_h = o_.hidden_padding->first;
        p.pad_w = o_.hidden_padding->second;
      } else {
        p.pad_h = p.pad_w = o_.hidden_kern[0] / 2;
      }
      p.first_layer = false;
    }
    layer->add(std::make_unique<HermiteConv2D>(layer->key("hermite_conv"), p, r_.init_std));
    if (r_.rot_eq_batch_norm)
      add_norm_layers(*layer, l, R);
    else
      add_plain_norm_layers(*layer, l);
    add_activation(*layer, l);
    blocks_.push_back(std::move(layer));
  }
}

void RotationEquivariant2dCore::add_plain_norm_layers(Sequential& layer, int64_t l) const {
  const size_t i = size_t(l);
  if (!o_.batch_norm[i]) return;
  const int64_t c = o_.hidden_channels[i] * r_.num_rotations;
  const bool bias = o_.bias[i], scale = o_.batch_norm_scale[i];
  layer.add(std::make_unique<BatchNorm2d>(layer.key("norm"), c, bias && scale));
  if (bias && !scale) layer.add(std::make_unique<Bias2d>(layer.key("bias"), c));
  if (!bias && scale) layer.add(std::make_unique<Scale2d>(layer.key("scale"), c));
}

}  // namespace npcore
