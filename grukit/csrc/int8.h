// The int8 products of grukit's int8 inference (int8.cpp's loop, stream.cpp's steps).
// Weights: int8 per output row (w ~ sw[n] q[n, :]). Two kinds of activation rows:
//  - int16 (quantize_row, qmatmul_rows): exact int32 sums over blocks of at most 512
//    terms, float32 across blocks; the error is the weights' rounding. For a few rows
//    per step, where reading the weights bounds the step.
//  - 8-bit (quantize_row_u8, qmatmul_u8): a ~ sa (u - 128), u in [1, 255], against
//    weights packed 16 rows by 4 columns (pack_u8), so that one instruction multiplies
//    and sums 64 pairs: VNNI's vpdpbusd where the CPU has it (AVX512-VNNI, in the AVX-512
//    build; corrected for the offset by the weights' row sums), else vpmaddubsw on the
//    centred bytes u - 128 against |w| with w's sign, then vpmaddwd into 32 bits. Exact
//    int32 sums either way. For batches of rows, where arithmetic bounds the step.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "vec.h"

namespace grukit {

constexpr int64_t kU8Batch = 4;  // from this many rows per step on, recurrent products take 8-bit activations
constexpr int64_t kBlockK = 512;  // |xq| <= 32767, |wq| <= 127: int32 sums of 512 terms cannot overflow

// q = round(a / scale) with scale = max|a| / 32767; returns the scale: 0 for a zero
// row, NaN for a row holding NaN or Inf (so that it reaches the output, as in float32).
// max |a[j]| over a row, and whether every value is finite.
inline float row_absmax(const float* a, int64_t n, bool& finite) {
  float m = 0.0f;
  finite = true;
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
  return m;
}

inline float quantize_row(const float* a, int64_t n, int16_t* q) {
  bool finite;
  const float m = row_absmax(a, n, finite);
  if (!finite || m == 0.0f) {
    std::memset(q, 0, sizeof(int16_t) * n);
    return finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
  }
  const float inv = 32767.0f / m;
  int64_t j = 0;
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

// ------------------------------------------------------------ 8-bit activations
// u = round(a / sa) + 128 with sa = max|a| / 127, padded with 128 (a zero) to n_pad;
// returns sa: 0 for a zero row, NaN for a row holding NaN or Inf.
inline float quantize_row_u8(const float* a, int64_t n, int64_t n_pad, uint8_t* u) {
  bool finite;
  const float m = row_absmax(a, n, finite);
  if (!finite || m == 0.0f) {
    std::memset(u, 128, n_pad);
    return finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
  }
  const float inv = 127.0f / m;
  int64_t j = 0;
#if GRUKIT_HAVE_F8
  const __m256 vinv = _mm256_set1_ps(inv);
  const __m128i offset = _mm_set1_epi8(static_cast<char>(0x80));  // q + 128 = q ^ 0x80 as a byte
  for (; j + 16 <= n; j += 16) {  // round to nearest (even), pack to 16 bytes in order, offset
    const __m256i lo = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(a + j), vinv));
    const __m256i hi = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(a + j + 8), vinv));
    const __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(lo, hi), 0xD8);
    const __m128i b8 = _mm_packs_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(u + j), _mm_xor_si128(b8, offset));
  }
#endif
  for (; j < n; ++j) u[j] = static_cast<uint8_t>(static_cast<int>(std::nearbyint(a[j] * inv)) + 128);
  std::memset(u + n, 128, n_pad - n);
  return m / 127.0f;
}

// Weights for qmatmul_u8: N rows in panels of 16, K padded to Kp (a multiple of 4) with
// zeros; panel p, group g holds w[16p + c][4g + i] at byte (p * Kp/4 + g) * 64 + 4c + i.
// rowsum[n] = sum_k w[n, k], for the offset: sum_k (u - 128) w = sum_k u w - 128 rowsum.
struct PackedU8 {
  int64_t N = 0, K = 0, Kp = 0;
  std::vector<int8_t> w;
  std::vector<int32_t> rowsum;
};

inline PackedU8 pack_u8(const int8_t* wq, int64_t ldw, int64_t N, int64_t K) {
  PackedU8 P;
  P.N = N;
  P.K = K;
  P.Kp = (K + 3) / 4 * 4;
  const int64_t panels = (N + 15) / 16, G = P.Kp / 4;
  P.w.assign(panels * G * 64, 0);
  P.rowsum.assign(panels * 16, 0);  // zero past N: whole panels are summed
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      const int8_t v = wq[n * ldw + k];
      P.w[((n / 16) * G + k / 4) * 64 + (n % 16) * 4 + k % 4] = v;
      P.rowsum[n] += v;
    }
  return P;
}

// Packs of the same weights come back call after call (a model's inference): the last
// few are kept per thread, found by pointer and shape, reused only while the bytes match.
inline std::shared_ptr<const PackedU8> cached_pack_u8(const int8_t* wq, int64_t N, int64_t K) {
  struct Entry {
    const int8_t* ptr;
    int64_t N, K;
    std::vector<int8_t> copy;
    std::shared_ptr<const PackedU8> P;
  };
  static thread_local std::vector<Entry> cache;
  for (auto& e : cache)
    if (e.ptr == wq && e.N == N && e.K == K && std::memcmp(e.copy.data(), wq, N * K) == 0) return e.P;
  Entry e{wq, N, K, std::vector<int8_t>(wq, wq + N * K), std::make_shared<const PackedU8>(pack_u8(wq, K, N, K))};
  if (cache.size() >= 8) cache.erase(cache.begin());
  cache.push_back(std::move(e));
  return cache.back().P;
}

// sums[m][c] = sum over k of u[m, k] w[16p + c, k], for MR (<= 4) rows of u and one panel.
// VNNI only in the AVX-512 build (the AVX2 build holds no AVX-512 instruction at all);
// there, chosen at run time by whether the CPU has AVX512-VNNI.
#if GRUKIT_HAVE_F8 && defined(__AVX512F__) && defined(__GNUC__)
#define GRUKIT_HAVE_VNNI 1
__attribute__((target("avx512f,avx512bw,avx512vnni"))) inline void panel_sums_vnni(
    const uint8_t* u, int64_t ldu, int MR, const int8_t* panel, int64_t G, int32_t (*sums)[16]) {
  // two sums per row, over even and odd groups: eight chains of vpdpbusd hide its latency
  // (written out: a lambda would not inherit this function's target)
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
#define GRUKIT_GROUP(g, r0, r1, r2, r3)                                                               \
  {                                                                                                    \
    const __m512i w = _mm512_loadu_si512(panel + (g) * 64);                                            \
    int32_t v;                                                                                         \
    std::memcpy(&v, u + 4 * (g), 4);                                                                   \
    r0 = _mm512_dpbusd_epi32(r0, _mm512_set1_epi32(v), w);                                             \
    if (MR > 1) { std::memcpy(&v, u + ldu + 4 * (g), 4); r1 = _mm512_dpbusd_epi32(r1, _mm512_set1_epi32(v), w); } \
    if (MR > 2) { std::memcpy(&v, u + 2 * ldu + 4 * (g), 4); r2 = _mm512_dpbusd_epi32(r2, _mm512_set1_epi32(v), w); } \
    if (MR > 3) { std::memcpy(&v, u + 3 * ldu + 4 * (g), 4); r3 = _mm512_dpbusd_epi32(r3, _mm512_set1_epi32(v), w); } \
  }
  int64_t g = 0;
  for (; g + 2 <= G; g += 2) {
    GRUKIT_GROUP(g, a0, a1, a2, a3)
    GRUKIT_GROUP(g + 1, b0, b1, b2, b3)
  }
  if (g < G) GRUKIT_GROUP(g, a0, a1, a2, a3)
#undef GRUKIT_GROUP
  _mm512_storeu_si512(sums[0], _mm512_add_epi32(a0, b0));
  if (MR > 1) _mm512_storeu_si512(sums[1], _mm512_add_epi32(a1, b1));
  if (MR > 2) _mm512_storeu_si512(sums[2], _mm512_add_epi32(a2, b2));
  if (MR > 3) _mm512_storeu_si512(sums[3], _mm512_add_epi32(a3, b3));
}

inline bool have_vnni() {
  static const bool yes = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
  return yes;
}
#else
#define GRUKIT_HAVE_VNNI 0
#endif

#if GRUKIT_HAVE_F8
// The same products without VNNI, centred: sums[m][c] = sum over k of q[m, k] w[16p + c, k]
// with q = u - 128, a signed byte in [-127, 127] (qmatmul_u8 flips u's top bits once per
// call). vpmaddubsw multiplies unsigned by signed bytes and adds pairs into 16 bits, so it
// takes |w| (at most 128) against q with w's sign: |w| (q sgn w) = q w, and a pair is at
// most 2 * 128 * 127 = 32512, which 16 bits hold (no saturation: the sums are exact).
// vpmaddwd by ones then adds the two pairs of a column into 32 bits. Each 32-byte half of a
// group is 8 columns of 4 bytes, so the lanes come out in column order. A group's weights
// are loaded once for all R rows; R <= 3 keeps the accumulators in AVX2's 16 registers.
template <int R>
inline void panel_sums_avx2(const int8_t* q, int64_t ldq, const int8_t* panel, int64_t G, int32_t (*sums)[16]) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i lo[R], hi[R];
  for (int m = 0; m < R; ++m) lo[m] = hi[m] = _mm256_setzero_si256();
  for (int64_t g = 0; g < G; ++g) {
    const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + g * 64));
    const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + g * 64 + 32));
    const __m256i m0 = _mm256_abs_epi8(w0), m1 = _mm256_abs_epi8(w1);
    for (int m = 0; m < R; ++m) {
      int32_t v;
      std::memcpy(&v, q + m * ldq + 4 * g, 4);
      const __m256i a = _mm256_set1_epi32(v);
      lo[m] = _mm256_add_epi32(lo[m], _mm256_madd_epi16(_mm256_maddubs_epi16(m0, _mm256_sign_epi8(a, w0)), ones));
      hi[m] = _mm256_add_epi32(hi[m], _mm256_madd_epi16(_mm256_maddubs_epi16(m1, _mm256_sign_epi8(a, w1)), ones));
    }
  }
  for (int m = 0; m < R; ++m) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums[m]), lo[m]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums[m] + 8), hi[m]);
  }
}

// u - 128 as signed bytes (the top bit flipped), n a multiple of 4.
inline void centre_u8(const uint8_t* u, int64_t n, int8_t* q) {
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  int64_t j = 0;
  for (; j + 32 <= n; j += 32)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + j),
                        _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(u + j)), flip));
  for (; j < n; ++j) q[j] = static_cast<int8_t>(u[j] ^ 0x80);
}
#endif

// C[m, c0 + n - n0] = sa[m] sw[n] sum_k (u[m, k] - 128) w[n, k] + bias[n] for rows n in
// [n0, n1) of P; u: M rows of P.Kp bytes. A panel that straddles n0 or n1 is summed
// whole and written in part (a row's sum does not depend on its neighbours).
inline void qmatmul_u8(const uint8_t* u, const float* sa, int64_t M, const PackedU8& P, const float* sw,
                       const float* bias, int64_t n0, int64_t n1, float* C, int64_t ldc, int64_t c0) {
  const int64_t G = P.Kp / 4, ldu = P.Kp;
#if GRUKIT_HAVE_VNNI
  const bool vnni = have_vnni();
#else
  const bool vnni = false;
#endif
  const int64_t step = vnni ? 4 : 3;  // rows summed together against one panel
#if GRUKIT_HAVE_F8
  static thread_local std::vector<int8_t> centred;  // without VNNI: u - 128, once per call
  if (!vnni) {
    centred.resize(M * ldu);
    centre_u8(u, M * ldu, centred.data());
  }
#endif
  for (int64_t p = n0 / 16; p * 16 < n1; ++p) {
    const int64_t first = std::max(n0, p * 16), last = std::min(n1, p * 16 + 16);
    const int8_t* panel = P.w.data() + p * G * 64;
    for (int64_t m0 = 0; m0 < M; m0 += step) {
      const int MR = static_cast<int>(std::min<int64_t>(step, M - m0));
      alignas(64) int32_t sums[4][16];  // centred: sum_k (u - 128) w
#if GRUKIT_HAVE_F8
      if (vnni) {  // vpdpbusd sums u w: the offset taken off by the weights' row sums
#if GRUKIT_HAVE_VNNI
        panel_sums_vnni(u + m0 * ldu, ldu, MR, panel, G, sums);
        for (int m = 0; m < MR; ++m)
          for (int c = 0; c < 16; ++c) sums[m][c] -= 128 * P.rowsum[p * 16 + c];
#endif
      } else {
        const int8_t* qm = centred.data() + m0 * ldu;
        if (MR == 3) panel_sums_avx2<3>(qm, ldu, panel, G, sums);
        else if (MR == 2) panel_sums_avx2<2>(qm, ldu, panel, G, sums);
        else panel_sums_avx2<1>(qm, ldu, panel, G, sums);
      }
#else
      for (int m = 0; m < MR; ++m)
        for (int c = 0; c < 16; ++c) {
          int32_t t = 0;
          for (int64_t k = 0; k < P.Kp; ++k)
            t += (int32_t(u[(m0 + m) * ldu + k]) - 128) * int32_t(panel[(k / 4) * 64 + c * 4 + k % 4]);
          sums[m][c] = t;
        }
#endif
      for (int m = 0; m < MR; ++m) {
        float* c = C + (m0 + m) * ldc + c0 - n0;  // c[n]
        int64_t n = first;
#if GRUKIT_HAVE_F8
        for (; n + 8 <= last; n += 8) {  // the same float32 operations as below, 8 columns at once
          const __m256i s8 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sums[m] + (n - p * 16)));
          __m256 v = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(s8), _mm256_set1_ps(sa[m0 + m])),
                                   _mm256_loadu_ps(sw + n));
          if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + n));
          _mm256_storeu_ps(c + n, v);
        }
#endif
        for (; n < last; ++n) {
          const float d = static_cast<float>(sums[m][n - p * 16]);
          const float scaled = d * sa[m0 + m];  // two roundings, as the vector lanes
          c[n] = scaled * sw[n] + (bias ? bias[n] : 0.0f);
        }
      }
    }
  }
}

}  // namespace grukit
