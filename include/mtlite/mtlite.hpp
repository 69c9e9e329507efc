// mtlite: multi-task recommendation models, fast and small. Include this one header to serve
// models; the offline tools have their own umbrellas: offline/train/train.hpp (the trainer),
// offline/convert/convert.hpp (converter, quantizers, writer, safetensors), offline/metrics.hpp,
// offline/benchmark_model.hpp and offline/random_inputs.hpp.
//
//   mtlite::Spec spec = ...;                          // spec.hpp: features, tasks, architecture
//   mtlite::Model model(spec, weights);               // weights.hpp: float tensors by name
//   mtlite::Session session(model, 256);              // one per thread
//   if (auto st = session.predict(batch); !st) ...    // st.message() says what was wrong
//   session.scores(model.output_index("click"));      // one score per row
#pragma once

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/hash.hpp"
#include "core/random.hpp"
#include "core/span.hpp"
#include "feature_ids.hpp"
#include "input.hpp"
#include "kernels/kernels.hpp"
#include "model.hpp"
#include "network.hpp"
#include "selftest.hpp"
#include "session.hpp"
#include "spec.hpp"
#include "version.hpp"
#include "weights.hpp"
