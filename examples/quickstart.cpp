// Quick start, last step: load a trained model file and rank candidate items for one user, the
// way an app or a game would on the device.
//
//   build/examples/quickstart MODEL.mtl [candidates]      (default 200)
//
// MODEL.mtl is a model of the funnel data (`mtlite synth funnel`, examples/funnel/model.json),
// typically int8 with the auxiliary heads dropped: scripts/quickstart.sh trains and converts one.
// The candidates are a made-up catalogue (seeded): in an app they come from the item store.
#include <mtlite/mtlite.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double microseconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: quickstart MODEL.mtl [candidates]\n");
    return 2;
  }
  const std::size_t candidates = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 200;
  if (candidates == 0 || candidates > 100000) {
    std::fprintf(stderr, "quickstart: candidates must be in 1..100000\n");
    return 2;
  }

  // 1. Open the model: the file is memory-mapped and its weights used in place. Every count,
  //    offset and shape is checked first; a bad file is an Error that says what is wrong.
  const auto t_open = Clock::now();
  std::optional<mtlite::Model> loaded;
  try {
    loaded = mtlite::Model::load(argv[1]);
  } catch (const mtlite::Error& e) {
    std::fprintf(stderr, "quickstart: %s\n", e.what());
    return 1;
  }
  const mtlite::Model& model = *loaded;
  const mtlite::Spec& spec = model.spec();
  // The trainer's encoding of raw categorical values, read from the file's metadata once.
  std::optional<mtlite::FeatureIds> feature_ids;
  try {
    feature_ids.emplace(model);
  } catch (const mtlite::Error& e) {
    std::fprintf(stderr, "quickstart: %s\n", e.what());
    return 1;
  }
  std::printf("%s: %s, %zu output%s (", argv[1], mtlite::to_string(spec.architecture), model.num_outputs(),
              model.num_outputs() == 1 ? "" : "s");
  for (std::size_t o = 0; o < model.num_outputs(); ++o) std::printf("%s%s", o ? ", " : "", model.output_name(o).c_str());
  std::printf("), %llu parameters, kernels %s\n", static_cast<unsigned long long>(model.parameter_count()),
              mtlite::kernels::backend_name());

  // 2. One row per candidate, features in spec order: dense values and categorical ids. Raw
  //    categorical values become ids as training made them: integer-valued features keep their
  //    values, string values (device) go through the vocabulary stored in the file.
  const std::int64_t user = 42, device = feature_ids->id("device", "mobile");
  std::vector<float> dense;
  std::vector<std::int64_t> ids;
  mtlite::Rng rng(7);
  for (std::size_t c = 0; c < candidates; ++c) {
    const std::int64_t item = static_cast<std::int64_t>((c * 37) % 2000);
    const double price = std::exp(3.0 + 0.8 * rng.normal());
    const float discount = static_cast<float>(rng.next() % 4) * 0.1f;
    for (const mtlite::Feature& f : spec.features) {
      const std::string& n = f.name;
      if (f.kind == mtlite::FeatureKind::dense) {
        float v = 0.0f;
        if (n == "price") v = static_cast<float>(std::round(price * (1.0 - discount) * 100.0) / 100.0);
        else if (n == "discount") v = discount;
        else if (n == "item_rating") v = std::round(rng.uniform(3.0f, 5.0f) * 10.0f) / 10.0f;
        else if (n == "item_popularity") v = std::floor(std::exp(5.0f + 1.5f * static_cast<float>(rng.normal())));
        else if (n == "user_activity") v = 12.0f;
        else if (n == "user_tenure_days") v = 365.0f;
        dense.push_back(v);
      } else if (f.kind == mtlite::FeatureKind::categorical) {
        std::int64_t id = 0;
        if (n == "user_id") id = user;
        else if (n == "item_id") id = item;
        else if (n == "position") id = 0;  // score every candidate as if in the top slot
        else if (n == "device") id = device;
        else if (n == "hour") id = 20;
        else if (n == "user_segment") id = 3;
        else if (n == "item_category") id = static_cast<std::int64_t>(rng.next() % 32);
        ids.push_back(id);
      }
    }
  }
  mtlite::Batch batch;
  batch.rows = candidates;
  batch.dense = dense;
  batch.ids = ids;

  // 3. Score them all in one call. A Session owns the scratch memory (one per thread); predict
  //    allocates nothing and reports bad input as a Status.
  mtlite::Session session(model, candidates);
  if (mtlite::Status st = session.predict(batch); !st) {
    std::fprintf(stderr, "quickstart: predict failed: %s\n", st.message());
    return 1;
  }
  const auto t_first = Clock::now();
  std::printf("opened, checked and scored %zu candidates in %.2f ms\n", candidates,
              microseconds(t_open, t_first) / 1000.0);

  // 4. Rank by the main output (the first served one) and show the top ten.
  std::vector<std::size_t> order(candidates);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return session.score(0, a) > session.score(0, b); });
  std::printf("\nuser %lld, top 10 of %zu candidates by %s:\n rank  item  category", static_cast<long long>(user),
              candidates, model.output_name(0).c_str());
  for (std::size_t o = 0; o < model.num_outputs(); ++o) std::printf("  %10s", model.output_name(o).c_str());
  std::printf("\n");
  const std::size_t n_ids = ids.size() / candidates;
  std::size_t item_col = 0, cat = 0, k = 0;
  for (const mtlite::Feature& f : spec.features) {
    if (f.kind != mtlite::FeatureKind::categorical) continue;
    if (f.name == "item_id") item_col = k;
    if (f.name == "item_category") cat = k;
    ++k;
  }
  for (std::size_t r = 0; r < std::min<std::size_t>(10, candidates); ++r) {
    const std::size_t i = order[r];
    std::printf("%5zu  %4lld  %8lld", r + 1, static_cast<long long>(ids[i * n_ids + item_col]),
                static_cast<long long>(ids[i * n_ids + cat]));
    for (std::size_t o = 0; o < model.num_outputs(); ++o) std::printf("  %10.5f", session.score(o, i));
    std::printf("\n");
  }

  // 5. Time it: the median of 200 calls after warm-up, one thread.
  std::vector<double> us;
  for (int i = 0; i < 220; ++i) {
    const auto t0 = Clock::now();
    (void)session.predict(batch);
    const auto t1 = Clock::now();
    if (i >= 20) us.push_back(microseconds(t0, t1));
  }
  std::nth_element(us.begin(), us.begin() + static_cast<std::ptrdiff_t>(us.size() / 2), us.end());
  const double median = us[us.size() / 2];
  std::printf("\n%zu candidates: %.1f us per batch, %.2f us per candidate (median of %zu calls, one thread)\n",
              candidates, median, median / static_cast<double>(candidates), us.size());
  return 0;
}
