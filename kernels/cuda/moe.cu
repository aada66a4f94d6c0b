#include "kernels/cuda/common.cuh"
#include "kernels/cuda/moe.cuh"

namespace vex::cuda {
namespace {

constexpr int kWarps = 8;
constexpr float kSwigluAlpha = 1.702f;

// One 32-value MXFP4 block dotted with x[32]: unit-scale codes summed, the power of two applied
// once (exact decode, same order of operations as the CPU twin).
__device__ __forceinline__ float block_dot(const uint4 codes, uint8_t scale, const float* x) {
  const uint32_t words[4] = {codes.x, codes.y, codes.z, codes.w};
  const float4* xv = reinterpret_cast<const float4*>(x);
  float part = 0.0f;
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    const float4 a = xv[2 * w], b = xv[2 * w + 1];
    const uint32_t v = words[w];
    part += e2m1(v & 0xF) * a.x + e2m1((v >> 4) & 0xF) * a.y;
    part += e2m1((v >> 8) & 0xF) * a.z + e2m1((v >> 12) & 0xF) * a.w;
    part += e2m1((v >> 16) & 0xF) * b.x + e2m1((v >> 20) & 0xF) * b.y;
    part += e2m1((v >> 24) & 0xF) * b.z + e2m1((v >> 28) & 0xF) * b.w;
  }
  return ldexpf(part, static_cast<int>(scale) - 127);
}

// Row r of an MXFP4 matrix with `groups` blocks per row, dotted with x; lanes over blocks.
__device__ __forceinline__ float row_dot(const uint8_t* blocks, const uint8_t* scales, int64_t r,
                                         int groups, const float* x, int lane) {
  const uint4* b = reinterpret_cast<const uint4*>(blocks) + r * groups;
  const uint8_t* s = scales + r * groups;
  float acc = 0.0f;
  for (int g = lane; g < groups; g += 32) acc += block_dot(__ldg(b + g), __ldg(s + g), x + 32 * g);
  return warp_sum(acc);
}

// Grid (I / kWarps, n * k): warp = one j (the gate and up rows 2j, 2j + 1) of one chosen slot.
__global__ void __launch_bounds__(kWarps * 32)
    gate_up_kernel(const float* __restrict__ xn, const int* __restrict__ idx,
                   const vex_slot* __restrict__ slots, MoeWeights w, int k, float limit,
                   float* __restrict__ h) {
  const int j = blockIdx.x * kWarps + threadIdx.x / 32, lane = threadIdx.x % 32;
  const int tj = blockIdx.y, t = tj / k;  // tj = t * k + chosen index
  if (j >= w.I) return;
  const vex_slot slot = slots[idx[tj]];
  float out = 0.0f;
  if (slot.kind == VEX_SLOT_NEURAL) {
    const int groups = w.D / 32;
    const int64_t r0 = static_cast<int64_t>(slot.expert) * 2 * w.I + 2 * j;
    const float* x = xn + static_cast<int64_t>(t) * w.D;
    float gate = row_dot(w.gate_up_blocks, w.gate_up_scales, r0, groups, x, lane);
    float up = row_dot(w.gate_up_blocks, w.gate_up_scales, r0 + 1, groups, x, lane);
    gate += bf16(w.gate_up_bias[r0]), up += bf16(w.gate_up_bias[r0 + 1]);
    gate = fminf(gate, limit);                 // gate: clamped above only
    up = fminf(fmaxf(up, -limit), limit);      // up: both sides (§7.7)
    out = gate / (1.0f + expf(-gate * kSwigluAlpha)) * (up + 1.0f);
  }
  if (lane == 0) h[static_cast<int64_t>(tj) * w.I + j] = out;
}

// Grid (D / kWarps, n): warp = output row d of token t, summing over the k chosen slots.
__global__ void __launch_bounds__(kWarps * 32)
    down_kernel(const float* __restrict__ h, const int* __restrict__ idx,
                const float* __restrict__ weight, const vex_slot* __restrict__ slots,
                MoeWeights w, int k, int layer, TriggerBuffer triggers, float* __restrict__ x) {
  const int d = blockIdx.x * kWarps + threadIdx.x / 32, lane = threadIdx.x % 32;
  const int t = blockIdx.y;
  if (d >= w.D) return;
  const int groups = w.I / 32;
  float acc = 0.0f;
  for (int j = 0; j < k; ++j) {
    const int tj = t * k + j;
    const vex_slot slot = slots[idx[tj]];
    if (slot.kind == VEX_SLOT_NEURAL) {
      const int64_t r = static_cast<int64_t>(slot.expert) * w.D + d;
      const float dot = row_dot(w.down_blocks, w.down_scales, r, groups,
                                h + static_cast<int64_t>(tj) * w.I, lane);
      acc += weight[tj] * (dot + bf16(w.down_bias[r]));
    } else if (slot.kind == VEX_SLOT_HOST && d == 0 && lane == 0 && triggers.records) {
      const int at = atomicAdd(triggers.count, 1);
      if (at < triggers.capacity) triggers.records[at] = {t, layer, idx[tj], weight[tj]};
    }
  }
  if (lane == 0) x[static_cast<int64_t>(t) * w.D + d] += acc;
}

}  // namespace

cudaError_t moe_gate_up(const float* xn, const int* idx, const vex_slot* slots,
                        const MoeWeights& w, int n, int k, float limit, float* h,
                        cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (w.D % 32 != 0 || w.I % 32 != 0) return cudaErrorInvalidValue;
  gate_up_kernel<<<dim3((w.I + kWarps - 1) / kWarps, n * k), kWarps * 32, 0, stream>>>(
      xn, idx, slots, w, k, limit, h);
  return cudaGetLastError();
}

cudaError_t moe_down(const float* h, const int* idx, const float* weight, const vex_slot* slots,
                     const MoeWeights& w, int n, int k, int layer, TriggerBuffer triggers,
                     float* x, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (w.D % 32 != 0 || w.I % 32 != 0) return cudaErrorInvalidValue;
  down_kernel<<<dim3((w.D + kWarps - 1) / kWarps, n), kWarps * 32, 0, stream>>>(
      h, idx, weight, slots, w, k, layer, triggers, x);
  return cudaGetLastError();
}

}  // namespace vex::cuda
