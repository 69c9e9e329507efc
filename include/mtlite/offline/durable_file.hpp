// A file replaced whole or not at all, and kept once commit() returns, through a crash or a
// power cut: written under a temporary name in the target's directory (a rename is atomic only
// within one file system), synced, renamed over the target, then the directory synced so the
// rename itself is on disk. Until commit() succeeds the target is untouched (the old file, or
// none); a failure, or destruction before commit(), removes the temporary file.
//
//   DurableFile file("model.mtl");
//   file.write(bytes, n);   // as often as needed
//   file.commit();
//
// Errors are mtlite::Error naming the target and the system's reason:
// "cannot write 'model.mtl': No space left on device", "cannot replace 'x': Is a directory".
#pragma once

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <string>
#include <system_error>

#if defined(_WIN32)
#include <io.h>
#include <process.h>
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#else
#include <fcntl.h>
#include <unistd.h>
#endif

#include "../core/error.hpp"

namespace mtlite {

class DurableFile {
 public:
  explicit DurableFile(std::string path) : path_(std::move(path)), tmp_(temporary_name(path_)) {
    // fopen, not mkstemp: the file gets the permissions a plain create gives (0666 less umask).
    file_ = std::fopen(tmp_.c_str(), "wb");
    if (!file_) fail("cannot write", errno);
  }
  DurableFile(const DurableFile&) = delete;
  DurableFile& operator=(const DurableFile&) = delete;
  ~DurableFile() {
    if (file_) std::fclose(file_);
    if (!committed_) std::remove(tmp_.c_str());
  }

  void write(const void* data, std::size_t n) {
    errno = 0;
    if (n > 0 && std::fwrite(data, 1, n, file_) != n) fail("cannot write", errno);
  }

  // The stream, for a writer that needs its descriptor (zlib's gzdopen on a dup of fileno):
  // whatever goes through it before commit() is synced with the rest.
  std::FILE* stream() const noexcept { return file_; }

  void commit() {
    errno = 0;
    if (std::fflush(file_) != 0) fail("cannot write", errno);
#if defined(_WIN32)
    if (_commit(_fileno(file_)) != 0) fail("cannot write", errno);
#else
    if (::fsync(::fileno(file_)) != 0) fail("cannot write", errno);
#endif
    std::FILE* f = file_;
    file_ = nullptr;
    if (std::fclose(f) != 0) fail("cannot write", errno);
#if defined(_WIN32)
    if (!MoveFileExA(tmp_.c_str(), path_.c_str(), MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH))
      fail("cannot replace", EACCES);
#else
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) fail("cannot replace", errno);
    sync_directory();
#endif
    committed_ = true;
  }

 private:
  // "<path>.tmp-<pid>-<n>": unique among processes and among the files one process writes at once.
  static std::string temporary_name(const std::string& path) {
    static std::atomic<unsigned> count{0};
#if defined(_WIN32)
    const long pid = _getpid();
#else
    const long pid = ::getpid();
#endif
    return path + ".tmp-" + std::to_string(pid) + "-" + std::to_string(count++);
  }

#if !defined(_WIN32)
  // Best effort: some file systems refuse to sync a directory, and the file is complete anyway.
  void sync_directory() const {
    const std::size_t slash = path_.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
      (void)::fsync(fd);
      ::close(fd);
    }
  }
#endif

  [[noreturn]] void fail(const char* what, int err) const {
    throw Error(std::string(what) + " '" + path_ + "': " + std::system_category().message(err ? err : EIO));
  }

  std::string path_, tmp_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

}  // namespace mtlite
