// Step-by-step inference (gk.stream, and bfloat16 sequences): a model's layers, one
// time step at a time, with its state and every buffer held by one StreamCore object.
// A step reads the core's input buffer and writes its output buffer; it allocates
// nothing and is one call from Python.
//
// The layers a core runs, in order (each one's output is the next one's input):
//   embedding  ids (B,) int64 -> rows of a table (V, E)
//   gru        one GRU layer, one direction (both reset conventions; layer norm;
//              zoneout at inference: h = p h_prev + (1 - p) h'); the same gate math
//              as the sequence engine (gates.h, norm.h)
//   mingru     h = h + z (g(v) - h), z = sigmoid(k), [k | v] = W x + b
//   dense      activation(W x + b)
// Every weight matrix is a Linear in one of three formats, chosen by its dtype:
// float32 and bfloat16 in the sequence engine's panels (gemm.h; a bfloat16 weight is
// widened to float32 in registers, the sums are float32), or int8 rows with per-row
// scales (int8.h; activations quantised per row to int16). States, activations and
// sums are float32. Small products run on the calling thread; big ones (a step
// bound by reading large weights) are shared out over torch's threads by panels,
// so that each thread reads the same part of the weights at every step.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "gates.h"
#include "gemm.h"
#include "int8.h"
#include "norm.h"

namespace grukit {
namespace {

// Products of at least this many multiply-adds per step are shared out over threads.
constexpr int64_t kParallelWork = int64_t(1) << 17;
constexpr int64_t kRowBlock = 48;  // rows of x per block of a tall product (a multiple of the kernel's 6)

enum class Format { kFloat, kBF16, kInt8 };

inline float bf16_value(uint16_t b) {
  const uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// The gate pass over a step's rows: shared out over torch's threads when big (as the
// sequence engine's for_rows does), else on this thread.
template <class Fn>
inline void over_rows(int64_t B, int64_t H, Fn&& fn) {
  const int64_t threads = at::get_num_threads();
  if (B * H < 8192 || threads == 1 || B == 1 || at::in_parallel_region()) return fn(0, B);
  at::parallel_for(0, B, (B + threads - 1) / threads, fn);
}

template <class Fn>
inline void maybe_parallel(int64_t n, int64_t work, Fn&& body) {
  if (work >= kParallelWork && n > 1 && at::get_num_threads() > 1 && !at::in_parallel_region()) {
    at::parallel_for(0, n, 1, body);
  } else {
    body(0, n);
  }
}

// y (M, N) = x (M, K) W^T (+ bias); see the file's comment for the formats.
struct Linear {
  Format format = Format::kFloat;
  int64_t N = 0, K = 0;
  at::Tensor w;      // float32/bfloat16: panels of 16 columns (AVX2 builds) or rows; int8: rows
  at::Tensor scale;  // int8: float32 (N,)
  at::Tensor bias;   // float32 (N,), or undefined
  PackedU8 u8;       // int8 for batches: packed for 8-bit activations, as int8.cpp

  Linear() = default;
  Linear(const at::Tensor& W, const std::optional<at::Tensor>& b, const std::optional<at::Tensor>& s,
         bool batched = false) {
    TORCH_CHECK_VALUE(W.dim() == 2, "weights must be 2-D, got ", W.sizes());
    N = W.size(0);
    K = W.size(1);
    const auto dt = W.scalar_type();
    TORCH_CHECK_TYPE(dt == at::kFloat || dt == at::kBFloat16 || dt == at::kChar,
                     "weights must be float32, bfloat16 or int8, got ", dt);
    format = dt == at::kFloat ? Format::kFloat : dt == at::kBFloat16 ? Format::kBF16 : Format::kInt8;
    if (b) {
      TORCH_CHECK_VALUE(b->dim() == 1 && b->size(0) == N, "bias must be (", N, ",), got ", b->sizes());
      bias = b->to(at::kFloat).contiguous().clone();
    }
    if (format == Format::kInt8) {
      TORCH_CHECK_VALUE(s && s->dim() == 1 && s->size(0) == N, "int8 weights need (", N, ",) row scales");
      scale = s->to(at::kFloat).contiguous().clone();
      w = W.contiguous().clone();
      if (batched) u8 = pack_u8(w.data_ptr<int8_t>(), K, N, K);
      return;
    }
#if GRUKIT_HAVE_F8
    const at::Tensor wf = W.to(at::kFloat).contiguous();
    const Packed P = pack(wf.data_ptr<float>(), K, N, K, true, /*threads=*/false);
    w = format == Format::kFloat ? P.buf : P.buf.to(at::kBFloat16);  // bfloat16 -> float32 -> bfloat16: exact
#else
    w = W.contiguous().clone();
#endif
  }

  // scratch: int16 activations (M * K) or 8-bit ones (M * K rounded up to 4), and their
  // scales (M), for int8
  void apply(const float* x, int64_t ldx, int64_t M, float* y, int64_t ldy, int16_t* aq, float* sa) const {
    const float* b = bias.defined() ? bias.data_ptr<float>() : nullptr;
    if (format == Format::kInt8 && u8.N) {
      auto* au = reinterpret_cast<uint8_t*>(aq);
      for (int64_t m = 0; m < M; ++m) sa[m] = quantize_row_u8(x + m * ldx, K, u8.Kp, au + m * u8.Kp);
      const float* sw = scale.data_ptr<float>();
      maybe_parallel((N + 15) / 16, M * N * K, [&](int64_t p0, int64_t p1) {
        qmatmul_u8(au, sa, M, u8, sw, b, p0 * 16, std::min(N, p1 * 16), y, ldy, p0 * 16);
      });
      return;
    }
    if (format == Format::kInt8) {
      for (int64_t m = 0; m < M; ++m) sa[m] = quantize_row(x + m * ldx, K, aq + m * K);
      const int8_t* wq = w.data_ptr<int8_t>();
      const float* sw = scale.data_ptr<float>();
      maybe_parallel((N + 7) / 8, M * N * K, [&](int64_t u0, int64_t u1) {
        const int64_t n0 = u0 * 8, n1 = std::min(N, u1 * 8);
        if (ldy == N) return qmatmul_rows(aq, sa, M, K, wq, sw, b, n0, n1, y, ldy, n0);
        for (int64_t m = 0; m < M; ++m)  // one row at a time into a strided output
          qmatmul_rows(aq + m * K, sa + m, 1, K, wq, sw, b, n0, n1, y + m * ldy, ldy, n0);
      });
      return;
    }
#if GRUKIT_HAVE_F8
    const int64_t panels = (N + 15) / 16;
    auto block = [&](int64_t m0, int64_t m1, int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t n0 = p * 16, cols = std::min<int64_t>(16, N - n0);
        const float* bp = b ? b + n0 : nullptr;
        if (format == Format::kFloat) {
          rows_panel(x + m0 * ldx, ldx, m1 - m0, w.data_ptr<float>() + p * K * 16, K, y + m0 * ldy + n0, ldy, cols,
                     bp, false);
        } else if (m1 - m0 <= 6) {  // a few rows: each weight widened as it is used
          const auto* panel = reinterpret_cast<const uint16_t*>(w.data_ptr<at::BFloat16>()) + p * K * 16;
          rows_panel(x + m0 * ldx, ldx, m1 - m0, panel, K, y + m0 * ldy + n0, ldy, cols, bp, false);
        } else {  // more: the panel widened once into this thread's cache, then the float kernel
          static thread_local std::vector<float> wide;
          wide.resize(K * 16);
          const auto* panel = reinterpret_cast<const uint16_t*>(w.data_ptr<at::BFloat16>()) + p * K * 16;
          for (int64_t i = 0; i < K * 16; i += 16) {
            __m256 lo, hi;
            load_panel_row(panel + i, lo, hi);
            _mm256_storeu_ps(wide.data() + i, lo);
            _mm256_storeu_ps(wide.data() + i + 8, hi);
          }
          rows_panel(x + m0 * ldx, ldx, m1 - m0, wide.data(), K, y + m0 * ldy + n0, ldy, cols, bp, false);
        }
      }
    };
    if (M >= 4 * kRowBlock) {  // many rows (all the steps' input projection): blocks of rows share out
      maybe_parallel((M + kRowBlock - 1) / kRowBlock, M * N * K, [&](int64_t q0, int64_t q1) {
        for (int64_t q = q0; q < q1; ++q) block(q * kRowBlock, std::min(M, (q + 1) * kRowBlock), 0, panels);
      });
      return;
    }
    maybe_parallel(panels, M * N * K, [&](int64_t p0, int64_t p1) { block(0, M, p0, p1); });
#else
    const float* wf = format == Format::kFloat ? w.data_ptr<float>() : nullptr;
    const auto* wb = format == Format::kBF16 ? reinterpret_cast<const uint16_t*>(w.data_ptr<at::BFloat16>()) : nullptr;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        float acc = 0.0f;
        for (int64_t k = 0; k < K; ++k) acc += x[m * ldx + k] * (wf ? wf[n * K + k] : bf16_value(wb[n * K + k]));
        y[m * ldy + n] = acc + (b ? b[n] : 0.0f);
      }
#endif
  }
};

enum class Kind { kEmbedding, kGru, kMinGru, kDense };

// Dense activations, by the names of grukit.training.layers.ACTIVATIONS.
enum Activation { kLinear, kRelu, kSigmoid, kTanh, kSoftmax, kGelu, kElu, kSoftplus, kSelu };

void activate(Activation a, float* y, int64_t n) {
  switch (a) {
    case kLinear: return;
    case kRelu: for (int64_t j = 0; j < n; ++j) y[j] = y[j] > 0.0f ? y[j] : 0.0f; return;
    case kSigmoid: for (int64_t j = 0; j < n; ++j) y[j] = 1.0f / (1.0f + std::exp(-y[j])); return;
    case kTanh: for (int64_t j = 0; j < n; ++j) y[j] = std::tanh(y[j]); return;
    case kGelu: for (int64_t j = 0; j < n; ++j) y[j] = 0.5f * y[j] * (1.0f + std::erf(y[j] * 0.70710678118654752f)); return;
    case kElu: for (int64_t j = 0; j < n; ++j) y[j] = y[j] > 0.0f ? y[j] : std::expm1(y[j]); return;
    case kSoftplus: for (int64_t j = 0; j < n; ++j) y[j] = y[j] > 20.0f ? y[j] : std::log1p(std::exp(y[j])); return;
    case kSelu:
      for (int64_t j = 0; j < n; ++j)
        y[j] = 1.0507009873554804934f * (y[j] > 0.0f ? y[j] : 1.6732632423543772848f * std::expm1(y[j]));
      return;
    case kSoftmax: {
      float mx = y[0], sum = 0.0f;
      for (int64_t j = 1; j < n; ++j) mx = std::max(mx, y[j]);
      for (int64_t j = 0; j < n; ++j) sum += (y[j] = std::exp(y[j] - mx));
      for (int64_t j = 0; j < n; ++j) y[j] /= sum;
      return;
    }
  }
}

struct Layer {
  Kind kind;
  int64_t in = 0, out = 0;
  Linear a, b, c;  // gru: input, recurrent (3H rows, or r|z's 2H rows), recurrent n (reset_after=False)
  bool reset_after = true;
  at::Tensor gamma_ih, gamma_hh, beta_ih, beta_hh;  // gru with layer norm: gains, and the biases after it
  float zoneout = 0.0f;
  Activation activation = kLinear;
  at::Tensor table;  // embedding: float32 (V, E)
  int64_t state = -1;  // gru, mingru: offset of this layer's state (B, out) in the states buffer
};

class StreamCore {
 public:
  explicit StreamCore(int64_t batch) : B_(batch) { TORCH_CHECK_VALUE(batch >= 1, "batch must be >= 1, got ", batch); }

  void add_embedding(const at::Tensor& table) {
    TORCH_CHECK_VALUE(layers_.empty() && table.dim() == 2, "an embedding must come first, with a (V, E) table");
    Layer l{Kind::kEmbedding};
    l.table = table.to(at::kFloat).contiguous().clone();
    l.in = 1;
    l.out = table.size(1);
    layers_.push_back(std::move(l));
  }

  void add_gru(const at::Tensor& w_ih, const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih,
               const std::optional<at::Tensor>& b_hh, bool reset_after, const std::optional<at::Tensor>& gamma_ih,
               const std::optional<at::Tensor>& gamma_hh, double zoneout, const std::optional<at::Tensor>& s_ih,
               const std::optional<at::Tensor>& s_hh) {
    const int64_t H = w_hh.size(1);
    TORCH_CHECK_VALUE(w_hh.dim() == 2 && w_hh.size(0) == 3 * H && w_ih.dim() == 2 && w_ih.size(0) == 3 * H,
                      "w_ih must be (3H, I) and w_hh (3H, H), got ", w_ih.sizes(), " and ", w_hh.sizes());
    const bool ln = gamma_ih.has_value();
    TORCH_CHECK_VALUE(!ln || reset_after, "layer norm needs reset_after=True");
    Layer l{Kind::kGru};
    l.in = w_ih.size(1);
    l.out = H;
    l.reset_after = reset_after;
    l.zoneout = static_cast<float>(zoneout);
    const bool batched = B_ >= kU8Batch;  // int8: 8-bit activations, as the sequence engine (int8.cpp)
    l.a = Linear(w_ih, ln ? std::nullopt : b_ih, s_ih, batched);
    if (ln) {
      l.gamma_ih = gamma_ih->to(at::kFloat).contiguous().clone();
      l.gamma_hh = gamma_hh->to(at::kFloat).contiguous().clone();
      l.beta_ih = b_ih ? b_ih->to(at::kFloat).contiguous().clone() : at::zeros({3 * H}, at::kFloat);
      l.beta_hh = b_hh ? b_hh->to(at::kFloat).contiguous().clone() : at::zeros({3 * H}, at::kFloat);
    }
    if (reset_after) {
      l.b = Linear(w_hh, ln ? std::nullopt : b_hh, s_hh, batched);
    } else {  // r|z, then n (it multiplies r h)
      auto part = [&](const std::optional<at::Tensor>& t, int64_t r0, int64_t n) -> std::optional<at::Tensor> {
        if (!t) return std::nullopt;
        return t->narrow(0, r0, n);
      };
      l.b = Linear(w_hh.narrow(0, 0, 2 * H), part(b_hh, 0, 2 * H), part(s_hh, 0, 2 * H), batched);
      l.c = Linear(w_hh.narrow(0, 2 * H, H), part(b_hh, 2 * H, H), part(s_hh, 2 * H, H), batched);
    }
    add(std::move(l));
  }

  void add_mingru(const at::Tensor& w, const std::optional<at::Tensor>& b) {
    Layer l{Kind::kMinGru};
    l.a = Linear(w, b, std::nullopt);
    TORCH_CHECK_VALUE(l.a.N % 2 == 0, "minGRU weights must have 2H rows");
    l.in = l.a.K;
    l.out = l.a.N / 2;
    add(std::move(l));
  }

  void add_dense(const at::Tensor& w, const std::optional<at::Tensor>& b, int64_t activation) {
    TORCH_CHECK_VALUE(activation >= kLinear && activation <= kSelu, "unknown activation ", activation);
    Layer l{Kind::kDense};
    l.a = Linear(w, b, std::nullopt);
    l.in = l.a.K;
    l.out = l.a.N;
    l.activation = static_cast<Activation>(activation);
    add(std::move(l));
  }

  // After the last add: the buffers. input (B, I) float32, or (B,) int64 ids after an
  // embedding; output (B, O); states (B * sum of the recurrent layers' sizes).
  void finish() {
    TORCH_CHECK_VALUE(!layers_.empty(), "a stream needs at least one layer");
    int64_t widest = 0, states = 0, in_max = 0;
    for (Layer& l : layers_) {
      widest = std::max(widest, l.out);
      in_max = std::max(in_max, std::max(l.in, l.out));
      if (l.kind == Kind::kGru || l.kind == Kind::kMinGru) {
        l.state = states;
        states += B_ * l.out;
      }
    }
    const bool ids = layers_.front().kind == Kind::kEmbedding;
    input_ = ids ? at::zeros({B_}, at::kLong) : at::zeros({B_, layers_.front().in}, at::kFloat);
    output_ = at::zeros({B_, layers_.back().out}, at::kFloat);
    states_ = at::zeros({states}, at::kFloat);
    saved_ = at::zeros({states}, at::kFloat);
    for (int i = 0; i < 2; ++i) between_[i] = at::zeros({B_ * widest}, at::kFloat);
    gi_ = at::zeros({B_ * 3 * widest}, at::kFloat);
    gh_ = at::zeros({B_ * 3 * widest}, at::kFloat);
    g_ = at::zeros({B_ * 4 * widest}, at::kFloat);
    hprev_ = at::zeros({B_ * widest}, at::kFloat);
    aq_.assign(B_ * (in_max + 4), 0);  // int16 activations, or 8-bit ones padded to 4 (as bytes)
    sa_.assign(B_, 0.0f);
  }

  at::Tensor input() const { return input_; }
  at::Tensor output() const { return output_; }
  at::Tensor states() const { return states_; }
  // Each recurrent layer's state (B, H), views of states().
  std::vector<at::Tensor> state_views() const {
    std::vector<at::Tensor> v;
    for (const Layer& l : layers_)
      if (l.state >= 0) v.push_back(states_.narrow(0, l.state, B_ * l.out).view({B_, l.out}));
    return v;
  }

  void step() { forward(input_.data_ptr(), output_.data_ptr<float>()); }

  // Steps x (T, B, I) float32, or (T, B) int64 ids, from the current state, which it
  // carries on; returns the outputs (T, B, O). lengths (B,): row b's steps from
  // lengths[b] on are not taken (its state stays, its outputs are 0), as in the
  // sequence engine.
  at::Tensor run(const at::Tensor& x_, const std::optional<at::Tensor>& lengths) {
    const bool ids = layers_.front().kind == Kind::kEmbedding;
    TORCH_CHECK_VALUE(x_.dim() == (ids ? 2 : 3) && x_.size(1) == B_ && (ids || x_.size(2) == layers_.front().in),
                      "x must be (T, ", B_, ids ? ")" : ", I)", ", got ", x_.sizes());
    const at::Tensor x = x_.to(ids ? at::kLong : at::kFloat).contiguous();
    const int64_t T = x.size(0), row = ids ? B_ : B_ * layers_.front().in, O = layers_.back().out;
    at::Tensor y = at::empty({T, B_, O}, at::kFloat);
    // A first GRU layer's input projection for all steps at once (a product of T*B rows
    // reads its weights once per block of rows, not once per step); int8 keeps its steps.
    const Layer& first = layers_.front();
    at::Tensor gi;
    if (first.kind == Kind::kGru && first.a.format != Format::kInt8 && T > 1) {
      const int64_t n = T * B_ * 3 * first.out;  // kept between calls: a fresh buffer's page faults cost
      if (!gi_all_.defined() || gi_all_.numel() < n) gi_all_ = at::empty({n}, at::kFloat);
      gi = gi_all_.narrow(0, 0, n);
      project(first, x.data_ptr<float>(), T * B_, gi.data_ptr<float>());
    }
    at::Tensor len;
    if (lengths) {
      TORCH_CHECK_VALUE(lengths->dim() == 1 && lengths->size(0) == B_, "lengths must be (", B_, ",)");
      len = lengths->to(at::kLong).contiguous();
    }
    const int64_t* lp = lengths ? len.data_ptr<int64_t>() : nullptr;
    for (int64_t t = 0; t < T; ++t) {
      const void* xt = ids ? static_cast<const void*>(x.data_ptr<int64_t>() + t * row)
                           : static_cast<const void*>(x.data_ptr<float>() + t * row);
      float* yt = y.data_ptr<float>() + t * B_ * O;
      const bool partial = lp && std::any_of(lp, lp + B_, [&](int64_t n) { return t >= n; });
      if (partial) std::memcpy(saved_.data_ptr<float>(), states_.data_ptr<float>(), sizeof(float) * states_.numel());
      forward(xt, yt, gi.defined() ? gi.data_ptr<float>() + t * B_ * 3 * first.out : nullptr);
      if (!partial) continue;
      for (int64_t b = 0; b < B_; ++b) {  // rows past their end: the state as it was, output 0
        if (t < lp[b]) continue;
        std::memset(yt + b * O, 0, sizeof(float) * O);
        for (const Layer& l : layers_)
          if (l.state >= 0)
            std::memcpy(states_.data_ptr<float>() + l.state + b * l.out, saved_.data_ptr<float>() + l.state + b * l.out,
                        sizeof(float) * l.out);
      }
    }
    return y;
  }

 private:
  void add(Layer&& l) {
    TORCH_CHECK_VALUE(layers_.empty() || layers_.back().out == l.in, "layer input size ", l.in,
                      " does not match the previous layer's output size ", layers_.back().out);
    layers_.push_back(std::move(l));
  }

  // gi (M, 3H) = the GRU layer's input projection of x (M, I), layer-normalised if it is.
  void project(const Layer& l, const float* x, int64_t M, float* gi) {
    const int64_t H = l.out;
    l.a.apply(x, l.in, M, gi, 3 * H, aq_.data(), sa_.data());
    if (l.gamma_ih.defined())
      for (int64_t r = 0; r < M; ++r)
        layer_norm_row(gi + r * 3 * H, 3 * H, l.gamma_ih.data_ptr<float>(), l.beta_ih.data_ptr<float>(),
                       static_cast<float*>(nullptr), static_cast<float*>(nullptr));
  }

  // gi0: the first layer's input projection of this step, when run() made it for all steps
  void forward(const void* x, float* y, const float* gi0 = nullptr) {
    const float* cur = nullptr;
    for (size_t i = 0; i < layers_.size(); ++i) {
      const Layer& l = layers_[i];
      float* out = i + 1 == layers_.size() ? y : between_[i % 2].data_ptr<float>();
      switch (l.kind) {
        case Kind::kEmbedding: embed(l, static_cast<const int64_t*>(x), out); break;
        case Kind::kGru: gru(l, i == 0 ? static_cast<const float*>(x) : cur, out, i == 0 ? gi0 : nullptr); break;
        case Kind::kMinGru: mingru(l, i == 0 ? static_cast<const float*>(x) : cur, out); break;
        case Kind::kDense:
          l.a.apply(i == 0 ? static_cast<const float*>(x) : cur, l.in, B_, out, l.out, aq_.data(), sa_.data());
          for (int64_t b = 0; b < B_; ++b) activate(l.activation, out + b * l.out, l.out);
          break;
      }
      cur = out;
    }
  }

  void embed(const Layer& l, const int64_t* ids, float* out) const {
    const int64_t V = l.table.size(0), E = l.out;
    for (int64_t b = 0; b < B_; ++b) {
      TORCH_CHECK_INDEX(ids[b] >= 0 && ids[b] < V, "token id ", ids[b], " is out of range [0, ", V, ")");
      std::memcpy(out + b * E, l.table.data_ptr<float>() + ids[b] * E, sizeof(float) * E);
    }
  }

  void gru(const Layer& l, const float* x, float* y, const float* gi_given) {
    const int64_t H = l.out;
    float *h = states_.data_ptr<float>() + l.state, *gh = gh_.data_ptr<float>();
    float *g = g_.data_ptr<float>(), *hprev = hprev_.data_ptr<float>();
    const bool ln = l.gamma_ih.defined();
    const float* gi = gi_given;
    if (!gi) {
      project(l, x, B_, gi_.data_ptr<float>());
      gi = gi_.data_ptr<float>();
    }
    if (l.zoneout > 0.0f) std::memcpy(hprev, h, sizeof(float) * B_ * H);
    if (l.reset_after) {
      l.b.apply(h, H, B_, gh, 3 * H, aq_.data(), sa_.data());
      over_rows(B_, H, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          if (ln)
            layer_norm_row(gh + b * 3 * H, 3 * H, l.gamma_hh.data_ptr<float>(), l.beta_hh.data_ptr<float>(),
                           static_cast<float*>(nullptr), static_cast<float*>(nullptr));
          row<float>([&](auto v, int64_t j) {
            return forward_after(v, j, H, H, H, gi + b * 3 * H, gh + b * 3 * H, h + b * H, h + b * H, y + b * H,
                                 g + b * 4 * H);
          });
        }
      });
    } else {
      l.b.apply(h, H, B_, gh, 2 * H, aq_.data(), sa_.data());  // gh_r | gh_z
      over_rows(B_, H, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          const float *gi_b = gi + b * 3 * H, *gh_b = gh + b * 2 * H;
          float* g_b = g + b * 4 * H;
          row<float>([&](auto v, int64_t j) { return reset_gate(v, j, H, gi_b, gh_b, h + b * H, g_b, g_b + 3 * H); });
          row<float>([&](auto v, int64_t j) { return update_gate(v, j, H, gi_b + H, gh_b + H, g_b + H); });
        }
      });
      float* gh_n = gh;  // W_hn (r h) + b_hn, over s = r h in the gates
      l.c.apply(g + 3 * H, 4 * H, B_, gh_n, H, aq_.data(), sa_.data());
      over_rows(B_, H, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b)
          row<float>([&](auto v, int64_t j) {
            return forward_before_b(v, j, H, H, gi + b * 3 * H, gh_n + b * H, h + b * H, h + b * H, y + b * H,
                                    g + b * 4 * H);
          });
      });
    }
    if (l.zoneout > 0.0f) {
      const float p = l.zoneout;
      for (int64_t i = 0; i < B_ * H; ++i) y[i] = h[i] = p * hprev[i] + (1.0f - p) * h[i];
    }
  }

  void mingru(const Layer& l, const float* x, float* y) {
    const int64_t H = l.out;
    float *h = states_.data_ptr<float>() + l.state, *gates = gi_.data_ptr<float>();
    l.a.apply(x, l.in, B_, gates, 2 * H, aq_.data(), sa_.data());
    for (int64_t b = 0; b < B_; ++b)
      for (int64_t j = 0; j < H; ++j) {
        const float k = gates[b * 2 * H + j], v = gates[b * 2 * H + H + j];
        const float z = 1.0f / (1.0f + std::exp(-k));
        const float cand = v >= 0.0f ? v + 0.5f : 1.0f / (1.0f + std::exp(-v));
        float& hb = h[b * H + j];
        hb = hb + z * (cand - hb);
        y[b * H + j] = hb;
      }
  }

  int64_t B_;
  std::vector<Layer> layers_;
  at::Tensor input_, output_, states_, saved_, between_[2], gi_, gh_, g_, hprev_, gi_all_;
  std::vector<int16_t> aq_;
  std::vector<float> sa_;
};

}  // namespace

void bind_stream(pybind11::module_& m) {
  namespace py = pybind11;
  py::class_<StreamCore>(m, "StreamCore", "The compiled half of gk.stream (grukit/serving/stream.py)")
      .def(py::init<int64_t>(), py::arg("batch"))
      .def("add_embedding", &StreamCore::add_embedding, py::arg("table"))
      .def("add_gru", &StreamCore::add_gru, py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"),
           py::arg("reset_after"), py::arg("gamma_ih") = py::none(), py::arg("gamma_hh") = py::none(),
           py::arg("zoneout") = 0.0, py::arg("s_ih") = py::none(), py::arg("s_hh") = py::none())
      .def("add_mingru", &StreamCore::add_mingru, py::arg("w"), py::arg("b"))
      .def("add_dense", &StreamCore::add_dense, py::arg("w"), py::arg("b"), py::arg("activation"))
      .def("finish", &StreamCore::finish)
      .def("input", &StreamCore::input)
      .def("output", &StreamCore::output)
      .def("states", &StreamCore::states)
      .def("state_views", &StreamCore::state_views)
      .def("step", &StreamCore::step, py::call_guard<py::gil_scoped_release>())
      .def("run", &StreamCore::run, py::arg("x"), py::arg("lengths") = py::none(),
           py::call_guard<py::gil_scoped_release>());
}

}  // namespace grukit
