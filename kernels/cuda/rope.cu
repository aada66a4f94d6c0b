#include "kernels/cuda/common.cuh"
#include "kernels/cuda/rope.cuh"

#include <algorithm>

namespace vex::cuda {
namespace {

// Block (token, head group): thread (i, j) rotates the pair (i, i + d/2) of heads j, j + J, ...
// (q heads, then k heads), with the one angle the token's heads share computed once. A prefill
// pass runs one block per token (a block per (token, head) was 72 tiny blocks a token: 93 us a
// 1,024-token pass on gpt-oss-20b, against ~13 us of memory traffic).
__global__ void rope_kv_kernel(float* __restrict__ qkv, int stride, RopeKv r) {
  pdl_prologue();
  const int half = r.head_dim / 2, i = threadIdx.x % half, J = blockDim.x / half;
  const int t = blockIdx.x, pos = r.rows.pos[t], kv_dim = r.n_kv_heads * r.head_dim;
  float s, c;
  rope_angle(pos, r.inv_freq[i], r.concentration, c, s);
  float* row = qkv + static_cast<int64_t>(t) * stride;
  for (int h = blockIdx.y * J + threadIdx.x / half; h < r.n_heads + r.n_kv_heads;
       h += gridDim.y * J) {
    float* x = row + h * r.head_dim;  // q heads, then k heads right after them
    float r1, r2;
    rope_rotate(x[i], x[i + half], c, s, r1, r2);
    if (h < r.n_heads) {
      x[i] = r1, x[i + half] = r2;
      continue;
    }
    const int g = h - r.n_heads;
    const int64_t at = rope_cache_at(r.rows, t, pos, r.ring, kv_dim, g, r.head_dim);
    uint16_t* kd = r.k_cache + at;
    uint16_t* vd = r.v_cache + at;
    const float* v = row + (r.n_heads + r.n_kv_heads + g) * r.head_dim;
    kd[i] = to_bf16(r1), kd[i + half] = to_bf16(r2);
    vd[i] = to_bf16(v[i]), vd[i + half] = to_bf16(v[i + half]);
  }
}

}  // namespace

cudaError_t rope_kv(float* qkv, int stride, int n, const RopeKv& r, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (r.head_dim % 2 != 0 || r.head_dim > 2048) return cudaErrorInvalidValue;
  // J heads at a time per block (about 256 threads); a few rows (decode) spread their heads
  // over blocks, a prefill pass takes one block per token.
  const int half = r.head_dim / 2, J = std::max(1, 256 / half), H = r.n_heads + r.n_kv_heads;
  const int groups = n >= 64 ? 1 : (H + J - 1) / J;
  launch_pdl(rope_kv_kernel, dim3(n, groups), half * J, 0, stream, qkv, stride, r);
  return cudaGetLastError();
}

}  // namespace vex::cuda
