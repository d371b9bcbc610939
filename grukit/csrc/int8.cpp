// Int8 inference: one GRU layer in one direction with int8 weights, quantised per
// output row (gk.quantize). Activations (x, and h at every step) are quantised per
// row on the fly and products summed exactly in int32 (int8.h), then scaled by the
// row's two scales:  (x W^T)[m, n] ~ sx[m] sw[n] sum_k xq[m, k] wq[n, k].
// A few rows per step (B < kU8Batch): 16-bit activations, whose error is the weights'
// rounding; int8 weights are a quarter of float32's bytes, which is what B=1 inference
// is bound by (the whole recurrent matrix is read at every step). Batches: 8-bit
// activations against weights packed for vpdpbusd (VNNI) or its 16-bit equivalent,
// where arithmetic bounds the step and 8-bit products are what make int8 pay.
// The time loop is the split loop's scheme (gru.cpp): each thread owns a slice of
// the hidden units, one barrier per step (two for reset_after=False). Inference only.
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

// The input projection when the loop makes it: x quantised per row, with the int8
// input weights; each thread projects onto its own units' rows, which only it reads.
// With 8-bit rows (xu, batches), each step's projection is made at the start of the step
// into a buffer of one step (gi then holds B rows, reused): writing all steps' projections
// first would stream megabytes out to memory and back.
struct InputRows {
  const int16_t* xq = nullptr;
  const uint8_t* xu = nullptr;
  const PackedU8* const* packed = nullptr;  // xu: W_ih's three gate blocks
  const float* sx = nullptr;
  const int8_t* wq = nullptr;
  const float *sw = nullptr, *bias = nullptr;
};

// u8: the recurrent weights' three gate blocks packed for 8-bit activations (batches of
// kU8Batch rows and more), else null: 16-bit activations.
void forward_loop_int8(const Dims& d, bool reset_after, bool reverse, float* gi, const InputRows& in,
                       const int8_t* wq, const float* sw, const float* b_hh, const int64_t* len, float* h,
                       float* y, const PackedU8* const* u8) {
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
    std::vector<int16_t> aq(u8 ? 0 : B * H);
    const int64_t Kp = u8 ? u8[0]->Kp : 0;
    std::vector<uint8_t> au(B * Kp);
    std::vector<float> sa(B), gh(B * 3 * H);
    auto quantize_rows_of = [&](const float* a, int64_t lda) {  // the step's state (or r h), per row
      for (int64_t b = 0; b < B; ++b)
        sa[b] = u8 ? quantize_row_u8(a + b * lda, H, Kp, au.data() + b * Kp) : quantize_row(a + b * lda, H, aq.data() + b * H);
    };
    // rows [n0, n1) of gate block k of W_hh: gh[:, c0 + n - n0], of width ldc
    auto product = [&](int k, int64_t n0, int64_t n1, int64_t ldc, int64_t c0) {
      const float* bias = b_hh ? b_hh + k * H : nullptr;
      if (u8) return qmatmul_u8(au.data(), sa.data(), B, *u8[k], sw + k * H, bias, n0, n1, gh.data(), ldc, c0);
      qmatmul_rows(aq.data(), sa.data(), B, H, wq, sw, b_hh, k * H + n0, k * H + n1, gh.data(), ldc, c0);
    };
    if (in.xq)  // one fork for the projection and the loop, each thread's weights in its cache
      for (int q = tid; q < slices; q += nthreads)
        for (int k = 0; k < 3; ++k)
          qmatmul_rows(in.xq, in.sx, d.T * B, d.I, in.wq, in.sw, in.bias, k * H + j0[q], k * H + j0[q + 1], gi,
                       3 * H, k * H + j0[q]);
    for (int64_t s = 0; s < d.T; ++s) {
      const int64_t t = step_time(s, d.T, reverse);
      const float* cur = buf[s % 2];
      float* nxt = buf[(s + 1) % 2];
      if (in.xu) {  // this step's projection, each thread onto its own units
        const int64_t Kp = in.packed[0]->Kp;
        for (int q = tid; q < slices; q += nthreads)
          for (int k = 0; k < 3; ++k)
            qmatmul_u8(in.xu + t * B * Kp, in.sx + t * B, B, *in.packed[k], in.sw + k * H,
                       in.bias ? in.bias + k * H : nullptr, j0[q], j0[q + 1], gi, 3 * H, k * H + j0[q]);
      }
      const float* gi_t = in.xu ? gi : gi + t * B * 3 * H;
      float* y_t = y + t * B * H;
      quantize_rows_of(cur, H);
      for (int q = tid; q < slices; q += nthreads) {
        const int64_t a = j0[q], nu = j0[q + 1] - j0[q], width = reset_after ? 3 : 2;
        // the slice's rows of each gate block: gh (B, width*nu), block k at column k*nu
        for (int k = 0; k < width; ++k) product(k, a, a + nu, width * nu, k * nu);
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
        quantize_rows_of(g + 3 * H, G);
        for (int q = tid; q < slices; q += nthreads) {
          const int64_t a = j0[q], nu = j0[q + 1] - j0[q];
          // gh_n = W_hn (r h) + b_hn for the slice's units
          product(2, a, a + nu, nu, 0);
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
  // The input projection. A batch of rows per step (kU8Batch and more): x quantised to
  // 8 bits per row, each step projected in the loop against W_ih's packed gate blocks
  // (a row's result does not depend on the others: gk.stream gets the same, step by
  // step). One row or a few per step, where reading the weights bounds the step: int16
  // rows, all steps projected at the loop's start inside its parallel region.
  InputRows in;
  std::vector<int16_t> xq;
  std::vector<uint8_t> xu;
  std::vector<float> sx(T * B);
  std::shared_ptr<const PackedU8> ih_blocks[3];
  const PackedU8* ih[3] = {};
  const float* xp = x.data_ptr<float>();
  const float* bias_ih = b_ih ? bi.data_ptr<float>() : nullptr;
  at::Tensor gi;
  if (B >= kU8Batch) {
    for (int k = 0; k < 3; ++k) {
      ih_blocks[k] = cached_pack_u8(wq_ih.data_ptr<int8_t>() + k * H * I, H, I);
      ih[k] = ih_blocks[k].get();
    }
    const int64_t Kp = ih[0]->Kp;
    xu.resize(T * B * Kp);
    for (int64_t r = 0; r < T * B; ++r) sx[r] = quantize_row_u8(xp + r * I, I, Kp, xu.data() + r * Kp);
    gi = at::empty({B, 3 * H}, x.options());
    in.xu = xu.data();
    in.packed = ih;
  } else {
    gi = at::empty({T, B, 3 * H}, x.options());
    xq.resize(T * B * I);
    for (int64_t r = 0; r < T * B; ++r) sx[r] = quantize_row(xp + r * I, I, xq.data() + r * I);
    in.xq = xq.data();
    in.wq = wq_ih.data_ptr<int8_t>();
  }
  in.sx = sx.data();
  in.sw = s_ih.data_ptr<float>();
  in.bias = bias_ih;
  std::shared_ptr<const PackedU8> blocks[3];  // batches: 8-bit activations against packed gate blocks
  const PackedU8* u8[3] = {};
  if (B >= kU8Batch)
    for (int k = 0; k < 3; ++k) {
      blocks[k] = cached_pack_u8(wq_hh.data_ptr<int8_t>() + k * H * H, H, H);
      u8[k] = blocks[k].get();
    }
  forward_loop_int8({T, B, I, H}, reset_after, reverse, gi.data_ptr<float>(), in, wq_hh.data_ptr<int8_t>(),
                    s_hh.data_ptr<float>(), b_hh ? bh.data_ptr<float>() : nullptr,
                    lengths ? len.data_ptr<int64_t>() : nullptr, h.data_ptr<float>(), y.data_ptr<float>(),
                    B >= kU8Batch ? u8 : nullptr);
  return {y, h};
}

}  // namespace grukit

TORCH_LIBRARY_FRAGMENT(grukit, m) {
  m.def(
      "gru_layer_forward_int8(Tensor x, Tensor? h0, Tensor wq_ih, Tensor s_ih, Tensor wq_hh, Tensor s_hh, "
      "Tensor? b_ih, Tensor? b_hh, Tensor? lengths, bool reset_after, bool reverse) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(grukit, CPU, m) { m.impl("gru_layer_forward_int8", &grukit::gru_layer_forward_int8); }
