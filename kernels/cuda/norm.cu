#include "kernels/cuda/common.cuh"
#include "kernels/cuda/norm.cuh"

namespace vex::cuda {
namespace {

constexpr int kThreads = 1024;  // one element or a few per thread: the row is 2880 wide

// One block per row: sum of squares in fp32 per thread, then across warps.
__global__ void rmsnorm_kernel(const float* __restrict__ x, const uint16_t* __restrict__ g,
                               float* __restrict__ y, int dim, float eps) {
  pdl_prologue();
  const float* xt = x + static_cast<int64_t>(blockIdx.x) * dim;
  float* yt = y + static_cast<int64_t>(blockIdx.x) * dim;
  float ss = 0;
  for (int i = threadIdx.x; i < dim; i += kThreads) ss += xt[i] * xt[i];
  __shared__ float part[kThreads / 32];
  ss = warp_sum(ss);
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = ss;
  __syncthreads();
  float total = 0;
#pragma unroll
  for (int w = 0; w < kThreads / 32; ++w) total += part[w];
  const float r = rsqrtf(total / dim + eps);
  for (int i = threadIdx.x; i < dim; i += kThreads) yt[i] = (xt[i] * r) * bf16(g[i]);
}

}  // namespace

cudaError_t rmsnorm(const float* x, const uint16_t* g, float* y, int n, int dim, float eps,
                    cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  launch_pdl(rmsnorm_kernel, n, kThreads, 0, stream, x, g, y, dim, eps);
  return cudaGetLastError();
}

}  // namespace vex::cuda
