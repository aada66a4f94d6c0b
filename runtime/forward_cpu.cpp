#include "runtime/forward_cpu.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/moe.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/router.h"
#include "runtime/routing.h"

namespace vex {
namespace {

void round_bf16(float* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) v[i] = bf16_to_f32(f32_to_bf16(v[i]));
}

}  // namespace

CpuEngine::CpuEngine(const Config& config, const Weights& weights, int max_ctx)
    : c_(config), w_(weights), max_ctx_(max_ctx), k_act_(config.n_experts_active) {
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
  int slots = 0;
  for (const LayerWeights& L : w_.layers) slots = std::max(slots, L.n_slots());
  r_.resize(kChunk * slots);
  ffn_.resize(3 * c_.d_ff + D), ffn_out_.resize(D);
}

absl::Status CpuEngine::forward(std::span<const int32_t> tokens, float* logits, bool last_only) {
  VEX_RETURN_IF_ERROR(check_tokens(tokens, pos_, max_ctx_, c_.vocab_size));
  triggers_.clear();
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

// One chunk of n tokens at positions pos_ .. pos_+n-1, top to bottom as docs/gpt-oss.md §4.0.
void CpuEngine::forward_chunk(const int32_t* tokens, int n, float* logits, int first) {
  const int D = c_.d_model, Q = c_.q_dim(), KV = c_.kv_dim();
  const int k_act = k_act_;
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

    // MoE block: x += sum over the top-k slots of w_e * slot_e(xn). Pruned rows, and virtual
    // ones when switched off, never compete.
    const int S = L.n_slots();
    rmsnorm(x, L.mlp_norm, xn, n, D, c_.rms_eps);
    linear_bf16(xn, L.router_w, L.router_b, r_.data(), n, D, S);
    for (int t = 0; t < n; ++t) {
      float* r = &r_[t * S];
      for (int e = 0; e < S; ++e) {
        const uint32_t kind = L.slots[e].kind;
        if (kind == VEX_SLOT_PRUNED || (!virtual_on_ && kind != VEX_SLOT_NEURAL))
          r[e] = -INFINITY;
      }
      if (!ablated_.empty())
        for (int e = 0; e < S; ++e)
          if (ablated_[il][e]) r[e] = -INFINITY;
      int idx[16];
      float wt[16];
      int n_forced = 0;
      if (!forced_.empty())
        for (int e = 0; e < S; ++e)
          if (forced_[il][e]) idx[n_forced++] = e;
      router_topk_softmax(r, S, k_act, idx, wt, n_forced);
      if (observer_) observer_({il, pos_ + t, S, k_act, xn + t * D, x + t * D, r, idx, wt});
      std::fill_n(y + t * D, D, 0.0f);
      moe_token(il, t, xn + t * D, idx, wt, y + t * D);
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

absl::Status CpuEngine::set_routing_override(const RoutingOverride& o) {
  VEX_ASSIGN_OR_RETURN(RoutingPlan plan,
                       plan_routing(o, w_.layers, c_.n_experts_active, /*max_k=*/16));
  k_act_ = plan.k, ablated_ = std::move(plan.ablated), forced_ = std::move(plan.forced);
  return absl::OkStatus();
}

void CpuEngine::moe_token(int il, int t, const float* xn, const int* idx, const float* wt,
                          float* y) {
  const LayerWeights& L = w_.layers[il];
  const int D = c_.d_model;
  for (int j = 0; j < k_act_; ++j) {
    const vex_slot& s = L.slots[idx[j]];
    // A virtual slot counts only when its routing weight reaches its threshold (neural: 0).
    if (wt[j] < s.threshold) continue;
    if (s.kind == VEX_SLOT_NEURAL) {
      expert_ffn(L.experts[s.expert], xn, c_.swiglu_limit, ffn_.data(), ffn_out_.data(),
                 bf16_gemm_inputs_);
    } else if (s.kind == VEX_SLOT_DEVICE) {
      device_expert(L.device_params[s.expert], s.function, xn, D, ffn_out_.data());
    } else {  // HOST (pruned rows never win): recorded for the runtime, adds nothing
      triggers_.push_back({0, pos_ + t, il, idx[j], wt[j]});
      continue;
    }
    for (int i = 0; i < D; ++i) y[i] += wt[j] * ffn_out_[i];
  }
}

}  // namespace vex
