// libFuzzer entry point for the converter: a float .mtl checkpoint (what `mtlite train` writes)
// -> FileView::parse -> the spec in its metadata -> float_weights (the stored tensors read back
// into logical float weights) -> convert (quantized and packed) -> model_writer (the deployable
// file's tensor order, which builds the converted Model). The path of `mtlite convert` on an .mtl
// input (tools/model_io.hpp), minus the file I/O. Every failure must be an mtlite::Error.
#include <cstddef>
#include <cstdint>

#include "mtlite/core/error.hpp"
#include "mtlite/format/reader.hpp"
#include "mtlite/format/spec_json.hpp"
#include "mtlite/offline/convert/converter.hpp"

namespace {

// The conversion options come from the input's size, not its bytes: the same checkpoint, one
// byte longer or shorter (a mutation libFuzzer makes all the time), is converted another way,
// so every dense and table type is reached from every seed without a format of our own.
mtlite::ConvertOptions options_for(std::size_t size) {
  using mtlite::kernels::WeightType;
  static constexpr WeightType dense[] = {WeightType::f32, WeightType::f16, WeightType::i8};
  static constexpr mtlite::DType tables[] = {mtlite::DType::f32, mtlite::DType::f16, mtlite::DType::u8,
                                             mtlite::DType::u4};
  mtlite::ConvertOptions o;
  o.dense = dense[size % 3];
  o.embeddings = tables[(size / 3) % 4];
  o.drop_aux = (size / 12) % 2 == 1;
  o.float_gates = (size / 24) % 2 == 0;
  o.float_heads = (size / 48) % 2 == 0;
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    mtlite::format::ReadOptions ro;
    ro.verify_checksum = false;  // so that mutations reach the structural checks and the converter
    const mtlite::format::FileView view = mtlite::format::FileView::parse(data, size, ro);
    const mtlite::Spec spec = mtlite::spec_from_json(view.metadata().at("spec"));
    mtlite::TensorMap tensors;
    for (const mtlite::format::TensorView& t : view.tensors())
      tensors[t.name] = {t.dtype, t.layout, t.shape, t.data, t.bytes};
    const mtlite::Weights weights = mtlite::float_weights(spec, tensors);
    const mtlite::Converted converted = mtlite::convert(spec, weights, options_for(size));
    (void)mtlite::model_writer(converted.spec, converted.tensors);
  } catch (const mtlite::Error&) {
  }
  return 0;
}
