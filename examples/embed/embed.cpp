// examples/embed: a program built against an installed npcore. It loads a core, then runs a frame loop
// as a real-time experiment controller would: one image per frame, into a buffer it owns, printing the
// latency of each frame and, at the end, the minimum and median.
//
//   embed CORE.json WEIGHTS [FRAMES [HEIGHT WIDTH [THREADS]]]
#include <npcore/npcore.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s CORE.json WEIGHTS [FRAMES [HEIGHT WIDTH [THREADS]]]\n", argv[0]);
    return 2;
  }
  const int frames = argc > 3 ? std::atoi(argv[3]) : 10;
  const int64_t height = argc > 5 ? std::atoll(argv[4]) : 64, width = argc > 5 ? std::atoll(argv[5]) : 64;
  try {
    npcore::CoreOptions options;
    options.threads = argc > 6 ? std::atoi(argv[6]) : 1;
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
    std::vector<double> ms;
    for (int f = 0; f < frames; ++f) {
      for (size_t i = 0; i < image.size(); ++i)
        image[i] = float((i * 7 + size_t(f) * 13) % 101) / 101.0f - 0.5f;
      const auto t0 = std::chrono::steady_clock::now();
      core.forward(image.data(), in_shape, response.data(), response.size());
      const auto t1 = std::chrono::steady_clock::now();
      ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      std::printf("frame %d: %.3f ms, response[0] = %.6f\n", f, ms.back(), double(response[0]));
    }
    if (!ms.empty()) {
      std::sort(ms.begin(), ms.end());
      std::printf("%d frames: min %.3f ms, median %.3f ms\n", frames, ms.front(), ms[ms.size() / 2]);
    }
  } catch (const npcore::Error& e) {
    std::fprintf(stderr, "embed: %s\n", e.what());
    return 1;
  }
  return 0;
}
