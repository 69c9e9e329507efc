// A fixed pool of threads that run one job at a time, each with its thread index. The caller is
// thread 0; a pool of size 1 has no worker and runs the job inline (no thread is ever started).
//
// Waiting (a worker for the next job, the caller for the workers) spins briefly, then yields,
// then sleeps: a training step hands out a few short jobs in a row, and on a busy machine a
// spinning thread would burn the time slice its partner needs. A job's work split is fixed by
// the index, never by who came first, so results do not depend on scheduling.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#define MTLITE_TRAIN_PAUSE() _mm_pause()
#else
#define MTLITE_TRAIN_PAUSE() std::this_thread::yield()
#endif

namespace mtlite::train {

class ThreadPool {
 public:
  explicit ThreadPool(std::size_t threads) : size_(threads ? threads : 1) {
    for (std::size_t t = 1; t < size_; ++t) workers_.emplace_back([this, t] { loop(t); });
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_.store(true, std::memory_order_release);
      generation_.fetch_add(1, std::memory_order_acq_rel);
    }
    wake_.notify_all();
    for (std::thread& w : workers_) w.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  std::size_t size() const noexcept { return size_; }

  // Runs f(item, thread) for item in [0, count), each item once, items claimed in order by
  // whichever thread is free: a thread that the OS holds back does not hold back the others.
  // Results must depend on the item only (each item writes its own output), never on which
  // thread ran it; then they are the same whatever the scheduling.
  template <class F>
  void for_each(std::size_t count, F&& f) {
    next_.store(0, std::memory_order_relaxed);
    run([&](std::size_t t) {
      for (;;) {
        const std::size_t i = next_.fetch_add(1, std::memory_order_relaxed);
        if (i >= count) break;
        f(i, t);
      }
    });
  }

  // Runs f(t) for t in [0, size()), f(0) on the calling thread; returns when all are done and
  // rethrows the first exception a job threw.
  template <class F>
  void run(F&& f) {
    if (workers_.empty()) {
      f(std::size_t{0});
      return;
    }
    job_ = [](void* ctx, std::size_t t) { (*static_cast<std::remove_reference_t<F>*>(ctx))(t); };
    ctx_ = static_cast<void*>(&f);
    error_ = nullptr;
    pending_.store(workers_.size(), std::memory_order_release);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      generation_.fetch_add(1, std::memory_order_acq_rel);
    }
    wake_.notify_all();
    try {
      f(std::size_t{0});
    } catch (...) {
      record(std::current_exception());
    }
    wait_briefly([&] { return pending_.load(std::memory_order_acquire) == 0; });
    if (pending_.load(std::memory_order_acquire) != 0) {
      std::unique_lock<std::mutex> lock(mutex_);
      done_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
    }
    if (error_) std::rethrow_exception(error_);
  }

 private:
  static constexpr int kSpin = 1 << 11;
  static constexpr int kYield = 64;

  template <class Done>
  static void wait_briefly(Done&& done) {
    for (int i = 0; i < kSpin; ++i) {
      if (done()) return;
      MTLITE_TRAIN_PAUSE();
    }
    for (int i = 0; i < kYield; ++i) {
      if (done()) return;
      std::this_thread::yield();
    }
  }

  void record(std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(error_mutex_);
    if (!error_) error_ = e;
  }

  void loop(std::size_t t) {
    std::uint64_t seen = 0;
    for (;;) {
      wait_briefly([&] { return generation_.load(std::memory_order_acquire) != seen; });
      if (generation_.load(std::memory_order_acquire) == seen) {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      }
      seen = generation_.load(std::memory_order_acquire);
      if (stop_.load(std::memory_order_acquire)) return;
      try {
        job_(ctx_, t);
      } catch (...) {
        record(std::current_exception());
      }
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mutex_);
        done_.notify_one();
      }
    }
  }

  std::size_t size_;
  std::vector<std::thread> workers_;
  std::mutex mutex_, error_mutex_;
  std::condition_variable wake_, done_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<std::size_t> pending_{0};
  std::atomic<std::size_t> next_{0};
  std::atomic<bool> stop_{false};
  void (*job_)(void*, std::size_t) = nullptr;
  void* ctx_ = nullptr;
  std::exception_ptr error_;
};

}  // namespace mtlite::train
