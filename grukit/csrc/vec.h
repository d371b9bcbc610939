// Lane types for the gate math: plain float/double, and F8 (8 floats in an AVX2
// register) and D4 (4 doubles) when the compiler targets AVX2+FMA. The same templated gate code in
// gates.h runs on either; exp/sigmoid/tanh on F8 are branch-free polynomial
// versions (Cephes' expf and tanhf), accurate to a few ulp, NaN propagating.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

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

// D4: 4 doubles in an AVX2 register, for float64 layers. exp and tanh are Cephes' double
// versions (exp: a rational approximation on [-ln2/2, ln2/2] times 2^n; tanh: a rational
// one below 0.625, else from exp), accurate to about an ulp, NaN propagating.
struct D4 {
  __m256d v;
};
template <> struct Lanes<D4> { static constexpr int width = 4; using elem = double; };

inline D4 operator+(D4 a, D4 b) { return {_mm256_add_pd(a.v, b.v)}; }
inline D4 operator-(D4 a, D4 b) { return {_mm256_sub_pd(a.v, b.v)}; }
inline D4 operator*(D4 a, D4 b) { return {_mm256_mul_pd(a.v, b.v)}; }
inline D4 operator/(D4 a, D4 b) { return {_mm256_div_pd(a.v, b.v)}; }
inline D4 load(const double* p, D4*) { return {_mm256_loadu_pd(p)}; }
inline void store(double* p, D4 x) { _mm256_storeu_pd(p, x.v); }
inline D4 splat4(double x) { return {_mm256_set1_pd(x)}; }

inline D4 exp4(D4 x) {
  // clamp as max(lo, min(hi, x)) (NaN stays NaN): exp(-708.4) is the smallest normal result
  __m256d a = _mm256_max_pd(_mm256_set1_pd(-708.3964185322641), _mm256_min_pd(_mm256_set1_pd(709.782712893384), x.v));
  __m256d fx = _mm256_floor_pd(_mm256_fmadd_pd(a, _mm256_set1_pd(1.4426950408889634073599), _mm256_set1_pd(0.5)));
  a = _mm256_fnmadd_pd(fx, _mm256_set1_pd(6.93145751953125E-1), a);
  a = _mm256_fnmadd_pd(fx, _mm256_set1_pd(1.42860682030941723212E-6), a);
  const __m256d xx = _mm256_mul_pd(a, a);
  __m256d p = _mm256_set1_pd(1.26177193074810590878E-4);
  p = _mm256_fmadd_pd(p, xx, _mm256_set1_pd(3.02994407707441961300E-2));
  p = _mm256_fmadd_pd(p, xx, _mm256_set1_pd(9.99999999999999999910E-1));
  p = _mm256_mul_pd(p, a);
  __m256d q = _mm256_set1_pd(3.00198505138664455042E-6);
  q = _mm256_fmadd_pd(q, xx, _mm256_set1_pd(2.52448340349684104192E-3));
  q = _mm256_fmadd_pd(q, xx, _mm256_set1_pd(2.27265548208155028766E-1));
  q = _mm256_fmadd_pd(q, xx, _mm256_set1_pd(2.00000000000000000009E0));
  __m256d y = _mm256_div_pd(p, _mm256_sub_pd(q, p));
  y = _mm256_fmadd_pd(y, _mm256_set1_pd(2.0), _mm256_set1_pd(1.0));
  // times 2^n, n in [-1022, 1024]: as 2^(n/2) twice, so that n = 1024 does not overflow the exponent
  const __m128i n = _mm256_cvtpd_epi32(fx);
  const __m128i h1 = _mm_srai_epi32(n, 1), h2 = _mm_sub_epi32(n, h1);
  auto pow2 = [](__m128i k) {
    return _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(k), _mm256_set1_epi64x(1023)), 52));
  };
  return {_mm256_mul_pd(_mm256_mul_pd(y, pow2(h1)), pow2(h2))};
}

inline D4 sigmoid(D4 x) {
  const __m256d one = _mm256_set1_pd(1.0);
  D4 e = exp4({_mm256_sub_pd(_mm256_setzero_pd(), x.v)});
  return {_mm256_div_pd(one, _mm256_add_pd(one, e.v))};
}

inline D4 tanh_(D4 x) {
  const __m256d sign = _mm256_set1_pd(-0.0);
  const __m256d ax = _mm256_andnot_pd(sign, x.v);
  const __m256d s = _mm256_mul_pd(x.v, x.v);
  __m256d p = _mm256_set1_pd(-9.64399179425052238628E-1);
  p = _mm256_fmadd_pd(p, s, _mm256_set1_pd(-9.92877231001918586564E1));
  p = _mm256_fmadd_pd(p, s, _mm256_set1_pd(-1.61468768441708447952E3));
  __m256d q = _mm256_add_pd(s, _mm256_set1_pd(1.12811678491632931402E2));
  q = _mm256_fmadd_pd(q, s, _mm256_set1_pd(2.23548839060100448583E3));
  q = _mm256_fmadd_pd(q, s, _mm256_set1_pd(4.84406305325125486048E3));
  const __m256d small = _mm256_fmadd_pd(_mm256_div_pd(_mm256_mul_pd(s, p), q), x.v, x.v);
  D4 e = exp4({_mm256_add_pd(ax, ax)});
  const __m256d one = _mm256_set1_pd(1.0);
  __m256d big = _mm256_sub_pd(one, _mm256_div_pd(_mm256_set1_pd(2.0), _mm256_add_pd(e.v, one)));
  big = _mm256_or_pd(big, _mm256_and_pd(sign, x.v));  // copy the sign of x
  const __m256d use_small = _mm256_cmp_pd(ax, _mm256_set1_pd(0.625), _CMP_LT_OQ);
  return {_mm256_blendv_pd(big, small, use_small)};
}
#endif

// Typed helpers so that templated code can say ld<V>(p) and one<V>().
template <class V> inline V ld(const typename Lanes<V>::elem* p) {
  if constexpr (Lanes<V>::width == 1) {
    return *p;
  } else {
#if GRUKIT_HAVE_F8
    return load(p, static_cast<V*>(nullptr));
#endif
  }
}
template <class V> inline V one() {
  if constexpr (Lanes<V>::width == 1) {
    return V(1);
  } else {
#if GRUKIT_HAVE_F8
    if constexpr (std::is_same_v<V, D4>) return splat4(1.0);
    else return splat8(1.0f);
#endif
  }
}

}  // namespace grukit
