// Int8 inference: one GRU layer in one direction with int8 weights, quantised per
// output row (gk.quantize). Activations (x, and h at every step) are quantised per
// row to int16 on the fly; products are summed exactly in int32 over blocks of at
// most 512 terms and the block sums in float32, then scaled by the row's two scales:
//   (x W^T)[m, n] ~ sx[m] sw[n] sum_k xq[m, k] wq[n, k]
// With 16-bit activations the error is the weights' rounding; int8 weights are a
// quarter of float32's bytes, which is what B=1 inference is bound by: the whole
// recurrent matrix is read at every step. The time loop is the split loop's scheme
// (gru.cpp): each thread owns a slice of the hidden units, one barrier per step
// (two for reset_after=False). From a batch of 8 rows on, the input projection of all
// steps is instead one float32 matmul with the input weights dequantised (batched, it
// is bound by arithmetic, where int8 does not help). Inference only: no gradients.
#include <ATen/Parallel.h>
#include <torch/extension.h>
#include <torch/library.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "barrier.h"
#include "gates.h"
#include "loop.h"

namespace grukit {
namespace {

constexpr int64_t kMatmulBatch = 8;  // from this batch size on, the input projection is one float32 matmul
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

// The input projection when the loop makes it: x quantised per row, with the int8
// input weights; each thread projects onto its own units' rows, which only it reads.
struct InputRows {
  const int16_t* xq = nullptr;
  const float* sx = nullptr;
  const int8_t* wq = nullptr;
  const float *sw = nullptr, *bias = nullptr;
};

void forward_loop_int8(const Dims& d, bool reset_after, bool reverse, float* gi, const InputRows& in,
                       const int8_t* wq, const float* sw, const float* b_hh, const int64_t* len, float* h,
                       float* y) {
  const int64_t B = d.B, H = d.H, G = 4 * H;
  const int threads = at::in_parallel_region() ? 1 : at::get_num_threads();
  const int slices = split_slices(threads, H);
  const std::vector<int64_t> j0 = slice_starts(H, slices);
  std::vector<float> other(B * H), gates(B * G);  // second state buffer; r|z|n|s of the step
  float* buf[2] = {h, other.data()};
  float* g = gates.data();
#if GRUKIT_HAVE_F8
  SpinBarrier barrier(slices);
#endif
#pragma omp parallel num_threads(slices)
  {
    const int tid = omp_get_thread_num(), nthreads = omp_get_num_threads();
#if GRUKIT_HAVE_F8
    bool sense = false;
    auto sync = [&] {
      if (nthreads > 1) barrier.wait(sense);
    };
#else
    auto sync = [&] {
      if (nthreads > 1) {
#pragma omp barrier
      }
    };
#endif
    std::vector<int16_t> aq(B * H);
    std::vector<float> sa(B), gh(B * 3 * H);
    if (in.xq)  // one fork for the projection and the loop, each thread's weights in its cache
      for (int q = tid; q < slices; q += nthreads)
        for (int k = 0; k < 3; ++k)
          qmatmul_rows(in.xq, in.sx, d.T * B, d.I, in.wq, in.sw, in.bias, k * H + j0[q], k * H + j0[q + 1], gi,
                       3 * H, k * H + j0[q]);
    for (int64_t s = 0; s < d.T; ++s) {
      const int64_t t = step_time(s, d.T, reverse);
      const float* cur = buf[s % 2];
      float* nxt = buf[(s + 1) % 2];
      const float* gi_t = gi + t * B * 3 * H;
      float* y_t = y + t * B * H;
      for (int64_t b = 0; b < B; ++b) sa[b] = quantize_row(cur + b * H, H, aq.data() + b * H);
      for (int q = tid; q < slices; q += nthreads) {
        const int64_t a = j0[q], nu = j0[q + 1] - j0[q], width = reset_after ? 3 : 2;
        // the slice's rows of each gate block: gh (B, width*nu), block k at column k*nu
        for (int k = 0; k < width; ++k)
          qmatmul_rows(aq.data(), sa.data(), B, H, wq, sw, b_hh, k * H + a, k * H + a + nu, gh.data(),
                       width * nu, k * nu);
        for (int64_t b = 0; b < B; ++b) {
          if (len && t >= len[b]) {
            std::memcpy(nxt + b * H + a, cur + b * H + a, sizeof(float) * nu);
            std::memset(y_t + b * H + a, 0, sizeof(float) * nu);
            continue;
          }
          const float *gi_b = gi_t + b * 3 * H, *gh_b = gh.data() + b * width * nu;
          float* g_b = g + b * G;
          if (reset_after) {
            row<float>([&](auto v, int64_t j) {
              return forward_after(v, j, nu, H, nu, gi_b + a, gh_b, cur + b * H + a, nxt + b * H + a,
                                   y_t + b * H + a, g_b + a);
            });
          } else {
            row<float>([&](auto v, int64_t j) {
              return reset_gate(v, j, nu, gi_b + a, gh_b, cur + b * H + a, g_b + a, g_b + 3 * H + a);
            });
            row<float>([&](auto v, int64_t j) { return update_gate(v, j, nu, gi_b + H + a, gh_b + nu, g_b + H + a); });
          }
        }
      }
      if (!reset_after) {
        sync();  // all of s = r h is in g now
        for (int64_t b = 0; b < B; ++b) sa[b] = quantize_row(g + b * G + 3 * H, H, aq.data() + b * H);
        for (int q = tid; q < slices; q += nthreads) {
          const int64_t a = j0[q], nu = j0[q + 1] - j0[q];
          // gh_n = W_hn (r h) + b_hn for the slice's units
          qmatmul_rows(aq.data(), sa.data(), B, H, wq, sw, b_hh, 2 * H + a, 2 * H + a + nu, gh.data(), nu, 0);
          for (int64_t b = 0; b < B; ++b) {
            if (len && t >= len[b]) {
              std::memcpy(nxt + b * H + a, cur + b * H + a, sizeof(float) * nu);
              std::memset(y_t + b * H + a, 0, sizeof(float) * nu);
              continue;
            }
            row<float>([&](auto v, int64_t j) {
              return forward_before_b(v, j, nu, H, gi_t + b * 3 * H + a, gh.data() + b * nu, cur + b * H + a,
                                      nxt + b * H + a, y_t + b * H + a, g + b * G + a);
            });
          }
        }
      }
      sync();
    }
  }
  if (d.T % 2 == 1) std::memcpy(h, buf[1], sizeof(float) * B * H);
}

}  // namespace

// y (T, B, H), gh_n (B, H) from x (T, B, I) float32 and int8 weights with float32 row scales.
std::vector<at::Tensor> gru_layer_forward_int8(const at::Tensor& x_, const std::optional<at::Tensor>& h0_,
                                               const at::Tensor& wq_ih_, const at::Tensor& s_ih_,
                                               const at::Tensor& wq_hh_, const at::Tensor& s_hh_,
                                               const std::optional<at::Tensor>& b_ih,
                                               const std::optional<at::Tensor>& b_hh,
                                               const std::optional<at::Tensor>& lengths, bool reset_after,
                                               bool reverse) {
  TORCH_CHECK_VALUE(x_.dim() == 3 && x_.scalar_type() == at::kFloat && x_.device().is_cpu(),
                    "x must be a float32 (T, B, I) CPU tensor, got ", x_.scalar_type(), " ", x_.sizes());
  const int64_t T = x_.size(0), B = x_.size(1), I = x_.size(2), H = wq_hh_.size(-1);
  TORCH_CHECK_VALUE(wq_hh_.scalar_type() == at::kChar && wq_hh_.dim() == 2 && wq_hh_.size(0) == 3 * H,
                    "wq_hh must be int8 (3H, H), got ", wq_hh_.scalar_type(), " ", wq_hh_.sizes());
  TORCH_CHECK_VALUE(wq_ih_.scalar_type() == at::kChar && wq_ih_.dim() == 2 && wq_ih_.size(0) == 3 * H &&
                        wq_ih_.size(1) == I,
                    "wq_ih must be int8 (3H, I) = (", 3 * H, ", ", I, "), got ", wq_ih_.sizes());
  for (const at::Tensor* s : {&s_ih_, &s_hh_})
    TORCH_CHECK_VALUE(s->scalar_type() == at::kFloat && s->dim() == 1 && s->size(0) == 3 * H,
                      "row scales must be float32 (3H,), got ", s->sizes());
  const at::Tensor h0 = h0_ ? *h0_ : at::zeros({B, H}, x_.options());  // None: zeros
  TORCH_CHECK_VALUE(h0.scalar_type() == at::kFloat && h0.dim() == 2 && h0.size(0) == B && h0.size(1) == H,
                    "h0 must be float32 (B, H) = (", B, ", ", H, "), got ", h0.sizes());
  TORCH_CHECK_VALUE(b_ih.has_value() == b_hh.has_value(), "give both biases or neither");
  for (const auto* b : {&b_ih, &b_hh})
    if (b->has_value())
      TORCH_CHECK_VALUE((*b)->scalar_type() == at::kFloat && (*b)->dim() == 1 && (*b)->size(0) == 3 * H,
                        "biases must be float32 (3H,)");
  if (lengths)
    TORCH_CHECK_VALUE(lengths->scalar_type() == at::kLong && lengths->dim() == 1 && lengths->size(0) == B,
                      "lengths must be int64 (B,)");
  for (const at::Tensor* t : {&h0, &wq_ih_, &s_ih_, &wq_hh_, &s_hh_})
    TORCH_CHECK_VALUE(t->device().is_cpu(), "all tensors must be on the CPU");
  const at::Tensor x = x_.contiguous(), wq_ih = wq_ih_.contiguous(), wq_hh = wq_hh_.contiguous();
  const at::Tensor s_ih = s_ih_.contiguous(), s_hh = s_hh_.contiguous();
  const at::Tensor bi = b_ih ? b_ih->contiguous() : at::Tensor(), bh = b_hh ? b_hh->contiguous() : at::Tensor();
  const at::Tensor len = lengths ? lengths->contiguous() : at::Tensor();
  at::Tensor h = h0_ ? h0.contiguous().clone() : h0, y = at::empty({T, B, H}, x.options());
  if (T == 0 || B == 0) return {y, h};
  // The input projection of all steps. A batch of rows per step: one float32 matmul with
  // the weights dequantised (the same products, summed in float32; a batched matmul is
  // bound by arithmetic, where float32 is as fast). One row or a few per step: int8
  // rows, faster there than MKL's float32 matmul of a thin (T, I) x (I, 3H) product.
  at::Tensor gi;
  InputRows in;
  std::vector<int16_t> xq;
  std::vector<float> sx;
  if (B >= kMatmulBatch) {
    const at::Tensor w = wq_ih.to(at::kFloat).mul_(s_ih.unsqueeze(1));
    gi = b_ih ? at::addmm(bi, x.view({T * B, I}), w.t()) : at::mm(x.view({T * B, I}), w.t());
    gi = gi.view({T, B, 3 * H});
  } else {  // int8 rows, projected inside the loop's parallel region
    gi = at::empty({T, B, 3 * H}, x.options());
    xq.resize(T * B * I);
    sx.resize(T * B);
    const float* xp = x.data_ptr<float>();
    for (int64_t r = 0; r < T * B; ++r) sx[r] = quantize_row(xp + r * I, I, xq.data() + r * I);
    in = {xq.data(), sx.data(), wq_ih.data_ptr<int8_t>(), s_ih.data_ptr<float>(), b_ih ? bi.data_ptr<float>() : nullptr};
  }
  forward_loop_int8({T, B, I, H}, reset_after, reverse, gi.data_ptr<float>(), in, wq_hh.data_ptr<int8_t>(),
                    s_hh.data_ptr<float>(), b_hh ? bh.data_ptr<float>() : nullptr,
                    lengths ? len.data_ptr<int64_t>() : nullptr, h.data_ptr<float>(), y.data_ptr<float>());
  return {y, h};
}

}  // namespace grukit

TORCH_LIBRARY_FRAGMENT(grukit, m) {
  m.def(
      "gru_layer_forward_int8(Tensor x, Tensor? h0, Tensor wq_ih, Tensor s_ih, Tensor wq_hh, Tensor s_hh, "
      "Tensor? b_ih, Tensor? b_hh, Tensor? lengths, bool reset_after, bool reverse) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(grukit, CPU, m) { m.impl("gru_layer_forward_int8", &grukit::gru_layer_forward_int8); }
