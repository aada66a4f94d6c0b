// RMSNorm (docs/gpt-oss.md §4.1): y = x * rsqrt(mean(x^2) + eps) * g, gain applied in fp32, no 1+g offset.
#pragma once

#include <cstdint>

namespace vex {

// x, y: [n, dim] fp32 (may alias); g: [dim] bf16.
void rmsnorm(const float* x, const uint16_t* g, float* y, int n, int dim, float eps);

}  // namespace vex
