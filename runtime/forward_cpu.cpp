#include "runtime/forward_cpu.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/moe.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/router.h"
#include "runtime/dtype.h"

namespace vex {
namespace {

void round_bf16(float* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) v[i] = bf16_to_f32(f32_to_bf16(v[i]));
}

}  // namespace

CpuEngine::CpuEngine(const Config& config, const Weights& weights, int max_ctx)
    : c_(config), w_(weights), max_ctx_(max_ctx) {
  const YarnParams yarn{c_.rope_theta,     c_.rope_factor,       c_.rope_beta_fast,
                        c_.rope_beta_slow, c_.rope_original_ctx, c_.rope_truncate};
  inv_freq_.resize(c_.head_dim / 2);
  concentration_ = yarn_inv_freq(yarn, c_.head_dim, inv_freq_.data());
  const size_t kv = static_cast<size_t>(max_ctx) * c_.kv_dim();
  k_cache_.assign(c_.n_layers, std::vector<float>(kv));
  v_cache_.assign(c_.n_layers, std::vector<float>(kv));
  const size_t D = c_.d_model;
  x_.resize(kChunk * D), xn_.resize(kChunk * D), y_.resize(kChunk * D);
  q_.resize(kChunk * c_.q_dim()), att_.resize(kChunk * c_.q_dim());
  k_.resize(kChunk * c_.kv_dim()), v_.resize(kChunk * c_.kv_dim());
  r_.resize(kChunk * c_.n_experts);
  ffn_.resize(3 * c_.d_ff + D), ffn_out_.resize(D);
}

absl::Status CpuEngine::forward(std::span<const int32_t> tokens, float* logits, bool last_only) {
  VEX_RETURN_IF_ERROR(check_tokens(tokens, pos_, max_ctx_, c_.vocab_size));
  for (size_t i = 0; i < tokens.size(); i += kChunk) {
    const int n = static_cast<int>(std::min<size_t>(kChunk, tokens.size() - i));
    const bool last_chunk = i + n == tokens.size();
    if (last_only)
      forward_chunk(tokens.data() + i, n, last_chunk ? logits : nullptr, n - 1);
    else
      forward_chunk(tokens.data() + i, n, logits ? logits + i * c_.vocab_size : nullptr, 0);
  }
  return absl::OkStatus();
}

// One chunk of n tokens at positions pos_ .. pos_+n-1, top to bottom as spec §4.0.
void CpuEngine::forward_chunk(const int32_t* tokens, int n, float* logits, int first) {
  const int D = c_.d_model, Q = c_.q_dim(), KV = c_.kv_dim(), E = c_.n_experts;
  const int k_act = c_.n_experts_active;
  const float sm_scale = 1.0f / std::sqrt(static_cast<float>(c_.head_dim));
  float *x = x_.data(), *xn = xn_.data(), *y = y_.data();

  for (int t = 0; t < n; ++t)
    for (int i = 0; i < D; ++i)
      x[t * D + i] = bf16_to_f32(w_.embedding[static_cast<int64_t>(tokens[t]) * D + i]);

  for (int il = 0; il < c_.n_layers; ++il) {
    const LayerWeights& L = w_.layers[il];
    float *kc = k_cache_[il].data(), *vc = v_cache_[il].data();

    // Attention block: x += o_proj(attn(rope(q), rope(k), v)).
    rmsnorm(x, L.attn_norm, xn, n, D, c_.rms_eps);
    if (bf16_gemm_inputs_) round_bf16(xn, n * D);
    linear_bf16(xn, L.wq, L.bq, q_.data(), n, D, Q);
    linear_bf16(xn, L.wk, L.bk, k_.data(), n, D, KV);
    linear_bf16(xn, L.wv, L.bv, v_.data(), n, D, KV);
    for (int t = 0; t < n; ++t) {
      const int p = pos_ + t;
      rope_apply(&q_[t * Q], c_.n_heads, c_.head_dim, p, inv_freq_.data(), concentration_);
      rope_apply(&k_[t * KV], c_.n_kv_heads, c_.head_dim, p, inv_freq_.data(), concentration_);
      std::copy_n(&k_[t * KV], KV, kc + static_cast<int64_t>(p) * KV);
      std::copy_n(&v_[t * KV], KV, vc + static_cast<int64_t>(p) * KV);
      if (kv_bf16_)
        for (int i = 0; i < KV; ++i) {
          float& kk = kc[static_cast<int64_t>(p) * KV + i];
          float& vv = vc[static_cast<int64_t>(p) * KV + i];
          kk = bf16_to_f32(f32_to_bf16(kk)), vv = bf16_to_f32(f32_to_bf16(vv));
        }
    }
    for (int t = 0; t < n; ++t) {
      const int p = pos_ + t;
      const int lo = c_.layer_sliding[il] ? std::max(0, p - c_.sliding_window + 1) : 0;
      attention_sinks(&q_[t * Q], kc, vc, L.sinks, lo, p, c_.n_heads, c_.n_kv_heads, c_.head_dim,
                      sm_scale, &att_[t * Q]);
    }
    if (bf16_gemm_inputs_) round_bf16(att_.data(), n * Q);
    linear_bf16(att_.data(), L.wo, L.bo, y, n, Q, D);
    for (int i = 0; i < n * D; ++i) x[i] += y[i];

    // MoE block: x += sum over the top-k experts of w_e * expert_e(xn).
    rmsnorm(x, L.mlp_norm, xn, n, D, c_.rms_eps);
    linear_bf16(xn, L.router_w, L.router_b, r_.data(), n, D, E);
    for (int t = 0; t < n; ++t) {
      int idx[16];
      float wt[16];
      router_topk_softmax(&r_[t * E], E, k_act, idx, wt);
      if (moe_observer_) moe_observer_({il, pos_ + t, xn + t * D, &r_[t * E], idx, wt});
      std::fill_n(y + t * D, D, 0.0f);
      for (int j = 0; j < k_act; ++j) {
        expert_ffn(L.experts[idx[j]], xn + t * D, c_.swiglu_limit, ffn_.data(), ffn_out_.data(),
                   bf16_gemm_inputs_);
        for (int i = 0; i < D; ++i) y[t * D + i] += wt[j] * ffn_out_[i];
      }
    }
    for (int i = 0; i < n * D; ++i) x[i] += y[i];
  }

  if (logits) {
    rmsnorm(x + first * D, w_.final_norm, xn, n - first, D, c_.rms_eps);
    if (bf16_gemm_inputs_) round_bf16(xn, (n - first) * D);
    linear_bf16(xn, w_.lm_head, nullptr, logits, n - first, D, c_.vocab_size);
  }
  pos_ += n;
}

}  // namespace vex
