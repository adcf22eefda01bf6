// examples/embed: a program built against an installed npcore. It loads a core (or, with --model, a whole
// model), then runs a frame loop as a real-time experiment controller would: one image per frame, into a
// buffer it owns, printing the latency of each frame and, at the end, the minimum and median. A model
// gives the firing rates of every data_key per frame (zero pupil positions where it has a shifter).
//
//   embed [--model] CONFIG.json WEIGHTS [FRAMES [HEIGHT WIDTH [THREADS]]]
#include <npcore/npcore.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace {

// Fills the image and calls `run` `frames` times, printing each latency and the summary.
void frame_loop(int frames, std::vector<float>& image, const std::function<float()>& run) {
  std::vector<double> ms;
  for (int f = 0; f < frames; ++f) {
    for (size_t i = 0; i < image.size(); ++i)
      image[i] = float((i * 7 + size_t(f) * 13) % 101) / 101.0f - 0.5f;
    const auto t0 = std::chrono::steady_clock::now();
    const float first = run();
    const auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    std::printf("frame %d: %.3f ms, response[0] = %.6f\n", f, ms.back(), double(first));
  }
  if (!ms.empty()) {
    std::sort(ms.begin(), ms.end());
    std::printf("%d frames: min %.3f ms, median %.3f ms\n", frames, ms.front(), ms[ms.size() / 2]);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool model_mode = argc > 1 && std::strcmp(argv[1], "--model") == 0;
  if (model_mode) {
    --argc;
    ++argv;
  }
  if (argc < 3) {
    std::fprintf(stderr, "usage: embed [--model] CONFIG.json WEIGHTS [FRAMES [HEIGHT WIDTH [THREADS]]]\n");
    return 2;
  }
  const int frames = argc > 3 ? std::atoi(argv[3]) : 10;
  const int64_t height = argc > 5 ? std::atoll(argv[4]) : 64, width = argc > 5 ? std::atoll(argv[5]) : 64;
  try {
    npcore::CoreOptions options;
    options.threads = argc > 6 ? std::atoi(argv[6]) : 1;
    if (model_mode) {
      npcore::ModelHandle model = npcore::ModelHandle::load(argv[1], argv[2], options);
      const npcore::Shape4 in_shape{1, model.input_channels(), height, width};
      const std::vector<std::string> keys = model.data_keys();
      std::printf("npcore %s: FiringRateEncoder(%s), input [1, %lld, %lld, %lld] ->", npcore::version(),
                  model.core_type().c_str(), (long long)in_shape[1], (long long)height, (long long)width);
      std::vector<std::vector<float>> rates;
      std::vector<float*> outputs;
      std::vector<size_t> sizes;
      for (const std::string& key : keys) {
        std::printf(" %s [1, %lld]", key.c_str(), (long long)model.neurons(key));
        rates.emplace_back(size_t(model.neurons(key)));
      }
      std::printf("%s\n", model.needs_pupil() ? " (pupil positions: 0, 0)" : "");
      for (std::vector<float>& r : rates) {
        outputs.push_back(r.data());
        sizes.push_back(r.size());
      }
      std::vector<float> image(size_t(in_shape[1] * height * width));
      const std::vector<float> pupil(size_t(model.pupil_channels()), 0.0f);
      model.prepare(in_shape);  // plans and allocates now, so that no frame does
      frame_loop(frames, image, [&] {
        model.forward_all(image.data(), in_shape, pupil.data(), pupil.size(), outputs.data(), sizes.data(),
                          outputs.size());
        return rates[0][0];
      });
      return 0;
    }
    npcore::CoreHandle core = npcore::CoreHandle::load(argv[1], argv[2], options);
    const npcore::Shape4 in_shape{1, core.input_channels(), height, width};
    const npcore::Shape4 out_shape = core.output_shape(in_shape);
    std::printf("npcore %s: %s, input [1, %lld, %lld, %lld] -> output [%lld, %lld, %lld, %lld]\n",
                npcore::version(), core.type().c_str(), (long long)in_shape[1], (long long)height,
                (long long)width, (long long)out_shape[0], (long long)out_shape[1], (long long)out_shape[2],
                (long long)out_shape[3]);
    std::vector<float> image(size_t(in_shape[1] * height * width));
    std::vector<float> response(size_t(out_shape[0] * out_shape[1] * out_shape[2] * out_shape[3]));
    core.prepare(in_shape);  // plans and allocates now, so that no frame does
    frame_loop(frames, image, [&] {
      core.forward(image.data(), in_shape, response.data(), response.size());
      return response[0];
    });
  } catch (const npcore::Error& e) {
    std::fprintf(stderr, "embed: %s\n", e.what());
    return 1;
  }
  return 0;
}
