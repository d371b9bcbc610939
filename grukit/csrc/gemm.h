// The matmuls of one time step. Large ones go to ATen (MKL, multi-threaded); small
// float ones, where a BLAS call's fixed cost would dominate, run in the register-
// blocked AVX2 kernels below without leaving this thread, and so do those of 1-8 rows
// (kFewRows, kChunkedRows), shared out among the threads by columns.
//   mm_nt: C (M x N) = [bias +] A (M x K) W^T, W (N x K) row-major   (forward)
//   mm_nn: C (M x N) += A (M x K) W,           W (K x N) row-major   (backward)
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "vec.h"

namespace grukit {

// Up to this many rows of A a float matmul runs in the kernels here whatever its size: they read W
// once for all rows, shared out among the threads by columns (nt_small, nn_few). A weight too large
// to keep packed meets such rows at every step of a batch of 1-4 (StepMatmul's streamed steps), and
// gk.GRUCell at B <= 4; on ATen those layers were 0.96-1.22x torch.nn.GRU in inference on an AMD
// EPYC (AVX2), 2.2-8.9x since (benchmarks/bench_sizes.py; benchmarks/README.md, session 24).
constexpr int64_t kFewRows = 4;
// Up to this many rows, a float matmul too large for the small kernels runs in the few-rows kernels
// as well, in chunks of up to kFewRows rows (W read once per chunk): on an AMD EPYC (Zen 4) ATen's
// matmul took as long at 5-8 rows as at 4, up to 5x one pass over W; from 12 rows, through a weight
// larger than the L3 cache, ATen was faster (benchmarks/README.md, session 25).
constexpr int64_t kChunkedRows = 8;

// Below this many multiply-adds (M*N*K) a float matmul runs in the kernels here.
inline int64_t small_gemm_limit() {
  static const int64_t limit = [] {
    const char* env = std::getenv("GRUKIT_SMALL_GEMM_MACS");
    return env ? std::atoll(env) : int64_t(1) << 18;
  }();
  return limit;
}

#if GRUKIT_HAVE_F8
inline __m128 hsum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
  __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}
inline float hsum1(__m256 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_hadd_ps(s, s);
  return _mm_cvtss_f32(_mm_hadd_ps(s, s));
}

// One row of A against rows j..j+3 of W: four dot products over K.
inline void nt_row4(const float* a, const float* w, int64_t ldw, int64_t K, float* c, const float* bias) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    __m256 av = _mm256_loadu_ps(a + k);
    s0 = _mm256_fmadd_ps(av, _mm256_loadu_ps(w + k), s0);
    s1 = _mm256_fmadd_ps(av, _mm256_loadu_ps(w + ldw + k), s1);
    s2 = _mm256_fmadd_ps(av, _mm256_loadu_ps(w + 2 * ldw + k), s2);
    s3 = _mm256_fmadd_ps(av, _mm256_loadu_ps(w + 3 * ldw + k), s3);
  }
  alignas(16) float out[4];
  _mm_store_ps(out, hsum4(s0, s1, s2, s3));
  for (; k < K; ++k)
    for (int q = 0; q < 4; ++q) out[q] += a[k] * w[q * ldw + k];
  for (int q = 0; q < 4; ++q) c[q] = out[q] + (bias ? bias[q] : 0.0f);
}

inline void nt_small_cols(const float* A, int64_t lda, const float* W, int64_t ldw, const float* bias,
                          float* C, int64_t ldc, int64_t M, int64_t N, int64_t K);

// Weights larger than this (bytes) are split over the threads even for one row of
// A, so that each core keeps its share of W in its own L2 cache between steps.
constexpr int64_t kSplitBytes = 128 * 1024;

// body(n0, n1) over the N outputs of a product with an N x K weight: on the calling thread, or,
// for a weight of kSplitBytes or more, shared out among the threads in chunks of whole blocks of
// `align` outputs (each thread keeps its share of W in its own cache).
template <class F>
inline void by_columns(int64_t N, int64_t K, int64_t align, const F& body) {
  const int64_t threads = at::get_num_threads();
  if (threads == 1 || N * K * 4 < kSplitBytes || at::in_parallel_region()) return body(int64_t(0), N);
  const int64_t chunk = ((N + threads - 1) / threads + align - 1) / align * align;
  at::parallel_for(0, N, chunk, body);
}

// The rows of A in chunks of up to kFewRows, as even as they go (5 rows: 3 + 2).
template <class F>
inline void by_row_chunks(int64_t M, const F& body) {
  const int64_t chunks = (M + kFewRows - 1) / kFewRows;
  for (int64_t i = 0, m0 = 0; i < chunks; ++i) {
    const int64_t m1 = M * (i + 1) / chunks;
    body(m0, m1);
    m0 = m1;
  }
}

inline void nt_small(const float* A, int64_t lda, const float* W, int64_t ldw, const float* bias, float* C,
                     int64_t ldc, int64_t M, int64_t N, int64_t K) {
  by_columns(N, K, 4, [&](int64_t j0, int64_t j1) {  // whole 4-row blocks of W
    if (M > kChunkedRows)  // under the small kernels' bound: row by row
      return nt_small_cols(A, lda, W + j0 * ldw, ldw, bias ? bias + j0 : nullptr, C + j0, ldc, M, j1 - j0, K);
    by_row_chunks(M, [&](int64_t m0, int64_t m1) {
      nt_small_cols(A + m0 * lda, lda, W + j0 * ldw, ldw, bias ? bias + j0 : nullptr, C + m0 * ldc + j0, ldc,
                    m1 - m0, j1 - j0, K);
    });
  });
}

// MR rows of A (2-4) against rows j..j+JR-1 of W: MR x JR dot products over K, W read once
// for all MR rows (a loop over the rows of A would stream a W larger than cache MR times).
template <int MR, int JR>
inline void nt_block(const float* A, int64_t lda, const float* w, int64_t ldw, int64_t K, float* C, int64_t ldc,
                     const float* bias) {
  __m256 s[MR][JR];
  for (int m = 0; m < MR; ++m)
    for (int q = 0; q < JR; ++q) s[m][q] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    __m256 wv[JR];
    for (int q = 0; q < JR; ++q) wv[q] = _mm256_loadu_ps(w + q * ldw + k);
    for (int m = 0; m < MR; ++m) {
      const __m256 av = _mm256_loadu_ps(A + m * lda + k);
      for (int q = 0; q < JR; ++q) s[m][q] = _mm256_fmadd_ps(av, wv[q], s[m][q]);
    }
  }
  for (int m = 0; m < MR; ++m)
    for (int q = 0; q < JR; ++q) {
      float acc = hsum1(s[m][q]);
      for (int64_t kk = k; kk < K; ++kk) acc += A[m * lda + kk] * w[q * ldw + kk];
      C[m * ldc + q] = acc + (bias ? bias[q] : 0.0f);
    }
}

// 2-4 rows of A against all N rows of W, W read once (see nt_block).
template <int MR>
inline void nt_rows(const float* A, int64_t lda, const float* W, int64_t ldw, const float* bias, float* C,
                    int64_t ldc, int64_t N, int64_t K) {
  constexpr int JR = MR == 2 ? 4 : (MR == 3 ? 3 : 2);  // MR x JR accumulators + JR + 1 registers
  int64_t j = 0;
  for (; j + JR <= N; j += JR) nt_block<MR, JR>(A, lda, W + j * ldw, ldw, K, C + j, ldc, bias ? bias + j : nullptr);
  for (; j < N; ++j) nt_block<MR, 1>(A, lda, W + j * ldw, ldw, K, C + j, ldc, bias ? bias + j : nullptr);
}

inline void nt_small_cols(const float* A, int64_t lda, const float* W, int64_t ldw, const float* bias,
                          float* C, int64_t ldc, int64_t M, int64_t N, int64_t K) {
  if (M >= 2 && M <= 4) {
    if (M == 2) return nt_rows<2>(A, lda, W, ldw, bias, C, ldc, N, K);
    if (M == 3) return nt_rows<3>(A, lda, W, ldw, bias, C, ldc, N, K);
    return nt_rows<4>(A, lda, W, ldw, bias, C, ldc, N, K);
  }
  for (int64_t m = 0; m < M; ++m) {
    const float* a = A + m * lda;
    float* c = C + m * ldc;
    int64_t j = 0;
    for (; j + 4 <= N; j += 4) nt_row4(a, W + j * ldw, ldw, K, c + j, bias ? bias + j : nullptr);
    for (; j < N; ++j) {
      const float* w = W + j * ldw;
      __m256 s = _mm256_setzero_ps();
      int64_t k = 0;
      for (; k + 8 <= K; k += 8) s = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(w + k), s);
      float acc = hsum1(s);
      for (; k < K; ++k) acc += a[k] * w[k];
      c[j] = acc + (bias ? bias[j] : 0.0f);
    }
  }
}

// C += A W for MR rows of A (1-4) and columns [n0, n1) of W, W read once for all MR rows: columns
// in blocks of 16 (MR x 2 accumulators), over K in blocks of kFewK rows of W (a column block walked
// down all of K would touch a new page of W at every row of a wide W).
constexpr int64_t kFewK = 128;
template <int MR>
inline void nn_rows(const float* A, int64_t lda, const float* W, int64_t ldw, float* C, int64_t ldc,
                    int64_t n0, int64_t n1, int64_t K) {
  for (int64_t k0 = 0; k0 < K; k0 += kFewK) {
    const int64_t k1 = std::min(K, k0 + kFewK);
    int64_t n = n0;
    for (; n + 16 <= n1; n += 16) {
      __m256 x[MR][2];
      for (int m = 0; m < MR; ++m) {
        x[m][0] = _mm256_loadu_ps(C + m * ldc + n);
        x[m][1] = _mm256_loadu_ps(C + m * ldc + n + 8);
      }
      for (int64_t k = k0; k < k1; ++k) {
        const __m256 w0 = _mm256_loadu_ps(W + k * ldw + n), w1 = _mm256_loadu_ps(W + k * ldw + n + 8);
        for (int m = 0; m < MR; ++m) {
          const __m256 b = _mm256_set1_ps(A[m * lda + k]);
          x[m][0] = _mm256_fmadd_ps(b, w0, x[m][0]);
          x[m][1] = _mm256_fmadd_ps(b, w1, x[m][1]);
        }
      }
      for (int m = 0; m < MR; ++m) {
        _mm256_storeu_ps(C + m * ldc + n, x[m][0]);
        _mm256_storeu_ps(C + m * ldc + n + 8, x[m][1]);
      }
    }
    for (; n < n1; ++n)
      for (int m = 0; m < MR; ++m) {
        float s = C[m * ldc + n];
        for (int64_t k = k0; k < k1; ++k) s += A[m * lda + k] * W[k * ldw + n];
        C[m * ldc + n] = s;
      }
  }
}

// C += A W for up to kChunkedRows rows of A, the columns shared out among the threads (each keeps its
// share of W in its own cache), W read once for every chunk of up to kFewRows rows.
inline void nn_few(const float* A, int64_t lda, const float* W, int64_t ldw, float* C, int64_t ldc, int64_t M,
                   int64_t N, int64_t K) {
  auto cols = [&](int64_t n0, int64_t n1) {
    by_row_chunks(M, [&](int64_t m0, int64_t m1) {
      const float* a = A + m0 * lda;
      float* c = C + m0 * ldc;
      switch (m1 - m0) {
        case 1: return nn_rows<1>(a, lda, W, ldw, c, ldc, n0, n1, K);
        case 2: return nn_rows<2>(a, lda, W, ldw, c, ldc, n0, n1, K);
        case 3: return nn_rows<3>(a, lda, W, ldw, c, ldc, n0, n1, K);
        default: return nn_rows<4>(a, lda, W, ldw, c, ldc, n0, n1, K);
      }
    });
  };
  by_columns(N, K, 16, cols);  // whole 16-column blocks
}

// C += A W: rows of C in blocks of 2, columns in blocks of 16, accumulating over K.
inline void nn_small(const float* A, int64_t lda, const float* W, int64_t ldw, float* C, int64_t ldc,
                     int64_t M, int64_t N, int64_t K) {
  int64_t m = 0;
  for (; m + 2 <= M; m += 2) {
    const float *a0 = A + m * lda, *a1 = a0 + lda;
    float *c0 = C + m * ldc, *c1 = c0 + ldc;
    int64_t n = 0;
    for (; n + 16 <= N; n += 16) {
      __m256 x00 = _mm256_loadu_ps(c0 + n), x01 = _mm256_loadu_ps(c0 + n + 8);
      __m256 x10 = _mm256_loadu_ps(c1 + n), x11 = _mm256_loadu_ps(c1 + n + 8);
      for (int64_t k = 0; k < K; ++k) {
        __m256 w0 = _mm256_loadu_ps(W + k * ldw + n), w1 = _mm256_loadu_ps(W + k * ldw + n + 8);
        __m256 b0 = _mm256_set1_ps(a0[k]), b1 = _mm256_set1_ps(a1[k]);
        x00 = _mm256_fmadd_ps(b0, w0, x00);
        x01 = _mm256_fmadd_ps(b0, w1, x01);
        x10 = _mm256_fmadd_ps(b1, w0, x10);
        x11 = _mm256_fmadd_ps(b1, w1, x11);
      }
      _mm256_storeu_ps(c0 + n, x00);
      _mm256_storeu_ps(c0 + n + 8, x01);
      _mm256_storeu_ps(c1 + n, x10);
      _mm256_storeu_ps(c1 + n + 8, x11);
    }
    for (; n < N; ++n) {
      float s0 = c0[n], s1 = c1[n];
      for (int64_t k = 0; k < K; ++k) {
        s0 += a0[k] * W[k * ldw + n];
        s1 += a1[k] * W[k * ldw + n];
      }
      c0[n] = s0;
      c1[n] = s1;
    }
  }
  for (; m < M; ++m) {
    const float* a = A + m * lda;
    float* c = C + m * ldc;
    int64_t n = 0;
    for (; n + 32 <= N; n += 32) {
      __m256 x0 = _mm256_loadu_ps(c + n), x1 = _mm256_loadu_ps(c + n + 8);
      __m256 x2 = _mm256_loadu_ps(c + n + 16), x3 = _mm256_loadu_ps(c + n + 24);
      for (int64_t k = 0; k < K; ++k) {
        const float* w = W + k * ldw + n;
        __m256 b = _mm256_set1_ps(a[k]);
        x0 = _mm256_fmadd_ps(b, _mm256_loadu_ps(w), x0);
        x1 = _mm256_fmadd_ps(b, _mm256_loadu_ps(w + 8), x1);
        x2 = _mm256_fmadd_ps(b, _mm256_loadu_ps(w + 16), x2);
        x3 = _mm256_fmadd_ps(b, _mm256_loadu_ps(w + 24), x3);
      }
      _mm256_storeu_ps(c + n, x0);
      _mm256_storeu_ps(c + n + 8, x1);
      _mm256_storeu_ps(c + n + 16, x2);
      _mm256_storeu_ps(c + n + 24, x3);
    }
    for (; n < N; ++n) {
      float s = c[n];
      for (int64_t k = 0; k < K; ++k) s += a[k] * W[k * ldw + n];
      c[n] = s;
    }
  }
}

#endif

// ------------------------------------------------------------------ packed matmul
// The recurrent weights are used at every step, so they are packed once per call:
// N columns in panels of 16, panel p holding K rows of 16 floats (zero-padded).
// A 6 x 16 register-blocked kernel then streams each panel against 6 rows of A.
#if GRUKIT_HAVE_F8
struct Packed {
  at::Tensor buf;
  int64_t N = 0, K = 0, panels = 0;
  const float* panel(int64_t p) const { return buf.data_ptr<float>() + p * K * 16; }
};

// from W (N x K) row-major: C = A W^T (forward); transpose = false means W is (K x N): C = A W.
inline Packed pack(const float* W, int64_t ldw, int64_t N, int64_t K, bool transpose, bool threads = true) {
  Packed P;
  P.N = N;
  P.K = K;
  P.panels = (N + 15) / 16;
  P.buf = at::zeros({P.panels * K * 16}, at::kFloat);
  float* out = P.buf.data_ptr<float>();
  auto body = [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t n0 = p * 16, cols = std::min<int64_t>(16, N - n0);
      float* dst = out + p * K * 16;
      if (transpose) {
        for (int64_t c = 0; c < cols; ++c)
          for (int64_t k = 0; k < K; ++k) dst[k * 16 + c] = W[(n0 + c) * ldw + k];
      } else {
        for (int64_t k = 0; k < K; ++k)
          for (int64_t c = 0; c < cols; ++c) dst[k * 16 + c] = W[k * ldw + n0 + c];
      }
    }
  };
  if (threads && N * K >= (int64_t(1) << 16)) {
    at::parallel_for(0, P.panels, 1, body);
  } else {
    body(0, P.panels);
  }
  return P;
}

// c[0:cols] = acc (+ bias) (+ c): vector stores for a whole panel, a scalar tail otherwise.
inline void store_panel(float* c, __m256 lo, __m256 hi, int64_t cols, const float* bias, bool accumulate) {
  if (cols == 16) {
    if (bias) {
      lo = _mm256_add_ps(lo, _mm256_loadu_ps(bias));
      hi = _mm256_add_ps(hi, _mm256_loadu_ps(bias + 8));
    }
    if (accumulate) {
      lo = _mm256_add_ps(lo, _mm256_loadu_ps(c));
      hi = _mm256_add_ps(hi, _mm256_loadu_ps(c + 8));
    }
    _mm256_storeu_ps(c, lo);
    _mm256_storeu_ps(c + 8, hi);
    return;
  }
  alignas(32) float tmp[16];
  _mm256_store_ps(tmp, lo);
  _mm256_store_ps(tmp + 8, hi);
  for (int64_t q = 0; q < cols; ++q) c[q] = tmp[q] + (bias ? bias[q] : 0.0f) + (accumulate ? c[q] : 0.0f);
}

// Packs of weights that come back call after call (inference on fixed weights)
// are kept per thread, the last 16 of up to 4 MB each: found by pointer and shape,
// reused only if the contents still match (writes through .data bump no version).
constexpr int64_t kCachedPackFloats = int64_t(1) << 20;  // larger weights are packed on every call
// up to this many rows of A per step, a large W is not packed (StepMatmul): such steps run in the
// few-rows kernels, which read W once for all rows
constexpr int64_t kStreamRows = kFewRows;
constexpr int64_t kPackRows = 512;  // nor for one call with fewer rows than this
// nor for steps that multiply fewer rows than this in all (a few steps of a few rows: at B=5,
// H=1024 a layer's inference was 0.81x torch.nn.GRU's at T=5 packed, 1.07x not; at T=20 packing
// wins, 1.26x against 1.09x; benchmarks/README.md, session 20)
constexpr int64_t kPackStepRows = 64;
// A cached pack is compared with the weight in full on every call (2 reads of W): with up to
// 3 rows a step, a weight over 2 MB is not packed either (the step reads W from L2 or memory,
// packed or not; 0.79x torch.nn.GRU's inference time at B=2, H=500, T=10 when packed, 1.34x
// not; with 4 rows packing still pays: benchmarks/README.md, session 19).
constexpr int64_t kStreamRowsCached = 3;
constexpr int64_t kStreamFloats = int64_t(1) << 19;
// A weight used by one call (the input projection of all steps) goes to ATen as it is from
// this many columns of A (inputs) up: there MKL's AVX-512 matmul beats packing it and the
// 16-wide kernel below by 5-30% at 24-3200 rows, and a cached pack is compared in full on
// every call (benchmarks/README.md, session 19). Below it packing pays (up to 1.5x at 64).
// Nor, with more than 64 inputs, when the call has fewer rows than kOneCallPackRows (a few
// steps of a small batch: a whole layer at T=1, B=24, I=200 took 1.4x torch.nn.GRU's time,
// at T=3 1.1x; rows 128-512 measured alike either way). At 64 inputs or fewer packing
// pays at any number of rows (the grid's B=1, H=64, I=64: 0.133 ms unpacked, 0.112 packed).
// A weight every step repeats goes to ATen as it is when a step has kStepAtenRows rows or more
// and rows x N x K reaches kStepAtenMacs: there the 16-wide kernel, which reads the rows of A
// from L2 again for every panel of W, falls behind MKL's blocked AVX-512 matmul (a layer at B=128,
// H=512: 1.31x faster inference, 1.24x training, with ATen; B=64, H=1024: 1.14x / 1.28x; below
// the bounds packing wins, up to 1.5x at B=16, H=512; benchmarks/README.md, session 20). That
// was measured while mm_packed still read W once per 6-12 rows of a step; a step whose rows fit
// in half of L2 against a W larger than L2 now reads it once (w_streams_once), and stays
// packed: B=64, H=1024 inference 1.11-1.16x -> 1.26-1.29x torch.nn.GRU (session 21).
#if defined(__AVX512F__)
constexpr int64_t kOneCallMaxK = 256;
constexpr int64_t kOneCallPackRows = 128;
constexpr int64_t kStepAtenRows = 64;
constexpr int64_t kStepAtenMacs = int64_t(96) << 20;
#else  // the AVX2 kernel against MKL on an AVX2 machine: not measured, left as it was
constexpr int64_t kOneCallMaxK = int64_t(1) << 40;
constexpr int64_t kOneCallPackRows = 0;
constexpr int64_t kStepAtenRows = int64_t(1) << 40;
constexpr int64_t kStepAtenMacs = int64_t(1) << 40;
#endif

inline std::shared_ptr<const Packed> cached_pack(const float* W, int64_t ldw, int64_t N, int64_t K, bool nk) {
  const int64_t rows = nk ? N : K, cols = nk ? K : N;
  if (rows * cols > kCachedPackFloats) return std::make_shared<const Packed>(pack(W, ldw, N, K, nk));
  struct Entry {
    const float* ptr;
    int64_t ldw, N, K;
    bool nk;
    std::vector<float> copy;
    std::shared_ptr<const Packed> P;
  };
  static thread_local std::vector<Entry> cache;
  auto same = [&](const Entry& e) {
    if (e.ptr != W || e.ldw != ldw || e.N != N || e.K != K || e.nk != nk) return false;
    for (int64_t r = 0; r < rows; ++r)
      if (std::memcmp(e.copy.data() + r * cols, W + r * ldw, sizeof(float) * cols) != 0) return false;
    return true;
  };
  for (auto& e : cache)
    if (same(e)) return e.P;
  Entry e{W, ldw, N, K, nk, std::vector<float>(rows * cols), nullptr};
  for (int64_t r = 0; r < rows; ++r) std::memcpy(e.copy.data() + r * cols, W + r * ldw, sizeof(float) * cols);
  e.P = std::make_shared<const Packed>(pack(W, ldw, N, K, nk));
  for (auto& old : cache)
    if (old.ptr == W && old.N == N && old.K == K && old.nk == nk) {  // the same weights, updated
      old = std::move(e);
      return old.P;
    }
  if (cache.size() >= 16) cache.erase(cache.begin());
  cache.push_back(std::move(e));
  return cache.back().P;
}

// One row of a panel (16 weights) as two registers of 8 floats. The panels hold float32,
// or bfloat16 (the upper half of a float32: widened by a 16-bit shift, exactly).
inline void load_panel_row(const float* p, __m256& lo, __m256& hi) {
  lo = _mm256_loadu_ps(p);
  hi = _mm256_loadu_ps(p + 8);
}
inline void load_panel_row(const uint16_t* p, __m256& lo, __m256& hi) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  lo = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(v)), 16));
  hi = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(v, 1)), 16));
}

// The kernels below read a panel row as kernel_row says: float32 as it is; bfloat16 without
// shuffles (two cheap integer ops for 16 weights, against three shuffles and two shifts in order):
// the 32-bit lanes of 16 bfloat16 hold columns 2i (low half) and 2i + 1 (high half), so a shift
// gives the even columns and a mask the odd ones. Each column's sum runs over k in the same
// order either way (the same bits); kernel_out puts the columns back in order before the store.
inline void kernel_row(const float* p, __m256& lo, __m256& hi) { load_panel_row(p, lo, hi); }
inline void kernel_row(const uint16_t* p, __m256& even, __m256& odd) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  even = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
  odd = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(int(0xFFFF0000u))));
}
template <class WT>
inline void kernel_out(__m256& lo, __m256& hi) {
  if constexpr (std::is_same_v<WT, uint16_t>) {  // even, odd columns -> 0..7, 8..15
    const __m256 a = _mm256_unpacklo_ps(lo, hi), b = _mm256_unpackhi_ps(lo, hi);  // 0-3 8-11, 4-7 12-15
    lo = _mm256_permute2f128_ps(a, b, 0x20);
    hi = _mm256_permute2f128_ps(a, b, 0x31);
  }
}

// C[m, n0:n0+cols] (+)= A[m, :] . panel for MR rows m of A. The accumulators are
// named variables, not an array: GCC spills an array to the stack every iteration.
#define GRUKIT_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
template <int MR, class WT>
inline void kernel_mr(const float* A, int64_t lda, const WT* panel, int64_t K, float* C, int64_t ldc,
                      int64_t cols, const float* bias, bool accumulate) {
#define DECL(i) __m256 c##i##0 = _mm256_setzero_ps(), c##i##1 = _mm256_setzero_ps();
  GRUKIT_ROWS(DECL)
#undef DECL
  const float* a = A;
  for (int64_t k = 0; k < K; ++k, ++a) {
    __m256 w0, w1;
    kernel_row(panel + k * 16, w0, w1);
#define STEP(i)                                               \
  if constexpr (MR > i) {                                     \
    const __m256 b = _mm256_broadcast_ss(a + i * lda);        \
    c##i##0 = _mm256_fmadd_ps(b, w0, c##i##0);                \
    c##i##1 = _mm256_fmadd_ps(b, w1, c##i##1);                \
  }
    GRUKIT_ROWS(STEP)
#undef STEP
  }
#define STORE(i)                     \
  if constexpr (MR > i) {            \
    kernel_out<WT>(c##i##0, c##i##1); \
    store_panel(C + i * ldc, c##i##0, c##i##1, cols, bias, accumulate); \
  }
  GRUKIT_ROWS(STORE)
#undef STORE
}
#undef GRUKIT_ROWS

// One row of A (a matrix-vector product): with only two accumulators the FMA
// latency would bound it, so four partial sums over k interleave.
template <class WT>
inline void kernel_m1(const float* a, const WT* panel, int64_t K, float* c, int64_t cols, const float* bias,
                      bool accumulate) {
  __m256 s00 = _mm256_setzero_ps(), s01 = s00, s10 = s00, s11 = s00, s20 = s00, s21 = s00, s30 = s00, s31 = s00;
  __m256 w0, w1, w2, w3, w4, w5, w6, w7;
  int64_t k = 0;
  for (; k + 4 <= K; k += 4) {
    const WT* w = panel + k * 16;
    kernel_row(w, w0, w1);
    kernel_row(w + 16, w2, w3);
    kernel_row(w + 32, w4, w5);
    kernel_row(w + 48, w6, w7);
    __m256 b0 = _mm256_broadcast_ss(a + k), b1 = _mm256_broadcast_ss(a + k + 1);
    __m256 b2 = _mm256_broadcast_ss(a + k + 2), b3 = _mm256_broadcast_ss(a + k + 3);
    s00 = _mm256_fmadd_ps(b0, w0, s00);
    s01 = _mm256_fmadd_ps(b0, w1, s01);
    s10 = _mm256_fmadd_ps(b1, w2, s10);
    s11 = _mm256_fmadd_ps(b1, w3, s11);
    s20 = _mm256_fmadd_ps(b2, w4, s20);
    s21 = _mm256_fmadd_ps(b2, w5, s21);
    s30 = _mm256_fmadd_ps(b3, w6, s30);
    s31 = _mm256_fmadd_ps(b3, w7, s31);
  }
  for (; k < K; ++k) {
    __m256 b = _mm256_broadcast_ss(a + k);
    kernel_row(panel + k * 16, w0, w1);
    s00 = _mm256_fmadd_ps(b, w0, s00);
    s01 = _mm256_fmadd_ps(b, w1, s01);
  }
  __m256 lo = _mm256_add_ps(_mm256_add_ps(s00, s10), _mm256_add_ps(s20, s30));
  __m256 hi = _mm256_add_ps(_mm256_add_ps(s01, s11), _mm256_add_ps(s21, s31));
  kernel_out<WT>(lo, hi);
  store_panel(c, lo, hi, cols, bias, accumulate);
}

#if defined(__AVX512F__)
// With AVX-512 (the _C_avx512 variant) a panel row is one register of 16 floats, and two
// panels side by side (32 columns) against 6 rows of A keep 12 independent sums, enough to
// hide the FMA latency on two FMA ports; the stores are masked to the panels' columns.
inline void store_panel512(float* c, __m512 acc, int64_t cols, const float* bias, bool accumulate) {
  const __mmask16 m = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1);
  if (bias) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, bias));
  if (accumulate) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, c));
  _mm512_mask_storeu_ps(c, m, acc);
}

#define GRUKIT_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
template <int MR>
inline void kernel_mr2_512(const float* A, int64_t lda, const float* p0, const float* p1, int64_t K, float* C,
                           int64_t ldc, int64_t cols1, const float* bias, bool accumulate) {
#define DECL(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps();
  GRUKIT_ROWS(DECL)
#undef DECL
  const float* a = A;
  for (int64_t k = 0; k < K; ++k, ++a) {
    const __m512 w0 = _mm512_loadu_ps(p0 + k * 16), w1 = _mm512_loadu_ps(p1 + k * 16);
#define STEP(i)                                         \
  if constexpr (MR > i) {                               \
    const __m512 b = _mm512_set1_ps(a[i * lda]);        \
    c##i##0 = _mm512_fmadd_ps(b, w0, c##i##0);          \
    c##i##1 = _mm512_fmadd_ps(b, w1, c##i##1);          \
  }
    GRUKIT_ROWS(STEP)
#undef STEP
  }
#define STORE(i)                                                                          \
  if constexpr (MR > i) {                                                                 \
    store_panel512(C + i * ldc, c##i##0, 16, bias, accumulate);                           \
    store_panel512(C + i * ldc + 16, c##i##1, cols1, bias ? bias + 16 : nullptr, accumulate); \
  }
  GRUKIT_ROWS(STORE)
#undef STORE
}
#undef GRUKIT_ROWS

// One row of A against two neighbouring panels, the first of them full (a matrix-vector
// product, B=1): four partial sums over k per panel, so that eight independent chains hide
// the FMA latency, 16 floats a register.
inline void kernel_m1_2_512(const float* a, const float* p0, const float* p1, int64_t K, float* c, int64_t cols1,
                            const float* bias, bool accumulate) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, t0 = s0, t1 = s0, t2 = s0, t3 = s0;
  int64_t k = 0;
  for (; k + 4 <= K; k += 4) {
    const float *w = p0 + k * 16, *v = p1 + k * 16;
    const __m512 b0 = _mm512_set1_ps(a[k]), b1 = _mm512_set1_ps(a[k + 1]);
    const __m512 b2 = _mm512_set1_ps(a[k + 2]), b3 = _mm512_set1_ps(a[k + 3]);
    s0 = _mm512_fmadd_ps(b0, _mm512_loadu_ps(w), s0);
    t0 = _mm512_fmadd_ps(b0, _mm512_loadu_ps(v), t0);
    s1 = _mm512_fmadd_ps(b1, _mm512_loadu_ps(w + 16), s1);
    t1 = _mm512_fmadd_ps(b1, _mm512_loadu_ps(v + 16), t1);
    s2 = _mm512_fmadd_ps(b2, _mm512_loadu_ps(w + 32), s2);
    t2 = _mm512_fmadd_ps(b2, _mm512_loadu_ps(v + 32), t2);
    s3 = _mm512_fmadd_ps(b3, _mm512_loadu_ps(w + 48), s3);
    t3 = _mm512_fmadd_ps(b3, _mm512_loadu_ps(v + 48), t3);
  }
  for (; k < K; ++k) {
    const __m512 b = _mm512_set1_ps(a[k]);
    s0 = _mm512_fmadd_ps(b, _mm512_loadu_ps(p0 + k * 16), s0);
    t0 = _mm512_fmadd_ps(b, _mm512_loadu_ps(p1 + k * 16), t0);
  }
  store_panel512(c, _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)), 16, bias, accumulate);
  store_panel512(c + 16, _mm512_add_ps(_mm512_add_ps(t0, t1), _mm512_add_ps(t2, t3)), cols1,
                 bias ? bias + 16 : nullptr, accumulate);
}

// Rows [0, M) of A (M >= 2) against two neighbouring panels, the first of them full.
inline void rows_panel2(const float* A, int64_t lda, int64_t M, const float* p0, const float* p1, int64_t K,
                        float* C, int64_t ldc, int64_t cols1, const float* b, bool accumulate) {
  int64_t m = 0;
  for (; m + 6 <= M; m += 6)
    kernel_mr2_512<6>(A + m * lda, lda, p0, p1, K, C + m * ldc, ldc, cols1, b, accumulate);
  const float* a = A + m * lda;
  float* c = C + m * ldc;
  switch (M - m) {
    case 5: kernel_mr2_512<5>(a, lda, p0, p1, K, c, ldc, cols1, b, accumulate); break;
    case 4: kernel_mr2_512<4>(a, lda, p0, p1, K, c, ldc, cols1, b, accumulate); break;
    case 3: kernel_mr2_512<3>(a, lda, p0, p1, K, c, ldc, cols1, b, accumulate); break;
    case 2: kernel_mr2_512<2>(a, lda, p0, p1, K, c, ldc, cols1, b, accumulate); break;
    case 1: kernel_mr2_512<1>(a, lda, p0, p1, K, c, ldc, cols1, b, accumulate); break;
    default: break;
  }
}
#endif

// Rows [0, M) of A against one panel: 6 rows at a time, then the remainder.
template <class WT>
inline void rows_panel(const float* A, int64_t lda, int64_t M, const WT* panel, int64_t K, float* C,
                       int64_t ldc, int64_t cols, const float* b, bool accumulate) {
  if (M == 1) return kernel_m1(A, panel, K, C, cols, b, accumulate);
  int64_t m = 0;
  for (; m + 6 <= M; m += 6) kernel_mr<6>(A + m * lda, lda, panel, K, C + m * ldc, ldc, cols, b, accumulate);
  const float* a = A + m * lda;
  float* c = C + m * ldc;
  switch (M - m) {
    case 5: kernel_mr<5>(a, lda, panel, K, c, ldc, cols, b, accumulate); break;
    case 4: kernel_mr<4>(a, lda, panel, K, c, ldc, cols, b, accumulate); break;
    case 3: kernel_mr<3>(a, lda, panel, K, c, ldc, cols, b, accumulate); break;
    case 2: kernel_mr<2>(a, lda, panel, K, c, ldc, cols, b, accumulate); break;
    case 1: kernel_mr<1>(a, lda, panel, K, c, ldc, cols, b, accumulate); break;
    default: break;
  }
}

// A packed matmul of fewer multiply-adds than this runs on the calling thread: a fork would
// cost more than the work (also the split loop's bound, gru.cpp use_split).
constexpr int64_t kInlineMacs = int64_t(1) << 16;
// 2 MB: a core's L2 on the Intel Xeon where w_streams_once was timed (session 21); the AMD EPYC of
// earlier sessions has less, and there the rule is not timed
constexpr int64_t kL2Floats = int64_t(1) << 19;

// Whether rows x K against a packed W (N x K) shares W's panels out among the threads instead of
// cutting the rows into blocks that each read all of W: W larger than L2, the rows fitting in
// half of it (a step's rows; the backward's dgh W_hh at B=32, H=1024). W then streams from memory
// once. mm_packed takes this path; StepMatmul keeps such a step packed for it.
inline bool w_streams_once(int64_t rows, int64_t N, int64_t K) {
  return K * N > kL2Floats && rows * K <= kL2Floats / 2;
}

// C (M x N) (+)= [bias +] A (M x K) . P. A tall A (the input projection of all
// steps) is cut into row blocks of about 64 KB that stay in cache while every
// panel passes over them; the threads share out row blocks. A short A (one step)
// is shared out by panels instead, so each thread keeps its panels in its own cache.
inline void mm_packed(const float* A, int64_t lda, const Packed& P, const float* bias, float* C, int64_t ldc,
                      int64_t M, bool accumulate) {
  const int64_t K = P.K, N = P.N;
  const float* panels = P.buf.data_ptr<float>();
  auto block = [&](int64_t m0, int64_t m1, int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t n0 = p * 16;
#if defined(__AVX512F__)
      if (p + 1 < p1) {  // two panels at once (the first is full: not the last)
        const int64_t cols1 = std::min<int64_t>(16, N - n0 - 16);
        if (m1 - m0 == 1)
          kernel_m1_2_512(A + m0 * lda, panels + p * K * 16, panels + (p + 1) * K * 16, K, C + m0 * ldc + n0, cols1,
                          bias ? bias + n0 : nullptr, accumulate);
        else
          rows_panel2(A + m0 * lda, lda, m1 - m0, panels + p * K * 16, panels + (p + 1) * K * 16, K,
                      C + m0 * ldc + n0, ldc, cols1, bias ? bias + n0 : nullptr, accumulate);
        ++p;
        continue;
      }
#endif
      rows_panel(A + m0 * lda, lda, m1 - m0, panels + p * K * 16, K, C + m0 * ldc + n0, ldc,
                 std::min<int64_t>(16, N - n0), bias ? bias + n0 : nullptr, accumulate);
    }
  };
  const int64_t rows = std::max<int64_t>(6, (16384 / std::max<int64_t>(K, 1)) / 6 * 6);
  const bool small = M * N * K < kInlineMacs;
  if (M >= 4 * rows && !w_streams_once(M, N, K)) {  // row blocks, each reading all of W
    const int64_t blocks = (M + rows - 1) / rows;
    at::parallel_for(0, blocks, 1, [&](int64_t q0, int64_t q1) {
      for (int64_t q = q0; q < q1; ++q) block(q * rows, std::min(M, (q + 1) * rows), 0, P.panels);
    });
  } else if (small || at::get_num_threads() == 1 || at::in_parallel_region()) {
    block(0, M, 0, P.panels);
  } else {
    at::parallel_for(0, P.panels, 1, [&](int64_t p0, int64_t p1) { block(0, M, p0, p1); });
  }
}
#endif

template <class T>
inline at::Tensor view2d(const T* p, int64_t rows, int64_t cols, int64_t ld) {
  return at::from_blob(const_cast<T*>(p), {rows, cols}, {ld, 1}, at::CPU(c10::CppTypeToScalarType<T>::value));
}

template <class T>
inline void mm_nt(const T* A, int64_t lda, const T* W, int64_t ldw, const T* bias, T* C, int64_t ldc,
                  int64_t M, int64_t N, int64_t K) {
#if GRUKIT_HAVE_F8
  if constexpr (std::is_same_v<T, float>) {
    if (M * N * K <= small_gemm_limit() || M <= kChunkedRows) return nt_small(A, lda, W, ldw, bias, C, ldc, M, N, K);
  }
#endif
  at::Tensor c = view2d(C, M, N, ldc), a = view2d(A, M, K, lda), w = view2d(W, N, K, ldw);
  if (bias) {
    at::addmm_out(c, at::from_blob(const_cast<T*>(bias), {N}, at::CPU(c10::CppTypeToScalarType<T>::value)),
                  a, w.t());
  } else {
    at::mm_out(c, a, w.t());
  }
}

template <class T>
inline void mm_nn(const T* A, int64_t lda, const T* W, int64_t ldw, T* C, int64_t ldc, int64_t M, int64_t N,
                  int64_t K, bool accumulate) {
#if GRUKIT_HAVE_F8
  if constexpr (std::is_same_v<T, float>) {
    if (M * N * K <= small_gemm_limit() || M <= kChunkedRows) {
      if (!accumulate)
        for (int64_t m = 0; m < M; ++m) std::fill(C + m * ldc, C + m * ldc + N, 0.0f);
      if (M <= kChunkedRows) return nn_few(A, lda, W, ldw, C, ldc, M, N, K);
      return nn_small(A, lda, W, ldw, C, ldc, M, N, K);
    }
  }
#endif
  at::Tensor c = view2d(C, M, N, ldc);
  if (accumulate) {
    c.addmm_(view2d(A, M, K, lda), view2d(W, K, N, ldw));
  } else {
    at::mm_out(c, view2d(A, M, K, lda), view2d(W, K, N, ldw));
  }
}

// The matmul against one fixed weight block that every time step repeats:
//   nk = true:  C (M x N) = [bias +] A (M x K) W^T, W (N x K)   (forward)
//   nk = false: C (M x N) (+)= A (M x K) W,         W (K x N)   (backward)
// Float weights used over several steps are packed once (mm_packed).
constexpr int64_t kUnknownRows = int64_t(1) << 30;  // StepMatmul's rows when the caller does not say

template <class T>
class StepMatmul {
 public:
  // steps: how many calls (or, for one call, rows of A) will use W; rows: the rows of A
  // per call, where known; one_call: W is used by a single call (steps is then its rows).
  StepMatmul(const T* W, int64_t ldw, int64_t N, int64_t K, bool nk, int64_t steps,
             int64_t rows = kUnknownRows, bool one_call = false)
      : W_(W), ldw_(ldw), N_(N), K_(K), nk_(nk) {
#if GRUKIT_HAVE_F8
    if constexpr (std::is_same_v<T, float>) {
      // A weight too large to keep packed between calls (cached_pack) is packed anew on
      // every call, which costs about as much as multiplying it by 50 rows of A. So it
      // is used as it is when a step has a few rows (bound by reading W, packed or not: the
      // few-rows kernels, kFewRows) and when one call has fewer than kPackRows rows (the
      // input projection of a short sequence); nor, for one call, as kOneCallMaxK says.
      const bool uncached = N * K > kCachedPackFloats;
      const bool streamed = (uncached && (rows <= kStreamRows || (one_call && rows < kPackRows) ||
                                          (!one_call && steps * rows < kPackStepRows))) ||
                            (rows <= kStreamRowsCached && N * K > kStreamFloats);
      const bool to_aten = one_call && (K >= kOneCallMaxK || (rows < kOneCallPackRows && K > 64));
      const bool big_steps = !one_call && rows != kUnknownRows && rows >= kStepAtenRows &&
                             rows * N * K >= kStepAtenMacs && !w_streams_once(rows, N, K);
      if (steps >= 4 && !streamed && !to_aten && !big_steps) {
        P_ = cached_pack(W, ldw, N, K, nk);
        packed_ = true;
      }
    }
#endif
    (void)steps;
    (void)rows;
    (void)one_call;
  }

  void operator()(const T* A, int64_t lda, const T* bias, T* C, int64_t ldc, int64_t M, bool accumulate) const {
#if GRUKIT_HAVE_F8
    if constexpr (std::is_same_v<T, float>) {
      if (packed_) return mm_packed(A, lda, *P_, bias, C, ldc, M, accumulate);
    }
#endif
    if (nk_) {
      TORCH_INTERNAL_ASSERT(!accumulate);
      mm_nt(A, lda, W_, ldw_, bias, C, ldc, M, N_, K_);
    } else {
      TORCH_INTERNAL_ASSERT(!bias);
      mm_nn(A, lda, W_, ldw_, C, ldc, M, N_, K_, accumulate);
    }
  }

 private:
  const T* W_;
  int64_t ldw_, N_, K_;
  bool nk_;
  bool packed_ = false;
#if GRUKIT_HAVE_F8
  std::shared_ptr<const Packed> P_;
#endif
};

}  // namespace grukit
