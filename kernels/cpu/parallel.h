// A minimal fork-join over [0, n) for the CPU reference: the lm_head alone is V*D multiply-adds
// per token, so rows are split across hardware threads. Deterministic: each output element is
// computed by exactly one thread with a fixed summation order.
#pragma once

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

namespace vex {

// Threads parallel_for may use: 0 (default) = every hardware thread. Process-wide (vexrun and
// vexserve's -t); results do not depend on it.
inline std::atomic<int>& cpu_threads() {
  static std::atomic<int> n{0};
  return n;
}

template <typename F>
void parallel_for(int n, int min_per_thread, F&& f) {
  const int limit = cpu_threads().load(std::memory_order_relaxed);
  const int hw = limit > 0 ? limit
                           : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = std::max(1, std::min(hw, n / std::max(1, min_per_thread)));
  if (threads == 1) {
    f(0, n);
    return;
  }
  std::vector<std::thread> pool;
  const int step = (n + threads - 1) / threads;
  for (int t = 0; t < threads; ++t) {
    const int lo = t * step, hi = std::min(n, lo + step);
    if (lo < hi) pool.emplace_back([&f, lo, hi] { f(lo, hi); });
  }
  for (auto& th : pool) th.join();
}

}  // namespace vex
