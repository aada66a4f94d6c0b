#include "kernels/cuda/common.cuh"
#include "kernels/cuda/embed.cuh"

namespace vex::cuda {
namespace {

__global__ void embed_kernel(const int32_t* __restrict__ tokens, const uint16_t* __restrict__ emb,
                             int D, float* __restrict__ x) {
  pdl_prologue();
  const int t = blockIdx.x;
  const uint16_t* row = emb + static_cast<int64_t>(tokens[t]) * D;
  for (int i = threadIdx.x; i < D; i += blockDim.x)
    x[static_cast<int64_t>(t) * D + i] = bf16(row[i]);
}

}  // namespace

cudaError_t embed(const int32_t* tokens, int n, const uint16_t* emb, int D, float* x,
                  cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  launch_pdl(embed_kernel, n, 256, 0, stream, tokens, emb, D, x);
  return cudaGetLastError();
}

}  // namespace vex::cuda
