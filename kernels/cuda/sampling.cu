#include "kernels/cuda/common.cuh"
#include "kernels/cuda/sampling.cuh"

namespace vex::cuda {
namespace {

constexpr int kThreads = 1024;

// Block r: row r of the logits.
__global__ void argmax_kernel(const float* __restrict__ logits, int V, int32_t* out, int* pos,
                              int advance) {
  const int r = blockIdx.x;
  logits += static_cast<int64_t>(r) * V;
  float best = -INFINITY;
  int at = 0x7FFFFFFF;
  for (int i = threadIdx.x; i < V; i += kThreads)
    if (logits[i] > best) best = logits[i], at = i;  // ascending i: first max kept
  __shared__ float sv[kThreads];
  __shared__ int si[kThreads];
  sv[threadIdx.x] = best, si[threadIdx.x] = at;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      const float v = sv[threadIdx.x + half];
      const int i = si[threadIdx.x + half];
      if (v > sv[threadIdx.x] || (v == sv[threadIdx.x] && i < si[threadIdx.x]))
        sv[threadIdx.x] = v, si[threadIdx.x] = i;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    out[r] = si[0];
    pos[r] += advance;
  }
}

}  // namespace

cudaError_t argmax_next(const float* logits, int V, int rows, int32_t* out, int* pos, int advance,
                        cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  argmax_kernel<<<rows, kThreads, 0, stream>>>(logits, V, out, pos, advance);
  return cudaGetLastError();
}

}  // namespace vex::cuda
