// The fused CPU engine: one GRU layer in one direction, forward and backward
// through time. The input projection of all steps is one matmul; each step does
// its recurrent matmul and one fused pass over the gate math (gates.h); the
// backward runs the steps in reverse and leaves the weight gradients to large
// matmuls over all steps. The math is grukit/reference.py's; tests compare them.
//
// Layouts (all contiguous): x (T, B, I), h0 (B, H), w_ih (3H, I), w_hh (3H, H),
// biases (3H); gates g (T, B, 4H) = r|z|n|s per step and row, s = gh_n
// (reset_after=True) or r*h (False); hp (T, B, H) = the state each step started
// from. Steps are indexed by time t; a reverse layer visits t = T-1 .. 0.
// Row b is valid at t when t < lengths[b]: otherwise its state passes through
// unchanged and its output is 0. resets (T, B) bool: where set (and valid), row b's
// state is zeroed before step t, and no gradient flows back through that boundary.
// zoneout (T, B, H): the share of each unit's previous state kept at step t,
// h_t = m h_{t-1} + (1 - m) h'_t with h'_t the GRU update (0/1 draws in training,
// the probability itself at inference). h_mask (B, H): recurrent dropout, Keras'
// way: the state that feeds the recurrent matmul (and r h) is h * h_mask; the
// state carried in the blend is not. Only the one-thread-per-step loop takes it.
// ln_ih, ln_hh (3H): layer normalisation (reset_after=True only, norm.h): each
// step's input projection W_ih x and recurrent projection W_hh h are normalised
// over their 3H values and scaled by these gains, then b_ih, b_hh are added; the
// normalised values xhat and 1/std are saved per step and row for the backward.
// Only the one-thread-per-step loop takes it.
#include <ATen/Parallel.h>
#include <torch/extension.h>
#include <torch/library.h>

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <cstring>
#include <vector>

#include "gates.h"
#include "barrier.h"
#include "gemm.h"
#include "loop.h"
#include "norm.h"

namespace grukit {
namespace {

// Zoneout after a row's update: h_new = m hp + (1 - m) h_new, and the output with it.
template <class T>
inline void zone_row(const T* m, const T* hp, T* h_new, T* y, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    h_new[j] = m[j] * hp[j] + (T(1) - m[j]) * h_new[j];
    y[j] = h_new[j];
  }
}

// Whether row b's state is zeroed before step t.
inline bool resets_at(const bool* rs, const int64_t* len, int64_t t, int64_t B, int64_t b) {
  return rs && rs[t * B + b] && !(len && t >= len[b]);
}

// Scratch that never leaves an op (gi, dgi, dgh) is kept per thread and reused:
// a fresh allocation of tens of MB is mapped anew by the C library on every call,
// and touching its pages costs as much as the matmul that fills them.
at::Tensor workspace(int slot, int64_t numel, const at::TensorOptions& opts) {
#ifdef GRUKIT_EXACT_BUFFERS  // the sanitizer build: every buffer its exact size, so overreads show
  (void)slot;
  return at::empty({numel}, opts);
#endif
  static thread_local at::Tensor cache[2][6];
  at::Tensor& t = cache[opts.dtype() == at::kDouble ? 1 : 0][slot];
  if (!t.defined() || t.numel() < numel) t = at::empty({numel}, opts);
  return t.narrow(0, 0, numel);
}

// Tensors saved for the backward (gates, hp, the layer-norm statistics) outlive the
// op, so they cannot be scratch; but they die with the autograd graph, one training
// step later. Big ones come from a small per-thread pool of buffers, handed out
// again once nothing refers to their memory (the graph that saved them is gone):
// that spares a fresh mapping, and its page faults, on every step.
at::Tensor saved_empty(at::IntArrayRef sizes, const at::TensorOptions& opts) {
  constexpr int64_t kMinBytes = int64_t(1) << 20;
  constexpr size_t kMaxBuffers = 32;
  const int64_t numel = c10::multiply_integers(sizes);
#ifdef GRUKIT_EXACT_BUFFERS
  return at::empty(sizes, opts);
#endif
  if (numel * static_cast<int64_t>(opts.dtype().itemsize()) < kMinBytes) return at::empty(sizes, opts);
  static thread_local std::vector<at::Tensor> pool;
  auto is_free = [](const at::Tensor& t) { return t.storage().use_count() == 1; };
  at::Tensor* best = nullptr;
  for (at::Tensor& t : pool)
    if (is_free(t) && t.dtype() == opts.dtype() && t.numel() >= numel && t.numel() <= 2 * numel &&
        (!best || t.numel() < best->numel()))
      best = &t;
  if (!best) {
    if (pool.size() >= kMaxBuffers) {  // full: give back a free buffer, else go without the pool
      auto it = std::find_if(pool.begin(), pool.end(), is_free);
      if (it == pool.end()) return at::empty(sizes, opts);
      pool.erase(it);
    }
    pool.push_back(at::empty({numel}, opts));
    best = &pool.back();
  }
  return best->narrow(0, 0, numel).view(sizes);
}

// The gate pass of one step over rows [b0, b1): on one thread when small (a fork
// costs about a microsecond), else split evenly over torch's threads.
template <class Fn>
inline void for_rows(int64_t B, int64_t H, Fn&& fn) {
  const int64_t threads = at::get_num_threads();
  if (B * H < 8192 || threads == 1 || B == 1) {
    fn(0, B);
  } else {
    at::parallel_for(0, B, (B + threads - 1) / threads, fn);
  }
}

// x's dtype and device, and the weights and h0 of B rows against x's I features.
void check_layer(const at::Tensor& x, int64_t B, int64_t I, const at::Tensor& h0, const at::Tensor& w_ih,
                 const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih,
                 const std::optional<at::Tensor>& b_hh) {
  TORCH_CHECK_TYPE(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
                   "x must be float32 or float64, got ", x.scalar_type());
  TORCH_CHECK_VALUE(x.device().is_cpu(), "x must be on the CPU, got ", x.device());
  const int64_t H = w_hh.size(1);
  TORCH_CHECK_VALUE(w_hh.dim() == 2 && w_hh.size(0) == 3 * H, "w_hh must be (3H, H), got ", w_hh.sizes());
  TORCH_CHECK_VALUE(w_ih.dim() == 2 && w_ih.size(0) == 3 * H && w_ih.size(1) == I,
                    "w_ih must be (3H, I) = (", 3 * H, ", ", I, "), got ", w_ih.sizes());
  TORCH_CHECK_VALUE(h0.dim() == 2 && h0.size(0) == B && h0.size(1) == H, "h0 must be (B, H) = (", B, ", ",
                    H, "), got ", h0.sizes());
  for (const at::Tensor* t : {&h0, &w_ih, &w_hh}) {
    TORCH_CHECK_TYPE(t->scalar_type() == x.scalar_type(), "all tensors must have x's dtype ",
                     x.scalar_type(), ", got ", t->scalar_type());
    TORCH_CHECK_VALUE(t->device().is_cpu(), "all tensors must be on the CPU, got ", t->device());
  }
  TORCH_CHECK_VALUE(b_ih.has_value() == b_hh.has_value(), "give both biases or neither");
  if (b_ih) {
    for (const at::Tensor* t : {&*b_ih, &*b_hh}) {
      TORCH_CHECK_VALUE(t->dim() == 1 && t->size(0) == 3 * H, "biases must be (3H,), got ", t->sizes());
      TORCH_CHECK_TYPE(t->scalar_type() == x.scalar_type(), "biases must have x's dtype");
      TORCH_CHECK_VALUE(t->device().is_cpu(), "biases must be on the CPU");
    }
  }
}

void check_inputs(const at::Tensor& x, const at::Tensor& h0, const at::Tensor& w_ih, const at::Tensor& w_hh,
                  const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh,
                  const std::optional<at::Tensor>& lengths) {
  TORCH_CHECK_VALUE(x.dim() == 3, "x must be (T, B, I), got ", x.sizes());
  const int64_t B = x.size(1);
  check_layer(x, B, x.size(2), h0, w_ih, w_hh, b_ih, b_hh);
  if (lengths) {
    TORCH_CHECK_TYPE(lengths->scalar_type() == at::kLong, "lengths must be int64, got ", lengths->scalar_type());
    TORCH_CHECK_VALUE(lengths->dim() == 1 && lengths->size(0) == B && lengths->device().is_cpu(),
                      "lengths must be a (B,) CPU tensor, got ", lengths->sizes());
    if (B > 0) {
      auto mm = at::aminmax(*lengths);
      TORCH_CHECK_VALUE(std::get<0>(mm).item<int64_t>() >= 0 && std::get<1>(mm).item<int64_t>() <= x.size(0),
                        "lengths must lie in [0, T]");
    }
  }
}

void check_zoneout(const std::optional<at::Tensor>& zoneout, const at::Tensor& x, int64_t H) {
  if (!zoneout) return;
  TORCH_CHECK_TYPE(zoneout->scalar_type() == x.scalar_type(), "zoneout must have x's dtype ", x.scalar_type(),
                   ", got ", zoneout->scalar_type());
  TORCH_CHECK_VALUE(zoneout->dim() == 3 && zoneout->size(0) == x.size(0) && zoneout->size(1) == x.size(1) &&
                        zoneout->size(2) == H && zoneout->device().is_cpu(),
                    "zoneout must be a (T, B, H) = (", x.size(0), ", ", x.size(1), ", ", H, ") CPU tensor, got ",
                    zoneout->sizes());
}

void check_h_mask(const std::optional<at::Tensor>& mask, const at::Tensor& x, int64_t H) {
  if (!mask) return;
  TORCH_CHECK_TYPE(mask->scalar_type() == x.scalar_type(), "h_mask must have x's dtype ", x.scalar_type(),
                   ", got ", mask->scalar_type());
  TORCH_CHECK_VALUE(mask->dim() == 2 && mask->size(0) == x.size(1) && mask->size(1) == H && mask->device().is_cpu(),
                    "h_mask must be a (B, H) = (", x.size(1), ", ", H, ") CPU tensor, got ", mask->sizes());
}

void check_layer_norm(const std::optional<at::Tensor>& ln_ih, const std::optional<at::Tensor>& ln_hh,
                      const at::Tensor& x, int64_t H, bool reset_after) {
  TORCH_CHECK_VALUE(ln_ih.has_value() == ln_hh.has_value(), "give both layer-norm gains or neither");
  if (!ln_ih) return;
  TORCH_CHECK_VALUE(reset_after, "layer normalisation is defined for reset_after=True only");
  for (const at::Tensor* t : {&*ln_ih, &*ln_hh}) {
    TORCH_CHECK_TYPE(t->scalar_type() == x.scalar_type(), "layer-norm gains must have x's dtype ", x.scalar_type(),
                     ", got ", t->scalar_type());
    TORCH_CHECK_VALUE(t->dim() == 1 && t->size(0) == 3 * H && t->device().is_cpu(),
                      "layer-norm gains must be (3H,) = (", 3 * H, ",) CPU tensors, got ", t->sizes());
  }
}

void check_resets(const std::optional<at::Tensor>& resets, int64_t T, int64_t B) {
  if (!resets) return;
  TORCH_CHECK_TYPE(resets->scalar_type() == at::kBool, "resets must be bool, got ", resets->scalar_type());
  TORCH_CHECK_VALUE(resets->dim() == 2 && resets->size(0) == T && resets->size(1) == B && resets->device().is_cpu(),
                    "resets must be a (T, B) = (", T, ", ", B, ") CPU tensor, got ", resets->sizes());
}

template <class T>
void forward_loop(const Dims& d, bool reset_after, bool reverse, const T* gi, const T* w_hh, const T* b_hh,
                  const int64_t* len, const bool* rs, const T* zm, const T* h_mask, const T* ln_hh, T* h, T* y,
                  T* g_all, T* hp_all, T* xh_all, T* rstd_all, bool save, T* scratch,
                  const int64_t* off = nullptr) {
  const int64_t B = d.B, H = d.H, G = 4 * H;
  T* gh = scratch;               // (B, 3H) recurrent projection
  T* g_step = scratch + B * 3 * H;  // (B, 4H) gates when they are not saved
  T* h_prev = scratch + B * 7 * H;  // (B, H) the step's starting state, for zoneout
  T* h_rec = scratch + B * 8 * H;   // (B, H) the state times the recurrent dropout mask
  // gh = W_hh h + b_hh (reset_after=True); gh_r|gh_z = W_hrz h + b_hrz and gh_n = W_hn (r h) + b_hn (False)
  const StepMatmul<T> rec(w_hh, H, reset_after ? 3 * H : 2 * H, H, true, d.T, B);
  const StepMatmul<T> rec_n(w_hh + 2 * H * H, H, H, H, true, reset_after ? 0 : d.T, B);
  const Running running(len, B);
  for (int64_t s = 0; s < d.T; ++s) {
    const int64_t t = step_time(s, d.T, reverse);
    const int64_t n = running.at(t);  // rows [n, B) have ended
    const int64_t r0 = off ? off[t] : t * B;  // the step's first row of gi and y
    const T* gi_t = gi + r0 * 3 * H;
    T* y_t = y + r0 * H;
    T* g_t = save ? g_all + t * B * G : g_step;
    auto finish = [&](int64_t b) {  // past this row's end: state unchanged, output 0
      if (!off) std::memset(y_t + b * H, 0, sizeof(T) * H);
      if (save) std::memset(g_t + b * G, 0, sizeof(T) * G);  // saved outputs are never left unset
      if (ln_hh && save) {  // nothing normalised: zeros, so that the backward's sums skip it
        std::memset(xh_all + (t * B + b) * 3 * H, 0, sizeof(T) * 3 * H);
        rstd_all[t * B + b] = T(0);
      }
    };
    if (rs)
      for (int64_t b = 0; b < B; ++b)
        if (resets_at(rs, len, t, B, b)) std::memset(h + b * H, 0, sizeof(T) * H);
    if (save) std::memcpy(hp_all + t * B * H, h, sizeof(T) * B * H);
    if (zm) std::memcpy(h_prev, h, sizeof(T) * B * H);
    if (h_mask)
      for (int64_t i = 0; i < B * H; ++i) h_rec[i] = h[i] * h_mask[i];
    for (int64_t b = n; b < B; ++b) finish(b);
    if (n == 0) continue;
    const T* hr = h_mask ? h_rec : h;
    rec(hr, H, ln_hh ? nullptr : b_hh, gh, 3 * H, n, false);  // with layer norm, b_hh comes after it
    if (!reset_after) {
      for_rows(n, H, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          const T *gi_b = gi_t + b * 3 * H, *gh_b = gh + b * 3 * H;
          T* g_b = g_t + b * G;
          row<T>([&](auto v, int64_t j) { return reset_gate(v, j, H, gi_b, gh_b, hr + b * H, g_b, g_b + 3 * H); });
          row<T>([&](auto v, int64_t j) { return update_gate(v, j, H, gi_b + H, gh_b + H, g_b + H); });
        }
      });
      // gh_n = W_hn (r h) + b_hn, reading s = r h from the gates
      rec_n(g_t + 3 * H, G, b_hh ? b_hh + 2 * H : nullptr, gh + 2 * H, 3 * H, n, false);
    }
    for_rows(n, H, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        T* y_b = y_t + b * H;
        if (len && t >= len[b]) {  // unsorted lengths: finished rows among the running ones
          finish(b);
          continue;
        }
        if (ln_hh)
          layer_norm_row(gh + b * 3 * H, 3 * H, ln_hh, b_hh, save ? xh_all + (t * B + b) * 3 * H : nullptr,
                         save ? rstd_all + t * B + b : nullptr);
        row<T>([&](auto v, int64_t j) {
          if (reset_after)
            return forward_after(v, j, H, H, H, gi_t + b * 3 * H, gh + b * 3 * H, h + b * H, h + b * H, y_b,
                                 g_t + b * G);
          return forward_before_b(v, j, H, H, gi_t + b * 3 * H, gh + b * 3 * H + 2 * H, h + b * H, h + b * H,
                                  y_b, g_t + b * G);
        });
        if (zm) zone_row(zm + (t * B + b) * H, h_prev + b * H, h + b * H, y_b, H);
      }
    });
  }
}


#if GRUKIT_HAVE_F8
// Small steps (B * 3H * H up to ~1M multiply-adds) spend more on forking threads
// and on streaming W_hh from L2 than on arithmetic. So the whole time loop runs
// in one parallel region: each thread owns a slice of the hidden units, keeps
// the rows of W_hh for its units packed (in its own L1/L2), computes its units'
// gates and new state, and meets the others at one barrier per step (for
// reset_after=False, whose W_hn needs all of r h, either a second barrier or each
// thread computing r of all units). The state is double-buffered:
// a step reads `cur` whole and writes its slice of `nxt`.
// Below kInlineMacs multiply-adds a step the plain loop forks for nothing (its matmul and
// gate pass stay on the calling thread), and beats the split loop, whose barrier then costs
// more than the second thread gives: at B=1, H=16 inference 0.05 ms against 0.10, at B=8,
// H=48 0.33 against 0.40 (benchmarks/README.md, session 21).
bool use_split(const Dims& d) {
  const int64_t macs = d.B * 3 * d.H * d.H;
  return at::get_num_threads() > 1 && !at::in_parallel_region() && d.T >= 2 && d.H >= 16 &&
         macs >= kInlineMacs && macs <= (int64_t(1) << 20);
}

// What a split loop prepares from W_hh and b_hh: each slice's rows, packed, and
// its biases. Kept per thread for the last few weight matrices and reused while
// their contents are unchanged (compared in full: writes through .data would not
// bump a version counter), because preparing costs more than a short sequence.
struct SplitPlan {
  at::Tensor w, b;  // copies of the weights this plan was made from
  bool reset_after = true;
  bool dup_r = false;  // reset_after=False: every slice computes r of all units
  int slices = 0;
  std::vector<int64_t> j0;
  std::vector<Packed> P, Pn;
  std::vector<at::Tensor> bias, bias_n;
};

const SplitPlan& split_plan(const float* w_hh, const float* b_hh, int64_t H, bool reset_after, bool dup_r,
                            int slices) {
  static thread_local std::vector<SplitPlan> plans;  // most recent last
  const int64_t wn = 3 * H * H;
  for (size_t i = 0; i < plans.size(); ++i) {
    SplitPlan& p = plans[i];
    if (p.reset_after == reset_after && p.dup_r == dup_r && p.slices == slices && p.w.numel() == wn && p.b.defined() == (b_hh != nullptr) &&
        std::memcmp(p.w.data_ptr<float>(), w_hh, sizeof(float) * wn) == 0 &&
        (!b_hh || std::memcmp(p.b.data_ptr<float>(), b_hh, sizeof(float) * 3 * H) == 0)) {
      std::rotate(plans.begin() + i, plans.begin() + i + 1, plans.end());
      return plans.back();
    }
  }
  SplitPlan p;
  p.w = at::empty({wn}, at::kFloat);
  std::memcpy(p.w.data_ptr<float>(), w_hh, sizeof(float) * wn);
  if (b_hh) {
    p.b = at::empty({3 * H}, at::kFloat);
    std::memcpy(p.b.data_ptr<float>(), b_hh, sizeof(float) * 3 * H);
  }
  p.reset_after = reset_after;
  p.dup_r = dup_r;
  p.slices = slices;
  p.j0 = slice_starts(H, slices);
  p.P.resize(slices);
  p.Pn.resize(slices);
  p.bias.resize(slices);
  p.bias_n.resize(slices);
  for (int q = 0; q < slices; ++q) {
    const int64_t a = p.j0[q], nu = p.j0[q + 1] - a;
    // reset_after=True: rows r, z, n of the slice's units. False: r of all units
    // (each thread needs all of r h for W_hn), then z of the slice's units.
    std::vector<std::pair<int64_t, int64_t>> blocks;  // (first row, count)
    if (reset_after) {
      blocks = {{a, nu}, {H + a, nu}, {2 * H + a, nu}};
    } else if (dup_r) {
      blocks = {{0, H}, {H + a, nu}};
    } else {
      blocks = {{a, nu}, {H + a, nu}};
    }
    int64_t n_rows = 0;
    for (auto& bl : blocks) n_rows += bl.second;
    at::Tensor rows = at::empty({n_rows, H}, at::kFloat);
    p.bias[q] = at::zeros({n_rows}, at::kFloat);
    int64_t at_row = 0;
    for (auto& [first, count] : blocks) {
      std::memcpy(rows.data_ptr<float>() + at_row * H, w_hh + first * H, sizeof(float) * count * H);
      if (b_hh) std::memcpy(p.bias[q].data_ptr<float>() + at_row, b_hh + first, sizeof(float) * count);
      at_row += count;
    }
    p.P[q] = pack(rows.data_ptr<float>(), H, n_rows, H, true, /*threads=*/false);
    p.bias_n[q] = at::zeros({nu}, at::kFloat);
    if (!reset_after) {
      p.Pn[q] = pack(w_hh + (2 * H + a) * H, H, nu, H, true, /*threads=*/false);
      if (b_hh) std::memcpy(p.bias_n[q].data_ptr<float>(), b_hh + 2 * H + a, sizeof(float) * nu);
    }
  }
  if (plans.size() >= 8) plans.erase(plans.begin());
  plans.push_back(std::move(p));
  return plans.back();
}

void forward_loop_split(const Dims& d, bool reset_after, bool reverse, const float* gi, const float* w_hh,
                        const float* b_hh, const int64_t* len, const bool* rs, const float* zm, float* h, float* y,
                        float* g_all, float* hp_all, bool save, float* g_step, float* work,
                        const int64_t* off = nullptr) {
  const int64_t B = d.B, H = d.H, G = 4 * H;
  const int slices = split_slices(at::get_num_threads(), H);
  // reset_after=False: with a few rows, recomputing r of all units in every thread
  // beats a second barrier; with more rows, the threads meet twice per step.
  const bool dup_r = !reset_after && B <= 4;
  const SplitPlan& plan = split_plan(w_hh, b_hh, H, reset_after, dup_r, slices);
  const std::vector<int64_t>& j0 = plan.j0;
  // work: (B, H) second state buffer, then per slice: its recurrent projection
  // (B, 3 nu) for True or (B, H + nu) for False, and for False also gh_n (B, nu)
  // and private r, s of all units (B, H) each.
  float* buf[2] = {h, work};
  std::vector<float*> gh(slices), gh_n(slices), r_all(slices), s_all(slices);
  float* next = work + B * H;
  for (int q = 0; q < slices; ++q) {
    const int64_t nu = j0[q + 1] - j0[q];
    gh[q] = next;
    next += B * (reset_after ? 3 * nu : dup_r ? H + nu : 2 * nu);
    gh_n[q] = next;
    r_all[q] = next + B * nu;
    s_all[q] = next + B * nu + B * H;
    next += reset_after ? 0 : B * (nu + 2 * H);
  }
  if (rs) {  // resets before the first step; each later one is applied by the step before it
    const int64_t t0 = step_time(0, d.T, reverse);
    for (int64_t b = 0; b < B; ++b)
      if (resets_at(rs, len, t0, B, b)) std::memset(h + b * H, 0, sizeof(float) * H);
  }
  const Running running(len, B);
  SpinBarrier barrier(slices);
#pragma omp parallel num_threads(slices)
  {
    const int tid = omp_get_thread_num(), nthreads = omp_get_num_threads();
    bool sense = false;
    if (nthreads != slices) {  // fewer threads than asked: the slices are shared out, and
      TORCH_CHECK(nthreads == 1, "grukit: unexpected OpenMP team size");  // one thread needs no barrier
    }
    auto sync = [&] {
      if (nthreads > 1) barrier.wait(sense);
    };
    for (int64_t s = 0; s < d.T; ++s) {
      const int64_t t = step_time(s, d.T, reverse);
      const float* cur = buf[s % 2];
      float* nxt = buf[(s + 1) % 2];
      const int64_t n = running.at(t);  // rows [n, B) have ended
      const int64_t r0 = off ? off[t] : t * B;  // the step's first row of gi and y
      const float* gi_t = gi + r0 * 3 * H;
      float* y_t = y + r0 * H;
      float* g_t = save ? g_all + t * B * G : g_step;
      // past the row's end. Saved outputs are never left unset: a running row of
      // reset_after=False has r, z and s set already (and others read its s now); an
      // ended row's (b >= n) were never computed
      auto finish_invalid = [&](int64_t b, int64_t a, int64_t nu) {
        std::memcpy(nxt + b * H + a, cur + b * H + a, sizeof(float) * nu);
        if (!off) std::memset(y_t + b * H + a, 0, sizeof(float) * nu);
        const bool all = reset_after || b >= n;
        if (save)
          for (int k = all ? 0 : 2; k < (all ? 4 : 3); ++k) std::memset(g_t + b * G + k * H + a, 0, sizeof(float) * nu);
      };
      for (int q = tid; q < slices; q += nthreads) {
        const int64_t a = j0[q], nu = j0[q + 1] - j0[q];
        float* ghq = gh[q];
        if (save)
          for (int64_t b = 0; b < B; ++b) std::memcpy(hp_all + (t * B + b) * H + a, cur + b * H + a, sizeof(float) * nu);
        const int64_t width = reset_after ? 3 * nu : dup_r ? H + nu : 2 * nu;
        if (n > 0)
          mm_packed(cur, H, plan.P[q], b_hh ? plan.bias[q].data_ptr<float>() : nullptr, ghq, width, n, false);
        if (reset_after) {
          for (int64_t b = n; b < B; ++b) finish_invalid(b, a, nu);
          for (int64_t b = 0; b < n; ++b) {
            if (len && t >= len[b]) {
              finish_invalid(b, a, nu);
              continue;
            }
            row<float>([&](auto v, int64_t j) {
              return forward_after(v, j, nu, H, nu, gi_t + b * 3 * H + a, ghq + b * 3 * nu, cur + b * H + a,
                                   nxt + b * H + a, y_t + b * H + a, g_t + b * G + a);
            });
            if (zm) zone_row(zm + (t * B + b) * H + a, cur + b * H + a, nxt + b * H + a, y_t + b * H + a, nu);
          }
          continue;
        }
        if (!dup_r) {  // r, z and s = r h of the slice, into the shared gates
          for (int64_t b = 0; b < n; ++b) {
            const float *gi_b = gi_t + b * 3 * H, *gh_b = ghq + b * width;
            float* g_b = g_t + b * G;
            row<float>([&](auto v, int64_t j) {
              return reset_gate(v, j, nu, gi_b + a, gh_b, cur + b * H + a, g_b + a, g_b + 3 * H + a);
            });
            row<float>([&](auto v, int64_t j) { return update_gate(v, j, nu, gi_b + H + a, gh_b + nu, g_b + H + a); });
          }
          continue;
        }
        // dup_r: r and s = r h of all units, privately; z of the slice
        float *rq = r_all[q], *sq = s_all[q];
        for (int64_t b = 0; b < n; ++b) {
          const float *gi_b = gi_t + b * 3 * H, *gh_b = ghq + b * width;
          float* g_b = g_t + b * G;
          row<float>([&](auto v, int64_t j) {
            return reset_gate(v, j, H, gi_b, gh_b, cur + b * H, rq + b * H, sq + b * H);
          });
          row<float>([&](auto v, int64_t j) { return update_gate(v, j, nu, gi_b + H + a, gh_b + H, g_b + H + a); });
          std::memcpy(g_b + a, rq + b * H + a, sizeof(float) * nu);          // r and s of the slice,
          std::memcpy(g_b + 3 * H + a, sq + b * H + a, sizeof(float) * nu);  // for the backward
        }
      }
      if (!reset_after) {
        if (!dup_r) sync();  // all of s = r h is in the gates now
        for (int q = tid; q < slices; q += nthreads) {
          const int64_t a = j0[q], nu = j0[q + 1] - j0[q];
          float* ghn = gh_n[q];
          // gh_n = W_hn (r h) + b_hn for the slice's units
          if (n > 0)
            mm_packed(dup_r ? s_all[q] : g_t + 3 * H, dup_r ? H : G, plan.Pn[q],
                      b_hh ? plan.bias_n[q].data_ptr<float>() : nullptr, ghn, nu, n, false);
          for (int64_t b = n; b < B; ++b) finish_invalid(b, a, nu);
          for (int64_t b = 0; b < n; ++b) {
            if (len && t >= len[b]) {
              finish_invalid(b, a, nu);
              continue;
            }
            row<float>([&](auto v, int64_t j) {
              return forward_before_b(v, j, nu, H, gi_t + b * 3 * H + a, ghn + b * nu, cur + b * H + a,
                                      nxt + b * H + a, y_t + b * H + a, g_t + b * G + a);
            });
            if (zm) zone_row(zm + (t * B + b) * H + a, cur + b * H + a, nxt + b * H + a, y_t + b * H + a, nu);
          }
        }
      }
      if (rs && s + 1 < d.T) {  // zero the slice's state of rows that reset before the next step
        const int64_t t_next = step_time(s + 1, d.T, reverse);
        for (int q = tid; q < slices; q += nthreads)
          for (int64_t b = 0; b < B; ++b)
            if (resets_at(rs, len, t_next, B, b)) std::memset(nxt + b * H + j0[q], 0, sizeof(float) * (j0[q + 1] - j0[q]));
      }
      sync();
    }
  }
  if (d.T % 2 == 1) std::memcpy(h, buf[1], sizeof(float) * B * H);  // the last step wrote `other`
}
#endif

template <class T>
void backward_loop(const Dims& d, bool reset_after, bool reverse, const T* dy, const T* w_hh, const T* g_all,
                   const T* hp_all, const int64_t* len, const bool* rs, const T* zm, const T* h_mask, const T* ln_hh,
                   const T* xh_all, const T* rstd_all, T* dh, T* dgi, T* dgh, T* dgh_raw, T* scratch) {
  const int64_t B = d.B, H = d.H, G = 4 * H;
  T* dh_prev = scratch;      // (B, H)
  T* ds = scratch + B * H;   // (B, H) dL/d(r h), reset_after=False
  // zoneout: the update's share of dL/dh_t goes through the cell (as dh, with dy = 0),
  // the kept share straight to dh_prev afterwards
  T* d_cell = scratch + 2 * B * H;
  T* d_kept = scratch + 3 * B * H;
  T* zeros = scratch + 4 * B * H;
  // recurrent dropout: what flows back through the recurrent matmul (and r h) reaches
  // h_prev through the mask; hp_rec is the masked state of the step
  T* d_rec = scratch + 5 * B * H;
  T* hp_rec = scratch + 6 * B * H;
  // dh_prev += dgh W_hh (True); ds = da_n W_hn and dh_prev += (da_r|da_z) W_hrz (False)
  const StepMatmul<T> back(w_hh, H, H, reset_after ? 3 * H : 2 * H, false, d.T, d.B);
  const StepMatmul<T> back_n(w_hh + 2 * H * H, H, H, H, false, reset_after ? 0 : d.T, d.B);
  const Running running(len, B);
  for (int64_t s = d.T - 1; s >= 0; --s) {
    const int64_t t = step_time(s, d.T, reverse);
    const int64_t n = running.at(t);  // rows [n, B) have ended
    const T *dy_t = dy + t * B * H, *g_t = g_all + t * B * G, *hp_t = hp_all + t * B * H;
    T* dgi_t = dgi + t * B * 3 * H;
    T* dgh_t = dgh + t * B * 3 * H;
    // layer norm: dgh_t is the gradient of the normalised projection, dghr_t of W_hh h
    T* dghr_t = ln_hh ? dgh_raw + t * B * 3 * H : dgh_t;
    const T* dh_in = dh;
    if (zm) {
      const T* m = zm + t * B * H;
      for (int64_t i = 0; i < B * H; ++i) {
        const T total = dh[i] + dy_t[i];
        d_kept[i] = m[i] * total;
        d_cell[i] = total - d_kept[i];
      }
      dh_in = d_cell;
      dy_t = zeros;
    }
    auto passed = [&](int64_t b) {  // past the row's end the state passed through: so does its gradient
      std::memcpy(dh_prev + b * H, dh + b * H, sizeof(T) * H);
      std::memset(dgi_t + b * 3 * H, 0, sizeof(T) * 3 * H);
      if (reset_after) std::memset(dgh_t + b * 3 * H, 0, sizeof(T) * 3 * H);
      if (ln_hh) std::memset(dghr_t + b * 3 * H, 0, sizeof(T) * 3 * H);
    };
    for (int64_t b = n; b < B; ++b) passed(b);
    for_rows(n, H, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        if (len && t >= len[b]) {
          passed(b);
          continue;
        }
        row<T>([&](auto v, int64_t j) {
          if (reset_after)
            return backward_after(v, j, H, dh_in + b * H, dy_t + b * H, hp_t + b * H, g_t + b * G,
                                  dgi_t + b * 3 * H, dgh_t + b * 3 * H, dh_prev + b * H);
          return backward_before_b(v, j, H, dh_in + b * H, dy_t + b * H, hp_t + b * H, g_t + b * G,
                                   dgi_t + b * 3 * H, dh_prev + b * H);
        });
        if (ln_hh)
          layer_norm_row_backward(dgh_t + b * 3 * H, xh_all + (t * B + b) * 3 * H, rstd_all[t * B + b], ln_hh,
                                  dghr_t + b * 3 * H, 3 * H);
      }
    });
    if (reset_after) {
      // h_prev feeds gh = W_hh h_prev: dh_prev += dgh W_hh (ended rows: zero gradients)
      if (h_mask) std::memset(d_rec + n * H, 0, sizeof(T) * (B - n) * H);
      if (n > 0) back(dghr_t, 3 * H, nullptr, h_mask ? d_rec : dh_prev, H, n, !h_mask);
    } else {
      // gh_n = W_hn s: ds = da_n W_hn (zero rows past their end give zero)
      if (n > 0) back_n(dgi_t + 2 * H, 3 * H, nullptr, ds, H, n, false);
      const T* hp_in = hp_t;
      if (h_mask) {
        for (int64_t i = 0; i < B * H; ++i) hp_rec[i] = hp_t[i] * h_mask[i];
        std::memset(d_rec, 0, sizeof(T) * B * H);
        hp_in = hp_rec;
      }
      T* d_to = h_mask ? d_rec : dh_prev;
      for_rows(n, H, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          if (len && t >= len[b]) continue;
          row<T>([&](auto v, int64_t j) {
            return backward_before_a(v, j, H, ds + b * H, hp_in + b * H, g_t + b * G, dgi_t + b * 3 * H,
                                     d_to + b * H);
          });
        }
      });
      // gh_r|gh_z = W_hrz h_prev: dh_prev += (da_r|da_z) W_hrz
      if (n > 0) back(dgi_t, 3 * H, nullptr, d_to, H, n, true);
    }
    if (h_mask)  // rows past their end have zero gate gradients, so d_rec is zero there
      for (int64_t i = 0; i < B * H; ++i) dh_prev[i] += d_rec[i] * h_mask[i];
    if (zm)
      for (int64_t b = 0; b < B; ++b)
        if (!(len && t >= len[b]))
          for (int64_t j = 0; j < H; ++j) dh_prev[b * H + j] += d_kept[b * H + j];
    if (rs)  // the state was zeroed before this step: nothing flows back past it
      for (int64_t b = 0; b < B; ++b)
        if (resets_at(rs, len, t, B, b)) std::memset(dh_prev + b * H, 0, sizeof(T) * H);
    std::memcpy(dh, dh_prev, sizeof(T) * B * H);
  }
}

}  // namespace

namespace {

// A PackedSequence's layout (gru_stack_forward with batch_sizes): step t's rows are rows
// off[t] .. off[t] + (rows running at t) of x and y, x (N, I), y (N, H), the batch sorted
// longest first (len: each row's length). Plain GRU inference only.
struct Packing {
  const int64_t* off;
  at::Tensor len;
  int64_t T, N;
};

// gru_layer_forward (checked there) on a padded batch, or on a packed one (packing: no
// resets, zoneout, mask, layer norm or saved outputs).
std::vector<at::Tensor> layer_forward(const at::Tensor& x_, const at::Tensor& h0, const at::Tensor& w_ih_,
                                      const at::Tensor& w_hh_, const std::optional<at::Tensor>& b_ih,
                                      const std::optional<at::Tensor>& b_hh,
                                      const std::optional<at::Tensor>& lengths,
                                      const std::optional<at::Tensor>& resets,
                                      const std::optional<at::Tensor>& zoneout,
                                      const std::optional<at::Tensor>& h_mask,
                                      const std::optional<at::Tensor>& ln_ih,
                                      const std::optional<at::Tensor>& ln_hh, bool reset_after, bool reverse,
                                      bool save, const Packing* packing = nullptr) {
  const bool ln = ln_ih.has_value();
  const at::Tensor x = x_.contiguous(), w_ih = w_ih_.contiguous(), w_hh = w_hh_.contiguous();
  const Dims d = packing ? Dims{packing->T, h0.size(0), x.size(1), w_hh.size(1)}
                         : Dims{x.size(0), x.size(1), x.size(2), w_hh.size(1)};
  const int64_t H = d.H, rows = packing ? packing->N : d.T * d.B;  // rows of x, gi and y
  const int64_t* off = packing ? packing->off : nullptr;
  auto opts = x.options();
  at::Tensor h = h0.contiguous().clone();
  at::Tensor y = packing ? at::empty({rows, H}, opts) : at::empty({d.T, d.B, H}, opts);
  at::Tensor gates = save ? saved_empty({d.T, d.B, 4 * H}, opts) : at::empty({0}, opts);
  at::Tensor hp = save ? saved_empty({d.T, d.B, H}, opts) : at::empty({0}, opts);
  const bool save_ln = save && ln;
  at::Tensor xhat_i = save_ln ? saved_empty({d.T, d.B, 3 * H}, opts) : at::empty({0}, opts);
  at::Tensor rstd_i = save_ln ? saved_empty({d.T, d.B}, opts) : at::empty({0}, opts);
  at::Tensor xhat_h = save_ln ? saved_empty({d.T, d.B, 3 * H}, opts) : at::empty({0}, opts);
  at::Tensor rstd_h = save_ln ? saved_empty({d.T, d.B}, opts) : at::empty({0}, opts);
  if (d.T == 0 || d.B == 0) return {y, h, gates, hp, xhat_i, rstd_i, xhat_h, rstd_h};
  at::Tensor gi = workspace(0, rows * 3 * H, opts);
  at::Tensor scratch = workspace(3, d.B * 7 * H + d.B * H * (4 + 3 * at::get_num_threads()), opts);
  at::Tensor b_ih_c = b_ih ? b_ih->contiguous() : at::Tensor();
  at::Tensor b_hh_c = b_hh ? b_hh->contiguous() : at::Tensor();
  at::Tensor len = packing ? packing->len : lengths ? lengths->contiguous() : at::Tensor();
  const int64_t* len_data = len.defined() ? len.data_ptr<int64_t>() : nullptr;
  at::Tensor rsc = resets ? resets->contiguous() : at::Tensor();
  const bool* rs = resets ? rsc.data_ptr<bool>() : nullptr;
  at::Tensor zmc = zoneout ? zoneout->contiguous() : at::Tensor();
  at::Tensor h_mask_c = h_mask ? h_mask->contiguous() : at::Tensor();
  at::Tensor ln_ih_c = ln ? ln_ih->contiguous() : at::Tensor(), ln_hh_c = ln ? ln_hh->contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gru_layer_forward", [&] {
    const scalar_t* zm = zoneout ? zmc.data_ptr<scalar_t>() : nullptr;
    const scalar_t* h_mask_data = h_mask ? h_mask_c.data_ptr<scalar_t>() : nullptr;
    const scalar_t* bias_ih = b_ih ? b_ih_c.data_ptr<scalar_t>() : nullptr;
    // gi = x W_ih^T + b_ih for all steps at once (with layer norm: LN(x W_ih^T) + b_ih)
    const StepMatmul<scalar_t> proj(w_ih.data_ptr<scalar_t>(), d.I, 3 * H, d.I, true, rows, rows, true);
    proj(x.data_ptr<scalar_t>(), d.I, ln ? nullptr : bias_ih, gi.data_ptr<scalar_t>(), 3 * H, rows, false);
    const scalar_t* ln_hh_data = ln ? ln_hh_c.data_ptr<scalar_t>() : nullptr;
    if (ln) {
      scalar_t *gi_p = gi.data_ptr<scalar_t>(), *xi = save ? xhat_i.data_ptr<scalar_t>() : nullptr;
      scalar_t* ri = save ? rstd_i.data_ptr<scalar_t>() : nullptr;
      const scalar_t* ln_ih_data = ln_ih_c.data_ptr<scalar_t>();
      at::parallel_for(0, rows, 16, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
          layer_norm_row(gi_p + r * 3 * H, 3 * H, ln_ih_data, bias_ih, xi ? xi + r * 3 * H : nullptr, ri ? ri + r : nullptr);
      });
    }
    bool one_thread = false;
#if GRUKIT_HAVE_F8
    if constexpr (std::is_same_v<scalar_t, float>) {
      // reset_after=False's split loop meets at two barriers a step (or computes r of all
      // units in every thread); below H=128 and B=64 that costs more than the second thread
      // gives (benchmarks/README.md, session 15), so the plain loop runs on one thread.
      if (!h_mask_data && !ln && use_split(d) && !reset_after && d.H < 128 && d.B < 64) {
        one_thread = true;
      } else if (!h_mask_data && !ln && use_split(d)) {
        forward_loop_split(d, reset_after, reverse, gi.data_ptr<float>(), w_hh.data_ptr<float>(),
                           b_hh ? b_hh_c.data_ptr<float>() : nullptr, len_data,
                           rs, reinterpret_cast<const float*>(zm), h.data_ptr<float>(), y.data_ptr<float>(), save ? gates.data_ptr<float>() : nullptr,
                           save ? hp.data_ptr<float>() : nullptr, save, scratch.data_ptr<float>() + d.B * 3 * H,
                           scratch.data_ptr<float>() + d.B * 7 * H, off);
        return;
      }
    }
#endif
    auto loop = [&] {
      forward_loop<scalar_t>(d, reset_after, reverse, gi.data_ptr<scalar_t>(), w_hh.data_ptr<scalar_t>(),
                             b_hh ? b_hh_c.data_ptr<scalar_t>() : nullptr, len_data,
                             rs, zm, h_mask_data, ln_hh_data, h.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(),
                             save ? gates.data_ptr<scalar_t>() : nullptr, save ? hp.data_ptr<scalar_t>() : nullptr,
                             save_ln ? xhat_h.data_ptr<scalar_t>() : nullptr,
                             save_ln ? rstd_h.data_ptr<scalar_t>() : nullptr, save, scratch.data_ptr<scalar_t>(), off);
    };
    if (one_thread) {  // inside a parallel region (its other thread idle), whose matmuls stay on this thread
      at::parallel_for(0, 2, 1, [&](int64_t b0, int64_t) {
        if (b0 == 0) loop();
      });
    } else {
      loop();
    }
  });
  return {y, h, gates, hp, xhat_i, rstd_i, xhat_h, rstd_h};
}

}  // namespace

// Returns (y (T,B,H), gh_n (B,H), gates (T,B,4H), hp (T,B,H), xhat_i (T,B,3H), rstd_i (T,B), xhat_h (T,B,3H),
// rstd_h (T,B)); all but the first two are empty unless save, the last four unless layer norm.
std::vector<at::Tensor> gru_layer_forward(const at::Tensor& x, const at::Tensor& h0, const at::Tensor& w_ih,
                                          const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih,
                                          const std::optional<at::Tensor>& b_hh,
                                          const std::optional<at::Tensor>& lengths,
                                          const std::optional<at::Tensor>& resets,
                                          const std::optional<at::Tensor>& zoneout,
                                          const std::optional<at::Tensor>& h_mask,
                                          const std::optional<at::Tensor>& ln_ih,
                                          const std::optional<at::Tensor>& ln_hh, bool reset_after, bool reverse,
                                          bool save) {
  check_inputs(x, h0, w_ih, w_hh, b_ih, b_hh, lengths);
  check_resets(resets, x.size(0), x.size(1));
  check_zoneout(zoneout, x, w_hh.size(1));
  check_h_mask(h_mask, x, w_hh.size(1));
  check_layer_norm(ln_ih, ln_hh, x, w_hh.size(1), reset_after);
  return layer_forward(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, resets, zoneout, h_mask, ln_ih, ln_hh, reset_after,
                       reverse, save);
}

// ln: empty, or (ln_ih, ln_hh, xhat_i, rstd_i, xhat_h, rstd_h) from gru_layer_forward.
// Returns (dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dln_ih, dln_hh); the bias gradients are
// empty without bias, the gain gradients without layer norm.
std::vector<at::Tensor> gru_layer_backward(const at::Tensor& dy_, const at::Tensor& dh_n, const at::Tensor& x_,
                                           const at::Tensor& w_ih_, const at::Tensor& w_hh_, const at::Tensor& gates,
                                           const at::Tensor& hp, const std::optional<at::Tensor>& lengths,
                                           const std::optional<at::Tensor>& resets,
                                           const std::optional<at::Tensor>& zoneout,
                                           const std::optional<at::Tensor>& h_mask, at::TensorList ln,
                                           bool has_bias, bool reset_after, bool reverse) {
  check_inputs(x_, dh_n, w_ih_, w_hh_, std::nullopt, std::nullopt, lengths);
  check_resets(resets, x_.size(0), x_.size(1));
  check_zoneout(zoneout, x_, w_hh_.size(1));
  check_h_mask(h_mask, x_, w_hh_.size(1));
  TORCH_CHECK_VALUE(ln.empty() || ln.size() == 6, "ln must be empty or (ln_ih, ln_hh, xhat_i, rstd_i, xhat_h, rstd_h)");
  const bool has_ln = !ln.empty();
  if (has_ln) {
    check_layer_norm(ln[0], ln[1], x_, w_hh_.size(1), reset_after);
    const int64_t T = x_.size(0), B = x_.size(1), H = w_hh_.size(1);
    for (int k : {2, 4})
      TORCH_CHECK_VALUE(ln[k].sizes() == at::IntArrayRef({T, B, 3 * H}) && ln[k + 1].sizes() == at::IntArrayRef({T, B}) &&
                            ln[k].scalar_type() == x_.scalar_type() && ln[k + 1].scalar_type() == x_.scalar_type(),
                        "saved layer-norm tensors must come from gru_layer_forward(save=True)");
  }
  for (const at::Tensor* t : {&dy_, &gates, &hp}) {
    TORCH_CHECK_TYPE(t->scalar_type() == x_.scalar_type(), "gradients and saved tensors must have x's dtype");
    TORCH_CHECK_VALUE(t->device().is_cpu(), "gradients and saved tensors must be on the CPU");
  }
  const at::Tensor x = x_.contiguous(), w_ih = w_ih_.contiguous(), w_hh = w_hh_.contiguous();
  const Dims d{x.size(0), x.size(1), x.size(2), w_hh.size(1)};
  const int64_t T = d.T, B = d.B, H = d.H;
  TORCH_CHECK_VALUE(dy_.sizes() == at::IntArrayRef({T, B, H}) && dh_n.sizes() == at::IntArrayRef({B, H}),
                    "gradient shapes must match the outputs");
  TORCH_CHECK_VALUE(gates.sizes() == at::IntArrayRef({T, B, 4 * H}) && hp.sizes() == at::IntArrayRef({T, B, H}),
                    "saved tensors must come from gru_layer_forward(save=True)");
  const at::Tensor dy = dy_.contiguous(), g = gates.contiguous(), hpc = hp.contiguous();
  auto opts = x.options();
  at::Tensor dh = dh_n.contiguous().clone();
  at::Tensor dgi = workspace(1, T * B * 3 * H, opts).view({T, B, 3 * H});
  at::Tensor dgh = reset_after ? workspace(2, T * B * 3 * H, opts).view({T, B, 3 * H}) : dgi;  // same if False
  at::Tensor dgh_raw = has_ln ? workspace(4, T * B * 3 * H, opts).view({T, B, 3 * H}) : dgh;  // before the norm
  at::Tensor ln_ih, ln_hh, xhat_i, rstd_i, xhat_h, rstd_h;
  if (has_ln) {
    ln_ih = ln[0].contiguous();
    ln_hh = ln[1].contiguous();
    xhat_i = ln[2].contiguous();
    rstd_i = ln[3].contiguous();
    xhat_h = ln[4].contiguous();
    rstd_h = ln[5].contiguous();
  }
  at::Tensor scratch = zoneout || h_mask ? at::zeros({7 * B * H}, opts) : at::empty({2 * B * H}, opts);
  at::Tensor zmc = zoneout ? zoneout->contiguous() : at::Tensor();
  at::Tensor h_mask_c = h_mask ? h_mask->contiguous() : at::Tensor();
  at::Tensor len = lengths ? lengths->contiguous() : at::Tensor();
  at::Tensor rsc = resets ? resets->contiguous() : at::Tensor();
  const bool* rs = resets ? rsc.data_ptr<bool>() : nullptr;
  if (T > 0 && B > 0) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gru_layer_backward", [&] {
      backward_loop<scalar_t>(d, reset_after, reverse, dy.data_ptr<scalar_t>(), w_hh.data_ptr<scalar_t>(),
                              g.data_ptr<scalar_t>(), hpc.data_ptr<scalar_t>(),
                              lengths ? len.data_ptr<int64_t>() : nullptr, rs,
                              zoneout ? zmc.data_ptr<scalar_t>() : nullptr,
                              h_mask ? h_mask_c.data_ptr<scalar_t>() : nullptr,
                              has_ln ? ln_hh.data_ptr<scalar_t>() : nullptr,
                              has_ln ? xhat_h.data_ptr<scalar_t>() : nullptr,
                              has_ln ? rstd_h.data_ptr<scalar_t>() : nullptr, dh.data_ptr<scalar_t>(),
                              dgi.data_ptr<scalar_t>(), dgh.data_ptr<scalar_t>(), dgh_raw.data_ptr<scalar_t>(),
                              scratch.data_ptr<scalar_t>());
    });
  }
  // Layer norm of the input projection, backward for all steps at once: dgi_raw is
  // the gradient of x W_ih^T (dgi stays that of the normalised projection, for db_ih).
  at::Tensor dgi_raw = dgi;
  if (has_ln && T > 0 && B > 0) {
    dgi_raw = workspace(5, T * B * 3 * H, opts).view({T, B, 3 * H});
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gru_layer_backward_ln", [&] {
      const scalar_t *dpost = dgi.data_ptr<scalar_t>(), *xi = xhat_i.data_ptr<scalar_t>();
      const scalar_t *ri = rstd_i.data_ptr<scalar_t>(), *ln_ih_data = ln_ih.data_ptr<scalar_t>();
      scalar_t* draw = dgi_raw.data_ptr<scalar_t>();
      at::parallel_for(0, T * B, 16, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
          layer_norm_row_backward(dpost + r * 3 * H, xi + r * 3 * H, ri[r], ln_ih_data, draw + r * 3 * H, 3 * H);
      });
    });
  }
  // The weight gradients: one matmul each over all T*B rows.
  // the recurrent matmul saw the masked state: so do the weight gradients
  const at::Tensor hp_rec = h_mask ? hpc * h_mask->unsqueeze(0) : hpc;
  const at::Tensor dgi2 = dgi.view({T * B, 3 * H}), x2 = x.view({T * B, d.I}), hp2 = hp_rec.view({T * B, H});
  const at::Tensor dgi_raw2 = dgi_raw.view({T * B, 3 * H});
  at::Tensor dx = at::mm(dgi_raw2, w_ih).view({T, B, d.I});
  at::Tensor dw_ih = at::mm(dgi_raw2.t(), x2);
  at::Tensor dw_hh;
  if (reset_after) {
    dw_hh = at::mm(dgh_raw.view({T * B, 3 * H}).t(), hp2);
  } else {
    dw_hh = at::empty({3 * H, H}, opts);
    at::Tensor dw_rz = dw_hh.narrow(0, 0, 2 * H), dw_n = dw_hh.narrow(0, 2 * H, H);
    at::mm_out(dw_rz, dgi2.narrow(1, 0, 2 * H).t(), hp2);
    at::mm_out(dw_n, dgi2.narrow(1, 2 * H, H).t(), g.view({T * B, 4 * H}).narrow(1, 3 * H, H));  // s = r h
  }
  at::Tensor db_ih, db_hh;
  if (has_bias) {
    db_ih = dgi2.sum(0);
    db_hh = reset_after ? dgh.view({T * B, 3 * H}).sum(0) : db_ih.clone();
  } else {
    db_ih = at::empty({0}, opts);
    db_hh = at::empty({0}, opts);
  }
  at::Tensor dln_ih = at::empty({has_ln ? 3 * H : 0}, opts), dln_hh = at::empty({has_ln ? 3 * H : 0}, opts);
  if (has_ln) {  // the gains scale xhat: their gradients sum dL/d(out) xhat over steps and rows
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gru_layer_backward_gains", [&] {
      column_dots(dgi.data_ptr<scalar_t>(), xhat_i.data_ptr<scalar_t>(), T * B, 3 * H, dln_ih.data_ptr<scalar_t>());
      column_dots(dgh.data_ptr<scalar_t>(), xhat_h.data_ptr<scalar_t>(), T * B, 3 * H, dln_hh.data_ptr<scalar_t>());
    });
  }
  return {dx, dh, dw_ih, dw_hh, db_ih, db_hh, dln_ih, dln_hh};
}

// Inference through the whole stack in one call: layer l, direction d uses
// weights[(l * D + d) * P ...] with P = 4 (w_ih, w_hh, b_ih, b_hh) or 2 without
// bias. Returns (output (T, B, D*H), gh_n (L*D, B, H)). No dropout: inference only.
// With batch_sizes (a PackedSequence's, no lengths), x is the packed data (N, I) and the
// output is packed alike (N, D*H); h0 and gh_n are in the packed order (longest first).
// bfloat16 x and h0 with float32 weights (a bfloat16 GRU's weights widened, grukit/steps.py):
// computed in float32, the outputs rounded to bfloat16 (here, where a conversion costs
// no trip through Python's dispatcher).
std::vector<at::Tensor> gru_stack_forward(const at::Tensor& x_, const at::Tensor& h0_, at::TensorList weights,
                                          bool has_bias, int64_t num_layers, bool bidirectional,
                                          const std::optional<at::Tensor>& lengths, bool reset_after,
                                          const std::optional<at::Tensor>& batch_sizes) {
  const int64_t D = bidirectional ? 2 : 1, P = has_bias ? 4 : 2;
  TORCH_CHECK_VALUE(num_layers >= 1 && static_cast<int64_t>(weights.size()) == num_layers * D * P,
                    "weights must hold ", num_layers * D * P, " tensors, got ", weights.size());
  TORCH_CHECK_VALUE(h0_.dim() == 3 && h0_.size(0) == num_layers * D, "h0 must be (L*D, B, H), got ", h0_.sizes());
  const bool bf16 = x_.scalar_type() == at::kBFloat16;
  TORCH_CHECK_TYPE(!bf16 || (h0_.scalar_type() == at::kBFloat16 && weights[0].scalar_type() == at::kFloat),
                   "bfloat16 x needs bfloat16 h0 and float32 weights");
  const at::Tensor x = bf16 ? x_.to(at::kFloat) : x_, h0 = bf16 ? h0_.to(at::kFloat) : h0_;
  std::optional<Packing> packing;
  std::vector<int64_t> off;
  if (batch_sizes) {
    TORCH_CHECK_VALUE(!lengths, "give lengths or batch_sizes, not both");
    TORCH_CHECK_VALUE(x.dim() == 2, "packed x must be (N, I), got ", x.sizes());
    const at::Tensor bs = batch_sizes->contiguous();
    TORCH_CHECK_TYPE(bs.scalar_type() == at::kLong && bs.dim() == 1 && bs.device().is_cpu(),
                     "batch_sizes must be a 1-D int64 CPU tensor");
    const int64_t T = bs.size(0), B = h0.size(1), *b = bs.data_ptr<int64_t>();
    off.assign(T + 1, 0);
    for (int64_t t = 0; t < T; ++t) {
      TORCH_CHECK_VALUE(b[t] >= 1 && b[t] <= (t ? b[t - 1] : B),
                        "batch_sizes must be non-increasing, from h0's ", B, " rows down to at least 1");
      off[t + 1] = off[t] + b[t];
    }
    TORCH_CHECK_VALUE(off[T] == x.size(0), "batch_sizes must sum to x's ", x.size(0), " rows, got ", off[T]);
    TORCH_CHECK_VALUE(T == 0 || b[0] == B, "h0 must have batch_sizes[0] = ", T ? b[0] : 0, " rows, got ", B);
    at::Tensor len = at::zeros({B}, bs.options());  // a row's length: the steps that still hold it
    int64_t* l = len.data_ptr<int64_t>();
    for (int64_t t = 0; t < T; ++t)
      for (int64_t r = 0; r < b[t]; ++r) ++l[r];
    packing = Packing{off.data(), len, T, x.size(0)};
  }
  at::Tensor gh_n = at::empty_like(h0);
  at::Tensor inp = x;
  for (int64_t l = 0; l < num_layers; ++l) {
    std::vector<at::Tensor> outs;
    for (int64_t d = 0; d < D; ++d) {
      const int64_t k = l * D + d;
      const at::Tensor* w = &weights[k * P];
      std::optional<at::Tensor> b_ih, b_hh;
      if (has_bias) {
        b_ih = w[2];
        b_hh = w[3];
      }
      std::vector<at::Tensor> r;
      if (packing) {
        check_layer(inp, h0.size(1), inp.size(1), h0[k], w[0], w[1], b_ih, b_hh);
        r = layer_forward(inp, h0[k], w[0], w[1], b_ih, b_hh, std::nullopt, std::nullopt, std::nullopt,
                          std::nullopt, std::nullopt, std::nullopt, reset_after, d == 1, false, &*packing);
      } else {
        r = gru_layer_forward(inp, h0[k], w[0], w[1], b_ih, b_hh, lengths, std::nullopt, std::nullopt,
                              std::nullopt, std::nullopt, std::nullopt, reset_after, d == 1, false);
      }
      gh_n[k].copy_(r[1]);
      outs.push_back(r[0]);
    }
    inp = D == 1 ? outs[0] : at::cat(outs, packing ? 1 : 2);
  }
  if (bf16) return {inp.to(at::kBFloat16), gh_n.to(at::kBFloat16)};
  return {inp, gh_n};
}

// One step of one layer, inference: x (B, I), h (B, H) -> the new state (B, H). gk.GRUCell's
// eager inference call (pybind11 only: the traced and compiled calls take gru_stack_forward).
at::Tensor gru_cell_forward(const at::Tensor& x, const at::Tensor& h, const at::Tensor& w_ih, const at::Tensor& w_hh,
                            const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh,
                            bool reset_after) {
  TORCH_CHECK_VALUE(x.dim() == 2 && h.dim() == 2, "x must be (B, I) and h (B, H), got ", x.sizes(), " and ",
                    h.sizes());
  return gru_layer_forward(x.unsqueeze(0), h, w_ih, w_hh, b_ih, b_hh, std::nullopt, std::nullopt, std::nullopt,
                           std::nullopt, std::nullopt, std::nullopt, reset_after, false, false)[1];
}

// C = A W^T (+ bias) through the step matmul, packed (as over many steps) or
// not: exposed so that tests check the kernels on odd shapes and the benchmark
// times them alone.
at::Tensor step_matmul(const at::Tensor& A_, const at::Tensor& W_, const std::optional<at::Tensor>& bias,
                       bool packed) {
  TORCH_CHECK_VALUE(A_.dim() == 2 && W_.dim() == 2 && A_.size(1) == W_.size(1), "A must be (M, K), W (N, K)");
  TORCH_CHECK_TYPE(A_.scalar_type() == W_.scalar_type() && (A_.scalar_type() == at::kFloat ||
                   A_.scalar_type() == at::kDouble), "A and W must share a float dtype");
  TORCH_CHECK_VALUE(!bias || (bias->dim() == 1 && bias->size(0) == W_.size(0) &&
                    bias->scalar_type() == A_.scalar_type()), "bias must be (N,)");
  const at::Tensor A = A_.contiguous(), W = W_.contiguous();
  const at::Tensor b = bias ? bias->contiguous() : at::Tensor();
  const int64_t M = A.size(0), K = A.size(1), N = W.size(0);
  at::Tensor C = at::empty({M, N}, A.options());
  if (M == 0 || N == 0) return C;
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "step_matmul", [&] {
    const StepMatmul<scalar_t> mm(W.data_ptr<scalar_t>(), K, N, K, true, packed ? 1 << 20 : 1);
    mm(A.data_ptr<scalar_t>(), K, bias ? b.data_ptr<scalar_t>() : nullptr, C.data_ptr<scalar_t>(), N, M, false);
  });
  return C;
}

}  // namespace grukit

TORCH_LIBRARY(grukit, m) {
  m.def(
      "gru_layer_forward(Tensor x, Tensor h0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh, "
      "Tensor? lengths, Tensor? resets, Tensor? zoneout, Tensor? h_mask, Tensor? ln_ih, Tensor? ln_hh, "
      "bool reset_after, bool reverse, bool save) -> Tensor[]");
  m.def(
      "gru_layer_backward(Tensor dy, Tensor dh_n, Tensor x, Tensor w_ih, Tensor w_hh, Tensor gates, Tensor hp, "
      "Tensor? lengths, Tensor? resets, Tensor? zoneout, Tensor? h_mask, Tensor[] ln, bool has_bias, "
      "bool reset_after, bool reverse) -> Tensor[]");
  m.def(
      "gru_stack_forward(Tensor x, Tensor h0, Tensor[] weights, bool has_bias, int num_layers, "
      "bool bidirectional, Tensor? lengths, bool reset_after, Tensor? batch_sizes=None) -> Tensor[]");
  m.def("step_matmul(Tensor A, Tensor W, Tensor? bias, bool packed) -> Tensor");
}

TORCH_LIBRARY_IMPL(grukit, CPU, m) {
  m.impl("gru_layer_forward", &grukit::gru_layer_forward);
  m.impl("gru_layer_backward", &grukit::gru_layer_backward);
  m.impl("gru_stack_forward", &grukit::gru_stack_forward);
  m.impl("step_matmul", &grukit::step_matmul);
}

namespace grukit {
void bind_stream(pybind11::module_& m);  // stream.cpp
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "grukit's fused CPU engine (ops under torch.ops.grukit; StreamCore for gk.stream)";
  grukit::bind_stream(m);
  // The kernels the ops run, for eager calls straight from Python (grukit/function.py): pybind11
  // passes the arguments 3-8 us faster than torch.ops' boxed dispatch (benchmarks/README.md,
  // session 21). As behind the ops: other Python threads run meanwhile, and the ATen calls inside
  // skip the autograd and view-tracking layers (the callers are inference, or an autograd.Function).
  using Kernel = pybind11::call_guard<pybind11::gil_scoped_release, at::AutoDispatchBelowADInplaceOrView>;
  m.def("stack_forward", [](const at::Tensor& x, const at::Tensor& h0, const std::vector<at::Tensor>& weights,
                            bool has_bias, int64_t num_layers, bool bidirectional,
                            const std::optional<at::Tensor>& lengths, bool reset_after,
                            const std::optional<at::Tensor>& batch_sizes) {
    return grukit::gru_stack_forward(x, h0, weights, has_bias, num_layers, bidirectional, lengths, reset_after,
                                     batch_sizes);
  }, Kernel());
  m.def("cell_forward", &grukit::gru_cell_forward, Kernel());
  m.def("layer_forward", &grukit::gru_layer_forward, Kernel());
  m.def("layer_backward", [](const at::Tensor& dy, const at::Tensor& dh_n, const at::Tensor& x, const at::Tensor& w_ih,
                             const at::Tensor& w_hh, const at::Tensor& gates, const at::Tensor& hp,
                             const std::optional<at::Tensor>& lengths, const std::optional<at::Tensor>& resets,
                             const std::optional<at::Tensor>& zoneout, const std::optional<at::Tensor>& h_mask,
                             const std::vector<at::Tensor>& ln, bool has_bias, bool reset_after, bool reverse) {
    return grukit::gru_layer_backward(dy, dh_n, x, w_ih, w_hh, gates, hp, lengths, resets, zoneout, h_mask, ln,
                                      has_bias, reset_after, reverse);
  }, Kernel());
}
