// Task affinity (TAG: Fifty et al. 2021, "Efficiently Identifying Task Groupings for Multi-Task
// Learning") and the best grouping of tasks found from it.
//
// Measurement (done by the trainer every TrainOptions::affinity_every steps): for each active
// task i, the shared parameters take a look-ahead step with task i's gradient alone,
//   theta_s' = theta_s - lr * grad_{theta_s} L_i          (plain SGD with the trainer's lr,
//                                                          whatever the optimiser; see below)
// and every active task j's loss on the same batch is measured before and after:
//   Z_{i->j} = 1 - L_j(theta_s', theta_j) / L_j(theta_s, theta_j).
// The affinity matrix is the mean of Z over the measurements. Positive = a step on i helps j.
// A plain SGD look-ahead keeps the measurement independent of optimiser state (TAG's paper uses
// the training optimiser's step; with Adam that step's size is nearly independent of the
// gradient's scale, which hides how strongly i pulls).
//
// Grouping: a partition of the tasks into g groups, scored like TAG: each task j scores the mean
// affinity onto it from the other members of its group, (1 / (|S| - 1)) sum_{i in S, i != j}
// Z_{i->j} (0 for a task alone), and the grouping's score is the sum over tasks. For each
// g = 1..T the best partition is found by exhaustive search over all set partitions (T <= 8:
// at most 4140 of them). TAG's paper also allows overlapping groups; this is the partition case.
#pragma once

#include <cstddef>
#include <limits>
#include <vector>

#include "../../core/error.hpp"

namespace mtlite::train {

struct AffinityMatrix {
  std::size_t tasks = 0;
  std::vector<float> sum;    // [i * tasks + j]: sum of Z_{i->j}
  std::vector<float> count;  // [i * tasks + j]: number of measurements

  explicit AffinityMatrix(std::size_t t = 0) : tasks(t), sum(t * t, 0.0f), count(t * t, 0.0f) {}

  void add(std::size_t i, std::size_t j, float z) {
    sum[i * tasks + j] += z;
    count[i * tasks + j] += 1.0f;
  }
  // The mean affinity of i onto j, 0 when never measured.
  double at(std::size_t i, std::size_t j) const {
    const float c = count[i * tasks + j];
    return c > 0.0f ? static_cast<double>(sum[i * tasks + j]) / c : 0.0;
  }
  // Row-major means: [i * tasks + j] = affinity of i onto j.
  std::vector<double> means() const {
    std::vector<double> m(tasks * tasks);
    for (std::size_t i = 0; i < tasks; ++i)
      for (std::size_t j = 0; j < tasks; ++j) m[i * tasks + j] = at(i, j);
    return m;
  }
};

struct Grouping {
  std::vector<std::vector<std::size_t>> groups;  // task indices, ascending, groups by first task
  double score = 0.0;
};

// The TAG score of a partition under the affinity means z (row-major, [i * T + j]).
inline double grouping_score(const std::vector<double>& z, std::size_t T,
                             const std::vector<std::vector<std::size_t>>& groups) {
  double score = 0.0;
  for (const std::vector<std::size_t>& g : groups) {
    if (g.size() < 2) continue;
    for (std::size_t j : g) {
      double s = 0.0;
      for (std::size_t i : g)
        if (i != j) s += z[i * T + j];
      score += s / static_cast<double>(g.size() - 1);
    }
  }
  return score;
}

// best[g - 1] = the highest-scoring partition into exactly g groups, g = 1..T. Ties keep the
// partition enumerated first (restricted growth order), so the answer is deterministic.
inline std::vector<Grouping> best_groupings(const std::vector<double>& z, std::size_t T) {
  if (T == 0) return {};
  if (T > 8) throw Error("best_groupings: exhaustive search is limited to 8 tasks");
  if (z.size() != T * T) throw Error("best_groupings: the affinity matrix must be T x T");
  std::vector<Grouping> best(T);
  for (Grouping& g : best) g.score = -std::numeric_limits<double>::infinity();
  // Restricted growth strings a[0..T): a[0] = 0, a[i] <= 1 + max(a[0..i)).
  std::vector<std::size_t> a(T, 0), mx(T, 0);
  for (;;) {
    const std::size_t groups = mx[T - 1] + 1;
    std::vector<std::vector<std::size_t>> parts(groups);
    for (std::size_t i = 0; i < T; ++i) parts[a[i]].push_back(i);
    const double s = grouping_score(z, T, parts);
    if (s > best[groups - 1].score) best[groups - 1] = {parts, s};
    // Next string: the rightmost position that can grow.
    std::size_t i = T - 1;
    while (i > 0 && a[i] == mx[i - 1] + 1) --i;
    if (i == 0) break;
    ++a[i];
    mx[i] = a[i] > mx[i - 1] ? a[i] : mx[i - 1];
    for (std::size_t j = i + 1; j < T; ++j) {
      a[j] = 0;
      mx[j] = mx[i];
    }
  }
  return best;
}

}  // namespace mtlite::train
