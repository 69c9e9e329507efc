// What the ONNX Runtime comparison needs, from the same sources as bench/reference_bench.cpp:
//   reference.safetensors   the f32 weights, benchmark_weights() (offline/benchmark_model.hpp), under
//                           mtlite's names (dense weight [out, in], bias [out])
//   input.f32               256 x 256 floats, Rng(7) uniform in [-1, 1), as the bench draws them
//   scores_f32.f32          mtlite's f32 scores for those rows, [256, 3] row-major (click, like, share)
//   scores_i8.f32           the same for the int8 model (mtlite::convert with its defaults)
//
//   build/bench/ort_reference_data OUT_DIR
#include <mtlite/mtlite.hpp>
#include <mtlite/offline/benchmark_model.hpp>
#include <mtlite/offline/convert/convert.hpp>
#include <mtlite/offline/convert/safetensors.hpp>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

constexpr std::size_t kRows = 256, kDim = 256;

// Written under a temporary name and renamed: a reader sees the old file or the whole new one.
void write_file(const std::string& path, const void* data, std::size_t bytes) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
    if (!out.flush()) throw mtlite::Error("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path);
}

// Scores, [row][output].
std::vector<float> score(const mtlite::Model& model, const std::vector<float>& x) {
  mtlite::Session session(model, kRows);
  mtlite::Batch batch;
  batch.rows = kRows;
  batch.dense = x;
  if (const mtlite::Status st = session.predict(batch); !st) throw mtlite::Error(st.message());
  const std::size_t outputs = model.num_outputs();
  std::vector<float> out(kRows * outputs);
  for (std::size_t o = 0; o < outputs; ++o)
    for (std::size_t r = 0; r < kRows; ++r) out[r * outputs + o] = session.score(o, r);
  return out;
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc != 2) {
    std::fprintf(stderr, "usage: ort_reference_data OUT_DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  const mtlite::Spec spec = mtlite::benchmark_spec();
  const mtlite::Weights weights = mtlite::benchmark_weights();
  std::vector<std::string> names;
  for (const mtlite::ParamInfo& p : mtlite::parameters(spec)) names.push_back(p.name);
  const std::vector<unsigned char> st = mtlite::safetensors_bytes(weights, names);
  write_file(dir + "/reference.safetensors", st.data(), st.size());

  mtlite::Rng rng(7);
  std::vector<float> x(kRows * kDim);
  for (float& v : x) v = rng.uniform(-1.0f, 1.0f);
  write_file(dir + "/input.f32", x.data(), x.size() * sizeof(float));

  const std::vector<float> f32 = score(mtlite::Model(spec, weights), x);
  write_file(dir + "/scores_f32.f32", f32.data(), f32.size() * sizeof(float));
  mtlite::ConvertOptions options;
  options.dense = mtlite::kernels::WeightType::i8;
  const std::vector<float> i8 = score(mtlite::convert(spec, weights, options).model(), x);
  write_file(dir + "/scores_i8.f32", i8.data(), i8.size() * sizeof(float));
  std::printf("%s: %zu tensors, inputs and scores of %zu rows\n", dir.c_str(), names.size(), kRows);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "ort_reference_data: %s\n", e.what());
  return 1;
}
