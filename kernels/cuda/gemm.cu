#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm.cuh"

namespace vex::cuda {
namespace {

constexpr int kWarps = 4, kRowsPerBlock = 64, kTokens = 16;

// Grid (N / 64): warp w owns rows 16 w .. of the block's 64, and runs every 16 tokens against
// them (A fragments straight from the bf16 rows, B from the token rows; m16n8k16 layouts).
__global__ void __launch_bounds__(kWarps * 32)
    gemm_kernel(const uint16_t* __restrict__ xb, const uint16_t* __restrict__ W,
                const uint16_t* __restrict__ b, float* __restrict__ y, int n, int K, int N,
                bool accumulate) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
  const int r0 = blockIdx.x * kRowsPerBlock + warp * 16;
  const uint32_t* wa = reinterpret_cast<const uint32_t*>(W + static_cast<int64_t>(r0 + g) * K);
  const uint32_t* wb = reinterpret_cast<const uint32_t*>(W + static_cast<int64_t>(r0 + g + 8) * K);
  for (int t0 = 0; t0 < n; t0 += kTokens) {
    const uint32_t* xr[2];
    for (int tile = 0; tile < 2; ++tile)
      xr[tile] = reinterpret_cast<const uint32_t*>(
          xb + static_cast<int64_t>(min(t0 + tile * 8 + g, n - 1)) * K);
    float acc[2][4] = {};
    for (int k0 = 0; k0 < K; k0 += 16) {
      const int kw = k0 / 2 + c;  // u32 index of elements (k0 + 2c, k0 + 2c + 1)
      const uint32_t a[4] = {__ldg(wa + kw), __ldg(wb + kw), __ldg(wa + kw + 4),
                             __ldg(wb + kw + 4)};
#pragma unroll
      for (int tile = 0; tile < 2; ++tile) {
        const uint32_t bb[2] = {__ldg(xr[tile] + kw), __ldg(xr[tile] + kw + 4)};
        mma_bf16(acc[tile], a, bb);
      }
    }
#pragma unroll
    for (int tile = 0; tile < 2; ++tile)
#pragma unroll
      for (int v = 0; v < 4; ++v) {
        const int r = r0 + g + (v >= 2 ? 8 : 0), t = t0 + tile * 8 + 2 * c + (v % 2);
        if (t >= n) continue;
        float* out = y + static_cast<int64_t>(t) * N + r;
        *out = (accumulate ? *out : 0.0f) + acc[tile][v] + (b ? bf16(b[r]) : 0.0f);
      }
  }
}

__global__ void to_bf16_kernel(const float* __restrict__ x, uint16_t* __restrict__ xb,
                               int64_t count) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    xb[i] = to_bf16(x[i]);
}

}  // namespace

cudaError_t gemm_bf16(const uint16_t* xb, const uint16_t* W, const uint16_t* b, float* y, int n,
                      int K, int N, bool accumulate, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (K % 16 != 0 || N % kRowsPerBlock != 0) return cudaErrorInvalidValue;
  gemm_kernel<<<N / kRowsPerBlock, kWarps * 32, 0, stream>>>(xb, W, b, y, n, K, N, accumulate);
  return cudaGetLastError();
}

cudaError_t to_bf16(const float* x, uint16_t* xb, int64_t count, cudaStream_t stream) {
  if (count <= 0) return cudaSuccess;
  const int blocks = static_cast<int>(std::min<int64_t>((count + 255) / 256, 4096));
  to_bf16_kernel<<<blocks, 256, 0, stream>>>(x, xb, count);
  return cudaGetLastError();
}

}  // namespace vex::cuda
