// Layer normalisation of one row of n values, forward and backward, for the
// layer-normalised GRU (layer_norm=True): each step's input projection and
// recurrent projection are normalised over their 3H values, separately:
//   xhat = (a - mean(a)) * rstd,  rstd = 1 / sqrt(var(a) + eps)  (biased variance)
//   a'   = xhat * gamma + beta   (beta = the GRU bias of that projection, or none)
// as torch.nn.functional.layer_norm computes it, which reference.py uses.
#pragma once

#include <cmath>
#include <cstdint>

#include <ATen/Parallel.h>

#include "vec.h"

namespace grukit {

constexpr double kLayerNormEps = 1e-5;

// sum_j a_j b_j (b = nullptr: sum_j a_j). Wide accumulators for float; the
// compiler keeps a plain loop's additions in order, so it would not vectorise it.
inline float dot(const float* a, const float* b, int64_t n) {
  int64_t j = 0;
  float s = 0.0f;
#if GRUKIT_HAVE_F8
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  const __m256 ones = _mm256_set1_ps(1.0f);
  for (; j + 16 <= n; j += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), b ? _mm256_loadu_ps(b + j) : ones, acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 8), b ? _mm256_loadu_ps(b + j + 8) : ones, acc1);
  }
  for (; j + 8 <= n; j += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), b ? _mm256_loadu_ps(b + j) : ones, acc0);
  acc0 = _mm256_add_ps(acc0, acc1);
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(acc0), _mm256_extractf128_ps(acc0, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  s = _mm_cvtss_f32(q);
#endif
  for (; j < n; ++j) s += b ? a[j] * b[j] : a[j];
  return s;
}

inline double dot(const double* a, const double* b, int64_t n) {
  double s = 0.0;
  for (int64_t j = 0; j < n; ++j) s += b ? a[j] * b[j] : a[j];
  return s;
}

// a <- xhat * gamma + beta in place; xhat and rstd are saved for the backward when
// their pointers are given.
template <class T>
inline void layer_norm_row(T* a, int64_t n, const T* gamma, const T* beta, T* xhat, T* rstd_out) {
  const T mean = dot(a, static_cast<const T*>(nullptr), n) / T(n);
  for (int64_t j = 0; j < n; ++j) a[j] -= mean;
  const T rstd = T(1) / std::sqrt(dot(a, a, n) / T(n) + T(kLayerNormEps));
  for (int64_t j = 0; j < n; ++j) {
    const T x = a[j] * rstd;
    if (xhat) xhat[j] = x;
    a[j] = x * gamma[j] + (beta ? beta[j] : T(0));
  }
  if (rstd_out) *rstd_out = rstd;
}

// The backward of layer_norm_row's xhat * gamma: da from da' (the gradient of its
// output), with g = da' gamma:  da = rstd (g - mean(g) - xhat mean(g xhat)).
template <class T>
inline void layer_norm_row_backward(const T* da_out, const T* xhat, T rstd, const T* gamma, T* da, int64_t n) {
  for (int64_t j = 0; j < n; ++j) da[j] = da_out[j] * gamma[j];
  const T m1 = dot(da, static_cast<const T*>(nullptr), n) / T(n);
  const T m2 = dot(da, xhat, n) / T(n);
  for (int64_t j = 0; j < n; ++j) da[j] = rstd * (da[j] - m1 - xhat[j] * m2);
}

// out[j] = sum_r a[r, j] b[r, j] over `rows` rows of `cols` values (a gain's
// gradient: dL/d(out) xhat summed over steps and rows), split over columns.
template <class T>
void column_dots(const T* a, const T* b, int64_t rows, int64_t cols, T* out) {
  at::parallel_for(0, cols, 64, [&](int64_t c0, int64_t c1) {
    for (int64_t j = c0; j < c1; ++j) out[j] = T(0);
    for (int64_t r = 0; r < rows; ++r) {
      const T *ar = a + r * cols, *br = b + r * cols;
      for (int64_t j = c0; j < c1; ++j) out[j] += ar[j] * br[j];
    }
  });
}

}  // namespace grukit
