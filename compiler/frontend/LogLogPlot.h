// An SVG plot on log–log axes padded to whole decades, for the reports (the
// Pareto fronts of formula sweeps, the scaling curves of training sweeps).
#pragma once
#include <string>

namespace einstruct {

// Text for an SVG element: & < > " escaped.
std::string xmlEscape(const std::string &text);

// ω in [0, 1] -> a blue (no sharing) to orange (heavy sharing) colour.
std::string omegaColour(double omega);

class LogLogPlot {
public:
  // The data's ranges (positive); R is the right margin (the legend's).
  LogLogPlot(double xlo, double xhi, double ylo, double yhi, double width = 720,
             double height = 520, double right = 190);
  double px(double x) const;
  double py(double y) const;
  // The opening tag, background, title, decade grid and axis labels.
  std::string begin(const std::string &title, const std::string &xLabel,
                    const std::string &yLabel) const;
  // Where the legend starts (x of the right margin, y of the top).
  double legendX() const { return W_ - R_ + 20; }
  double legendY() const { return T_ + 10; }

private:
  double lx0_, lx1_, ly0_, ly1_;
  double W_, H_, L_ = 80, R_, T_ = 40, B_ = 60;
};

} // namespace einstruct
