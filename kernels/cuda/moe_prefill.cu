#include "kernels/cuda/common.cuh"
#include "kernels/cuda/e2m1.cuh"
#include "kernels/cuda/moe_prefill.cuh"
#include "kernels/cuda/split.cuh"
#include "kernels/cuda/virtual_slots.cuh"

#include <cuda_bf16.h>

#include <type_traits>

namespace vex::cuda {
namespace {

constexpr int kStageK = 64;  // k per pipeline stage: 128 bytes of a token row, 32 of codes
constexpr int kStages = 3;   // stages in flight (cp.async groups)

// ---- wgmma (sm_90a), for the wide passes (64 or 128 tokens, prefill). A warpgroup (4 warps)
// multiplies 64 weight rows at a time, decoded into registers as the A operand, by the pass's token
// rows in shared memory as B: K-major, 128 bytes (64 k) a row, in the 128-byte swizzle (16-byte
// unit u of row t at u ^ (t % 8)) that the staging writes anyway, from a 1024-byte aligned base.
// The accumulator fragment of m64nN is, per warp, that of mma.sync m16n8k16 for each 8 columns.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define VEX_WGMMA 1
#endif

// Descriptor of a K-major, 128-byte swizzled B tile at p: 8-row groups 1024 bytes apart.
__device__ __forceinline__ uint64_t sw128_desc(const void* p) {
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  return uint64_t((a & 0x3FFFF) >> 4) | uint64_t(1) << 16 | uint64_t(1024 >> 4) << 32 |
         uint64_t(1) << 62;
}
__device__ __forceinline__ void wgmma_fence() {
#ifdef VEX_WGMMA
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_commit() {
#ifdef VEX_WGMMA
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
// Waits for all of the warpgroup's wgmma, then pins the n accumulators d: the compiler may not
// read or move them across the asynchronous update.
template <int n>
__device__ __forceinline__ void wgmma_wait_all(float* d) {
#ifdef VEX_WGMMA
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
#endif
#pragma unroll
  for (int i = 0; i < n; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
// d (m64nN, fp32) += a (m64k16 bf16, registers: the fragment of mma.sync's A for each warp's 16
// rows) * B (k16nN bf16, shared memory at desc b). The operand lists by macro: the N / 2
// accumulators, then a, then b.
#define VEX_D8(i)                                                                             \
  "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), \
      "+f"(d[i + 6]), "+f"(d[i + 7])
#define VEX_D32 VEX_D8(0), VEX_D8(8), VEX_D8(16), VEX_D8(24)
#define VEX_D64 VEX_D32, VEX_D8(32), VEX_D8(40), VEX_D8(48), VEX_D8(56)
#define VEX_R32                                                                                 \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, " \
  "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define VEX_R64                                                                        \
  VEX_R32                                                                              \
  ", %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#ifdef VEX_WGMMA
#define VEX_WGMMA_ASM(code, ...) asm volatile(code : __VA_ARGS__)
#else
#define VEX_WGMMA_ASM(code, ...) __trap()  // never launched: grouped_wide() is false off sm_90
#endif
__device__ __forceinline__ void wgmma_64x64(float* d, const uint32_t* a, uint64_t b) {
  VEX_WGMMA_ASM("wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " VEX_R32
                "}, {%32, %33, %34, %35}, %36, 1, 1, 1, 0;\n",
                VEX_D32
                : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
}
__device__ __forceinline__ void wgmma_64x128(float* d, const uint32_t* a, uint64_t b) {
  VEX_WGMMA_ASM("wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " VEX_R64
                "}, {%64, %65, %66, %67}, %68, 1, 1, 1, 0;\n",
                VEX_D64
                : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
}
#undef VEX_D8
#undef VEX_D32
#undef VEX_D64
#undef VEX_R32
#undef VEX_R64
#undef VEX_WGMMA_ASM

// m tiles a warp takes: two (32 rows), but one (16 rows) in the wide 128-token passes, whose
// 128 columns would otherwise need twice the accumulator registers.
template <int kTokens, bool kWide>
constexpr int kMTiles = (kWide && kTokens == 128) ? 1 : 2;

// The block row (of R) whose m tile m holds lane group g's rows (+ 8: the MMA's upper rows):
// warps take 32 consecutive rows as two m16 tiles; in a wide pass warpgroup q takes 64 kM rows
// as kM m64 tiles, its warp w rows 16 w .. 16 w + 15 of each.
template <bool kWide, int kM>
__device__ __forceinline__ int tile_row(int warp, int m, int g) {
  return kWide ? warp / 4 * 64 * kM + m * 64 + warp % 4 * 16 + g : warp * 32 + m * 16 + g;
}

// Whether a pass's wgmmas of stage s run on while stage s + 1 is staged and decoded (block_tile):
// the 128-token passes, whose A fragments (16 registers) fit beside the accumulators in flight;
// the 64-token ones would spill. Their ring has one more buffer, the one those wgmmas read.
template <int kTokens, bool kWide>
constexpr bool kOverlap = (kWide && kTokens == 128);
template <int kTokens, bool kWide>
constexpr int kBufs = kOverlap<kTokens, kWide> ? kStages + 1 : kStages;

// A block of W warps (R = 16 kM W weight rows) in dynamic shared memory:
//   x      [kBufs][kTokens][8] uint4: the tokens' activations, k [64 s, 64 s + 64) in stage s;
//          unit u of token row t at u ^ (t % 8), so the 8 lanes of a 16-byte shared load
//          (2 rows x 4 lane chunks) hit 8 different bank groups
//   codes  [kBufs][R][2] uint4: the rows' E2M1 codes of the stage (32 bytes per row)
//   scales [R][K / 32] uint8: the rows' E8M0 scales, whole
template <int W, int kTokens, bool kWide>
struct Layout {
  static constexpr int R = 16 * kMTiles<kTokens, kWide> * W;
  static constexpr size_t x = 0, codes = x + size_t(kBufs<kTokens, kWide>) * kTokens * 8 * 16,
                          scales = codes + size_t(kBufs<kTokens, kWide>) * R * 32;
  static size_t bytes(int K) { return scales + size_t(R) * (K / 32); }
};

// The block's shared memory set up for its rows [row0, row0 + R) of an MXFP4 matrix with K
// columns, of which the first `rows` exist: the rows' scales (contiguous in memory, K/32 bytes a
// row), by cp.async when 16-byte aligned (they join block_tile's first group, so their latency
// overlaps the first stages'); a row past them repeats the last one's (block_tile reads its codes
// the same way: finite products, never written out).
template <typename L>
__device__ void block_setup(uint8_t* smem, const uint8_t* scales, int64_t row0, int rows, int K) {
  const int groups = K / 32;
  const int64_t first = row0 * groups;
  const int have = rows * groups;  // bytes of the rows that exist
  uint8_t* to = smem + L::scales;
  int at = 0;  // bytes copied by cp.async
  if (reinterpret_cast<uintptr_t>(scales + first) % 16 == 0) {
    const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(to));
    for (int i = threadIdx.x; i < have / 16; i += blockDim.x)
      cp_async16(dst + 16 * i, scales + first + 16 * i);
    at = have / 16 * 16;
  }
  for (int i = at + threadIdx.x; i < L::R * groups; i += blockDim.x)
    to[i] = __ldg(scales + first + min(i, have - groups + i % groups));
  // Visible to all after block_tile's first wait and barrier.
}

// A pass's token rows (8 16-byte units a stage each) are staged in tasks of kTaskUnits units of
// one row: all of a thread's share of the pass when it divides evenly, else 2 units a task.
// Thread tid takes tasks tid, tid + 32 W, ... (kTasks of them, the last ones possibly past the
// pass), each from its own token row (src[j]).
template <int W, int kTokens>
constexpr int kTaskUnits = (kTokens * 8) % (32 * W) == 0 ? kTokens * 8 / (32 * W) : 2;
template <int W, int kTokens>
constexpr int kTasks = (kTokens * 8 / kTaskUnits<W, kTokens> + 32 * W - 1) / (32 * W);
template <int W, int kTokens>
__device__ __forceinline__ int task_row(int j) {
  return (static_cast<int>(threadIdx.x) + j * 32 * W) / (8 / kTaskUnits<W, kTokens>);
}

// acc[m][tile][4] (the C layout of m16n8k16: m tile m of this warp's 32 rows, 8 tokens a tile)
// = rows [row0 + 32 w, + 32) of an MXFP4 matrix with K/32 blocks per row times the pass's
// kTokens token rows over K; only the first `tiles` token tiles are computed (the others are
// left); rows past the first `rows` repeat the last one's codes. Each thread stages its tasks'
// token rows (src[j], K bf16 in split.cuh's order: their part of every 128-byte k stage) and
// its share of the rows' codes, with cp.async kStages - 1 stages ahead; the codes are decoded
// once for all the pass's tokens (e2m1.cuh), each token fragment feeds both m tiles.
//
// The k order inside an MMA is free as long as A and B agree, so each lane takes 16 contiguous
// k of every 64: its 8 code bytes per row (the 4 lanes of a row read 32 contiguous bytes), one
// scale, and its tokens' 16 bf16 (two 16-byte shared loads per token). Code word h of the lane
// gives four pairs (decode_pairs) whose elements are those of x words 0..3 of unit 2c + h in
// split.cuh's order: pairs 0, 1 meet words 0, 1 in one MMA, pairs 2, 3 words 2, 3 in the next.
// Each output is the same chain of MMAs whatever the number of tokens in the pass.
//
// kWide: the warpgroups' wgmmas take the token rows straight from the staged tiles, 16 k a step,
// so the rows are in wide_at's order (split.cuh), where k step 2h + p / 2 finds the elements of
// the lane's code word h, pair p; the A fragments are the same decoded pairs. Rows as tile_row.
template <int W, int kTokens, bool kWide>
__device__ __forceinline__ void block_tile(const uint8_t* blocks, int64_t row0, int rows, int K,
                                           const uint16_t* const* src, int tiles, uint8_t* smem,
                                           float (*acc)[kTokens / 8][4]) {
  static_assert(!kWide || (kTokens >= 64 && W % 4 == 0), "wide passes: 64 or 128, warpgroups");
  constexpr int kM = kMTiles<kTokens, kWide>;
  using L = Layout<W, kTokens, kWide>;
  constexpr int kThreads = 32 * W, kJ = kTasks<W, kTokens>;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, c = lane % 4;
  const int groups = K / 32, steps = K / kStageK, tid = threadIdx.x;
  uint4* xs = reinterpret_cast<uint4*>(smem + L::x);
  uint4* cs = reinterpret_cast<uint4*>(smem + L::codes);
  const uint8_t* sc = smem + L::scales;
  const uint8_t* codes = blocks + row0 * (K / 2);
  // What this thread copies each stage, as stage 0's addresses (a later stage: + its k offset
  // in global memory, + its buffer in shared memory): its tasks' token-row units, and kM of the
  // stage's 2 R 16-byte pieces of codes (row i / 2, bytes 16 (i % 2) of the row's 32).
  constexpr int kUnits = kTaskUnits<W, kTokens>;
  constexpr uint32_t kXStage = kTokens * 8 * 16, kCStage = L::R * 2 * 16;
  static_assert(2 * L::R == kM * kThreads, "kM code pieces a thread");
  const uint32_t sbase = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  const uint4* x_from[kJ];
  uint32_t x_to[kJ][kUnits];
  bool x_on[kJ];
#pragma unroll
  for (int j = 0; j < kJ; ++j) {
    const int t = task_row<W, kTokens>(j), u0 = (tid + j * kThreads) % (8 / kUnits) * kUnits;
    x_on[j] = t < 8 * tiles;
    x_from[j] = reinterpret_cast<const uint4*>(src[j]) + u0;
#pragma unroll
    for (int u = 0; u < kUnits; ++u)
      x_to[j][u] = sbase + L::x + (t * 8 + ((u0 + u) ^ (t % 8))) * 16;
  }
  const uint8_t* c_from[kM];
  uint32_t c_to[kM];
#pragma unroll
  for (int q = 0; q < kM; ++q) {
    const int i = tid + q * kThreads;
    c_from[q] = codes + int64_t(min(i / 2, rows - 1)) * (K / 2) + (i % 2) * 16;
    c_to[q] = sbase + L::codes + i * 16;
  }
  constexpr int kB = kBufs<kTokens, kWide>;
  auto stage = [&](int s, int slot) {
#pragma unroll
    for (int j = 0; j < kJ; ++j)
      if (x_on[j])
#pragma unroll
        for (int u = 0; u < kUnits; ++u)
          cp_async16(x_to[j][u] + slot * kXStage, x_from[j] + s * (kStageK / 8) + u);
#pragma unroll
    for (int q = 0; q < kM; ++q) cp_async16(c_to[q] + slot * kCStage, c_from[q] + s * 32);
  };
  __syncthreads();  // the previous pass's last stage is read
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < steps) stage(s, s);
    cp_async_commit();
  }
  // Stage s is read from buffer `slot` (s % kB) while stage s + kStages - 1 is written to buffer
  // `to` ((s + kStages - 1) % kB): the one stage s - 1 was read from, or with kOverlap the one
  // before it, since stage s - 1's wgmmas may still be reading theirs (they are waited for once
  // stage s's codes are in registers, so they overlap the barrier and the staging's latency).
  constexpr bool kAsync = kOverlap<kTokens, kWide>;
  for (int s = 0, slot = 0; s < steps; ++s, slot = slot == kB - 1 ? 0 : slot + 1) {
    const int to = slot + kStages - 1 < kB ? slot + kStages - 1 : slot + kStages - 1 - kB;
    cp_async_wait<kStages - 2>();
    // The wgmma reads shared memory through the async proxy: order this thread's copies before.
    if constexpr (kWide) asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();  // stage s is in; all warps are done with the buffer `to` held last
    if (s + kStages - 1 < steps) stage(s + kStages - 1, to);
    cp_async_commit();
    const uint4* xb = xs + slot * kTokens * 8;
    const uint2* cb = reinterpret_cast<const uint2*>(cs + slot * L::R * 2);
    uint2 qa[kM], qb[kM];
    uint32_t ska[kM], skb[kM];
#pragma unroll
    for (int m = 0; m < kM; ++m) {
      const int ra = tile_row<kWide, kM>(warp, m, g), rb = ra + 8;
      qa[m] = cb[ra * 4 + c], qb[m] = cb[rb * 4 + c];
      ska[m] = sc[ra * groups + 2 * s + c / 2], skb[m] = sc[rb * groups + 2 * s + c / 2];
    }
    // Rows g and g + 8 of m tile m from the lane's code word h, scaled (factors f): four bf16x2
    // pairs each. kOne: every scale of the warp's rows <= 128 (scale_pairs).
    auto factors = [&](auto one, uint32_t* f) {
#pragma unroll
      for (int m = 0; m < kM; ++m) {
        f[2 * m] = scale_factor<decltype(one)::value>(ska[m]);
        f[2 * m + 1] = scale_factor<decltype(one)::value>(skb[m]);
      }
    };
    auto decode = [&](auto one, int h, int m, const uint32_t* f, uint32_t* pa, uint32_t* pb) {
      constexpr bool kOne = decltype(one)::value;
      decode_pairs(h ? qa[m].y : qa[m].x, pa), scale_pairs<kOne>(pa, f[2 * m]);
      decode_pairs(h ? qb[m].y : qb[m].x, pb), scale_pairs<kOne>(pb, f[2 * m + 1]);
    };
    const bool one =
        scales_fit(kM == 1 ? ska[0] | skb[0] << 8
                           : ska[0] | ska[kM - 1] << 8 | skb[0] << 16 | skb[kM - 1] << 24);
    if constexpr (kWide) {
      // (kAsync: stage s - 1's wgmmas done, their A registers are rewritten here.) All of the
      // stage's A fragments (k step 2h + st: pairs 2st, 2st + 1 of word h), then the
      // warpgroup's wgmmas, issued by every warp alike whatever its scales (kAsync: left running
      // into the next stage); a 128-token pass with no more than 64 tokens left multiplies only
      // those.
      if constexpr (kAsync) wgmma_wait_all<kM * kTokens / 2>(&acc[0][0][0]);
      uint32_t a[kM][4][4];
      auto fill = [&](auto kone) {
        uint32_t f[2 * kM];
        factors(kone, f);
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
          for (int m = 0; m < kM; ++m) {
            uint32_t pa[4], pb[4];
            decode(kone, h, m, f, pa, pb);
#pragma unroll
            for (int st = 0; st < 2; ++st) {
              uint32_t* q = a[m][2 * h + st];
              q[0] = pa[2 * st], q[1] = pb[2 * st], q[2] = pa[2 * st + 1], q[3] = pb[2 * st + 1];
            }
          }
      };
      one ? fill(std::true_type{}) : fill(std::false_type{});
      const uint64_t desc = sw128_desc(xb);
      wgmma_fence();
      if (kTokens == 64 || tiles <= 8) {
#pragma unroll
        for (int m = 0; m < kM; ++m)
#pragma unroll
          for (int ks = 0; ks < 4; ++ks) wgmma_64x64(&acc[m][0][0], a[m][ks], desc + 2 * ks);
      } else {
#pragma unroll
        for (int m = 0; m < kM; ++m)
#pragma unroll
          for (int ks = 0; ks < 4; ++ks) wgmma_64x128(&acc[m][0][0], a[m][ks], desc + 2 * ks);
      }
      wgmma_commit();
      if constexpr (!kAsync)
#pragma unroll
        for (int m = 0; m < kM; ++m) wgmma_wait_all<kTokens / 2>(&acc[m][0][0]);
    } else {
      // The stage's MMAs: every token tile (kFull, the common case in prefill, unguarded), or
      // the first `tiles` (a pass's last tokens; a batched step's few).
      auto mmas = [&](auto full, auto kone) {
        constexpr bool kFull = decltype(full)::value;
        uint32_t f[2 * kM];
        factors(kone, f);
#pragma unroll
        for (int h = 0; h < 2; ++h) {  // the lane's code word h: bytes 4h..4h+3, x unit 2c + h
          uint4 b[kTokens / 8];
#pragma unroll
          for (int tile = 0; tile < kTokens / 8; ++tile)
            if (kFull || tile < tiles) b[tile] = xb[(tile * 8 + g) * 8 + ((2 * c + h) ^ g)];
#pragma unroll
          for (int m = 0; m < kM; ++m) {
            uint32_t pa[4], pb[4];  // rows g and g + 8
            decode(kone, h, m, f, pa, pb);
#pragma unroll
            for (int st = 0; st < 2; ++st) {  // pairs 2st, 2st + 1 with x words 2st, 2st + 1
              const uint32_t a[4] = {pa[2 * st], pb[2 * st], pa[2 * st + 1], pb[2 * st + 1]};
#pragma unroll
              for (int tile = 0; tile < kTokens / 8; ++tile) {
                if (!kFull && tile >= tiles) break;
                const uint32_t bw[2] = {st ? b[tile].z : b[tile].x, st ? b[tile].w : b[tile].y};
                mma_bf16(acc[m][tile], a, bw);
              }
            }
          }
        }
      };
      if (tiles == kTokens / 8)
        one ? mmas(std::true_type{}, std::true_type{}) : mmas(std::true_type{}, std::false_type{});
      else
        one ? mmas(std::false_type{}, std::true_type{})
            : mmas(std::false_type{}, std::false_type{});
    }
  }
  if constexpr (kAsync) wgmma_wait_all<kM * kTokens / 2>(&acc[0][0][0]);
  cp_async_wait<0>();
}

// Warps of a block (32 rows each, 16 in a 128-token pass), by the pass's tokens: more rows a
// block read the staged tokens from L2 fewer times, fewer leave registers for more blocks.
// Measured (H200, 20b, bench/NOTES.md): 64-token passes on mma.sync gate-up 6 / down 4 (pp2048
// 18,130 with 4 / 2, 22,067 with 6 / 4), on wgmma (two warpgroups) 8 / 8 (pp2048 25,574; 4 / 4
// 24,797); 16- and 32-token passes 4 / 4 (128 sequences 10,725 -> 11,010; gate-up 6 gave
// 10,296), but down 8 for 16-token passes (64 sequences 7,867 -> 8,527); 128-token passes
// gate-up 16 (four warpgroups, one block an SM: pp2048 35,660 -> 36,939; 12: 35,370), down 8
// (12 or 16 within 0.5 %).
template <int kTokens, bool kWide>
constexpr int kGateUpWarps = (kWide && kTokens == 128) ? 16
                             : kWide                   ? 8
                             : kTokens == 64           ? 6
                                                       : 4;
template <int kTokens, bool kWide>
constexpr int kDownWarps = kWide || kTokens == 16 ? 8 : 4;

// The kernels' shared memory (Layout): a wide pass's B tiles want a 1024-byte aligned base, for
// which the launch adds kSlack bytes.
template <bool kWide>
constexpr size_t kSlack = kWide ? 1024 : 0;
template <bool kWide>
__device__ __forceinline__ uint8_t* block_smem(uint8_t* raw) {
  // An offset from raw (not an integer cast) keeps the pointer known as shared memory.
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(raw));
  return kWide ? raw + ((1024 - a % 1024) % 1024) : raw;
}

// Grid (2I / R rounded up, E): R = 32 W gate/up rows of slot e's expert against its tokens,
// kTokens at a time; a virtual slot's arguments (from the fp32 xn) in its first block.
template <int kTokens, int W, bool kWide>
__global__ void __launch_bounds__(W * 32)
    gate_up_mma_kernel(const float* __restrict__ xn, const uint16_t* __restrict__ xb,
                       const vex_slot* __restrict__ slots, const int* __restrict__ offset,
                       const int* __restrict__ list, MoeWeights w, VirtualSlots virt, int k,
                       float limit, uint16_t* __restrict__ hb) {
  pdl_prologue();
  extern __shared__ __align__(16) uint8_t smem_raw[];
  uint8_t* smem = block_smem<kWide>(smem_raw);
  const int e = blockIdx.y, begin = offset[e], end = offset[e + 1];
  const vex_slot slot = slots[e];
  if (slot.kind != VEX_SLOT_NEURAL) {
    if (blockIdx.x == 0) device_slot_args_grouped(slot, virt, xn, w.D, list, begin, end, k);
    return;
  }
  if (begin == end) return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
  using L = Layout<W, kTokens, kWide>;
  constexpr int kM = kMTiles<kTokens, kWide>;
  const int64_t row0 = static_cast<int64_t>(slot.expert) * 2 * w.I + blockIdx.x * L::R;
  const int rows = min(L::R, 2 * w.I - static_cast<int>(blockIdx.x) * L::R);
  block_setup<L>(smem, w.gate_up_scales, row0, rows, w.D);
  for (int i0 = begin; i0 < end; i0 += kTokens) {
    const uint16_t* src[kTasks<W, kTokens>];  // the token rows block_tile stages
#pragma unroll
    for (int j = 0; j < kTasks<W, kTokens>; ++j) {
      const int tj = list[min(i0 + task_row<W, kTokens>(j), end - 1)];
      src[j] = xb + static_cast<int64_t>(tj / k) * w.D;
    }
    float acc[kM][kTokens / 8][4] = {};
    block_tile<W, kTokens, kWide>(w.gate_up_blocks, row0, rows, w.D, src,
                                  (min(kTokens, end - i0) + 7) / 8, smem, acc);
    // Rows g (even: gate) and g + 1 (up) sit in lanes 4g + c and 4(g+1) + c: pair them.
#pragma unroll
    for (int m = 0; m < kM; ++m)
#pragma unroll
      for (int tile = 0; tile < kTokens / 8; ++tile)
#pragma unroll
        for (int v = 0; v < 4; ++v) {
          const float up = __shfl_down_sync(0xffffffffu, acc[m][tile][v], 4);
          if (g % 2) continue;
          const int i = i0 + tile * 8 + 2 * c + (v % 2);  // pair index in the list
          const int r = tile_row<kWide, kM>(warp, m, g) + (v >= 2 ? 8 : 0);  // the gate row's
          if (i >= end || r >= rows) continue;
          const int64_t br = row0 + r;
          const float out = swiglu(acc[m][tile][v] + bf16(w.gate_up_bias[br]),
                                   up + bf16(w.gate_up_bias[br + 1]), limit);
          const int j = static_cast<int>(br - static_cast<int64_t>(slot.expert) * 2 * w.I) / 2;
          hb[static_cast<int64_t>(list[i]) * w.I + (kWide ? wide_at(j) : split_at(j))] =
              to_bf16(out);
        }
  }
}

// Grid (D / R rounded up, E): R = 32 W down rows of slot e's expert against its pairs' hb,
// kTokens at a time; a virtual slot's rows (virtual_slots.cuh) for a slot that is not neural.
template <int kTokens, int W, bool kWide>
__global__ void __launch_bounds__(W * 32)
    down_mma_kernel(const uint16_t* __restrict__ hb, const float* __restrict__ weight,
                    const vex_slot* __restrict__ slots, const int* __restrict__ offset,
                    const int* __restrict__ list, MoeWeights w, VirtualSlots virt, int k,
                    float* __restrict__ y) {
  pdl_prologue();
  extern __shared__ __align__(16) uint8_t smem_raw[];
  uint8_t* smem = block_smem<kWide>(smem_raw);
  using L = Layout<W, kTokens, kWide>;
  constexpr int kM = kMTiles<kTokens, kWide>;
  constexpr int R = L::R;
  const int e = blockIdx.y, begin = offset[e], end = offset[e + 1];
  const vex_slot slot = slots[e];
  if (slot.kind != VEX_SLOT_NEURAL) {
    virtual_slot_rows_grouped(slot, virt, e, list, begin, end, k, weight, blockIdx.x * R,
                              min(R, w.D - static_cast<int>(blockIdx.x) * R), w.D, y);
    return;
  }
  if (begin == end) return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
  const int d0 = blockIdx.x * R, rows = min(R, w.D - d0);
  const int64_t row0 = static_cast<int64_t>(slot.expert) * w.D + d0;
  block_setup<L>(smem, w.down_scales, row0, rows, w.I);
  for (int i0 = begin; i0 < end; i0 += kTokens) {
    const uint16_t* src[kTasks<W, kTokens>];  // the pairs' rows block_tile stages
#pragma unroll
    for (int j = 0; j < kTasks<W, kTokens>; ++j)
      src[j] = hb + static_cast<int64_t>(list[min(i0 + task_row<W, kTokens>(j), end - 1)]) * w.I;
    float acc[kM][kTokens / 8][4] = {};
    block_tile<W, kTokens, kWide>(w.down_blocks, row0, rows, w.I, src,
                                  (min(kTokens, end - i0) + 7) / 8, smem, acc);
#pragma unroll
    for (int m = 0; m < kM; ++m)
#pragma unroll
      for (int tile = 0; tile < kTokens / 8; ++tile)
#pragma unroll
        for (int v = 0; v < 4; ++v) {
          const int r = tile_row<kWide, kM>(warp, m, g) + (v >= 2 ? 8 : 0), d = d0 + r;
          const int i = i0 + tile * 8 + 2 * c + (v % 2);
          if (i >= end || r >= rows) continue;
          const int tj = list[i];
          y[static_cast<int64_t>(tj) * w.D + d] =
              weight[tj] *
              (acc[m][tile][v] + bf16(w.down_bias[static_cast<int64_t>(slot.expert) * w.D + d]));
        }
  }
}

// Shapes of the same kernels: passes of 64 (or 128) tokens for prefill (the MMAs dominate); of 16
// or 32 when the experts average fewer than 16 or 32 tokens (batched decode steps: the weights'
// stream dominates; each expert's codes are decoded once for all its tokens when they fit one
// pass, and the smaller tiles leave shared memory and registers for more blocks per SM).
// Measured (H200, synthetic 20b, 32 experts, bench/NOTES.md): 64 sequences (256 pairs) 7,173
// tok/s with the 16-token shape; 128 sequences (512 pairs) 8,749 with the 64-token one, 10,680
// with the 32-token one; 3 stages beat 2 and 4 in each shape (within 1 % for the 32-token one).
// Where the device has wgmma (wgmma_device), the passes of 64 tokens run on it, and experts
// averaging 64 tokens or more take passes of 128 (the codes decoded once for twice the tokens);
// elsewhere those run as 64-token passes on mma.sync.
// Measured (pp2048, 20b): 64-token wgmma passes 25,493 tok/s, with the 128-token ones 27,373.
int tokens_per_pass(int pairs, int E) {
  return pairs < 16 * E ? 16 : pairs < 32 * E ? 32 : pairs < 64 * E ? 64 : 128;
}

template <int T, int W, bool kWide>
cudaError_t gate_up_launch(const float* xn, const uint16_t* xb, const vex_slot* slots,
                           const int* offset, const int* list, const MoeWeights& w,
                           const VirtualSlots& virt, int E, int k, float limit, uint16_t* hb,
                           cudaStream_t stream) {
  using L = Layout<W, T, kWide>;
  static const cudaError_t allowed = allow_smem(gate_up_mma_kernel<T, W, kWide>);
  if (allowed != cudaSuccess) return allowed;
  launch_pdl(gate_up_mma_kernel<T, W, kWide>, dim3((2 * w.I + L::R - 1) / L::R, E), W * 32,
             L::bytes(w.D) + kSlack<kWide>, stream, xn, xb, slots, offset, list, w, virt, k, limit,
             hb);
  return cudaGetLastError();
}

template <int T, int W, bool kWide>
cudaError_t down_launch(const uint16_t* hb, const float* weight, const vex_slot* slots,
                        const int* offset, const int* list, const MoeWeights& w,
                        const VirtualSlots& virt, int E, int k, float* y, cudaStream_t stream) {
  using L = Layout<W, T, kWide>;
  static const cudaError_t allowed = allow_smem(down_mma_kernel<T, W, kWide>);
  if (allowed != cudaSuccess) return allowed;
  launch_pdl(down_mma_kernel<T, W, kWide>, dim3((w.D + L::R - 1) / L::R, E), W * 32,
             L::bytes(w.I) + kSlack<kWide>, stream, hb, weight, slots, offset, list, w, virt, k, y);
  return cudaGetLastError();
}

// Whether the current device runs the wide (wgmma) passes: sm_90, the one target they are built
// for (sm_90a); elsewhere the 64-token passes run on mma.sync.
bool wgmma_device() {
  static int known[64] = {};  // per device: 0 not asked yet, 1 yes, 2 no
  int device = 0, major = 0, minor = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= 64) return false;
  if (!known[device]) {
    const bool yes =
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) == cudaSuccess &&
        major == 9 && minor == 0;
    known[device] = yes ? 1 : 2;
  }
  return known[device] == 1;
}

// The shape for a pass of `pairs` (token, slot) pairs over E slots, then the call
// f(tokens, wide).
template <typename F>
cudaError_t with_shape(int pairs, int E, F&& f) {
  switch (tokens_per_pass(pairs, E)) {
    case 16:
      return f(std::integral_constant<int, 16>{}, std::false_type{});
    case 32:
      return f(std::integral_constant<int, 32>{}, std::false_type{});
    case 64:
      return wgmma_device() ? f(std::integral_constant<int, 64>{}, std::true_type{})
                            : f(std::integral_constant<int, 64>{}, std::false_type{});
    default:
      return wgmma_device() ? f(std::integral_constant<int, 128>{}, std::true_type{})
                            : f(std::integral_constant<int, 64>{}, std::false_type{});
  }
}

}  // namespace

bool grouped_wide(int pairs, int E) {
  return tokens_per_pass(pairs, E) >= 64 && wgmma_device();
}

cudaError_t moe_gate_up_mma(const float* xn, const uint16_t* xb, const vex_slot* slots,
                            const int* offset, const int* list, const MoeWeights& w,
                            const VirtualSlots& virt, int E, int k, float limit, uint16_t* hb,
                            int pairs, cudaStream_t stream) {
  if (w.D % 64 || w.I % 64) return cudaErrorInvalidValue;
  return with_shape(pairs, E, [&](auto t, auto wide) {
    constexpr int T = decltype(t)::value;
    constexpr bool kWide = decltype(wide)::value;
    return gate_up_launch<T, kGateUpWarps<T, kWide>, kWide>(xn, xb, slots, offset, list, w, virt, E,
                                                            k, limit, hb, stream);
  });
}

cudaError_t moe_down_mma(const uint16_t* hb, const float* weight, const vex_slot* slots,
                         const int* offset, const int* list, const MoeWeights& w,
                         const VirtualSlots& virt, int E, int k, float* y, int pairs,
                         cudaStream_t stream) {
  if (w.D % 64 || w.I % 64) return cudaErrorInvalidValue;
  return with_shape(pairs, E, [&](auto t, auto wide) {
    constexpr int T = decltype(t)::value;
    constexpr bool kWide = decltype(wide)::value;
    return down_launch<T, kDownWarps<T, kWide>, kWide>(hb, weight, slots, offset, list, w, virt, E,
                                                       k, y, stream);
  });
}

}  // namespace vex::cuda
