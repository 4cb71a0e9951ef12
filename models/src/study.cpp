#include "monarch/models/study.hpp"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

#include "monarch/attention.hpp"

namespace monarch::models {

std::string default_pairs_file() {
  if (const char* env = std::getenv("MONARCH_PAIRS_FILE"); env && *env) return env;
  return std::string(MONARCH_SOURCE_DIR) + "/models/data/debian_pairs.tsv";
}

std::vector<Pair> read_pairs(const std::string& path, int n) {
  std::ifstream in(path);
  if (!in)
    throw InputError("cannot read the pairs file " + path +
                     " (run scripts/setup.sh: it extracts Debian's package descriptions there)");
  std::vector<Pair> out;
  std::string line;
  int lineno = 0;
  while (static_cast<int>(out.size()) < n && std::getline(in, line)) {
    ++lineno;
    const auto t1 = line.find('\t'), t2 = t1 == std::string::npos ? t1 : line.find('\t', t1 + 1);
    if (t2 == std::string::npos)
      throw InputError(path + ":" + std::to_string(lineno) + ": expected package<TAB>summary<TAB>description");
    out.push_back({line.substr(0, t1), line.substr(t1 + 1, t2 - t1 - 1), line.substr(t2 + 1)});
  }
  if (static_cast<int>(out.size()) < n)
    throw InputError(path + " holds " + std::to_string(out.size()) + " pairs, fewer than the " +
                     std::to_string(n) + " asked for");
  return out;
}

RetrievalScore retrieval(const Matrix<double>& queries, const Matrix<double>& documents) {
  if (queries.rows() != documents.rows() || queries.rows() == 0)
    throw InputError("retrieval needs as many queries as documents, and at least one");
  const Matrix<double> sim = queries * documents.transpose();  // (n, n)
  RetrievalScore s;
  const Eigen::Index n = sim.rows();
  for (Eigen::Index i = 0; i < n; ++i) {
    int rank = 1;
    for (Eigen::Index j = 0; j < n; ++j)
      if (j != i && sim(i, j) >= sim(i, i)) ++rank;
    s.acc1 += rank == 1;
    s.mrr += 1.0 / rank;
  }
  s.acc1 /= static_cast<double>(n);
  s.mrr /= static_cast<double>(n);
  return s;
}

double LayerStudy::layer_mean(int layer, int n_heads, double HeadStats::*field) const {
  double sum = 0;
  for (int h = 0; h < n_heads; ++h) sum += heads[static_cast<std::size_t>(layer) * n_heads + h].*field;
  return sum / n_heads;
}

std::vector<LayerStudy> per_layer_study(const MiniLM& model, const std::vector<std::vector<int>>& seqs,
                                        const std::vector<AttentionChoice>& methods) {
  const BertConfig& c = model.config();
  const int L = c.layers, H = c.heads, d = c.head_dim();
  const double tau = 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<LayerStudy> out(methods.size());
  for (std::size_t k = 0; k < methods.size(); ++k) {
    out[k].method = methods[k];
    out[k].heads.assign(static_cast<std::size_t>(L) * H, HeadStats{});
  }
  struct Captured {
    Matrix<double> Q, K, V;
  };
  std::vector<Captured> cap(static_cast<std::size_t>(L) * H);
  const AttentionObserver observer = [&](int l, int h, int, const Matrix<double>& Q, const Matrix<double>& K,
                                         const Matrix<double>& V, std::span<const std::uint8_t>) {
    cap[static_cast<std::size_t>(l) * H + h] = {Q, K, V};
  };
  const AttentionChoice exact;
  for (const auto& seq : seqs) {
    model.encode_batch({seq}, exact, nullptr, &observer);  // one sequence: no pads, real Q, K, V
    const int N = static_cast<int>(seq.size());
    const int jobs = L * H * static_cast<int>(methods.size());
#pragma omp parallel for schedule(dynamic)
    for (int job = 0; job < jobs; ++job) {
      const int lh = job / static_cast<int>(methods.size());
      const std::size_t k = static_cast<std::size_t>(job % static_cast<int>(methods.size()));
      const Captured& x = cap[lh];
      const AttentionChoice& a = methods[k];
      const Resolved r = resolve(a, N, d);
      const Matrix<double> O_star = exact_head(x.Q.data(), x.K.data(), x.V.data(), N, d, d, {}, tau);
      Matrix<double> O;
      double kl = 0;
      switch (a.method) {
        case Method::Exact:
          O = O_star;
          break;
        case Method::Monarch: {
          HeadTrace<double> trace;
          O = monarch_head(x.Q.data(), x.K.data(), x.V.data(), N, d, d, {}, monarch_options(a, N, d, tau), &trace);
          kl = trace.F_star - trace.rounds.back().F_after_L;  // docs eq. (7)
          break;
        }
        case Method::BlockLocal:
          O = block_local_head(x.Q.data(), x.K.data(), x.V.data(), N, d, d, {}, r.block, a.pad, tau);
          kl = block_local_kl(x.Q.data(), x.K.data(), N, d, {}, r.block, a.pad, tau);
          break;
        case Method::Nystrom:
          O = nystrom_head(x.Q.data(), x.K.data(), x.V.data(), N, d, d, {}, r.landmarks, tau);
          kl = std::numeric_limits<double>::quiet_NaN();
          break;
      }
      HeadStats& s = out[k].heads[lh];
      s.kl_per_row += kl / N;
      s.rel_error += (O - O_star).norm() / O_star.norm();
      s.flops += attention_flops(a, N, d, d);
      s.block += r.block;
      s.landmarks += r.landmarks;
    }
  }
  const double n = static_cast<double>(seqs.size());
  for (auto& st : out)
    for (auto& s : st.heads) {
      s.kl_per_row /= n;
      s.rel_error /= n;
      s.flops /= n;
      s.block /= n;
      s.landmarks /= n;
    }
  return out;
}

EndToEnd end_to_end(const MiniLM& model, const std::vector<std::vector<int>>& queries,
                    const std::vector<std::vector<int>>& documents, const AttentionChoice& method,
                    int batch_size, Matrix<double>* query_emb, Matrix<double>* doc_emb,
                    const Matrix<double>* exact_queries, const Matrix<double>* exact_docs) {
  const auto t0 = std::chrono::steady_clock::now();
  EndToEnd r;
  r.method = method;
  double flops = 0;
  Matrix<double> qe = model.encode_texts(queries, method, batch_size, &flops);
  Matrix<double> de = model.encode_texts(documents, method, batch_size, &flops);
  r.flops_per_sequence = flops / static_cast<double>(queries.size() + documents.size());
  r.score = retrieval(qe, de);
  if (exact_queries && exact_docs && exact_queries->rows() == qe.rows() && exact_docs->rows() == de.rows()) {
    const double cq = (qe.array() * exact_queries->array()).rowwise().sum().sum();
    const double cd = (de.array() * exact_docs->array()).rowwise().sum().sum();
    r.cos_to_exact = (cq + cd) / static_cast<double>(qe.rows() + de.rows());
  }
  if (query_emb) *query_emb = std::move(qe);
  if (doc_emb) *doc_emb = std::move(de);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::vector<AttentionChoice> default_layer_methods() {
  std::vector<AttentionChoice> m;
  for (const char* s : {"monarch:T=1", "monarch:T=2", "monarch:T=3", "local", "local:match=2",
                        "local:match=3", "nystrom:match=2", "nystrom:match=3"})
    m.push_back(AttentionChoice::parse(s));
  return m;
}

std::vector<AttentionChoice> default_end_to_end_methods() {
  std::vector<AttentionChoice> m;
  for (const char* s : {"exact", "monarch:T=1", "monarch:T=2", "monarch:T=3", "local",
                        "local:match=2", "nystrom:match=2", "nystrom:match=3"})
    m.push_back(AttentionChoice::parse(s));
  return m;
}

}  // namespace monarch::models
