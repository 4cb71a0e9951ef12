// The small runtime every notebook links: cell markers for the renderer, claims that are checked
// (not assert(): Release builds define NDEBUG), PNG heatmaps (stb_image_write) and line plots
// (gnuplot). See notebooks_cpp/README.md for how a notebook is written and rendered.
#pragma once

#include <string>
#include <vector>

#include "monarch/eigen_types.hpp"

namespace nb {

/// Reads the output folder for figures (argv[1], default "."). Call first in main().
void init(int argc, char** argv);
/// Marks the start of the code that follows prose block `id`. The renderer inserts these calls
/// in an instrumented copy of the notebook; a notebook never calls it itself.
void cell(int id);

/// A claim the surrounding prose makes. Prints "[check] claim: ok" or "...: FAILED (detail)";
/// any failure makes finish() return non-zero, so the notebook's ctest and the docs build fail.
void check(bool ok, const std::string& claim, const std::string& detail = "");
/// 0 when every check held, 1 otherwise. `return nb::finish();` ends main().
int finish();
/// The exit code a ctest run uses to report "skipped" (for the GPU chapter without a GPU).
constexpr int kSkipExit = 77;
/// True when the notebook runs as a ctest test (MONARCH_NB_TEST=1) rather than for the docs.
bool under_test();

/// Writes a figure's file name and caption into the output; the renderer turns it into an image.
void figure(const std::string& file, const std::string& caption);

/// One panel of a heatmap figure.
struct Panel {
  monarch::Matrix<double> M;  // the values, row 0 at the top
  std::string title;
  int grid = 0;               // draw a line every `grid` rows and columns (block boundaries); 0 = none
};
/// Panels side by side, one colour scale for all (0 .. the largest entry, or lo .. hi when given),
/// each entry a square of `cell` pixels. gamma < 1 brightens small values (attention is skewed).
void heatmap(const std::string& file, const std::string& caption, const std::vector<Panel>& panels,
             int cell = 6, double gamma = 0.5, double lo = 0, double hi = -1);

/// One line of a line plot.
struct Series {
  std::string title;
  std::vector<double> x, y;
  bool points = true;  // draw markers as well as the line
};
struct PlotAxes {
  std::string xlabel, ylabel;
  bool logx = false, logy = false;
};
/// A PNG line plot through gnuplot. Without gnuplot it prints why and writes nothing.
void lineplot(const std::string& file, const std::string& caption, const PlotAxes& axes,
              const std::vector<Series>& series);

/// Prints a row of right-aligned columns (a minimal table).
void row(const std::vector<std::string>& cells, int width = 12);
/// printf-style formatting into a std::string.
std::string fmt(const char* format, ...);

}  // namespace nb
