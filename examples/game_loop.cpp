// A model compiled into the program, scored every frame of a game loop: the shop of a game
// picks the offer to show among 64 candidates, 600 frames in a row.
//
//   build/examples/game_loop [MODEL.mtl]
//
// game_model.h is written at build time by `mtlite embed model.mtl --out game_model.h --name
// game_model` (examples/meson.build), so the program opens no file: Model::from_memory uses the
// 64-byte aligned array in place. Given MODEL.mtl (the file that was embedded), the program also
// opens it with Model::load and checks that both score every frame identically.
#include <mtlite/mtlite.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <vector>

#include "game_model.h"
#include "shop.hpp"

namespace {

constexpr std::size_t kFrames = 600, kCandidates = 64, kCatalogue = 200;

struct Run {
  std::vector<float> scores;          // every frame's scores: [frame][output][candidate]
  std::vector<double> frame_us;       // what each frame's ranking cost
  std::vector<std::size_t> top_item;  // the offer each frame shows
  float last_top_score = 0.0f;
};

// The game loop: each frame, the candidates in view (a window over the catalogue that moves
// with the frame) are scored and the best by the first output is shown. Timed per frame as a
// game would budget it: filling the inputs, predict and the pick.
Run play(const mtlite::Model& model, const std::vector<shop::Item>& items, std::int64_t device) {
  using Clock = std::chrono::steady_clock;
  shop::Candidates candidates(model, kCandidates);
  mtlite::Session session(model, kCandidates);
  Run run;
  run.scores.reserve(kFrames * model.num_outputs() * kCandidates);
  std::size_t in_view[kCandidates];
  for (std::size_t frame = 0; frame < kFrames; ++frame) {
    for (std::size_t c = 0; c < kCandidates; ++c) in_view[c] = (frame * 7 + c * 3) % items.size();
    const auto start = Clock::now();
    if (mtlite::Status st = session.predict(candidates.fill(items, in_view, kCandidates, device)); !st)
      throw mtlite::Error(std::string("frame ") + std::to_string(frame) + ": " + st.message());
    const mtlite::span<const float> first = session.scores(0);
    const std::size_t best = static_cast<std::size_t>(std::max_element(first.begin(), first.end()) - first.begin());
    run.frame_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    run.top_item.push_back(in_view[best]);
    run.last_top_score = first[best];
    for (std::size_t o = 0; o < model.num_outputs(); ++o)
      run.scores.insert(run.scores.end(), session.scores(o).begin(), session.scores(o).end());
  }
  return run;
}

// The p-th percentile (0..100) by the nearest-rank rule.
double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::max<std::size_t>(rank, 1) - 1];
}

int fail(const char* what) {
  std::fprintf(stderr, "game_loop: %s\n", what);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 2) {
    std::fprintf(stderr, "usage: game_loop [MODEL.mtl]\n");
    return 2;
  }
  // In place only when the compiler honoured the header's alignment; else from_memory copies.
  if (reinterpret_cast<std::uintptr_t>(game_model) % mtlite::kAlign != 0)
    return fail("the embedded model is not 64-byte aligned: from_memory would copy it");
  try {
    mtlite::LoadOptions options;
    options.selftest = true;  // once at start-up: the scores the converter recorded
    const mtlite::Model model = mtlite::Model::from_memory(game_model, game_model_size, options);
    const mtlite::FeatureIds ids(model);
    const std::vector<shop::Item> items = shop::catalogue(ids, kCatalogue, 7);
    const std::int64_t device = ids.id("device", "mobile");
    const Run run = play(model, items, device);

    for (std::size_t i = 0; i < run.scores.size(); ++i) {
      const std::size_t output = i / kCandidates % model.num_outputs();
      const float s = run.scores[i];
      if (!std::isfinite(s) || (model.spec().output_binary(output) && !(s >= 0.0f && s <= 1.0f))) {
        std::fprintf(stderr, "game_loop: output '%s' scored %g, not a probability\n",
                     model.output_name(output).c_str(), static_cast<double>(s));
        return 1;
      }
    }
    std::printf("embedded model: %zu bytes, %s, outputs", static_cast<std::size_t>(game_model_size),
                mtlite::to_string(model.spec().architecture));
    for (std::size_t o = 0; o < model.num_outputs(); ++o) std::printf(" %s", model.output_name(o).c_str());
    std::printf(", kernels %s\n", mtlite::kernels::backend_name());
    std::printf("%zu frames x %zu candidates: median %.1f us, p99 %.1f us per frame\n", kFrames, kCandidates,
                percentile(run.frame_us, 50), percentile(run.frame_us, 99));
    std::printf("last frame's offer: item %zu (%s %.4f)\n", run.top_item.back(), model.output_name(0).c_str(),
                static_cast<double>(run.last_top_score));

    if (argc == 2) {
      // The same model from its file: the same bytes, so the same scores, bit for bit.
      const mtlite::Model file = mtlite::Model::load(argv[1]);
      const Run again = play(file, items, device);
      if (again.scores.size() != run.scores.size() ||
          std::memcmp(again.scores.data(), run.scores.data(), run.scores.size() * sizeof(float)) != 0)
        return fail("the embedded model and the file score differently: was the file embedded?");
      std::printf("%s scores all %zu frames as the embedded model does\n", argv[1], kFrames);
    }
  } catch (const mtlite::Error& e) {
    return fail(e.what());
  }
  return 0;
}
