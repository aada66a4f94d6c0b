#include "kernels/cuda/common.cuh"
#include "kernels/cuda/norm.cuh"

namespace vex::cuda {
namespace {

// One block per row: sum of squares in fp32 per thread, then across warps; y in fp32 or, for the
// projections' GEMMs, rounded to bf16 (Out = uint16_t). kThreads: 1,024 for a few rows (decode:
// the row's chain is the step's), 256 for many (a prefill pass, whose 1,024-thread blocks ran in
// waves: the router's measurement, kernels/cuda/router.cu).
template <int kThreads, typename Out>
__global__ void __launch_bounds__(kThreads)
    rmsnorm_kernel(const float* __restrict__ x, const uint16_t* __restrict__ g, Out* y, int dim,
                   float eps) {
  pdl_prologue();
  const float* xt = x + static_cast<int64_t>(blockIdx.x) * dim;
  Out* yt = y + static_cast<int64_t>(blockIdx.x) * dim;
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
  for (int i = threadIdx.x; i < dim; i += kThreads) {
    const float v = (xt[i] * r) * bf16(g[i]);
    if constexpr (sizeof(Out) == 2)
      yt[i] = to_bf16(v);
    else
      yt[i] = v;
  }
}

constexpr int kManyRows = 256;  // from this many rows a call, blocks of 256 threads

template <typename Out>
cudaError_t launch(const float* x, const uint16_t* g, Out* y, int n, int dim, float eps,
                   cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (n >= kManyRows)
    launch_pdl(rmsnorm_kernel<256, Out>, n, 256, 0, stream, x, g, y, dim, eps);
  else
    launch_pdl(rmsnorm_kernel<1024, Out>, n, 1024, 0, stream, x, g, y, dim, eps);
  return cudaGetLastError();
}

}  // namespace

cudaError_t rmsnorm(const float* x, const uint16_t* g, float* y, int n, int dim, float eps,
                    cudaStream_t stream) {
  return launch(x, g, y, n, dim, eps, stream);
}

cudaError_t rmsnorm_bf16(const float* x, const uint16_t* g, uint16_t* yb, int n, int dim, float eps,
                         cudaStream_t stream) {
  return launch(x, g, yb, n, dim, eps, stream);
}

}  // namespace vex::cuda
