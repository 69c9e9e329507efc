// A streaming reader for delimited text (CSV, TSV, the census ", " format), plain or gzip.
//
//   CsvReader r("train.csv.gz", {", ", /*header=*/false});
//   while (r.next())
//     for (std::size_t i = 0; i < r.size(); ++i) use(r[i]);   // std::string_view fields
//
// - gzip is recognised by its magic bytes (1f 8b), never by the file name; "-" reads stdin (plain
//   or gzip alike).
// - The separator is any non-empty string: ",", "\t", ", " ... It must not contain '"', '\r' or
//   '\n'.
// - Optional RFC 4180 quoting: a field that starts with '"' runs to the matching '"'; inside it ""
//   stands for one '"', and separators and line breaks are ordinary text. After the closing quote
//   comes a separator or the end of the line. A '"' anywhere else is ordinary text.
// - Lines end in "\n" or "\r\n"; the last line may lack its line break. Blank lines (empty, or only
//   spaces and tabs with no separator in them) are skipped. Field values are NOT trimmed.
// - Fields are views into the reader's own buffer: valid until the next call to next(). Reading
//   allocates only when a record is longer, or has more fields, than any before it.
// - A UTF-8 byte order mark at the start of the file is skipped.
// - A header line, when asked for, is the first non-blank line; its names (trimmed of spaces) map
//   to column indices.
// - Every record must have as many fields as the first one (the header when there is one) unless
//   `uniform_fields` is off. Record errors throw CsvError("<file>:<line>: <reason>") with the line
//   where the record starts; the reader is then positioned after that record, so a caller may
//   catch, count and carry on. I/O and gzip errors throw plain mtlite::Error and are final.
// - Limits: a record longer than options.max_record_bytes (64 MiB) is a final error naming the
//   file, the line and the limit, raised as soon as that many bytes are in without a line end; so
//   /dev/zero, a 100 MB line or a gzip stream that inflates to one endless line stops there. A
//   record with more than options.max_fields (2^20) fields is a record error.
//
// Resources, for n bytes of (inflated) input, L = max(buffer_size, max_record_bytes + 2),
// F = max_fields: O(n) time (every byte is looked at a bounded number of times; gzip inflates at
// zlib's speed, whatever the ratio), and memory at most 2L (the line buffer while it doubles) +
// 12F bytes (the field table while it doubles) + 320 KiB (raw input and zlib's inflate state),
// however long or endless the input. With the defaults: at most ~141 MiB, and ~3 MiB for
// records of up to 1 MiB.
#pragma once

#include <mtlite/core/error.hpp>
#include <mtlite/core/quote.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mtlite::data {

struct CsvOptions {
  std::string separator = ",";
  bool header = false;
  bool quotes = true;           // RFC 4180 double quotes; off: '"' is ordinary text everywhere
  bool uniform_fields = true;   // every record has the field count of the first
  std::size_t buffer_size = 1 << 20;
  // The longest record, in bytes of text (its final line break not counted; at most 4 GiB - 2),
  // and the most fields one may have. They bound the reader's memory (see the top of this file).
  std::size_t max_record_bytes = std::size_t{64} << 20;
  std::size_t max_fields = std::size_t{1} << 20;
};

// A malformed record. what() is "<file>:<line>: <reason>".
class CsvError : public Error {
 public:
  CsvError(const std::string& file, std::size_t line, const std::string& reason)
      : Error(file + ":" + std::to_string(line) + ": " + reason), line_(line), reason_(reason) {}
  std::size_t line() const noexcept { return line_; }
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::size_t line_;
  std::string reason_;
};

// Surrounding spaces and tabs removed.
inline std::string_view trim(std::string_view s) noexcept {
  std::size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return s.substr(b, e - b);
}

class CsvReader {
 public:
  // Opens the file (throws mtlite::Error when it cannot) and reads the header if asked to.
  CsvReader(const std::string& path, CsvOptions options = {});
  ~CsvReader();
  CsvReader(const CsvReader&) = delete;
  CsvReader& operator=(const CsvReader&) = delete;

  // Moves to the next record; false at the end of the input.
  bool next();

  std::size_t size() const noexcept { return fields_.size(); }
  std::string_view operator[](std::size_t i) const noexcept {
    return {buf_.data() + record_ + fields_[i].offset, fields_[i].length};
  }
  // The line where the current record starts (1-based).
  std::size_t line() const noexcept { return line_; }
  // Records returned so far (the header not included).
  std::size_t records() const noexcept { return records_; }
  // Field count of the first record (or of the header); 0 before the first record.
  std::size_t expected_fields() const noexcept { return expected_; }
  // Lets the next record set the field count again: for a caller that refused the first record
  // (a comment or a stray line in a file without a header) and skips it.
  void forget_field_count() noexcept {
    if (!options_.header) expected_ = 0;
  }

  const std::string& path() const noexcept { return path_; }
  bool gzip() const noexcept { return gzip_; }
  // Bytes of (uncompressed) text consumed so far, and an estimate of the total: the file size, or
  // a gzip file's recorded size (its last member's, modulo 2^32); 0 when unknown (stdin, a pipe).
  std::uint64_t bytes_consumed() const noexcept { return consumed_ + pos_; }
  std::uint64_t size_hint() const noexcept { return size_hint_; }
  const CsvOptions& options() const noexcept { return options_; }

  const std::vector<std::string>& header() const noexcept { return header_; }
  // Index of the header column with this name, or -1 (also when there is no header).
  long column(std::string_view name) const noexcept;

  // Throws CsvError for the current record.
  [[noreturn]] void fail(const std::string& reason) const;

 private:
  struct Field {
    std::uint32_t offset;  // from record_
    std::uint32_t length;
  };
  class Source;

  bool fill();  // more bytes after end_; false at the end of the input
  [[noreturn]] void fail_too_long();  // final: every later next() throws it again
  bool parse_record();
  std::size_t find_newline(std::size_t from);  // index of '\n' at or after `from`, or npos at EOF
  std::size_t find_separator(std::size_t from, std::size_t to) const noexcept;

  std::string path_;
  CsvOptions options_;
  std::unique_ptr<Source> source_;
  bool gzip_ = false;
  bool eof_ = false;
  bool too_long_ = false;

  std::vector<char> buf_;
  std::size_t cap_ = 0;     // the most buf_ grows to: max(its first size, max_record_bytes + 2)
  std::size_t pos_ = 0;     // start of unread text
  std::size_t end_ = 0;     // end of valid bytes
  std::size_t record_ = 0;  // start of the current record
  std::uint64_t consumed_ = 0;  // bytes dropped from the front of buf_
  std::uint64_t size_hint_ = 0;
  std::vector<Field> fields_;
  std::size_t line_ = 0;       // start line of the current record
  std::size_t next_line_ = 1;  // line of pos_
  std::size_t records_ = 0;
  std::size_t expected_ = 0;
  std::vector<std::string> header_;
};

}  // namespace mtlite::data
