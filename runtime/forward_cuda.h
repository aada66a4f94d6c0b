// forward_cuda: the whole model on one GPU (spec §4 with the dtypes of §5: bf16 weights and KV
// cache, fp32 activations and accumulation, MXFP4 experts kept packed and decoded in registers).
// Weights are uploaded once; activations, KV cache and routing buffers are allocated once here.
// Prompts run in chunks of kChunk tokens; a one-token step runs as a captured CUDA graph.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "experts/slot.h"
#include "kernels/cuda/moe.cuh"
#include "runtime/config.h"
#include "runtime/engine.h"
#include "runtime/weights.h"

namespace vex {

// GPU memory of an engine, in bytes.
struct CudaMemory {
  uint64_t weights = 0;    // everything uploaded from the checkpoint (and the slot tables)
  uint64_t kv = 0;         // K and V caches of all layers
  uint64_t workspace = 0;  // activations, routing buffers, logits
};

class CudaEngine final : public Engine {
 public:
  static constexpr int kChunk = 128;      // tokens per pass through the layers
  static constexpr int kLogitsRows = 32;  // logits computed per lm_head pass (buffer rows)
  static constexpr int kAttnSplits = 16;  // key ranges per head in a decode step (full layers)

  // Uploads the weights and allocates the state for one sequence of up to max_ctx tokens.
  static absl::StatusOr<std::unique_ptr<CudaEngine>> create(const Config& config,
                                                            const Weights& weights, int max_ctx);
  ~CudaEngine() override;

  absl::Status forward(std::span<const int32_t> tokens, float* logits,
                       bool last_only = false) override;
  int truncate(int n) override;
  int pos() const override { return pos_; }
  const char* device() const override { return "cuda"; }
  int max_ctx() const override { return max_ctx_; }

  // Greedy decode entirely on the GPU: runs `first` then n-1 tokens each chosen by argmax from the
  // previous step's logits, replaying the captured step graph without host round trips; writes
  // the n chosen tokens to out (if not null). The path vexbench times.
  absl::Status decode_greedy(int32_t first, int n, int32_t* out);

  // Without graphs every step launches its kernels one by one (tests compare both ways).
  void set_use_graphs(bool on) { use_graphs_ = on; }
  const CudaMemory& memory() const { return mem_; }

  // Per-kernel timing (CUDA events around every launch; slows the step, for vexbench --profile).
  struct KernelTime {
    const char* name;
    int calls = 0;
    double ms = 0;
    uint64_t bytes = 0;  // weight and cache bytes the launches read
  };
  // Runs the tokens (at most kChunk: one decode step or one prefill chunk) at the current
  // position without graphs, timing each kernel family; the position does not advance.
  absl::StatusOr<std::vector<KernelTime>> profile_step(std::span<const int32_t> tokens);
  // Bytes of weights and cache one decode step reads at position pos (the bandwidth model).
  uint64_t decode_bytes(int pos) const;

 private:
  struct Layer;
  CudaEngine(const Config& c, int max_ctx);
  absl::Status init(const Weights& w);
  template <typename T>
  absl::StatusOr<T*> upload(const T* host, size_t count);
  template <typename T>
  absl::StatusOr<T*> alloc(size_t count, uint64_t* account);
  // Enqueues one pass of n tokens (positions from d_pos_) through the layers into x_.
  absl::Status enqueue_layers(int n);
  // Final norm and lm_head for rows row0 .. row0+m-1 of x_ (m <= kLogitsRows) into logits_.
  absl::Status enqueue_logits(int row0, int m);
  absl::Status run_step_graph();
  // Launches through here are timed when profiling.
  absl::Status timed(const char* name, uint64_t bytes, const std::function<cudaError_t()>& f);

  Config c_;
  int max_ctx_;
  int ring_ = 0;  // slots of a sliding layer's cache (window + chunk + rewind margin)
  int pos_ = 0;
  bool use_graphs_ = true;
  struct Pending {
    const char* name;
    uint64_t bytes;
    cudaEvent_t start, stop;
  };
  bool profiling_ = false;
  std::vector<Pending> pending_;
  CudaMemory mem_;
  std::vector<void*> allocations_;
  cudaStream_t stream_ = nullptr;
  cudaGraphExec_t step_graph_ = nullptr;

  // Weights on the device.
  const uint16_t *embedding_ = nullptr, *final_norm_ = nullptr, *lm_head_ = nullptr;
  std::vector<Layer> layers_;
  float* inv_freq_ = nullptr;
  float concentration_ = 1;
  uint64_t expert_bytes_ = 0;  // one expert's packed weights (gate_up + down, with scales, bias)

  // State: [kChunk, ...] activations, named as in spec §4.
  int32_t* d_tokens_ = nullptr;
  int* d_pos_ = nullptr;
  float *x_ = nullptr, *xn_ = nullptr, *qkv_ = nullptr, *att_ = nullptr, *h_ = nullptr;
  float *weight_ = nullptr, *logits_ = nullptr;
  float* attn_partial_ = nullptr;
  uint16_t* act_bf16_ = nullptr;  // [kChunk, max(D, Q)] GEMM inputs of a prefill chunk  // [Hq, kAttnSplits, d + 2] split-K attention states
  int* idx_ = nullptr;
  cuda::MoeScratch moe_scratch_{};  // the grouped prefill path's lists and outputs
};

}  // namespace vex
