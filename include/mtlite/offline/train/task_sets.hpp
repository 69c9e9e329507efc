// Which task losses every node of the network (network.hpp) feeds: what a per-task backward pass
// may skip, which parameters are shared, and where GradNorm measures its gradients.
//
// Loss k (the loss of task k, or for the ESMM cvr task the pCTCVR loss) depends on a node when
// the node is an ancestor of that loss. A node is *shared* when it feeds two or more losses (the
// input, and so every embedding, is shared as soon as two losses exist). The last shared layer
// (GradNorm's W) is the last layer of a shared mlp that no shared node reads.
#pragma once

#include <cstdint>
#include <vector>

#include "../../network.hpp"
#include "../../spec.hpp"

namespace mtlite::train {

// A set of task losses, one flag per task.
struct TaskSet {
  std::vector<std::uint8_t> bits;
  bool has(std::size_t k) const { return k < bits.size() && bits[k]; }
  std::size_t count() const {
    std::size_t n = 0;
    for (std::uint8_t b : bits) n += b;
    return n;
  }
  void add(const TaskSet& o) {
    if (bits.size() < o.bits.size()) bits.resize(o.bits.size(), 0);
    for (std::size_t i = 0; i < o.bits.size(); ++i) bits[i] |= o.bits[i];
  }
};

struct TaskSets {
  std::vector<int> tower;          // per task: the node of its logit, -1 when it is not served
  std::vector<TaskSet> of;         // per node: the losses it feeds
  std::vector<bool> last_shared;   // per node: a shared mlp that no shared node reads

  bool shared(std::size_t node) const { return of[node].count() >= 2; }
};

namespace detail {

// The nodes n reads through a layer or a mix. A product reads none: its two towers meet inside
// the loss, and the ESMM flag of task_sets() already carries that dependency.
template <class F>
void for_each_read(const Node& n, F&& f) {
  if (n.kind == Node::Kind::product) return;
  for (int j : {n.input, n.gate})
    if (j >= 0) f(static_cast<std::size_t>(j));
  for (int e : n.experts) f(static_cast<std::size_t>(e));
}

inline TaskSets task_sets(const Spec& spec, const Network& net) {
  const std::size_t T = spec.tasks.size(), N = net.nodes.size();
  TaskSets s;
  s.tower.assign(T, -1);
  for (std::size_t i = 0; i < net.outputs.size(); ++i)
    if (spec.output_task(i) >= 0) s.tower[static_cast<std::size_t>(spec.output_task(i))] = net.outputs[i];

  // Each loss starts at its tower; nodes are in topological order, so a walk from the last node
  // has handed a node every set of its readers before it passes the node on.
  s.of.assign(N, TaskSet{std::vector<std::uint8_t>(T, 0)});
  for (std::size_t k = 0; k < T; ++k)
    if (s.tower[k] >= 0) s.of[static_cast<std::size_t>(s.tower[k])].bits[k] = 1;
  if (spec.esmm) {
    // The cvr task's loss is BCE(click AND conversion, pCTR * pCVR): it depends on both towers.
    const int ctr = s.tower[static_cast<std::size_t>(spec.task_index(spec.esmm->ctr))];
    s.of[static_cast<std::size_t>(ctr)].bits[static_cast<std::size_t>(spec.task_index(spec.esmm->cvr))] = 1;
  }
  for (std::size_t i = N; i-- > 1;)
    for_each_read(net.nodes[i], [&](std::size_t j) { s.of[j].add(s.of[i]); });

  std::vector<bool> read_by_shared(N, false);
  for (std::size_t i = 1; i < N; ++i)
    if (s.shared(i)) for_each_read(net.nodes[i], [&](std::size_t j) { read_by_shared[j] = true; });
  s.last_shared.assign(N, false);
  for (std::size_t i = 0; i < N; ++i)
    s.last_shared[i] = net.nodes[i].kind == Node::Kind::mlp && s.shared(i) && !read_by_shared[i];
  return s;
}

}  // namespace detail
}  // namespace mtlite::train
