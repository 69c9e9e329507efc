#include "csv.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <limits>
#include <unistd.h>

namespace mtlite::data {

// Bytes of the file, inflated when it starts with the gzip magic. Concatenated gzip members (what
// `cat a.gz b.gz` or pigz produce) read as one stream.
class CsvReader::Source {
 public:
  explicit Source(const std::string& path) : path_(path) {
    if (path == "-") {
      fd_ = 0;
      own_ = false;
    } else {
      fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd_ < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
    }
    in_.resize(1 << 18);
    // Sniff the magic: read until two bytes are in or the input ends.
    while (in_len_ < 2 && !in_eof_) raw_fill();
    gzip_ = in_len_ >= 2 && in_[0] == 0x1f && in_[1] == 0x8b;
    if (gzip_) {
      std::memset(&zs_, 0, sizeof zs_);
      if (inflateInit2(&zs_, 15 + 16) != Z_OK) throw Error(path_ + ": gzip: cannot initialise zlib");
      zs_.next_in = in_.data();
      zs_.avail_in = static_cast<uInt>(in_len_);
    }
  }
  ~Source() {
    if (gzip_) inflateEnd(&zs_);
    if (own_ && fd_ >= 0) ::close(fd_);
  }
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;

  bool gzip() const noexcept { return gzip_; }

  // The size of the text if the file says: its own size, or the gzip trailer's ISIZE.
  std::uint64_t size_hint() const noexcept {
    struct stat st;
    if (fd_ < 0 || ::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    if (!gzip_) return static_cast<std::uint64_t>(st.st_size);
    unsigned char t[4];
    if (st.st_size < 18 || ::pread(fd_, t, 4, st.st_size - 4) != 4) return 0;
    return std::uint64_t{t[0]} | std::uint64_t{t[1]} << 8 | std::uint64_t{t[2]} << 16 |
           std::uint64_t{t[3]} << 24;
  }

  // Up to `cap` bytes into dst; 0 at the end of the input.
  std::size_t read(char* dst, std::size_t cap) {
    return gzip_ ? inflate_into(dst, cap) : plain_into(dst, cap);
  }

 private:
  // Appends raw bytes to in_[in_len_..].
  void raw_fill() {
    for (;;) {
      const ssize_t n = ::read(fd_, in_.data() + in_len_, in_.size() - in_len_);
      if (n > 0) {
        in_len_ += static_cast<std::size_t>(n);
        return;
      }
      if (n == 0) {
        in_eof_ = true;
        return;
      }
      if (errno != EINTR) throw Error(path_ + ": read error: " + std::strerror(errno));
    }
  }

  std::size_t plain_into(char* dst, std::size_t cap) {
    if (in_pos_ < in_len_) {  // the sniffed bytes first
      const std::size_t n = std::min(cap, in_len_ - in_pos_);
      std::memcpy(dst, in_.data() + in_pos_, n);
      in_pos_ += n;
      return n;
    }
    for (;;) {
      const ssize_t n = ::read(fd_, dst, cap);
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR) throw Error(path_ + ": read error: " + std::strerror(errno));
    }
  }

  std::size_t inflate_into(char* dst, std::size_t cap) {
    if (cap > std::numeric_limits<uInt>::max()) cap = std::numeric_limits<uInt>::max();
    zs_.next_out = reinterpret_cast<Bytef*>(dst);
    zs_.avail_out = static_cast<uInt>(cap);
    while (zs_.avail_out == cap) {
      if (zs_.avail_in == 0) {
        if (in_eof_) {
          if (!member_open_) return 0;
          throw Error(path_ + ": gzip: unexpected end of the compressed data (truncated file?)");
        }
        in_len_ = 0;
        raw_fill();
        zs_.next_in = in_.data();
        zs_.avail_in = static_cast<uInt>(in_len_);
        continue;
      }
      if (!member_open_) {  // bytes after a finished member: the next member
        if (inflateReset(&zs_) != Z_OK) throw Error(path_ + ": gzip: cannot reset zlib");
        member_open_ = true;
      }
      const int ret = inflate(&zs_, Z_NO_FLUSH);
      if (ret == Z_STREAM_END) {
        member_open_ = false;
      } else if (ret != Z_OK && ret != Z_BUF_ERROR) {
        throw Error(path_ + ": gzip: " + (zs_.msg ? zs_.msg : "corrupt data") +
                    (ret == Z_MEM_ERROR ? " (out of memory)" : ""));
      }
    }
    return cap - zs_.avail_out;
  }

  std::string path_;
  int fd_ = -1;
  bool own_ = true;
  bool gzip_ = false;
  bool member_open_ = true;
  std::vector<unsigned char> in_;
  std::size_t in_len_ = 0, in_pos_ = 0;
  bool in_eof_ = false;
  z_stream zs_;
};

CsvReader::CsvReader(const std::string& path, CsvOptions options)
    : path_(path), options_(std::move(options)) {
  const std::string& sep = options_.separator;
  if (sep.empty()) throw Error("separator: must not be empty");
  if (sep.find_first_of("\"\r\n") != std::string::npos)
    throw Error("separator: must not contain '\"', '\\r' or '\\n'");
  // Field offsets are 32-bit: a record and its line break fit in 4 GiB.
  options_.max_record_bytes = std::min<std::size_t>(options_.max_record_bytes, std::numeric_limits<std::uint32_t>::max() - 2);
  if (options_.max_fields == 0) throw Error("max_fields: must be at least 1");
  source_ = std::make_unique<Source>(path_);
  gzip_ = source_->gzip();
  size_hint_ = source_->size_hint();
  buf_.resize(std::clamp<std::size_t>(options_.buffer_size, 4096, std::size_t{1} << 30));
  cap_ = std::max(buf_.size(), options_.max_record_bytes + 2);
  // A UTF-8 byte order mark (spreadsheets write one) is not part of the first field.
  while (end_ < 3 && fill()) {
  }
  if (end_ >= 3 && std::memcmp(buf_.data(), "\xef\xbb\xbf", 3) == 0) {
    pos_ = 3;
    record_ = 3;
  }
  if (options_.header) {
    bool got = false;
    while (!got) {
      fields_.clear();
      record_ = pos_;
      if (pos_ == end_ && !fill()) break;
      record_ = pos_;
      line_ = next_line_;
      got = parse_record();
    }
    if (!got) throw Error(path_ + ": no header line (the file is empty)");
    header_.reserve(fields_.size());
    for (std::size_t i = 0; i < fields_.size(); ++i) header_.emplace_back(trim((*this)[i]));
    expected_ = fields_.size();
    fields_.clear();
  }
}

CsvReader::~CsvReader() = default;

long CsvReader::column(std::string_view name) const noexcept {
  for (std::size_t i = 0; i < header_.size(); ++i)
    if (header_[i] == name) return static_cast<long>(i);
  return -1;
}

void CsvReader::fail(const std::string& reason) const { throw CsvError(path_, line_, reason); }

// Final, unlike a record error: skipping the record would mean reading on to a line end that
// may never come (/dev/zero, a binary file).
void CsvReader::fail_too_long() {
  too_long_ = true;
  throw Error(path_ + ":" + std::to_string(line_) + ": the record is longer than the limit of " +
              std::to_string(options_.max_record_bytes) + " bytes (CsvOptions::max_record_bytes); is this a " +
              (gzip_ ? "gzip file of " : "") + "delimited text?");
}

bool CsvReader::fill() {
  if (eof_) return false;
  if (record_ > 0) {
    std::memmove(buf_.data(), buf_.data() + record_, end_ - record_);
    consumed_ += record_;
    pos_ -= record_;
    end_ -= record_;
    record_ = 0;
  }
  if (end_ == buf_.size()) {
    // The buffer holds one unfinished record, [0, end_): no line end yet. Past the limit (plus
    // room for "\r\n") it is too long whatever follows, so the buffer never grows beyond that.
    if (end_ >= cap_) fail_too_long();
    // Doubling, but straight to the cap when a doubled buffer would come close to it: 64 MiB
    // and then 64 MiB + 2 would hold both at once for two bytes.
    const std::size_t doubled = buf_.size() * 2;
    buf_.resize(doubled + doubled / 2 > cap_ ? cap_ : doubled);
  }
  const std::size_t n = source_->read(buf_.data() + end_, buf_.size() - end_);
  if (n == 0) {
    eof_ = true;
    return false;
  }
  end_ += n;
  return true;
}

std::size_t CsvReader::find_newline(std::size_t rel) {
  for (;;) {
    const char* base = buf_.data() + record_;
    const std::size_t avail = end_ - record_;
    if (rel < avail) {
      if (const void* p = std::memchr(base + rel, '\n', avail - rel))
        return static_cast<std::size_t>(static_cast<const char*>(p) - base);
      rel = avail;
    }
    if (!fill()) return std::string::npos;
  }
}

// Relative to record_: the first separator in [from, to), or npos.
std::size_t CsvReader::find_separator(std::size_t from, std::size_t to) const noexcept {
  const char* base = buf_.data() + record_;
  const std::string& sep = options_.separator;
  const char first = sep[0];
  const std::size_t n = sep.size();
  while (from < to) {
    const void* p = std::memchr(base + from, first, to - from);
    if (!p) return std::string::npos;
    const std::size_t at = static_cast<std::size_t>(static_cast<const char*>(p) - base);
    if (n == 1) return at;
    if (to - at >= n && std::memcmp(base + at + 1, sep.data() + 1, n - 1) == 0) return at;
    from = at + 1;
  }
  return std::string::npos;
}

// Parses the record at record_ (pos_ == record_, at least one byte available). Returns false for a
// blank line. Afterwards pos_ and next_line_ are past the record, also when it throws.
bool CsvReader::parse_record() {
  const std::string& sep = options_.separator;
  std::size_t nl = find_newline(0);
  std::size_t le = nl == std::string::npos ? end_ - record_ : nl;  // end of the line's text
  std::size_t after = nl == std::string::npos ? le : nl + 1;       // start of the next record
  std::size_t lines = 1;
  char* base = buf_.data() + record_;
  std::size_t content_end = le > 0 && base[le - 1] == '\r' ? le - 1 : le;

  auto finish = [&] {
    pos_ = record_ + after;
    next_line_ += lines;
  };
  auto fail_here = [&](const std::string& reason) {
    finish();
    fail(reason);
  };

  {
    std::size_t k = 0;
    while (k < content_end && (base[k] == ' ' || base[k] == '\t')) ++k;
    if (k == content_end && find_separator(0, content_end) == std::string::npos) {
      finish();
      return false;
    }
  }

  std::size_t f = 0;  // start of the current field
  for (;;) {
    if (options_.quotes && f < content_end && base[f] == '"') {
      std::size_t r = f + 1, w = f;  // read and write positions: the text moves left over the quote
      for (;;) {
        const void* p = std::memchr(base + r, '"', le - r);
        if (!p) {
          if (nl == std::string::npos)
            fail_here("unterminated quoted field (opened in field " + std::to_string(fields_.size() + 1) + ")");
          // The line break belongs to the field; read on into the next line.
          std::memmove(base + w, base + r, nl + 1 - r);
          w += nl + 1 - r;
          r = nl + 1;
          ++lines;
          nl = find_newline(r);  // may move the buffer
          base = buf_.data() + record_;
          le = nl == std::string::npos ? end_ - record_ : nl;
          after = nl == std::string::npos ? le : nl + 1;
          content_end = le > r && base[le - 1] == '\r' ? le - 1 : le;
          continue;
        }
        const std::size_t q = static_cast<std::size_t>(static_cast<const char*>(p) - base);
        std::memmove(base + w, base + r, q - r);
        w += q - r;
        if (q + 1 < le && base[q + 1] == '"') {  // "" inside quotes
          base[w++] = '"';
          r = q + 2;
          continue;
        }
        r = q + 1;
        break;
      }
      fields_.push_back({static_cast<std::uint32_t>(f), static_cast<std::uint32_t>(w - f)});
      if (r >= content_end) break;
      if (content_end - r >= sep.size() && std::memcmp(base + r, sep.data(), sep.size()) == 0) {
        f = r + sep.size();
        continue;
      }
      fail_here("unexpected text after the closing quote of field " + std::to_string(fields_.size()));
    } else {
      const std::size_t s = find_separator(f, content_end);
      if (s == std::string::npos) {
        fields_.push_back({static_cast<std::uint32_t>(f), static_cast<std::uint32_t>(content_end - f)});
        break;
      }
      fields_.push_back({static_cast<std::uint32_t>(f), static_cast<std::uint32_t>(s - f)});
      f = s + sep.size();
    }
    if (fields_.size() >= options_.max_fields)
      fail_here("more than " + std::to_string(options_.max_fields) + " fields (CsvOptions::max_fields)");
  }
  if (content_end > options_.max_record_bytes) {
    finish();
    fail_too_long();
  }
  finish();
  return true;
}

bool CsvReader::next() {
  if (too_long_) fail_too_long();
  for (;;) {
    fields_.clear();
    record_ = pos_;
    if (pos_ == end_ && !fill()) return false;
    record_ = pos_;
    line_ = next_line_;
    if (!parse_record()) continue;
    if (expected_ == 0) {
      expected_ = fields_.size();
    } else if (options_.uniform_fields && fields_.size() != expected_) {
      const std::size_t got = fields_.size();
      fields_.clear();
      fail("expected " + std::to_string(expected_) + " fields, got " + std::to_string(got));
    }
    ++records_;
    return true;
  }
}

}  // namespace mtlite::data
