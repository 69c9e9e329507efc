// The standard benchmark model of docs/performance.md (`mtlite bench --reference`): dense input
// D = 256, 8 experts each 256->256->128 ReLU, 3 binary tasks each with a softmax gate
// Linear(256->8) and a tower 128->64->1 sigmoid. 820,635 parameters, 1.64 MFLOP per example.
#pragma once

#include <string>

#include "../spec.hpp"
#include "../weights.hpp"

namespace mtlite {

inline Spec benchmark_spec() {
  Spec s;
  for (int i = 0; i < 256; ++i) s.features.push_back(Feature::dense("d" + std::to_string(i)));
  for (const char* name : {"click", "like", "share"}) {
    Task t;
    t.name = name;
    t.tower = mlp({64});
    s.tasks.push_back(t);
  }
  s.architecture = Architecture::mmoe;
  s.num_experts = 8;
  s.expert = mlp({256, 128});
  return s;
}

// The weights every benchmark and peer of the reference model uses: seed 42, biases in +-0.1.
inline Weights benchmark_weights() { return random_weights(benchmark_spec(), 42, 0.1f); }

// Multiply-adds per example, times two.
inline double benchmark_flops_per_example() { return 1640832.0; }

}  // namespace mtlite
