// A Model: a validated spec, compiled into steps, with its weights bound to the kernels.
// Immutable after construction; any number of threads may share one, each with its own Session.
//
// Where weights come from:
//   Model(spec, weights)             float tensors in memory (copied and packed)
//   Model(spec, tensors)             tensors of any dtype and layout (copied)
//   Model::load(path)                a .mtl file, memory-mapped: weights used in place, no copy
//   Model::from_memory(data, size)   a .mtl image in memory (a model compiled into the program):
//                                    used in place when 64-byte aligned, else copied once
//
// Cost of loading a file of n bytes, hostile or not: O(n) time and memory. The reader's view is
// at most 40n (format/reader.hpp); a spec that needs more tensors than the file holds is refused
// before it is expanded when it needs more than any file can hold (check_tensor_count), so the
// network, the plan and the parameter list are O(number of tensors), a few MB at most; the arena holds copies of what cannot run in place (packing pads
// a layer's outputs to whole 16-row panels: a plain [1, k] weight grows 16 times) plus the i8
// column sums (64 bytes per panel of at least 64): at most 16n. Hashing and the self-test (rows
// <= kMaxSelftestRows, from the metadata) add O(n).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "compile/binder.hpp"
#include "compile/compiler.hpp"
#include "format/json.hpp"
#include "format/mapped_file.hpp"
#include "format/reader.hpp"
#include "format/spec_json.hpp"
#include "network.hpp"
#include "selftest.hpp"
#include "spec.hpp"
#include "tensors.hpp"
#include "weights.hpp"

namespace mtlite {

// The default load maps the file and checks everything that could crash or silently poison
// predictions: the header, every offset, size, dtype, layout and shape (format/reader.hpp), the
// tensors against the spec, and every f32/f16 value for Inf and NaN (compile/binder.hpp). It does
// not hash the file: the checksum guards against damaged bytes (a bad copy, bit rot), which the
// checks above turn into wrong but finite weights at worst, and hashing costs a pass over the
// whole file (~0.3 ms for the 3.3 MB f32 reference model, about as much as the rest of the load:
// bench/load_bench). Ask for it here, or later with Model::verify_checksum(), where files may be
// damaged.
struct LoadOptions {
  bool map = true;               // memory-map the file (else read it into memory)
  bool verify_checksum = false;  // XXH64 of the whole file (FORMAT.md), before anything else
  bool selftest = false;         // run the embedded self-test (Model::verify) before returning
};

// What a model holds, per tensor (for `mtlite inspect`).
struct TensorInfo {
  std::string name;
  DType dtype;
  Layout layout;
  std::vector<std::uint64_t> shape;
  std::uint64_t bytes;
};

class Model {
 public:
  // Throws Error when the spec is invalid or the tensors do not fit it.
  Model(Spec spec, const Weights& weights) : spec_(std::move(spec)) { build(tensor_refs(weights), false); }
  Model(Spec spec, const TensorMap& tensors) : spec_(std::move(spec)) { build(tensors, false); }

  static Model load(const std::string& path, const LoadOptions& options = {}) {
    if (!options.map) {
      auto buffer = std::make_shared<format::FileBuffer>(format::read_file(path));
      Model m = from_image(buffer->data(), buffer->size(), options, path);
      m.storage_ = std::move(buffer);
      return m;
    }
    auto file = std::make_shared<format::MappedFile>(format::MappedFile::open(path));
    Model m = from_image(file->data(), file->size(), options, path);
    m.storage_ = std::move(file);
    return m;
  }

  // The caller keeps `data` alive and unchanged for the model's lifetime when it is 64-byte
  // aligned (then it is used in place); otherwise the image is copied.
  static Model from_memory(const void* data, std::size_t size, const LoadOptions& options = {}) {
    if (reinterpret_cast<std::uintptr_t>(data) % kAlign == 0) return from_image(data, size, options, "memory");
    auto copy = std::make_shared<AlignedBuffer<std::byte>>(size);
    if (size) std::memcpy(copy->data(), data, size);
    Model m = from_image(copy->data(), size, options, "memory");
    m.storage_ = std::move(copy);
    return m;
  }

  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  Model(Model&&) = default;
  Model& operator=(Model&&) = default;

  const Spec& spec() const noexcept { return spec_; }
  const Network& network() const noexcept { return net_; }
  const internal::Plan& plan() const noexcept { return plan_; }
  // The file's metadata (an empty object for models built in code).
  const Json& metadata() const noexcept { return metadata_; }
  const std::vector<TensorInfo>& tensors() const noexcept { return tensors_; }

  std::size_t input_dim() const noexcept { return net_.nodes[0].width; }
  std::size_t num_outputs() const noexcept { return net_.outputs.size(); }
  std::string output_name(std::size_t i) const { return spec_.output_name(i); }
  // Index of the output with this name, or -1.
  int output_index(const std::string& name) const {
    for (std::size_t i = 0; i < num_outputs(); ++i)
      if (spec_.output_name(i) == name) return static_cast<int>(i);
    return -1;
  }

  // Gates, for diagnostics: MMoE has "gate<k>" per task, OMoE one "gate", PLE
  // "ple<l>.task<k>.gate" and "ple<l>.shared.gate".
  std::size_t num_gates() const noexcept { return plan_.gates.size(); }
  const std::string& gate_name(std::size_t g) const { return plan_.gates[g].name; }
  std::size_t gate_width(std::size_t g) const { return plan_.gates[g].width; }

  std::uint64_t parameter_count() const { return mtlite::parameter_count(spec_); }
  // Bytes of all tensors as stored (file or memory).
  std::uint64_t weight_bytes() const noexcept {
    std::uint64_t n = 0;
    for (const TensorInfo& t : tensors_) n += t.bytes;
    return n;
  }
  // Bytes the model copied at load (0 when a file runs entirely in place, apart from i8 column sums).
  std::size_t copied_bytes() const noexcept { return plan_.arena.size(); }

  // Runs the self-test stored in the file (selftest.hpp: inputs and the outputs they must give);
  // throws Error naming the first output that differs. A model without a self-test passes
  // trivially; use has_selftest() to tell.
  bool has_selftest() const { return metadata_.is_object() && metadata_.find("selftest") != nullptr; }
  void verify() const {
    if (const Json* test = metadata_.find("selftest")) check_selftest(*test, spec_, plan_, num_outputs());
  }

  // Checks the file's XXH64 checksum now (LoadOptions::verify_checksum does it at load): throws
  // Error("model file: checksum mismatch: the file is corrupt") when the bytes the model runs
  // from were damaged. Returns false for a model built in code (no file to check), else true.
  bool verify_checksum() const {
    if (!image_) return false;
    format::verify_checksum(image_, image_size_);
    return true;
  }

 private:
  Model() = default;

  static Model from_image(const void* data, std::size_t size, const LoadOptions& options, const std::string& where) {
    format::ReadOptions ro;
    ro.verify_checksum = options.verify_checksum;
    format::FileView file = format::FileView::parse(data, size, ro);
    Model m;
    m.image_ = static_cast<const std::byte*>(data);
    m.image_size_ = size;
    TensorMap tensors;
    for (const format::TensorView& t : file.tensors())
      tensors[t.name] = TensorRef{t.dtype, t.layout, t.shape, t.data, t.bytes};
    m.metadata_ = std::move(file).metadata();
    const Json* spec = m.metadata_.find("spec");
    if (!spec) throw Error("model file (" + where + "): metadata has no \"spec\"");
    try {
      m.spec_ = spec_from_json(*spec);
    } catch (const Error& e) {
      throw Error("model file (" + where + "): spec: " + e.what());
    }
    try {
      m.build(tensors, /*persistent=*/true);
    } catch (const Error& e) {
      throw Error("model file (" + where + "): " + e.what());
    }
    if (options.selftest) m.verify();
    return m;
  }

  void build(const TensorMap& tensors, bool persistent) {
    spec_.validate();
    internal::check_tensor_count(spec_, tensors.size());
    net_ = build_network(spec_);
    internal::Binder binder(spec_, net_, tensors, persistent);
    const auto types = binder.check();
    plan_ = internal::Compiler(net_, [&](const std::string& prefix) { return types.at(prefix); }).run();
    binder.bind(plan_);
    for (const auto& [name, t] : tensors) tensors_.push_back({name, t.dtype, t.layout, t.shape, t.bytes});
    if (metadata_.is_null()) metadata_ = Json::object();
  }

  Spec spec_;
  Network net_;
  internal::Plan plan_;
  Json metadata_;
  std::vector<TensorInfo> tensors_;
  std::shared_ptr<const void> storage_;  // the file's bytes when the model runs from them
  const std::byte* image_ = nullptr;     // the .mtl image it was loaded from (in storage_, or
  std::size_t image_size_ = 0;           // the caller's memory for from_memory)
};

}  // namespace mtlite
