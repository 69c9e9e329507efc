// A progress bar on stderr for long work, only when stderr is a terminal (logs and pipes get the
// commands' plain per-stage lines instead):
//   epoch 2/10 [##########..........]  50%  812.4k rows/s  ETA 0:07  loss 0.2231
// Redrawn at most five times a second; cleared when done or destroyed.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <unistd.h>

namespace cli {

class ProgressBar {
 public:
  // `enabled` = false keeps it silent (too little work to be worth a bar, or --json).
  ProgressBar(std::string label, std::uint64_t total, const char* unit, bool enabled = true)
      : label_(std::move(label)), unit_(unit), total_(total), enabled_(enabled && ::isatty(STDERR_FILENO)),
        start_(std::chrono::steady_clock::now()) {}
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  ~ProgressBar() { clear(); }

  void update(std::uint64_t done, const std::string& note = "") {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (shown_ && now - last_ < std::chrono::milliseconds(200) && done < total_) return;
    last_ = now;
    shown_ = true;
    const double seconds = std::chrono::duration<double>(now - start_).count();
    const double fraction = total_ ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
    const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0.0;
    char bar[kWidth + 1];
    const int filled = static_cast<int>(fraction * kWidth + 0.5);
    for (int i = 0; i < kWidth; ++i) bar[i] = i < filled ? '#' : '.';
    bar[kWidth] = '\0';
    std::string eta = "-:--";
    if (rate > 0 && done <= total_) eta = clock(static_cast<double>(total_ - done) / rate);
    std::fprintf(stderr, "\r%s [%s] %3.0f%%  %s %s/s  ETA %s  %s\033[K", label_.c_str(), bar, 100.0 * fraction,
                 count(rate).c_str(), unit_, eta.c_str(), note.c_str());
    std::fflush(stderr);
  }

  void clear() {
    if (!shown_) return;
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    shown_ = false;
  }

  // 1234567 -> "1.23M", 81234 -> "81.2k"
  static std::string count(double v) {
    char buf[32];
    if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
    else if (v >= 1e3) std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
    else std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  // 75.2 -> "1:15", 3700 -> "1:01:40"
  static std::string clock(double seconds) {
    const long s = static_cast<long>(seconds + 0.5);
    char buf[32];
    if (s >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
    return buf;
  }

 private:
  static constexpr int kWidth = 20;
  std::string label_;
  const char* unit_;
  std::uint64_t total_;
  bool enabled_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point start_, last_{};
};

}  // namespace cli
