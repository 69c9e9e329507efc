// A binding held against its spec (check()) and against what load() needs (fitted()): the two
// questions the tools ask before reading data with a binding.
#include "binding_check.hpp"

#include <algorithm>
#include <cstdint>
#include <string>

namespace mtlite::data {
namespace {

void check_features(const DataBinding& b, const Spec& spec, bool sizes) {
  if (spec.features.size() != b.features.size())
    throw Error("data: the bindings name " + std::to_string(b.features.size()) +
                " features, the spec has " + std::to_string(spec.features.size()));
  for (std::size_t i = 0; i < b.features.size(); ++i) {
    const FeatureBinding& f = b.features[i];
    const Feature& s = spec.features[i];
    const std::string at = "data: feature " + std::to_string(i) + " ('" + f.name + "')";
    if (f.name != s.name) throw Error(at + " is '" + s.name + "' in the spec");
    if (f.kind != s.kind)
      throw Error(at + " is " + to_string(f.kind) + " here but " + to_string(s.kind) + " in the spec");
    if (f.kind != FeatureKind::dense && f.mapping != s.mapping)
      throw Error(at + ": the id mapping differs from the spec's");
    if (sizes && f.uses_vocabulary() && f.vocabulary &&
        s.size != std::max<std::uint64_t>(1, f.vocabulary->size()))
      throw Error(at + ": the spec's size " + std::to_string(s.size) + " disagrees with the " +
                  std::to_string(f.vocabulary->size()) + " values of its vocabulary");
  }
}

void check_tasks(const DataBinding& b, const Spec& spec) {
  if (spec.tasks.size() != b.tasks.size())
    throw Error("data: the bindings name " + std::to_string(b.tasks.size()) + " tasks, the spec has " +
                std::to_string(spec.tasks.size()));
  for (std::size_t k = 0; k < b.tasks.size(); ++k) {
    const std::string at = "data: task " + std::to_string(k) + " ('" + b.tasks[k].name + "')";
    if (b.tasks[k].name != spec.tasks[k].name) throw Error(at + " is '" + spec.tasks[k].name + "' in the spec");
    if (b.tasks[k].kind != spec.tasks[k].kind) throw Error(at + ": the kind differs from the spec's");
  }
}

}  // namespace

void check_against(const DataBinding& b, const Spec& spec, bool sizes) {
  check_features(b, spec, sizes);
  check_tasks(b, spec);
}

void DataBinding::check(const Spec& spec) const { check_against(*this, spec, true); }

std::string DataBinding::unfitted_reason() const {
  for (const FeatureBinding& f : features) {
    if (f.uses_vocabulary() && !f.vocabulary) return "feature '" + f.name + "' has no vocabulary";
    if (f.kind == FeatureKind::dense && !f.fill) return "feature '" + f.name + "' has no fill value";
    if (f.fit_stats && !f.stats_fitted) return "feature '" + f.name + "' has no mean and stddev";
  }
  return {};
}

}  // namespace mtlite::data
