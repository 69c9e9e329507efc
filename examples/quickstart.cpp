// Quick start: build a multi-task model in code, rank a batch of candidate items with it, and
// time it. The model is the standard reference MMoE (8 experts, 3 tasks: click, like, share)
// with seeded random weights; the candidates are random feature vectors.
//
//   build/examples/quickstart [candidates]      (default 100)
#include <mtlite/mtlite.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <vector>

int main(int argc, char** argv) {
  const std::size_t candidates = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100;
  if (candidates == 0) {
    std::fprintf(stderr, "usage: quickstart [candidates >= 1]\n");
    return 2;
  }

  // 1. The architecture and its weights. A trained model would come from a .mtl file.
  const mtlite::Spec spec = mtlite::reference_spec();
  const mtlite::Model model(spec, mtlite::random_weights(spec, /*seed=*/42, /*bias_range=*/0.1f));
  std::printf("model: %s, %zu experts, %zu tasks, %llu parameters, input width %zu, kernels %s\n",
              mtlite::to_string(spec.architecture), static_cast<std::size_t>(spec.num_experts),
              spec.tasks.size(), static_cast<unsigned long long>(model.parameter_count()),
              model.input_dim(), mtlite::kernels::backend_name());

  // 2. One row per candidate item: here 256 dense features each.
  mtlite::Rng rng(7);
  std::vector<float> features(candidates * model.input_dim());
  for (float& v : features) v = rng.uniform(-1.0f, 1.0f);
  mtlite::Batch batch;
  batch.rows = candidates;
  batch.dense = features;

  // 3. Score them all in one call. A Session owns the scratch memory: one per thread.
  mtlite::Session session(model, candidates);
  if (mtlite::Status st = session.predict(batch); !st) {
    std::fprintf(stderr, "predict failed: %s\n", st.message());
    return 1;
  }

  // 4. Rank by a blend of the task scores and show the top ten.
  const float blend[] = {1.0f, 0.5f, 0.25f};  // click, like, share
  std::vector<float> value(candidates, 0.0f);
  for (std::size_t t = 0; t < model.num_outputs(); ++t)
    for (std::size_t i = 0; i < candidates; ++i) value[i] += blend[t] * session.score(t, i);
  std::vector<std::size_t> order(candidates);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return value[a] > value[b]; });

  std::printf("\nrank  item    value");
  for (std::size_t t = 0; t < model.num_outputs(); ++t) std::printf("  %8s", model.output_name(t).c_str());
  std::printf("\n");
  for (std::size_t r = 0; r < std::min<std::size_t>(10, candidates); ++r) {
    const std::size_t i = order[r];
    std::printf("%4zu  %4zu  %7.4f", r + 1, i, value[i]);
    for (std::size_t t = 0; t < model.num_outputs(); ++t) std::printf("  %8.4f", session.score(t, i));
    std::printf("\n");
  }

  // 5. Time it: the median of 200 calls after warm-up, one thread.
  std::vector<double> us;
  for (int i = 0; i < 220; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    (void)session.predict(batch);
    const auto t1 = std::chrono::steady_clock::now();
    if (i >= 20) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::nth_element(us.begin(), us.begin() + us.size() / 2, us.end());
  const double median = us[us.size() / 2];
  std::printf("\n%zu candidates: %.1f us per batch, %.2f us per candidate (median of %zu calls)\n",
              candidates, median, median / static_cast<double>(candidates), us.size());
  return 0;
}
