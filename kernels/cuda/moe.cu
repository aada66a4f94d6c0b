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

// Lane layout of both kernels: a warp reads 8 MXFP4 block columns at a time, lane l taking the
// 4-byte word l % 4 (8 codes) of column l / 4. Code words and x (8 floats per lane) are then
// contiguous across the warp: 128 bytes of codes per row and 1 KB of x per step, each load one
// coalesced transaction, rather than 32 lanes each streaming their own 128-byte stretch of x
// (32 cache lines per load instruction, which throttled the first version in L1).
constexpr int kCols = 8;    // block columns per warp step
constexpr int kUnroll = 4;  // steps whose loads are in flight together

// 8 codes of one word dotted with 8 values of x; the block's power of two applied to the
// partial (exact: a sum of 8 one-bit-mantissa products times 2^k only rounds in the sum).
__device__ __forceinline__ float word_dot(uint32_t v, uint32_t scale, float4 a, float4 b,
                                          const float* lut) {
  float part = lut[v & 0xF] * a.x + lut[(v >> 4) & 0xF] * a.y;
  part += lut[(v >> 8) & 0xF] * a.z + lut[(v >> 12) & 0xF] * a.w;
  part += lut[(v >> 16) & 0xF] * b.x + lut[(v >> 20) & 0xF] * b.y;
  part += lut[(v >> 24) & 0xF] * b.z + lut[(v >> 28) & 0xF] * b.w;
  return part * e8m0(scale);
}

// acc[r] += (row r of an MXFP4 matrix) . x over all block columns, for R consecutive rows
// starting at `row`; lanes hold partial sums (reduce with warp_sum).
template <int R>
__device__ __forceinline__ void rows_dot(const uint8_t* blocks, const uint8_t* scales, int64_t row,
                                         int groups, const float* x, int lane, const float* lut,
                                         float* acc) {
  const uint32_t* words = reinterpret_cast<const uint32_t*>(blocks);
  const int sub = lane % 4, col = lane / 4;
  for (int g0 = 0; g0 < groups; g0 += kCols * kUnroll) {
    uint32_t c[kUnroll][R], s[kUnroll][R];
    float4 xa[kUnroll], xb[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int g = g0 + u * kCols + col;
      const bool ok = g < groups;
#pragma unroll
      for (int r = 0; r < R; ++r) {
        c[u][r] = ok ? __ldg(words + ((row + r) * groups + g) * 4 + sub) : 0u;
        s[u][r] = ok ? __ldg(scales + (row + r) * groups + g) : 127u;
      }
      const float4* xp = reinterpret_cast<const float4*>(x + 32 * g + 8 * sub);
      xa[u] = ok ? __ldg(xp) : make_float4(0, 0, 0, 0);
      xb[u] = ok ? __ldg(xp + 1) : make_float4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int r = 0; r < R; ++r) acc[r] += word_dot(c[u][r], s[u][r], xa[u], xb[u], lut);
  }
}

// Grid (I / (kWarps * kJ), n * k): a warp computes kJ consecutive j of one chosen slot, i.e.
// the 2 kJ interleaved gate/up rows 2j .. 2j + 2kJ - 1, contiguous in memory, sharing x.
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
    const int64_t r0 = static_cast<int64_t>(slot.expert) * 2 * w.I + 2 * j0;
    float acc[2 * kJ] = {};
    rows_dot<2 * kJ>(w.gate_up_blocks, w.gate_up_scales, r0, w.D / 32,
                     xn + static_cast<int64_t>(t) * w.D, lane, lut, acc);
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
                const float* __restrict__ weight, const vex_slot* __restrict__ slots, MoeWeights w,
                int k, int layer, TriggerBuffer triggers, float* __restrict__ x) {
  __shared__ float lut[16];
  __shared__ float part[kSlotsPerPass][kRows];
  fill_lut(lut);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, t = blockIdx.y;
  const int d0 = blockIdx.x * kRows, q = warp / 2, r0 = (warp % 2) * kRowsPerWarp;
  float total = 0;                                 // thread r < kRows: row d0 + r
  for (int j0 = 0; j0 < k; j0 += kSlotsPerPass) {  // gpt-oss: k = 4, one pass
    const int j = j0 + q, tj = t * k + j;
    float acc[kRowsPerWarp] = {};
    bool neural = false;
    int64_t row = 0;
    if (j < k) {
      const vex_slot slot = slots[idx[tj]];
      neural = slot.kind == VEX_SLOT_NEURAL && d0 + r0 + kRowsPerWarp <= w.D;
      row = static_cast<int64_t>(slot.expert) * w.D + d0 + r0;
      if (slot.kind == VEX_SLOT_HOST && blockIdx.x == 0 && warp % 2 == 0 && lane == 0 &&
          triggers.records) {
        const int at = atomicAdd(triggers.count, 1);
        if (at < triggers.capacity) triggers.records[at] = {t, layer, idx[tj], weight[tj]};
      }
    }
    if (neural)
      rows_dot<kRowsPerWarp>(w.down_blocks, w.down_scales, row, w.I / 32,
                             h + static_cast<int64_t>(tj) * w.I, lane, lut, acc);
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const float dot = warp_sum(acc[r]);
      if (lane == 0)
        part[q][r0 + r] = neural ? weight[tj] * (dot + bf16(w.down_bias[row + r])) : 0.0f;
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
  if (w.D % kRows != 0 || w.I % 32 != 0) return cudaErrorInvalidValue;
  down_kernel<<<dim3((w.D + kRows - 1) / kRows, n), kWarps * 32, 0, stream>>>(
      h, idx, weight, slots, w, k, layer, triggers, x);
  return cudaGetLastError();
}

}  // namespace vex::cuda
