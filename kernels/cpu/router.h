// Router (docs/gpt-oss.md §4.5): top-k over the logits, then softmax over the k chosen only.
#pragma once

namespace vex {

// logits: [n]; idx/weight: [k], sorted by descending logit, ties to the lower index.
void router_topk_softmax(const float* logits, int n, int k, int* idx, float* weight);

}  // namespace vex
