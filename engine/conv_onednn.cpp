// PLACEHOLDER while the oneDNN backend is written.
#include "engine/conv.h"
#include "engine/error.h"
namespace npcore {
bool onednn_conv_supported(const ConvSpec&, const Shape&, std::string* why) { if (why) *why = "not built yet"; return false; }
std::unique_ptr<ConvKernel> make_onednn_conv(const ConvSpec&, const Shape&) { throw BackendError("onednn: not built yet"); }
}  // namespace npcore
