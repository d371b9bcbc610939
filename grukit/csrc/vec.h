// Lane types for the gate math: plain float/double, and F8 (8 floats in an AVX2
// register) when the compiler targets AVX2+FMA. The same templated gate code in
// gates.h runs on either; exp/sigmoid/tanh on F8 are branch-free polynomial
// versions (Cephes' expf and tanhf), accurate to a few ulp, NaN propagating.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define GRUKIT_HAVE_F8 1
#else
#define GRUKIT_HAVE_F8 0
#endif

namespace grukit {

template <class V> struct Lanes { static constexpr int width = 1; using elem = V; };

template <class T> inline void store(T* p, T v) { *p = v; }
inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
inline float tanh_(float x) { return std::tanh(x); }
inline double tanh_(double x) { return std::tanh(x); }

#if GRUKIT_HAVE_F8
struct F8 {
  __m256 v;
};
template <> struct Lanes<F8> { static constexpr int width = 8; using elem = float; };

inline F8 operator+(F8 a, F8 b) { return {_mm256_add_ps(a.v, b.v)}; }
inline F8 operator-(F8 a, F8 b) { return {_mm256_sub_ps(a.v, b.v)}; }
inline F8 operator*(F8 a, F8 b) { return {_mm256_mul_ps(a.v, b.v)}; }
inline F8 operator/(F8 a, F8 b) { return {_mm256_div_ps(a.v, b.v)}; }
inline F8 load(const float* p, F8*) { return {_mm256_loadu_ps(p)}; }
inline void store(float* p, F8 x) { _mm256_storeu_ps(p, x.v); }
inline F8 splat8(float x) { return {_mm256_set1_ps(x)}; }

// exp(x), Cephes expf: x = n ln2 + g, exp(g) by a degree-6 polynomial, times 2^n.
inline F8 exp8(F8 x) {
  // clamp as max(lo, min(hi, x)): min/max return their 2nd operand on NaN, so NaN stays NaN
  __m256 a = _mm256_max_ps(_mm256_set1_ps(-87.3365447f), _mm256_min_ps(_mm256_set1_ps(88.3762626f), x.v));
  __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(a, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  a = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), a);
  a = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), a);
  __m256 z = _mm256_mul_ps(a, a);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, a, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, a, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, a, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, a, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, a, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, z, _mm256_add_ps(a, _mm256_set1_ps(1.0f)));
  __m256i n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
  return {_mm256_mul_ps(y, _mm256_castsi256_ps(n))};
}

inline F8 sigmoid(F8 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  F8 e = exp8({_mm256_sub_ps(_mm256_setzero_ps(), x.v)});
  return {_mm256_div_ps(one, _mm256_add_ps(one, e.v))};
}

// tanh(x), Cephes tanhf: an odd polynomial for |x| < 0.625, else 1 - 2 / (exp(2|x|) + 1).
inline F8 tanh_(F8 x) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 ax = _mm256_andnot_ps(sign, x.v);
  __m256 z = _mm256_mul_ps(x.v, x.v);
  __m256 p = _mm256_set1_ps(-5.70498872745e-3f);
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.06390887954e-2f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-5.37397155531e-2f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(1.33314422036e-1f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-3.33332819422e-1f));
  __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), x.v, x.v);
  F8 e = exp8({_mm256_add_ps(ax, ax)});
  const __m256 one = _mm256_set1_ps(1.0f);
  __m256 big = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e.v, one)));
  big = _mm256_or_ps(big, _mm256_and_ps(sign, x.v));  // copy the sign of x
  __m256 use_small = _mm256_cmp_ps(ax, _mm256_set1_ps(0.625f), _CMP_LT_OQ);
  return {_mm256_blendv_ps(big, small, use_small)};
}
#endif

// Typed helpers so that templated code can say ld<V>(p) and one<V>().
template <class V> inline V ld(const typename Lanes<V>::elem* p) {
  if constexpr (Lanes<V>::width == 1) {
    return *p;
  } else {
#if GRUKIT_HAVE_F8
    return load(p, static_cast<F8*>(nullptr));
#endif
  }
}
template <class V> inline V one() {
  if constexpr (Lanes<V>::width == 1) {
    return V(1);
  } else {
#if GRUKIT_HAVE_F8
    return splat8(1.0f);
#endif
  }
}

}  // namespace grukit
