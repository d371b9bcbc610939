// A sense-reversing spin barrier for time loops whose threads meet at every step.
#pragma once

#include <atomic>
#include <thread>

#include "vec.h"

namespace grukit {

#if GRUKIT_HAVE_F8
// A sense-reversing spin barrier: the threads of a split loop meet every step, and
// libgomp's barrier costs about 0.3 us there; this one costs a cache-line handoff.
class SpinBarrier {
 public:
  explicit SpinBarrier(int n) : n_(n) {}
  void wait(bool& sense) {
    sense = !sense;
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
      count_.store(0, std::memory_order_relaxed);
      flag_.store(sense, std::memory_order_release);
    } else {
      // Spin briefly (a step takes microseconds), then yield: when the machine has
      // fewer free cores than threads (another busy process), pure spinning would
      // burn the time slice that the thread being waited for needs.
      for (int spins = 0; flag_.load(std::memory_order_acquire) != sense; ++spins) {
        if (spins < kSpinsBeforeYield)
          _mm_pause();
        else
          std::this_thread::yield();
      }
    }
  }

 private:
  static constexpr int kSpinsBeforeYield = 2000;
  const int n_;
  alignas(64) std::atomic<int> count_{0};
  alignas(64) std::atomic<bool> flag_{false};
};

#endif

}  // namespace grukit
