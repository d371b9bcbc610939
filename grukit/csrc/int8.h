// The int8 products of grukit's int8 inference (int8.cpp's loop, stream.cpp's steps):
// activations quantised per row to int16, int8 weights per output row, exact int32
// sums over blocks of at most 512 terms, float32 across blocks.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "vec.h"

namespace grukit {

constexpr int64_t kBlockK = 512;  // |xq| <= 32767, |wq| <= 127: int32 sums of 512 terms cannot overflow

// q = round(a / scale) with scale = max|a| / 32767; returns the scale: 0 for a zero
// row, NaN for a row holding NaN or Inf (so that it reaches the output, as in float32).
inline float quantize_row(const float* a, int64_t n, int16_t* q) {
  float m = 0.0f;
  bool finite = true;
  int64_t j = 0;
#if GRUKIT_HAVE_F8
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 mx = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
  for (; j + 8 <= n; j += 8) {
    const __m256 v = _mm256_loadu_ps(a + j);
    mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v));
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(_mm256_sub_ps(v, v), _mm256_setzero_ps(), _CMP_NEQ_UQ));  // NaN or Inf
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, mx);
  for (float v : lanes) m = std::max(m, v);
  finite = _mm256_movemask_ps(bad) == 0;
#endif
  for (; j < n; ++j) {
    finite = finite && std::isfinite(a[j]);
    m = std::max(m, std::fabs(a[j]));
  }
  if (!finite || m == 0.0f) {
    std::memset(q, 0, sizeof(int16_t) * n);
    return finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
  }
  const float inv = 32767.0f / m;
  j = 0;
#if GRUKIT_HAVE_F8
  const __m256 vinv = _mm256_set1_ps(inv);
  for (; j + 16 <= n; j += 16) {  // round to nearest (even), then pack to int16 in order
    const __m256i lo = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(a + j), vinv));
    const __m256i hi = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(a + j + 8), vinv));
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi32(lo, hi), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + j), packed);
  }
#endif
  for (; j < n; ++j) q[j] = static_cast<int16_t>(std::nearbyint(a[j] * inv));
  return m / 32767.0f;
}

#if GRUKIT_HAVE_F8
inline int32_t hsum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}
#endif

// out[r] = sum_k a[k] w[r * ldw + k] for R (1 or 4) rows of w; exact int32 per block.
template <int R>
inline void dot_rows(const int16_t* a, const int8_t* w, int64_t ldw, int64_t K, float* out) {
  float total[R] = {};
  for (int64_t k0 = 0; k0 < K; k0 += kBlockK) {
    const int64_t k1 = std::min(K, k0 + kBlockK);
    int32_t part[R] = {};
    int64_t k = k0;
#if GRUKIT_HAVE_F8
    __m256i acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_si256();
    for (; k + 16 <= k1; k += 16) {
      const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + k));
      for (int r = 0; r < R; ++r) {
        const __m256i wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + r * ldw + k)));
        acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(av, wv));
      }
    }
    for (int r = 0; r < R; ++r) part[r] = hsum(acc[r]);
#endif
    for (; k < k1; ++k)
      for (int r = 0; r < R; ++r) part[r] += int32_t(a[k]) * int32_t(w[r * ldw + k]);
    for (int r = 0; r < R; ++r) total[r] += static_cast<float>(part[r]);
  }
  for (int r = 0; r < R; ++r) out[r] = total[r];
}

#if GRUKIT_HAVE_F8
// The 8 dot products of a with rows w, w + ldw, ..., w + 7 ldw as one float vector: 8
// accumulators, reduced together by a tree of horizontal adds (no scalar epilogue).
inline __m256 dot8(const int16_t* a, const int8_t* w, int64_t ldw, int64_t K) {
  __m256 total = _mm256_setzero_ps();
  for (int64_t k0 = 0; k0 < K; k0 += kBlockK) {
    const int64_t k1 = std::min(K, k0 + kBlockK);
    __m256i acc[8];
    for (int r = 0; r < 8; ++r) acc[r] = _mm256_setzero_si256();
    int64_t k = k0;
    for (; k + 16 <= k1; k += 16) {
      const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + k));
      for (int r = 0; r < 8; ++r) {
        const __m256i wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + r * ldw + k)));
        acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(av, wv));
      }
    }
    // hadd pairs rows within each 128-bit half: after two levels the low half holds
    // rows 0-3 (or 4-7) summed over the low lanes, the high half over the high lanes
    const __m256i r0123 = _mm256_hadd_epi32(_mm256_hadd_epi32(acc[0], acc[1]), _mm256_hadd_epi32(acc[2], acc[3]));
    const __m256i r4567 = _mm256_hadd_epi32(_mm256_hadd_epi32(acc[4], acc[5]), _mm256_hadd_epi32(acc[6], acc[7]));
    __m256i sum = _mm256_add_epi32(_mm256_permute2x128_si256(r0123, r4567, 0x20),
                                   _mm256_permute2x128_si256(r0123, r4567, 0x31));
    if (k < k1) {  // a tail of fewer than 16 columns
      alignas(32) int32_t tail[8] = {};
      for (int r = 0; r < 8; ++r)
        for (int64_t kk = k; kk < k1; ++kk) tail[r] += int32_t(a[kk]) * int32_t(w[r * ldw + kk]);
      sum = _mm256_add_epi32(sum, _mm256_load_si256(reinterpret_cast<const __m256i*>(tail)));
    }
    total = _mm256_add_ps(total, _mm256_cvtepi32_ps(sum));
  }
  return total;
}
#endif

// C[m, c] = sa[m] sw[n] (aq[m] . wq[n]) + bias[n] for rows n in [n0, n1), written to
// column c = n - n0 + c0 of C (row stride ldc). Weight rows outside, activation rows
// inside: a block of weight rows stays in L1 while every activation row passes.
inline void qmatmul_rows(const int16_t* aq, const float* sa, int64_t M, int64_t K, const int8_t* wq,
                         const float* sw, const float* bias, int64_t n0, int64_t n1, float* C, int64_t ldc,
                         int64_t c0) {
  float* c = C + c0 - n0;  // c[m * ldc + n]
  int64_t n = n0;
#if GRUKIT_HAVE_F8
  for (; n + 8 <= n1; n += 8) {
    const __m256 s_n = _mm256_loadu_ps(sw + n);
    const __m256 b_n = bias ? _mm256_loadu_ps(bias + n) : _mm256_setzero_ps();
    for (int64_t m = 0; m < M; ++m) {
      const __m256 dot = dot8(aq + m * K, wq + n * K, K, K);
      _mm256_storeu_ps(c + m * ldc + n, _mm256_fmadd_ps(_mm256_mul_ps(dot, _mm256_set1_ps(sa[m])), s_n, b_n));
    }
  }
#endif
  float d[4];
  for (; n + 4 <= n1; n += 4)
    for (int64_t m = 0; m < M; ++m) {
      dot_rows<4>(aq + m * K, wq + n * K, K, K, d);
      for (int r = 0; r < 4; ++r) c[m * ldc + n + r] = d[r] * sa[m] * sw[n + r] + (bias ? bias[n + r] : 0.0f);
    }
  for (; n < n1; ++n)
    for (int64_t m = 0; m < M; ++m) {
      dot_rows<1>(aq + m * K, wq + n * K, K, K, d);
      c[m * ldc + n] = d[0] * sa[m] * sw[n] + (bias ? bias[n] : 0.0f);
    }
}

}  // namespace grukit
