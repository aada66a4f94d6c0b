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
template <int D>
__global__ void __launch_bounds__(32)
    attention_kernel(const float* __restrict__ q, int q_stride, const uint16_t* __restrict__ kc,
                     const uint16_t* __restrict__ vc, const uint16_t* __restrict__ sinks,
                     float* __restrict__ out, const int* __restrict__ pos0, int window, int ring,
                     int n_heads, int n_kv_heads, float sm_scale) {
  const int t = blockIdx.x, h = blockIdx.y, lane = threadIdx.x;
  const int g = h / (n_heads / n_kv_heads), kv_dim = n_kv_heads * D;
  const int p = *pos0 + t, lo = window > 0 ? max(0, p - window + 1) : 0;
  __shared__ float qh[D];
  __shared__ float red[32][D + 1];  // +1: lanes write rows without bank conflicts
  for (int c = lane; c < D; c += 32) qh[c] = q[static_cast<int64_t>(t) * q_stride + h * D + c];
  __syncwarp();
  auto slot = [&](int j) { return static_cast<int64_t>(ring > 0 ? j % ring : j) * kv_dim + g * D; };

  float m = bf16(sinks[h]), l = 1.0f;  // l: this warp's sum, held by every lane
  float acc[D] = {};                   // this lane's keys: sum of p * v
  for (int j0 = lo; j0 <= p; j0 += 32) {
    const int j = j0 + lane;
    const bool valid = j <= p;
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
    const float scale = expf(m - m_new);
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
  float* o = out + static_cast<int64_t>(t) * n_heads * D + h * D;
  for (int c = lane; c < D; c += 32) {
    float sum = 0;
    for (int r = 0; r < 32; ++r) sum += red[r][c];
    o[c] = sum / l;
  }
}

template <int D>
cudaError_t launch(const float* q, int q_stride, const uint16_t* kc, const uint16_t* vc,
                   const uint16_t* sinks, float* out, int n, const int* pos0, int window, int ring,
                   int n_heads, int n_kv_heads, float sm_scale, cudaStream_t stream) {
  attention_kernel<D><<<dim3(n, n_heads), 32, 0, stream>>>(
      q, q_stride, kc, vc, sinks, out, pos0, window, ring, n_heads, n_kv_heads, sm_scale);
  return cudaGetLastError();
}

}  // namespace

cudaError_t attention(const float* q, int q_stride, const uint16_t* k_cache,
                      const uint16_t* v_cache, const uint16_t* sinks, float* out, int n,
                      const int* pos0, int window, int ring, int n_heads, int n_kv_heads,
                      int head_dim, float sm_scale, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (n_heads % n_kv_heads != 0 || n_heads / n_kv_heads > 32) return cudaErrorInvalidValue;
  switch (head_dim) {
    case 16:
      return launch<16>(q, q_stride, k_cache, v_cache, sinks, out, n, pos0, window, ring, n_heads,
                        n_kv_heads, sm_scale, stream);
    case 32:
      return launch<32>(q, q_stride, k_cache, v_cache, sinks, out, n, pos0, window, ring, n_heads,
                        n_kv_heads, sm_scale, stream);
    case 64:
      return launch<64>(q, q_stride, k_cache, v_cache, sinks, out, n, pos0, window, ring, n_heads,
                        n_kv_heads, sm_scale, stream);
    case 128:
      return launch<128>(q, q_stride, k_cache, v_cache, sinks, out, n, pos0, window, ring, n_heads,
                         n_kv_heads, sm_scale, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace vex::cuda
