// Writes a small valid model file (every dtype and layout, metadata with nesting) for the fuzz
// seed corpus: make_seed_model PATH
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "mtlite/core/error.hpp"
#include "mtlite/offline/convert/writer.hpp"

int main(int argc, char** argv) {
  using namespace mtlite::format;
  using mtlite::DType;
  using mtlite::Layout;
  using mtlite::tensor_bytes;
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seed_model PATH\n");
    return 2;
  }
  try {
    FileWriter w;
    w.set_metadata(mtlite::Json::object()
                       .set("format", "mtlite")
                       .set("spec", mtlite::Json::object().set("tasks", mtlite::Json::array({"ctr", "cvr"})))
                       .set("selftest", mtlite::Json::object().set("rows", 1).set("tolerance", 1e-4)));
    auto add = [&](const char* name, DType d, Layout l, std::vector<std::uint64_t> shape) {
      const std::uint64_t bytes = *tensor_bytes(d, l, shape);
      std::vector<std::uint8_t> data(bytes);
      for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 7 + 1);
      w.add(name, d, l, std::move(shape), data.data(), data.size());
    };
    add("expert0.0.weight", DType::f32, Layout::panels16, {16, 3});
    add("expert0.0.bias", DType::f32, Layout::padded16, {16});
    add("gate0.weight", DType::f16, Layout::panels16, {2, 3});
    add("tower0.0.weight", DType::i8, Layout::panels16x4, {17, 5});
    add("tower0.0.weight.scale", DType::f32, Layout::padded16, {17});
    add("embedding.city", DType::u4, Layout::rows_q, {4, 5});
    add("embedding.\xc3\xa9t\xc3\xa9", DType::u8, Layout::rows_q, {3, 2});
    add("embedding.dense", DType::f16, Layout::plain, {2, 2, 2});
    w.write(argv[1]);
  } catch (const mtlite::Error& e) {
    std::fprintf(stderr, "make_seed_model: %s\n", e.what());
    return 1;
  }
  return 0;
}
