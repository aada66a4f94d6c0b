// y = W x + b with bf16 W [out, in] (row-major, out x in as stored) and fp32 activations.
#pragma once

#include <cstdint>

namespace vex {

// x: [n, in] fp32, W: [out, in] bf16, b: [out] bf16 or null, y: [n, out] fp32.
// Dot products accumulate in double, so the reference sits closer to exact math than any
// fp32 implementation it is compared with.
void linear_bf16(const float* x, const uint16_t* W, const uint16_t* b, float* y, int n, int in,
                 int out);

}  // namespace vex
