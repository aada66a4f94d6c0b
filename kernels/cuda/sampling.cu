#include <cooperative_groups.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/sampling.cuh"

namespace vex::cuda {
namespace {

constexpr int kThreads = 1024;
// A sampled row is read by a cluster of blocks, each a slice (Hopper distributed shared memory
// joins them); its first block then filters and draws.
constexpr int kCluster = 8;
// Tokens a filtered row keeps in shared memory as its candidates (sampling below).
constexpr int kCandidates = 2048;
// Buckets of the weights' histogram: a weight w in (0, 1] has its bits >> 18 (exponent and the
// top 5 mantissa bits) below 4096; a bucket's floor is within 1/32 of its weights.
constexpr int kBuckets = 4096, kBucketShift = 18;

// f(i, l[i]) for this thread's share of the row, each index once, ascending within the thread:
// 16-byte loads where the row allows (V % 4 == 0), so that a thread has several loads in flight
// (a row pass of one block is bound by load latency, not bandwidth).
template <typename F>
__device__ __forceinline__ void for_row(const float* __restrict__ l, int V, F&& f) {
  if (V % 4 == 0 && reinterpret_cast<uintptr_t>(l) % 16 == 0) {
    const float4* l4 = reinterpret_cast<const float4*>(l);
#pragma unroll 4
    for (int q = threadIdx.x; q < V / 4; q += kThreads) {
      const float4 x = __ldg(l4 + q);
      f(4 * q, x.x), f(4 * q + 1, x.y), f(4 * q + 2, x.z), f(4 * q + 3, x.w);
    }
  } else {
    for (int i = threadIdx.x; i < V; i += kThreads) f(i, __ldg(l + i));
  }
}

// The first index of the largest value of l[0, V), to every thread of the block (as vex::argmax).
__device__ int block_argmax(const float* __restrict__ l, int V) {
  float best = -INFINITY;
  int at = 0x7FFFFFFF;
  for_row(l, V, [&](int i, float x) {
    if (x > best) best = x, at = i;  // ascending i within a thread: its first max kept
  });
  auto better = [](float v, int i, float bv, int bi) { return v > bv || (v == bv && i < bi); };
  for (int off = 16; off > 0; off /= 2) {
    const float v = __shfl_xor_sync(0xffffffffu, best, off);
    const int i = __shfl_xor_sync(0xffffffffu, at, off);
    if (better(v, i, best, at)) best = v, at = i;
  }
  __shared__ float sv[kThreads / 32];
  __shared__ int si[kThreads / 32];
  if (threadIdx.x % 32 == 0) sv[threadIdx.x / 32] = best, si[threadIdx.x / 32] = at;
  __syncthreads();
  best = sv[0], at = si[0];
  for (int w = 1; w < kThreads / 32; ++w)
    if (better(sv[w], si[w], best, at)) best = sv[w], at = si[w];
  __syncthreads();
  return at;
}

// Row r's slice [s0, s1) for the block of rank q in its cluster (16-byte aligned starts).
__device__ __forceinline__ void row_slice(int V, int q, int* s0, int* s1) {
  const int chunk = ((V + kCluster - 1) / kCluster + 3) / 4 * 4;
  *s0 = min(V, q * chunk), *s1 = min(V, *s0 + chunk);
}

// The first index of the largest value of the row l[0, V), read by the calling cluster (a slice
// a block), to block 0 (as vex::argmax); every block of the cluster must call it.
__device__ int cluster_argmax(const float* __restrict__ l, int V) {
  namespace cg = cooperative_groups;
  const cg::cluster_group cluster = cg::this_cluster();
  const int rank = static_cast<int>(cluster.block_rank());
  int s0, s1;
  row_slice(V, rank, &s0, &s1);
  // A slice with no value above -inf has no maximum (block_argmax then returns past its end).
  const int local = s1 > s0 ? block_argmax(l + s0, s1 - s0) : 0x7FFFFFFF;
  const int at = local < s1 - s0 ? s0 + local : -1;
  __shared__ float best;
  __shared__ int best_at;
  if (threadIdx.x == 0) best = at >= 0 ? l[at] : -INFINITY, best_at = at;
  cluster.sync();
  int r = -1;
  if (rank == 0) {  // slices in rank order, ascending ids: the first maximum
    float v = -INFINITY;
    for (int q = 0; q < kCluster; ++q) {
      const int i = *cluster.map_shared_rank(&best_at, q);
      const float b = *cluster.map_shared_rank(&best, q);
      if (i >= 0 && (r < 0 || b > v)) v = b, r = i;
    }
  }
  cluster.sync();  // block 0 is done reading the others
  return r >= 0 ? r : 0;  // every value -inf: token 0, as vex::argmax
}

// Row r: the cluster r.
__global__ void __cluster_dims__(kCluster, 1, 1) __launch_bounds__(kThreads)
    argmax_kernel(const float* __restrict__ logits, int V, int32_t* out, int* pos, int advance) {
  pdl_prologue();
  const int r = blockIdx.x / kCluster;
  const int at = cluster_argmax(logits + static_cast<int64_t>(r) * V, V);
  if (cooperative_groups::this_cluster().block_rank() == 0 && threadIdx.x == 0) {
    out[r] = at;
    pos[r] += advance;
  }
}

// ---- Sampling (twin of vex::Sampler::sample) ----
//
// The kept tokens are always a prefix of the order (weight descending, id ascending), so they
// are described by a threshold weight v and a tie count e: every w > v, and the first e tokens
// (by id) with w == v. Weights are w = exp(z - max z), z = logit / temperature, as the CPU. Each
// filter narrows (v, e) with block-wide tallies (bisection on the bits of v: positive floats
// order as their bits); the draw then walks the kept tokens in id order.
//
// Most rows never get there: when a filter bounds the kept set from below by some v0 (top-k: at
// least k tokens weigh v0 or more; top-p: the tokens at or above v0 certainly hold the target
// mass; min-p: v0 = min_p) and at most kCandidates tokens reach v0, those tokens alone are
// gathered into shared memory and ordered there (draw_sorted): three passes over the row instead
// of one per bisection step.

// Token i's weight w = exp(z_i - max z), z = logit / temperature, in fp32 as the CPU.
struct Weights {
  const float* l;
  float temperature, mx;
  __device__ float operator()(int i) const { return expf(l[i] / temperature - mx); }
};

// The whole row: token i is id i.
struct RowSource {
  Weights weight;
  int n;
  __device__ float w(int i) const { return weight(i); }
  __device__ int id(int i) const { return i; }
  // f(w) for this thread's share of the row (any order: the tallies only count and sum).
  template <typename F>
  __device__ void each(F&& f) const {
    for_row(weight.l, n, [&](int, float x) { f(expf(x / weight.temperature - weight.mx)); });
  }
};

struct Tally {
  int gt, eq;      // tokens with w > v, w == v
  double mass_gt;  // sum of w over w > v
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

// Shared state of one row's tallies: per-warp partial sums, double-buffered so that a tally
// needs one barrier (a call writes the buffer the previous call did not read); `round` counts a
// thread's calls (each thread its own, in step).
struct TallyScratch {
  Tally part[2][kThreads / 32];
};

template <typename Source>
__device__ Tally tally(const Source& src, float v, TallyScratch& s, int& round) {
  Tally t{0, 0, 0.0};
  src.each([&](float w) {
    if (w > v)
      ++t.gt, t.mass_gt += w;
    else if (w == v)
      ++t.eq;
  });
  t.gt = warp_sum(t.gt), t.eq = warp_sum(t.eq), t.mass_gt = warp_sum(t.mass_gt);
  const int buf = round & 1, warp = threadIdx.x / 32;
  if (threadIdx.x % 32 == 0) s.part[buf][warp] = t;
  __syncthreads();
  Tally r{0, 0, 0.0};
  for (int w = 0; w < kThreads / 32; ++w)  // every thread, in warp order: the same sums
    r.gt += s.part[buf][w].gt, r.eq += s.part[buf][w].eq, r.mass_gt += s.part[buf][w].mass_gt;
  ++round;
  return r;
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

// The filters and the draw over the whole row `src` by bisections. Returns the chosen id.
template <typename Source>
__device__ int filter_and_draw(const Source& src, const SamplingConfig& c, int V, double u01,
                               TallyScratch& ts, double* dsm, int* ism) {
  int round = 0;
  auto bits = [](float f) { return __float_as_uint(f); };
  auto value = [](uint32_t b) { return __uint_as_float(b); };
  // (v, e): start with every token (v below all weights).
  float v = -1.0f;
  int e = 0;
  const bool top_k = c.top_k > 0 && c.top_k < V;
  if (top_k) {
    // The k-th largest weight: the largest v with count(w >= v) >= k.
    uint32_t lo = 0, hi = bits(1.0f);
    while (lo < hi) {
      const uint32_t mid = lo + (hi - lo + 1) / 2;
      const Tally t = tally(src, value(mid), ts, round);
      if (t.gt + t.eq >= c.top_k) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    v = value(lo);
  }
  const Tally at_v = tally(src, v, ts, round);
  if (top_k) e = c.top_k - at_v.gt;  // the ties at the k-th weight that fit in k
  double total = at_v.mass_gt + double(e) * v;
  if (c.top_p < 1) {
    // The largest v' >= v whose kept mass (w >= v', within the kept set) reaches top_p * total,
    // then as many ties at v' as the CPU's running sum takes.
    const double target = double(c.top_p) * total;
    uint32_t lo = top_k ? bits(v) : 0, hi = bits(1.0f);
    while (lo < hi) {
      const uint32_t mid = lo + (hi - lo + 1) / 2;
      const Tally t = tally(src, value(mid), ts, round);
      if (t.mass_gt + double(t.eq) * value(mid) >= target) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    const float nv = value(lo);
    const Tally t = tally(src, nv, ts, round);
    const int ties = (top_k && nv == v) ? e : t.eq;
    double mass = t.mass_gt;
    int j = 0;
    while (j < ties && mass < target) mass += nv, ++j;
    v = nv, e = j;
    total = mass;
  }
  if (c.min_p > 0 && c.min_p > v) {
    const Tally t = tally(src, c.min_p, ts, round);
    v = c.min_p, e = t.eq;
    total = t.mass_gt + double(e) * v;
  }

  // The draw, in id order: thread t walks source entries [t per, (t+1) per).
  const double u = u01 * total;
  const int per = (src.n + kThreads - 1) / kThreads;
  const int i0 = min(src.n, static_cast<int>(threadIdx.x) * per), i1 = min(src.n, i0 + per);
  int my_ties = 0;
  for (int i = i0; i < i1; ++i) my_ties += src.w(i) == v;
  int rank = block_exclusive_scan(my_ties, ism);
  double my_mass = 0;
  int last = -1;
  {
    int rk = rank;
    for (int i = i0; i < i1; ++i) {
      const float w = src.w(i);
      const bool keep = w > v || (w == v && rk++ < e);
      if (keep) my_mass += w, last = src.id(i);
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
      const float w = src.w(i);
      const bool keep = w > v || (w == v && rk++ < e);
      if (!keep) continue;
      acc += w;
      if (u < acc) {
        chosen = src.id(i);
        break;
      }
    }
    if (chosen < 0) chosen = last;  // rounding at the thread's end: its last kept token
  }
  __syncthreads();
  return chosen >= 0 ? chosen : last_kept;  // u rounded up to total: the last kept token
}

// The filters and the draw over candidates (every token the filters can keep, in any order; n <=
// kCandidates): each candidate's place in the order (weight descending, id ascending) and in id
// order by counting (n^2 / kThreads comparisons a thread, from shared memory), then the kept set
// as a prefix of the first order: top-k its first k, top-p the shortest prefix whose running mass
// reaches top_p * total, min-p the weights >= min_p; the draw walks the kept ones in id order.
// The same decisions as vex::Sampler's; only the order of the mass sums differs.
struct Sorted {
  int16_t by_w[kCandidates], by_id[kCandidates];  // candidate indices in each order
  uint8_t kept[kCandidates];
  double prefix;  // top-p: the running mass at the crossing
  int keep, crossed;
};

__device__ int draw_sorted(const float* cw, const int* cid, int n, const SamplingConfig& c, int V,
                           double u01, double row_total, Sorted& so, double* dsm, int* ism) {
  for (int i = threadIdx.x; i < n; i += kThreads) {
    const float wi = cw[i];
    const int ii = cid[i];
    int rank_w = 0, rank_id = 0;
    for (int j = 0; j < n; ++j) {  // every thread reads the same j: broadcasts
      const float wj = cw[j];
      const int ij = cid[j];
      rank_w += wj > wi || (wj == wi && ij < ii);
      rank_id += ij < ii;
    }
    so.by_w[rank_w] = static_cast<int16_t>(i), so.by_id[rank_id] = static_cast<int16_t>(i);
  }
  const bool top_k = c.top_k > 0 && c.top_k < V;
  if (threadIdx.x == 0) so.keep = top_k ? min(c.top_k, n) : n;
  __syncthreads();
  int keep = so.keep;
  // Each thread's contiguous run of sorted places, for the scans.
  const int per = (n + kThreads - 1) / kThreads;
  const int p0 = min(n, static_cast<int>(threadIdx.x) * per), p1 = min(n, p0 + per);
  double mine = 0;
  for (int p = p0; p < min(p1, keep); ++p) mine += cw[so.by_w[p]];
  double total = block_sum(mine, dsm);
  if (!top_k && row_total >= 0) total = row_total;  // top-p over the whole row
  if (c.top_p < 1) {
    // The first place where the running mass reaches the target (a thread's run starts at the
    // scan of the runs before it; should rounding make two places cross, the first counts).
    const double target = double(c.top_p) * total;
    const double before = block_exclusive_scan(mine, dsm);
    double run = before, at_cross = 0;
    int cross = 0;
    for (int p = p0; p < min(p1, keep); ++p) {
      const double prev = run;
      run += cw[so.by_w[p]];
      if (prev < target && run >= target) {
        cross = p + 1, at_cross = run;
        break;
      }
    }
    if (threadIdx.x == 0) so.crossed = 0;
    __syncthreads();
    if (cross) atomicMin(&so.keep, cross), so.crossed = 1;
    __syncthreads();
    if (cross && cross == so.keep) so.prefix = at_cross;
    __syncthreads();
    if (so.crossed) keep = so.keep, total = so.prefix;  // else all of them (as the CPU)
  }
  if (c.min_p > 0) {
    // Weights are descending: those >= min_p are a prefix of the kept ones.
    int count = 0;
    double mass = 0;
    for (int p = p0; p < min(p1, keep); ++p)
      if (cw[so.by_w[p]] >= c.min_p) ++count, mass += cw[so.by_w[p]];
    keep = block_sum(count, ism);
    total = block_sum(mass, dsm);
  }
  for (int p = threadIdx.x; p < n; p += kThreads) so.kept[so.by_w[p]] = p < keep;
  __syncthreads();

  // The draw, in id order over the kept ones.
  const double u = u01 * total;
  double my_mass = 0;
  int last = -1;
  for (int q = p0; q < p1; ++q) {
    const int i = so.by_id[q];
    if (so.kept[i]) my_mass += cw[i], last = cid[i];
  }
  const double before = block_exclusive_scan(my_mass, dsm);
  __shared__ int chosen, last_kept;
  if (threadIdx.x == 0) chosen = -1, last_kept = -1;
  __syncthreads();
  atomicMax(&last_kept, last);
  if (my_mass > 0 && u >= before && u < before + my_mass) {
    double acc = before;
    for (int q = p0; q < p1; ++q) {
      const int i = so.by_id[q];
      if (!so.kept[i]) continue;
      acc += cw[i];
      if (u < acc) {
        chosen = cid[i];
        break;
      }
    }
    if (chosen < 0) chosen = last;  // rounding at the thread's end: its last kept token
  }
  __syncthreads();
  return chosen >= 0 ? chosen : last_kept;  // u rounded up to total: the last kept token
}

// Row r is read by the kCluster blocks r * kCluster .. +kCluster-1 of one cluster, block q its
// slice [q chunk, (q+1) chunk): the max, the histogram and the candidates are each one pass over
// a slice; the slices' results meet in block 0's shared memory (in rank order: the same every
// run), which then filters and draws as one block.
__global__ void __cluster_dims__(kCluster, 1, 1) __launch_bounds__(kThreads)
    sample_kernel(const float* __restrict__ logits, int V, const SamplingConfig* __restrict__ cfg,
                  uint64_t* draws, int32_t* out, int* pos, int advance) {
  pdl_prologue();
  namespace cg = cooperative_groups;
  const cg::cluster_group cluster = cg::this_cluster();
  const int rank = static_cast<int>(cluster.block_rank());
  const int r = blockIdx.x / kCluster;
  const float* l = logits + static_cast<int64_t>(r) * V;
  int s0, s1;
  row_slice(V, rank, &s0, &s1);
  const float* slice = l + s0;
  const SamplingConfig c = cfg[r];
  __shared__ double dsm[kThreads];
  __shared__ int ism[kThreads];
  __shared__ float fsm[32];
  __shared__ TallyScratch ts;
  // The weights' histogram, then (once it is read) the candidates: weights, then ids.
  __shared__ int pool[kBuckets];
  static_assert(2 * kCandidates <= kBuckets, "the candidates live in the histogram's memory");
  int* hist = pool;
  float* cw = reinterpret_cast<float*>(pool);
  int* cid = pool + kCandidates;
  __shared__ float slice_max, v0_shared;
  __shared__ int slice_overflow, n_cand, above;
  __shared__ double slice_mass;
  __shared__ Sorted sorted;
  // A greedy row (a batch mixes requests): argmax, no draw, as vex::Sampler.
  auto greedy = [&] {
    const int at = cluster_argmax(l, V);
    if (rank == 0 && threadIdx.x == 0) {
      out[r] = at;
      pos[r] += advance;
    }
  };
  if (c.temperature == 0 || c.top_k == 1) return greedy();

  // Max of z = logit / T over the slice, then over the cluster.
  float mx = -INFINITY;
  bool overflow = false;
  for_row(slice, s1 - s0, [&](int, float x) {
    const float z = x / c.temperature;
    mx = fmaxf(mx, z);
    overflow |= isinf(z) && isfinite(x);
  });
  overflow = __syncthreads_or(overflow);
  mx = warp_max(mx);
  if (threadIdx.x % 32 == 0) fsm[threadIdx.x / 32] = mx;
  for (int b = threadIdx.x; b < kBuckets; b += kThreads) hist[b] = 0;
  __syncthreads();
  if (threadIdx.x == 0) {
    float m = -INFINITY;
    for (int w = 0; w < kThreads / 32; ++w) m = fmaxf(m, fsm[w]);
    slice_max = m, slice_overflow = overflow, n_cand = 0, above = 0, slice_mass = 0;
  }
  cluster.sync();
  mx = -INFINITY;
  overflow = false;
  for (int q = 0; q < kCluster; ++q) {
    mx = fmaxf(mx, *cluster.map_shared_rank(&slice_max, q));
    overflow |= *cluster.map_shared_rank(&slice_overflow, q) != 0;
  }
  cluster.sync();  // every block has read the others' values
  // A temperature so small that a finite logit / T overflows is the T -> 0 limit: greedy, with
  // no draw (as the CPU sampler; the softmax would otherwise subtract inf from inf).
  if (overflow) return greedy();
  const Weights weight{l, c.temperature, mx};

  // splitmix64 of (seed, draw index), as Sampler::uniform.
  const uint64_t draw = draws[r] + 1;
  uint64_t z = c.seed + 0x9E3779B97F4A7C15ull * draw;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  const double u01 = static_cast<double>(z >> 11) * 0x1.0p-53;
  auto finish = [&](int chosen) {
    if (threadIdx.x == 0) {
      out[r] = chosen;
      draws[r] = draw;
      pos[r] += advance;
    }
  };

  const bool top_k = c.top_k > 0 && c.top_k < V;
  const bool bounded = top_k || c.top_p < 1 || c.min_p > 0;
  double row_total = -1;
  bool gathered = false;
  if (bounded) {
    // Each slice's histogram of its weights' exponent and top mantissa bits (integer counts),
    // and its mass; block 0 adds the slices' (in rank order) and finds v0, scanning from the top
    // bucket down, 4 buckets a thread: top-k: the floor of the bucket where the count reaches k;
    // top-p alone: where a lower bound of the mass (each weight at its bucket's floor) reaches
    // top_p times the row's total; min-p alone: min_p.
    double mass = 0;
    for_row(slice, s1 - s0, [&](int, float x) {
      const float w = expf(x / c.temperature - mx);  // = weight(i)
      mass += w;
      atomicAdd(&hist[__float_as_uint(w) >> kBucketShift], 1);
    });
    mass = block_sum(mass, dsm);  // (its barriers also close the histogram)
    if (threadIdx.x == 0) slice_mass = mass;
    cluster.sync();
    if (rank == 0) {
      for (int q = 1; q < kCluster; ++q) {
        const int* other = cluster.map_shared_rank(hist, q);
        for (int b = threadIdx.x; b < kBuckets; b += kThreads) hist[b] += other[b];
      }
      row_total = 0;
      for (int q = 0; q < kCluster; ++q) row_total += *cluster.map_shared_rank(&slice_mass, q);
      __syncthreads();
      constexpr int kPer = kBuckets / kThreads;
      const int top = kBuckets - 1 - static_cast<int>(threadIdx.x) * kPer;
      auto floor_of = [](int b) {
        return __uint_as_float(static_cast<uint32_t>(b) << kBucketShift);
      };
      int count = 0;
      double floor_mass = 0;
      for (int j = 0; j < kPer; ++j)
        count += hist[top - j], floor_mass += double(hist[top - j]) * floor_of(top - j);
      const int count_above = block_exclusive_scan(count, ism);
      const double mass_above = block_exclusive_scan(floor_mass, dsm);
      if (threadIdx.x == 0) v0_shared = top_k || c.top_p < 1 ? 0.0f : c.min_p;
      __syncthreads();
      const double target = double(c.top_p) * row_total;
      if (top_k || c.top_p < 1) {
        int n = count_above;
        double m = mass_above;
        for (int j = 0; j < kPer; ++j) {
          const int b = top - j;
          n += hist[b], m += double(hist[b]) * floor_of(b);
          if (top_k ? n >= c.top_k : m >= target) {  // the first crossing is in one thread only
            const bool crossed_before = top_k ? count_above >= c.top_k : mass_above >= target;
            if (!crossed_before) v0_shared = floor_of(b), above = n;
            break;
          }
        }
      }
    }
    cluster.sync();  // block 0 is done with the histogram; v0 is set
    const float v0 = *cluster.map_shared_rank(&v0_shared, 0);
    const int known = *cluster.map_shared_rank(&above, 0);
    // The candidates, w >= v0, gathered into block 0 in any order (their places are counted
    // there); when more than fit (known already unless v0 = min_p), the whole row is filtered.
    gathered = !((top_k || c.top_p < 1) && (v0 == 0 || known > kCandidates));
    if (gathered) {
      int* count0 = cluster.map_shared_rank(&n_cand, 0);
      float* cw0 = cluster.map_shared_rank(cw, 0);
      int* cid0 = cluster.map_shared_rank(cid, 0);
      for_row(slice, s1 - s0, [&](int i, float x) {
        const float w = expf(x / c.temperature - mx);
        if (w >= v0) {
          const int k = atomicAdd(count0, 1);
          if (k < kCandidates) cw0[k] = w, cid0[k] = s0 + i;
        }
      });
    }
    cluster.sync();  // the candidates are in block 0
  }
  if (rank != 0) return;
  if (gathered && n_cand <= kCandidates) {
    finish(draw_sorted(cw, cid, n_cand, c, V, u01, row_total, sorted, dsm, ism));
    return;
  }
  const RowSource src{weight, V};
  finish(filter_and_draw(src, c, V, u01, ts, dsm, ism));
}

}  // namespace

cudaError_t sample_next(const float* logits, int V, int rows, const SamplingConfig* config,
                        uint64_t* draws, int32_t* out, int* pos, int advance, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (V <= 0 || V > (1 << 24)) return cudaErrorInvalidValue;
  launch_pdl(sample_kernel, rows * kCluster, kThreads, 0, stream, logits, V, config, draws, out,
             pos, advance);
  return cudaGetLastError();
}

cudaError_t argmax_next(const float* logits, int V, int rows, int32_t* out, int* pos, int advance,
                        cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  launch_pdl(argmax_kernel, rows * kCluster, kThreads, 0, stream, logits, V, out, pos, advance);
  return cudaGetLastError();
}

}  // namespace vex::cuda
