// Token selection on the GPU so that only the token comes back: argmax over the logits (ties to
// the lower id, as vex::argmax), and seeded sampling with temperature, top-k, top-p and min-p
// drawing the token vex::Sampler draws (twin of runtime/sampler.cpp), written where the next
// decode step reads its token.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace vex::cuda {

// For each row r < rows of logits [rows, V]: out[r] = argmax(row r), then pos[r] += advance (the
// step's tokens are now in the cache; a batched step advances each sequence).
cudaError_t argmax_next(const float* logits, int V, int rows, int32_t* out, int* pos, int advance,
                        cudaStream_t stream);

// vex::SamplingParams as the kernel reads it (from device memory, so a captured graph follows
// changes). Greedy rows (temperature 0 or top_k 1) take the argmax without a draw.
struct SamplingConfig {
  float temperature;
  int top_k;
  float top_p;
  float min_p;
  uint64_t seed;
};

// For each row r, with its own config[r]: draws[r] += 1, then out[r] = the token vex::Sampler
// with config[r].seed draws at draw index draws[r] (same filters, same counter-based uniform, the
// kept tokens accumulated in id order), and pos[r] += advance. A cluster of 8 blocks per row
// (kernels/cuda/sampling.cu); V <= 2^24.
cudaError_t sample_next(const float* logits, int V, int rows, const SamplingConfig* config,
                        uint64_t* draws, int32_t* out, int* pos, int advance, cudaStream_t stream);

}  // namespace vex::cuda
