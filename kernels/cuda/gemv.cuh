// bf16 projections with bias for small token counts (decode, short prefill chunks), twin of
// kernels/cpu/linear.cpp (and of kernels/cpu/rmsnorm.cpp when the norm is fused). Streams each
// weight row once per group of up to 8 tokens with 16-byte loads: at batch 1 the work is the
// weight bytes, so this runs near the copy bandwidth.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/rope.cuh"

namespace vex::cuda {

// y[t, r] = (accumulate ? y[t, r] : 0) + sum_k W[r, k] xn[t, k] + b[r]
// x fp32 [n, K], W bf16 [N, K] row-major, b bf16 [N] or null, y fp32 [n, N].
// xn = x, or with norm_gain (bf16 [K]) the RMSNorm of x (docs/gpt-oss.md §4.1) computed in the kernel:
// each block reduces its tokens' rows itself, which saves a launch and a pass at decode.
// K must be a multiple of 8 and the pointers 16-byte aligned.
cudaError_t gemv_bf16(const float* x, const uint16_t* W, const uint16_t* b, float* y, int n, int K,
                      int N, bool accumulate, cudaStream_t stream,
                      const uint16_t* norm_gain = nullptr, float eps = 0);

// The decode QKV projection with rope_kv applied in the same kernel (rope.cuh): y as gemv_bf16
// writes it (q rotated; k and v as projected), k rotated and v stored as bf16 in the cache at the
// rows' positions, the bits rope_kv would write. W's rows are q, k then v heads of head_dim
// (N = (n_heads + 2 n_kv_heads) head_dim; head_dim a multiple of 8).
cudaError_t gemv_qkv_rope(const float* x, const uint16_t* W, const uint16_t* b, float* y, int n,
                          int K, int N, const RopeKv& rope, cudaStream_t stream,
                          const uint16_t* norm_gain = nullptr, float eps = 0);

}  // namespace vex::cuda
