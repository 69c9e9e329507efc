// The self-test a model file carries (frugally-deep's idea): a few input rows and the scores the
// converter's runtime gave for them, so that a loaded model can prove it computes what was
// shipped. One home for the block: written by the converter (record_selftest), checked by
// Model::verify (check_selftest).
//
//   "selftest": {"rows": n, "dense": [...], "ids": [...],     (an id beyond +-2^53 as a string)
//                "bags": [{"ids": [...], "offsets": [n + 1 offsets]}, ...],
//                "expected": [[n scores] per output], "tolerance": t}
//
// A score passes when |got - expected| <= t * max(1, |expected|). Floats are written so that
// they read back bit for bit (Json::from_float). t may not exceed selftest_tolerance() of the
// model's coarsest dense layer: a self-test whose tolerance admits anything proves nothing.
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/quote.hpp"
#include "executor.hpp"
#include "format/json.hpp"
#include "input.hpp"
#include "spec.hpp"

namespace mtlite {

inline constexpr std::size_t kMaxSelftestRows = 4096;

// How far a score may move between builds and machines (summation order, FMA contraction,
// vector width) when the model's coarsest dense layers are `type`. In f16 layers the inputs are
// rounded as in f32 ones but each weight carries 11 bits; in i8 layers a tiny change before a
// layer can move an activation across a rounding boundary of its 8-bit code.
inline float selftest_tolerance(kernels::WeightType type) {
  return type == kernels::WeightType::i8 ? 2e-3f : type == kernels::WeightType::f16 ? 1e-4f : 1e-5f;
}

// The coarsest weight type among a plan's dense layers (f32 < f16 < i8).
inline kernels::WeightType coarsest_weight_type(const internal::Plan& plan) {
  kernels::WeightType out = kernels::WeightType::f32;
  for (const internal::PackedLayer& L : plan.layers)
    if (static_cast<int>(L.type) > static_cast<int>(out)) out = L.type;
  return out;
}

// An id as JSON: a number, or beyond +-2^53 (a hashed string's id, say), which a JSON number
// cannot hold exactly, its decimal digits as a string.
inline Json id_json(std::int64_t v) {
  constexpr std::int64_t kExact = std::int64_t{1} << 53;
  return v >= -kExact && v <= kExact ? Json(v) : Json(std::to_string(v));
}

inline std::int64_t id_from_json(const Json& x) {
  if (!x.is_string()) return x.as_int64();
  const std::string& s = x.as_string();
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty())
    throw Error("id " + quote(s) + " is not a 64-bit integer");
  return v;
}

// The block for `batch`, scored by `run` (a Session of the model to ship, or its Executor).
inline Json record_selftest(internal::Executor& run, const Batch& batch, float tolerance) {
  if (Status st = run.predict(batch); !st) throw Error(std::string("self-test rows: ") + st.message());
  Json dense = Json::array(), ids = Json::array(), bags = Json::array();
  for (float v : batch.dense) dense.push(Json::from_float(v));
  for (std::int64_t v : batch.ids) ids.push(id_json(v));
  for (const Bag& bag : batch.bags) {
    Json bag_ids = Json::array(), offsets = Json::array();
    const std::uint32_t first = bag.offsets[0];
    for (std::uint32_t i = first; i < bag.offsets[batch.rows]; ++i) bag_ids.push(id_json(bag.ids[i]));
    for (std::size_t r = 0; r <= batch.rows; ++r) offsets.push(bag.offsets[r] - first);
    bags.push(Json::object().set("ids", std::move(bag_ids)).set("offsets", std::move(offsets)));
  }
  Json expected = Json::array();
  for (std::size_t o = 0; o < run.num_outputs(); ++o) {
    Json column = Json::array();
    for (float v : run.scores(o)) column.push(Json::from_float(v));
    expected.push(std::move(column));
  }
  return Json::object()
      .set("rows", batch.rows)
      .set("dense", std::move(dense))
      .set("ids", std::move(ids))
      .set("bags", std::move(bags))
      .set("expected", std::move(expected))
      .set("tolerance", tolerance);
}

// Runs the block on a compiled model; throws Error("self-test failed: ...") naming the first
// output that differs, or what is malformed in the block.
inline void check_selftest(const Json& test, const Spec& spec, const internal::Plan& plan, std::size_t outputs) {
  try {
    const std::size_t rows = static_cast<std::size_t>(test.at("rows").as_uint64());
    if (rows == 0 || rows > kMaxSelftestRows) throw Error("rows must be in [1, 4096]");
    auto floats = [](const Json& a) {
      std::vector<float> v;
      for (const Json& x : a.elements()) v.push_back(x.as_float());
      return v;
    };
    auto integers = [](const Json& a) {
      std::vector<std::int64_t> v;
      for (const Json& x : a.elements()) v.push_back(id_from_json(x));
      return v;
    };
    const std::vector<float> dense = test.find("dense") ? floats(test.at("dense")) : std::vector<float>{};
    const std::vector<std::int64_t> ids = test.find("ids") ? integers(test.at("ids")) : std::vector<std::int64_t>{};
    std::vector<std::vector<std::int64_t>> bag_ids;
    std::vector<std::vector<std::uint32_t>> bag_offsets;
    if (const Json* bags = test.find("bags"))
      for (const Json& b : bags->elements()) {
        bag_ids.push_back(integers(b.at("ids")));
        bag_offsets.emplace_back();
        for (const Json& o : b.at("offsets").elements())
          bag_offsets.back().push_back(static_cast<std::uint32_t>(std::min<std::uint64_t>(o.as_uint64(), UINT32_MAX)));
      }
    std::vector<Bag> bags;
    for (std::size_t i = 0; i < bag_ids.size(); ++i) bags.push_back({bag_ids[i], bag_offsets[i]});
    const Batch batch{rows, dense, ids, bags};
    internal::Executor run(spec, plan, outputs, rows, false);
    if (Status st = run.predict(batch); !st) throw Error(std::string("its inputs are invalid: ") + st.message());
    const Json& expected = test.at("expected");
    if (expected.size() != outputs)
      throw Error("expected holds " + std::to_string(expected.size()) + " outputs, the model has " +
                  std::to_string(outputs));
    const float tolerance = test.at("tolerance").as_float();
    const float bound = selftest_tolerance(coarsest_weight_type(plan));
    if (!(tolerance >= 0.0f && tolerance <= bound))
      throw Error(internal::printf_string("tolerance %g is outside [0, %g], what this model's layers can differ by",
                                          static_cast<double>(tolerance), static_cast<double>(bound)));
    for (std::size_t o = 0; o < outputs; ++o) {
      const std::vector<float> want = floats(expected[o]);
      if (want.size() != rows) throw Error("expected[" + std::to_string(o) + "] does not hold one score per row");
      for (std::size_t r = 0; r < rows; ++r) {
        const float got = run.score(o, r);
        if (!(std::fabs(got - want[r]) <= tolerance * std::max(1.0f, std::fabs(want[r]))))
          throw Error(internal::printf_string("output '%s' row %zu: got %.9g, expected %.9g (tolerance %g)",
                                              spec.output_name(o).c_str(), r, static_cast<double>(got),
                                              static_cast<double>(want[r]), static_cast<double>(tolerance)));
      }
    }
  } catch (const Error& e) {
    throw Error(std::string("self-test failed: ") + e.what());
  }
}

}  // namespace mtlite
