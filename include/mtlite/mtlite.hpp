// mtlite: multi-task recommendation models, fast and small. Include this one header.
//
//   mtlite::Spec spec = ...;                          // spec.hpp: features, tasks, architecture
//   mtlite::Model model(spec, weights);               // weights.hpp: float tensors by name
//   mtlite::Session session(model, 256);              // one per thread
//   if (auto st = session.predict(batch); !st) ...    // st.message() says what was wrong
//   session.scores(model.output_index("click"));      // one score per row
#pragma once

#include "config.hpp"
#include "error.hpp"
#include "hash.hpp"
#include "input.hpp"
#include "kernels/kernels.hpp"
#include "model.hpp"
#include "network.hpp"
#include "random.hpp"
#include "reference.hpp"
#include "session.hpp"
#include "span.hpp"
#include "spec.hpp"
#include "version.hpp"
#include "weights.hpp"
