// The compiled form of a model: a flat list of steps over numbered buffers, and the packed
// weights they read. Compiling happens once, when a Model is made (compiler.hpp walks the graph,
// binder.hpp puts the weights in place); predicting walks the steps.
//
// Buffers
//   0  scores   one column per output, rows contiguous: scores[output][row]   (in the Session)
//   1  gates    the kept gate weights, row-major [row][all gates' experts]     (in the Session)
//   2+ scratch  row-major [row][ld], ld a multiple of 16 floats; one chunk of rows at a time
// Buffers 0 and 1 hold the whole batch; scratch holds the current chunk only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/aligned_buffer.hpp"
#include "../core/dtype.hpp"
#include "../kernels/packed.hpp"
#include "../spec.hpp"

namespace mtlite::internal {

inline constexpr std::uint32_t kScores = 0;
inline constexpr std::uint32_t kGates = 1;
inline constexpr std::uint32_t kFirstScratch = 2;

// The first column of a range in a buffer; widths live in the step.
struct Operand {
  std::uint32_t buffer = 0;
  std::uint32_t col = 0;
  bool operator==(const Operand& o) const { return buffer == o.buffer && col == o.col; }
};

struct Step {
  enum class Kind : std::uint8_t {
    gather,   // x from the inputs -> out
    dense,    // out = layers[index](in)
    softmax,  // softmax of `width` values at out, in place
    mix,      // out = sum_e in[e] * mixes[index].experts[e]   (in = the gate's weights)
    product,  // out = in * in2, width 1
    copy,     // out = in, `width` values
  };
  Kind kind = Kind::gather;
  Operand in, in2, out;
  std::uint32_t width = 0;
  std::uint32_t index = 0;
};

// One block of a packed layer: a dense layer of the network ("expert0.0", "gate1", ...).
struct Block {
  std::string prefix;  // tensors "<prefix>.weight", "<prefix>.bias" (and "<prefix>.weight.scale")
  std::size_t units = 0;
  Activation act = Activation::identity;
};

// A packed layer: one block, or several fused blocks that read the same input, each padded to
// whole panels. The pointers go into the model file (in place) or into Plan::arena.
struct PackedLayer {
  kernels::WeightType type = kernels::WeightType::f32;
  std::size_t k = 0, n = 0;
  std::vector<Block> blocks;
  std::vector<Activation> act;  // per panel
  const void* panels = nullptr;
  const float* bias = nullptr;
  const float* scale = nullptr;
  const std::int32_t* colsum = nullptr;
  bool in_place = false;  // executes straight from the model file

  kernels::DenseView view() const { return {k, n, panels, bias, act.data(), type, scale, colsum}; }
};

struct MixInfo {
  std::vector<Operand> experts;
};

// An embedding table: f32 or f16 rows (plain), or u8 / u4 quantized rows (rows_q).
struct TableInfo {
  DType dtype = DType::f32;
  const std::byte* data = nullptr;
  std::uint64_t rows = 0;
  std::uint32_t dim = 0;
  std::uint64_t stride = 0;  // bytes per row
};

struct GateInfo {
  std::string name;
  std::uint32_t width = 0;
  std::uint32_t col = 0;  // first column in the gates buffer
};

struct Plan {
  std::vector<std::uint32_t> buffer_ld;  // per buffer; scratch only (0 for buffers 0 and 1)
  std::vector<Step> steps;
  std::vector<PackedLayer> layers;
  std::vector<MixInfo> mixes;
  std::vector<TableInfo> tables;  // per feature; rows == 0 for dense features
  std::vector<GateInfo> gates;
  std::uint32_t gate_width = 0;   // sum of gate widths
  AlignedBuffer<std::byte> arena; // weights packed or copied at load, and i8 column sums

  std::size_t scratch_per_row() const {
    std::size_t n = 0;
    for (std::size_t b = kFirstScratch; b < buffer_ld.size(); ++b) n += buffer_ld[b];
    return n;
  }
  // The widest input of an i8 layer (0 without i8 layers): sizes the Session's byte scratch.
  std::size_t max_i8_inputs() const {
    std::size_t k = 0;
    for (const PackedLayer& L : layers)
      if (L.type == kernels::WeightType::i8 && L.k > k) k = L.k;
    return k;
  }
};

}  // namespace mtlite::internal
