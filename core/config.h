// The model configuration: one plain struct filled and validated from config.json
// (Hugging Face or original/ layout; loader/config_json.cpp). Spec §1.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vex {

enum class Layout { kHuggingFace, kOriginal };

struct Config {
  int n_layers = 0;          // num_hidden_layers: 24 (20b), 36 (120b)
  int d_model = 0;           // hidden_size D: 2880; residual stream width
  int n_heads = 0;           // num_attention_heads Hq: 64 query heads
  int n_kv_heads = 0;        // num_key_value_heads Hkv: 8; query head h reads KV head h / (Hq/Hkv)
  int head_dim = 0;          // d: 64; q width is Hq*d (4096), not D
  int n_experts = 0;         // num_local_experts E: 32 (20b), 128 (120b)
  int n_experts_active = 0;  // experts_per_token k: 4; top-k then softmax over the k
  int d_ff = 0;              // intermediate_size I: 2880; gate_up has 2*I interleaved rows
  int vocab_size = 0;        // 201088, embedding and (untied) lm_head rows
  int sliding_window = 0;    // 128 keys, the current one included, on sliding layers
  std::vector<uint8_t> layer_sliding;  // [n_layers] 1: sliding window, 0: full causal attention

  float rope_theta = 0;        // 150000: RoPE base
  float rope_factor = 1;       // YaRN scaling factor s: 32
  float rope_beta_fast = 32;   // YaRN beta (ntk_beta): high-frequency correction bound
  float rope_beta_slow = 1;    // YaRN alpha (ntk_alpha): low-frequency correction bound
  int rope_original_ctx = 0;   // original_max_position_embeddings L0: 4096
  bool rope_truncate = false;  // floor/ceil the correction range: false for gpt-oss (§7.2)
  float swiglu_limit = 7.0f;   // clamp of the SwiGLU halves (§4.6)
  float rms_eps = 1e-5f;       // inside the rsqrt of every RMSNorm
  int max_position = 0;        // max_position_embeddings: 131072

  Layout layout = Layout::kHuggingFace;  // which checkpoint naming the directory uses

  int q_dim() const { return n_heads * head_dim; }      // 4096
  int kv_dim() const { return n_kv_heads * head_dim; }  // 512
  int group_size() const { return n_heads / n_kv_heads; }
  // One expert's packed bytes: MXFP4 gate_up [2I, D] and down [D, I] (16 bytes of codes + 1 scale
  // byte per 32 values) with their bf16 biases.
  uint64_t expert_bytes() const {
    const uint64_t D = d_model, I = d_ff;
    return 2 * I * (D / 32) * 17 + 2 * I * 2 + D * (I / 32) * 17 + D * 2;
  }

  // The gpt-oss layer pattern (docs/gpt-oss.md §1.3): even layers slide, odd layers attend fully.
  void set_alternating_layers() {
    layer_sliding.assign(n_layers, 0);
    for (int i = 0; i < n_layers; i += 2) layer_sliding[i] = 1;
  }
};

}  // namespace vex
