// A model file's bytes in memory, for FileView::parse (reader.hpp).
//
//   MappedFile::open(path)  maps the file read-only (POSIX mmap, MAP_PRIVATE): no copy, pages load
//                           on first touch and are shared with other processes mapping the file.
//                           Where mapping is impossible (Windows, empty files, pipes, file systems
//                           without mmap) it reads the file into a 64-byte aligned buffer instead;
//                           mapped() tells which happened.
//   read_file(path)         always reads into a 64-byte aligned buffer the caller owns.
// Either way data() is 64-byte aligned (mmap returns page-aligned memory), so tensors at 64-byte
// file offsets are 64-byte aligned in memory, as the kernels want.
//
// Errors name the path: "cannot open model file 'x': No such file or directory".
//
// A mapped file that another process truncates while it is mapped raises SIGBUS on access; write
// models with FileWriter::write (which replaces files by rename, never in place) to avoid that.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "../core/aligned_buffer.hpp"
#include "../core/error.hpp"

#if !defined(_WIN32)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace mtlite::format {

using FileBuffer = AlignedBuffer<std::byte>;

namespace detail {

inline std::string errno_text(int err) { return std::system_category().message(err); }

[[noreturn]] inline void file_error(const char* verb, const std::string& path, int err) {
  throw Error(std::string("cannot ") + verb + " model file '" + path + "': " + errno_text(err));
}

#if !defined(_WIN32)
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

inline void open_file(const std::string& path, Fd& fd, struct stat& st) {
  do {
    fd.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd.fd < 0 && errno == EINTR);
  if (fd.fd < 0) file_error("open", path, errno);
  if (::fstat(fd.fd, &st) != 0) file_error("open", path, errno);
  if (S_ISDIR(st.st_mode)) file_error("open", path, EISDIR);
}

// Reads n bytes (all of them) or to the end of the file (when n is unknown).
inline FileBuffer read_fd(int fd, const struct stat& st, const std::string& path) {
  auto read_some = [&](void* to, std::size_t n) -> std::size_t {
    for (;;) {
      const ssize_t got = ::read(fd, to, n);
      if (got >= 0) return static_cast<std::size_t>(got);
      if (errno != EINTR) file_error("read", path, errno);
    }
  };
  if (S_ISREG(st.st_mode)) {
    if (static_cast<std::uint64_t>(st.st_size) > std::numeric_limits<std::size_t>::max()) {
      file_error("read", path, EFBIG);
    }
    const auto size = static_cast<std::size_t>(st.st_size);
    FileBuffer buffer(size);
    std::size_t done = 0;
    while (done < size) {
      const std::size_t got = read_some(buffer.data() + done, size - done);
      if (got == 0) {
        throw Error("cannot read model file '" + path + "': it shrank while being read (" + std::to_string(done) +
                    " of " + std::to_string(size) + " bytes)");
      }
      done += got;
    }
    return buffer;
  }
  // A pipe or device: the size is known only at the end.
  std::vector<std::byte> all, chunk(1 << 16);
  for (std::size_t got; (got = read_some(chunk.data(), chunk.size())) > 0;)
    all.insert(all.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(got));
  FileBuffer buffer(all.size());
  if (!all.empty()) std::memcpy(buffer.data(), all.data(), all.size());
  return buffer;
}
#endif

}  // namespace detail

// The whole file in a 64-byte aligned buffer.
inline FileBuffer read_file(const std::string& path) {
#if defined(_WIN32)
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) detail::file_error("open", path, errno);
  std::vector<std::byte> all, chunk(1 << 16);
  for (std::size_t got; (got = std::fread(chunk.data(), 1, chunk.size(), f)) > 0;)
    all.insert(all.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(got));
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (failed) detail::file_error("read", path, err);
  FileBuffer buffer(all.size());
  if (!all.empty()) std::memcpy(buffer.data(), all.data(), all.size());
  return buffer;
#else
  detail::Fd fd;
  struct stat st;
  detail::open_file(path, fd, st);
  return detail::read_fd(fd.fd, st, path);
#endif
}

class MappedFile {
 public:
  MappedFile() noexcept = default;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept { *this = std::move(other); }
  MappedFile& operator=(MappedFile&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
      mapped_ = std::exchange(other.mapped_, false);
      buffer_ = std::move(other.buffer_);
    }
    return *this;
  }
  ~MappedFile() { release(); }

  // Throws mtlite::Error("cannot open model file '<path>': <reason>") and the like.
  static MappedFile open(const std::string& path) {
    MappedFile out;
#if !defined(_WIN32)
    detail::Fd fd;
    struct stat st;
    detail::open_file(path, fd, st);
    if (S_ISREG(st.st_mode) && st.st_size > 0 &&
        static_cast<std::uint64_t>(st.st_size) <= std::numeric_limits<std::size_t>::max()) {
      const auto size = static_cast<std::size_t>(st.st_size);
      void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.fd, 0);
      if (p != MAP_FAILED) {
        out.data_ = static_cast<const std::byte*>(p);
        out.size_ = size;
        out.mapped_ = true;
        return out;
      }
    }
    out.buffer_ = detail::read_fd(fd.fd, st, path);
#else
    out.buffer_ = read_file(path);
#endif
    out.data_ = out.buffer_.data();
    out.size_ = out.buffer_.size();
    return out;
  }

  const std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  // True when the bytes are the kernel's mapping of the file, false when they were read.
  bool mapped() const noexcept { return mapped_; }

 private:
  void release() noexcept {
#if !defined(_WIN32)
    if (mapped_) ::munmap(const_cast<std::byte*>(data_), size_);
#endif
    data_ = nullptr;
    size_ = 0;
    mapped_ = false;
    buffer_ = FileBuffer();
  }

  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  bool mapped_ = false;
  FileBuffer buffer_;
};

}  // namespace mtlite::format
