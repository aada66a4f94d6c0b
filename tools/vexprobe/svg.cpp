#include "tools/vexprobe/svg.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "absl/strings/str_format.h"

namespace vex {
namespace {

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default:
        // Control bytes are not allowed in XML 1.0 text.
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\t') out += c;
    }
  }
  return out;
}

// White through light blue to dark blue (ColorBrewer's "Blues" end points).
std::string shade(double t) {
  static constexpr double stops[][3] = {
      {247, 251, 255}, {198, 219, 239}, {107, 174, 214}, {33, 113, 181}, {8, 48, 107}};
  t = std::clamp(t, 0.0, 1.0) * 4;
  const int i = std::min(3, static_cast<int>(t));
  const double f = t - i;
  int rgb[3];
  for (int c = 0; c < 3; ++c) rgb[c] = static_cast<int>(std::lround(stops[i][c] + f * (stops[i + 1][c] - stops[i][c])));
  return absl::StrFormat("#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

}  // namespace

absl::StatusOr<std::string> heatmap_svg(const Heatmap& h) {
  const size_t R = h.rows.size(), C = h.cols.size();
  if (h.values.size() != R * C || (!h.text.empty() && h.text.size() != R * C) ||
      (!h.marked.empty() && h.marked.size() != R * C))
    return absl::InvalidArgumentError("heat map: values, text and marks must be rows x cols");
  size_t label = 0;
  for (const std::string& r : h.rows) label = std::max(label, r.size());
  label = std::max(std::min<size_t>(label, 24), h.row_axis.size() + 2);
  const int cw = 26, ch = 18, left = static_cast<int>(label) * 7 + 16;
  const int top = 52;
  // Wide enough for the cells, the title (13 px bold: ~8 px a character) and the legend line.
  const int width = std::max({left + static_cast<int>(C) * cw + 20,
                              static_cast<int>(h.title.size()) * 8 + 16,
                              left + 148 + static_cast<int>(h.legend.size() + 12) * 7});
  const int height = top + static_cast<int>(R) * ch + 56;
  double vmax = 0;
  for (double v : h.values) vmax = std::max(vmax, v);
  std::string s = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
      "font-family=\"monospace\" font-size=\"11\">\n<rect width=\"100%%\" height=\"100%%\" "
      "fill=\"white\"/>\n<text x=\"8\" y=\"18\" font-size=\"13\" font-weight=\"bold\">%s</text>\n",
      width, height, escape(h.title));
  absl::StrAppendFormat(&s, "<text x=\"%d\" y=\"36\">%s →</text>\n", left, escape(h.col_axis));
  absl::StrAppendFormat(&s, "<text x=\"8\" y=\"%d\">%s ↓</text>\n", top - 4, escape(h.row_axis));
  for (size_t c = 0; c < C; ++c)
    absl::StrAppendFormat(&s, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
                          left + static_cast<int>(c) * cw + cw / 2, top - 4, escape(h.cols[c]));
  for (size_t r = 0; r < R; ++r) {
    const int y = top + static_cast<int>(r) * ch;
    std::string name = h.rows[r].size() > 24 ? h.rows[r].substr(0, 23) + "…" : h.rows[r];
    absl::StrAppendFormat(&s, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", left - 6,
                          y + 13, escape(name));
    for (size_t c = 0; c < C; ++c) {
      const size_t i = r * C + c;
      const double t = vmax > 0 ? h.values[i] / vmax : 0;
      const int x = left + static_cast<int>(c) * cw;
      absl::StrAppendFormat(&s, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"%s>"
                            "<title>%s %s, %s %s: %.4g</title></rect>\n",
                            x, y, cw, ch, shade(t),
                            !h.marked.empty() && h.marked[i] ? " stroke=\"#d62728\" stroke-width=\"2\"" : "",
                            escape(h.row_axis), escape(h.rows[r]), escape(h.col_axis), escape(h.cols[c]),
                            h.values[i]);
      if (!h.text.empty() && !h.text[i].empty())
        absl::StrAppendFormat(&s, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"%s\">%s</text>\n",
                              x + cw / 2, y + 13, t > 0.55 ? "white" : "black", escape(h.text[i]));
    }
  }
  // The legend: the scale from 0 to the largest value.
  const int ly = top + static_cast<int>(R) * ch + 16;
  for (int i = 0; i < 10; ++i)
    absl::StrAppendFormat(&s, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"12\" fill=\"%s\"/>\n",
                          left + i * 14, ly, shade(i / 9.0));
  absl::StrAppendFormat(&s, "<text x=\"%d\" y=\"%d\">0 … %.3g  %s</text>\n", left + 148, ly + 10,
                        vmax, escape(h.legend));
  s += "</svg>\n";
  return s;
}

absl::Status write_heatmap(const Heatmap& h, const std::string& path) {
  VEX_ASSIGN_OR_RETURN(const std::string svg, heatmap_svg(h));
  std::ofstream out(path, std::ios::binary);
  if (!out || !(out << svg) || !out.flush())
    return absl::PermissionDeniedError(absl::StrCat(path, ": cannot be written"));
  return absl::OkStatus();
}

}  // namespace vex
