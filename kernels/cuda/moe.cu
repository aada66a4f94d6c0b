#include <cuda_bf16.h>

#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/e2m1.cuh"
#include "kernels/cuda/gemm.cuh"
#include "kernels/cuda/moe.cuh"
#include "kernels/cuda/moe_prefill.cuh"
#include "kernels/cuda/split.cuh"
#include "kernels/cuda/top_k.cuh"
#include "kernels/cuda/virtual_slots.cuh"

namespace vex::cuda {
namespace {

// ---- Decode (one token's experts at a time) on tensor cores. A warp multiplies an m16 tile of
// an expert's rows by one token's vector in split form (split.cuh): m16n8k16 MMAs whose B
// columns 0..2 are the vector's three bf16 terms, so the three columns of C sum to the fp32
// product. The E2M1 codes become bf16 with three integer instructions per pair and one bf16
// multiply by the block's scale: about half the instructions of a shared-memory table lookup
// per code and an FFMA, which the CUDA-core kernels before these spent (bench/NOTES.md).

constexpr int kTcWarps = 8;  // warps per block, both kernels
constexpr int kTcTiles = 4;  // gate-up: m16 tiles per block (each by two warps, halves of K)

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

// uint4 of one step of a warp's ring: codes [kRows / 8][32 lanes], B words [4][12 lanes].
template <int kRows>
__host__ __device__ constexpr int ring_step() {
  return kRows / 8 * 32 + 4 * 12;
}
template <int kRows, int kDepth>
__host__ __device__ constexpr int tile_ring_size() {
  return kDepth * ring_step<kRows>();
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
// load waits on the critical path; the scales (a register a step) kDepth steps ahead too. The
// first kDepth steps' codes and scales are asked for before `before()` runs and their B words
// after it: the down kernel waits on the kernel before there, so its first weights stream in
// while h is still being written (each of those steps' codes and B are then two copy groups;
// wait_group<kDepth - 1> still finds step s complete, as kDepth - 1 groups follow its B). Each
// lane reads back only what it (or, for B, lane min(lane, 11)) copied. A block past the row's
// end is copied as zeros, codes and B alike (cp.async's zero fill: nothing read), so it adds 0
// without a branch or a scale of 0. The addresses are pointers advanced once per kDepth steps,
// a step's the pointer plus a constant: the loop spends its instructions on the codes.
template <int kRows, int kDepth, typename Before>
__device__ __forceinline__ void tile_dot(const uint8_t* blocks, const uint8_t* scales,
                                         int64_t row0, int nb, int s0, int s1,
                                         const uint32_t* xf, int lane, uint4* ring, float* acc,
                                         Before before) {
  constexpr bool kHi = kRows == 16;
  constexpr int kStep = ring_step<kRows>(), kB = kRows / 8 * 32;  // B's place in a step
  constexpr int kCode = 64, kBx = 256;  // bytes a step: a lane's codes, a B lane's words
  const int g = lane / 4, t = lane % 4, bl = min(lane, 11);
  const int lim = min(s1, (nb - t + 3) / 4);  // the lane's steps with a block: s < lim
  float acc2[4] = {};
  // Step s0's: codes and scales of row g (rows g + 8 at code_hi, sc_hi), the lane's B words.
  const int64_t first = (row0 + g) * nb + 4 * s0 + t, hi = int64_t(8) * nb;
  const uint8_t *code = blocks + first * 16, *code_hi = code + hi * 16;
  const uint8_t *sc = scales + first, *sc_hi = sc + hi;
  const uint8_t* bx = reinterpret_cast<const uint8_t*>(xf) +
                      (int64_t(g % kSplitTerms) * nb * 4 + 4 * (4 * s0 + t)) * 16;
  const uint32_t ring_at = static_cast<uint32_t>(__cvta_generic_to_shared(ring));
  // Step s + r (r a constant once unrolled) into ring slot `slot`, from the pointers of step s:
  // its codes, its B words, or both (then one group per step, empty or not: wait_group counts
  // steps).
  auto issue = [&](int s, int r, int slot, bool codes, bool b) {
    const uint32_t at = ring_at + slot * kStep * 16;
    const int n = s + r < lim ? 16 : 0;
    if (codes) {
      cp_async16_fill(at + lane * 16, code + r * kCode, n);
      if (kHi) cp_async16_fill(at + (32 + lane) * 16, code_hi + r * kCode, n);
    }
    if (b && lane < 12)
#pragma unroll
      for (int q = 0; q < 4; ++q)
        cp_async16_fill<true>(at + (kB + q * 12 + lane) * 16, bx + r * kBx + q * 16, n);
    cp_async_commit();
  };
  auto scales_of = [&](int s, int r) {  // row g's in the low half, row g + 8's in the high
    return s + r < lim
               ? uint32_t(__ldg(sc + 4 * r)) | (kHi ? uint32_t(__ldg(sc_hi + 4 * r)) << 16 : 0u)
               : 0u;
  };
  auto step = [&](auto one, int slot, uint32_t sc) {
    constexpr bool kOne = decltype(one)::value;
    const uint4* at = ring + slot * kStep;
    const uint4 lo = at[lane], hi4 = kHi ? at[32 + lane] : make_uint4(0, 0, 0, 0);
    uint4 xb[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) xb[q] = at[kB + q * 12 + bl];
    block_mmas<kOne, kHi>(lo, hi4, scale_factor<kOne>(sc & 0xFFFF), scale_factor<kOne>(sc >> 16),
                          xb, acc, acc2);
  };
  uint32_t scale[kDepth];
#pragma unroll
  for (int d = 0; d < kDepth; ++d) issue(s0, d, d, true, false), scale[d] = scales_of(s0, d);
  before();
#pragma unroll
  for (int d = 0; d < kDepth; ++d) issue(s0, d, d, false, true);
  for (int s = s0; s < s1; s += kDepth) {
#pragma unroll
    for (int d = 0; d < kDepth; ++d) {
      if (s + d >= s1) break;
      cp_async_wait<kDepth - 1>();  // step s + d's codes and B are in (lanes < 12 copied B:
      __syncwarp();                 // their writes made visible to the warp)
      const uint32_t now = scale[d];
      scale[d] = scales_of(s, d + kDepth);
      // One branch per step, the same for the whole warp: any scale above 128?
      if (scales_fit(now))
        step(std::true_type{}, d, now);
      else
        step(std::false_type{}, d, now);
      __syncwarp();          // every lane has read slot d (B is read across lanes)
      issue(s, d + kDepth, d, true, true);
    }
    code += kDepth * kCode, code_hi += kDepth * kCode, sc += 4 * kDepth, sc_hi += 4 * kDepth;
    bx += kDepth * kBx;
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
// arguments take the first warp of the slot's first block. kVirtual: compiled with the virtual
// slots' paths, launched for layers that have such slots (the others run the neural-only
// instantiation: not one instruction more in their loops). With choice.scores, warp 0 of every
// block first takes its token's top k (moe.cuh), and the router kernel before it, spread over
// SMs, costs the captured step ~0 instead of ~7 us a layer (bench/NOTES.md, session 12).
constexpr int kGateUpDepth = 3, kDownDepth = 4, kDownRows = 8;
template <bool kVirtual>
__global__ void __launch_bounds__(kTcWarps * 32, 3)
    gate_up_tc_kernel(const float* __restrict__ xn, const uint32_t* __restrict__ xf,
                      int* __restrict__ idx, const vex_slot* __restrict__ slots, MoeWeights w,
                      VirtualSlots virt, ExpertChoice choice, int k, float limit,
                      uint32_t* __restrict__ hf) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, tj = blockIdx.y, t = tj / k;
  // Choosing here (moe.cuh): the execution table and what choose_k cannot choose (the
  // router's), read before the wait.
  __shared__ vex_slot slot_of[kMaxE];
  uint32_t taken = 0;
  if (choice.scores) {
    for (int i = threadIdx.x; i < choice.E; i += blockDim.x) slot_of[i] = slots[i];
    if (warp == 0) taken = pruned_bits(choice.slots, choice.E, lane);
  }
  pdl_prologue();
  constexpr int kRing = tile_ring_size<16, kGateUpDepth>();
  __shared__ uint4 ring[kTcWarps * kRing];  // the warps' rings (tile_dot), then row sums
  // The token's top k (choose_k), every block on its own; the token's first block writes idx and
  // weight for moe_down and the observers when it is done (the softmax off the critical path).
  __shared__ int chosen[kMaxK];
  __shared__ float chosen_logit[kMaxK];
  const bool writer = choice.scores && blockIdx.x == 0 && tj % k == 0;
  auto write_choice = [&] {
    if (!writer || threadIdx.x != 0) return;
    float logit[kMaxK], weight[kMaxK];
#pragma unroll
    for (int i = 0; i < kMaxK; ++i) logit[i] = i < k ? chosen_logit[i] : 0.0f;
    softmax_k(logit, k, weight);
#pragma unroll
    for (int i = 0; i < kMaxK; ++i)
      if (i < k) idx[tj + i] = chosen[i], choice.weight[tj + i] = weight[i];
  };
  vex_slot slot;
  if (choice.scores) {
    if (warp == 0) {
      int c[kMaxK];
      float logit[kMaxK];
      choose_k(choice.scores + static_cast<int64_t>(t) * choice.E, choice.slots, choice.E, k,
               choice.forced, choice.n_forced, taken, c, logit);
#pragma unroll
      for (int i = 0; i < kMaxK; ++i)
        if (i < k && lane == i) chosen[i] = c[i], chosen_logit[i] = logit[i];
    }
    __syncthreads();
    slot = slot_of[chosen[tj % k]];
  } else {
    slot = slots[idx[tj]];
  }
  if (slot.kind != VEX_SLOT_NEURAL) {
    if constexpr (kVirtual)
      if (slot.kind == VEX_SLOT_DEVICE && blockIdx.x == 0 && warp == 0)
        device_slot_args(slot, virt, xn + static_cast<int64_t>(t) * w.D, w.D, tj, lane);
    write_choice();
    return;
  }
  const int tile = warp % kTcTiles, half = warp / kTcTiles;
  const int64_t e0 = static_cast<int64_t>(slot.expert) * 2 * w.I;
  int s0, s1;
  half_steps(w.D / 32, half, s0, s1);
  // The biases of the block's 32 j (its first 32 threads'), asked for now: after the loop they
  // would be one more trip to memory at the end of the kernel.
  const int jl = threadIdx.x, j = blockIdx.x * kTcTiles * 8 + jl;
  const bool writes_h = jl < kTcTiles * 8 && j < w.I;
  const float gate_bias = writes_h ? bf16(w.gate_up_bias[e0 + 2 * j]) : 0.0f;
  const float up_bias = writes_h ? bf16(w.gate_up_bias[e0 + 2 * j + 1]) : 0.0f;
  float acc[4] = {};
  tile_dot<16, kGateUpDepth>(w.gate_up_blocks, w.gate_up_scales,
                             e0 + (blockIdx.x * kTcTiles + tile) * 16, w.D / 32, s0, s1,
                             xf + static_cast<int64_t>(t) * split_words(w.D), lane,
                             ring + warp * kRing, acc, [] {});
  tile_rows<16>(acc, ring + warp * kRing, lane);
  __syncthreads();
  write_choice();
  if (!writes_h) return;
  // Row r of the block's 64 is row r % 16 of tile r / 16, whose halves are warps r / 16 and
  // r / 16 + kTcTiles.
  auto row = [&](int r) {
    return tile_sum(ring + r / 16 * kRing, r % 16) +
           tile_sum(ring + (r / 16 + kTcTiles) * kRing, r % 16);
  };
  const float gate = row(2 * jl) + gate_bias, up = row(2 * jl + 1) + up_bias;
  store_split(swiglu(gate, up, limit), j, w.I,
              reinterpret_cast<uint16_t*>(hf + static_cast<int64_t>(tj) * split_words(w.I)));
}

// Grid (D / 8, n): a block computes 8 output rows of token t (8-row tiles: twice the blocks of
// 16-row ones, which left SMs idle) over its chosen slots, four per pass: warp w takes slot
// w / 2 of the pass and half w % 2 of K. The sums meet in shared memory and are added in slot
// order by one thread per row: deterministic, no atomics. A virtual slot's rows come from
// virtual_slot_row (DEVICE) or nothing (HOST, whose trigger the first block records).
//
// With choice.scores the block makes the token's choice itself, as the gate-up kernel does (the
// same scores through the same choose_k and softmax_k: the same slots and weights, bit for bit),
// and before waiting on that kernel: the scores are the router kernel's, complete before the
// gate-up kernel's blocks passed their own wait, which comes before their launch_dependents and
// so before this grid starts. The first steps' codes, scales and biases are then asked for
// before the wait too (tile_dot's `before`): they stream in while the gate-up kernel finishes,
// and only h (and x, the triggers, the DEVICE slots' results) waits. Without it, idx and weight
// are read after the wait.
template <bool kVirtual>
__global__ void __launch_bounds__(kTcWarps * 32, 3)
    down_tc_kernel(const uint32_t* __restrict__ hf, const int* __restrict__ idx,
                   const float* __restrict__ weight, const vex_slot* __restrict__ slots,
                   MoeWeights w, VirtualSlots virt, ExpertChoice choice, int k,
                   float* __restrict__ x) {
  constexpr int kPerPass = kTcWarps / 2, kRing = tile_ring_size<kDownRows, kDownDepth>();
  __shared__ uint4 ring[kTcWarps * kRing];  // the warps' rings (tile_dot), then row sums
  __shared__ int chosen[kMaxK];             // the token's slots and weights, in choice order
  __shared__ float chosen_weight[kMaxK];
  __shared__ float bias[kPerPass][kDownRows];  // a pass's NEURAL slots' biases of the rows
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, t = blockIdx.y;
  const int d0 = blockIdx.x * kDownRows, q = warp / 2, half = warp % 2;
  bool waited = false;
  auto wait = [&] {
    if (!waited) pdl_prologue(), waited = true;
  };
  if (choice.scores) {
    if (warp == 0) {
      int c[kMaxK];
      float logit[kMaxK], wt[kMaxK];
      choose_k(choice.scores + static_cast<int64_t>(t) * choice.E, choice.slots, choice.E, k,
               choice.forced, choice.n_forced, pruned_bits(choice.slots, choice.E, lane), c,
               logit);
      softmax_k(logit, k, wt);
#pragma unroll
      for (int i = 0; i < kMaxK; ++i)
        if (i < k && lane == i) chosen[i] = c[i], chosen_weight[i] = wt[i];
    }
  } else {
    wait();
    if (threadIdx.x < k)
      chosen[threadIdx.x] = idx[t * k + threadIdx.x],
      chosen_weight[threadIdx.x] = weight[t * k + threadIdx.x];
  }
  __syncthreads();
  int s0, s1;
  half_steps(w.I / 32, half, s0, s1);
  float total = 0;  // thread r < kDownRows: row d0 + r
  for (int j0 = 0; j0 < k; j0 += kPerPass) {
    const int j = j0 + q;
    const vex_slot slot = j < k ? slots[chosen[j]] : vex_slot{VEX_SLOT_PRUNED, 0, 0, 0};
    // The biases of the pass's slots for the block's rows, asked for before the loop (after it
    // they would be one more trip to memory at the end of the kernel); read after the barrier.
    if (threadIdx.x < kPerPass * kDownRows) {
      const int qq = threadIdx.x / kDownRows, r = threadIdx.x % kDownRows;
      const vex_slot sq = j0 + qq < k ? slots[chosen[j0 + qq]] : slot;
      if (j0 + qq < k && sq.kind == VEX_SLOT_NEURAL)
        bias[qq][r] = bf16(w.down_bias[static_cast<int64_t>(sq.expert) * w.D + d0 + r]);
    }
    float acc[4] = {};
    if (slot.kind == VEX_SLOT_NEURAL)
      tile_dot<kDownRows, kDownDepth>(w.down_blocks, w.down_scales,
                                      static_cast<int64_t>(slot.expert) * w.D + d0, w.I / 32, s0,
                                      s1, hf + static_cast<int64_t>(t * k + j) * split_words(w.I),
                                      lane, ring + warp * kRing, acc, wait);
    wait();
    if constexpr (kVirtual)
      if (j < k && blockIdx.x == 0 && half == 0 && lane == 0)
        host_slot_trigger(slot, virt, chosen[j], t, chosen_weight[j]);
    tile_rows<kDownRows>(acc, ring + warp * kRing, lane);
    __syncthreads();
    if (threadIdx.x < kDownRows) {
      const int r = threadIdx.x;
      for (int qq = 0; qq < kPerPass && j0 + qq < k; ++qq) {
        const int jq = j0 + qq;
        const vex_slot sq = slots[chosen[jq]];
        const float dot =
            tile_sum(ring + 2 * qq * kRing, r) + tile_sum(ring + (2 * qq + 1) * kRing, r);
        if (sq.kind == VEX_SLOT_NEURAL)
          total += chosen_weight[jq] * (dot + bias[qq][r]);
        else if constexpr (kVirtual)
          total += virtual_slot_row(sq, virt, t * k + jq, chosen_weight[jq], d0 + r);
      }
    }
    __syncthreads();
  }
  if (threadIdx.x < kDownRows) x[static_cast<int64_t>(t) * w.D + d0 + threadIdx.x] += total;
}

// Split form of rows of K values in kTerms terms (split.cuh; kTerms * K / 2 words a row); grid:
// the rows. kWide: one term in the order of the wgmma passes (wide_at).
template <int kTerms, bool kWide = false>
__global__ void split_kernel(const float* __restrict__ x, int K, uint32_t* __restrict__ out) {
  pdl_prologue();
  const int t = blockIdx.x;
  uint16_t* o = reinterpret_cast<uint16_t*>(out + static_cast<int64_t>(t) * (kTerms * K / 2));
  for (int i = threadIdx.x; i < K; i += blockDim.x) {
    const float v = x[static_cast<int64_t>(t) * K + i];
    if constexpr (kWide)
      o[wide_at(i)] = to_bf16(v);
    else
      store_split<kTerms>(v, i, K, o);
  }
}

// ---- Prefill: expert-major ("grouped"). A chunk's (token, slot) pairs are listed per slot
// (plan_kernel); the expert GEMMs (moe_prefill.cu) then read each expert's weights once for all
// of its tokens, and combine_kernel sums each token's k outputs.

// Lists, for every slot e, the pairs tj = t * k + j with idx[tj] == e, in increasing tj:
// offset[e] .. offset[e + 1] in list. One block; warp w takes slots w, w + 32, ...: it counts a
// slot's pairs 32 at a time with a ballot, and once the block has the offsets, writes them in
// order the same way (a thread per slot scanning every pair took ~320 us a layer of a 1,024-token
// pass on gpt-oss-20b: bench/NOTES.md, session 9). The pairs' slots are read into shared memory
// first when they fit (a pass's 4,096: one round of loads instead of each warp's chain of them).
constexpr int kPlanPairs = 8192;
__global__ void plan_kernel(const int* __restrict__ idx, int nk, int E, int* __restrict__ offset,
                            int* __restrict__ list) {
  pdl_prologue();
  __shared__ int start[1024];
  __shared__ int slot_of[kPlanPairs];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  const bool staged = nk <= kPlanPairs;
  if (staged)
    for (int i = threadIdx.x; i < nk; i += blockDim.x) slot_of[i] = idx[i];
  __syncthreads();
  auto mine = [&](int tj, int e) { return tj < nk && (staged ? slot_of[tj] : idx[tj]) == e; };
  for (int e = warp; e < E; e += warps) {
    int count = 0;
#pragma unroll 4
    for (int t0 = 0; t0 < nk; t0 += 32) count += __popc(__ballot_sync(~0u, mine(t0 + lane, e)));
    if (lane == 0) start[e] = count;
  }
  __syncthreads();
  if (threadIdx.x == 0) {  // counts -> offsets
    int sum = 0;
    for (int e = 0; e < E; ++e) {
      const int count = start[e];
      offset[e] = start[e] = sum, sum += count;
    }
    offset[E] = sum;
  }
  __syncthreads();
  for (int e = warp; e < E; e += warps) {
    int at = start[e];
    for (int t0 = 0; t0 < nk; t0 += 32) {
      const bool in = mine(t0 + lane, e);
      const uint32_t ballot = __ballot_sync(~0u, in);
      if (in) list[at + __popc(ballot & ((1u << lane) - 1))] = t0 + lane;
      at += __popc(ballot);
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

// What a choice the decode kernels make themselves needs (moe.cuh).
bool valid_choice(const ExpertChoice& c, int k) {
  return c.E >= k && c.E <= kMaxE && c.slots && c.n_forced >= 0 && c.n_forced <= k &&
         (c.n_forced == 0 || c.forced);
}

}  // namespace

cudaError_t moe_gate_up(const float* xn, const uint32_t* xf, int* idx, const vex_slot* slots,
                        const MoeWeights& w, const VirtualSlots& virt, int n, int k, float limit,
                        uint32_t* hf, cudaStream_t stream, const ExpertChoice& choice) {
  if (n <= 0) return cudaSuccess;
  if (w.D % 32 != 0 || w.I % 32 != 0 || k > kMaxK) return cudaErrorInvalidValue;
  if (choice.scores && (!valid_choice(choice, k) || !choice.weight)) return cudaErrorInvalidValue;
  const dim3 grid(w.I / 32, n * k);
  if (virt.empty())
    launch_pdl(gate_up_tc_kernel<false>, grid, kTcWarps * 32, 0, stream, xn, xf, idx, slots, w,
               virt, choice, k, limit, hf);
  else
    launch_pdl(gate_up_tc_kernel<true>, grid, kTcWarps * 32, 0, stream, xn, xf, idx, slots, w, virt,
               choice, k, limit, hf);
  return cudaGetLastError();
}

cudaError_t moe_down(const uint32_t* hf, const int* idx, const float* weight,
                     const vex_slot* slots, const MoeWeights& w, const VirtualSlots& virt, int n,
                     int k, float* x, cudaStream_t stream, const ExpertChoice& choice) {
  if (n <= 0) return cudaSuccess;
  if (w.D % kDownRows != 0 || w.I % 32 != 0 || k > kMaxK) return cudaErrorInvalidValue;
  if (choice.scores && !valid_choice(choice, k)) return cudaErrorInvalidValue;
  const dim3 grid(w.D / kDownRows, n);
  if (virt.empty())
    launch_pdl(down_tc_kernel<false>, grid, kTcWarps * 32, 0, stream,
        hf, idx, weight, slots, w, virt, choice, k, x);
  else
    launch_pdl(down_tc_kernel<true>, grid, kTcWarps * 32, 0, stream,
        hf, idx, weight, slots, w, virt, choice, k, x);
  return cudaGetLastError();
}

cudaError_t split_rows(const float* x, int n, int K, uint32_t* out, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (K % 32 != 0) return cudaErrorInvalidValue;
  launch_pdl(split_kernel<kSplitTerms>, n, 256, 0, stream, x, K, out);
  return cudaGetLastError();
}

cudaError_t moe_grouped(const float* xn, const int* idx, const float* weight, const vex_slot* slots,
                        const MoeWeights& w, const VirtualSlots& virt, int n, int k, int E,
                        float limit, MoeScratch scratch, float* x, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (n * k > scratch.capacity || E > 1024 || w.D % 64 != 0 || w.I % 64 != 0 || !scratch.xb ||
      !scratch.hb)  // the expert kernels' stages are 64 columns (moe_prefill.cu)
    return cudaErrorInvalidValue;
  launch_pdl(plan_kernel, 1, 1024, 0, stream, idx, n * k, E, scratch.offset, scratch.list);
  // The expert kernels' input in bf16, in the order their E2M1 pairs come (split.cuh: wide_at's
  // for the wgmma passes).
  uint32_t* xb = reinterpret_cast<uint32_t*>(scratch.xb);
  if (grouped_wide(n * k, E))
    launch_pdl(split_kernel<1, true>, n, 256, 0, stream, xn, w.D, xb);
  else
    launch_pdl(split_kernel<1>, n, 256, 0, stream, xn, w.D, xb);
  cudaError_t err = cudaGetLastError();
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

}  // namespace vex::cuda
