// The C++ encoder against transformers / sentence-transformers, and MonarchAttention's
// exactness at b = N (docs eq. (16)) through all six layers.
#include <doctest/doctest.h>

#include "helpers.hpp"

using namespace monarch::models;
using monarch::Matrix;
using monarch::models::test::fixture;
using monarch::models::test::model;

namespace {

std::vector<std::vector<int>> fixture_ids() {
  std::vector<std::vector<int>> ids;
  for (const auto& e : fixture()["embeddings"]) ids.push_back(model().tokenize(e["text"].get<std::string>()));
  return ids;
}

}  // namespace

TEST_CASE("exact encoder matches the sentence-transformers embeddings (cosine >= 0.9999)") {
  const auto ids = fixture_ids();
  // One ragged batch: lengths 5 to 256, so the key mask is exercised.
  const auto emb = model().encode_batch(ids, AttentionChoice{});
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
  const auto ids = fixture_ids();
  const auto batch = model().encode_batch(ids, AttentionChoice{});
  for (std::size_t i = 0; i < ids.size(); i += 4) {
    const auto alone = model().encode_batch({ids[i]}, AttentionChoice{});
    CHECK((alone.row(0) - batch.row(static_cast<Eigen::Index>(i))).cwiseAbs().maxCoeff() < 1e-12);
  }
}

TEST_CASE("Monarch with b = N in every layer reproduces the exact model to 1e-9") {
  const auto ids = fixture_ids();
  const auto exact = model().encode_batch(ids, AttentionChoice{});
  for (int T : {1, 2}) {
    AttentionChoice m = AttentionChoice::parse("monarch:b=N");
    m.steps = T;
    const auto mon = model().encode_batch(ids, m);
    REQUIRE(mon.allFinite());
    CHECK((mon - exact).cwiseAbs().maxCoeff() < 1e-9);
  }
}

TEST_CASE("Monarch with b = sqrt(N) changes the embeddings but keeps them close") {
  const auto ids = fixture_ids();
  const auto exact = model().encode_batch(ids, AttentionChoice{});
  const auto mon = model().encode_batch(ids, AttentionChoice::parse("monarch:T=2"));
  const double mean_cos = (mon.array() * exact.array()).rowwise().sum().mean();
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
