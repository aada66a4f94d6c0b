#include "kernels/cuda/common.cuh"
#include "kernels/cuda/sampling.cuh"

namespace vex::cuda {
namespace {

constexpr int kThreads = 1024;

// The first index of the largest value of l[0, V), to every thread of the block (as vex::argmax).
__device__ int block_argmax(const float* __restrict__ l, int V) {
  float best = -INFINITY;
  int at = 0x7FFFFFFF;
  for (int i = threadIdx.x; i < V; i += kThreads)
    if (l[i] > best) best = l[i], at = i;  // ascending i: first max kept
  __shared__ float sv[kThreads];
  __shared__ int si[kThreads];
  sv[threadIdx.x] = best, si[threadIdx.x] = at;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      const float v = sv[threadIdx.x + half];
      const int i = si[threadIdx.x + half];
      if (v > sv[threadIdx.x] || (v == sv[threadIdx.x] && i < si[threadIdx.x]))
        sv[threadIdx.x] = v, si[threadIdx.x] = i;
    }
    __syncthreads();
  }
  const int r = si[0];
  __syncthreads();
  return r;
}

// Block r: row r of the logits.
__global__ void argmax_kernel(const float* __restrict__ logits, int V, int32_t* out, int* pos,
                              int advance) {
  const int r = blockIdx.x;
  const int at = block_argmax(logits + static_cast<int64_t>(r) * V, V);
  if (threadIdx.x == 0) {
    out[r] = at;
    pos[r] += advance;
  }
}

// ---- Sampling (twin of vex::Sampler::sample) ----
//
// The kept tokens are always a prefix of the order (weight descending, id ascending), so they
// are described by a threshold weight v and a tie count e: every w > v, and the first e tokens
// (by id) with w == v. Weights are w = exp(z - max z), z = logit / temperature, as the CPU. Each
// filter narrows (v, e) with block-wide tallies over the row (bisection on the bits of v: positive
// floats order as their bits); the draw then walks the kept tokens in id order.

struct Tally {
  int gt, eq;      // tokens with w > v, w == v
  double mass_gt;  // sum of w over w > v
};

// Token i's weight w = exp(z_i - max z), z = logit / temperature, in fp32 as the CPU.
struct Weights {
  const float* l;
  float temperature, mx;
  __device__ float operator()(int i) const { return expf(l[i] / temperature - mx); }
};

template <typename T>
__device__ T block_sum(T v, T* smem) {
  v = warp_sum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kThreads / 32 ? smem[lane] : T(0);
    v = warp_sum(v);
    if (lane == 0) smem[0] = v;
  }
  __syncthreads();
  const T r = smem[0];
  __syncthreads();
  return r;
}

__device__ Tally tally(const Weights& weight, int V, float v, double* dsm, int* ism) {
  int gt = 0, eq = 0;
  double mass = 0;
  for (int i = threadIdx.x; i < V; i += kThreads) {
    const float w = weight(i);
    if (w > v)
      ++gt, mass += w;
    else if (w == v)
      ++eq;
  }
  Tally t;
  t.gt = block_sum(gt, ism);
  t.eq = block_sum(eq, ism);
  t.mass_gt = block_sum(mass, dsm);
  return t;
}

// Exclusive prefix sum over the block's threads (in thread order).
template <typename T>
__device__ T block_exclusive_scan(T v, T* smem) {
  smem[threadIdx.x] = v;
  __syncthreads();
  for (int off = 1; off < kThreads; off *= 2) {
    const T add = threadIdx.x >= off ? smem[threadIdx.x - off] : T(0);
    __syncthreads();
    smem[threadIdx.x] += add;
    __syncthreads();
  }
  const T r = smem[threadIdx.x] - v;
  __syncthreads();
  return r;
}

__global__ void __launch_bounds__(kThreads)
    sample_kernel(const float* __restrict__ logits, int V, const SamplingConfig* __restrict__ cfg,
                  uint64_t* draws, int32_t* out, int* pos, int advance) {
  const int r = blockIdx.x;
  const float* l = logits + static_cast<int64_t>(r) * V;
  const SamplingConfig c = cfg[r];
  __shared__ double dsm[kThreads];
  __shared__ int ism[kThreads];
  __shared__ float fsm[32];
  // A greedy row (a batch mixes requests): argmax, no draw, as vex::Sampler.
  if (c.temperature == 0 || c.top_k == 1) {
    const int at = block_argmax(l, V);
    if (threadIdx.x == 0) {
      out[r] = at;
      pos[r] += advance;
    }
    return;
  }

  // Max of z = logit / T (block max through warps).
  float mx = -INFINITY;
  bool overflow = false;
  for (int i = threadIdx.x; i < V; i += kThreads) {
    const float z = l[i] / c.temperature;
    mx = fmaxf(mx, z);
    overflow |= isinf(z) && isfinite(l[i]);
  }
  // A temperature so small that a finite logit / T overflows is the T -> 0 limit: greedy, with
  // no draw (as the CPU sampler; the softmax would otherwise subtract inf from inf).
  if (__syncthreads_or(overflow)) {
    const int at = block_argmax(l, V);
    if (threadIdx.x == 0) {
      out[r] = at;
      pos[r] += advance;
    }
    return;
  }
  mx = warp_max(mx);
  if (threadIdx.x % 32 == 0) fsm[threadIdx.x / 32] = mx;
  __syncthreads();
  mx = -INFINITY;
  for (int w = 0; w < kThreads / 32; ++w) mx = fmaxf(mx, fsm[w]);
  __syncthreads();
  const Weights weight{l, c.temperature, mx};

  // (v, e): start with every token (v below all weights).
  float v = -1.0f;
  int e = 0;
  auto bits = [](float f) { return __float_as_uint(f); };
  auto value = [](uint32_t b) { return __uint_as_float(b); };
  const bool top_k = c.top_k > 0 && c.top_k < V;
  if (top_k) {
    // The k-th largest weight: the largest v with count(w >= v) >= k.
    uint32_t lo = 0, hi = bits(1.0f);
    while (lo < hi) {
      const uint32_t mid = lo + (hi - lo + 1) / 2;
      const Tally t = tally(weight, V, value(mid), dsm, ism);
      if (t.gt + t.eq >= c.top_k) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    v = value(lo);
  }
  const Tally at_v = tally(weight, V, v, dsm, ism);
  if (top_k) e = c.top_k - at_v.gt;  // the ties at the k-th weight that fit in k
  double total = at_v.mass_gt + double(e) * v;
  if (c.top_p < 1) {
    // The largest v' >= v whose kept mass (w >= v', within the kept set) reaches top_p * total,
    // then as many ties at v' as the CPU's running sum takes.
    const double target = double(c.top_p) * total;
    uint32_t lo = top_k ? bits(v) : 0, hi = bits(1.0f);
    while (lo < hi) {
      const uint32_t mid = lo + (hi - lo + 1) / 2;
      const Tally t = tally(weight, V, value(mid), dsm, ism);
      if (t.mass_gt + double(t.eq) * value(mid) >= target) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    const float nv = value(lo);
    const Tally t = tally(weight, V, nv, dsm, ism);
    const int ties = (top_k && nv == v) ? e : t.eq;
    double mass = t.mass_gt;
    int j = 0;
    while (j < ties && mass < target) mass += nv, ++j;
    v = nv, e = j;
    total = mass;
  }
  if (c.min_p > 0 && c.min_p > v) {
    const Tally t = tally(weight, V, c.min_p, dsm, ism);
    v = c.min_p, e = t.eq;
    total = t.mass_gt + double(e) * v;
  }

  // The draw, in id order: thread t walks ids [t per, (t+1) per).
  // splitmix64 of (seed, draw index), as Sampler::uniform.
  const uint64_t draw = draws[r] + 1;
  uint64_t z = c.seed + 0x9E3779B97F4A7C15ull * draw;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  const double u = static_cast<double>(z >> 11) * 0x1.0p-53 * total;

  const int per = (V + kThreads - 1) / kThreads;
  const int i0 = min(V, threadIdx.x * per), i1 = min(V, i0 + per);
  int my_ties = 0;
  for (int i = i0; i < i1; ++i) my_ties += weight(i) == v;
  int rank = block_exclusive_scan(my_ties, ism);
  double my_mass = 0;
  int last = -1;
  {
    int rk = rank;
    for (int i = i0; i < i1; ++i) {
      const float w = weight(i);
      const bool keep = w > v || (w == v && rk++ < e);
      if (keep) my_mass += w, last = i;
    }
  }
  const double before = block_exclusive_scan(my_mass, dsm);
  __shared__ int chosen, last_kept;
  if (threadIdx.x == 0) chosen = -1, last_kept = -1;
  __syncthreads();
  atomicMax(&last_kept, last);
  if (my_mass > 0 && u >= before && u < before + my_mass) {
    double acc = before;
    int rk = rank;
    for (int i = i0; i < i1; ++i) {
      const float w = weight(i);
      const bool keep = w > v || (w == v && rk++ < e);
      if (!keep) continue;
      acc += w;
      if (u < acc) {
        chosen = i;
        break;
      }
    }
    if (chosen < 0) chosen = last;  // rounding at the thread's end: its last kept token
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    out[r] = chosen >= 0 ? chosen : last_kept;  // u rounded up to total: the last kept token
    draws[r] = draw;
    pos[r] += advance;
  }
}

}  // namespace

cudaError_t sample_next(const float* logits, int V, int rows, const SamplingConfig* config,
                        uint64_t* draws, int32_t* out, int* pos, int advance, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (V <= 0 || V > (1 << 24)) return cudaErrorInvalidValue;
  sample_kernel<<<rows, kThreads, 0, stream>>>(logits, V, config, draws, out, pos, advance);
  return cudaGetLastError();
}

cudaError_t argmax_next(const float* logits, int V, int rows, int32_t* out, int* pos, int advance,
                        cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  argmax_kernel<<<rows, kThreads, 0, stream>>>(logits, V, out, pos, advance);
  return cudaGetLastError();
}

}  // namespace vex::cuda
