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
#include "int8.h"
#include "loop.h"

namespace grukit {
namespace {

constexpr int64_t kMatmulBatch = 8;  // from this batch size on, the input projection is one float32 matmul

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
