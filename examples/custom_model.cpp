// A model of your own: dense, categorical, hashed and multi-hot features feeding an MMoE with two
// tasks, scored for a small batch. Weights here are seeded random; a trained model brings its own.
//
//   build/examples/custom_model
#include <mtlite/mtlite.hpp>

#include <cstdint>
#include <cstdio>
#include <limits>

int main() {
  mtlite::Spec spec;
  spec.features = {
      mtlite::Feature::dense("age", mtlite::Normalization::standardize, /*mean=*/38.0f, /*stddev=*/12.0f),
      mtlite::Feature::dense("price", mtlite::Normalization::log1p),
      mtlite::Feature::categorical("country", /*vocabulary=*/200, /*dim=*/8),
      mtlite::Feature::hashed("item", /*buckets=*/1 << 16, /*dim=*/16),
      mtlite::Feature::multi_hot("recent_categories", /*vocabulary=*/50, /*dim=*/8, mtlite::Pooling::mean),
  };
  spec.tasks.resize(2);
  spec.tasks[0].name = "click";
  spec.tasks[1].name = "purchase";
  for (mtlite::Task& t : spec.tasks) t.tower = mtlite::mlp({32});
  spec.architecture = mtlite::Architecture::mmoe;
  spec.num_experts = 4;
  spec.expert = mtlite::mlp({64, 32});

  // Throws mtlite::Error naming the field or tensor at fault.
  const mtlite::Model model(spec, mtlite::random_weights(spec, /*seed=*/1, /*bias_range=*/0.1f));
  mtlite::Session session(model, /*max_batch=*/64);

  // Two rows. Dense and ids are row-major, features in spec order within each kind.
  const float dense[] = {41.0f, 19.99f,   // row 0: age, price
                         29.0f, 250.0f};  // row 1
  const std::int64_t ids[] = {12, static_cast<std::int64_t>(mtlite::hash_string("sku-1")),   // row 0
                              999, static_cast<std::int64_t>(mtlite::hash_string("sku-2"))};  // row 1: 999 is unknown -> OOV row
  const std::int64_t categories[] = {3, 17, 17, 42};  // row 0: {3, 17}; row 1: {17, 42}
  const std::uint32_t offsets[] = {0, 2, 4};
  const mtlite::Bag bags[] = {{categories, offsets}};

  mtlite::Batch batch;
  batch.rows = 2;
  batch.dense = dense;
  batch.ids = ids;
  batch.bags = bags;
  if (mtlite::Status st = session.predict(batch); !st) {
    std::fprintf(stderr, "predict: %s\n", st.message());
    return 1;
  }
  for (std::size_t row = 0; row < session.rows(); ++row)
    std::printf("row %zu: click %.4f  purchase %.4f\n", row,
                session.score(static_cast<std::size_t>(model.output_index("click")), row),
                session.score(static_cast<std::size_t>(model.output_index("purchase")), row));

  // Bad input is reported, not crashed on: here a NaN price.
  const float bad[] = {41.0f, std::numeric_limits<float>::quiet_NaN(), 29.0f, 250.0f};
  batch.dense = bad;
  const mtlite::Status st = session.predict(batch);
  std::printf("with a NaN price: %s\n", st ? "ok" : st.message());
  return st ? 1 : 0;
}
