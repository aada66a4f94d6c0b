// Pictures of routing (vexprobe --svg): a heat map as a standalone SVG file, readable in any
// browser and in Markdown (docs/routing-study.md, the README).
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace vex {

struct Heatmap {
  std::string title, row_axis, col_axis;   // "layer", "expert"
  std::vector<std::string> rows, cols;      // labels
  std::vector<double> values;               // [rows * cols], shaded 0 .. max(values)
  std::vector<std::string> text;            // [rows * cols] written in the cells, or empty
  std::vector<char> marked;                 // [rows * cols] outlined cells, or empty
  std::string legend;                       // what the shade means
};

// The SVG document; InvalidArgument when the sizes disagree.
absl::StatusOr<std::string> heatmap_svg(const Heatmap& h);
// Writes it to `path`, naming the path in errors.
absl::Status write_heatmap(const Heatmap& h, const std::string& path);

}  // namespace vex
