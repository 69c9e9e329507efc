// Writing .mtl files (FORMAT.md). The regions go in the order FORMAT.md gives:
//
//   0                      header (64 bytes)
//   64                     metadata: compact JSON
//   next multiple of 8     tensor table, one 64-byte entry per tensor, in the order added
//   right after            the names, back to back
//   next multiple of 64    tensor data in the order added, each at the next multiple of 64
//
// so tensors whose sizes are multiples of 64 are contiguous (the runtime executes fused layers
// from consecutive tensors in place). The file ends with the last tensor's data. Gaps are zeros.
//
//   FileWriter w;
//   w.set_metadata(Json::object().set("format", "mtlite"));
//   w.add("gate0.bias", DType::f32, Layout::padded16, {3}, bias.data(), bias.size() * 4);
//   w.write("model.mtl");   // atomic: either the old file or the whole new one
//
// Memory: add() copies the data (add_borrowed() does not), bytes() builds a second copy of the
// whole file, write() streams the pieces to disk and holds nothing more than the writer already
// does. A 1 GB model is best written with add_borrowed() + write(): one copy, the caller's.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "../../core/error.hpp"
#include "../../format/checksum.hpp"
#include "../../format/json.hpp"
#include "../../format/mtl.hpp"
#include "../../format/reader.hpp"
#include "../durable_file.hpp"

namespace mtlite::format {

class FileWriter {
 public:
  // The metadata must be a JSON object that dumps to at most kMaxMetaBytes. Default: {}.
  void set_metadata(Json meta) {
    if (!meta.is_object()) {
      throw Error(std::string("model file: metadata must be a JSON object, got ") + Json::kind_name(meta.kind()));
    }
    std::string text = meta.dump();
    if (text.size() > kMaxMetaBytes) {
      throw Error("model file: metadata is " + std::to_string(text.size()) + " bytes as JSON, more than the limit of " +
                  std::to_string(kMaxMetaBytes));
    }
    meta_ = std::move(text);
  }

  // Appends a tensor; the data is copied. Throws mtlite::Error when the name is empty, too long,
  // not UTF-8, has control characters or repeats; when dtype, layout or shape are not a valid
  // combination; when `bytes` is not what they imply; or past kMaxTensors tensors.
  void add(std::string name, DType dtype, Layout layout, std::vector<std::uint64_t> shape, const void* data,
           std::size_t bytes) {
    check(name, dtype, layout, shape, data, bytes);
    Tensor t{std::move(name), dtype, layout, std::move(shape), {}, nullptr, bytes};
    const auto* p = static_cast<const std::byte*>(data);
    t.owned.assign(p, p + bytes);
    append(std::move(t));
  }
  // The same without a copy: `data` must stay valid and unchanged until the last bytes() or
  // write() call.
  void add_borrowed(std::string name, DType dtype, Layout layout, std::vector<std::uint64_t> shape,
                    const void* data, std::size_t bytes) {
    check(name, dtype, layout, shape, data, bytes);
    append(Tensor{std::move(name), dtype, layout, std::move(shape), {}, static_cast<const std::byte*>(data), bytes});
  }

  std::size_t tensor_count() const noexcept { return tensors_.size(); }
  // The length of the file bytes() and write() produce.
  std::uint64_t file_bytes() const { return plan().file_bytes; }

  // The whole file: header, metadata, table, names, data, with the checksum filled in.
  std::vector<std::byte> bytes() const {
    const Plan p = plan();
    std::vector<std::byte> out;
    out.reserve(static_cast<std::size_t>(p.file_bytes));
    emit(p, [&](const void* data, std::size_t n) {
      const auto* b = static_cast<const std::byte*>(data);
      out.insert(out.end(), b, b + n);
    });
    const std::uint64_t sum = xxh64(out.data() + sizeof(FileHeader), out.size() - sizeof(FileHeader));
    FileHeader h = header(p, sum);
    std::memcpy(out.data(), &h, sizeof h);
    return out;
  }

  // Writes the file atomically and durably (DurableFile): on any failure mtlite::Error names the
  // path and the system's reason, and `path` is untouched (the old file, or none).
  void write(const std::string& path) const {
    const Plan p = plan();
    // First pass: the checksum (of everything after the header), so the header goes out first.
    Xxh64 hasher;
    emit_body(p, [&](const void* data, std::size_t n) { hasher.update(data, n); });
    const FileHeader h = header(p, hasher.digest());
    try {
      DurableFile file(path);
      file.write(&h, sizeof h);
      emit_body(p, [&](const void* data, std::size_t n) { file.write(data, n); });
      file.commit();
    } catch (const Error& e) {
      throw Error(std::string("model file: ") + e.what());
    }
  }

 private:
  struct Tensor {
    std::string name;
    DType dtype;
    Layout layout;
    std::vector<std::uint64_t> shape;
    std::vector<std::byte> owned;  // add(): the copy; add_borrowed(): empty
    const std::byte* borrowed;     // add_borrowed(): the caller's data
    std::size_t bytes;
    const std::byte* data() const noexcept { return owned.empty() ? borrowed : owned.data(); }
  };

  // Where everything goes.
  struct Plan {
    std::uint64_t table_offset = 0;
    std::uint64_t names_offset = 0;
    std::vector<std::uint64_t> data_offsets;
    std::uint64_t file_bytes = 0;
  };

  void append(Tensor&& t) {
    names_.insert(t.name);
    try {
      tensors_.push_back(std::move(t));
    } catch (...) {
      names_.erase(t.name);
      throw;
    }
  }

  static std::uint64_t align_up(std::uint64_t x, std::uint64_t a) { return (x + a - 1) / a * a; }

  void check(const std::string& name, DType dtype, Layout layout, const std::vector<std::uint64_t>& shape,
             const void* data, std::size_t bytes) const {
    const std::string where = "model file: tensor " + quote(name) + ": ";
    if (name.empty() || name.size() > kMaxNameBytes) {
      throw Error(where + "a name is 1.." + std::to_string(kMaxNameBytes) + " bytes, this one " +
                  std::to_string(name.size()));
    }
    if (std::string problem = detail::name_problem(name); !problem.empty()) throw Error(where + "name " + problem);
    if (names_.count(name)) throw Error(where + "added twice");
    if (tensors_.size() >= kMaxTensors) {
      throw Error(where + "more than " + std::to_string(kMaxTensors) + " tensors");
    }
    if (!valid_dtype(static_cast<std::uint8_t>(dtype)) || !valid_layout(static_cast<std::uint8_t>(layout))) {
      throw Error(where + "unknown dtype or layout code");
    }
    if (shape.empty() || shape.size() > kMaxRank) {
      throw Error(where + "rank " + std::to_string(shape.size()) + ", expected 1..4");
    }
    const std::string kind =
        std::string(to_string(dtype)) + " " + to_string(layout) + " " + shape_string(shape);
    const std::optional<std::uint64_t> need = tensor_bytes(dtype, layout, shape);
    if (!need) throw Error(where + kind + " has no valid size (a bad combination, a zero dim or an overflow)");
    if (*need != bytes) {
      throw Error(where + std::to_string(bytes) + " bytes given, " + kind + " needs " + std::to_string(*need));
    }
    if (data == nullptr) throw Error(where + "no data");
  }

  Plan plan() const {
    Plan p;
    p.table_offset = align_up(sizeof(FileHeader) + meta_.size(), 8);
    p.names_offset = p.table_offset + tensors_.size() * sizeof(TensorEntry);
    std::uint64_t at = p.names_offset;
    for (const Tensor& t : tensors_) at += t.name.size();
    p.file_bytes = at;
    at = align_up(at, kDataAlign);
    for (const Tensor& t : tensors_) {
      p.data_offsets.push_back(at);
      p.file_bytes = at + t.bytes;
      at = align_up(p.file_bytes, kDataAlign);
    }
    return p;
  }

  FileHeader header(const Plan& p, std::uint64_t checksum) const {
    FileHeader h{};
    std::memcpy(h.magic, kMagic, sizeof kMagic);
    h.major = kMajor;
    h.minor = kMinor;
    h.header_bytes = sizeof(FileHeader);
    h.file_bytes = p.file_bytes;
    h.meta_offset = sizeof(FileHeader);
    h.meta_bytes = meta_.size();
    h.table_offset = p.table_offset;
    h.tensor_count = static_cast<std::uint32_t>(tensors_.size());
    h.flags = 0;
    h.checksum = checksum;
    detail::swap_le(h);
    return h;
  }

  // Calls sink(data, n) for every byte of the file after the header, in order.
  template <class Sink>
  void emit_body(const Plan& p, Sink&& sink) const {
    static constexpr std::byte zeros[kDataAlign] = {};
    std::uint64_t at = sizeof(FileHeader);
    auto pad_to = [&](std::uint64_t offset) {
      while (at < offset) {
        const std::uint64_t n = std::min<std::uint64_t>(offset - at, sizeof zeros);
        sink(zeros, static_cast<std::size_t>(n));
        at += n;
      }
    };
    sink(meta_.data(), meta_.size());
    at += meta_.size();
    pad_to(p.table_offset);
    std::uint64_t name_at = p.names_offset;
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      const Tensor& t = tensors_[i];
      TensorEntry e{};
      e.name_offset = name_at;
      e.name_bytes = static_cast<std::uint32_t>(t.name.size());
      e.dtype = static_cast<std::uint8_t>(t.dtype);
      e.layout = static_cast<std::uint8_t>(t.layout);
      e.rank = static_cast<std::uint8_t>(t.shape.size());
      for (std::size_t d = 0; d < t.shape.size(); ++d) e.dims[d] = t.shape[d];
      e.data_offset = p.data_offsets[i];
      e.data_bytes = t.bytes;
      detail::swap_le(e);
      sink(&e, sizeof e);
      name_at += t.name.size();
    }
    at += tensors_.size() * sizeof(TensorEntry);
    for (const Tensor& t : tensors_) sink(t.name.data(), t.name.size());
    at += name_at - p.names_offset;
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      pad_to(p.data_offsets[i]);
      sink(tensors_[i].data(), tensors_[i].bytes);
      at += tensors_[i].bytes;
    }
  }

  template <class Sink>
  void emit(const Plan& p, Sink&& sink) const {
    const FileHeader placeholder = header(p, 0);
    sink(&placeholder, sizeof placeholder);
    emit_body(p, sink);
  }

  std::string meta_ = "{}";
  std::vector<Tensor> tensors_;
  std::unordered_set<std::string> names_;
};

}  // namespace mtlite::format
