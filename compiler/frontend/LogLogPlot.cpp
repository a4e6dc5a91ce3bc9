#include "LogLogPlot.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

namespace einstruct {

std::string xmlEscape(const std::string &text) {
  std::string out;
  for (char c : text)
    switch (c) {
    case '&': out += "&amp;"; break;
    case '<': out += "&lt;"; break;
    case '>': out += "&gt;"; break;
    case '"': out += "&quot;"; break;
    default: out += c;
    }
  return out;
}

std::string omegaColour(double omega) {
  double t = std::clamp(omega, 0.0, 1.0);
  int r = int(40 + t * 215), g = int(90 + t * 60), b = int(200 - t * 180);
  return fmt::format("#{:02x}{:02x}{:02x}", r, g, b);
}

LogLogPlot::LogLogPlot(double xlo, double xhi, double ylo, double yhi,
                       double width, double height, double right)
    : lx0_(std::floor(std::log10(xlo))), lx1_(std::ceil(std::log10(xhi))),
      ly0_(std::floor(std::log10(ylo))), ly1_(std::ceil(std::log10(yhi))),
      W_(width), H_(height), R_(right) {
  // At most 60 decades drawn (the grid is a line per decade); a range that
  // is not finite or positive becomes one decade.
  for (auto [lo, hi] : {std::pair{&lx0_, &lx1_}, std::pair{&ly0_, &ly1_}}) {
    if (!std::isfinite(*lo) || !std::isfinite(*hi) || *hi < *lo)
      *lo = 0, *hi = 1;
    *lo = std::max(*lo, *hi - 60);
    if (*hi == *lo)
      *hi += 1;
  }
}

double LogLogPlot::px(double x) const {
  return L_ + (std::log10(x) - lx0_) / (lx1_ - lx0_) * (W_ - L_ - R_);
}

double LogLogPlot::py(double y) const {
  return H_ - B_ - (std::log10(y) - ly0_) / (ly1_ - ly0_) * (H_ - T_ - B_);
}

std::string LogLogPlot::begin(const std::string &title,
                              const std::string &xLabel,
                              const std::string &yLabel) const {
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{}\" y=\"24\" font-size=\"15\">{}</text>\n",
      W_, H_, L_, title);
  for (double d = lx0_; d <= lx1_; ++d)
    svg += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" "
                       "y2=\"{2}\" stroke=\"#ddd\"/><text x=\"{0:.1f}\" "
                       "y=\"{3}\" text-anchor=\"middle\">1e{4:g}</text>\n",
                       px(std::pow(10, d)), T_, H_ - B_, H_ - B_ + 18, d);
  for (double d = ly0_; d <= ly1_; ++d)
    svg += fmt::format("<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" "
                       "y2=\"{1:.1f}\" stroke=\"#ddd\"/><text x=\"{3}\" "
                       "y=\"{1:.1f}\" text-anchor=\"end\" "
                       "dominant-baseline=\"middle\">1e{4:g}</text>\n",
                       L_, py(std::pow(10, d)), W_ - R_, L_ - 6, d);
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}"
                     "</text>\n",
                     (L_ + W_ - R_) / 2, H_ - 18, xLabel);
  svg += fmt::format("<text transform=\"translate(22,{}) rotate(-90)\" "
                     "text-anchor=\"middle\">{}</text>\n",
                     (T_ + H_ - B_) / 2, yLabel);
  return svg;
}

} // namespace einstruct
