// A Session runs a Model: it owns every buffer predict touches, so predict allocates nothing,
// throws nothing and shares nothing writable. Use one Session per thread; many Sessions may
// share one Model. The Model must outlive its Sessions and stay where it is.
//
//   Session(model, max_batch, keep_gates)   max_batch: the most rows one predict call may pass;
//                                           keep_gates: also keep every gate's weights per row
//   predict(batch) -> Status                on error nothing is computed and the message names
//                                           the input at fault (valid until the next call)
//   scores(output), score(output, row)      the last successful predict's results
//   gate(g, row)                            the weights gate g gave its experts (keep_gates)
//
// The work itself is internal::Executor's (executor.hpp): rows go through the network in chunks
// of MTLITE_CHUNK_ROWS, so the scratch memory is fixed by the chunk, not by the batch.
#pragma once

#include <cstddef>

#include "executor.hpp"
#include "model.hpp"

namespace mtlite {

class Session : public internal::Executor {
 public:
  explicit Session(const Model& model, std::size_t max_batch = 256, bool keep_gates = false)
      : Executor(model.spec(), model.plan(), model.num_outputs(), max_batch, keep_gates), model_(&model) {}

  const Model& model() const noexcept { return *model_; }

 private:
  const Model* model_;
};

}  // namespace mtlite
