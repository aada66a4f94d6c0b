#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/common.cuh"

namespace vex::cuda {
namespace {

// Block (token, query head), one warp: decode spreads the 64 heads over 64 SMs (the 8 heads of
// a KV group read the same K/V rows, which stay in L2). Each lane owns one key of a 32-key tile:
// it loads that key's K and V rows whole (16-byte loads, all lanes in parallel), scores it, and
// accumulates p * v over all d dimensions in its own registers; the online-softmax rescale is
// per tile, and the 32 partial outputs are summed across lanes once at the end. No step waits
// on another key's load. The sink starts the running max with its own term in the sum (§7.5).
//
// Split-K (decode): with gridDim.z = S > 1, block z takes the z-th of S equal key ranges
// (32-key aligned) and writes its unnormalized state (m, l, acc[D]) to partial; the sink joins
// only split 0. attention_combine_kernel merges the splits. With S = 1 the output is final.
template <int D>
__global__ void __launch_bounds__(32)
    attention_kernel(const float* __restrict__ q, int q_stride, const uint16_t* __restrict__ kc,
                     const uint16_t* __restrict__ vc, const uint16_t* __restrict__ sinks,
                     float* __restrict__ out, CacheRows rows, int window, int ring,
                     int n_heads, int n_kv_heads, float sm_scale, float* __restrict__ partial) {
  pdl_prologue();
  const int t = blockIdx.x, h = blockIdx.y, lane = threadIdx.x, z = blockIdx.z, S = gridDim.z;
  const int g = h / (n_heads / n_kv_heads), kv_dim = n_kv_heads * D;
  const int p = rows.pos[t], first = window > 0 ? max(0, p - window + 1) : 0;
  const int per = ((p - first + 1 + S - 1) / S + 31) / 32 * 32;  // keys per split
  const int lo = first + z * per, hi = min(p, lo + per - 1);
  __shared__ float qh[D];
  __shared__ float red[32][D + 1];  // +1: lanes write rows without bank conflicts
  for (int c = lane; c < D; c += 32) qh[c] = q[static_cast<int64_t>(t) * q_stride + h * D + c];
  __syncwarp();
  const int64_t base = cache_base(rows, t) + g * D;
  auto slot = [&](int j) { return base + static_cast<int64_t>(ring > 0 ? j % ring : j) * kv_dim; };

  float m = z == 0 ? bf16(sinks[h]) : -INFINITY;  // the running max, the sink's in split 0
  float l = z == 0 ? 1.0f : 0.0f;                 // this warp's sum, held by every lane
  float acc[D] = {};                              // this lane's keys: sum of p * v
  for (int j0 = lo; j0 <= hi; j0 += 32) {
    const int j = j0 + lane;
    const bool valid = j <= hi;
    float s = -INFINITY;
    uint4 vrow[D / 8];
    if (valid) {
      const uint4* kr = reinterpret_cast<const uint4*>(kc + slot(j));
      const uint4* vr = reinterpret_cast<const uint4*>(vc + slot(j));
      uint4 krow[D / 8];
#pragma unroll
      for (int c = 0; c < D / 8; ++c) krow[c] = kr[c], vrow[c] = vr[c];
      float dot = 0;
#pragma unroll
      for (int c = 0; c < D / 8; ++c) {
        float kf[8];
        bf16x8(krow[c], kf);
#pragma unroll
        for (int e = 0; e < 8; ++e) dot += qh[8 * c + e] * kf[e];
      }
      s = dot * sm_scale;
    }
    const float m_new = fmaxf(m, warp_max(s));
    const float scale = m == -INFINITY ? 0.0f : expf(m - m_new);
    const float pj = valid ? expf(s - m_new) : 0.0f;
    l = l * scale + warp_sum(pj);
#pragma unroll
    for (int c = 0; c < D / 8; ++c) {
      float vf[8];
      if (valid) bf16x8(vrow[c], vf);
#pragma unroll
      for (int e = 0; e < 8; ++e)
        acc[8 * c + e] = acc[8 * c + e] * scale + (valid ? pj * vf[e] : 0.0f);
    }
    m = m_new;
  }
  // Sum the lanes' partial outputs: transpose through shared memory, lane c adds column c.
#pragma unroll
  for (int c = 0; c < D; ++c) red[lane][c] = acc[c];
  __syncwarp();
  if (S == 1) {
    float* o = out + static_cast<int64_t>(t) * n_heads * D + h * D;
    for (int c = lane; c < D; c += 32) {
      float sum = 0;
      for (int r = 0; r < 32; ++r) sum += red[r][c];
      o[c] = sum / l;
    }
    return;
  }
  float* st = partial + ((static_cast<int64_t>(t) * n_heads + h) * S + z) * (D + 2);
  for (int c = lane; c < D; c += 32) {
    float sum = 0;
    for (int r = 0; r < 32; ++r) sum += red[r][c];
    st[2 + c] = sum;
  }
  if (lane == 0) st[0] = m, st[1] = l;
}

// Merges S split states per (token, head): out = sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M) l_s.
template <int D>
__global__ void attention_combine_kernel(const float* __restrict__ partial, int S, int n_heads,
                                         float* __restrict__ out) {
  pdl_prologue();
  const int t = blockIdx.x, h = blockIdx.y;
  const float* st = partial + (static_cast<int64_t>(t) * n_heads + h) * S * (D + 2);
  float M = -INFINITY;
  for (int z = 0; z < S; ++z) M = fmaxf(M, st[z * (D + 2)]);
  float L = 0;
  for (int z = 0; z < S; ++z) {
    const float mz = st[z * (D + 2)];
    if (mz != -INFINITY) L += expf(mz - M) * st[z * (D + 2) + 1];
  }
  for (int c = threadIdx.x; c < D; c += blockDim.x) {
    float sum = 0;
    for (int z = 0; z < S; ++z) {
      const float mz = st[z * (D + 2)];
      if (mz != -INFINITY) sum += expf(mz - M) * st[z * (D + 2) + 2 + c];
    }
    out[static_cast<int64_t>(t) * n_heads * D + h * D + c] = sum / L;
  }
}

template <int D>
cudaError_t launch(const float* q, int q_stride, const uint16_t* kc, const uint16_t* vc,
                   const uint16_t* sinks, float* out, int n, CacheRows rows, int window, int ring,
                   int n_heads, int n_kv_heads, float sm_scale, int splits, float* partial,
                   cudaStream_t stream) {
  launch_pdl(attention_kernel<D>, dim3(n, n_heads, splits), 32, 0, stream,
      q, q_stride, kc, vc, sinks, out, rows, window, ring, n_heads, n_kv_heads, sm_scale, partial);
  if (splits > 1)
    launch_pdl(attention_combine_kernel<D>, dim3(n, n_heads), D, 0, stream,
        partial, splits, n_heads, out);
  return cudaGetLastError();
}

}  // namespace

cudaError_t attention(const float* q, int q_stride, const uint16_t* k_cache,
                      const uint16_t* v_cache, const uint16_t* sinks, float* out, int n,
                      CacheRows rows, int window, int ring, int n_heads, int n_kv_heads,
                      int head_dim, float sm_scale, cudaStream_t stream, int splits,
                      float* partial) {
  if (n <= 0) return cudaSuccess;
  if (n_heads % n_kv_heads != 0 || splits < 1 || (splits > 1 && !partial))
    return cudaErrorInvalidValue;
  switch (head_dim) {
#define VEX_ATTENTION_CASE(D)                                                                   \
  case D:                                                                                       \
    return launch<D>(q, q_stride, k_cache, v_cache, sinks, out, n, rows, window, ring, n_heads,  \
                     n_kv_heads, sm_scale, splits, partial, stream);
    VEX_ATTENTION_CASE(16)
    VEX_ATTENTION_CASE(32)
    VEX_ATTENTION_CASE(64)
    VEX_ATTENTION_CASE(128)
#undef VEX_ATTENTION_CASE
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace vex::cuda
