// The smallest C++ program that serves a model file: load (memory-mapped), one session, one
// row (every feature zero, every bag empty), predict, print each output's score. What the size
// test (size.sh) measures, built with the flags of README "Size".
#include <cstdio>
#include <vector>

#include <mtlite/mtlite.hpp>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  try {
    const mtlite::Model model = mtlite::Model::load(argv[1]);
    mtlite::Session session(model, 1);
    std::size_t counts[3] = {0, 0, 0};  // dense, categorical, multi-hot
    for (const mtlite::Feature& f : model.spec().features) ++counts[static_cast<int>(f.kind)];
    const std::vector<float> dense(counts[0], 0.f);
    const std::vector<std::int64_t> ids(counts[1], 0);
    const std::uint32_t empty[2] = {0, 0};
    const std::vector<mtlite::Bag> bags(counts[2], mtlite::Bag{{}, {empty, 2}});
    mtlite::Batch batch;
    batch.rows = 1;
    batch.dense = {dense.data(), dense.size()};
    batch.ids = {ids.data(), ids.size()};
    batch.bags = {bags.data(), bags.size()};
    if (const mtlite::Status s = session.predict(batch); !s) {
      std::printf("%s\n", s.message());
      return 1;
    }
    for (std::size_t o = 0; o < model.num_outputs(); ++o) std::printf("%.6f\n", static_cast<double>(session.score(o, 0)));
  } catch (const std::exception& e) {
    std::printf("%s\n", e.what());
    return 1;
  }
}
