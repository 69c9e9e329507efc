// A ranking service: worker threads pull requests (a user's device and a batch of candidate
// items) from a shared queue and write each request's top k. One Model is shared by every
// thread; each thread has its own Session (the model never changes, a session holds one
// thread's scratch memory and results).
//
//   build/examples/ranking_service MODEL.mtl [threads] [requests]     (default 4, 2000)
//
// MODEL.mtl has the features of tests/c_api/model.json (shop.hpp). At the end every request is
// scored again on one thread, and the service's scores must equal those bit for bit: how the
// requests fell to the threads must change nothing. Exit code 1 if they differ.
#include <mtlite/mtlite.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "shop.hpp"

namespace {

constexpr std::size_t kTopK = 10, kMaxCandidates = 128, kCatalogue = 200;

struct Request {
  std::int64_t device = 0;
  std::vector<std::size_t> items;  // candidates: indexes into the catalogue
};

struct Result {
  std::vector<float> scores;     // [output][candidate]
  std::vector<std::size_t> top;  // the best kTopK items by the first output, best first
  bool served = false;
};

// Request indexes, handed out in arrival order; pop() waits for one, and returns nothing once
// the queue is closed and empty.
class RequestQueue {
 public:
  void push(std::size_t request) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(request);
    }
    ready_.notify_one();
  }
  void close() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closed_ = true;
    }
    ready_.notify_all();
  }
  std::optional<std::size_t> pop() {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [&] { return closed_ || !queue_.empty(); });
    if (queue_.empty()) return std::nullopt;
    const std::size_t r = queue_.front();
    queue_.pop_front();
    return r;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::size_t> queue_;
  bool closed_ = false;
};

// One thread's scorer: its own columns and Session over the shared model.
class Ranker {
 public:
  explicit Ranker(const mtlite::Model& model) : model_(&model), candidates_(model, kMaxCandidates), session_(model, kMaxCandidates) {}

  Result rank(const std::vector<shop::Item>& items, const Request& request) {
    const std::size_t n = request.items.size();
    if (mtlite::Status st = session_.predict(candidates_.fill(items, request.items.data(), n, request.device)); !st)
      throw mtlite::Error(st.message());
    Result out;
    for (std::size_t o = 0; o < model_->num_outputs(); ++o)
      out.scores.insert(out.scores.end(), session_.scores(o).begin(), session_.scores(o).end());
    // Ties broken by position, so that the order is the same wherever the request is ranked.
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    const std::size_t k = std::min(kTopK, n);
    const float* first = out.scores.data();
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                      [&](std::size_t a, std::size_t b) { return first[a] > first[b] || (first[a] == first[b] && a < b); });
    for (std::size_t i = 0; i < k; ++i) out.top.push_back(request.items[order[i]]);
    return out;
  }

 private:
  const mtlite::Model* model_;
  shop::Candidates candidates_;
  mtlite::Session session_;
};

// Seeded traffic: each request one of the synthetic funnel's devices and 16 to 128 distinct
// candidates (the first of a partial shuffle of the catalogue).
std::vector<Request> traffic(const mtlite::FeatureIds& ids, std::size_t count) {
  static_assert(kMaxCandidates <= kCatalogue, "candidates are distinct items");
  const std::int64_t devices[] = {ids.id("device", "mobile"), ids.id("device", "desktop"), ids.id("device", "tablet")};
  mtlite::Rng rng(2024);
  std::vector<std::size_t> catalogue(kCatalogue);
  std::iota(catalogue.begin(), catalogue.end(), 0);
  std::vector<Request> requests(count);
  for (Request& r : requests) {
    r.device = devices[rng.below(3)];
    r.items.resize(16 + rng.below(kMaxCandidates - 16 + 1));
    for (std::size_t i = 0; i < r.items.size(); ++i) {
      std::swap(catalogue[i], catalogue[i + rng.below(kCatalogue - i)]);
      r.items[i] = catalogue[i];
    }
  }
  return requests;
}

bool whole_number(const char* text, std::size_t lo, std::size_t hi, std::size_t& out) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (*text == '\0' || *end != '\0' || v < lo || v > hi) return false;
  out = static_cast<std::size_t>(v);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t threads = 4, count = 2000;
  if (argc < 2 || argc > 4 || (argc > 2 && !whole_number(argv[2], 1, 256, threads)) ||
      (argc > 3 && !whole_number(argv[3], 1, 1000000, count))) {
    std::fprintf(stderr, "usage: ranking_service MODEL.mtl [threads 1..256] [requests 1..1000000]\n");
    return 2;
  }
  try {
    const mtlite::Model model = mtlite::Model::load(argv[1]);
    const mtlite::FeatureIds ids(model);
    const std::vector<shop::Item> items = shop::catalogue(ids, kCatalogue, 7);
    const std::vector<Request> requests = traffic(ids, count);

    // The service: workers take requests until the queue is closed and drained. A worker's
    // error is kept for the end (a thread must not throw out of its function).
    std::vector<Result> results(requests.size());
    std::vector<std::string> errors(threads);
    RequestQueue queue;
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> workers;
    for (std::size_t t = 0; t < threads; ++t)
      workers.emplace_back([&, t] {
        try {
          Ranker ranker(model);
          while (const std::optional<std::size_t> r = queue.pop()) {
            results[*r] = ranker.rank(items, requests[*r]);  // each index is popped once
            results[*r].served = true;
          }
        } catch (const std::exception& e) {
          errors[t] = e.what();
          while (queue.pop()) {
          }  // drain, so that the other workers finish
        }
      });
    for (std::size_t r = 0; r < requests.size(); ++r) queue.push(r);
    queue.close();
    for (std::thread& w : workers) w.join();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (std::size_t t = 0; t < threads; ++t)
      if (!errors[t].empty()) throw mtlite::Error("thread " + std::to_string(t) + ": " + errors[t]);

    std::size_t rows = 0;
    for (const Request& r : requests) rows += r.items.size();
    std::printf("%zu requests (%zu candidates) on %zu threads: %.0f requests/s, kernels %s\n", requests.size(), rows,
                threads, static_cast<double>(requests.size()) / seconds, mtlite::kernels::backend_name());
    std::printf("request 0: top %zu by %s:", results[0].top.size(), model.output_name(0).c_str());
    for (const std::size_t item : results[0].top) std::printf(" %zu", item);
    std::printf("\n");

    // The same requests on one thread, one Session: every score and every top k must agree.
    Ranker reference(model);
    for (std::size_t r = 0; r < requests.size(); ++r) {
      const Result expected = reference.rank(items, requests[r]);
      if (!results[r].served || results[r].top != expected.top || results[r].scores.size() != expected.scores.size() ||
          std::memcmp(results[r].scores.data(), expected.scores.data(), expected.scores.size() * sizeof(float)) != 0) {
        std::fprintf(stderr, "ranking_service: request %zu: %s\n", r,
                     results[r].served ? "the threads' scores differ from one thread's" : "never served");
        return 1;
      }
    }
    std::printf("all %zu requests score bit for bit as on one thread\n", requests.size());
  } catch (const std::exception& e) {  // mtlite::Error, or the standard library's (bad_alloc)
    std::fprintf(stderr, "ranking_service: %s\n", e.what());
    return 1;
  }
  return 0;
}
