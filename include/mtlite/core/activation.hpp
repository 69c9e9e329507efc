// The activations a layer may apply to its outputs: used by the spec, the kernels, the trainer
// and the file (as a byte in the spec's JSON names).
#pragma once

#include <cstdint>

namespace mtlite {

enum class Activation : std::uint8_t { identity, relu, sigmoid, tanh };

inline const char* to_string(Activation a) {
  switch (a) {
    case Activation::identity: return "identity";
    case Activation::relu: return "relu";
    case Activation::sigmoid: return "sigmoid";
    case Activation::tanh: return "tanh";
  }
  return "?";
}

}  // namespace mtlite
