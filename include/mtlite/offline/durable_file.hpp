// A file replaced whole or not at all, and kept once commit() returns, through a crash or a
// power cut: written under a temporary name in the target's directory (a rename is atomic only
// within one file system), synced, renamed over the target, then the directory synced so the
// rename itself is on disk. Until commit() succeeds the target is untouched (the old file, or
// none); a failure, or destruction before commit(), removes the temporary file.
//
// A process killed mid-write (SIGKILL, power cut) cannot remove its temporary file, so the next
// DurableFile of the same target does (POSIX): it deletes "<target>.tmp-<pid>" and
// "<target>.tmp-<pid>-<n>" files whose <pid> is no running process (kill(pid, 0) fails with
// ESRCH), and nothing else: not other targets' temporaries, not those of a live process (a
// concurrent writer elsewhere, or this one's), not a file the name merely resembles. Best effort:
// a temporary whose pid was reused by a live process stays until that process is gone, and one
// written from another PID namespace (container) sharing the directory may look dead.
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
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>
#endif

#include "../core/error.hpp"

namespace mtlite {

class DurableFile {
 public:
  explicit DurableFile(std::string path) : path_(std::move(path)), tmp_(temporary_name(path_)) {
#if !defined(_WIN32)
    remove_stale_temporaries();
#endif
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
  std::string directory() const {
    const std::size_t slash = path_.find_last_of('/');
    return slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
  }

  // The pid in "<base>.tmp-<pid>" or "<base>.tmp-<pid>-<n>" (digits only, no sign), else 0.
  static pid_t temporary_pid(const std::string& name, const std::string& prefix) {
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return 0;
    std::size_t i = prefix.size();
    long long pid = 0;
    const std::size_t start = i;
    for (; i < name.size() && name[i] >= '0' && name[i] <= '9'; ++i) {
      pid = pid * 10 + (name[i] - '0');
      if (pid > 0x7fffffff) return 0;
    }
    if (i == start) return 0;
    if (i < name.size()) {  // "-<n>"
      if (name[i] != '-' || i + 1 == name.size()) return 0;
      for (++i; i < name.size(); ++i)
        if (name[i] < '0' || name[i] > '9') return 0;
    }
    return static_cast<pid_t>(pid);  // 0 when the digits were all zeros: never signalled
  }

  // Best effort, errors ignored: a temporary that cannot be listed or removed stays, as before.
  void remove_stale_temporaries() const {
    const std::size_t slash = path_.find_last_of('/');
    const std::string prefix = path_.substr(slash == std::string::npos ? 0 : slash + 1) + ".tmp-";
    const std::string dir = directory();
    DIR* d = ::opendir(dir.c_str());
    if (!d) return;
    const pid_t self = ::getpid();
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      const pid_t pid = temporary_pid(name, prefix);
      // pid > 0 always: kill(0, ...) and kill(-1, ...) would mean process groups.
      if (pid <= 0 || pid == self) continue;
      if (::kill(pid, 0) == -1 && errno == ESRCH) (void)::unlink((dir + "/" + name).c_str());
    }
    ::closedir(d);
  }

  // Best effort: some file systems refuse to sync a directory, and the file is complete anyway.
  void sync_directory() const {
    const std::string dir = directory();
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
