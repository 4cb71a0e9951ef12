/// # Chapter 6: Zero-shot conversion
///
/// "Zero-shot" means: take a trained transformer, replace its softmax attention by
/// MonarchAttention in every layer, and change nothing else (no retraining). How much quality
/// survives, for how many FLOPs? This chapter runs a small version of the project's study
/// (`models/`, the `monarch zero-shot` command runs the full one) on all-MiniLM-L6-v2 and
/// compares MonarchAttention with two other cheap attentions at the same FLOPs:
///
/// * **block-local** softmax: each query attends only inside its own block; this is exactly
///   MonarchAttention's first half-step (eq. (14));
/// * **Nyström** attention (Xiong et al. 2021) with landmarks chosen to match the FLOPs.
///
/// FLOPs are counted with the convention of eq. (15).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "monarch/models/study.hpp"
#include "nb.hpp"

using monarch::Matrix;
using namespace monarch::models;

namespace {
constexpr int kPairs = 64;       // retrieval among 64 descriptions (chance: 1/64)
constexpr int kLayerTexts = 8;   // descriptions whose real Q, K, V feed part 1
constexpr int kBatch = 16;
}  // namespace

int main(int argc, char** argv) {
  nb::init(argc, argv);

  /// ## Part 1: each layer on its real inputs
  ///
  /// Every description goes through the exact model; at each layer and head every method is run
  /// on the real $Q$, $K$, $V$ and compared with exact attention. The KL gap per query row,
  /// $(F^\star - F(A))/N$ (eq. (7)), says how far the method's attention matrix is from softmax.
  /// Block-local attention with the same $b$ is MonarchAttention's first half-step, so by
  /// monotonicity (§4.6 of the derivation) MonarchAttention with $T \ge 1$ can never be worse:
  /// that is checked for every head. Block-local *with the same FLOPs* gets a larger block.
  const MiniLM model = MiniLM::load(default_model_dir());
  const auto pairs = read_pairs(default_pairs_file(), kPairs);
  std::vector<std::vector<int>> queries, docs;
  for (const auto& p : pairs) {
    queries.push_back(model.tokenize(p.query));
    docs.push_back(model.tokenize(p.document));
  }
  const std::vector<std::vector<int>> layer_texts(docs.begin(), docs.begin() + kLayerTexts);
  const std::vector<AttentionChoice> layer_methods = {AttentionChoice::parse("monarch:T=1"), AttentionChoice::parse("monarch:T=2"),
                                                      AttentionChoice::parse("local"), AttentionChoice::parse("local:match=2")};
  const auto study = per_layer_study(model, layer_texts, layer_methods);
  const int L = model.config().layers, H = model.config().heads;
  std::vector<std::string> header = {"method"};
  for (int l = 0; l < L; ++l) header.push_back(nb::fmt("layer %d", l));
  nb::row(header, 20);
  std::vector<nb::Series> kl_curves;
  for (const auto& st : study) {
    std::vector<std::string> cells = {st.method.label()};
    nb::Series s{st.method.label(), {}, {}};
    for (int l = 0; l < L; ++l) {
      const double kl = st.layer_mean(l, H, &HeadStats::kl_per_row);
      cells.push_back(nb::fmt("%.4f", kl));
      s.x.push_back(l);
      s.y.push_back(kl);
    }
    nb::row(cells, 20);
    kl_curves.push_back(s);
  }
  bool never_worse = true;
  for (std::size_t i = 0; i < study[1].heads.size(); ++i)
    never_worse = never_worse && study[1].heads[i].kl_per_row <= study[2].heads[i].kl_per_row + 1e-12 &&
                  study[0].heads[i].kl_per_row <= study[2].heads[i].kl_per_row + 1e-12;
  nb::check(never_worse, "in every layer and head MonarchAttention's KL gap is at most block-local's with the same b");
  nb::lineplot("nb6_layers.png", "KL gap per query row, mean over heads and texts, by layer",
               {"layer", "(F* - F) / N", false, true}, kl_curves);

  /// ## Part 2: every layer replaced, end to end
  ///
  /// The task: retrieve each Debian package's long description from its one-line summary, among
  /// all descriptions, by the cosine of the sentence embeddings. Accuracy@1 and the mean
  /// reciprocal rank (MRR) against the attention FLOPs per text (all layers and heads). The
  /// exact model is the reference point; "match=2" methods are given the FLOPs of MonarchAttention
  /// with $T = 2$.
  const std::vector<AttentionChoice> methods = {AttentionChoice{}, AttentionChoice::parse("monarch:T=1"),
                                                AttentionChoice::parse("monarch:T=2"), AttentionChoice::parse("local:match=2"),
                                                AttentionChoice::parse("nystrom:match=2")};
  Matrix<double> exact_q, exact_d;
  std::vector<EndToEnd> rows;
  nb::row({"method", "FLOPs/text", "FLOPs/exact", "acc@1", "MRR", "cos to exact"}, 18);
  for (const auto& m : methods) {
    const bool is_exact = m.method == Method::Exact;
    EndToEnd r = is_exact ? end_to_end(model, queries, docs, m, kBatch, &exact_q, &exact_d)
                          : end_to_end(model, queries, docs, m, kBatch, nullptr, nullptr, &exact_q, &exact_d);
    if (is_exact) r.cos_to_exact = 1;
    rows.push_back(r);
    nb::row({m.label(), nb::fmt("%.3g", r.flops_per_sequence), nb::fmt("%.3f", r.flops_per_sequence / rows[0].flops_per_sequence),
             nb::fmt("%.3f", r.score.acc1), nb::fmt("%.3f", r.score.mrr), nb::fmt("%.4f", r.cos_to_exact)},
            18);
  }
  nb::check(rows[0].score.acc1 > 0.5, "the exact model really retrieves (chance is 1/64)");
  nb::check(rows[2].flops_per_sequence < rows[0].flops_per_sequence, "MonarchAttention T = 2 needs fewer attention FLOPs than exact");
  nb::check(rows[2].cos_to_exact > rows[3].cos_to_exact,
            "at the same FLOPs, MonarchAttention T = 2 embeddings stay closer to the exact model's than block-local ones",
            nb::fmt("Monarch %.4f, local %.4f", rows[2].cos_to_exact, rows[3].cos_to_exact));

  std::vector<nb::Series> quality;
  for (const auto& r : rows) quality.push_back({r.method.label(), {r.flops_per_sequence}, {r.score.mrr}});
  nb::lineplot("nb6_quality.png", nb::fmt("Retrieval MRR against attention FLOPs per text (%d Debian pairs)", kPairs),
               {"attention FLOPs per text", "MRR", true, false}, quality);

  /// ## The full study
  ///
  /// The numbers above come from a few dozen pairs, to keep the docs build short. The project's
  /// full run (`monarch zero-shot --out DIR`), when one is recorded in `bench/results/`, follows.
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(MONARCH_SOURCE_DIR) / "bench" / "results";
  bool shown = false;
  if (fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().filename().string().find("zero_shot") != std::string::npos && e.path().extension() == ".md") {
        std::ifstream in(e.path());
        std::cout << "bench/results/" << e.path().filename().string() << ":\n\n" << in.rdbuf() << "\n";
        shown = true;
      }
  if (!shown) std::cout << "No full zero-shot study is recorded in bench/results/ yet.\n";

  return nb::finish();
}
