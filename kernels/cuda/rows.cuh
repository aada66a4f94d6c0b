// Where the rows of one pass sit in the KV cache. A prefill chunk is n consecutive positions of
// one sequence; a batched decode step is one position in each of several sequences. Both are
// "row t is position pos[t] of sequence seq[t]", read on the device (so a captured graph follows
// positions that advance between replays).
#pragma once

#include <cstdint>

namespace vex::cuda {

struct CacheRows {
  const int* pos;              // [n] position of each row
  const int* seq = nullptr;    // [n] sequence of each row; null: every row in sequence 0
  int64_t seq_stride = 0;      // cache elements per sequence in this layer (slots * kv_dim)
};

#ifdef __CUDACC__
__device__ __forceinline__ int64_t cache_base(const CacheRows& r, int t) {
  return r.seq ? static_cast<int64_t>(r.seq[t]) * r.seq_stride : 0;
}
#endif

}  // namespace vex::cuda
