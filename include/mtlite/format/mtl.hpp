// The .mtl file's byte layout (FORMAT.md is the full description): the header and the tensor
// table entry. Their dtype and layout bytes are the core enums of core/dtype.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../core/dtype.hpp"

namespace mtlite::format {

inline constexpr std::uint8_t kMagic[8] = {0x89, 'M', 'T', 'L', '\r', '\n', 0x1a, '\n'};
inline constexpr std::uint16_t kMajor = 1;
inline constexpr std::uint16_t kMinor = 0;
inline constexpr std::size_t kDataAlign = 64;

// Limits a reader enforces before it allocates anything.
// Parsed JSON takes up to ~22x its text: 16 MiB of metadata stays under ~400 MB however hostile.
inline constexpr std::uint64_t kMaxMetaBytes = 16ull << 20;
inline constexpr std::uint32_t kMaxTensors = 1u << 16;
inline constexpr std::uint32_t kMaxNameBytes = 1024;
inline constexpr std::uint32_t kMaxRank = 4;

// offset  0: magic        offset 24: meta_offset   offset 48: tensor_count
// offset  8: major        offset 32: meta_bytes    offset 52: flags
// offset 10: minor        offset 40: table_offset  offset 56: checksum (XXH64 of [64, file_bytes))
// offset 12: header_bytes
// offset 16: file_bytes
struct FileHeader {
  std::uint8_t magic[8];
  std::uint16_t major;
  std::uint16_t minor;
  std::uint32_t header_bytes;
  std::uint64_t file_bytes;
  std::uint64_t meta_offset;
  std::uint64_t meta_bytes;
  std::uint64_t table_offset;
  std::uint32_t tensor_count;
  std::uint32_t flags;
  std::uint64_t checksum;
};
static_assert(sizeof(FileHeader) == 64, "FileHeader is 64 bytes");

// offset  0: name_offset  offset 13: layout     offset 16: dims[4]
// offset  8: name_bytes   offset 14: rank       offset 48: data_offset
// offset 12: dtype        offset 15: reserved   offset 56: data_bytes
struct TensorEntry {
  std::uint64_t name_offset;
  std::uint32_t name_bytes;
  std::uint8_t dtype;
  std::uint8_t layout;
  std::uint8_t rank;
  std::uint8_t reserved;
  std::uint64_t dims[4];
  std::uint64_t data_offset;
  std::uint64_t data_bytes;
};
static_assert(sizeof(TensorEntry) == 64, "TensorEntry is 64 bytes");

}  // namespace mtlite::format
