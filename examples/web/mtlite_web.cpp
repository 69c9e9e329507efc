// The C functions that mtlite.js calls: a thin layer over Model, Session and FeatureIds, built
// with emscripten into mtlite_web.js + mtlite_web.wasm (examples/web/meson.build).
//
// C, not embind: the functions are few, their arguments are pointers into wasm memory that the
// JavaScript side fills, and the module stays small. Nothing throws across the boundary (a C++
// exception reaching JavaScript is an opaque number): every function that can fail returns
// null or -1 and leaves the library's message for mtw_error(), which mtlite.js throws as an Error.
#include <emscripten/emscripten.h>

#include <mtlite/mtlite.hpp>

#include <cstdlib>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

namespace {

std::string last_error;

// A model owns the image it runs from: from_memory uses a 64-byte aligned image in place.
struct WebModel {
  std::unique_ptr<void, decltype(&std::free)> image;
  mtlite::Model model;
  std::optional<mtlite::FeatureIds> ids;  // made on first use: not every model has a binding
};

struct WebSession {
  mtlite::Session session;
  std::vector<mtlite::Bag> bags;  // reused: predict itself takes spans
};

template <class F>
auto guarded(F&& f, decltype(f()) failed) noexcept -> decltype(f()) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    last_error = "out of memory";
  } catch (const std::exception& e) {
    last_error = e.what();
  }
  return failed;
}

}  // namespace

extern "C" {

EMSCRIPTEN_KEEPALIVE const char* mtw_error() { return last_error.c_str(); }

// Where JavaScript copies a model file before mtw_model_load: aligned, so it is used in place.
EMSCRIPTEN_KEEPALIVE void* mtw_alloc_image(std::size_t size) {
  return std::aligned_alloc(mtlite::kAlign, (size / mtlite::kAlign + 1) * mtlite::kAlign);  // a multiple, never 0
}

// Takes the image from mtw_alloc_image (freed here on failure, else with the model).
EMSCRIPTEN_KEEPALIVE WebModel* mtw_model_load(void* image, std::size_t size) {
  std::unique_ptr<void, decltype(&std::free)> owned(image, &std::free);
  return guarded([&] { return new WebModel{std::move(owned), mtlite::Model::from_memory(image, size), {}}; },
                 static_cast<WebModel*>(nullptr));
}

EMSCRIPTEN_KEEPALIVE void mtw_model_free(WebModel* m) { delete m; }

EMSCRIPTEN_KEEPALIVE int mtw_model_outputs(const WebModel* m) { return static_cast<int>(m->model.num_outputs()); }

// Valid until the next call that returns a string.
EMSCRIPTEN_KEEPALIVE const char* mtw_model_output_name(const WebModel* m, int output) {
  static std::string name;
  name = m->model.output_name(static_cast<std::size_t>(output));
  return name.c_str();
}

EMSCRIPTEN_KEEPALIVE int mtw_model_features(const WebModel* m) { return static_cast<int>(m->model.spec().features.size()); }
EMSCRIPTEN_KEEPALIVE const char* mtw_model_feature_name(const WebModel* m, int f) {
  return m->model.spec().features[static_cast<std::size_t>(f)].name.c_str();
}
// 0 dense, 1 categorical, 2 multi-hot (mtlite::FeatureKind).
EMSCRIPTEN_KEEPALIVE int mtw_model_feature_kind(const WebModel* m, int f) {
  return static_cast<int>(m->model.spec().features[static_cast<std::size_t>(f)].kind);
}

// The id training gave a raw categorical value (the model's data binding): -1 for unknown
// values; returns -1 and sets the error when the model has no binding or no such feature.
EMSCRIPTEN_KEEPALIVE int mtw_model_id(WebModel* m, const char* feature, const char* value, std::int64_t* id) {
  return guarded(
      [&] {
        if (!m->ids) m->ids.emplace(m->model);
        *id = m->ids->id(feature, value);
        return 0;
      },
      -1);
}

EMSCRIPTEN_KEEPALIVE WebSession* mtw_session_new(const WebModel* m, std::size_t max_batch) {
  return guarded([&] { return new WebSession{mtlite::Session(m->model, max_batch), {}}; }, static_cast<WebSession*>(nullptr));
}

EMSCRIPTEN_KEEPALIVE void mtw_session_free(WebSession* s) { delete s; }

// Bag b's ids are bag_ids[bag_starts[b] .. bag_starts[b + 1]) and its rows + 1 offsets are
// bag_offsets[b * (rows + 1) ..]. Sizes are checked by predict, which names what is wrong.
EMSCRIPTEN_KEEPALIVE int mtw_session_predict(WebSession* s, std::size_t rows, const float* dense, std::size_t n_dense,
                                             const std::int64_t* ids, std::size_t n_ids, std::size_t n_bags,
                                             const std::int64_t* bag_ids, const std::size_t* bag_starts,
                                             const std::uint32_t* bag_offsets) {
  return guarded(
      [&] {
        s->bags.resize(n_bags);
        for (std::size_t b = 0; b < n_bags; ++b)
          s->bags[b] = {{bag_ids + bag_starts[b], bag_starts[b + 1] - bag_starts[b]}, {bag_offsets + b * (rows + 1), rows + 1}};
        mtlite::Batch batch;
        batch.rows = rows;
        batch.dense = {dense, n_dense};
        batch.ids = {ids, n_ids};
        batch.bags = {s->bags.data(), n_bags};
        const mtlite::Status st = s->session.predict(batch);
        if (!st) last_error = st.message();
        return st ? 0 : -1;
      },
      -1);
}

// The last successful predict's scores of one output, one per row.
EMSCRIPTEN_KEEPALIVE const float* mtw_session_scores(const WebSession* s, int output) {
  return s->session.scores(static_cast<std::size_t>(output)).data();
}

}  // extern "C"
