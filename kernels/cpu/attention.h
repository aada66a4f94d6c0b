// Attention with sinks over a KV cache, one query position (docs/gpt-oss.md §4.4).
#pragma once

#include <cstdint>

namespace vex {

// q: [Hq, d] for the query at absolute position p; k, v: [T, Hkv*d] cache rows by position;
// keys j in [first, p] are attended (first = 0 on full layers, max(0, p - window + 1) on sliding
// ones). sinks: [Hq] bf16 raw logits, joining the softmax denominator only, unscaled.
// Query head h reads KV head h / (Hq/Hkv). out: [Hq*d].
void attention_sinks(const float* q, const float* k, const float* v, const uint16_t* sinks,
                     int first, int p, int n_heads, int n_kv_heads, int head_dim, float sm_scale,
                     float* out);

}  // namespace vex
