// Shared by the models tests: the model (loaded once) and the transformers fixture.
#pragma once

#include <doctest/doctest.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "monarch/models/minilm.hpp"

namespace monarch::models::test {

/// The model that scripts/setup.sh installs; a missing model fails the test with the reason.
inline const MiniLM& model() {
  static std::unique_ptr<MiniLM> m;
  static std::string error;
  if (!m && error.empty()) {
    try {
      m = std::make_unique<MiniLM>(MiniLM::load(default_model_dir()));
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  if (!m) FAIL("cannot load all-MiniLM-L6-v2: " << error);
  return *m;
}

/// models/fixtures/minilm_fixture.json, made by models/fixtures/make_fixture.py with transformers.
inline const nlohmann::json& fixture() {
  static const nlohmann::json j = [] {
    const std::string path = std::string(MONARCH_SOURCE_DIR) + "/models/fixtures/minilm_fixture.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("missing fixture " + path);
    return nlohmann::json::parse(in);
  }();
  return j;
}

/// Random (N, d) Gaussian matrix.
inline Matrix<double> gaussian(int rows, int cols, std::mt19937_64& rng, double sigma = 1.0) {
  std::normal_distribution<double> g(0.0, sigma);
  Matrix<double> M(rows, cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) M(r, c) = g(rng);
  return M;
}

}  // namespace monarch::models::test
