// forward_cpu: the reference forward pass of docs/gpt-oss.md §4 in fp32 (dot products in double), on
// weights decoded exactly. It is the oracle for the CUDA engine and is itself checked against
// transformers (tests/test_goldens.cpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "core/weights.h"
#include "runtime/engine.h"

namespace vex {

class CpuEngine final : public Engine {
 public:
  // State for one sequence of up to max_ctx tokens, allocated here once.
  CpuEngine(const Config& config, const Weights& weights, int max_ctx);

  // Engine::forward. A prompt may be prefilled in one call and extended token by token; the
  // logits do not depend on how the sequence was split.
  absl::Status forward(std::span<const int32_t> tokens, float* logits,
                       bool last_only = false) override;

  // Engine's routing capture and overrides.
  absl::Status set_routing_observer(RoutingObserver f, bool /*hidden*/ = true) override {
    observer_ = std::move(f);
    return absl::OkStatus();
  }
  absl::Status set_routing_override(const RoutingOverride& o) override;

  // Every position's keys and values are kept, so cutting back is moving the end.
  int truncate(int n) override { return pos_ = std::clamp(n, 0, pos_); }
  // Stores keys and values rounded to bf16, as forward_cuda does, so that the GPU engine can be
  // checked against this reference to fp32 accuracy (tests/test_forward_cuda.cpp).
  void set_kv_bf16(bool on) { kv_bf16_ = on; }
  // Rounds the inputs of the QKV and O projections, the experts (expert_ffn's bf16_inputs) and
  // lm_head to bf16, as forward_cuda does on tensor cores (CudaEngine::uses_gemm: prefill, and
  // large decode batches); toggled per call by the tests to mirror those passes (vs fp32 ones).
  void set_bf16_gemm_inputs(bool on) { bf16_gemm_inputs_ = on; }
  std::span<const vex_trigger> triggers() const override { return triggers_; }
  absl::Status set_virtual_experts(bool on) override {
    virtual_on_ = on;
    return absl::OkStatus();
  }
  int pos() const override { return pos_; }
  const char* device() const override { return "cpu"; }
  int max_ctx() const override { return max_ctx_; }
  int vocab() const override { return c_.vocab_size; }

 private:
  // Writes the logits of tokens first .. n-1 of the chunk when logits is not null.
  void forward_chunk(const int32_t* tokens, int n, float* logits, int first);
  // y[D] += the routing-weighted outputs of token t's k chosen slots at layer il.
  void moe_token(int il, int t, const float* xn, const int* idx, const float* wt, float* y);

  static constexpr int kChunk = 32;  // tokens per pass through the layers; bounds scratch size
  const Config& c_;
  const Weights& w_;
  int max_ctx_;
  int pos_ = 0;
  bool kv_bf16_ = false, bf16_gemm_inputs_ = false, virtual_on_ = true;
  std::vector<vex_trigger> triggers_;
  RoutingObserver observer_;
  int k_act_;                              // experts per token (the model's, or overridden)
  std::vector<std::vector<uint8_t>> ablated_, forced_;  // [layer][slot], empty when none
  std::vector<float> inv_freq_;  // [d/2] YaRN inverse frequencies
  float concentration_ = 1;      // YaRN attention concentration, multiplies cos and sin
  // KV cache in fp32, every position kept on every layer (the reference favours plainness;
  // the CUDA engine keeps sliding layers as rings).
  std::vector<std::vector<float>> k_cache_, v_cache_;  // [n_layers][max_ctx * Hkv*d]
  // Scratch for one chunk, named as in docs/gpt-oss.md §4.
  std::vector<float> x_, xn_, q_, k_, v_, att_, y_, r_, ffn_, ffn_out_;
};

}  // namespace vex
