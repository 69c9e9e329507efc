// libFuzzer entry point for the .safetensors reader (offline/convert/safetensors.hpp), from
// memory: any bytes must parse or throw mtlite::Error. Whatever parses is checked against what the
// reader promises (every tensor's data is its shape's element count) and renamed through a
// "tensors" map the way model.json applies one.
#include <cstddef>
#include <cstdint>

#include "mtlite/core/error.hpp"
#include "mtlite/format/json.hpp"
#include "mtlite/offline/convert/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const mtlite::SafetensorsFile file = mtlite::parse_safetensors(data, size);
    mtlite::Json map = mtlite::Json::object();
    for (const auto& [name, t] : file.tensors) {
      std::uint64_t n = 1;
      for (std::uint64_t d : t.shape) n *= d;
      if (n != t.data.size()) __builtin_trap();
      map.set("renamed." + name, name);
    }
    const mtlite::Weights renamed = mtlite::rename_tensors(file.tensors, map);
    if (renamed.size() != file.tensors.size()) __builtin_trap();
    // The writer's bytes of what was read must read back to the same tensors.
    std::vector<std::string> names;
    for (const auto& kv : file.tensors) names.push_back(kv.first);
    const std::vector<unsigned char> again = mtlite::safetensors_bytes(file.tensors, names);
    const mtlite::Weights back = mtlite::read_safetensors(again.data(), again.size());
    if (back.size() != file.tensors.size()) __builtin_trap();
    for (const auto& [name, t] : file.tensors) {
      const mtlite::Tensor& b = back.at(name);
      if (b.shape != t.shape || b.data.size() != t.data.size()) __builtin_trap();
      for (std::size_t i = 0; i < t.data.size(); ++i)
        if (!(b.data[i] == t.data[i]) && !(b.data[i] != b.data[i] && t.data[i] != t.data[i])) __builtin_trap();
    }
  } catch (const mtlite::Error&) {
  }
  return 0;
}
