// Line charts as standalone SVG (no dependencies; any browser shows them): a few series per
// chart, charts side by side, axes with round-number ticks, a legend, and an optional marked x
// (the best epoch, say).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace cli {

struct Series {
  std::string name;
  std::vector<double> x, y;  // NaN y values are gaps
};

struct Chart {
  std::string title, x_label;
  std::vector<Series> series;
  double marked_x = NAN;  // a dashed vertical line
  std::string marked_label;
};

namespace plot_detail {

inline std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", std::fabs(v) < 1e-12 ? 0.0 : v);
  return buf;
}

inline std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

// Round tick positions covering [lo, hi]: steps of 1, 2 or 5 x 10^k, about `target` of them.
inline std::vector<double> ticks(double lo, double hi, int target) {
  const double span = hi - lo, raw = span / target, mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
  std::vector<double> out;
  for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k += 1) out.push_back(k * step);
  return out;
}

}  // namespace plot_detail

inline std::string svg(const std::vector<Chart>& charts) {
  namespace d = plot_detail;
  static const char* const kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"};
  const double W = 460, H = 320, left = 62, right = 16, top = 34, bottom = 78;
  std::string s;
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" "
                "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                W * static_cast<double>(charts.size()), H);
  s += buf;
  for (std::size_t c = 0; c < charts.size(); ++c) {
    const Chart& ch = charts[c];
    const double ox = W * static_cast<double>(c), pw = W - left - right, ph = H - top - bottom;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (const Series& se : ch.series)
      for (std::size_t i = 0; i < se.x.size(); ++i) {
        if (std::isnan(se.y[i])) continue;
        x0 = std::min(x0, se.x[i]), x1 = std::max(x1, se.x[i]);
        y0 = std::min(y0, se.y[i]), y1 = std::max(y1, se.y[i]);
      }
    std::snprintf(buf, sizeof buf, "<text x=\"%.1f\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">%s</text>\n",
                  ox + left + pw / 2, d::escape(ch.title).c_str());
    s += buf;
    if (!(x0 <= x1)) continue;  // nothing to draw
    if (x1 - x0 < 1e-12) x0 -= 1, x1 += 1;
    const double pad = (y1 - y0) * 0.08 + 1e-9 * std::max(1.0, std::fabs(y1));
    y0 -= pad, y1 += pad;
    auto X = [&](double v) { return ox + left + (v - x0) / (x1 - x0) * pw; };
    auto Y = [&](double v) { return top + (y1 - v) / (y1 - y0) * ph; };
    std::snprintf(buf, sizeof buf, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#888\"/>\n",
                  ox + left, top, pw, ph);
    s += buf;
    for (double t : d::ticks(y0, y1, 5)) {
      std::snprintf(buf, sizeof buf,
                    "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>"
                    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                    ox + left, ox + left + pw, Y(t), Y(t), ox + left - 5, Y(t) + 4, d::number(t).c_str());
      s += buf;
    }
    for (double t : d::ticks(x0, x1, 6)) {
      if (std::fabs(t - std::round(t)) > 1e-9 && x1 - x0 >= 2) continue;  // epochs are whole numbers
      std::snprintf(buf, sizeof buf, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", X(t), top + ph + 16,
                    d::number(t).c_str());
      s += buf;
    }
    std::snprintf(buf, sizeof buf, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", ox + left + pw / 2,
                  top + ph + 34, d::escape(ch.x_label).c_str());
    s += buf;
    if (!std::isnan(ch.marked_x)) {
      const bool right_half = X(ch.marked_x) > ox + left + pw / 2;  // the label goes inside the plot
      std::snprintf(buf, sizeof buf,
                    "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" stroke-dasharray=\"4 3\"/>"
                    "<text x=\"%.1f\" y=\"%.1f\" fill=\"#555\" font-size=\"11\" text-anchor=\"%s\">%s</text>\n",
                    X(ch.marked_x), X(ch.marked_x), top, top + ph, X(ch.marked_x) + (right_half ? -3 : 3), top + 12,
                    right_half ? "end" : "start", d::escape(ch.marked_label).c_str());
      s += buf;
    }
    for (std::size_t k = 0; k < ch.series.size(); ++k) {
      const Series& se = ch.series[k];
      const char* color = kColors[k % (sizeof kColors / sizeof *kColors)];
      std::string path;
      for (std::size_t i = 0; i < se.x.size(); ++i) {
        if (std::isnan(se.y[i])) continue;
        std::snprintf(buf, sizeof buf, "%s%.1f,%.1f", path.empty() ? "" : " ", X(se.x[i]), Y(se.y[i]));
        path += buf;
        std::snprintf(buf, sizeof buf, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>", X(se.x[i]), Y(se.y[i]), color);
        s += buf;
      }
      s += "\n<polyline fill=\"none\" stroke-width=\"1.8\" stroke=\"" + std::string(color) + "\" points=\"" + path + "\"/>\n";
      // Legend: three entries per row under the x label.
      const double lx = ox + left + static_cast<double>(k % 3) * pw / 3, ly = H - 20 + 14.0 * static_cast<double>(k / 3);
      std::snprintf(buf, sizeof buf,
                    "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>"
                    "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                    lx, lx + 16, ly - 4, ly - 4, color, lx + 20, ly, d::escape(se.name).c_str());
      s += buf;
    }
  }
  s += "</svg>\n";
  return s;
}

}  // namespace cli
