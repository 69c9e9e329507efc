// Two ways to fail. Building things (specs, weights, models, sessions) may allocate and throws
// mtlite::Error with a message that names the field at fault. The predict path may not allocate or
// throw, so it returns a Status whose message lives in the Session's own buffer.
#pragma once

#include <cstdarg>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace mtlite {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// An Error about one tensor, by mtlite's name for it: "tensor '<name>': <problem>". A caller that
// knows the tensor by another name (a weights file's own, through model.json's "tensors") can
// say both.
class TensorError : public Error {
 public:
  TensorError(const std::string& tensor, const std::string& problem)
      : Error("tensor '" + tensor + "': " + problem), tensor_(tensor), problem_(problem) {}
  const std::string& tensor() const noexcept { return tensor_; }
  const std::string& problem() const noexcept { return problem_; }

 private:
  std::string tensor_, problem_;
};

enum class StatusCode {
  ok = 0,
  too_many_rows,   // more rows than the Session was made for
  wrong_size,      // an input array's length disagrees with rows x features
  not_finite,      // a dense feature is NaN or infinite
  bad_bag,         // multi-hot offsets are not monotonic or point past the ids
  overflow,        // a score is NaN or infinite: the activations overflowed (huge weights or inputs)
};

class Status {
 public:
  Status() noexcept = default;
  Status(StatusCode code, const char* message) noexcept : code_(code), message_(message) {}

  bool ok() const noexcept { return code_ == StatusCode::ok; }
  explicit operator bool() const noexcept { return ok(); }
  StatusCode code() const noexcept { return code_; }
  // Valid until the next call on the Session that produced it.
  const char* message() const noexcept { return message_; }

 private:
  StatusCode code_ = StatusCode::ok;
  const char* message_ = "ok";
};

namespace internal {

// printf into a fixed buffer: error text without heap allocation.
template <std::size_t N>
inline const char* format_to(char (&buf)[N], const char* fmt, ...) noexcept {
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, N, fmt, args);
  va_end(args);
  return buf;
}

inline std::string printf_string(const char* fmt, ...) {
  va_list args, again;
  va_start(args, fmt);
  va_copy(again, args);
  const int n = std::vsnprintf(nullptr, 0, fmt, args);
  va_end(args);
  std::string out(n > 0 ? static_cast<std::size_t>(n) : 0, '\0');
  if (n > 0) std::vsnprintf(out.data(), out.size() + 1, fmt, again);
  va_end(again);
  return out;
}

}  // namespace internal
}  // namespace mtlite
