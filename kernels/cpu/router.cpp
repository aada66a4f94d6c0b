#include "kernels/cpu/router.h"

#include <cmath>

namespace vex {

void router_topk_softmax(const float* logits, int n, int k, int* idx, float* weight,
                         int preset) {
  // Selection by repeated scan: n is 32 or 128, k is 4.
  for (int i = preset; i < k; ++i) {
    int best = -1;
    for (int e = 0; e < n; ++e) {
      bool taken = false;
      for (int j = 0; j < i; ++j) taken |= idx[j] == e;
      if (!taken && (best < 0 || logits[e] > logits[best])) best = e;
    }
    idx[i] = best;
  }
  double m = logits[idx[0]];
  for (int i = 1; i < k; ++i) m = std::max<double>(m, logits[idx[i]]);
  double den = 0;
  for (int i = 0; i < k; ++i) den += std::exp(logits[idx[i]] - m);
  for (int i = 0; i < k; ++i) weight[i] = static_cast<float>(std::exp(logits[idx[i]] - m) / den);
}

}  // namespace vex
