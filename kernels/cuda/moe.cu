#include "kernels/cuda/common.cuh"
#include "kernels/cuda/moe.cuh"

namespace vex::cuda {
namespace {

constexpr int kWarps = 8;
constexpr float kSwigluAlpha = 1.702f;

// 2^(s-127) for an E8M0 scale byte, built from the bits (exact; s = 0 is the subnormal 2^-127).
__device__ __forceinline__ float e8m0(uint32_t s) {
  return __uint_as_float(s ? s << 23 : 0x00400000u);
}

// The 16 E2M1 values in shared memory: a code is then one shared load (16 entries in 16 banks:
// never a bank conflict) instead of ~6 integer instructions, which made these kernels
// instruction-bound rather than memory-bound.
__device__ __forceinline__ void fill_lut(float* lut) {
  if (threadIdx.x < 16) lut[threadIdx.x] = e2m1(threadIdx.x);
  __syncthreads();
}

// One 32-value MXFP4 block dotted with x[32] (as 8 float4): unit-scale codes summed, the power
// of two applied once (exact decode, the CPU twin's order of operations).
__device__ __forceinline__ float block_dot(const uint4 codes, uint32_t scale, const float4* xv,
                                           const float* lut) {
  const uint32_t words[4] = {codes.x, codes.y, codes.z, codes.w};
  float part = 0.0f;
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    const float4 a = xv[2 * w], b = xv[2 * w + 1];
    const uint32_t v = words[w];
    part += lut[v & 0xF] * a.x + lut[(v >> 4) & 0xF] * a.y;
    part += lut[(v >> 8) & 0xF] * a.z + lut[(v >> 12) & 0xF] * a.w;
    part += lut[(v >> 16) & 0xF] * b.x + lut[(v >> 20) & 0xF] * b.y;
    part += lut[(v >> 24) & 0xF] * b.z + lut[(v >> 28) & 0xF] * b.w;
  }
  return part * e8m0(scale);
}

__device__ __forceinline__ void load_x(const float* x, int g, float4* xv) {
  const float4* p = reinterpret_cast<const float4*>(x + 32 * g);
#pragma unroll
  for (int i = 0; i < 8; ++i) xv[i] = __ldg(p + i);
}

// Grid (I / (kWarps * kJ), n * k): a warp computes kJ consecutive j of one chosen slot, i.e.
// the 2 kJ interleaved gate/up rows 2j .. 2j + 2kJ - 1, contiguous in memory. Lanes take whole
// blocks; all the rows' code words of a block column are loaded before any is decoded, so a lane
// has 2 kJ 16-byte loads in flight and x (shared by the rows) is read once per column.
constexpr int kJ = 2;
__global__ void __launch_bounds__(kWarps * 32)
    gate_up_kernel(const float* __restrict__ xn, const int* __restrict__ idx,
                   const vex_slot* __restrict__ slots, MoeWeights w, int k, float limit,
                   float* __restrict__ h) {
  __shared__ float lut[16];
  fill_lut(lut);
  const int j0 = (blockIdx.x * kWarps + threadIdx.x / 32) * kJ, lane = threadIdx.x % 32;
  const int tj = blockIdx.y, t = tj / k;  // tj = t * k + chosen index
  if (j0 >= w.I) return;
  const vex_slot slot = slots[idx[tj]];
  float out[kJ] = {};
  if (slot.kind == VEX_SLOT_NEURAL) {
    constexpr int R = 2 * kJ;
    const int groups = w.D / 32;
    const int64_t r0 = static_cast<int64_t>(slot.expert) * 2 * w.I + 2 * j0;
    const uint4* b = reinterpret_cast<const uint4*>(w.gate_up_blocks) + r0 * groups;
    const uint8_t* sc = w.gate_up_scales + r0 * groups;
    const float* x = xn + static_cast<int64_t>(t) * w.D;
    float acc[R] = {};
    for (int g = lane; g < groups; g += 32) {
      uint4 c[R];
      uint32_t s[R];
#pragma unroll
      for (int r = 0; r < R; ++r)
        c[r] = __ldg(b + r * groups + g), s[r] = __ldg(sc + r * groups + g);
      float4 xv[8];
      load_x(x, g, xv);
#pragma unroll
      for (int r = 0; r < R; ++r) acc[r] += block_dot(c[r], s[r], xv, lut);
    }
#pragma unroll
    for (int q = 0; q < kJ; ++q) {
      float gate = warp_sum(acc[2 * q]) + bf16(w.gate_up_bias[r0 + 2 * q]);
      float up = warp_sum(acc[2 * q + 1]) + bf16(w.gate_up_bias[r0 + 2 * q + 1]);
      gate = fminf(gate, limit);             // gate: clamped above only
      up = fminf(fmaxf(up, -limit), limit);  // up: both sides (§7.7)
      out[q] = gate / (1.0f + expf(-gate * kSwigluAlpha)) * (up + 1.0f);
    }
  }
  if (lane == 0)
#pragma unroll
    for (int q = 0; q < kJ; ++q)
      if (j0 + q < w.I) h[static_cast<int64_t>(tj) * w.I + j0 + q] = out[q];
}

// Grid (D / kRows, n): a block computes kRows = 8 output rows of token t. Warp w takes chosen
// slot w / 2 (of at most 4 per pass) and rows 4 (w % 2) .. +3 of the block's 8: contiguous rows
// of one expert, sharing the h loads. The per-slot partial sums meet in shared memory and are
// added in slot order by one thread per row: deterministic, no atomics.
constexpr int kRows = 8, kSlotsPerPass = 4, kRowsPerWarp = 4;
__global__ void __launch_bounds__(kWarps * 32)
    down_kernel(const float* __restrict__ h, const int* __restrict__ idx,
                const float* __restrict__ weight, const vex_slot* __restrict__ slots,
                MoeWeights w, int k, int layer, TriggerBuffer triggers, float* __restrict__ x) {
  __shared__ float lut[16];
  __shared__ float part[kSlotsPerPass][kRows];
  fill_lut(lut);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, t = blockIdx.y;
  const int d0 = blockIdx.x * kRows, q = warp / 2, r0 = (warp % 2) * kRowsPerWarp;
  const int groups = w.I / 32;
  const uint4* b = reinterpret_cast<const uint4*>(w.down_blocks);
  float total = 0;  // thread r < kRows: row d0 + r
  for (int j0 = 0; j0 < k; j0 += kSlotsPerPass) {  // gpt-oss: k = 4, one pass
    const int j = j0 + q, tj = t * k + j;
    float acc[kRowsPerWarp] = {};
    bool neural = false;
    int64_t row = 0;
    if (j < k) {
      const vex_slot slot = slots[idx[tj]];
      neural = slot.kind == VEX_SLOT_NEURAL;
      row = static_cast<int64_t>(slot.expert) * w.D + d0 + r0;
      if (slot.kind == VEX_SLOT_HOST && blockIdx.x == 0 && warp % 2 == 0 && lane == 0 &&
          triggers.records) {
        const int at = atomicAdd(triggers.count, 1);
        if (at < triggers.capacity) triggers.records[at] = {t, layer, idx[tj], weight[tj]};
      }
    }
    if (neural) {
      const float* hj = h + static_cast<int64_t>(tj) * w.I;
      for (int g = lane; g < groups; g += 32) {
        uint4 c[kRowsPerWarp];
        uint32_t s[kRowsPerWarp];
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r)
          if (d0 + r0 + r < w.D)
            c[r] = __ldg(b + (row + r) * groups + g), s[r] = __ldg(w.down_scales + (row + r) * groups + g);
        float4 xv[8];
        load_x(hj, g, xv);
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r)
          if (d0 + r0 + r < w.D) acc[r] += block_dot(c[r], s[r], xv, lut);
      }
    }
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const float dot = warp_sum(acc[r]);
      if (lane == 0)
        part[q][r0 + r] = neural && d0 + r0 + r < w.D
                              ? weight[tj] * (dot + bf16(w.down_bias[row + r]))
                              : 0.0f;
    }
    __syncthreads();
    if (threadIdx.x < kRows)
      for (int qq = 0; qq < kSlotsPerPass; ++qq) total += part[qq][threadIdx.x];
    __syncthreads();
  }
  if (threadIdx.x < kRows && d0 + threadIdx.x < w.D)
    x[static_cast<int64_t>(t) * w.D + d0 + threadIdx.x] += total;
}

}  // namespace

cudaError_t moe_gate_up(const float* xn, const int* idx, const vex_slot* slots, const MoeWeights& w,
                        int n, int k, float limit, float* h, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (w.D % 32 != 0 || w.I % 32 != 0) return cudaErrorInvalidValue;
  constexpr int per_block = kWarps * kJ;
  gate_up_kernel<<<dim3((w.I + per_block - 1) / per_block, n * k), kWarps * 32, 0, stream>>>(
      xn, idx, slots, w, k, limit, h);
  return cudaGetLastError();
}

cudaError_t moe_down(const float* h, const int* idx, const float* weight, const vex_slot* slots,
                     const MoeWeights& w, int n, int k, int layer, TriggerBuffer triggers, float* x,
                     cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (w.D % 32 != 0 || w.I % 32 != 0) return cudaErrorInvalidValue;
  down_kernel<<<dim3((w.D + kRows - 1) / kRows, n), kWarps * 32, 0, stream>>>(
      h, idx, weight, slots, w, k, layer, triggers, x);
  return cudaGetLastError();
}

}  // namespace vex::cuda
