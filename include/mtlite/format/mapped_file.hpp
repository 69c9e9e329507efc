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
// Resources, n = the file's size (its header's file_bytes for a pipe or device):
//   mapped          O(1) time and memory up front; pages load as they are touched.
//   regular file    O(n) time, one allocation of exactly n bytes (+ 64 alignment).
//   pipe or device  (no size until its end, maybe no end: /dev/zero) O(n) time, and at most
//                   3n + 128 KiB memory, where n counts only the bytes that actually arrived
//                   (the buffer doubles as they come: old and new copy live together while it
//                   grows). The 64-byte header is read first: a stream without the magic is
//                   refused after 64 bytes; one whose file_bytes exceeds stream_limit() (the
//                   physical memory) is refused before any allocation; reading stops at
//                   file_bytes, and a stream that ends earlier is an error ("truncated").
//   Windows         read_file() reads any file to its end with fread (no devices expected).
//
// A mapped file that another process truncates while it is mapped raises SIGBUS on access; write
// models with FileWriter::write (which replaces files by rename, never in place) to avoid that.
#pragma once

#include <algorithm>
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
#include "mtl.hpp"

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

inline std::size_t read_some(int fd, void* to, std::size_t n, const std::string& path) {
  for (;;) {
    const ssize_t got = ::read(fd, to, n);
    if (got >= 0) return static_cast<std::size_t>(got);
    if (errno != EINTR) file_error("read", path, errno);
  }
}

// Reads until `to` holds n bytes or the input ends; returns how many it holds.
inline std::size_t read_full(int fd, std::byte* to, std::size_t n, const std::string& path) {
  std::size_t done = 0;
  for (std::size_t got; done < n && (got = read_some(fd, to + done, n - done, path)) > 0;) done += got;
  return done;
}

// Physical memory in bytes; the size_t range when the system does not say.
inline std::uint64_t physical_memory() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return std::numeric_limits<std::size_t>::max();
  return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page);
}

// The most a pipe or device may say it holds: it is read into memory, so the physical memory
// (and half the size_t range, so that doubling the buffer cannot wrap).
inline std::uint64_t stream_limit() {
  return std::min<std::uint64_t>(physical_memory(), std::numeric_limits<std::size_t>::max() / 2);
}

// A pipe or device: its size is known only at its end, and it may have none (/dev/zero). So
// the 64-byte header comes first: a stream that is not a model is refused after 64 bytes, and
// one that is says its size in file_bytes, which is refused above stream_limit() before anything
// is allocated for it. The buffer then grows (doubling) only as the bytes arrive, so a header
// that lies costs what the stream really delivers; reading stops at file_bytes.
inline FileBuffer read_stream(int fd, const std::string& path) {
  std::byte head[sizeof(FileHeader)];
  const std::size_t got = read_full(fd, head, sizeof head, path);
  if (got < sizeof head) {  // too short for a model: FileView::parse says so
    FileBuffer buffer(got);
    if (got) std::memcpy(buffer.data(), head, got);
    return buffer;
  }
  if (std::memcmp(head, kMagic, sizeof kMagic) != 0)
    throw Error("cannot read model file '" + path + "': not an mtlite model file (bad magic)");
  std::uint64_t file_bytes;  // little-endian at offset 16
  std::memcpy(&file_bytes, head + offsetof(FileHeader, file_bytes), sizeof file_bytes);
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  file_bytes = __builtin_bswap64(file_bytes);
#endif
  if (file_bytes < sizeof head) {
    throw Error("cannot read model file '" + path + "': the header says " + std::to_string(file_bytes) +
                " bytes, less than the 64-byte header");
  }
  if (file_bytes > stream_limit()) {
    throw Error("cannot read model file '" + path + "': the header says " + std::to_string(file_bytes) +
                " bytes, more than a pipe or device may hold (" + std::to_string(stream_limit()) +
                ", the physical memory); read it from a regular file instead, which is mapped");
  }
  const auto size = static_cast<std::size_t>(file_bytes);
  constexpr std::size_t kChunk = std::size_t{1} << 16;
  FileBuffer buffer(std::min(size, sizeof head + kChunk));
  std::memcpy(buffer.data(), head, sizeof head);
  std::size_t done = sizeof head;
  while (done < size) {
    if (done == buffer.size()) {
      FileBuffer bigger(std::min(size, 2 * done));
      std::memcpy(bigger.data(), buffer.data(), done);
      buffer = std::move(bigger);
    }
    const std::size_t n = read_full(fd, buffer.data() + done, buffer.size() - done, path);
    done += n;
    if (done < buffer.size()) {
      throw Error("cannot read model file '" + path + "': truncated: the header says " + std::to_string(size) +
                  " bytes, the stream ended after " + std::to_string(done));
    }
  }
  return buffer;
}

// Reads a regular file whole (n bytes known from fstat), anything else as a stream.
inline FileBuffer read_fd(int fd, const struct stat& st, const std::string& path) {
  if (!S_ISREG(st.st_mode)) return read_stream(fd, path);
  if (static_cast<std::uint64_t>(st.st_size) > std::numeric_limits<std::size_t>::max()) {
    file_error("read", path, EFBIG);
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  FileBuffer buffer(size);
  const std::size_t done = read_full(fd, buffer.data(), size, path);
  if (done < size) {
    throw Error("cannot read model file '" + path + "': it shrank while being read (" + std::to_string(done) +
                " of " + std::to_string(size) + " bytes)");
  }
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
