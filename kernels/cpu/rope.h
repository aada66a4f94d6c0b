// RoPE with YaRN (NTK-by-parts), docs/gpt-oss.md §4.3. Half-split (NeoX) pairing (i, i + d/2).
#pragma once

namespace vex {

struct YarnParams {
  float theta;       // base, 150000
  float factor;      // s, 32
  float beta_fast;   // beta, 32
  float beta_slow;   // alpha, 1
  int original_ctx;  // L0, 4096
  bool truncate;     // floor/ceil the correction range (false for gpt-oss, §7.2)
};

// inv_freq[head_dim/2] in fp32 exactly as the references compute it; returns the attention
// concentration 0.1 ln(s) + 1 that multiplies cos and sin (so q.k gains its square, §7.3).
float yarn_inv_freq(const YarnParams& p, int head_dim, float* inv_freq);

// Rotates x [n_heads, head_dim] in place for position `pos`: theta = float(pos) * inv_freq in
// fp32 and accurate cosf/sinf (never fast-math: at p ~ 1e5 one fp32 ulp of theta is 0.008 rad).
void rope_apply(float* x, int n_heads, int head_dim, int pos, const float* inv_freq,
                float concentration);

}  // namespace vex
