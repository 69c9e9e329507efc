// Peak memory of one piece of work, for the tests of the readers' resource limits: the work runs
// in a forked child, which reports how far its peak resident set rose above where it started
// (ru_maxrss after the fork is the parent's current resident set, not its history), so the
// figure is the work's own, whatever the test process did before.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

namespace mtlite_test {

struct ChildRun {
  long peak_kib = -1;     // rise of the child's peak RSS over its start, KiB
  double seconds = 0;     // wall time of the work
  std::string error;      // what() of the exception the work threw; "" when it returned
  bool exited = false;    // false: the child crashed or reported nothing
};

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

// What a peak may exceed a reader's stated bound by: the child's own odds and ends (page tables,
// stdio, the exception) and, under ASan, its shadow memory (1/8 of what is touched) and
// allocator caches, which are several MiB before the reader allocates anything.
inline long rss_slack_kib(long bound_kib) { return kSanitized ? 16384 + bound_kib / 4 : 4096; }

// Runs work() in a child; anything it throws is caught there and reported. The child is killed
// (SIGALRM) after `seconds`, and its address space is capped at `address_space` bytes (not under
// ASan, whose shadow memory is terabytes of address space), so that a reader without limits
// fails the test instead of filling the machine.
template <class F>
ChildRun run_in_child(F&& work, unsigned seconds = 20, std::uint64_t address_space = std::uint64_t{1} << 30) {
  ChildRun out;
  int fds[2];
  if (::pipe(fds) != 0) return out;
  std::fflush(nullptr);  // the child must not flush the parent's buffered output again
  const pid_t pid = ::fork();
  if (pid < 0) return out;
  if (pid == 0) {
    ::close(fds[0]);
    ::alarm(seconds);
    if (!kSanitized) {
      struct rlimit cap;
      cap.rlim_cur = cap.rlim_max = static_cast<rlim_t>(address_space);
      ::setrlimit(RLIMIT_AS, &cap);
    }
    struct rusage before, after;
    ::getrusage(RUSAGE_SELF, &before);
    const auto t0 = std::chrono::steady_clock::now();
    std::string error;
    try {
      work();
    } catch (const std::exception& e) {
      error = e.what();
      if (error.empty()) error = "(empty what())";
    } catch (...) {
      error = "(not a std::exception)";
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ::getrusage(RUSAGE_SELF, &after);
    const long peak = after.ru_maxrss - before.ru_maxrss;  // KiB on Linux
    std::string msg = std::to_string(peak) + " " + std::to_string(seconds) + " " + error;
    for (std::size_t done = 0; done < msg.size();) {
      const ssize_t n = ::write(fds[1], msg.data() + done, msg.size() - done);
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string msg;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) msg.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || msg.empty()) return out;
  out.exited = true;
  std::size_t a = msg.find(' '), b = msg.find(' ', a + 1);
  out.peak_kib = std::stol(msg.substr(0, a));
  out.seconds = std::stod(msg.substr(a + 1, b - a - 1));
  out.error = msg.substr(b + 1);
  return out;
}

}  // namespace mtlite_test
