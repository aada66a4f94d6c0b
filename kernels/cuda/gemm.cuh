// bf16 projections of a prefill chunk on tensor cores (mma.sync m16n8k16, fp32 accumulate):
// the QKV and O projections when there is more than one token, where the GEMV would re-read the
// weights for every 8 tokens. Activations enter as bf16, as in the references (spec §5).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace vex::cuda {

// y[t, r] = (accumulate ? y[t, r] : 0) + sum_k W[r, k] xb[t, k] + b[r] for t < n.
// xb bf16 [n, K]; W bf16 [N, K]; b bf16 [N] or null; y fp32 [n, N]. K % 16 == 0, N % 64 == 0.
cudaError_t gemm_bf16(const uint16_t* xb, const uint16_t* W, const uint16_t* b, float* y, int n,
                      int K, int N, bool accumulate, cudaStream_t stream);

// xb = bf16(x) (round to nearest even), count values: the GEMM inputs of a prefill chunk.
cudaError_t to_bf16(const float* x, uint16_t* xb, int64_t count, cudaStream_t stream);

}  // namespace vex::cuda
