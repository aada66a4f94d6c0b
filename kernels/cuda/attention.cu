#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/split.cuh"

#include <cuda_bf16.h>

namespace vex::cuda {
namespace {

// The lanes' partial outputs of a warp summed across lanes (a reduce-scatter butterfly): at each
// step a lane keeps one half of its values (the upper half when its lane bit is set), sends the
// other to its partner and adds what comes back, so D values take D / 2 + D / 4 + ... shuffles,
// not 5 D. Lane l ends with the sums of dimensions base(l) + i, i < kOut; with D < 32 the 32 / D
// lanes that differ only in their low bits hold the same sums.
template <int D>
struct LaneSums {
  static constexpr int kOut = D >= 32 ? D / 32 : 1;
  float v[kOut];
  int base;
};

// One butterfly step over the first L values of a (offset O), then the next; base gathers the
// kept halves' offsets.
template <int L, int O, int N>
__device__ __forceinline__ void lane_sums_step(float (&a)[N], int lane, int& base) {
  if constexpr (O >= 1) {
    if constexpr (L > 1) {
      const bool up = lane & O;
#pragma unroll
      for (int i = 0; i < L / 2; ++i) {
        const float send = up ? a[i] : a[i + L / 2], keep = up ? a[i + L / 2] : a[i];
        a[i] = keep + __shfl_xor_sync(0xffffffffu, send, O);
      }
      if (up) base += L / 2;
      lane_sums_step<L / 2, O / 2>(a, lane, base);
    } else {  // D < 32: lanes share a dimension
      a[0] += __shfl_xor_sync(0xffffffffu, a[0], O);
      lane_sums_step<1, O / 2>(a, lane, base);
    }
  }
}

template <int D>
__device__ __forceinline__ LaneSums<D> lane_sums(float (&acc)[D], int lane) {
  int base = 0;
  lane_sums_step<D, 16>(acc, lane, base);  // acc is consumed
  LaneSums<D> r;
#pragma unroll
  for (int i = 0; i < LaneSums<D>::kOut; ++i) r.v[i] = acc[i];
  r.base = base;
  return r;
}

// Block (token t, KV head g, key range z), a warp per query head of the group (G = n_heads /
// n_kv_heads <= 8). The group's K and V rows of 32 P-key tiles are staged in shared memory by
// cp.async, kStages - 1 tiles ahead (16-byte unit u of row r at u ^ (r % 8): a warp's 8-lane
// phases read 8 bank groups), and read there by the G warps; a warp per query head reading them
// from L2 moved G times the group's bytes (bench/NOTES.md, session 10). Within a warp each lane
// owns P keys of the tile (lane + 32 i): it scores them against the head's query and
// accumulates p * v over all d dimensions in its own registers; the online-softmax rescale is
// per tile, and the 32 partial outputs are summed across lanes once at the end (lane_sums). The
// sink starts the running max with its own term in the sum (§7.5).
//
// Split-K (decode): with gridDim.z = S > 1, block z takes the z-th of S equal key ranges
// (tile aligned) and writes its unnormalized state (m, l, acc[D]) to partial; the sink joins
// only split 0. The last of the S blocks of (t, g) to finish merges them (at the kernel's end),
// so the split costs no kernel of its own. With S = 1 the output is final.
//
// P keys a lane per tile (tiles of 32 P keys): P = 2 halves the tile loop's reductions and
// barriers per key, with two stages of 64 keys (the shared memory of four of 32).
constexpr int kMaxGroup = 8;  // query heads per KV head
template <int D, int P>
__global__ void __launch_bounds__(32 * kMaxGroup)
    attention_kernel(const float* __restrict__ q, int q_stride, const uint16_t* __restrict__ kc,
                     const uint16_t* __restrict__ vc, const uint16_t* __restrict__ sinks,
                     float* __restrict__ out, CacheRows rows, int window, int ring, int n_heads,
                     int n_kv_heads, float sm_scale, float* __restrict__ partial,
                     int* __restrict__ counts) {
  pdl_prologue();
  constexpr int U = D / 8;                  // 16-byte units per key row
  constexpr int kSw = U < 8 ? U : 8;        // swizzle span (units)
  constexpr int kKeys = 32 * P;             // keys a tile
  constexpr int kStages = D <= 64 && P == 1 ? 4 : 2;  // 8 KB a stage at D = 64, P = 1
  __shared__ uint4 ks[kStages][kKeys][U], vs[kStages][kKeys][U];
  __shared__ float qs[kMaxGroup][D];
  const int t = blockIdx.x, g = blockIdx.y, z = blockIdx.z, S = gridDim.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, G = n_heads / n_kv_heads;
  const int h = g * G + warp, kv_dim = n_kv_heads * D;
  const int p = rows.pos[t], first = window > 0 ? max(0, p - window + 1) : 0;
  const int per = ((p - first + 1 + S - 1) / S + kKeys - 1) / kKeys * kKeys;  // keys per split
  const int lo = first + z * per, hi = min(p, lo + per - 1);
  float* qh = qs[warp];
  for (int c = lane; c < D; c += 32) qh[c] = q[static_cast<int64_t>(t) * q_stride + h * D + c];
  const int64_t base = cache_base(rows, t) + g * D;
  auto stage = [&](int j0) {  // tile j0 into its buffer; an empty group past the range
    if (j0 <= hi) {
      const int buf = (j0 - lo) / kKeys % kStages;
      for (int i = threadIdx.x; i < 2 * kKeys * U; i += blockDim.x) {
        const int which = i / (kKeys * U), r = i / U % kKeys, u = i % U;
        const int j = min(j0 + r, hi);  // past the range: a copy of its last key, never scored
        const int64_t at = base + static_cast<int64_t>(ring > 0 ? j % ring : j) * kv_dim + u * 8;
        uint4* dst = which ? &vs[buf][r][u ^ (r % kSw)] : &ks[buf][r][u ^ (r % kSw)];
        cp_async16(dst, (which ? vc : kc) + at);
      }
    }
    cp_async_commit();
  };
#pragma unroll
  for (int i = 0; i < kStages - 1; ++i) stage(lo + kKeys * i);

  float m = z == 0 ? bf16(sinks[h]) : -INFINITY;  // the running max, the sink's in split 0
  float l = z == 0 ? 1.0f : 0.0f;                 // this warp's sum, held by every lane
  float acc[D] = {};                              // this lane's keys: sum of p * v
  for (int j0 = lo; j0 <= hi; j0 += kKeys) {
    const int buf = (j0 - lo) / kKeys % kStages;
    cp_async_wait<kStages - 2>();
    __syncthreads();  // tile j0 is in (and the queries); every warp is done with the tile before
    stage(j0 + kKeys * (kStages - 1));  // into the tile before's buffer
    float s[P], best = -INFINITY;  // key lane + 32 i of the tile: row lane + 32 i, swizzled alike
#pragma unroll
    for (int i = 0; i < P; ++i) {
      s[i] = -INFINITY;
      if (j0 + lane + 32 * i <= hi) {
        float dot[4] = {};  // four chains: the score is not one chain of d dependent FMAs
#pragma unroll
        for (int c = 0; c < U; ++c) {
          float kf[8];
          bf16x8(ks[buf][lane + 32 * i][c ^ (lane % kSw)], kf);
#pragma unroll
          for (int e = 0; e < 8; ++e) dot[e % 4] += qh[8 * c + e] * kf[e];
        }
        s[i] = ((dot[0] + dot[1]) + (dot[2] + dot[3])) * sm_scale;
      }
      best = fmaxf(best, s[i]);
    }
    const float m_new = fmaxf(m, warp_max(best));
    const float scale = m == -INFINITY ? 0.0f : expf(m - m_new);
    float pj[P], psum = 0;
#pragma unroll
    for (int i = 0; i < P; ++i) {
      pj[i] = j0 + lane + 32 * i <= hi ? expf(s[i] - m_new) : 0.0f;
      psum += pj[i];
    }
    l = l * scale + warp_sum(psum);
    if (m_new != m) {  // warp-uniform; at depth the running max rarely moves
#pragma unroll
      for (int c = 0; c < D; ++c) acc[c] *= scale;
    }
#pragma unroll
    for (int i = 0; i < P; ++i)
      if (j0 + lane + 32 * i <= hi) {
#pragma unroll
        for (int c = 0; c < U; ++c) {
          float vf[8];
          bf16x8(vs[buf][lane + 32 * i][c ^ (lane % kSw)], vf);
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[8 * c + e] = fmaf(pj[i], vf[e], acc[8 * c + e]);
        }
      }
    m = m_new;
  }
  const LaneSums<D> sums = lane_sums(acc, lane);
  const bool writes = lane % (D >= 32 ? 1 : 32 / D) == 0;  // one lane of those sharing the sums
  if (S == 1) {
    float* o = out + static_cast<int64_t>(t) * n_heads * D + h * D;
#pragma unroll
    for (int i = 0; i < LaneSums<D>::kOut; ++i)
      if (writes) o[sums.base + i] = sums.v[i] / l;
    return;
  }
  float* sh = partial + (static_cast<int64_t>(t) * n_heads + h) * S * (D + 2);
  float* st = sh + z * (D + 2);
#pragma unroll
  for (int i = 0; i < LaneSums<D>::kOut; ++i)
    if (writes) st[2 + sums.base + i] = sums.v[i];
  if (lane == 0) st[0] = m, st[1] = l;
  // Each block's state, fenced, before its count; the block that counts last reads them all
  // (from L2: written by other SMs in this grid) and leaves the count at 0 for the next launch.
  __shared__ int ticket;
  __threadfence();
  __syncthreads();
  int* count = counts + static_cast<int64_t>(t) * n_kv_heads + g;
  if (threadIdx.x == 0) ticket = atomicAdd(count, 1);
  __syncthreads();
  if (ticket != S - 1) return;
  __threadfence();
  if (threadIdx.x == 0) *count = 0;
  // Warp w merges head h: out = sum_z e^(m_z - M) acc_z / sum_z e^(m_z - M) l_z, in z order.
  __shared__ float wz[kMaxGroup][kMaxSplits];  // e^(m_z - M): 0 for a range that had no keys
  float M = -INFINITY;
  for (int zz = lane; zz < S; zz += 32) M = fmaxf(M, __ldcg(sh + zz * (D + 2)));
  M = warp_max(M);  // finite: split 0 holds the sink
  for (int zz = lane; zz < S; zz += 32) {
    const float mz = __ldcg(sh + zz * (D + 2));
    wz[warp][zz] = mz == -INFINITY ? 0.0f : expf(mz - M);
  }
  __syncwarp();
  float L = 0;
  for (int zz = 0; zz < S; ++zz) L += wz[warp][zz] * __ldcg(sh + zz * (D + 2) + 1);
  float* o = out + static_cast<int64_t>(t) * n_heads * D + h * D;
  for (int c = lane; c < D; c += 32) {
    float sum = 0;
    for (int zz = 0; zz < S; ++zz) sum += wz[warp][zz] * __ldcg(sh + zz * (D + 2) + 2 + c);
    o[c] = sum / L;
  }
}

template <int D>
cudaError_t launch(const float* q, int q_stride, const uint16_t* kc, const uint16_t* vc,
                   const uint16_t* sinks, float* out, int n, CacheRows rows, int window, int ring,
                   int n_heads, int n_kv_heads, float sm_scale, int splits, float* partial,
                   int* counts, cudaStream_t stream) {
  // Two keys a lane where the 64-key tiles' two stages fit the static shared memory (d <= 64):
  // d8192 +0.6 %, d32768 +2.1 % (bench/NOTES.md, session 14).
  constexpr int P = D <= 64 ? 2 : 1;
  launch_pdl(attention_kernel<D, P>, dim3(n, n_kv_heads, splits), 32 * (n_heads / n_kv_heads), 0,
             stream, q, q_stride, kc, vc, sinks, out, rows, window, ring, n_heads, n_kv_heads,
             sm_scale, partial, counts);
  return cudaGetLastError();
}

// ---- Prefill on tensor cores ----------------------------------------------------------------

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
                      int head_dim, float sm_scale, cudaStream_t stream, int splits,
                      float* partial, int* counts) {
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
