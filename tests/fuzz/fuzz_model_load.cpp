// libFuzzer entry point for the whole load path: bytes -> Model::from_memory (the reader, the
// spec in the metadata, the binder's tensor checks, the compiler) -> verify() (the embedded
// self-test) -> one predict of valid-shaped inputs through a Session. Any bytes must load or
// throw mtlite::Error; whatever loads must run. Anything else (a sanitizer report, another
// exception, a predict that refuses valid inputs) is a bug.
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "mtlite/core/error.hpp"
#include "mtlite/model.hpp"
#include "mtlite/offline/random_inputs.hpp"
#include "mtlite/session.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    // The checksum is off (the default) so that mutations reach the checks behind it; libFuzzer's
    // buffer is rarely 64-byte aligned, so this also takes from_memory's copying path.
    const mtlite::Model model = mtlite::Model::from_memory(data, size);
    model.verify();
    // Three rows: more than one, fewer than a chunk; the seed varies with the input so that the
    // ids (some out of vocabulary, on purpose) differ between inputs of one model.
    const std::size_t rows = 3;
    mtlite::Session session(model, rows);
    const mtlite::RandomInputs inputs(model.spec(), rows, size);
    const mtlite::Status status = session.predict(inputs.batch());
    // The inputs are valid by construction, so the only refusal allowed is an overflow (finite
    // but huge weights, which the loader accepts, can make a score infinite); any other means
    // the model and its session disagree. A successful predict's scores must be finite.
    if (!status && status.code() != mtlite::StatusCode::overflow) __builtin_trap();
    if (status)
      for (std::size_t o = 0; o < model.num_outputs(); ++o)
        for (std::size_t r = 0; r < rows; ++r)
          if (!std::isfinite(session.score(o, r))) __builtin_trap();
  } catch (const mtlite::Error&) {
  }
  return 0;
}
