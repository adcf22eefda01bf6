#pragma once
// A progress line on stderr for work that takes more than a couple of seconds (convert, demo, long
// benchmarks): shown only when stderr is a terminal, rewritten in place ("\r") at most a few times a
// second, and erased when done, so that stdout and logs stay clean.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace npcore::tool {

class Progress {
 public:
  explicit Progress(std::string what) : what_(std::move(what)), tty_(::isatty(2) == 1) {}
  ~Progress() { done(); }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Shows "what: text" (and, with total > 0, "done/total"), at most every 200 ms; `force` shows it now.
  void update(const std::string& text, int done = 0, int total = 0, bool force = false) {
    if (!tty_) return;
    const auto now = std::chrono::steady_clock::now();
    if (!force && shown_ && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    shown_ = true;
    if (total > 0)
      std::fprintf(stderr, "\r\033[K%s: %s %d/%d", what_.c_str(), text.c_str(), done, total);
    else
      std::fprintf(stderr, "\r\033[K%s: %s", what_.c_str(), text.c_str());
    std::fflush(stderr);
  }
  // Erases the line.
  void done() {
    if (tty_ && shown_) {
      std::fprintf(stderr, "\r\033[K");
      std::fflush(stderr);
    }
    shown_ = false;
  }

 private:
  std::string what_;
  bool tty_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace npcore::tool
