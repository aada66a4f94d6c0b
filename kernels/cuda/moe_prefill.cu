#include "kernels/cuda/common.cuh"
#include "kernels/cuda/moe_prefill.cuh"
#include "kernels/cuda/virtual_slots.cuh"

#include <cuda_bf16.h>

namespace vex::cuda {
namespace {

constexpr int kWarps = 4;          // a block: 4 warps x 16 rows = 64 weight rows
constexpr int kRowsPerBlock = 64;  // ... times 16 tokens (two n8 tiles) per pass
constexpr int kTokens = 16;

// Byte of two E2M1 codes -> two bf16 (low nibble = even element = low half), unit scale.
__device__ void fill_lut8(uint32_t* lut) {
  for (int v = threadIdx.x; v < 256; v += blockDim.x) {
    const uint32_t lo = __float_as_uint(e2m1(v & 0xF)) >> 16;
    const uint32_t hi = __float_as_uint(e2m1(v >> 4)) >> 16;
    lut[v] = (hi << 16) | lo;  // e2m1 values are exact in bf16 (1 mantissa bit)
  }
  __syncthreads();
}

// bf16x2 times an E8M0 power of two, exact (a 1-bit mantissa times 2^k).
__device__ __forceinline__ uint32_t scale2(uint32_t v, uint32_t s) {
  const uint32_t p = s ? (s << 7) : 0x0040u;  // 2^(s-127) as bf16 bits
  const __nv_bfloat162 r =
      __hmul2(*reinterpret_cast<const __nv_bfloat162*>(&v),
              __halves2bfloat162(__ushort_as_bfloat16(p), __ushort_as_bfloat16(p)));
  return *reinterpret_cast<const uint32_t*>(&r);
}

// C[16 rows of this warp][16 tokens] = W[rows] . X[tokens]^T over K, for rows `row` (this
// warp's first) of an MXFP4 matrix with K/32 blocks per row, and token rows xrow[0..1] per
// n8 tile (this lane's column g of each tile). acc[tile][4] in the C layout of m16n8k16.
//
// The k order inside an MMA is free as long as A and B agree, so each lane takes 16 contiguous
// k of every 64: its 8 code bytes (one 8-byte load per row; the 4 lanes of a row read 32
// contiguous bytes), one scale, and its tokens' 16 bf16 (two 16-byte loads per token row).
// Step s of 4 pairs the lane's bytes 2s, 2s+1 with x words 2s, 2s+1. Loads for the next 64 k
// are issued before the current ones are used.
__device__ __forceinline__ void warp_tile(const uint8_t* blocks, const uint8_t* scales, int64_t row,
                                          int K, const uint16_t* const* xrow, const uint32_t* lut,
                                          float (*acc)[4]) {
  const int lane = threadIdx.x % 32, g = lane / 4, c = lane % 4, groups = K / 32;
  const uint2* ca = reinterpret_cast<const uint2*>(blocks + (row + g) * groups * 16) + c;
  const uint2* cb = reinterpret_cast<const uint2*>(blocks + (row + g + 8) * groups * 16) + c;
  const uint8_t* sa = scales + (row + g) * groups + c / 2;
  const uint8_t* sb = scales + (row + g + 8) * groups + c / 2;
  const uint4* x0 = reinterpret_cast<const uint4*>(xrow[0]) + 2 * c;
  const uint4* x1 = reinterpret_cast<const uint4*>(xrow[1]) + 2 * c;
  // One 64-k step: 4 uint2 code words per row pair, per 64 k the pointers advance by 4 uint2
  // (32 bytes of codes), 2 scales, and 8 uint4 of x (64 bf16).
  uint2 qa = __ldg(ca), qb = __ldg(cb);
  uint32_t ska = __ldg(sa), skb = __ldg(sb);
  uint4 xa[2] = {__ldg(x0), __ldg(x0 + 1)}, xb[2] = {__ldg(x1), __ldg(x1 + 1)};
  for (int s64 = 0; s64 < K / 64; ++s64) {
    const uint2 cqa = qa, cqb = qb;
    const uint32_t cska = ska, cskb = skb;
    const uint4 cxa[2] = {xa[0], xa[1]}, cxb[2] = {xb[0], xb[1]};
    if (s64 + 1 < K / 64) {
      const int o = (s64 + 1) * 4;
      qa = __ldg(ca + o), qb = __ldg(cb + o);
      ska = __ldg(sa + 2 * (s64 + 1)), skb = __ldg(sb + 2 * (s64 + 1));
      xa[0] = __ldg(x0 + 8 * (s64 + 1)), xa[1] = __ldg(x0 + 8 * (s64 + 1) + 1);
      xb[0] = __ldg(x1 + 8 * (s64 + 1)), xb[1] = __ldg(x1 + 8 * (s64 + 1) + 1);
    }
    const uint32_t wa[2] = {cqa.x, cqa.y}, wb[2] = {cqb.x, cqb.y};
    const uint32_t* ta = reinterpret_cast<const uint32_t*>(cxa);
    const uint32_t* tb = reinterpret_cast<const uint32_t*>(cxb);
#pragma unroll
    for (int step = 0; step < 4; ++step) {
      const int j0 = 2 * step, j1 = 2 * step + 1;  // the lane's code bytes of this step
      uint32_t a[4];
      a[0] = scale2(lut[(wa[j0 / 4] >> (8 * (j0 % 4))) & 0xFF], cska);  // row g
      a[1] = scale2(lut[(wb[j0 / 4] >> (8 * (j0 % 4))) & 0xFF], cskb);  // row g + 8
      a[2] = scale2(lut[(wa[j1 / 4] >> (8 * (j1 % 4))) & 0xFF], cska);
      a[3] = scale2(lut[(wb[j1 / 4] >> (8 * (j1 % 4))) & 0xFF], cskb);
      const uint32_t b0[2] = {ta[j0], ta[j1]}, b1[2] = {tb[j0], tb[j1]};
      mma_bf16(acc[0], a, b0);
      mma_bf16(acc[1], a, b1);
    }
  }
}

// Grid (2I / 64, E): 64 gate/up rows of slot e's expert against its tokens, 16 at a time; a
// virtual slot's arguments (from the fp32 xn) in its first block.
__global__ void __launch_bounds__(kWarps * 32)
    gate_up_mma_kernel(const float* __restrict__ xn, const uint16_t* __restrict__ xb,
                       const vex_slot* __restrict__ slots, const int* __restrict__ offset,
                       const int* __restrict__ list, MoeWeights w, VirtualSlots virt, int k,
                       float limit, uint16_t* __restrict__ hb) {
  pdl_prologue();
  __shared__ uint32_t lut[256];
  fill_lut8(lut);
  const int e = blockIdx.y, begin = offset[e], end = offset[e + 1];
  const vex_slot slot = slots[e];
  if (slot.kind != VEX_SLOT_NEURAL) {
    if (blockIdx.x == 0) device_slot_args_grouped(slot, virt, xn, w.D, list, begin, end, k);
    return;
  }
  if (begin == end) return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
  const int r_local = blockIdx.x * kRowsPerBlock + warp * 16;  // row within the expert
  const int64_t row = static_cast<int64_t>(slot.expert) * 2 * w.I + r_local;
  for (int i0 = begin; i0 < end; i0 += kTokens) {
    const uint16_t* xrow[2];
    for (int tile = 0; tile < 2; ++tile)
      xrow[tile] = xb + static_cast<int64_t>(list[min(i0 + tile * 8 + g, end - 1)] / k) * w.D;
    float acc[2][4] = {};
    warp_tile(w.gate_up_blocks, w.gate_up_scales, row, w.D, xrow, lut, acc);
    // Rows g (even: gate) and g + 1 (up) sit in lanes 4g + c and 4(g+1) + c: pair them.
#pragma unroll
    for (int tile = 0; tile < 2; ++tile)
#pragma unroll
      for (int v = 0; v < 4; ++v) {
        const float up = __shfl_down_sync(0xffffffffu, acc[tile][v], 4);
        if (g % 2) continue;
        const int r = r_local + g + (v >= 2 ? 8 : 0);   // gate row (even)
        const int i = i0 + tile * 8 + 2 * c + (v % 2);  // pair index in the list
        if (i >= end) continue;
        const int64_t br = static_cast<int64_t>(slot.expert) * 2 * w.I + r;
        const float out = swiglu(acc[tile][v] + bf16(w.gate_up_bias[br]),
                                 up + bf16(w.gate_up_bias[br + 1]), limit);
        hb[static_cast<int64_t>(list[i]) * w.I + r / 2] = to_bf16(out);
      }
  }
}

// Grid (D / 64, E): 64 down rows of slot e's expert against its pairs' hb, 16 at a time; a
// virtual slot's rows (virtual_slots.cuh) for a slot that is not neural.
__global__ void __launch_bounds__(kWarps * 32)
    down_mma_kernel(const uint16_t* __restrict__ hb, const float* __restrict__ weight,
                    const vex_slot* __restrict__ slots, const int* __restrict__ offset,
                    const int* __restrict__ list, MoeWeights w, VirtualSlots virt, int k,
                    float* __restrict__ y) {
  pdl_prologue();
  __shared__ uint32_t lut[256];
  fill_lut8(lut);
  const int e = blockIdx.y, begin = offset[e], end = offset[e + 1];
  const vex_slot slot = slots[e];
  if (slot.kind != VEX_SLOT_NEURAL) {
    virtual_slot_rows_grouped(slot, virt, e, list, begin, end, k, weight,
                              blockIdx.x * kRowsPerBlock, kRowsPerBlock, w.D, y);
    return;
  }
  if (begin == end) return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
  const int d_local = blockIdx.x * kRowsPerBlock + warp * 16;
  const int64_t row = static_cast<int64_t>(slot.expert) * w.D + d_local;
  for (int i0 = begin; i0 < end; i0 += kTokens) {
    const uint16_t* xrow[2];
    for (int tile = 0; tile < 2; ++tile)
      xrow[tile] = hb + static_cast<int64_t>(list[min(i0 + tile * 8 + g, end - 1)]) * w.I;
    float acc[2][4] = {};
    warp_tile(w.down_blocks, w.down_scales, row, w.I, xrow, lut, acc);
#pragma unroll
    for (int tile = 0; tile < 2; ++tile)
#pragma unroll
      for (int v = 0; v < 4; ++v) {
        const int d = d_local + g + (v >= 2 ? 8 : 0);
        const int i = i0 + tile * 8 + 2 * c + (v % 2);
        if (i >= end) continue;
        const int tj = list[i];
        y[static_cast<int64_t>(tj) * w.D + d] =
            weight[tj] * (acc[tile][v] + bf16(w.down_bias[row - d_local + d]));
      }
  }
}

}  // namespace

cudaError_t moe_gate_up_mma(const float* xn, const uint16_t* xb, const vex_slot* slots,
                            const int* offset, const int* list, const MoeWeights& w,
                            const VirtualSlots& virt, int E, int k, float limit, uint16_t* hb,
                            cudaStream_t stream) {
  if (w.D % 64 || (2 * w.I) % kRowsPerBlock) return cudaErrorInvalidValue;
  launch_pdl(gate_up_mma_kernel, dim3(2 * w.I / kRowsPerBlock, E), kWarps * 32, 0, stream,
      xn, xb, slots, offset, list, w, virt, k, limit, hb);
  return cudaGetLastError();
}

cudaError_t moe_down_mma(const uint16_t* hb, const float* weight, const vex_slot* slots,
                         const int* offset, const int* list, const MoeWeights& w,
                         const VirtualSlots& virt, int E, int k, float* y, cudaStream_t stream) {
  if (w.I % 64 || w.D % kRowsPerBlock) return cudaErrorInvalidValue;
  launch_pdl(down_mma_kernel, dim3(w.D / kRowsPerBlock, E), kWarps * 32, 0, stream,
      hb, weight, slots, offset, list, w, virt, k, y);
  return cudaGetLastError();
}

}  // namespace vex::cuda
