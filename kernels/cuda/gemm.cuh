// bf16 projections of passes of several rows (prefill chunks, large decode batches) on tensor
// cores through cuBLASLt (bf16 x bf16, fp32 accumulate and output): QKV, O and lm_head, where a
// GEMV would re-read the weights for every 8 rows. Activations enter as bf16, as in the
// references (docs/gpt-oss.md §5).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <vector>

namespace vex::cuda {

// A cuBLASLt handle, its workspace and one chosen algorithm per shape (found on first use;
// host-only work, so a call can be captured in a CUDA graph). Not thread-safe; one per engine.
class Gemm {
 public:
  Gemm() = default;
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;
  ~Gemm();

  // Creates the handle and allocates the workspace (not allowed inside a graph capture).
  cudaError_t init();
  // y[t, r] = (accumulate ? y[t, r] : 0) + sum_k W[r, k] xb[t, k] + b[r] for t < n, the bias
  // added in the GEMM's epilogue (cuBLASLt's bias type is the output's: fp32).
  // xb bf16 [n, K]; W bf16 [N, K]; b fp32 [N] or null; y fp32 [n, N]; pointers 16-byte aligned.
  // cuBLAS failures return cudaErrorUnknown with the cuBLAS status in error().
  cudaError_t run(const uint16_t* xb, const uint16_t* W, const float* b, float* y, int n, int K,
                  int N, bool accumulate, cudaStream_t stream);
  const char* error() const { return error_; }
  uint64_t workspace_bytes() const { return workspace_ ? kWorkspaceBytes : 0; }

  static constexpr size_t kWorkspaceBytes = size_t(32) << 20;

 private:
  struct Plan {
    int n, K, N;
    bool bias;  // CUBLASLT_EPILOGUE_BIAS (the pointer set per call)
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  cudaError_t fail(cublasStatus_t s, const char* what, int n = 0, int K = 0, int N = 0);
  const Plan* plan(int n, int K, int N, const float* bias);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  std::vector<Plan> plans_;
  char error_[160] = "";
};

// xb = bf16(x) (round to nearest even), count values: the GEMM inputs of a pass.
cudaError_t to_bf16(const float* x, uint16_t* xb, int64_t count, cudaStream_t stream);

}  // namespace vex::cuda
