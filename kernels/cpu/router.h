// Router (docs/gpt-oss.md §4.5): top-k over the logits, then softmax over the k chosen only.
#pragma once

namespace vex {

// logits: [n]; idx/weight: [k], sorted by descending logit, ties to the lower index. The first
// `preset` entries of idx are chosen already (forced slots, vexprobe): the rest are the best of
// the others, and the softmax runs over all k.
void router_topk_softmax(const float* logits, int n, int k, int* idx, float* weight,
                         int preset = 0);

}  // namespace vex
