// The zero-shot study (issue 7): MiniLM's attention replaced by approximations, measured
//  (1) per layer and head on the model's real Q, K, V: KL gap per query row (docs eq. (7)) and
//      the output's relative error against exact attention;
//  (2) end to end on a retrieval task (Debian package summary -> long description):
//      accuracy@1 and MRR with every layer's attention replaced.
#pragma once

#include <string>
#include <vector>

#include "monarch/models/minilm.hpp"

namespace monarch::models {

/// One labelled pair: a package's one-line summary (the query) and its long description.
struct Pair {
  std::string package, query, document;
};

/// $MONARCH_PAIRS_FILE, else <source>/models/data/debian_pairs.tsv (scripts/setup.d/minilm.sh).
std::string default_pairs_file();
/// The first n pairs of a TSV file "package<TAB>summary<TAB>description". InputError if fewer.
std::vector<Pair> read_pairs(const std::string& path, int n);

struct RetrievalScore {
  double acc1 = 0, mrr = 0;
};
/// Query i's correct document is document i; similarity is the dot product of the normalised
/// embeddings. A tie with the correct document counts against it.
RetrievalScore retrieval(const Matrix<double>& queries, const Matrix<double>& documents);

/// Means over sequences for one (method, layer, head).
struct HeadStats {
  double kl_per_row = 0;   ///< (F* - F(A)) / valid rows; NaN for Nystrom (not a probability matrix)
  double rel_error = 0;    ///< ||O - O*||_F / ||O*||_F over the sequence's tokens
  double flops = 0;        ///< attention FLOPs of the head
  double block = 0, landmarks = 0;  ///< the resolved knobs, averaged over sequences
};

struct LayerStudy {
  AttentionChoice method;
  std::vector<HeadStats> heads;  ///< (layers, heads) row-major
  double layer_mean(int layer, int n_heads, double HeadStats::*field) const;
};

/// Part (1): every sequence alone (no padding) through the exact model; at every layer and head
/// each method is run on the real Q, K, V and compared with exact attention.
std::vector<LayerStudy> per_layer_study(const MiniLM& model, const std::vector<std::vector<int>>& seqs,
                                        const std::vector<AttentionChoice>& methods);

struct EndToEnd {
  AttentionChoice method;
  RetrievalScore score;
  double flops_per_sequence = 0;  ///< attention FLOPs, all layers and heads, per encoded text
  double cos_to_exact = 0;        ///< mean cosine between this method's and exact embeddings
  double seconds = 0;
};

/// Part (2): encodes queries and documents with every layer's attention replaced.
/// exact_docs / exact_queries (may be empty) give cos_to_exact.
EndToEnd end_to_end(const MiniLM& model, const std::vector<std::vector<int>>& queries,
                    const std::vector<std::vector<int>>& documents, const AttentionChoice& method,
                    int batch_size, Matrix<double>* query_emb, Matrix<double>* doc_emb,
                    const Matrix<double>* exact_queries = nullptr,
                    const Matrix<double>* exact_docs = nullptr);

/// The default method lists of the study.
std::vector<AttentionChoice> default_layer_methods();
std::vector<AttentionChoice> default_end_to_end_methods();

/// Writes a PNG plot (accuracy@1 and MRR against attention FLOPs per text, log scale).
/// Returns false (and writes nothing) when stb_image_write was not available at build time.
bool write_quality_plot(const std::string& path, const std::vector<EndToEnd>& rows,
                        const std::string& title);

}  // namespace monarch::models
