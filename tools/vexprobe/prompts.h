// Labelled texts for training a virtual expert's router row (vexprobe train-router): for each
// builtin, texts where the expert should answer somewhere (positives) mixed with look-alikes it
// must not answer (negatives). The labels are not written here: a position is positive exactly
// when the expert itself answers the text up to it (HostExpert::answer), so the row learns where
// the expert has something exact to say.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace vex {

// `n` texts for `expert` (about 40% of them as the final answer of a Harmony chat, in
// special-token text: encode them with specials allowed) (calculator, datetime, units, finance, interpreter), deterministic in
// `seed`. Unknown names are an error listing the known ones.
absl::StatusOr<std::vector<std::string>> training_texts(const std::string& expert, int n,
                                                        uint64_t seed);

}  // namespace vex
