// The pieces every GRU time loop shares (gru.cpp's float loops, int8.cpp's int8 loop):
// the sizes of a call, the order of the steps, and how the split loop shares the hidden
// units among its threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace grukit {

// One layer-direction's call: T steps of B rows, I input features, H hidden units.
struct Dims {
  int64_t T, B, I, H;
};

// The time index of the s-th step taken (reverse: from the end).
inline int64_t step_time(int64_t s, int64_t T, bool reverse) { return reverse ? T - 1 - s : s; }

// How many rows of the batch still run at step t. With lengths sorted longest first (a
// PackedSequence's order) the running rows are a prefix of the batch, and a step's matmuls
// and gate passes take that prefix only: the work of torch's packed GRU, without packing.
// Otherwise (no lengths, or unsorted ones) all B rows, each finished row skipped on its own.
class Running {
 public:
  Running(const int64_t* len, int64_t B) : len_(len), B_(B) {
    sorted_ = len != nullptr;
    for (int64_t b = 1; sorted_ && b < B; ++b) sorted_ = len[b] <= len[b - 1];
  }
  int64_t at(int64_t t) const {
    if (!sorted_) return B_;
    int64_t lo = 0, hi = B_;  // the first row whose sequence has ended by step t
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (len_[mid] > t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

 private:
  const int64_t* len_;
  int64_t B_;
  bool sorted_;
};

// The split loop's threads: at most one per 8 hidden units (an AVX2 register of them).
inline int split_slices(int threads, int64_t H) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, H / 8)));
}

// Slice q of the split loop owns hidden units [j0[q], j0[q + 1]); each start is rounded
// up to a multiple of 8, so that a thread's units fill whole registers.
inline std::vector<int64_t> slice_starts(int64_t H, int slices) {
  std::vector<int64_t> j0(slices + 1);
  for (int q = 0; q <= slices; ++q) j0[q] = std::min<int64_t>(H, (H * q / slices + 7) / 8 * 8);
  return j0;
}

}  // namespace grukit
