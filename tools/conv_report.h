#pragma once
// How `npcore check` and `npcore bench` report the convolutions a plan runs: per convolution its layer,
// parameters, input shape, backend, algorithm and ISA (Plan::convs, Op::list_convs). The algorithm is the
// name the backend gives its choice (native_algorithm for the native backend), never a list kept here, so
// that a new algorithm shows up in the reports as it is added. Also the CPU's model name, printed beside
// timings.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "layers/layer.h"

namespace npcore::tool {

// The ISA a convolution ran with, as reported: native's resolved ISA; "-" for backends whose kernels
// are not ours (gemm: Eigen, onednn: oneDNN, reference: scalar loops).
inline const char* conv_isa_name(const ConvRun& c) { return c.backend == Backend::Native ? isa_name(c.isa) : "-"; }

inline nlohmann::json conv_json(const ConvRun& c) {
  const Conv2dParams& p = c.params;
  return {{"layer", c.layer},
          {"in_channels", p.in_channels},
          {"out_channels", p.out_channels},
          {"kernel", {p.kernel_h, p.kernel_w}},
          {"stride", {p.stride_h, p.stride_w}},
          {"padding", {p.pad_h, p.pad_w}},
          {"dilation", {p.dilation_h, p.dilation_w}},
          {"groups", p.groups},
          {"input_shape", std::vector<int64_t>(c.in.begin(), c.in.end())},
          {"backend", backend_name(c.backend)},
          {"algorithm", c.algorithm},
          {"isa", c.backend == Backend::Native ? nlohmann::json(isa_name(c.isa)) : nlohmann::json()}};
}

inline nlohmann::json convs_json(const std::vector<ConvRun>& convs) {
  nlohmann::json a = nlohmann::json::array();
  for (const ConvRun& c : convs) a.push_back(conv_json(c));
  return a;
}

// "3 winograd, 1 direct (avx2)": how many convolutions ran with each algorithm, in order of first use,
// with the ISA(s) they ran with.
inline std::string convs_summary(const std::vector<ConvRun>& convs) {
  if (convs.empty()) return "no convolutions";
  std::vector<std::pair<std::string, int>> counts;
  std::vector<std::string> isas;
  for (const ConvRun& c : convs) {
    auto it = std::find_if(counts.begin(), counts.end(), [&](const auto& e) { return e.first == c.algorithm; });
    if (it == counts.end())
      counts.emplace_back(c.algorithm, 1);
    else
      ++it->second;
    const std::string isa = conv_isa_name(c);
    if (isa != "-" && std::find(isas.begin(), isas.end(), isa) == isas.end()) isas.push_back(isa);
  }
  std::string s;
  for (const auto& [name, n] : counts) s += (s.empty() ? "" : ", ") + std::to_string(n) + " " + name;
  if (!isas.empty()) {
    s += " (ISA ";
    for (size_t i = 0; i < isas.size(); ++i) s += (i ? "/" : "") + isas[i];
    s += ")";
  }
  return s;
}

// One line per convolution, each starting with `indent`.
inline void print_convs(const std::vector<ConvRun>& convs, const char* indent) {
  for (const ConvRun& c : convs)
    std::printf("%s%-40s %-52s in %-20s %-10s %s\n", indent, c.layer.c_str(), c.params.str().c_str(),
                c.in.str().c_str(), c.algorithm.c_str(), conv_isa_name(c));
}

// The CPU's model name from /proc/cpuinfo ("AMD EPYC 7571"), or "unknown".
inline std::string cpu_model_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        size_t b = line.find_first_not_of(" \t", colon + 1);
        return b == std::string::npos ? "unknown" : line.substr(b);
      }
    }
  return "unknown";
}

}  // namespace npcore::tool
