#include "kernels/cuda/common.cuh"
#include "kernels/cuda/mxfp4.cuh"

namespace vex::cuda {
namespace {

// E2M1 code -> value (docs/gpt-oss.md §3); in constant memory, indexed uniformly enough per warp.
__constant__ float kE2M1[16] = {+0.0f, +0.5f, +1.0f, +1.5f, +2.0f, +3.0f, +4.0f, +6.0f,
                                -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

// One warp per row: each lane takes whole 32-value blocks (one 16-byte load of codes plus one
// scale byte), sums the block with unit-scale codes and applies the power of two once, exactly
// as the CPU reference does; lanes then reduce with shuffles.
__global__ void mxfp4_matvec_kernel(const uint8_t* __restrict__ blocks,
                                    const uint8_t* __restrict__ scales, int rows, int cols,
                                    const float* __restrict__ x, float* __restrict__ y) {
  pdl_prologue();
  const int warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= rows) return;
  const int groups = cols / 32;
  const uint4* b = reinterpret_cast<const uint4*>(blocks) + static_cast<int64_t>(warp) * groups;
  const uint8_t* s = scales + static_cast<int64_t>(warp) * groups;
  float acc = 0.0f;
  for (int g = lane; g < groups; g += 32) {
    const uint4 codes = b[g];
    const uint32_t words[4] = {codes.x, codes.y, codes.z, codes.w};
    const float4* xg = reinterpret_cast<const float4*>(x + 32 * g);
    float part = 0.0f;
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      const float4 xa = xg[2 * w], xb = xg[2 * w + 1];
      const uint32_t v = words[w];
      part += kE2M1[v & 0xF] * xa.x + kE2M1[(v >> 4) & 0xF] * xa.y;
      part += kE2M1[(v >> 8) & 0xF] * xa.z + kE2M1[(v >> 12) & 0xF] * xa.w;
      part += kE2M1[(v >> 16) & 0xF] * xb.x + kE2M1[(v >> 20) & 0xF] * xb.y;
      part += kE2M1[(v >> 24) & 0xF] * xb.z + kE2M1[(v >> 28) & 0xF] * xb.w;
    }
    acc += ldexpf(part, static_cast<int>(s[g]) - 127);
  }
#pragma unroll
  for (int off = 16; off > 0; off /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  if (lane == 0) y[warp] = acc;
}

}  // namespace

cudaError_t mxfp4_matvec(const uint8_t* blocks, const uint8_t* scales, int rows, int cols,
                         const float* x, float* y, cudaStream_t stream) {
  if (cols % 32 != 0) return cudaErrorInvalidValue;
  constexpr int kThreads = 256;
  const int grid = (rows * 32 + kThreads - 1) / kThreads;
  launch_pdl(mxfp4_matvec_kernel, grid, kThreads, 0, stream, blocks, scales, rows, cols, x, y);
  return cudaGetLastError();
}

}  // namespace vex::cuda
