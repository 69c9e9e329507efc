// The engine of a Session (session.hpp): runs a compiled plan (compile/plan.hpp) over batches.
// It owns every buffer predict touches, so predict allocates nothing, throws nothing and shares
// nothing writable. It needs the spec and the plan, not the Model, so that the Model's self-test
// (selftest.hpp) can run one without an include cycle. The spec and plan must outlive it.
//
// Rows go through the network in chunks of MTLITE_CHUNK_ROWS: the scratch memory is fixed by
// the chunk, not by the batch, and a chunk's activations stay in cache between layers.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "compile/plan.hpp"
#include "core/aligned_buffer.hpp"
#include "core/error.hpp"
#include "core/finite.hpp"
#include "core/span.hpp"
#include "input.hpp"
#include "kernels/kernels.hpp"
#include "spec.hpp"

namespace mtlite::internal {

class Executor {
 public:
  // max_batch: the most rows one predict call may pass. keep_gates: also store every gate's
  // weights per row (gate()), for diagnostics.
  Executor(const Spec& spec, const Plan& plan, std::size_t outputs, std::size_t max_batch, bool keep_gates)
      : spec_(&spec), plan_(&plan), outputs_(outputs), max_batch_(max_batch), keep_gates_(keep_gates) {
    if (max_batch == 0) throw Error("Session: max_batch must be at least 1");
    chunk_ = max_batch < MTLITE_CHUNK_ROWS ? max_batch : MTLITE_CHUNK_ROWS;
    scores_ = AlignedBuffer<float>(outputs * max_batch);
    if (keep_gates) gates_ = AlignedBuffer<float>(plan.gate_width * max_batch);
    scratch_ = AlignedBuffer<float>(plan.scratch_per_row() * chunk_);
    if (const std::size_t k = plan.max_i8_inputs()) quantized_ = AlignedBuffer<std::uint8_t>(kernels::dense_i8_scratch_bytes(chunk_, k));
    buffer_base_.assign(plan.buffer_ld.size(), 0);
    for (std::size_t b = kFirstScratch, off = 0; b < plan.buffer_ld.size(); ++b) {
      buffer_base_[b] = off;
      off += plan.buffer_ld[b] * chunk_;
    }
    bind(plan);
  }

  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;
  Executor(Executor&&) = default;
  Executor& operator=(Executor&&) = default;

  std::size_t num_outputs() const noexcept { return outputs_; }
  std::size_t max_batch() const noexcept { return max_batch_; }

  // Scores every row of the batch. On error the message names the input at fault (then nothing
  // is computed), or the first score that is not finite (finite inputs through finite but huge
  // weights can overflow; no score of that batch is then valid).
  Status predict(const Batch& batch) noexcept {
    rows_ = 0;
    const Status s = check(batch);
    if (!s) return s;
    for (std::size_t c0 = 0; c0 < batch.rows; c0 += chunk_) {
      const std::size_t n = batch.rows - c0 < chunk_ ? batch.rows - c0 : chunk_;
      for (const BoundStep& step : steps_) run(step, batch, c0, n);
    }
    for (std::size_t o = 0; o < outputs_; ++o) {
      const std::size_t r = first_non_finite(scores_.data() + o * max_batch_, batch.rows);
      if (r == batch.rows) continue;
      const int k = spec_->output_task(o);
      return fail(StatusCode::overflow, "output '%s' is %s at row %zu: the activations overflowed (weights or inputs too large)",
                  k >= 0 ? spec_->tasks[static_cast<std::size_t>(k)].name.c_str() : spec_->esmm->ctcvr.c_str(),
                  std::isnan(score(o, r)) ? "NaN" : "infinite", r);
    }
    rows_ = batch.rows;
    return {};
  }

  // One row with only dense and categorical features.
  Status predict(span<const float> dense, span<const std::int64_t> ids = {}) noexcept {
    Batch b;
    b.rows = 1;
    b.dense = dense;
    b.ids = ids;
    return predict(b);
  }

  // Rows scored by the last successful predict.
  std::size_t rows() const noexcept { return rows_; }
  // The scores of one output for every row.
  span<const float> scores(std::size_t output) const noexcept {
    return {scores_.data() + output * max_batch_, rows_};
  }
  float score(std::size_t output, std::size_t row) const noexcept {
    return scores_[output * max_batch_ + row];
  }
  // The weights gate g gave its experts for one row (empty unless keep_gates).
  span<const float> gate(std::size_t g, std::size_t row) const noexcept {
    if (!keep_gates_) return {};
    const GateInfo& info = (*plan_).gates[g];
    return {gates_.data() + row * (*plan_).gate_width + info.col, info.width};
  }

 private:
  // A resolved operand: the chunk starting at row c0 begins at p + c0 * shift (shift is 0 for
  // scratch, which holds one chunk, and the row stride for the whole-batch buffers).
  struct Bound {
    float* p = nullptr;
    std::size_t ld = 0;
    std::size_t shift = 0;
    float* at(std::size_t c0) const noexcept { return p + c0 * shift; }
  };
  struct BoundStep {
    Step::Kind kind;
    Bound in, in2, out;
    std::size_t width = 0;
    kernels::DenseView layer;
    std::size_t experts = 0, first_expert = 0;  // mix: range in expert_ptr_ / expert_ld_
  };
  // Per feature, what gather needs.
  struct Slot {
    const Feature* feature;
    std::size_t col;    // in x
    std::size_t index;  // among the features of its kind
    const TableInfo* table;  // embedded features
  };

  const Spec* spec_;
  const Plan* plan_;
  std::size_t outputs_;
  std::size_t max_batch_, chunk_ = 0, rows_ = 0;
  bool keep_gates_;
  AlignedBuffer<float> scores_, gates_, scratch_;
  AlignedBuffer<std::uint8_t> quantized_;  // i8 layers' quantized inputs
  std::vector<std::size_t> buffer_base_;
  std::vector<BoundStep> steps_;
  std::vector<const float*> expert_ptr_;
  std::vector<std::size_t> expert_ld_;
  std::vector<Slot> slots_;  // embedding features first, then the dense ones
  std::size_t n_dense_ = 0, n_ids_ = 0, n_bags_ = 0;
  // The dense features, which fill x[dense_col_ ..) in order: x = u * scale + shift per feature
  // (1 and 0 without standardize; a shift of -0 for log1p alone keeps log1p's sign of zero),
  // where u is sign(v) log1p(|v|) for the log1p ones and v for the others.
  std::size_t dense_col_ = 0;
  std::vector<float> dense_scale_, dense_shift_;
  std::vector<std::size_t> log1p_;
  char message_[320] = {};

  Bound resolve(Operand o) {
    const Plan& plan = (*plan_);
    if (o.buffer == kScores) return {scores_.data() + o.col * max_batch_, 1, 1};
    if (o.buffer == kGates) return {gates_.data() + o.col, plan.gate_width, plan.gate_width};
    return {scratch_.data() + buffer_base_[o.buffer] + o.col, plan.buffer_ld[o.buffer], 0};
  }

  void bind(const Plan& plan) {
    using Kind = Step::Kind;
    for (const Step& s : plan.steps) {
      if (s.kind == Kind::copy && s.out.buffer == kGates && !keep_gates_) continue;
      BoundStep b{s.kind, resolve(s.in), resolve(s.in2), resolve(s.out), s.width, {}, 0, 0};
      if (s.kind == Kind::dense) b.layer = plan.layers[s.index].view();
      if (s.kind == Kind::mix) {
        b.first_expert = expert_ptr_.size();
        for (Operand e : plan.mixes[s.index].experts) {
          const Bound be = resolve(e);
          expert_ptr_.push_back(be.p);
          expert_ld_.push_back(be.ld);
        }
        b.experts = expert_ptr_.size() - b.first_expert;
      }
      steps_.push_back(b);
    }
    // Embeddings first, dense values after (spec.hpp), each kind in spec order.
    const Spec& spec = *spec_;
    std::size_t col = 0;
    for (std::size_t f = 0; f < spec.features.size(); ++f) {
      const Feature& feat = spec.features[f];
      if (!feat.has_embedding()) continue;
      const std::size_t index = feat.kind == FeatureKind::categorical ? n_ids_++ : n_bags_++;
      slots_.push_back({&feat, col, index, &plan.tables[f]});
      col += feat.embedding_dim;
    }
    dense_col_ = col;
    for (const Feature& feat : spec.features) {
      if (feat.has_embedding()) continue;
      const bool standardize = feat.standardizes();
      slots_.push_back({&feat, col++, n_dense_++, nullptr});
      dense_scale_.push_back(standardize ? 1.0f / feat.stddev : 1.0f);
      dense_shift_.push_back(standardize ? -feat.mean / feat.stddev : feat.takes_log1p() ? -0.0f : 0.0f);
      if (feat.takes_log1p()) log1p_.push_back(n_dense_ - 1);
    }
  }

  Status fail(StatusCode code, const char* fmt, ...) noexcept {
    va_list args;
    va_start(args, fmt);
    std::vsnprintf(message_, sizeof message_, fmt, args);
    va_end(args);
    return {code, message_};
  }

  Status check(const Batch& b) noexcept {
    if (b.rows > max_batch_)
      return fail(StatusCode::too_many_rows, "batch has %zu rows; this session takes at most %zu",
                  b.rows, max_batch_);
    if (b.dense.size() != b.rows * n_dense_)
      return fail(StatusCode::wrong_size,
                  "dense: got %zu values, expected %zu rows x %zu dense features = %zu",
                  b.dense.size(), b.rows, n_dense_, b.rows * n_dense_);
    if (b.ids.size() != b.rows * n_ids_)
      return fail(StatusCode::wrong_size,
                  "ids: got %zu values, expected %zu rows x %zu categorical features = %zu",
                  b.ids.size(), b.rows, n_ids_, b.rows * n_ids_);
    if (b.bags.size() != n_bags_)
      return fail(StatusCode::wrong_size, "bags: got %zu, expected one per multi-hot feature (%zu)",
                  b.bags.size(), n_bags_);
    // Slots in order (bags before dense features); the dense values are checked all at once
    // and searched feature by feature only when one of them is not finite.
    const bool dense_ok = first_non_finite(b.dense.data(), b.dense.size()) == b.dense.size();
    for (const Slot& s : slots_) {
      const char* name = s.feature->name.c_str();
      if (s.feature->kind == FeatureKind::dense) {
        if (dense_ok) break;  // only dense slots follow
        for (std::size_t r = 0; r < b.rows; ++r)
          if (!std::isfinite(b.dense[r * n_dense_ + s.index]))
            return fail(StatusCode::not_finite, "dense feature '%s' is %s at row %zu", name,
                        std::isnan(b.dense[r * n_dense_ + s.index]) ? "NaN" : "infinite", r);
      } else if (s.feature->kind == FeatureKind::multi_hot) {
        const Bag& bag = b.bags[s.index];
        if (bag.offsets.size() != b.rows + 1)
          return fail(StatusCode::wrong_size, "bag '%s': got %zu offsets, expected rows + 1 = %zu",
                      name, bag.offsets.size(), b.rows + 1);
        for (std::size_t r = 0; r < b.rows; ++r)
          if (bag.offsets[r] > bag.offsets[r + 1])
            return fail(StatusCode::bad_bag, "bag '%s': offsets decrease at row %zu", name, r);
        if (b.rows && bag.offsets[b.rows] > bag.ids.size())
          return fail(StatusCode::bad_bag, "bag '%s': offsets reach %u but there are %zu ids", name,
                      static_cast<unsigned>(bag.offsets[b.rows]), bag.ids.size());
      }
    }
    return {};
  }

  // out += the given rows of a table, whatever its element type.
  static void add_rows(const TableInfo& t, const std::uint64_t* rows, std::size_t count, float* out) noexcept {
    switch (t.dtype) {
      case DType::f32:
        kernels::add_rows(reinterpret_cast<const float*>(t.data), t.dim, rows, count, out);
        break;
      case DType::f16:
        kernels::add_rows_f16(reinterpret_cast<const std::uint16_t*>(t.data), t.dim, rows, count, out);
        break;
      case DType::u8:
        kernels::add_rows_q8(reinterpret_cast<const std::uint8_t*>(t.data), t.dim, t.stride, rows, count, out);
        break;
      case DType::u4:
        kernels::add_rows_q4(reinterpret_cast<const std::uint8_t*>(t.data), t.dim, t.stride, rows, count, out);
        break;
      case DType::i8:
        break;  // not a table type (the binder refuses it)
    }
  }

  void gather(const Batch& b, std::size_t c0, std::size_t n, float* x, std::size_t ldx) noexcept {
    constexpr std::size_t kBlock = 64;
    std::uint64_t rows[kBlock];
    const std::size_t n_embedded = slots_.size() - n_dense_;
    for (std::size_t r = 0; r < n; ++r) {
      const std::size_t row = c0 + r;
      float* xr = x + r * ldx;
      if (n_dense_) {
        const float* v = b.dense.data() + row * n_dense_;
        float* out = xr + dense_col_;
        for (std::size_t i = 0; i < n_dense_; ++i) out[i] = v[i] * dense_scale_[i] + dense_shift_[i];
        for (const std::size_t i : log1p_)
          out[i] = std::copysign(std::log1p(std::fabs(v[i])), v[i]) * dense_scale_[i] + dense_shift_[i];
      }
      for (std::size_t k = 0; k < n_embedded; ++k) {
        const Slot& s = slots_[k];
        const Feature& f = *s.feature;
        float* out = xr + s.col;
        switch (f.kind) {
          case FeatureKind::dense:
            break;  // above
          case FeatureKind::categorical: {
            const std::uint64_t r0 = f.row_of(b.ids[row * n_ids_ + s.index]);
            if (s.table->dtype == DType::f32) {
              std::memcpy(out, s.table->data + r0 * s.table->stride, f.embedding_dim * sizeof(float));
            } else {
              std::memset(out, 0, f.embedding_dim * sizeof(float));
              add_rows(*s.table, &r0, 1, out);
            }
            break;
          }
          case FeatureKind::multi_hot: {
            const Bag& bag = b.bags[s.index];
            const std::size_t begin = bag.offsets[row], end = bag.offsets[row + 1];
            std::memset(out, 0, f.embedding_dim * sizeof(float));
            for (std::size_t i = begin; i < end; i += kBlock) {
              const std::size_t count = end - i < kBlock ? end - i : kBlock;
              for (std::size_t j = 0; j < count; ++j) rows[j] = f.row_of(bag.ids[i + j]);
              add_rows(*s.table, rows, count, out);
            }
            if (f.pooling == Pooling::mean && end > begin)
              for (std::size_t d = 0; d < f.embedding_dim; ++d) out[d] /= static_cast<float>(end - begin);
            break;
          }
        }
      }
    }
  }

  void run(const BoundStep& s, const Batch& batch, std::size_t c0, std::size_t n) noexcept {
    using Kind = Step::Kind;
    float* out = s.out.at(c0);
    switch (s.kind) {
      case Kind::gather:
        gather(batch, c0, n, out, s.out.ld);
        break;
      case Kind::dense:
        switch (s.layer.type) {
          case kernels::WeightType::f32: kernels::dense(n, s.in.at(c0), s.in.ld, s.layer, out, s.out.ld); break;
          case kernels::WeightType::f16: kernels::dense_f16(n, s.in.at(c0), s.in.ld, s.layer, out, s.out.ld); break;
          case kernels::WeightType::i8:
            kernels::dense_i8(n, s.in.at(c0), s.in.ld, s.layer, out, s.out.ld, quantized_.data());
            break;
        }
        break;
      case Kind::softmax:
        for (std::size_t r = 0; r < n; ++r) kernels::softmax(out + r * s.out.ld, s.width);
        break;
      case Kind::mix:
        kernels::mix(n, s.in.at(c0), s.in.ld, s.experts, expert_ptr_.data() + s.first_expert,
                     expert_ld_.data() + s.first_expert, s.width, out, s.out.ld);
        break;
      case Kind::product: {
        const float* a = s.in.at(c0);
        const float* b = s.in2.at(c0);
        for (std::size_t r = 0; r < n; ++r) out[r * s.out.ld] = a[r * s.in.ld] * b[r * s.in2.ld];
        break;
      }
      case Kind::copy: {
        const float* in = s.in.at(c0);
        for (std::size_t r = 0; r < n; ++r)
          for (std::size_t j = 0; j < s.width; ++j) out[r * s.out.ld + j] = in[r * s.in.ld + j];
        break;
      }
    }
  }
};

}  // namespace mtlite::internal
