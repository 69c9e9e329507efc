// A Model: a validated spec, compiled into steps, with its weights packed for the kernels.
// Immutable after construction; any number of threads may share one, each with its own Session.
#pragma once

#include <string>
#include <utility>

#include "network.hpp"
#include "plan.hpp"
#include "spec.hpp"
#include "weights.hpp"

namespace mtlite {

class Model {
 public:
  // Throws Error when the spec is invalid or the weights do not fit it.
  Model(Spec spec, const Weights& weights) : spec_(std::move(spec)) {
    spec_.validate();
    net_ = build_network(spec_);
    plan_ = internal::compile(spec_, net_, weights);
  }

  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  Model(Model&&) = default;
  Model& operator=(Model&&) = default;

  const Spec& spec() const noexcept { return spec_; }
  const Network& network() const noexcept { return net_; }
  const internal::Plan& plan() const noexcept { return plan_; }

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
  // Bytes of packed weights and tables (with panel padding).
  std::size_t weight_bytes() const noexcept { return plan_.arena.size() * sizeof(float); }

 private:
  Spec spec_;
  Network net_;
  internal::Plan plan_;
};

}  // namespace mtlite
