#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm.cuh"
#include "kernels/cuda/moe.cuh"
#include "kernels/cuda/moe_prefill.cuh"
#include "kernels/cuda/virtual_slots.cuh"

namespace vex::cuda {
namespace {

constexpr int kWarps = 8;

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

// The 8 codes of one word, decoded (unit scale).
__device__ __forceinline__ void decode8(uint32_t v, const float* lut, float* w) {
#pragma unroll
  for (int e = 0; e < 8; ++e) w[e] = lut[(v >> (4 * e)) & 0xF];
}

// 8 decoded codes dotted with 8 values of x, times the block's power of two (exact: a sum of 8
// one-bit-mantissa products times 2^k only rounds in the sum). Both MoE paths use this one
// expression, so the decode and the grouped prefill kernels agree bit for bit.
__device__ __forceinline__ float dot8(const float* w, float4 a, float4 b, uint32_t scale) {
  float part = w[0] * a.x + w[1] * a.y;
  part += w[2] * a.z + w[3] * a.w;
  part += w[4] * b.x + w[5] * b.y;
  part += w[6] * b.z + w[7] * b.w;
  return part * e8m0(scale);
}

__device__ __forceinline__ float word_dot(uint32_t v, uint32_t scale, float4 a, float4 b,
                                          const float* lut) {
  float w[8];
  decode8(v, lut, w);
  return dot8(w, a, b, scale);
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
// the 2 kJ interleaved gate/up rows 2j .. 2j + 2kJ - 1, contiguous in memory, sharing x. A
// DEVICE slot's arguments take the first warp of the slot's first block. kVirtual: compiled
// with the virtual slots' paths, launched for layers that have such slots (the others run the
// neural-only instantiation: not one instruction more in their loops).
constexpr int kJ = 2;
template <bool kVirtual>
__global__ void __launch_bounds__(kWarps * 32)
    gate_up_kernel(const float* __restrict__ xn, const int* __restrict__ idx,
                   const vex_slot* __restrict__ slots, MoeWeights w, VirtualSlots virt, int k,
                   float limit, float* __restrict__ h) {
  pdl_prologue();
  __shared__ float lut[16];
  fill_lut(lut);
  const int j0 = (blockIdx.x * kWarps + threadIdx.x / 32) * kJ, lane = threadIdx.x % 32;
  const int tj = blockIdx.y, t = tj / k;  // tj = t * k + chosen index
  if (j0 >= w.I) return;
  const vex_slot slot = slots[idx[tj]];
  const float* x = xn + static_cast<int64_t>(t) * w.D;
  if (slot.kind != VEX_SLOT_NEURAL) {
    if constexpr (kVirtual)
      if (slot.kind == VEX_SLOT_DEVICE && j0 == 0) device_slot_args(slot, virt, x, w.D, tj, lane);
    return;
  }
  const int64_t r0 = static_cast<int64_t>(slot.expert) * 2 * w.I + 2 * j0;
  float acc[2 * kJ] = {}, out[kJ];
  rows_dot<2 * kJ>(w.gate_up_blocks, w.gate_up_scales, r0, w.D / 32, x, lane, lut, acc);
#pragma unroll
  for (int q = 0; q < kJ; ++q) {
    const float gate = warp_sum(acc[2 * q]) + bf16(w.gate_up_bias[r0 + 2 * q]);
    const float up = warp_sum(acc[2 * q + 1]) + bf16(w.gate_up_bias[r0 + 2 * q + 1]);
    out[q] = swiglu(gate, up, limit);
  }
  if (lane == 0)
#pragma unroll
    for (int q = 0; q < kJ; ++q)
      if (j0 + q < w.I) h[static_cast<int64_t>(tj) * w.I + j0 + q] = out[q];
}

// Grid (D / kRows, n): a block computes kRows = 8 output rows of token t. Warp w takes chosen
// slot w / 2 (of at most 4 per pass) and rows 4 (w % 2) .. +3 of the block's 8: contiguous rows
// of one expert, sharing the h loads. The per-slot partial sums meet in shared memory and are
// added in slot order by one thread per row: deterministic, no atomics. A virtual slot's warps
// write its rows instead (DEVICE) or nothing (HOST, whose trigger the first block records).
constexpr int kRows = 8, kSlotsPerPass = 4, kRowsPerWarp = 4;
template <bool kVirtual>
__global__ void __launch_bounds__(kWarps * 32)
    down_kernel(const float* __restrict__ h, const int* __restrict__ idx,
                const float* __restrict__ weight, const vex_slot* __restrict__ slots, MoeWeights w,
                VirtualSlots virt, int k, float* __restrict__ x) {
  pdl_prologue();
  __shared__ float lut[16];
  __shared__ float part[kSlotsPerPass][kRows];
  fill_lut(lut);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, t = blockIdx.y;
  const int d0 = blockIdx.x * kRows, q = warp / 2, r0 = (warp % 2) * kRowsPerWarp;
  float total = 0;                                 // thread r < kRows: row d0 + r
  for (int j0 = 0; j0 < k; j0 += kSlotsPerPass) {  // gpt-oss: k = 4, one pass
    const int j = j0 + q, tj = t * k + j;
    float acc[kRowsPerWarp] = {};
    vex_slot slot{VEX_SLOT_PRUNED, 0, 0, 0};  // past k: adds nothing
    int64_t row = 0;
    if (j < k) {
      slot = slots[idx[tj]];
      row = static_cast<int64_t>(slot.expert) * w.D + d0 + r0;
      if constexpr (kVirtual)
        if (blockIdx.x == 0 && r0 == 0 && lane == 0)
          host_slot_trigger(slot, virt, idx[tj], t, weight[tj]);
    }
    const bool neural = slot.kind == VEX_SLOT_NEURAL;
    if (neural)
      rows_dot<kRowsPerWarp>(w.down_blocks, w.down_scales, row, w.I / 32,
                             h + static_cast<int64_t>(tj) * w.I, lane, lut, acc);
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const float dot = warp_sum(acc[r]);
      if (lane != 0) continue;
      float out = 0.0f;
      if (neural)
        out = weight[tj] * (dot + bf16(w.down_bias[row + r]));
      else if constexpr (kVirtual)
        out = virtual_slot_row(slot, virt, tj, weight[tj], d0 + r0 + r);
      part[q][r0 + r] = out;
    }
    __syncthreads();
    if (threadIdx.x < kRows)
      for (int qq = 0; qq < kSlotsPerPass; ++qq) total += part[qq][threadIdx.x];
    __syncthreads();
  }
  if (threadIdx.x < kRows) x[static_cast<int64_t>(t) * w.D + d0 + threadIdx.x] += total;
}

// ---- Prefill: expert-major ("grouped") kernels. A chunk's (token, slot) pairs are listed per
// slot (moe_plan); a block then owns some rows of one expert and runs every token routed to it,
// so each weight word is loaded and decoded once per chunk instead of once per token.

// Lists, for every slot e, the pairs tj = t * k + j with idx[tj] == e, in increasing tj:
// offset[e] .. offset[e + 1] in list. One block; thread e scans the pairs for its slot.
__global__ void plan_kernel(const int* __restrict__ idx, int nk, int E, int* __restrict__ offset,
                            int* __restrict__ list) {
  pdl_prologue();
  __shared__ int count[1024];
  const int e = threadIdx.x;
  int c = 0;
  if (e < E)
    for (int tj = 0; tj < nk; ++tj) c += idx[tj] == e;
  count[e] = c;
  __syncthreads();
  if (e == 0) {
    int sum = 0;
    for (int i = 0; i < E; ++i) offset[i] = sum, sum += count[i];
    offset[E] = sum;
  }
  __syncthreads();
  if (e < E) {
    int at = offset[e];
    for (int tj = 0; tj < nk && at < offset[e] + c; ++tj)
      if (idx[tj] == e) list[at++] = tj;
  }
}

constexpr int kTok = 8;  // tokens per pass over a row block: accumulators kept in registers

// acc[r][q] += (row r) . x_q for R consecutive rows and up to kTok tokens (x rows xs[q]),
// lane layout and arithmetic exactly as rows_dot, each weight word decoded once for all tokens.
template <int R>
__device__ __forceinline__ void rows_dot_tokens(const uint8_t* blocks, const uint8_t* scales,
                                                int64_t row, int groups, const float* const* xs,
                                                int ntok, int lane, const float* lut,
                                                float (*acc)[kTok]) {
  const uint32_t* words = reinterpret_cast<const uint32_t*>(blocks);
  const int sub = lane % 4, col = lane / 4;
  for (int g0 = 0; g0 < groups; g0 += kCols) {
    const int g = g0 + col;
    if (g >= groups) continue;
    float w[R][8];
    uint32_t sc[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      decode8(__ldg(words + ((row + r) * groups + g) * 4 + sub), lut, w[r]);
      sc[r] = __ldg(scales + (row + r) * groups + g);
    }
#pragma unroll
    for (int q = 0; q < kTok; ++q) {
      if (q >= ntok) break;
      const float4* xp = reinterpret_cast<const float4*>(xs[q] + 32 * g + 8 * sub);
      const float4 a = __ldg(xp), b = __ldg(xp + 1);
#pragma unroll
      for (int r = 0; r < R; ++r) acc[r][q] += dot8(w[r], a, b, sc[r]);
    }
  }
}

// Grid (I / (kWarps * kJ), E): rows 2j .. of slot e's expert for all its tokens; a virtual
// slot's arguments in its first block.
__global__ void __launch_bounds__(kWarps * 32)
    gate_up_grouped_kernel(const float* __restrict__ xn, const vex_slot* __restrict__ slots,
                           const int* __restrict__ offset, const int* __restrict__ list,
                           MoeWeights w, VirtualSlots virt, int k, float limit,
                           float* __restrict__ h) {
  pdl_prologue();
  __shared__ float lut[16];
  fill_lut(lut);
  const int e = blockIdx.y, begin = offset[e], end = offset[e + 1];
  const vex_slot slot = slots[e];
  if (slot.kind != VEX_SLOT_NEURAL) {
    if (blockIdx.x == 0) device_slot_args_grouped(slot, virt, xn, w.D, list, begin, end, k);
    return;
  }
  const int j0 = (blockIdx.x * kWarps + threadIdx.x / 32) * kJ, lane = threadIdx.x % 32;
  if (j0 >= w.I || begin == end) return;
  const int64_t r0 = static_cast<int64_t>(slot.expert) * 2 * w.I + 2 * j0;
  for (int i0 = begin; i0 < end; i0 += kTok) {
    const int ntok = min(kTok, end - i0);
    const float* xs[kTok];
    for (int q = 0; q < kTok; ++q)
      xs[q] = xn + static_cast<int64_t>(list[i0 + min(q, ntok - 1)] / k) * w.D;
    float acc[2 * kJ][kTok] = {};
    rows_dot_tokens<2 * kJ>(w.gate_up_blocks, w.gate_up_scales, r0, w.D / 32, xs, ntok, lane, lut,
                            acc);
    for (int q = 0; q < ntok; ++q) {
#pragma unroll
      for (int p = 0; p < kJ; ++p) {
        const float gate = warp_sum(acc[2 * p][q]) + bf16(w.gate_up_bias[r0 + 2 * p]);
        const float up = warp_sum(acc[2 * p + 1][q]) + bf16(w.gate_up_bias[r0 + 2 * p + 1]);
        const float out = swiglu(gate, up, limit);
        if (lane == 0 && j0 + p < w.I) h[static_cast<int64_t>(list[i0 + q]) * w.I + j0 + p] = out;
      }
    }
  }
}

// Grid (D / (kWarps * kRowsPerWarp), E): y[tj, d] = weight[tj] * (W2 h[tj] + b2)[d] for the
// pairs routed to slot e; a virtual slot's rows (virtual_slots.cuh) for a slot that is not neural.
__global__ void __launch_bounds__(kWarps * 32)
    down_grouped_kernel(const float* __restrict__ h, const float* __restrict__ weight,
                        const vex_slot* __restrict__ slots, const int* __restrict__ offset,
                        const int* __restrict__ list, MoeWeights w, VirtualSlots virt, int k,
                        float* __restrict__ y) {
  pdl_prologue();
  __shared__ float lut[16];
  fill_lut(lut);
  const int e = blockIdx.y, begin = offset[e], end = offset[e + 1];
  const vex_slot slot = slots[e];
  constexpr int kBlockRows = kWarps * kRowsPerWarp;
  if (slot.kind != VEX_SLOT_NEURAL) {
    virtual_slot_rows_grouped(slot, virt, e, list, begin, end, k, weight, blockIdx.x * kBlockRows,
                              kBlockRows, w.D, y);
    return;
  }
  const int d0 = (blockIdx.x * kWarps + threadIdx.x / 32) * kRowsPerWarp, lane = threadIdx.x % 32;
  if (d0 >= w.D || begin == end) return;
  const int64_t row = static_cast<int64_t>(slot.expert) * w.D + d0;
  for (int i0 = begin; i0 < end; i0 += kTok) {
    const int ntok = min(kTok, end - i0);
    const float* xs[kTok];
    for (int q = 0; q < kTok; ++q)
      xs[q] = h + static_cast<int64_t>(list[i0 + min(q, ntok - 1)]) * w.I;
    float acc[kRowsPerWarp][kTok] = {};
    rows_dot_tokens<kRowsPerWarp>(w.down_blocks, w.down_scales, row, w.I / 32, xs, ntok, lane, lut,
                                  acc);
    for (int q = 0; q < ntok; ++q) {
      const int tj = list[i0 + q];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        const float dot = warp_sum(acc[r][q]);
        if (lane == 0)
          y[static_cast<int64_t>(tj) * w.D + d0 + r] =
              weight[tj] * (dot + bf16(w.down_bias[row + r]));
      }
    }
  }
}

// x[t, d] += sum over j of y[t * k + j, d], in slot order from 0 (the decode kernel's order).
__global__ void combine_kernel(const float* __restrict__ y, int D, int k, float* __restrict__ x) {
  pdl_prologue();
  const int t = blockIdx.x;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float total = 0;
    for (int j = 0; j < k; ++j) total += y[(static_cast<int64_t>(t) * k + j) * D + d];
    x[static_cast<int64_t>(t) * D + d] += total;
  }
}

}  // namespace

cudaError_t moe_gate_up(const float* xn, const int* idx, const vex_slot* slots, const MoeWeights& w,
                        const VirtualSlots& virt, int n, int k, float limit, float* h,
                        cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (w.D % 32 != 0 || w.I % 32 != 0) return cudaErrorInvalidValue;
  constexpr int per_block = kWarps * kJ;
  const dim3 grid((w.I + per_block - 1) / per_block, n * k);
  if (virt.empty())
    launch_pdl(gate_up_kernel<false>, grid, kWarps * 32, 0, stream,
        xn, idx, slots, w, virt, k, limit, h);
  else
    launch_pdl(gate_up_kernel<true>, grid, kWarps * 32, 0, stream,
        xn, idx, slots, w, virt, k, limit, h);
  return cudaGetLastError();
}

cudaError_t moe_down(const float* h, const int* idx, const float* weight, const vex_slot* slots,
                     const MoeWeights& w, const VirtualSlots& virt, int n, int k, float* x,
                     cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (w.D % kRows != 0 || w.I % 32 != 0) return cudaErrorInvalidValue;
  const dim3 grid(w.D / kRows, n);
  if (virt.empty())
    launch_pdl(down_kernel<false>, grid, kWarps * 32, 0, stream,
        h, idx, weight, slots, w, virt, k, x);
  else
    launch_pdl(down_kernel<true>, grid, kWarps * 32, 0, stream,
        h, idx, weight, slots, w, virt, k, x);
  return cudaGetLastError();
}

}  // namespace vex::cuda

namespace vex::cuda {

cudaError_t moe_grouped(const float* xn, const int* idx, const float* weight, const vex_slot* slots,
                        const MoeWeights& w, const VirtualSlots& virt, int n, int k, int E,
                        float limit, MoeScratch scratch, float* x, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (n * k > scratch.capacity || E > 1024 || w.D % (kWarps * kRowsPerWarp) != 0 || w.I % 32 != 0)
    return cudaErrorInvalidValue;
  launch_pdl(plan_kernel, 1, 1024, 0, stream, idx, n * k, E, scratch.offset, scratch.list);
  if (scratch.xb && scratch.hb) {
    cudaError_t err = to_bf16(xn, scratch.xb, int64_t(n) * w.D, stream);
    if (err == cudaSuccess)
      err = moe_gate_up_mma(xn, scratch.xb, slots, scratch.offset, scratch.list, w, virt, E, k,
                            limit, scratch.hb, n * k, stream);
    if (err == cudaSuccess)
      err = moe_down_mma(scratch.hb, weight, slots, scratch.offset, scratch.list, w, virt, E, k,
                         scratch.y, n * k, stream);
    if (err != cudaSuccess) return err;
    launch_pdl(combine_kernel, n, 256, 0, stream, scratch.y, w.D, k, x);
    return cudaGetLastError();
  }
  constexpr int per_block = kWarps * kJ;
  launch_pdl(gate_up_grouped_kernel, dim3((w.I + per_block - 1) / per_block, E), kWarps * 32, 0,
             stream, xn, slots, scratch.offset, scratch.list, w, virt, k, limit, scratch.h);
  launch_pdl(down_grouped_kernel, dim3(w.D / (kWarps * kRowsPerWarp), E), kWarps * 32, 0, stream,
      scratch.h, weight, slots, scratch.offset, scratch.list, w, virt, k, scratch.y);
  launch_pdl(combine_kernel, n, 256, 0, stream, scratch.y, w.D, k, x);
  return cudaGetLastError();
}

}  // namespace vex::cuda
