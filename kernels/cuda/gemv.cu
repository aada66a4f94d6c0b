#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemv.cuh"
#include "kernels/cuda/rope.cuh"

namespace vex::cuda {
namespace {

constexpr int kWarps = 8;  // rows per block

// One warp per output row; lane l reads 8 consecutive weights at k = 8 l + 256 i, so a warp
// reads 512 contiguous bytes per step. T tokens share every weight load.
//
// The weights do not depend on the kernel before this one, so the first step's loads are issued
// before waiting for it (pdl_prologue): under programmatic dependent launch they stream in while
// that kernel finishes, and while the block computes the norm. Each later step's loads are issued
// before the current step's arithmetic, so a warp always has two steps (2 KB) in flight. (Rows
// past N, in the last block, load row N - 1 and return before using it.)
constexpr int kStep = 2;  // 16-byte loads per lane per step

struct Step {
  uint4 w[kStep];
};

__device__ __forceinline__ void load_step(const uint4* w, int c0, int chunks, Step& s) {
#pragma unroll
  for (int u = 0; u < kStep; ++u)
    if (c0 + 32 * u < chunks) s.w[u] = __ldg(w + c0 + 32 * u);
}

// kRope (the decode QKV projection, gemv_qkv_rope): a block's warps take four pairs of rows
// (i, i + d/2) of a head, warps w and w + 4 a pair, so that the block can rotate them (rope_kv's
// arithmetic, rope.cuh) and write k and v to the cache itself: one launch fewer a layer.
constexpr int kPairs = kWarps / 2;
template <int T, bool kRope = false>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_kernel(const float* __restrict__ x, const uint16_t* __restrict__ W,
                const uint16_t* __restrict__ b, float* __restrict__ y, int K, int N,
                bool accumulate, const uint16_t* __restrict__ gain, float eps, RopeKv rope) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, chunks = K / 8;
  int row = blockIdx.x * kWarps + warp;
  if constexpr (kRope) {
    const int half = rope.head_dim / 2, p = blockIdx.x * kPairs + warp % kPairs;
    row = p / half * rope.head_dim + p % half + warp / kPairs * half;
  }
  const uint4* w = reinterpret_cast<const uint4*>(W + static_cast<int64_t>(min(row, N - 1)) * K);
  const uint4* g = reinterpret_cast<const uint4*>(gain);
  Step cur;
  load_step(w, lane, chunks, cur);
  pdl_prologue();
  // Fused RMSNorm: the block's threads share each token's sum of squares, so every warp's
  // part is a few loads; lanes then use (x * r[t]) * g.
  __shared__ float part[kWarps][T], r[T];
  if (gain) {
    float ss[T] = {};
    for (int c = threadIdx.x; c < K / 4; c += kWarps * 32)
#pragma unroll
      for (int t = 0; t < T; ++t) {
        const float4 v = reinterpret_cast<const float4*>(x + static_cast<int64_t>(t) * K)[c];
        ss[t] += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
      }
#pragma unroll
    for (int t = 0; t < T; ++t) {
      ss[t] = warp_sum(ss[t]);
      if (lane == 0) part[warp][t] = ss[t];
    }
    __syncthreads();
    if (threadIdx.x < T) {
      float total = 0;
      for (int i = 0; i < kWarps; ++i) total += part[i][threadIdx.x];
      r[threadIdx.x] = rsqrtf(total / K + eps);
    }
    __syncthreads();
  }
  if (row >= N) return;
  float acc[T] = {};
  for (int c0 = lane; c0 < chunks; c0 += kStep * 32) {
    Step next;
    if (c0 + kStep * 32 < chunks) load_step(w, c0 + kStep * 32, chunks, next);
#pragma unroll
    for (int u = 0; u < kStep; ++u) {
      const int c = c0 + 32 * u;
      if (c >= chunks) break;
      float wf[8], gf[8];
      bf16x8(cur.w[u], wf);
      if (gain) bf16x8(__ldg(g + c), gf);  // the same for every row: from L1
#pragma unroll
      for (int t = 0; t < T; ++t) {
        const float4* xt = reinterpret_cast<const float4*>(x + static_cast<int64_t>(t) * K) + 2 * c;
        float xv[8] = {xt[0].x, xt[0].y, xt[0].z, xt[0].w, xt[1].x, xt[1].y, xt[1].z, xt[1].w};
        if (gain)
#pragma unroll
          for (int e = 0; e < 8; ++e) xv[e] = (xv[e] * r[t]) * gf[e];
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[t] += wf[e] * xv[e];
      }
    }
    cur = next;
  }
  const float bias = b ? bf16(b[row]) : 0.0f;
  if constexpr (kRope) {
    __shared__ float val[T][kWarps];
#pragma unroll
    for (int t = 0; t < T; ++t) {
      const float s = warp_sum(acc[t]);
      if (lane == 0) val[t][warp] = s + bias;
    }
    __syncthreads();
    if (threadIdx.x >= T * kPairs) return;
    const int t = threadIdx.x / kPairs, pp = threadIdx.x % kPairs, d = rope.head_dim;
    const int half = d / 2, p = blockIdx.x * kPairs + pp, h = p / half, i = p % half;
    const int H = rope.n_heads + rope.n_kv_heads, pos = rope.rows.pos[t];
    const float x1 = val[t][pp], x2 = val[t][pp + kPairs];
    float* out = y + static_cast<int64_t>(t) * N + h * d;
    float r1 = x1, r2 = x2;  // q rotated in y; k and v as computed, as rope_kv leaves them
    if (h < H) {
      float c, s;
      rope_angle(pos, rope.inv_freq[i], rope.concentration, c, s);
      rope_rotate(x1, x2, c, s, r1, r2);
    }
    out[i] = h < rope.n_heads ? r1 : x1, out[i + half] = h < rope.n_heads ? r2 : x2;
    if (h < rope.n_heads) return;
    const int g = h < H ? h - rope.n_heads : h - H;
    uint16_t* cache = (h < H ? rope.k_cache : rope.v_cache) +
                      rope_cache_at(rope.rows, t, pos, rope.ring, rope.n_kv_heads * d, g, d);
    cache[i] = to_bf16(r1), cache[i + half] = to_bf16(r2);
  } else {
#pragma unroll
    for (int t = 0; t < T; ++t) {
      const float s = warp_sum(acc[t]);
      if (lane == 0) {
        float* out = y + static_cast<int64_t>(t) * N + row;
        *out = (accumulate ? *out : 0.0f) + s + bias;
      }
    }
  }
}

template <int T>
cudaError_t launch(const float* x, const uint16_t* W, const uint16_t* b, float* y, int K, int N,
                   bool accumulate, cudaStream_t stream, const uint16_t* gain, float eps,
                   const RopeKv* rope) {
  const int blocks = (N + kWarps - 1) / kWarps;
  if (rope)
    launch_pdl(gemv_kernel<T, true>, blocks, kWarps * 32, 0, stream, x, W, b, y, K, N, false, gain,
               eps, *rope);
  else
    launch_pdl(gemv_kernel<T>, blocks, kWarps * 32, 0, stream, x, W, b, y, K, N, accumulate, gain,
               eps, RopeKv{});
  return cudaGetLastError();
}

// gemv_bf16 and gemv_qkv_rope: groups of 8 tokens, each group's rows of `rope` from its first.
cudaError_t gemv_groups(const float* x, const uint16_t* W, const uint16_t* b, float* y, int n,
                        int K, int N, bool accumulate, cudaStream_t stream,
                        const uint16_t* norm_gain, float eps, const RopeKv* rope) {
  if (K % 8 != 0) return cudaErrorInvalidValue;
  // Groups of 8 tokens; the tail with the matching instantiation (the one dispatch switch).
  for (int t0 = 0; t0 < n; t0 += 8) {
    const float* xt = x + static_cast<int64_t>(t0) * K;
    float* yt = y + static_cast<int64_t>(t0) * N;
    const uint16_t* g = norm_gain;
    RopeKv r;
    if (rope) {
      r = *rope;
      r.rows.pos += t0;
      if (r.rows.seq) r.rows.seq += t0;
    }
    const RopeKv* rt = rope ? &r : nullptr;
    cudaError_t err;
    switch (n - t0 >= 8 ? 8 : n - t0) {
      case 1:
        err = launch<1>(xt, W, b, yt, K, N, accumulate, stream, g, eps, rt);
        break;
      case 2:
        err = launch<2>(xt, W, b, yt, K, N, accumulate, stream, g, eps, rt);
        break;
      case 3:
        err = launch<3>(xt, W, b, yt, K, N, accumulate, stream, g, eps, rt);
        break;
      case 4:
        err = launch<4>(xt, W, b, yt, K, N, accumulate, stream, g, eps, rt);
        break;
      case 5:
        err = launch<5>(xt, W, b, yt, K, N, accumulate, stream, g, eps, rt);
        break;
      case 6:
        err = launch<6>(xt, W, b, yt, K, N, accumulate, stream, g, eps, rt);
        break;
      case 7:
        err = launch<7>(xt, W, b, yt, K, N, accumulate, stream, g, eps, rt);
        break;
      default:
        err = launch<8>(xt, W, b, yt, K, N, accumulate, stream, g, eps, rt);
        break;
    }
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

}  // namespace

cudaError_t gemv_bf16(const float* x, const uint16_t* W, const uint16_t* b, float* y, int n, int K,
                      int N, bool accumulate, cudaStream_t stream, const uint16_t* norm_gain,
                      float eps) {
  return gemv_groups(x, W, b, y, n, K, N, accumulate, stream, norm_gain, eps, nullptr);
}

cudaError_t gemv_qkv_rope(const float* x, const uint16_t* W, const uint16_t* b, float* y, int n,
                          int K, int N, const RopeKv& rope, cudaStream_t stream,
                          const uint16_t* norm_gain, float eps) {
  const int d = rope.head_dim;
  if (d <= 0 || d % (2 * kPairs) != 0 || N != (rope.n_heads + 2 * rope.n_kv_heads) * d ||
      !rope.rows.pos || !rope.inv_freq || !rope.k_cache || !rope.v_cache)
    return cudaErrorInvalidValue;
  return gemv_groups(x, W, b, y, n, K, N, false, stream, norm_gain, eps, &rope);
}

}  // namespace vex::cuda
