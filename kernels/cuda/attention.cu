#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/split.cuh"

#include <cuda_bf16.h>

namespace vex::cuda {
namespace {

template <bool kTrans>
__device__ __forceinline__ void ldsm_x4(uint32_t* r, const void* row) {
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(row));
  if constexpr (kTrans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

// Decode: block (token t, KV head kvh, key range z) of kDecodeWarps warps, the group's G <= 8
// query heads as the rows of tensor-core MMAs (mma.sync m16n8k16, fp32 accumulation) on the bf16
// keys and values as the cache holds them. The group's K and V rows of 64-key tiles are staged
// in shared memory by cp.async, kStages - 1 tiles ahead (16-byte unit u of row r at u ^ (r % 8):
// the 8 rows of an ldmatrix hit 8 bank groups). Warp w takes keys 16 w .. 16 w + 15 of every
// tile: S = Q K^T (two n8 tiles of keys), its own online softmax per head, O += P V.
//
// The fp32 queries and probabilities enter as three bf16 terms each (24 significant bits, as in
// the prefill kernel: a score's error must stay small against 1). Decode has one row per head,
// so the MMA's 16 rows carry two terms: rows 0-7 the first term of heads 0-7, rows 8-15 the
// second, and a second MMA the third in rows 0-7 (rows 8-15 zero). Lane (g, c) thus holds
// head g in both its accumulator rows, g and g + 8, and adds them: the scores before the
// softmax, the outputs at the end. One warp's MMAs serve all the group's heads, where a warp a
// head converted the same bf16 tile to fp32 G times (bench/NOTES.md, session 15).
//
// The warps' states (m, l, o) meet in shared memory at the end. Split-K: with gridDim.z = S > 1,
// block z takes the z-th of S equal key ranges (tile aligned) and writes its unnormalized state
// to partial; the sink joins only split 0 (warp 0's state). The last of the S blocks of (t, kvh)
// to finish merges them, so the split costs no kernel of its own. With S = 1 the output is final.
constexpr int kMaxGroup = 8;  // query heads per KV head
constexpr int kDecodeWarps = 4;
constexpr int kDecodeKeys = 16 * kDecodeWarps;  // keys a tile
template <int D>
constexpr int kDecodeStages = D <= 64 ? 4 : 2;  // 16 KB a stage at d = 64
// The stages' K and V tiles, in dynamic shared memory.
template <int D>
__host__ __device__ constexpr size_t decode_smem() {
  return size_t{2} * kDecodeKeys * D * kDecodeStages<D> * sizeof(uint16_t);
}

template <int D>
__global__ void __launch_bounds__(32 * kDecodeWarps)
    attention_kernel(const float* __restrict__ q, int q_stride, const uint16_t* __restrict__ kc,
                     const uint16_t* __restrict__ vc, const uint16_t* __restrict__ sinks,
                     float* __restrict__ out, CacheRows rows, int window, int ring, int n_heads,
                     int n_kv_heads, float sm_scale, float* __restrict__ partial,
                     int* __restrict__ counts) {
  constexpr int U = D / 8;            // 16-byte units per key row
  constexpr int kSw = U < 8 ? U : 8;  // swizzle span (units)
  constexpr int kKeys = kDecodeKeys, kStages = kDecodeStages<D>;
  extern __shared__ uint4 tiles[];  // [kStages][K, V][kKeys][U]
  __shared__ float ms[kDecodeWarps][kMaxGroup], ls[kDecodeWarps][kMaxGroup];
  // The warps' outputs; rows padded by 8 floats so that a warp's float2 stores (head g at
  // 8 dn + 2c) fall in distinct banks per half-warp.
  __shared__ float os[kDecodeWarps][kMaxGroup][D + 8];
  const int t = blockIdx.x, kvh = blockIdx.y, z = blockIdx.z, S = gridDim.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
  const int G = n_heads / n_kv_heads, kv_dim = n_kv_heads * D;
  const int p = rows.pos[t], first = window > 0 ? max(0, p - window + 1) : 0;
  const int per = ((p - first + 1 + S - 1) / S + kKeys - 1) / kKeys * kKeys;  // keys per split
  const int lo = first + z * per, hi = min(p, lo + per - 1);
  const int64_t base = cache_base(rows, t) + kvh * D;
  // The split states: acc [n, Hq, S, D], then (m, l) [n, Hq, S].
  float2* const ml =
      reinterpret_cast<float2*>(partial + static_cast<int64_t>(gridDim.x) * n_heads * S * D);
  auto tile = [&](int buf, int which) { return tiles + (2 * buf + which) * kKeys * U; };
  // A thread stages unit u0 of rows r0, r0 + kThreads / U, ... of a tile, of K and of V.
  constexpr int kThreads = 32 * kDecodeWarps, kRowsPer = kKeys * U / kThreads;
  static_assert(kKeys * U % kThreads == 0 && kThreads % U == 0);
  const int u0 = threadIdx.x % U, r0 = threadIdx.x / U;
  auto stage = [&](int j0) {  // tile j0 into its buffer; an empty group past the range
    if (j0 <= hi) {
      const int buf = (j0 - lo) / kKeys % kStages;
#pragma unroll
      for (int i = 0; i < kRowsPer; ++i) {
        const int r = r0 + i * (kThreads / U), at_s = r * U + (u0 ^ (r % kSw));
        const int j = min(j0 + r, hi);  // past the range: a copy of its last key, never scored
        const int64_t at = base + static_cast<int64_t>(ring > 0 ? j % ring : j) * kv_dim + u0 * 8;
        cp_async16(tile(buf, 0) + at_s, kc + at), cp_async16(tile(buf, 1) + at_s, vc + at);
      }
    }
    cp_async_commit();
  };
  // Before the wait on the QKV kernel (it writes q and the cache at each row's own position, p:
  // a decode pass has a row a sequence), the first tiles whose keys all precede p: pos and seq
  // are complete (written before the grid before this one started, as every kernel here waits
  // before it lets the next launch), and so are those keys, written by earlier passes. They
  // stream in while the QKV kernel finishes.
  int staged = 0;
  while (staged < kStages - 1 && min(lo + kKeys * staged + kKeys - 1, hi) < p)
    stage(lo + kKeys * staged++);
  pdl_prologue();
  // Head g's query: its loads first, the tiles' next, then its split.
  float2 qf[D / 16][2] = {};
  if (g < G) {
    const float* qr = q + static_cast<int64_t>(t) * q_stride + (kvh * G + g) * D + 2 * c;
#pragma unroll
    for (int k16 = 0; k16 < D / 16; ++k16)
      qf[k16][0] = *reinterpret_cast<const float2*>(qr + 16 * k16),
      qf[k16][1] = *reinterpret_cast<const float2*>(qr + 16 * k16 + 8);
  }
  for (; staged < kStages - 1; ++staged) stage(lo + kKeys * staged);

  // Head g's query as A fragments (a0 / a2: row g at k pairs 2c / 2c + 8, a1 / a3: row g + 8):
  // qa the first two terms, qb the third.
  uint32_t qa[D / 16][4], qb[D / 16][4];
#pragma unroll
  for (int k16 = 0; k16 < D / 16; ++k16) {
    const float2 a = qf[k16][0], b = qf[k16][1];
    uint32_t ta[3], tb[3];
    split_bf16<3>(a.x, a.y, ta), split_bf16<3>(b.x, b.y, tb);
    qa[k16][0] = ta[0], qa[k16][1] = ta[1], qa[k16][2] = tb[0], qa[k16][3] = tb[1];
    qb[k16][0] = ta[2], qb[k16][1] = 0, qb[k16][2] = tb[2], qb[k16][3] = 0;
  }
  // Head g's running max and sum (l: this lane's share), the sink's in warp 0 of split 0 (§7.5).
  const bool sink = z == 0 && warp == 0;
  float m = sink ? (g < G ? bf16(sinks[kvh * G + g]) : 0.0f) : -INFINITY;
  float l = sink && c == 0 ? 1.0f : 0.0f;
  float o[D / 8][4] = {};  // rows g, g + 8 (head g's two terms) x dimensions 8 dn + 2c, + 1
  for (int j0 = lo; j0 <= hi; j0 += kKeys) {
    const int buf = (j0 - lo) / kKeys % kStages;
    cp_async_wait<kStages - 2>();
    __syncthreads();                    // tile j0 is in; every warp is done with the tile before
    stage(j0 + kKeys * (kStages - 1));  // into the tile before's buffer
    const int k0 = j0 + 16 * warp;      // this warp's keys k0 .. k0 + 15
    if (k0 > hi) continue;
    const uint4 *ks = tile(buf, 0), *vs = tile(buf, 1);
    // S: four accumulator chains (n8 tiles x the first two terms / the third) of D / 16 MMAs.
    float s[2][4] = {}, s3[2][4] = {};
#pragma unroll
    for (int k32 = 0; k32 < (D + 31) / 32; ++k32) {
      // Matrices: keys 8 nt .. +7 x units 4 k32 .. +3 (d 32 k32 .. +31); for d = 16 the last
      // two repeat the first two.
      uint32_t b[2][4];
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
        const int r = 16 * warp + 8 * nt + lane % 8, u = (4 * k32 + lane / 8) % U;
        ldsm_x4<false>(b[nt], ks + r * U + (u ^ (r % kSw)));
      }
#pragma unroll
      for (int half = 0; half < 2; ++half)
        if (2 * k32 + half < D / 16)
#pragma unroll
          for (int nt = 0; nt < 2; ++nt) {
            mma_bf16(s[nt], qa[2 * k32 + half], b[nt] + 2 * half);
            mma_bf16(s3[nt], qb[2 * k32 + half], b[nt] + 2 * half);
          }
    }
    // Head g's scores of keys k0 + 8 nt + 2c + e (s3's rows g + 8 are zero), masked past the
    // range; their max over the row's 4 lanes.
    float pj[4], mx = -INFINITY;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int nt = i / 2, e = i % 2;
      pj[i] = k0 + 8 * nt + 2 * c + e <= hi ? (s[nt][e] + s[nt][2 + e] + s3[nt][e]) * sm_scale
                                            : -INFINITY;
      mx = fmaxf(mx, pj[i]);
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float m_new = fmaxf(m, mx);  // finite: key k0 is in the range
    const float scale = m == -INFINITY ? 0.0f : expf(m - m_new);
    float psum = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) pj[i] = expf(pj[i] - m_new), psum += pj[i];  // 0 where masked
    l = l * scale + psum;
    if (m_new != m) {  // at depth the running max rarely moves
#pragma unroll
      for (int dn = 0; dn < D / 8; ++dn)
#pragma unroll
        for (int v = 0; v < 4; ++v) o[dn][v] *= scale;
    }
    m = m_new;
    // O += P V: the probabilities as A fragments the way the queries are (keys 2c / 2c + 8 are
    // n8 tiles 0 / 1), the values' 8 x 8 matrices transposed.
    uint32_t t0[3], t1[3];
    split_bf16<3>(pj[0], pj[1], t0), split_bf16<3>(pj[2], pj[3], t1);
    const uint32_t pa[4] = {t0[0], t0[1], t1[0], t1[1]}, pb[4] = {t0[2], 0, t1[2], 0};
    uint32_t b[D / 16][4];  // matrices (transposed): keys +0..7 / +8..15 x d units 2i, 2i + 1
#pragma unroll
    for (int i = 0; i < D / 16; ++i) {
      const int r = 16 * warp + (lane / 8 % 2) * 8 + lane % 8, u = 2 * i + lane / 16;
      ldsm_x4<true>(b[i], vs + r * U + (u ^ (r % kSw)));
    }
#pragma unroll
    for (int i = 0; i < D / 16; ++i)
      mma_bf16(o[2 * i], pa, b[i]), mma_bf16(o[2 * i + 1], pa, b[i] + 2);
#pragma unroll
    for (int i = 0; i < D / 16; ++i)
      mma_bf16(o[2 * i], pb, b[i]), mma_bf16(o[2 * i + 1], pb, b[i] + 2);
  }
  // The warps' states into shared memory, then the block's: out = sum_w e^(m_w - M) o_w /
  // sum_w e^(m_w - M) l_w (a warp without keys: m_w = -inf, weight 0).
  l += __shfl_xor_sync(0xffffffffu, l, 1);
  l += __shfl_xor_sync(0xffffffffu, l, 2);
  if (g < G) {
    if (c == 0) ms[warp][g] = m, ls[warp][g] = l;
#pragma unroll
    for (int dn = 0; dn < D / 8; ++dn)
      *reinterpret_cast<float2*>(&os[warp][g][8 * dn + 2 * c]) =
          make_float2(o[dn][0] + o[dn][2], o[dn][1] + o[dn][3]);
  }
  __syncthreads();
  // A thread takes 4 consecutive outputs of one head: its weights once, float4 reads and writes.
  for (int i = 4 * threadIdx.x; i < G * D; i += 4 * kThreads) {
    const int hh = i / D, d = i % D;
    float M = -INFINITY, L = 0, f[kDecodeWarps];
    float4 A = {};
#pragma unroll
    for (int w = 0; w < kDecodeWarps; ++w) M = fmaxf(M, ms[w][hh]);
#pragma unroll
    for (int w = 0; w < kDecodeWarps; ++w) {
      f[w] = ms[w][hh] == -INFINITY ? 0.0f : expf(ms[w][hh] - M);
      L += f[w] * ls[w][hh];
      const float4 v = *reinterpret_cast<const float4*>(&os[w][hh][d]);
      A.x += f[w] * v.x, A.y += f[w] * v.y, A.z += f[w] * v.z, A.w += f[w] * v.w;
    }
    const int64_t head = static_cast<int64_t>(t) * n_heads + kvh * G + hh;
    if (S == 1) {
      *reinterpret_cast<float4*>(out + head * D + d) =
          make_float4(A.x / L, A.y / L, A.z / L, A.w / L);
    } else {
      *reinterpret_cast<float4*>(partial + (head * S + z) * D + d) = A;
      if (d == 0) ml[head * S + z] = make_float2(M, L);
    }
  }
  if (S == 1) return;
  // Each block's state, fenced, before its count; the block that counts last reads them all
  // (from L2: written by other SMs in this grid) and leaves the count at 0 for the next launch.
  __shared__ int ticket;
  __threadfence();
  __syncthreads();
  int* count = counts + static_cast<int64_t>(t) * n_kv_heads + kvh;
  if (threadIdx.x == 0) ticket = atomicAdd(count, 1);
  __syncthreads();
  if (ticket != S - 1) return;
  __threadfence();
  if (threadIdx.x == 0) *count = 0;
  // out = sum_z e^(m_z - M) acc_z / sum_z e^(m_z - M) l_z. Every load of a step is issued at
  // once (the merge read split after split in a chain of dependent loads before: bench/NOTES.md,
  // session 15): the group's acc by cp.async into the tiles' shared memory, free now, in chunks
  // of C splits; meanwhile the group's (m_z, l_z), then per head its weights (a warp a head).
  // Then a thread sums a float4 of the outputs over the chunk's splits.
  __shared__ float wz[kMaxGroup][kMaxSplits], lz[kMaxGroup][kMaxSplits], Lh[kMaxGroup];
  const int64_t head0 = static_cast<int64_t>(t) * n_heads + kvh * G;
  const int C = min(S, static_cast<int>(decode_smem<D>() / (G * D * sizeof(float))));
  float4* const accs = reinterpret_cast<float4*>(tiles);  // [G][C][D / 4]
  auto fetch = [&](int z0) {  // splits z0 .. min(z0 + C, S) - 1 of every head of the group
    const int units = min(C, S - z0) * D / 4;
    for (int i = threadIdx.x; i < G * units; i += kThreads) {
      const int hh = i / units, at = i % units;
      cp_async16(accs + hh * C * (D / 4) + at, partial + ((head0 + hh) * S + z0) * D + 4 * at);
    }
    cp_async_commit();
  };
  fetch(0);
  for (int i = threadIdx.x; i < G * S; i += kThreads) {
    const float2 v = __ldcg(ml + head0 * S + i);
    wz[i / S][i % S] = v.x, lz[i / S][i % S] = v.y;
  }
  __syncthreads();
  for (int hh = warp; hh < G; hh += kDecodeWarps) {
    float M = -INFINITY, L = 0;
    for (int zz = lane; zz < S; zz += 32) M = fmaxf(M, wz[hh][zz]);
    M = warp_max(M);                         // finite: split 0 holds the sink
    for (int zz = lane; zz < S; zz += 32) {  // e^(m_z - M): 0 for a range that had no keys
      const float w = wz[hh][zz] == -INFINITY ? 0.0f : expf(wz[hh][zz] - M);
      wz[hh][zz] = w, L += w * lz[hh][zz];
    }
    L = warp_sum(L);
    if (lane == 0) Lh[hh] = L;
  }
  constexpr int kOuts = (kMaxGroup * D / 4 + kThreads - 1) / kThreads;  // float4s a thread
  float4 sum[kOuts] = {};
  for (int z0 = 0; z0 < S; z0 += C) {
    if (z0 > 0) {
      __syncthreads();  // every thread is done with the chunk before
      fetch(z0);
    }
    cp_async_wait<0>();
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kOuts; ++k) {
      const int i = threadIdx.x + k * kThreads, hh = i / (D / 4), d4 = i % (D / 4);
      if (hh >= G) break;
      for (int zc = 0; zc < min(C, S - z0); ++zc) {
        const float4 v = accs[(hh * C + zc) * (D / 4) + d4];
        const float w = wz[hh][z0 + zc];
        sum[k].x += w * v.x, sum[k].y += w * v.y, sum[k].z += w * v.z, sum[k].w += w * v.w;
      }
    }
  }
#pragma unroll
  for (int k = 0; k < kOuts; ++k) {
    const int i = threadIdx.x + k * kThreads, hh = i / (D / 4), d4 = i % (D / 4);
    if (hh >= G) break;
    const float L = Lh[hh];
    reinterpret_cast<float4*>(out + (head0 + hh) * D)[d4] =
        make_float4(sum[k].x / L, sum[k].y / L, sum[k].z / L, sum[k].w / L);
  }
}

template <int D>
cudaError_t launch(const float* q, int q_stride, const uint16_t* kc, const uint16_t* vc,
                   const uint16_t* sinks, float* out, int n, CacheRows rows, int window, int ring,
                   int n_heads, int n_kv_heads, float sm_scale, int splits, float* partial,
                   int* counts, cudaStream_t stream) {
  static const cudaError_t allowed = allow_smem(attention_kernel<D>);
  if (allowed != cudaSuccess) return allowed;
  launch_pdl(attention_kernel<D>, dim3(n, n_kv_heads, splits), 32 * kDecodeWarps, decode_smem<D>(),
             stream, q, q_stride, kc, vc, sinks, out, rows, window, ring, n_heads, n_kv_heads,
             sm_scale, partial, counts);
  return cudaGetLastError();
}

// ---- Prefill on tensor cores ----------------------------------------------------------------

// Block (tile, KV head g), warp w = query head g * G + w: its 16 rows (the tile's, the last
// repeated past `count`) against 64-key tiles (32 for d = 128) of the sequence's cache, staged
// in shared memory by cp.async one tile ahead (a 16-byte unit u of key row r at u ^ (r % 8):
// the 8 rows of an ldmatrix hit 8 bank groups). Per key tile: S = Q K^T (n8 tiles of keys),
// the mask (window, causality, the tile's end), the online softmax with the sink in the
// running max and sum (§7.5), then O += P V with P's accumulators reused as the A fragments.
// The output in fp32 (out), or rounded to bf16 for the O projection's GEMM (out_bf16, when not
// null). Blocks run the last tiles first (blockIdx.y counts down): in a causal pass those see
// the most keys, and starting them first keeps the longest blocks out of the last wave.
template <int D>
__global__ void __launch_bounds__(256, 1)
    attention_prefill_kernel(const float* __restrict__ q, int q_stride,
                             const uint16_t* __restrict__ kc, const uint16_t* __restrict__ vc,
                             const uint16_t* __restrict__ sinks, float* __restrict__ out,
                             uint16_t* __restrict__ out_bf16, const RowTile* __restrict__ tiles,
                             CacheRows rows, int window, int ring, int n_heads, int n_kv_heads,
                             float sm_scale) {
  pdl_prologue();
  constexpr int U = D / 8;                   // 16-byte units per key row
  constexpr int kKeys = D == 128 ? 32 : 64;  // keys per tile
  constexpr int kSw = U < 8 ? U : 8;         // swizzle span (units)
  __shared__ uint4 ks[2][kKeys][U], vs[2][kKeys][U];
  const RowTile tile = tiles[gridDim.y - 1 - blockIdx.y];
  const int kvh = blockIdx.x, G = n_heads / n_kv_heads, kv_dim = n_kv_heads * D;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
  const int h = kvh * G + warp;
  const int p0 = rows.pos[tile.row0], last = p0 + tile.count - 1;
  const int first = window > 0 ? max(0, p0 - window + 1) : 0;
  const int64_t base = cache_base(rows, tile.row0) + kvh * D;
  auto stage = [&](int buf, int j0) {
    for (int i = threadIdx.x; i < 2 * kKeys * U; i += blockDim.x) {
      const int which = i / (kKeys * U), r = i / U % kKeys, u = i % U;
      const int j = min(j0 + r, last);
      const int64_t at = base + static_cast<int64_t>(ring > 0 ? j % ring : j) * kv_dim + u * 8;
      uint4* dst = which ? &vs[buf][r][u ^ (r % kSw)] : &ks[buf][r][u ^ (r % kSw)];
      cp_async16(dst, (which ? vc : kc) + at);
    }
    cp_async_commit();
  };
  stage(0, first);

  // This lane's rows g and g + 8 of the tile: position, window start, query fragments.
  int pr[2], lo_r[2];
  uint32_t qt[3][D / 16][4];  // the queries in three bf16 terms: scores as exact as in fp32
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int r = min(g + 8 * half, tile.count - 1);
    pr[half] = p0 + r;
    lo_r[half] = window > 0 ? max(0, pr[half] - window + 1) : 0;
    const float* qr = q + static_cast<int64_t>(tile.row0 + r) * q_stride + h * D + 2 * c;
#pragma unroll
    for (int k16 = 0; k16 < D / 16; ++k16) {
      const float2 a = *reinterpret_cast<const float2*>(qr + 16 * k16);
      const float2 b = *reinterpret_cast<const float2*>(qr + 16 * k16 + 8);
      uint32_t ta[3], tb[3];
      split_bf16<3>(a.x, a.y, ta), split_bf16<3>(b.x, b.y, tb);
#pragma unroll
      for (int i = 0; i < 3; ++i)  // regs 0 / 1: k 2c, rows g / g+8; regs 2 / 3: k 2c + 8
        qt[i][k16][half] = ta[i], qt[i][k16][2 + half] = tb[i];
    }
  }
  float m[2], l[2], o[D / 8][4] = {};
  m[0] = m[1] = bf16(sinks[h]);
  l[0] = l[1] = c == 0 ? 1.0f : 0.0f;  // the sink's term, once per row (lane sums meet at the end)

  int buf = 0;
  for (int j0 = first; j0 <= last; j0 += kKeys, buf ^= 1) {
    cp_async_wait<0>();
    __syncthreads();  // tile j0 is in; every warp is done with the buffer the next load takes
    if (j0 + kKeys <= last) stage(buf ^ 1, j0 + kKeys);
    float s[kKeys / 8][4] = {};
#pragma unroll
    for (int nt = 0; nt < kKeys / 8; ++nt) {
#pragma unroll
      for (int k32 = 0; k32 < (D + 31) / 32; ++k32) {
        // Matrices: keys nt*8 .. +7 x units 4 k32 .. 4 k32 + 3 (d 32 k32 .. +31); for d = 16
        // the last two repeat the first two.
        const int r = nt * 8 + lane % 8, u = (4 * k32 + lane / 8) % U;
        uint32_t b[4];
        ldsm_x4<false>(b, &ks[buf][r][u ^ (r % kSw)]);
#pragma unroll
        for (int i = 0; i < 3; ++i) {
          mma_bf16(s[nt], qt[i][2 * k32], b);
          if (2 * k32 + 1 < D / 16) mma_bf16(s[nt], qt[i][2 * k32 + 1], b + 2);
        }
      }
    }
    // Mask and scale; the tile's max per row (over the row's 4 lanes).
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < kKeys / 8; ++nt)
#pragma unroll
      for (int v = 0; v < 4; ++v) {
        const int half = v / 2, j = j0 + nt * 8 + 2 * c + (v % 2);
        const bool ok = j >= lo_r[half] && j <= pr[half];
        s[nt][v] = ok ? s[nt][v] * sm_scale : -INFINITY;
        mx[half] = fmaxf(mx[half], s[nt][v]);
      }
    float scale[2];
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      mx[half] = fmaxf(mx[half], __shfl_xor_sync(0xffffffffu, mx[half], 1));
      mx[half] = fmaxf(mx[half], __shfl_xor_sync(0xffffffffu, mx[half], 2));
      const float m_new = fmaxf(m[half], mx[half]);  // finite: the sink starts it
      scale[half] = expf(m[half] - m_new);
      m[half] = m_new, l[half] *= scale[half];
    }
#pragma unroll
    for (int dn = 0; dn < D / 8; ++dn)
#pragma unroll
      for (int v = 0; v < 4; ++v) o[dn][v] *= scale[v / 2];
#pragma unroll
    for (int nt = 0; nt < kKeys / 8; ++nt)
#pragma unroll
      for (int v = 0; v < 4; ++v) {
        const float pj = expf(s[nt][v] - m[v / 2]);  // 0 where masked
        s[nt][v] = pj, l[v / 2] += pj;
      }
      // O += P V: keys 16 kk .. +15 are the k of one MMA; P's n8 tiles 2kk, 2kk + 1 form its A.
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk) {
      // Probabilities in three terms as well: with two (16 bits) an untrained model's logits
      // moved by 1e-3 against the fp32 kernel's.
      constexpr int kP = 3;
      uint32_t pt[4][kP], pa[kP][4];
      split_bf16<kP>(s[2 * kk][0], s[2 * kk][1], pt[0]);
      split_bf16<kP>(s[2 * kk][2], s[2 * kk][3], pt[1]);
      split_bf16<kP>(s[2 * kk + 1][0], s[2 * kk + 1][1], pt[2]);
      split_bf16<kP>(s[2 * kk + 1][2], s[2 * kk + 1][3], pt[3]);
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < kP; ++j) pa[j][i] = pt[i][j];
#pragma unroll
      for (int dn = 0; dn < D / 8; dn += 2) {
        // Matrices (transposed): keys +0..7 / +8..15 x d units dn, dn + 1.
        const int r = 16 * kk + (lane / 8 % 2) * 8 + lane % 8, u = dn + lane / 16;
        uint32_t b[4];
        ldsm_x4<true>(b, &vs[buf][r][u ^ (r % kSw)]);
#pragma unroll
        for (int j = 0; j < kP; ++j) mma_bf16(o[dn], pa[j], b), mma_bf16(o[dn + 1], pa[j], b + 2);
      }
    }
  }
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    l[half] += __shfl_xor_sync(0xffffffffu, l[half], 1);
    l[half] += __shfl_xor_sync(0xffffffffu, l[half], 2);
    const int r = g + 8 * half;
    if (r >= tile.count) continue;
    const int64_t at = static_cast<int64_t>(tile.row0 + r) * n_heads * D + h * D + 2 * c;
#pragma unroll
    for (int dn = 0; dn < D / 8; ++dn) {
      const float a = o[dn][2 * half] / l[half], b = o[dn][2 * half + 1] / l[half];
      const uint32_t pair = to_bf16(a) | uint32_t(to_bf16(b)) << 16;
      if (out_bf16)
        *reinterpret_cast<uint32_t*>(out_bf16 + at + 8 * dn) = pair;
      else
        *reinterpret_cast<float2*>(out + at + 8 * dn) = make_float2(a, b);
    }
  }
}

template <int D>
cudaError_t launch_prefill(const float* q, int q_stride, const uint16_t* kc, const uint16_t* vc,
                           const uint16_t* sinks, float* out, uint16_t* out_bf16,
                           const RowTile* tiles, int n_tiles, CacheRows rows, int window, int ring,
                           int n_heads, int n_kv_heads, float sm_scale, cudaStream_t stream) {
  launch_pdl(attention_prefill_kernel<D>, dim3(n_kv_heads, n_tiles), 32 * (n_heads / n_kv_heads), 0,
             stream, q, q_stride, kc, vc, sinks, out, out_bf16, tiles, rows, window, ring, n_heads,
             n_kv_heads, sm_scale);
  return cudaGetLastError();
}
}  // namespace

cudaError_t attention(const float* q, int q_stride, const uint16_t* k_cache,
                      const uint16_t* v_cache, const uint16_t* sinks, float* out, int n,
                      CacheRows rows, int window, int ring, int n_heads, int n_kv_heads,
                      int head_dim, float sm_scale, cudaStream_t stream, int splits, float* partial,
                      int* counts) {
  if (n <= 0) return cudaSuccess;
  if (n_kv_heads <= 0 || n_heads % n_kv_heads != 0 || n_heads / n_kv_heads > kMaxGroup ||
      splits < 1 || splits > kMaxSplits || (splits > 1 && (!partial || !counts)))
    return cudaErrorInvalidValue;
  switch (head_dim) {
#define VEX_ATTENTION_CASE(D)                                                                   \
  case D:                                                                                       \
    return launch<D>(q, q_stride, k_cache, v_cache, sinks, out, n, rows, window, ring, n_heads, \
                     n_kv_heads, sm_scale, splits, partial, counts, stream);
    VEX_ATTENTION_CASE(16)
    VEX_ATTENTION_CASE(32)
    VEX_ATTENTION_CASE(64)
    VEX_ATTENTION_CASE(128)
#undef VEX_ATTENTION_CASE
    default:
      return cudaErrorInvalidValue;
  }
}

std::vector<RowTile> row_tiles(const std::vector<int>& pos, const std::vector<int>& seq) {
  std::vector<RowTile> tiles;
  for (int t = 0; t < static_cast<int>(pos.size()); ++t) {
    const bool joins = t > 0 && tiles.back().count < kAttnTileRows && pos[t] == pos[t - 1] + 1 &&
                       (seq.empty() || seq[t] == seq[t - 1]);
    if (joins)
      ++tiles.back().count;
    else
      tiles.push_back({t, 1});
  }
  return tiles;
}

cudaError_t attention_prefill(const float* q, int q_stride, const uint16_t* k_cache,
                              const uint16_t* v_cache, const uint16_t* sinks, float* out,
                              const RowTile* tiles, int n_tiles, CacheRows rows, int window,
                              int ring, int n_heads, int n_kv_heads, int head_dim, float sm_scale,
                              cudaStream_t stream, uint16_t* out_bf16) {
  if (n_tiles <= 0) return cudaSuccess;
  if (n_kv_heads <= 0 || n_heads % n_kv_heads != 0 || n_heads / n_kv_heads > kMaxGroup ||
      n_tiles > 65535)
    return cudaErrorInvalidValue;
  switch (head_dim) {
#define VEX_PREFILL_CASE(D)                                                                       \
  case D:                                                                                         \
    return launch_prefill<D>(q, q_stride, k_cache, v_cache, sinks, out, out_bf16, tiles, n_tiles, \
                             rows, window, ring, n_heads, n_kv_heads, sm_scale, stream);
    VEX_PREFILL_CASE(16)
    VEX_PREFILL_CASE(32)
    VEX_PREFILL_CASE(64)
    VEX_PREFILL_CASE(128)
#undef VEX_PREFILL_CASE
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace vex::cuda
