// Reading .mtl files: bytes in memory -> a validated view of the header, the metadata and every
// tensor (FORMAT.md is the contract). Turning the view into a Model is someone else's job.
//
//   mtlite::format::MappedFile file = mtlite::format::MappedFile::open(path);   // mapped_file.hpp
//   mtlite::format::FileView view = mtlite::format::FileView::parse(file.data(), file.size());
//   const TensorView* w = view.find("expert0.0.weight");
//
// The file is hostile until proven otherwise. parse() checks, in this order, and never reads a
// byte outside [data, data + size) nor allocates more than a small multiple of `size`:
//   1. the header: size >= 64, magic, major version, header_bytes == 64, flags == 0,
//      file_bytes == size;
//   2. the checksum (XXH64 of [64, size)), when ReadOptions::verify_checksum is true (the
//      default here; Model::load's LoadOptions turn it off, see model.hpp);
//   3. the metadata: inside the file (overflow-safe), at most kMaxMetaBytes, a JSON object;
//   4. the tensor table: tensor_count <= kMaxTensors, inside the file, table_offset % 8 == 0;
//   5. every entry in turn: name inside the file, 1..kMaxNameBytes bytes of UTF-8 without control
//      characters; reserved byte 0; known dtype and layout; rank 1..4 with unused dims 0 and used
//      dims >= 1; a (dtype, layout, shape) whose size is defined and equals data_bytes;
//      data_offset % 64 == 0; data inside the file (offset + bytes may wrap: checked without it);
//   6. names are unique;
//   7. no two regions overlap: header, metadata, table, every name and every tensor's data
//      (sorted by start, neighbours compared).
// Every failure throws mtlite::Error whose message starts with "model file: " and names the part
// at fault: the entry index, and the tensor's name once that has been checked.
//
// Memory: nothing is sized from a count or offset before that is checked against the file. The
// table work is a few bytes per 64-byte entry, names are copied only once they are known to be
// disjoint parts of the file; the largest allocation is the metadata's JSON tree (json.hpp: at
// most 40 bytes per byte of JSON), so a file of n bytes costs O(n) memory, at most 40n
// (tests/hostile_test.cpp measures it). Time: O(n log n), from sorting names and regions.
//
// A FileView does not own the bytes: they must outlive it (TensorView::data points into them).
// It does not require the bytes to be 64-byte aligned, but kernels that execute the tensors in
// place want them to be: MappedFile and read_file() (mapped_file.hpp) give aligned images.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/quote.hpp"
#include "../core/shape.hpp"
#include "checksum.hpp"
#include "json.hpp"
#include "mtl.hpp"

namespace mtlite::format {

struct TensorView {
  std::string name;
  DType dtype;
  Layout layout;
  std::vector<std::uint64_t> shape;  // the `rank` used dims
  const std::byte* data;             // into the file image, at data_offset
  std::uint64_t bytes;               // data_bytes: what tensor_bytes(dtype, layout, shape) says
};

struct ReadOptions {
  // Hashing costs a pass over the whole file (> 5 GB/s). A caller that has verified the file
  // already, or that fuzzes the structural checks, may skip it.
  bool verify_checksum = true;
};

namespace detail {

// The file is little-endian; these put the fields of a struct read from (or about to be written
// to) the file into the other byte order. They do nothing on little-endian hosts.
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
inline void swap_le(std::uint16_t& x) noexcept { x = __builtin_bswap16(x); }
inline void swap_le(std::uint32_t& x) noexcept { x = __builtin_bswap32(x); }
inline void swap_le(std::uint64_t& x) noexcept { x = __builtin_bswap64(x); }
#else
inline void swap_le(std::uint16_t&) noexcept {}
inline void swap_le(std::uint32_t&) noexcept {}
inline void swap_le(std::uint64_t&) noexcept {}
#endif
inline void swap_le(FileHeader& h) noexcept {
  swap_le(h.major);
  swap_le(h.minor);
  swap_le(h.header_bytes);
  swap_le(h.file_bytes);
  swap_le(h.meta_offset);
  swap_le(h.meta_bytes);
  swap_le(h.table_offset);
  swap_le(h.tensor_count);
  swap_le(h.flags);
  swap_le(h.checksum);
}
inline void swap_le(TensorEntry& e) noexcept {
  swap_le(e.name_offset);
  swap_le(e.name_bytes);
  for (std::uint64_t& d : e.dims) swap_le(d);
  swap_le(e.data_offset);
  swap_le(e.data_bytes);
}

// What is wrong with a tensor name's characters, or "" when nothing is: it must be well-formed
// UTF-8 (Unicode Table 3-7: no overlong forms, surrogates or code points past U+10FFFF) without
// control characters (C0, DEL, C1). Length limits are checked separately.
inline std::string name_problem(std::string_view s) {
  auto byte = [&](std::size_t k) -> unsigned { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0x100u; };
  auto cont = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xbf) { return byte(k) >= lo && byte(k) <= hi; };
  std::size_t i = 0;
  while (i < s.size()) {
    const unsigned c = byte(i);
    std::size_t n = 0;
    unsigned cp = c;
    if (c < 0x80) {
      n = 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = cont(i + 1) ? 2 : 0;
    } else if (c == 0xe0) {
      n = cont(i + 1, 0xa0) && cont(i + 2) ? 3 : 0;
    } else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) {
      n = cont(i + 1) && cont(i + 2) ? 3 : 0;
    } else if (c == 0xed) {
      n = cont(i + 1, 0x80, 0x9f) && cont(i + 2) ? 3 : 0;
    } else if (c == 0xf0) {
      n = cont(i + 1, 0x90) && cont(i + 2) && cont(i + 3) ? 4 : 0;
    } else if (c >= 0xf1 && c <= 0xf3) {
      n = cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0;
    } else if (c == 0xf4) {
      n = cont(i + 1, 0x80, 0x8f) && cont(i + 2) && cont(i + 3) ? 4 : 0;
    }
    if (n == 0) return "is not valid UTF-8 (at byte " + std::to_string(i) + ")";
    if (n == 2) cp = ((c & 0x1fu) << 6) | (byte(i + 1) & 0x3fu);
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
      static const char hex[] = "0123456789ABCDEF";
      const char code[] = {'U', '+', '0', '0', hex[cp >> 4], hex[cp & 15], '\0'};
      return "has a control character (" + std::string(code) + " at byte " + std::to_string(i) + ")";
    }
    i += n;
  }
  return {};
}

[[noreturn]] inline void fail(const std::string& what) { throw Error("model file: " + what); }

inline std::string range_string(std::uint64_t begin, std::uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + ")";
}

// A region of `bytes` bytes at `offset` must lie inside a file of `size` bytes, with arithmetic
// that cannot wrap, and after the header. `what` starts with "the ...".
inline void check_region(const std::string& what, std::uint64_t offset, std::uint64_t bytes, std::uint64_t size) {
  if (bytes > UINT64_MAX - offset) {
    fail(what + " (offset " + std::to_string(offset) + ", " + std::to_string(bytes) +
         " bytes) wraps around: offset + size overflows 64 bits");
  }
  if (offset + bytes > size) {
    fail(what + " (offset " + std::to_string(offset) + ", " + std::to_string(bytes) + " bytes) ends at " +
         std::to_string(offset + bytes) + ", past the end of the file (" + std::to_string(size) + " bytes)");
  }
  if (bytes > 0 && offset < sizeof(FileHeader)) {
    fail(what + " " + range_string(offset, offset + bytes) + " overlaps the header [0, 64)");
  }
}

}  // namespace detail

// Throws mtlite::Error("model file: checksum mismatch: the file is corrupt") unless the XXH64 of
// bytes [64, size) is the header's checksum. Step 2 of FileView::parse; also on its own, for an
// image parsed without it. `data` must hold at least the 64-byte header.
inline void verify_checksum(const void* data, std::size_t size) {
  const auto* bytes = static_cast<const std::byte*>(data);
  if (size < sizeof(FileHeader)) detail::fail("too short for the 64-byte header");
  FileHeader h;
  std::memcpy(&h, bytes, sizeof h);
  detail::swap_le(h);
  if (xxh64(bytes + sizeof(FileHeader), size - sizeof(FileHeader)) != h.checksum)
    detail::fail("checksum mismatch: the file is corrupt");
}

// A validated .mtl image in memory. Copyable and movable; does not own the bytes.
class FileView {
 public:
  // Throws mtlite::Error("model file: ...") unless `data` holds a valid .mtl file of exactly
  // `size` bytes. `data` may be null when size is 0 (which is an error like any short file).
  static FileView parse(const void* data, std::size_t size, ReadOptions options = {});

  const FileHeader& header() const noexcept { return header_; }
  const Json& metadata() const& noexcept { return metadata_; }
  // From a view about to go away, without copying the tree.
  Json metadata() && noexcept { return std::move(metadata_); }
  // In table order.
  const std::vector<TensorView>& tensors() const noexcept { return tensors_; }
  // nullptr if absent. O(log n).
  const TensorView* find(std::string_view name) const noexcept {
    auto it = std::lower_bound(by_name_.begin(), by_name_.end(), name,
                               [&](std::uint32_t i, std::string_view n) { return tensors_[i].name < n; });
    if (it == by_name_.end() || tensors_[*it].name != name) return nullptr;
    return &tensors_[*it];
  }
  // The image parse() was given.
  const std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }

 private:
  FileHeader header_{};
  Json metadata_;
  std::vector<TensorView> tensors_;
  std::vector<std::uint32_t> by_name_;  // indices into tensors_, sorted by name
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// long function: parse() is the numbered contract at the top of this file, one block per clause
// in the same order, so that a reader checks the code against the contract top to bottom; the
// blocks share the view being built and the regions of the overlap check.
inline FileView FileView::parse(const void* data, std::size_t size, ReadOptions options) {
  using detail::fail;
  using std::to_string;
  const auto* bytes = static_cast<const std::byte*>(data);
  const std::uint64_t file_size = size;

  // --- 1. header ---------------------------------------------------------------------------
  if (size < sizeof(FileHeader)) {
    fail(to_string(size) + " bytes is too short for the 64-byte header: not a model file, or truncated");
  }
  FileHeader h;
  std::memcpy(&h, bytes, sizeof h);
  detail::swap_le(h);
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0) fail("not an mtlite model file (bad magic)");
  if (h.major > kMajor) {
    fail("written by a newer mtlite: format " + to_string(h.major) + "." + to_string(h.minor) +
         ", this reader knows " + to_string(kMajor) + ".x");
  }
  if (h.major < 1) {
    fail("format " + to_string(h.major) + "." + to_string(h.minor) + " was never released, this reader knows " +
         to_string(kMajor) + ".x");
  }
  if (h.header_bytes != sizeof(FileHeader)) {
    fail("header_bytes is " + to_string(h.header_bytes) + ", expected 64");
  }
  if (h.flags != 0) {
    static const char hex[] = "0123456789abcdef";
    std::string bits = "0x";
    for (int s = 28; s >= 0; s -= 4) bits += hex[(h.flags >> s) & 15];
    fail("unknown flags " + bits + " (this reader knows none)");
  }
  if (h.file_bytes > file_size) {
    fail("truncated: the header says " + to_string(h.file_bytes) + " bytes, the file has " + to_string(size));
  }
  if (h.file_bytes < file_size) {
    fail("trailing data: the header says " + to_string(h.file_bytes) + " bytes, the file has " + to_string(size));
  }

  // --- 2. checksum -------------------------------------------------------------------------
  if (options.verify_checksum) verify_checksum(bytes, size);

  FileView view;
  view.header_ = h;
  view.data_ = bytes;
  view.size_ = size;

  // --- 3. metadata -------------------------------------------------------------------------
  detail::check_region("the metadata", h.meta_offset, h.meta_bytes, file_size);
  if (h.meta_bytes > kMaxMetaBytes) {
    fail("the metadata is " + to_string(h.meta_bytes) + " bytes, more than the limit of " +
         to_string(kMaxMetaBytes) + " (16 MiB)");
  }
  try {
    view.metadata_ = Json::parse(std::string_view(reinterpret_cast<const char*>(bytes + h.meta_offset),
                                                  static_cast<std::size_t>(h.meta_bytes)));
  } catch (const Error& e) {
    fail(std::string("metadata: ") + e.what());
  }
  if (!view.metadata_.is_object()) {
    fail(std::string("metadata: expected a JSON object, got ") + Json::kind_name(view.metadata_.kind()));
  }

  // --- 4. tensor table ---------------------------------------------------------------------
  if (h.tensor_count > kMaxTensors) {
    fail("tensor_count is " + to_string(h.tensor_count) + ", more than the limit of " + to_string(kMaxTensors));
  }
  const std::uint64_t table_bytes = std::uint64_t{h.tensor_count} * sizeof(TensorEntry);  // < 2^23
  detail::check_region("the tensor table", h.table_offset, table_bytes, file_size);
  if (h.table_offset % 8 != 0) {
    fail("the tensor table offset " + to_string(h.table_offset) + " is not a multiple of 8");
  }

  // Regions for the overlap check: header, metadata, table, then a name and the data per tensor.
  struct Region {
    std::uint64_t begin, end;
    std::uint32_t kind;  // 0 header, 1 metadata, 2 table, 3 name of tensor `index`, 4 its data
    std::uint32_t index;
  };
  std::vector<Region> regions;
  regions.reserve(3 + 2 * std::size_t{h.tensor_count});
  regions.push_back({0, sizeof(FileHeader), 0, 0});
  if (h.meta_bytes > 0) regions.push_back({h.meta_offset, h.meta_offset + h.meta_bytes, 1, 0});
  if (table_bytes > 0) regions.push_back({h.table_offset, h.table_offset + table_bytes, 2, 0});

  // --- 5. entries --------------------------------------------------------------------------
  // Names stay views into the file until they are known not to overlap: copying them sooner
  // would let 65,536 entries that share one 1 KiB name allocate 64 MiB from a 4 MiB file.
  struct Checked {
    std::string_view name;
    DType dtype;
    Layout layout;
    std::uint8_t rank;
    std::uint64_t dims[kMaxRank];
    std::uint64_t data_offset, data_bytes;
  };
  std::vector<Checked> checked;
  checked.reserve(h.tensor_count);
  for (std::uint32_t i = 0; i < h.tensor_count; ++i) {
    TensorEntry e;
    std::memcpy(&e, bytes + h.table_offset + std::uint64_t{i} * sizeof(TensorEntry), sizeof e);
    detail::swap_le(e);
    std::string where = "tensor entry " + to_string(i) + ": ";

    if (e.name_bytes == 0) fail(where + "empty name (name_bytes is 0)");
    if (e.name_bytes > kMaxNameBytes) {
      fail(where + "name_bytes is " + to_string(e.name_bytes) + ", more than the limit of " + to_string(kMaxNameBytes));
    }
    detail::check_region("tensor entry " + to_string(i) + ": the name", e.name_offset, e.name_bytes, file_size);
    const std::string_view name(reinterpret_cast<const char*>(bytes + e.name_offset), e.name_bytes);
    if (std::string problem = detail::name_problem(name); !problem.empty()) {
      fail(where + "name " + quote(name) + " " + problem);
    }
    where = "tensor '" + std::string(name) + "' (entry " + to_string(i) + "): ";

    if (e.reserved != 0) fail(where + "reserved byte is " + to_string(e.reserved) + ", expected 0");
    if (!valid_dtype(e.dtype)) fail(where + "unknown dtype code " + to_string(e.dtype));
    if (!valid_layout(e.layout)) fail(where + "unknown layout code " + to_string(e.layout));
    const auto dtype = static_cast<DType>(e.dtype);
    const auto layout = static_cast<Layout>(e.layout);
    if (e.rank < 1 || e.rank > kMaxRank) fail(where + "rank " + to_string(e.rank) + ", expected 1..4");
    for (std::uint32_t d = e.rank; d < kMaxRank; ++d) {
      if (e.dims[d] != 0) {
        fail(where + "dims[" + to_string(d) + "] is " + to_string(e.dims[d]) + " but the rank is " +
             to_string(e.rank) + " (unused dims must be 0)");
      }
    }
    std::vector<std::uint64_t> shape(e.dims, e.dims + e.rank);
    for (std::uint32_t d = 0; d < e.rank; ++d) {
      if (shape[d] == 0) fail(where + "dims[" + to_string(d) + "] is 0");
    }
    const std::string kind = std::string(to_string(dtype)) + " " + to_string(layout) + " " + shape_string(shape);
    const std::optional<std::uint64_t> need = tensor_bytes(dtype, layout, shape);
    if (!need) {
      // Tell the reasons apart: a combination no layout allows, or a size beyond 64 bits.
      if (!tensor_bytes(dtype, layout, std::vector<std::uint64_t>(e.rank, 1))) {
        fail(where + kind + " is not a valid dtype/layout/shape combination");
      }
      fail(where + "the size of " + kind + " overflows (a dim above 2^40 or a total above 2^64 bytes)");
    }
    if (*need != e.data_bytes) {
      fail(where + to_string(e.data_bytes) + " bytes, its dtype/layout/shape (" + kind + ") need " +
           to_string(*need));
    }
    if (e.data_offset % kDataAlign != 0) {
      fail(where + "data offset " + to_string(e.data_offset) + " is not a multiple of 64");
    }
    detail::check_region(where + "the data", e.data_offset, e.data_bytes, file_size);

    regions.push_back({e.name_offset, e.name_offset + e.name_bytes, 3, i});
    regions.push_back({e.data_offset, e.data_offset + e.data_bytes, 4, i});
    checked.push_back(Checked{name, dtype, layout, e.rank, {e.dims[0], e.dims[1], e.dims[2], e.dims[3]},
                              e.data_offset, e.data_bytes});
  }

  // --- 6. unique names ---------------------------------------------------------------------
  view.by_name_.resize(checked.size());
  for (std::uint32_t i = 0; i < view.by_name_.size(); ++i) view.by_name_[i] = i;
  std::sort(view.by_name_.begin(), view.by_name_.end(), [&](std::uint32_t a, std::uint32_t b) {
    const int c = checked[a].name.compare(checked[b].name);
    return c < 0 || (c == 0 && a < b);
  });
  for (std::size_t k = 1; k < view.by_name_.size(); ++k) {
    const std::uint32_t a = view.by_name_[k - 1], b = view.by_name_[k];
    if (checked[a].name == checked[b].name) {
      fail("tensor '" + std::string(checked[b].name) + "' (entry " + to_string(b) + "): duplicate name (entry " +
           to_string(a) + " has it too)");
    }
  }

  // --- 7. no overlaps ----------------------------------------------------------------------
  std::sort(regions.begin(), regions.end(), [](const Region& a, const Region& b) {
    return a.begin < b.begin || (a.begin == b.begin && a.end < b.end);
  });
  auto describe = [&](const Region& r) {
    std::string what;
    switch (r.kind) {
      case 0: what = "the header"; break;
      case 1: what = "the metadata"; break;
      case 2: what = "the tensor table"; break;
      case 3: what = "the name of tensor '" + std::string(checked[r.index].name) + "'"; break;
      default: what = "the data of tensor '" + std::string(checked[r.index].name) + "'"; break;
    }
    return what + " " + detail::range_string(r.begin, r.end);
  };
  for (std::size_t k = 1; k < regions.size(); ++k) {
    // Sorted by start, the regions are disjoint exactly when each starts at or after the end of
    // the one before it.
    if (regions[k].begin < regions[k - 1].end) {
      fail(describe(regions[k]) + " overlaps " + describe(regions[k - 1]));
    }
  }

  // Valid. The names are disjoint parts of the file now, so copying them costs at most `size`.
  view.tensors_.reserve(checked.size());
  for (const Checked& c : checked) {
    view.tensors_.push_back(TensorView{std::string(c.name), c.dtype, c.layout,
                                       std::vector<std::uint64_t>(c.dims, c.dims + c.rank), bytes + c.data_offset,
                                       c.data_bytes});
  }
  return view;
}

}  // namespace mtlite::format
