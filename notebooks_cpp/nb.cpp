// The notebook runtime (nb.hpp). Heatmaps are drawn here pixel by pixel and written with
// stb_image_write, their titles with stb_easy_font; line plots are delegated to gnuplot.
#include "nb.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>

// Static, so that a notebook can also link monarch_models, which has its own copy.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#include <stb/stb_easy_font.h>

namespace nb {
namespace {

std::string g_out_dir = ".";
int g_failures = 0;

std::string path_of(const std::string& file) { return g_out_dir + "/" + file; }

// Markers start with a character no notebook prints, so the renderer cannot confuse them.
void marker(const std::string& line) {
  std::cout.flush();
  std::fflush(stdout);
  std::printf("\x1e%s\n", line.c_str());
  std::fflush(stdout);
}

using Rgb = std::array<unsigned char, 3>;

// A perceptually ordered dark-to-bright colour map (viridis, sampled at 5 points).
Rgb colour(double t) {
  static const double stops[5][3] = {
      {68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
  t = std::clamp(t, 0.0, 1.0) * 4;
  const int i = std::min(3, static_cast<int>(t));
  const double f = t - i;
  Rgb c;
  for (int k = 0; k < 3; ++k)
    c[k] = static_cast<unsigned char>(std::lround(stops[i][k] + f * (stops[i + 1][k] - stops[i][k])));
  return c;
}

struct Image {
  int w, h;
  std::vector<unsigned char> px;
  Image(int w_, int h_) : w(w_), h(h_), px(static_cast<std::size_t>(w_) * h_ * 3, 255) {}
  void set(int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    auto* p = &px[(static_cast<std::size_t>(y) * w + x) * 3];
    p[0] = c[0], p[1] = c[1], p[2] = c[2];
  }
  void fill(int x0, int y0, int x1, int y1, Rgb c) {
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) set(x, y, c);
  }
  // stb_easy_font emits quads of a ~7 px font; each is filled at `scale`.
  void text(int x, int y, const std::string& s, int scale = 2) {
    static char buf[99999];
    std::string copy = s;
    const int quads = stb_easy_font_print(0, 0, copy.data(), nullptr, buf, sizeof(buf));
    const float* v = reinterpret_cast<const float*>(buf);
    for (int q = 0; q < quads; ++q) {
      const float* a = v + q * 16;  // 4 vertices of (x, y, z, rgba) = 4 floats each
      fill(x + static_cast<int>(a[0] * scale), y + static_cast<int>(a[1] * scale),
           x + static_cast<int>(a[8] * scale), y + static_cast<int>(a[9] * scale), {20, 20, 20});
    }
  }
};

constexpr int kMargin = 16, kTitle = 30, kGap = 24, kTextScale = 2;

}  // namespace

void init(int argc, char** argv) {
  if (argc > 1) g_out_dir = argv[1];
  std::cout.setf(std::ios::fixed);
}

void cell(int id) { marker("@nb:cell " + std::to_string(id)); }

void check(bool ok, const std::string& claim, const std::string& detail) {
  if (!ok) ++g_failures;
  std::cout << "[check] " << claim << ": " << (ok ? "ok" : "FAILED") << (ok || detail.empty() ? "" : " (" + detail + ")")
            << "\n";
}

int finish() {
  if (g_failures) std::cout << g_failures << " claim(s) of this notebook FAILED\n";
  return g_failures ? 1 : 0;
}

bool under_test() {
  const char* v = std::getenv("MONARCH_NB_TEST");
  return v && std::string(v) == "1";
}

void figure(const std::string& file, const std::string& caption) { marker("@nb:figure " + file + "|" + caption); }

void heatmap(const std::string& file, const std::string& caption, const std::vector<Panel>& panels,
             int cell, double gamma, double lo, double hi) {
  if (hi <= lo) {
    hi = lo;
    for (const auto& p : panels) hi = std::max(hi, p.M.maxCoeff());
    if (hi <= lo) hi = lo + 1;
  }
  int width = kMargin, height = 0;
  for (const auto& p : panels) {
    width += static_cast<int>(p.M.cols()) * cell + kGap;
    height = std::max(height, static_cast<int>(p.M.rows()) * cell);
  }
  width += kMargin - kGap;
  // Panel titles need room too: stb_easy_font is about 6 px per character.
  for (const auto& p : panels)
    width = std::max(width, static_cast<int>(p.title.size()) * 6 * kTextScale + 2 * kMargin);
  Image img(width, height + kTitle + 2 * kMargin);
  int x0 = kMargin;
  for (const auto& p : panels) {
    const int y0 = kMargin + kTitle;
    img.text(x0, kMargin, p.title, kTextScale);
    for (int r = 0; r < p.M.rows(); ++r)
      for (int c = 0; c < p.M.cols(); ++c) {
        const double t = std::pow(std::max(0.0, (p.M(r, c) - lo) / (hi - lo)), gamma);
        img.fill(x0 + c * cell, y0 + r * cell, x0 + (c + 1) * cell, y0 + (r + 1) * cell, colour(t));
      }
    if (p.grid > 0) {
      const Rgb line = {255, 255, 255};
      for (int r = p.grid; r < p.M.rows(); r += p.grid)
        img.fill(x0, y0 + r * cell, x0 + static_cast<int>(p.M.cols()) * cell, y0 + r * cell + 1, line);
      for (int c = p.grid; c < p.M.cols(); c += p.grid)
        img.fill(x0 + c * cell, y0, x0 + c * cell + 1, y0 + static_cast<int>(p.M.rows()) * cell, line);
    }
    x0 += static_cast<int>(p.M.cols()) * cell + kGap;
  }
  if (!stbi_write_png(path_of(file).c_str(), img.w, img.h, 3, img.px.data(), img.w * 3)) {
    check(false, "figure " + file + " is written", "stb_image_write failed");
    return;
  }
  figure(file, caption);
}

void lineplot(const std::string& file, const std::string& caption, const PlotAxes& axes,
              const std::vector<Series>& series) {
  const std::string gnuplot = NB_GNUPLOT;
  if (gnuplot.empty()) {
    std::cout << "(plot " << file << " skipped: gnuplot was not found when the project was configured;"
              << " scripts/setup.sh installs it)\n";
    return;
  }
  const std::string stem = path_of(file.substr(0, file.rfind('.')));
  {
    std::ofstream dat(stem + ".dat");
    dat.precision(10);
    for (const auto& s : series) {  // one data block per series, separated by two blank lines
      for (std::size_t i = 0; i < s.x.size(); ++i) dat << s.x[i] << " " << s.y[i] << "\n";
      dat << "\n\n";
    }
    std::ofstream gp(stem + ".gp");
    gp << "set terminal pngcairo size 900,600 font 'DejaVu Sans,11' noenhanced\n"
       << "set output '" << path_of(file) << "'\n"
       << "set grid lc rgb '#dddddd'\nset key below\nset border lc rgb '#555555'\n"
       << "set xlabel \"" << axes.xlabel << "\"\nset ylabel \"" << axes.ylabel << "\"\n";
    if (axes.logx) gp << "set logscale x\n";
    if (axes.logy) gp << "set logscale y\nset format y '%g'\n";
    gp << "plot ";
    for (std::size_t k = 0; k < series.size(); ++k)
      gp << (k ? ", " : "") << "'" << stem << ".dat' index " << k << " with "
         << (series[k].points ? "linespoints pt 7 ps 0.8" : "lines") << " lw 2 title \"" << series[k].title << "\"";
    gp << "\n";
  }
  const std::string cmd = "'" + gnuplot + "' '" + stem + ".gp'";
  if (std::system(cmd.c_str()) != 0) {
    check(false, "figure " + file + " is drawn", "gnuplot failed: " + cmd);
    return;
  }
  figure(file, caption);
}

void row(const std::vector<std::string>& cells, int width) {
  for (const auto& c : cells) std::printf("%*s", width, c.c_str());
  std::printf("\n");
}

std::string fmt(const char* format, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, format);
  std::vsnprintf(buf, sizeof buf, format, ap);
  va_end(ap);
  return buf;
}

}  // namespace nb
