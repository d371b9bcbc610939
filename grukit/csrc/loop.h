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
