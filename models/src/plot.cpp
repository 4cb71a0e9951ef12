// A small hand-drawn PNG plot (stb_image_write for the file, stb_easy_font for the letters):
// retrieval quality against attention FLOPs per text, log scale, one colour per method family.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "monarch/models/study.hpp"

#ifdef MONARCH_HAVE_STB
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#include <stb/stb_easy_font.h>
#endif

namespace monarch::models {

#ifdef MONARCH_HAVE_STB
namespace {

constexpr int kW = 960, kH = 600, kLeft = 90, kRight = 250, kTop = 50, kBottom = 70;

struct Rgb {
  unsigned char r, g, b;
};

struct Canvas {
  std::vector<unsigned char> px = std::vector<unsigned char>(kW * kH * 3, 255);
  void set(int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= kW || y >= kH) return;
    unsigned char* p = &px[(static_cast<std::size_t>(y) * kW + x) * 3];
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
  }
  void rect(int x0, int y0, int x1, int y1, Rgb c) {
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x) set(x, y, c);
  }
  void line(double x0, double y0, double x1, double y1, Rgb c, int width = 1) {
    const int n = static_cast<int>(std::max(std::abs(x1 - x0), std::abs(y1 - y0))) + 1;
    for (int i = 0; i <= n; ++i) {
      const double t = static_cast<double>(i) / n;
      const int x = static_cast<int>(std::lround(x0 + t * (x1 - x0)));
      const int y = static_cast<int>(std::lround(y0 + t * (y1 - y0)));
      rect(x - width / 2, y - width / 2, x + (width - 1) / 2, y + (width - 1) / 2, c);
    }
  }
  // stb_easy_font gives axis-aligned quads in a font about 7 px high; we scale them.
  void text(int x, int y, const std::string& s, Rgb c, int scale = 2) {
    static char buf[60000];
    std::string copy = s;
    const int quads = stb_easy_font_print(0, 0, copy.data(), nullptr, buf, sizeof(buf));
    const float* v = reinterpret_cast<const float*>(buf);
    for (int q = 0; q < quads; ++q) {
      const float* a = v + q * 16;  // 4 vertices of (x, y, z, colour) = 16 bytes = 4 floats
      const float qx0 = a[0], qy0 = a[1], qx1 = a[8], qy1 = a[9];
      rect(x + static_cast<int>(qx0 * scale), y + static_cast<int>(qy0 * scale),
           x + static_cast<int>(qx1 * scale) - 1, y + static_cast<int>(qy1 * scale) - 1, c);
    }
  }
  static int text_width(const std::string& s, int scale = 2) {
    std::string copy = s;
    return stb_easy_font_width(copy.data()) * scale;
  }
};

std::string family(const AttentionChoice& a) {
  switch (a.method) {
    case Method::Exact: return "exact softmax";
    case Method::Monarch: return "MonarchAttention (T = 1, 2, 3)";
    case Method::BlockLocal: return "block-local softmax";
    case Method::Nystrom: return "Nystrom";
  }
  return "";
}

}  // namespace

bool write_quality_plot(const std::string& path, const std::vector<EndToEnd>& rows,
                        const std::string& title) {
  if (rows.empty()) return false;
  Canvas cv;
  const Rgb black{0, 0, 0}, grey{200, 200, 200}, dark{90, 90, 90};
  const std::map<std::string, Rgb> colours{{"exact softmax", {0, 0, 0}},
                                           {"MonarchAttention (T = 1, 2, 3)", {214, 39, 40}},
                                           {"block-local softmax", {31, 119, 180}},
                                           {"Nystrom", {44, 160, 44}}};
  double fmin = 1e300, fmax = 0, ymin = 1, ymax = 0;
  for (const auto& r : rows) {
    fmin = std::min(fmin, r.flops_per_sequence);
    fmax = std::max(fmax, r.flops_per_sequence);
    ymin = std::min({ymin, r.score.acc1, r.score.mrr});
    ymax = std::max({ymax, r.score.acc1, r.score.mrr});
  }
  const double lx0 = std::floor(std::log10(fmin) * 4) / 4, lx1 = std::ceil(std::log10(fmax) * 4) / 4 + 0.001;
  const double y0 = std::max(0.0, std::floor(ymin * 20 - 1) / 20), y1 = std::min(1.0, std::ceil(ymax * 20 + 0.5) / 20);
  const int pw = kW - kLeft - kRight, ph = kH - kTop - kBottom;
  auto X = [&](double f) { return kLeft + (std::log10(f) - lx0) / (lx1 - lx0) * pw; };
  auto Y = [&](double v) { return kTop + ph - (v - y0) / (y1 - y0) * ph; };

  // Grid, axes, ticks.
  for (double v = y0; v <= y1 + 1e-9; v += 0.05) {
    cv.line(kLeft, Y(v), kLeft + pw, Y(v), grey);
    char s[16];
    std::snprintf(s, sizeof(s), "%.2f", v);
    cv.text(kLeft - 10 - Canvas::text_width(s), static_cast<int>(Y(v)) - 6, s, black);
  }
  for (double e = std::ceil(lx0 * 4) / 4; e <= lx1; e += 0.25) {
    const double f = std::pow(10.0, e);
    cv.line(X(f), kTop, X(f), kTop + ph, grey);
    char s[16];
    std::snprintf(s, sizeof(s), "%.2g", f);
    cv.text(static_cast<int>(X(f)) - Canvas::text_width(s) / 2, kTop + ph + 10, s, black);
  }
  cv.line(kLeft, kTop, kLeft, kTop + ph, black, 2);
  cv.line(kLeft, kTop + ph, kLeft + pw, kTop + ph, black, 2);
  cv.text(kLeft, 14, title, black);
  const std::string xl = "attention FLOPs per text (log scale, 6 layers x 12 heads)";
  cv.text(kLeft + pw / 2 - Canvas::text_width(xl) / 2, kH - 30, xl, black);
  cv.text(8, kTop - 24, "quality", black);

  // Series: one line per family through its points in FLOP order; filled = acc@1, hollow = MRR.
  std::map<std::string, std::vector<const EndToEnd*>> fam;
  for (const auto& r : rows) fam[family(r.method)].push_back(&r);
  for (auto& [name, pts] : fam) {
    std::sort(pts.begin(), pts.end(), [](auto* a, auto* b) { return a->flops_per_sequence < b->flops_per_sequence; });
    const Rgb c = colours.at(name);
    for (std::size_t i = 0; i + 1 < pts.size(); ++i) {
      cv.line(X(pts[i]->flops_per_sequence), Y(pts[i]->score.acc1), X(pts[i + 1]->flops_per_sequence),
              Y(pts[i + 1]->score.acc1), c, 2);
      cv.line(X(pts[i]->flops_per_sequence), Y(pts[i]->score.mrr), X(pts[i + 1]->flops_per_sequence),
              Y(pts[i + 1]->score.mrr), c, 1);
    }
    for (const auto* p : pts) {
      const int x = static_cast<int>(X(p->flops_per_sequence)), ya = static_cast<int>(Y(p->score.acc1)),
                ym = static_cast<int>(Y(p->score.mrr));
      cv.rect(x - 4, ya - 4, x + 4, ya + 4, c);
      cv.line(x - 4, ym - 4, x + 4, ym - 4, c), cv.line(x - 4, ym + 4, x + 4, ym + 4, c);
      cv.line(x - 4, ym - 4, x - 4, ym + 4, c), cv.line(x + 4, ym - 4, x + 4, ym + 4, c);
      cv.text(x + 7, ya - 5, p->method.label(), dark, 1);
    }
  }
  // Legend.
  int ly = kTop + 10;
  const int lx = kLeft + pw + 20;
  for (const auto& [name, pts] : fam) {
    cv.rect(lx, ly, lx + 10, ly + 10, colours.at(name));
    cv.text(lx + 16, ly - 1, name, black, 1);
    ly += 22;
  }
  ly += 10;
  cv.rect(lx, ly, lx + 8, ly + 8, dark);
  cv.text(lx + 16, ly - 1, "filled: accuracy@1", black, 1);
  ly += 18;
  cv.line(lx, ly, lx + 8, ly, dark), cv.line(lx, ly + 8, lx + 8, ly + 8, dark);
  cv.line(lx, ly, lx, ly + 8, dark), cv.line(lx + 8, ly, lx + 8, ly + 8, dark);
  cv.text(lx + 16, ly - 1, "hollow: MRR", black, 1);
  return stbi_write_png(path.c_str(), kW, kH, 3, cv.px.data(), kW * 3) != 0;
}
#else
bool write_quality_plot(const std::string&, const std::vector<EndToEnd>&, const std::string&) { return false; }
#endif

}  // namespace monarch::models
