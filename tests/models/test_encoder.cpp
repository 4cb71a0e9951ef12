// The C++ encoder against transformers / sentence-transformers, and MonarchAttention's
// exactness at b = N (docs eq. (16)) through all six layers.
#include <doctest/doctest.h>

#include "helpers.hpp"

using namespace monarch::models;
using monarch::Matrix;
using monarch::models::test::fixture;
using monarch::models::test::model;

namespace {

// The fixture's texts in one ragged batch (5 to 256 tokens), so the key mask is exercised.
const std::vector<std::vector<int>>& fixture_ids() {
  static const std::vector<std::vector<int>> ids = [] {
    std::vector<std::vector<int>> v;
    for (const auto& e : fixture()["embeddings"]) v.push_back(model().tokenize(e["text"].get<std::string>()));
    return v;
  }();
  return ids;
}

// The exact model on that batch, computed once (each ragged batch is ~50 GFLOP in double).
const Matrix<double>& exact_batch() {
  static const Matrix<double> e = model().encode_batch(fixture_ids(), AttentionChoice{});
  return e;
}

}  // namespace

TEST_CASE("exact encoder matches the sentence-transformers embeddings (cosine >= 0.9999)") {
  const auto& ids = fixture_ids();
  const auto& emb = exact_batch();
  REQUIRE(emb.rows() == static_cast<int>(ids.size()));
  REQUIRE(emb.allFinite());
  double worst = 1;
  for (int i = 0; i < emb.rows(); ++i) {
    const auto ref = fixture()["embeddings"][i]["embedding"].get<std::vector<double>>();
    const Eigen::Map<const Eigen::RowVectorXd> r(ref.data(), static_cast<Eigen::Index>(ref.size()));
    REQUIRE(r.size() == emb.cols());
    const double cos = emb.row(i).dot(r) / (emb.row(i).norm() * r.norm());
    worst = std::min(worst, cos);
    CHECK(cos >= 0.9999);
  }
  MESSAGE("worst cosine to the float64 transformers embeddings: " << worst);
}

TEST_CASE("padding a sequence into a batch does not change its exact embedding") {
  const auto& ids = fixture_ids();
  const auto& batch = exact_batch();
  for (std::size_t i = 0; i < ids.size(); i += 4) {
    const auto alone = model().encode_batch({ids[i]}, AttentionChoice{});
    CHECK((alone.row(0) - batch.row(static_cast<Eigen::Index>(i))).cwiseAbs().maxCoeff() < 1e-12);
  }
}

TEST_CASE("Monarch with b = N in every layer reproduces the exact model to 1e-9") {
  // T = 2 on the ragged batch (masked pads inside the single block), T = 1 on two texts.
  const auto mon = model().encode_batch(fixture_ids(), AttentionChoice::parse("monarch:T=2,b=N"));
  REQUIRE(mon.allFinite());
  CHECK((mon - exact_batch()).cwiseAbs().maxCoeff() < 1e-9);
  const std::vector<std::vector<int>> two{fixture_ids()[0], fixture_ids()[3]};
  const auto mon1 = model().encode_batch(two, AttentionChoice::parse("monarch:T=1,b=N"));
  CHECK((mon1.row(0) - exact_batch().row(0)).cwiseAbs().maxCoeff() < 1e-9);
  CHECK((mon1.row(1) - exact_batch().row(3)).cwiseAbs().maxCoeff() < 1e-9);
}

TEST_CASE("Monarch with b = sqrt(N) changes the embeddings but keeps them close") {
  const auto& ids = fixture_ids();
  const std::vector<std::vector<int>> some{ids[1], ids[3], ids[5]};  // 256, 54 and 220 tokens
  const auto mon = model().encode_batch(some, AttentionChoice::parse("monarch:T=2"));
  double mean_cos = 0;
  for (int i = 0; i < 3; ++i) mean_cos += mon.row(i).dot(exact_batch().row(2 * i + 1)) / 3;
  CHECK(mean_cos < 1 - 1e-9);  // it really is an approximation ...
  CHECK(mean_cos > 0.5);       // ... of the same model
}

TEST_CASE("loading a missing model directory is a one-line InputError naming the setup script") {
  try {
    (void)MiniLM::load("/nonexistent/minilm");
    FAIL("no error");
  } catch (const monarch::InputError& e) {
    const std::string msg = e.what();
    CHECK(msg.find("scripts/setup.sh") != std::string::npos);
    CHECK(msg.find('\n') == std::string::npos);
  }
}
