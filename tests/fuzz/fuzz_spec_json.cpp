// libFuzzer entry point for the JSON a spec arrives in: bytes -> Json::parse -> spec_from_json
// -> Spec::validate -> the network and parameter list built from it; and the same JSON read as a
// model.json by the tools' data layer (DataBinding::spec_from_model_json and from_json, its
// check against the spec and its stored form). Both must accept the text or throw
// mtlite::Error. What is accepted must round-trip: a spec written out and read back is the same
// spec, and a binding's stored form reads back to the same stored form.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "data/binding.hpp"
#include "mtlite/core/error.hpp"
#include "mtlite/format/json.hpp"
#include "mtlite/format/spec_json.hpp"
#include "mtlite/network.hpp"
#include "mtlite/weights.hpp"

namespace {

void library_spec(const mtlite::Json& j) {
  try {
    const mtlite::Spec spec = mtlite::spec_from_json(j);
    spec.validate();
    const mtlite::Network net = mtlite::build_network(spec);
    volatile std::uint64_t sink = 0;
    for (const mtlite::ParamInfo& p : mtlite::parameters(spec, net)) sink = sink + p.numel();
    const std::string once = mtlite::spec_to_json(spec).dump();
    const std::string twice = mtlite::spec_to_json(mtlite::spec_from_json(mtlite::Json::parse(once))).dump();
    if (once != twice) __builtin_trap();
  } catch (const mtlite::Error&) {
  }
}

void model_json(const mtlite::Json& j) {
  try {
    const mtlite::Spec spec = mtlite::data::DataBinding::spec_from_model_json(j);
    const mtlite::data::DataBinding binding = mtlite::data::DataBinding::from_json(j);
    (void)binding.fitted();
    (void)binding.csv_options();
    try {
      binding.check(spec);
    } catch (const mtlite::Error&) {  // an unfitted binding may disagree on sizes: go on
    }
    const std::string once = binding.to_json().dump();
    const std::string twice = mtlite::data::DataBinding::from_json(mtlite::Json::parse(once)).to_json().dump();
    if (once != twice) __builtin_trap();
  } catch (const mtlite::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mtlite::Json j;
  try {
    j = mtlite::Json::parse(std::string_view(reinterpret_cast<const char*>(data), size));
    // What parses must dump to text that parses to the same dump.
    const std::string text = j.dump();
    if (mtlite::Json::parse(text).dump() != text) __builtin_trap();
  } catch (const mtlite::Error&) {
    return 0;
  }
  library_spec(j);
  // A model file's metadata holds the spec under "spec": reach it from files' metadata too.
  if (const mtlite::Json* s = j.is_object() ? j.find("spec") : nullptr) library_spec(*s);
  model_json(j);
  return 0;
}
