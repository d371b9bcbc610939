// The GRU gate math of one batch row, forward and backward, for both reset
// conventions. Each function is templated on a lane type V (float, double, F8 = 8
// floats or D4 = 4 doubles) and processes columns j0.. in steps of V's width, returning the
// first column it did not do; row() runs the wide lanes, then the scalar tail.
//
// Per row, with H hidden units:
//   gi = gi_r|gi_z|gi_n (3H)  input projection W_ih x + b_ih
//   gh = gh_r|gh_z|gh_n (3H)  recurrent projection W_hh h + b_hh   (reset_after=True)
//   g  = r|z|n|s   (4H)    saved gates; s = gh_n (reset_after=True) or r*h (False)
// A gradient is d + the name (docs/architecture.md, names).
#pragma once

#include <type_traits>

#include "vec.h"

namespace grukit {

template <class T, class Fn>
inline void row(Fn&& fn) {
  int64_t j = 0;
#if GRUKIT_HAVE_F8
  if constexpr (std::is_same_v<T, float>) j = fn(F8{}, j);
  if constexpr (std::is_same_v<T, double>) j = fn(D4{}, j);
#endif
  fn(T{}, j);
}

// ---------------------------------------------------------------- reset_after=True

// r = σ(gi_r + gh_r); z = σ(gi_z + gh_z); n = tanh(gi_n + r gh_n); h' = n + z (h - n)
// Units j < n; gi and g have gate stride H, gh has gate stride S (= H, or the
// width of one thread's share of the units).
template <class V, class E>
inline int64_t forward_after(V, int64_t j, int64_t n_units, int64_t H, int64_t S, const E* gi, const E* gh,
                             const E* h, E* h_new, E* y, E* g) {
  constexpr int W = Lanes<V>::width;
  for (; j + W <= n_units; j += W) {
    V r = sigmoid(ld<V>(gi + j) + ld<V>(gh + j));
    V z = sigmoid(ld<V>(gi + H + j) + ld<V>(gh + S + j));
    V gh_n = ld<V>(gh + 2 * S + j);
    V n = tanh_(ld<V>(gi + 2 * H + j) + r * gh_n);
    V hp = ld<V>(h + j);
    V out = n + z * (hp - n);
    store(h_new + j, out);
    store(y + j, out);
    store(g + j, r);
    store(g + H + j, z);
    store(g + 2 * H + j, n);
    store(g + 3 * H + j, gh_n);
  }
  return j;
}

// The forward above, reversed. dh: dL/dh' (+ dy, the output's own gradient).
template <class V, class E>
inline int64_t backward_after(V, int64_t j, int64_t H, const E* dh, const E* dy, const E* h,
                              const E* g, E* dgi, E* dgh, E* dh_prev) {
  constexpr int W = Lanes<V>::width;
  for (; j + W <= H; j += W) {
    V d = ld<V>(dh + j) + ld<V>(dy + j);
    V r = ld<V>(g + j), z = ld<V>(g + H + j), n = ld<V>(g + 2 * H + j), gh_n = ld<V>(g + 3 * H + j);
    V hp = ld<V>(h + j);
    // h' = n + z (h - n)
    V dn = d * (one<V>() - z);
    V dz = d * (hp - n);
    store(dh_prev + j, d * z);
    // n = tanh(a_n), a_n = gi_n + r gh_n
    V dan = dn * (one<V>() - n * n);
    V dr = dan * gh_n;
    // r = σ(a_r), z = σ(a_z)
    V dar = dr * r * (one<V>() - r);
    V daz = dz * z * (one<V>() - z);
    store(dgi + j, dar);
    store(dgi + H + j, daz);
    store(dgi + 2 * H + j, dan);
    store(dgh + j, dar);
    store(dgh + H + j, daz);
    store(dgh + 2 * H + j, dan * r);
  }
  return j;
}

// --------------------------------------------------------------- reset_after=False
// Two halves around the second recurrent matmul, gh_n = W_hn (r h) + b_hn.

// a, in two parts: r = σ(gi_r + gh_r) and s = r h; z = σ(gi_z + gh_z).
template <class V, class E>
inline int64_t reset_gate(V, int64_t j, int64_t n_units, const E* gi_r, const E* gh_r, const E* h, E* r_out,
                          E* s_out) {
  constexpr int W = Lanes<V>::width;
  for (; j + W <= n_units; j += W) {
    V r = sigmoid(ld<V>(gi_r + j) + ld<V>(gh_r + j));
    store(r_out + j, r);
    store(s_out + j, r * ld<V>(h + j));
  }
  return j;
}

template <class V, class E>
inline int64_t update_gate(V, int64_t j, int64_t n_units, const E* gi_z, const E* gh_z, E* z_out) {
  constexpr int W = Lanes<V>::width;
  for (; j + W <= n_units; j += W) store(z_out + j, sigmoid(ld<V>(gi_z + j) + ld<V>(gh_z + j)));
  return j;
}

// b: n = tanh(gi_n + gh_n); h' = n + z (h - n)
template <class V, class E>
inline int64_t forward_before_b(V, int64_t j, int64_t n_units, int64_t H, const E* gi, const E* h_n_,
                                const E* h, E* h_new, E* y, E* g) {
  constexpr int W = Lanes<V>::width;
  for (; j + W <= n_units; j += W) {
    V n = tanh_(ld<V>(gi + 2 * H + j) + ld<V>(h_n_ + j));
    V z = ld<V>(g + H + j), hp = ld<V>(h + j);
    V out = n + z * (hp - n);
    store(h_new + j, out);
    store(y + j, out);
    store(g + 2 * H + j, n);
  }
  return j;
}

// b reversed: dz, dn, da_n; dh_prev starts as d z. (dgi is also dgh here.)
template <class V, class E>
inline int64_t backward_before_b(V, int64_t j, int64_t H, const E* dh, const E* dy, const E* h,
                                 const E* g, E* dgi, E* dh_prev) {
  constexpr int W = Lanes<V>::width;
  for (; j + W <= H; j += W) {
    V d = ld<V>(dh + j) + ld<V>(dy + j);
    V z = ld<V>(g + H + j), n = ld<V>(g + 2 * H + j), hp = ld<V>(h + j);
    // h' = n + z (h - n)
    V dn = d * (one<V>() - z);
    V dz = d * (hp - n);
    store(dh_prev + j, d * z);
    // n = tanh(a_n); z = σ(a_z)
    store(dgi + H + j, dz * z * (one<V>() - z));
    store(dgi + 2 * H + j, dn * (one<V>() - n * n));
  }
  return j;
}

// a reversed, given ds = dL/d(r h) = da_n W_hn: dr = ds h, dh_prev += ds r.
template <class V, class E>
inline int64_t backward_before_a(V, int64_t j, int64_t H, const E* ds, const E* h, const E* g,
                                 E* dgi, E* dh_prev) {
  constexpr int W = Lanes<V>::width;
  for (; j + W <= H; j += W) {
    V r = ld<V>(g + j), s_grad = ld<V>(ds + j);
    V dr = s_grad * ld<V>(h + j);
    store(dgi + j, dr * r * (one<V>() - r));
    store(dh_prev + j, ld<V>(dh_prev + j) + s_grad * r);
  }
  return j;
}

}  // namespace grukit
