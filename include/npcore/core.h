#pragma once
// npcore::CoreHandle: a neuralpredictors core (Stacked2dCore, SE2dCore, RotationEquivariant2dCore,
// TransferLearningCore) loaded from its JSON description and its PyTorch weights, ready to run on
// caller memory. The public C++ API; npcore/npcore_c.h is the same for C and FFI.
//
//   npcore::CoreHandle core = npcore::CoreHandle::load("core.json", "core.pth");
//   npcore::Shape4 out = core.output_shape({1, 1, 64, 64});
//   core.forward(x, {1, 1, 64, 64}, y, y_floats);   // NCHW float32, C order
//
// A whole model (core + readouts + shifter + nonlinearity) is a ModelHandle (npcore/model.h), with the
// same shape of interface (load, shapes, forward into caller memory, options).
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "npcore/error.h"
#include "npcore/export.h"

namespace npcore {

// An NCHW shape: batch, channels, height, width.
using Shape4 = std::array<int64_t, 4>;

// The version of the library linked (NPCORE_VERSION_STRING of npcore/version.h is the headers' one).
NPCORE_API const char* version();

// How a core is prepared and run. Each handle has its own; the library never changes OpenMP's
// process-wide settings (omp_set_num_threads) of the program.
struct CoreOptions {
  std::string backend = "native";  // "native" (fastest), "onednn", "gemm", "reference" (direct loops)
  int threads = 0;                 // threads per forward call; 0: OpenMP's default (omp_get_max_threads())
  bool winograd = true;            // native backend: Winograd for eligible 3x3/5x5/7x7 convolutions
  bool fuse = true;                // fold norms and activations into convolutions
  std::string isa = "auto";        // native kernels: "auto" (the CPU's best, or $NPCORE_ISA), "avx512",
                                   // "avx2", "generic"; an ISA the CPU lacks is a ConfigError
  std::string precision = "accurate";  // "accurate" (at least PyTorch float32's accuracy; Winograd for
                                       // 3x3 only) or "fast" (Winograd also for 5x5 and 7x7; docs/ACCURACY.md)
};

class NPCORE_API CoreHandle {
 public:
  // Reads the core's description (JSON file {"core": "Stacked2dCore", "config": {...}}) and its
  // state_dict (.safetensors, or a torch.save checkpoint .pth), loaded strictly, and prepares it.
  // Throws ConfigError, FormatError, WeightError (messages name the file and key), BackendError.
  static CoreHandle load(const std::string& config_path, const std::string& weights_path,
                         const CoreOptions& options = {});
  // The same with the description given as JSON text.
  static CoreHandle load_from_string(const std::string& config_json, const std::string& weights_path,
                                     const CoreOptions& options = {});

  CoreHandle(CoreHandle&&) noexcept;
  CoreHandle& operator=(CoreHandle&&) noexcept;
  ~CoreHandle();

  // The neuralpredictors class name, e.g. "Stacked2dCore".
  std::string type() const;
  // The input channels the core takes (C of the NCHW input).
  int64_t input_channels() const;
  // The output shape for an NCHW input shape; throws ShapeError naming the block that cannot take it.
  Shape4 output_shape(const Shape4& input_shape) const;
  const CoreOptions& options() const;

  // Plans for an input shape ahead of time (buffers, kernels), so that even the first forward() with it
  // allocates nothing. forward() does this itself for a shape it has not seen.
  void prepare(const Shape4& input_shape);
  // Runs the core on `input` (NCHW float32, C order, shape `input_shape`) and writes the output
  // (output_shape(input_shape), C order) to `output`, which holds `output_floats` floats. After the first
  // call for a shape (or prepare()), a call allocates nothing on the native, gemm and reference backends.
  // `output` must not overlap `input` (it holds intermediate block outputs during the call). Throws
  // UsageError for a null pointer, too small an output or one overlapping the input, ShapeError for a shape
  // the core cannot take. Not safe to call on one handle from two threads at once: give each thread its own handle.
  void forward(const float* input, const Shape4& input_shape, float* output, size_t output_floats);
  // Convenience: allocates and returns the output.
  std::vector<float> forward(const float* input, const Shape4& input_shape);

 private:
  struct Impl;
  explicit CoreHandle(std::unique_ptr<Impl> impl);
  Impl& impl() const;  // throws UsageError on a moved-from handle
  std::unique_ptr<Impl> impl_;
};

}  // namespace npcore
