// minGRU's recurrence as one fused pass, forward and backward (ops under torch.ops.grukit).
//
// The gate pre-activations of all steps, gates = [k | v] with k = W_z x + b_z and
// v = W_h x + b_h, come from one matmul (in PyTorch). Here, for each unit (a batch row
// and hidden index):
//   z_t = sigmoid(k_t), c_t = g(v_t) (v + 0.5 if v >= 0 else sigmoid(v)),
//   h_t = h_{t-1} + z_t (c_t - h_{t-1})
// and backward, with gh_t = dy_t + (1 - z_{t+1}) gh_{t+1}:
//   dk_t = gh_t (c_t - h_{t-1}) z_t (1 - z_t),  dv_t = gh_t z_t g'(v_t),  dh0 = (1 - z_0) gh_0.
// The units are independent, so threads share them out (rows x blocks of 64) and each
// runs its units through all steps, 8 at a time in AVX2 registers; nothing is stored but
// the outputs, and the backward recomputes z and g from the gates.

#include <ATen/Parallel.h>
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "vec.h"

namespace grukit {
namespace {

template <class V> struct MinGruMath;

template <> struct MinGruMath<float> {
  static float cand(float v, float& dcand) {  // g(v) and g'(v)
    float s = sigmoid(v);
    dcand = v >= 0.f ? 1.f : s * (1.f - s);
    return v >= 0.f ? v + 0.5f : s;
  }
};
template <> struct MinGruMath<double> {
  static double cand(double v, double& dcand) {
    double s = sigmoid(v);
    dcand = v >= 0.0 ? 1.0 : s * (1.0 - s);
    return v >= 0.0 ? v + 0.5 : s;
  }
};
#if GRUKIT_HAVE_F8
template <> struct MinGruMath<F8> {
  static F8 cand(F8 v, F8& dcand) {
    const __m256 one = _mm256_set1_ps(1.f);
    F8 s = sigmoid(v);
    __m256 pos = _mm256_cmp_ps(v.v, _mm256_setzero_ps(), _CMP_GE_OQ);
    dcand = {_mm256_blendv_ps(_mm256_mul_ps(s.v, _mm256_sub_ps(one, s.v)), one, pos)};
    return {_mm256_blendv_ps(s.v, _mm256_add_ps(v.v, _mm256_set1_ps(0.5f)), pos)};
  }
};
#endif

// One batch row b, hidden units [a, e): k and v are the two halves of each (B, 2H) row of
// the gate pre-activations, so they need no copying apart; dgates is laid out the same.
template <class V, class E>
void forward_units(const E* gates, const E* h0, E* h, int64_t T, int64_t B, int64_t H, int64_t b, int64_t a,
                   int64_t e) {
  constexpr int W = Lanes<V>::width;
  for (int64_t j = a; j < e; j += W) {
    V hp = ld<V>(h0 + b * H + j);
    for (int64_t t = 0; t < T; ++t) {
      const E* g = gates + (t * B + b) * 2 * H + j;
      V dc;
      V z = sigmoid(ld<V>(g));
      V c = MinGruMath<V>::cand(ld<V>(g + H), dc);
      hp = hp + z * (c - hp);
      store(h + (t * B + b) * H + j, hp);
    }
  }
}

template <class V, class E>
void backward_units(const E* dy, const E* gates, const E* h, const E* h0, E* dgates, E* dh0, int64_t T,
                    int64_t B, int64_t H, int64_t b, int64_t a, int64_t e) {
  constexpr int W = Lanes<V>::width;
  for (int64_t j = a; j < e; j += W) {
    V carry = one<V>() - one<V>();  // zero
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t o = (t * B + b) * H + j;
      const E* g = gates + (t * B + b) * 2 * H + j;
      E* dg = dgates + (t * B + b) * 2 * H + j;
      V gh = ld<V>(dy + o) + carry;
      V hp = t > 0 ? ld<V>(h + o - B * H) : ld<V>(h0 + b * H + j);
      V dc;
      V z = sigmoid(ld<V>(g));
      V c = MinGruMath<V>::cand(ld<V>(g + H), dc);
      V one_minus_z = one<V>() - z;
      store(dg, gh * (c - hp) * z * one_minus_z);
      store(dg + H, gh * z * dc);
      carry = gh * one_minus_z;
    }
    store(dh0 + b * H + j, carry);
  }
}

// Runs body(lanes, b, a, e) over (row, block of 64 units) items, 8 lanes at a time where
// they fit, then the rest one by one.
template <class E, class Body>
void over_units(int64_t T, int64_t B, int64_t H, Body&& body) {
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (H + kBlock - 1) / kBlock;
  const int64_t grain = std::max<int64_t>(1, 512 / std::max<int64_t>(T, 1));
  at::parallel_for(0, B * blocks, grain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / blocks, a = (i % blocks) * kBlock, e = std::min(H, a + kBlock);
      int64_t wide_end = a;
#if GRUKIT_HAVE_F8
      if constexpr (std::is_same_v<E, float>) {
        wide_end = a + (e - a) / 8 * 8;
        body(static_cast<F8*>(nullptr), b, a, wide_end);
      }
#endif
      body(static_cast<E*>(nullptr), b, wide_end, e);
    }
  });
}

void check(const at::Tensor& gates, const at::Tensor& h0) {
  TORCH_CHECK(gates.dim() == 3 && gates.size(2) % 2 == 0, "grukit: gates must be (T, B, 2H)");
  TORCH_CHECK(h0.dim() == 2 && h0.size(0) == gates.size(1) && 2 * h0.size(1) == gates.size(2),
              "grukit: h0 must be (B, H) matching gates (T, B, 2H)");
  TORCH_CHECK(gates.size(0) > 0, "grukit: minGRU needs at least one time step");
  TORCH_CHECK(gates.scalar_type() == h0.scalar_type() &&
                  (gates.scalar_type() == at::kFloat || gates.scalar_type() == at::kDouble),
              "grukit: minGRU scan takes float32 or float64 tensors of one dtype");
  TORCH_CHECK(gates.device().is_cpu() && h0.device().is_cpu(), "grukit: CPU tensors only");
}

at::Tensor mingru_scan_forward(const at::Tensor& gates_, const at::Tensor& h0_) {
  check(gates_, h0_);
  auto gates = gates_.contiguous(), h0 = h0_.contiguous();
  const int64_t T = gates.size(0), B = gates.size(1), H = h0.size(1);
  auto h = at::empty({T, B, H}, gates.options());
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "mingru_scan_forward", [&] {
    const auto *gp = gates.data_ptr<scalar_t>(), *h0p = h0.data_ptr<scalar_t>();
    auto* hp = h.data_ptr<scalar_t>();
    over_units<scalar_t>(T, B, H, [&](auto* lanes, int64_t b, int64_t a, int64_t e) {
      using V = std::remove_pointer_t<decltype(lanes)>;
      forward_units<V, scalar_t>(gp, h0p, hp, T, B, H, b, a, e);
    });
  });
  return h;
}

std::vector<at::Tensor> mingru_scan_backward(const at::Tensor& dy_, const at::Tensor& gates_,
                                             const at::Tensor& h_, const at::Tensor& h0_) {
  check(gates_, h0_);
  const int64_t T = gates_.size(0), B = gates_.size(1), H = h0_.size(1);
  TORCH_CHECK(dy_.sizes() == h_.sizes() && h_.dim() == 3 && h_.size(0) == T && h_.size(1) == B &&
                  h_.size(2) == H && dy_.scalar_type() == gates_.scalar_type() &&
                  h_.scalar_type() == gates_.scalar_type(),
              "grukit: dy and h must be (T, B, H) of the gates' dtype");
  auto dy = dy_.contiguous(), gates = gates_.contiguous(), h = h_.contiguous(), h0 = h0_.contiguous();
  auto dgates = at::empty_like(gates), dh0 = at::empty_like(h0);
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "mingru_scan_backward", [&] {
    const auto *dyp = dy.data_ptr<scalar_t>(), *gp = gates.data_ptr<scalar_t>();
    const auto *hp = h.data_ptr<scalar_t>(), *h0p = h0.data_ptr<scalar_t>();
    auto *dgp = dgates.data_ptr<scalar_t>(), *dh0p = dh0.data_ptr<scalar_t>();
    over_units<scalar_t>(T, B, H, [&](auto* lanes, int64_t b, int64_t a, int64_t e) {
      using V = std::remove_pointer_t<decltype(lanes)>;
      backward_units<V, scalar_t>(dyp, gp, hp, h0p, dgp, dh0p, T, B, H, b, a, e);
    });
  });
  return {dgates, dh0};
}

}  // namespace
}  // namespace grukit

TORCH_LIBRARY_FRAGMENT(grukit, m) {
  m.def("mingru_scan_forward(Tensor gates, Tensor h0) -> Tensor");
  m.def("mingru_scan_backward(Tensor dy, Tensor gates, Tensor h, Tensor h0) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(grukit, CPU, m) {
  m.impl("mingru_scan_forward", &grukit::mingru_scan_forward);
  m.impl("mingru_scan_backward", &grukit::mingru_scan_backward);
}
