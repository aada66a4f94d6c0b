#include <cuda_bf16.h>

#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm.cuh"
#include "kernels/cuda/moe.cuh"
#include "kernels/cuda/moe_prefill.cuh"
#include "kernels/cuda/split.cuh"
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

// ---- Decode on tensor cores. A warp multiplies an m16 tile of an expert's rows by one token's
// vector in split form (split.cuh): m16n8k16 MMAs whose B columns 0..2 are the vector's three
// bf16 terms, so the three columns of C sum to the fp32 product. The E2M1 codes become bf16
// with three integer instructions per pair and one bf16 multiply by the block's scale, about
// half the instructions of the table lookups above, and each lane keeps kDepth steps of codes
// in flight.

constexpr int kTcWarps = 8;  // warps per block, both kernels
constexpr int kTcTiles = 4;  // gate-up: m16 tiles per block (each by two warps, halves of K)

// The four bf16x2 pairs of a word of eight E2M1 codes n0..n7 (n_i at bits 4i): pair p holds
// n_p (low half) and n_(p+4) (high half), each as sign << 15 | magnitude << 6, which is the
// code's value times 2^-126 (the magnitude's two exponent bits and one mantissa bit fall on
// bf16's lowest exponent bits and top mantissa bit; 0.5 becomes the subnormal 2^-127). One
// multiply by 0x1040 (0x104 for the upper nibble of a byte) places a nibble's magnitude at
// bits 6-8 and its sign at bit 15 at once; the mask keeps those.
__device__ __forceinline__ void decode_pairs(uint32_t w, uint32_t* out) {
  constexpr uint32_t kKeep = 0x81C081C0u;
  const uint32_t w2 = w >> 8;
  out[0] = ((w & 0x000F000Fu) * 0x1040u) & kKeep;
  out[1] = ((w & 0x00F000F0u) * 0x0104u) & kKeep;
  out[2] = ((w2 & 0x000F000Fu) * 0x1040u) & kKeep;
  out[3] = ((w2 & 0x00F000F0u) * 0x0104u) & kKeep;
}

__device__ __forceinline__ uint32_t hmul2(uint32_t a, uint32_t b) {
  const __nv_bfloat162 r = __hmul2(*reinterpret_cast<const __nv_bfloat162*>(&a),
                                   *reinterpret_cast<const __nv_bfloat162*>(&b));
  return *reinterpret_cast<const uint32_t*>(&r);
}

// Pairs from decode_pairs times their block's E8M0 scale: value * 2^(s-127), exact (a power of
// two times a 2-bit significand). kOne: one multiply by f = 2^(s-1), a bf16 for s <= 128;
// otherwise (weights above 12, which gpt-oss does not have) by 2^126, then by f = 2^(s-127).
// f = 0 for a block past the row's end (its ring slot holds stale codes: finite, adding 0).
template <bool kOne>
__device__ __forceinline__ uint32_t scale_factor(uint32_t s, bool ok) {
  return ok ? ((kOne ? s + 126 : s) << 7) * 0x10001u : 0u;
}
template <bool kOne>
__device__ __forceinline__ void scale_pairs(uint32_t* p, uint32_t f) {
#pragma unroll
  for (int i = 0; i < 4; ++i) p[i] = kOne ? hmul2(p[i], f) : hmul2(hmul2(p[i], 0x7E807E80u), f);
}

// The 8 MMAs of one block column (tile_dot): word q of the lane's block feeds two, pairs 0, 1
// into acc and pairs 2, 3 into acc2 (two chains in flight); f_lo, f_hi scale rows g, g + 8.
template <bool kOne, bool kHi>
__device__ __forceinline__ void block_mmas(const uint4& lo4, const uint4& hi4, uint32_t f_lo,
                                           uint32_t f_hi, const uint4* xb, float* acc,
                                           float* acc2) {
  const uint32_t lo[4] = {lo4.x, lo4.y, lo4.z, lo4.w}, hi[4] = {hi4.x, hi4.y, hi4.z, hi4.w};
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    uint32_t pl[4], ph[4] = {};  // !kHi: rows g + 8 are zero
    decode_pairs(lo[q], pl), scale_pairs<kOne>(pl, f_lo);
    if (kHi) decode_pairs(hi[q], ph), scale_pairs<kOne>(ph, f_hi);
    const uint32_t a0[4] = {pl[0], ph[0], pl[1], ph[1]}, b0[2] = {xb[q].x, xb[q].y};
    mma_bf16(acc, a0, b0);
    const uint32_t a1[4] = {pl[2], ph[2], pl[3], ph[3]}, b1[2] = {xb[q].z, xb[q].w};
    mma_bf16(acc2, a1, b1);
  }
}

// acc (the m16n8 C fragment) += rows row0 .. row0 + kRows - 1 (kRows 16, or 8: rows g + 8 of
// the MMA zero) of an MXFP4 matrix with nb blocks per row times the split vector xf, over the
// steps [s0, s1). In step s, lane (g = lane / 4, t = lane % 4) takes block 4 s + t of rows
// row0 + g and row0 + g + 8 (a row's four lanes read 64 contiguous bytes) and their scales. An
// MMA's k order only has to agree between A and B: word q of a lane's block feeds two MMAs, and
// the B words are the split layout's (b, q, p), which the lanes of columns 0..2 (lanes < 12)
// read; the other columns repeat lane 11's and are not read.
//
// Codes and B words travel by cp.async into the warp's ring (kDepth steps in shared memory,
// tile_ring_size), issued kDepth steps ahead, so the bytes in flight cost no registers and no
// load waits on the critical path; the scales (a register a step) kDepth steps ahead too. Each
// lane reads back only what it (or, for B, lane min(lane, 11)) copied.
template <int kRows>
__host__ __device__ constexpr int ring_step() {  // uint4 of one step: codes [kRows / 8][32 lanes], B [4][12 lanes]
  return kRows / 8 * 32 + 4 * 12;
}
template <int kRows, int kDepth>
__host__ __device__ constexpr int tile_ring_size() {
  return kDepth * ring_step<kRows>();
}
template <int kRows, int kDepth>
__device__ __forceinline__ void tile_dot(const uint8_t* blocks, const uint8_t* scales,
                                         int64_t row0, int nb, int s0, int s1,
                                         const uint32_t* xf, int lane, uint4* ring, float* acc) {
  constexpr bool kHi = kRows == 16;
  constexpr int kStep = ring_step<kRows>(), kB = kRows / 8 * 32;  // B's place in a step
  const int g = lane / 4, t = lane % 4, bl = min(lane, 11);
  float acc2[4] = {};
  const uint4* c_lo = reinterpret_cast<const uint4*>(blocks) + (row0 + g) * nb + t;
  const uint4* c_hi = c_lo + 8 * nb;
  const uint8_t* sc_lo = scales + (row0 + g) * nb + t;
  const uint8_t* sc_hi = sc_lo + 8 * nb;
  const uint4* bx = reinterpret_cast<const uint4*>(xf) + (g % kSplitTerms) * nb * 4;
  auto ok = [&](int s) { return s < s1 && 4 * s + t < nb; };
  auto issue = [&](int s, int slot) {
    uint4* at = ring + slot * kStep;
    if (ok(s)) {
      cp_async16(at + lane, c_lo + 4 * s);
      if (kHi) cp_async16(at + 32 + lane, c_hi + 4 * s);
    }
    // A block past the row's end gets the last block's B: finite, times its A of 0 (stale or
    // never written shared memory could hold a NaN).
    if (s < s1 && lane < 12) {
      const uint4* from = bx + 4 * min(4 * s + t, nb - 1);
#pragma unroll
      for (int q = 0; q < 4; ++q) cp_async16_ca(at + kB + q * 12 + lane, from + q);
    }
    cp_async_commit();  // one group per step, empty or not: wait_group counts steps
  };
  auto scales_of = [&](int s) {  // row g's in the low half, row g + 8's in the high
    return ok(s) ? uint32_t(__ldg(sc_lo + 4 * s)) | (kHi ? uint32_t(__ldg(sc_hi + 4 * s)) << 16
                                                         : 0u)
                 : 0u;
  };
  auto step = [&](auto one, int i, int slot, uint32_t sc) {
    constexpr bool kOne = decltype(one)::value;
    const uint4* at = ring + slot * kStep;
    const bool on = ok(i);
    const uint4 lo = at[lane], hi = kHi ? at[32 + lane] : make_uint4(0, 0, 0, 0);
    uint4 xb[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) xb[q] = at[kB + q * 12 + bl];
    block_mmas<kOne, kHi>(lo, hi, scale_factor<kOne>(sc & 0xFFFF, on),
                          scale_factor<kOne>(sc >> 16, on), xb, acc, acc2);
  };
  uint32_t sc[kDepth];
#pragma unroll
  for (int d = 0; d < kDepth; ++d) issue(s0 + d, d), sc[d] = scales_of(s0 + d);
  for (int s = s0; s < s1; s += kDepth) {
#pragma unroll
    for (int d = 0; d < kDepth; ++d) {
      const int i = s + d;
      if (i >= s1) break;
      cp_async_wait<kDepth - 1>();  // step i's codes and B are in (lanes < 12 copied B:
      __syncwarp();                 // their writes made visible to the warp)
      const uint32_t now = sc[d];
      sc[d] = scales_of(i + kDepth);
      // One branch per step, the same for the whole warp: any scale above 128?
      if (__all_sync(0xffffffffu, __vcmpgtu4(now, 0x00800080u) == 0))
        step(std::true_type{}, i, d, now);
      else
        step(std::false_type{}, i, d, now);
      __syncwarp();          // every lane has read slot d (B is read across lanes)
      issue(i + kDepth, d);
    }
  }
  cp_async_wait<0>();  // nothing left in flight into the ring
  __syncwarp();
#pragma unroll
  for (int i = 0; i < 4; ++i) acc[i] += acc2[i];
}

// The steps of a row's nb blocks (four a step) that half `half` of the K split takes.
__device__ __forceinline__ void half_steps(int nb, int half, int& s0, int& s1) {
  const int steps = (nb + 3) / 4, mid = (steps + 1) / 2;
  s0 = half ? mid : 0, s1 = half ? steps : mid;
}

// The tile's row sums from tile_dot's C fragment: rows g (and g + 8) as lo + mid + hi (columns
// 2, 1, 0; column 2 sits in the next lane), written by the lanes with lane % 4 == 0 to the
// start of the warp's ring, which tile_dot has left idle. Read with tile_sum after a block
// barrier.
template <int kRows>
__device__ __forceinline__ void tile_rows(const float* acc, uint4* ring, int lane) {
  const float lo_g = __shfl_down_sync(0xffffffffu, acc[0], 1);
  const float lo_g8 = __shfl_down_sync(0xffffffffu, acc[2], 1);
  float* out = reinterpret_cast<float*>(ring);
  if (lane % 4 == 0) out[lane / 4] = (lo_g + acc[1]) + acc[0];
  if (kRows == 16 && lane % 4 == 0) out[lane / 4 + 8] = (lo_g8 + acc[3]) + acc[2];
}
__device__ __forceinline__ float tile_sum(const uint4* ring, int r) {
  return reinterpret_cast<const float*>(ring)[r];
}

// Grid (I / 32, n * k): a block computes 64 interleaved gate/up rows (32 j) of one chosen slot,
// warp w the m16 tile w % 4 over half w / 4 of K; the halves meet in shared memory, added in
// order, and the block's first 32 threads write h for their j in split form. A DEVICE slot's
// arguments take the first warp of the slot's first block (kVirtual as in gate_up_kernel).
constexpr int kGateUpDepth = 3, kDownDepth = 4, kDownRows = 8;
template <bool kVirtual>
__global__ void __launch_bounds__(kTcWarps * 32, 3)
    gate_up_tc_kernel(const float* __restrict__ xn, const uint32_t* __restrict__ xf,
                      const int* __restrict__ idx, const vex_slot* __restrict__ slots,
                      MoeWeights w, VirtualSlots virt, int k, float limit,
                      uint32_t* __restrict__ hf) {
  pdl_prologue();
  constexpr int kRing = tile_ring_size<16, kGateUpDepth>();
  __shared__ uint4 ring[kTcWarps * kRing];  // the warps' rings (tile_dot), then row sums
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, tj = blockIdx.y, t = tj / k;
  const vex_slot slot = slots[idx[tj]];
  if (slot.kind != VEX_SLOT_NEURAL) {
    if constexpr (kVirtual)
      if (slot.kind == VEX_SLOT_DEVICE && blockIdx.x == 0 && warp == 0)
        device_slot_args(slot, virt, xn + static_cast<int64_t>(t) * w.D, w.D, tj, lane);
    return;
  }
  const int tile = warp % kTcTiles, half = warp / kTcTiles;
  const int64_t e0 = static_cast<int64_t>(slot.expert) * 2 * w.I;
  int s0, s1;
  half_steps(w.D / 32, half, s0, s1);
  float acc[4] = {};
  tile_dot<16, kGateUpDepth>(w.gate_up_blocks, w.gate_up_scales,
                             e0 + (blockIdx.x * kTcTiles + tile) * 16, w.D / 32, s0, s1,
                             xf + static_cast<int64_t>(t) * split_words(w.D), lane,
                             ring + warp * kRing, acc);
  tile_rows<16>(acc, ring + warp * kRing, lane);
  __syncthreads();
  const int jl = threadIdx.x, j = blockIdx.x * kTcTiles * 8 + jl;
  if (jl >= kTcTiles * 8 || j >= w.I) return;
  // Row r of the block's 64 is row r % 16 of tile r / 16, whose halves are warps r / 16 and
  // r / 16 + kTcTiles.
  auto row = [&](int r) {
    return tile_sum(ring + r / 16 * kRing, r % 16) +
           tile_sum(ring + (r / 16 + kTcTiles) * kRing, r % 16);
  };
  const float gate = row(2 * jl) + bf16(w.gate_up_bias[e0 + 2 * j]);
  const float up = row(2 * jl + 1) + bf16(w.gate_up_bias[e0 + 2 * j + 1]);
  store_split(swiglu(gate, up, limit), j, w.I,
              reinterpret_cast<uint16_t*>(hf + static_cast<int64_t>(tj) * split_words(w.I)));
}

// Grid (D / 8, n): a block computes 8 output rows of token t (8-row tiles: twice the blocks of
// 16-row ones, which left SMs idle) over its chosen slots, four per pass: warp w takes slot
// w / 2 of the pass and half w % 2 of K. The sums meet in shared memory and are added in slot
// order by one thread per row (as down_kernel): deterministic, no atomics. Virtual slots as in
// down_kernel.
template <bool kVirtual>
__global__ void __launch_bounds__(kTcWarps * 32, 3)
    down_tc_kernel(const uint32_t* __restrict__ hf, const int* __restrict__ idx,
                   const float* __restrict__ weight, const vex_slot* __restrict__ slots,
                   MoeWeights w, VirtualSlots virt, int k, float* __restrict__ x) {
  pdl_prologue();
  constexpr int kPerPass = kTcWarps / 2, kRing = tile_ring_size<kDownRows, kDownDepth>();
  __shared__ uint4 ring[kTcWarps * kRing];  // the warps' rings (tile_dot), then row sums
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, t = blockIdx.y;
  const int d0 = blockIdx.x * kDownRows, q = warp / 2, half = warp % 2;
  int s0, s1;
  half_steps(w.I / 32, half, s0, s1);
  float total = 0;  // thread r < kDownRows: row d0 + r
  for (int j0 = 0; j0 < k; j0 += kPerPass) {
    const int j = j0 + q, tj = t * k + j;
    vex_slot slot{VEX_SLOT_PRUNED, 0, 0, 0};  // past k: adds nothing
    if (j < k) {
      slot = slots[idx[tj]];
      if constexpr (kVirtual)
        if (blockIdx.x == 0 && half == 0 && lane == 0)
          host_slot_trigger(slot, virt, idx[tj], t, weight[tj]);
    }
    float acc[4] = {};
    if (slot.kind == VEX_SLOT_NEURAL)
      tile_dot<kDownRows, kDownDepth>(w.down_blocks, w.down_scales,
                                      static_cast<int64_t>(slot.expert) * w.D + d0, w.I / 32, s0,
                                      s1, hf + static_cast<int64_t>(tj) * split_words(w.I), lane,
                                      ring + warp * kRing, acc);
    tile_rows<kDownRows>(acc, ring + warp * kRing, lane);
    __syncthreads();
    if (threadIdx.x < kDownRows) {
      const int r = threadIdx.x;
      for (int qq = 0; qq < kPerPass && j0 + qq < k; ++qq) {
        const int tq = t * k + j0 + qq;
        const vex_slot sq = slots[idx[tq]];
        const float dot =
            tile_sum(ring + 2 * qq * kRing, r) + tile_sum(ring + (2 * qq + 1) * kRing, r);
        if (sq.kind == VEX_SLOT_NEURAL)
          total += weight[tq] *
                   (dot + bf16(w.down_bias[static_cast<int64_t>(sq.expert) * w.D + d0 + r]));
        else if constexpr (kVirtual)
          total += virtual_slot_row(sq, virt, tq, weight[tq], d0 + r);
      }
    }
    __syncthreads();
  }
  if (threadIdx.x < kDownRows) x[static_cast<int64_t>(t) * w.D + d0 + threadIdx.x] += total;
}

// Split form of n rows of K values (split.cuh); grid n.
__global__ void split_kernel(const float* __restrict__ x, int K, uint32_t* __restrict__ out) {
  pdl_prologue();
  const int t = blockIdx.x;
  uint16_t* o = reinterpret_cast<uint16_t*>(out + static_cast<int64_t>(t) * split_words(K));
  for (int i = threadIdx.x; i < K; i += blockDim.x)
    store_split(x[static_cast<int64_t>(t) * K + i], i, K, o);
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

cudaError_t moe_gate_up(const float* xn, const uint32_t* xf, const int* idx,
                        const vex_slot* slots, const MoeWeights& w, const VirtualSlots& virt,
                        int n, int k, float limit, uint32_t* hf, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (w.D % 32 != 0 || w.I % 32 != 0) return cudaErrorInvalidValue;
  const dim3 grid(w.I / 32, n * k);
  if (virt.empty())
    launch_pdl(gate_up_tc_kernel<false>, grid, kTcWarps * 32, 0, stream,
        xn, xf, idx, slots, w, virt, k, limit, hf);
  else
    launch_pdl(gate_up_tc_kernel<true>, grid, kTcWarps * 32, 0, stream,
        xn, xf, idx, slots, w, virt, k, limit, hf);
  return cudaGetLastError();
}

cudaError_t moe_down(const uint32_t* hf, const int* idx, const float* weight,
                     const vex_slot* slots, const MoeWeights& w, const VirtualSlots& virt, int n,
                     int k, float* x, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (w.D % kDownRows != 0 || w.I % 32 != 0) return cudaErrorInvalidValue;
  const dim3 grid(w.D / kDownRows, n);
  if (virt.empty())
    launch_pdl(down_tc_kernel<false>, grid, kTcWarps * 32, 0, stream,
        hf, idx, weight, slots, w, virt, k, x);
  else
    launch_pdl(down_tc_kernel<true>, grid, kTcWarps * 32, 0, stream,
        hf, idx, weight, slots, w, virt, k, x);
  return cudaGetLastError();
}

cudaError_t split_rows(const float* x, int n, int K, uint32_t* out, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (K % 32 != 0) return cudaErrorInvalidValue;
  launch_pdl(split_kernel, n, 256, 0, stream, x, K, out);
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
