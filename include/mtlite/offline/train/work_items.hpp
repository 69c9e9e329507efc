// How a training step cuts its work into the items of its parallel regions
// (ThreadPool::for_each). Each item writes only its own output and every sum runs in item order,
// so results are bit-identical for a given seed, thread count and batch sequence however the OS
// schedules the threads; for that the cuts depend on sizes and the thread count only, never on
// timing.
//
//   shards   contiguous rows of a batch: the items of the forward/backward region, each with
//            its own gradient buffers. One thread: one shard; more: up to four per thread, of at
//            least 64 rows, so that a thread held back by the OS is covered by the others.
//   pieces   column ranges of the parameter blocks: the items of the dense reduction and
//            update, four per thread and block (at least a vector wide).
//   groups   ranges of neighbouring tables: the items of the embedding scatter and update, two
//            per thread.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "math.hpp"
#include "program.hpp"

namespace mtlite::train {

// Rows [begin, end) of a batch.
struct RowRange {
  std::size_t begin, end;
};

inline std::size_t shard_count(std::size_t rows, std::size_t threads) {
  if (threads == 1) return 1;
  const std::size_t by_rows = (rows + 63) / 64;
  return std::max<std::size_t>(1, std::min(4 * threads, by_rows));
}

// Shard s of S over `rows` rows.
inline RowRange shard_rows(std::size_t rows, std::size_t s, std::size_t S) {
  return {rows * s / S, rows * (s + 1) / S};
}

// Columns [o0, o1) of a block: every row of Wt, the bias, and rows [o0, o1) of the W copy.
struct ColumnPiece {
  std::size_t block, o0, o1;
};

// Calls f(offset) with the arena offset of each run of a piece of block b, o1 - o0 floats long:
// the rows of Wt in order, then the bias.
template <class F>
void for_each_piece_run(const ParamBlock& b, const ColumnPiece& c, F&& f) {
  for (std::size_t i = 0; i <= b.in; ++i) f((i < b.in ? b.wt + i * b.out : b.bias) + c.o0);
}

// Tables [first, last).
struct TableGroup {
  std::size_t first, last;
};

// The items of the reduction and update regions: the pieces, then the groups.
struct WorkItems {
  std::vector<ColumnPiece> pieces;
  std::vector<TableGroup> groups;

  WorkItems(const Program& p, std::size_t threads) {
    for (std::size_t b = 0; b < p.blocks.size(); ++b) {
      const std::size_t out = p.blocks[b].out;
      const std::size_t n = threads == 1 ? 1 : std::max<std::size_t>(1, std::min(4 * threads, out / math::kPad));
      for (std::size_t j = 0; j < n; ++j) pieces.push_back({b, out * j / n, out * (j + 1) / n});
    }
    const std::size_t tables = p.tables.size();
    const std::size_t g = threads == 1 ? 1 : std::min(tables, 2 * threads);
    for (std::size_t j = 0; j < g && tables; ++j) groups.push_back({tables * j / g, tables * (j + 1) / g});
  }

  std::size_t size() const noexcept { return pieces.size() + groups.size(); }

  // Item i: on_piece(piece) for i < pieces.size(), else on_group(group).
  template <class OnPiece, class OnGroup>
  void visit(std::size_t i, OnPiece&& on_piece, OnGroup&& on_group) const {
    if (i < pieces.size())
      on_piece(pieces[i]);
    else
      on_group(groups[i - pieces.size()]);
  }
};

}  // namespace mtlite::train
