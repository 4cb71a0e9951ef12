#include "monarch/models/attention_methods.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "monarch/attention.hpp"

namespace monarch::models {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();
constexpr double kPinvNewtonFlopsPerC3 = 8.0 * kNystromPinvSteps;  // 4 c x c products a step

bool kept(std::span<const std::uint8_t> keep, int n) { return keep.empty() || keep[n] != 0; }

// Row-wise softmax in place; a row of all -inf becomes zeros (no valid key).
void softmax_rows(Matrix<double>& P) {
  for (Eigen::Index r = 0; r < P.rows(); ++r) {
    const double mx = P.row(r).maxCoeff();
    if (mx == kNegInf) {
      P.row(r).setZero();
      continue;
    }
    P.row(r) = (P.row(r).array() - mx).exp();
    P.row(r) /= P.row(r).sum();
  }
}

double lse(const Eigen::Ref<const Eigen::RowVectorXd>& z) {
  const double mx = z.maxCoeff();
  if (mx == kNegInf) return kNegInf;
  return mx + std::log((z.array() - mx).exp().sum());
}

int parse_int(const std::string& v, const std::string& spec) {
  try {
    std::size_t pos = 0;
    const int x = std::stoi(v, &pos);
    if (pos == v.size()) return x;
  } catch (const std::exception&) {
  }
  throw InputError("attention method '" + spec + "': '" + v + "' is not an integer");
}

}  // namespace

std::string AttentionChoice::label() const {
  std::ostringstream s;
  auto block_str = [&] {
    return block == kWholeSequence ? std::string("N") : std::to_string(block);
  };
  switch (method) {
    case Method::Exact:
      s << "exact";
      break;
    case Method::Monarch:
      s << "monarch T=" << steps;
      if (block != 0) s << " b=" << block_str();
      if (pad == Pad::Pre) s << " pre";
      break;
    case Method::BlockLocal:
      s << "local";
      if (match_steps > 0)
        s << " =flops(T=" << match_steps << ")";
      else if (block != 0)
        s << " b=" << block_str();
      break;
    case Method::Nystrom:
      s << "nystrom";
      if (match_steps > 0)
        s << " =flops(T=" << match_steps << ")";
      else
        s << " c=" << landmarks;
      break;
  }
  return s.str();
}

AttentionChoice AttentionChoice::parse(const std::string& spec) {
  AttentionChoice a;
  const auto colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  if (name == "exact")
    a.method = Method::Exact;
  else if (name == "monarch")
    a.method = Method::Monarch;
  else if (name == "local")
    a.method = Method::BlockLocal;
  else if (name == "nystrom")
    a.method = Method::Nystrom;
  else
    throw InputError("unknown attention method '" + name + "' (exact, monarch, local, nystrom)");
  if (colon != std::string::npos) {
    std::stringstream rest(spec.substr(colon + 1));
    std::string kv;
    while (std::getline(rest, kv, ',')) {
      const auto eq = kv.find('=');
      if (eq == std::string::npos) throw InputError("attention method '" + spec + "': expected key=value");
      const std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
      if (k == "T" && a.method == Method::Monarch)
        a.steps = parse_int(v, spec);
      else if (k == "b" && (a.method == Method::Monarch || a.method == Method::BlockLocal))
        a.block = v == "N" ? kWholeSequence : parse_int(v, spec);
      else if (k == "pad" && (a.method == Method::Monarch || a.method == Method::BlockLocal))
        a.pad = v == "pre" ? Pad::Pre : v == "post" ? Pad::Post
                : throw InputError("attention method '" + spec + "': pad is pre or post");
      else if (k == "c" && a.method == Method::Nystrom)
        a.landmarks = parse_int(v, spec);
      else if (k == "match" && (a.method == Method::Nystrom || a.method == Method::BlockLocal))
        a.match_steps = parse_int(v, spec);
      else
        throw InputError("attention method '" + spec + "': unknown option '" + k + "'");
    }
  }
  if (a.steps < 1) throw InputError("attention method '" + spec + "': T must be >= 1");
  if (a.block < 1 && a.block != 0 && a.block != kWholeSequence)
    throw InputError("attention method '" + spec + "': b must be >= 1 or N");
  if (a.method == Method::Nystrom && a.match_steps < 1 && a.landmarks < 1)
    throw InputError("attention method '" + spec + "': nystrom needs c >= 1 or match >= 1");
  if (a.match_steps < 0) throw InputError("attention method '" + spec + "': match must be >= 1");
  return a;
}

Options monarch_options(const AttentionChoice& a, int N, int d, double tau) {
  Options opt;
  opt.steps = a.steps;
  opt.block = resolve(a, N, d).block;
  opt.pad = a.pad;
  opt.scale = tau;
  return opt;
}

Resolved resolve(const AttentionChoice& a, int N, int d) {
  Resolved r;
  auto explicit_block = [&](int b) { return b == AttentionChoice::kWholeSequence ? N : b == 0 ? default_block(N) : std::min(b, N); };
  if (a.method == Method::Monarch) r.block = explicit_block(a.block);
  if (a.method == Method::BlockLocal) {
    r.block = explicit_block(a.block);
    if (a.match_steps > 0) {
      const double target = monarch_flops(N, d, d, default_block(N), a.match_steps);
      r.block = 1;
      while (r.block < N && block_local_flops(N, d, d, r.block) < target) ++r.block;
    }
  }
  if (a.method == Method::Nystrom) {
    r.landmarks = std::min(a.landmarks, N);
    if (a.match_steps > 0) {
      const double target = monarch_flops(N, d, d, default_block(N), a.match_steps);
      r.landmarks = 1;
      while (r.landmarks < N && nystrom_flops(N, d, d, r.landmarks) < target) ++r.landmarks;
    }
  }
  return r;
}

double block_local_flops(int N, int d, int dv, int b) {
  const double Np = std::ceil(static_cast<double>(N) / b) * b;
  return 2 * Np * b * d + Np * b + 2 * Np * b * dv;
}

double nystrom_flops(int N, int d, int dv, int c) {
  const double n = N, cc = c;
  return 2 * n * d + 2 * n * cc * d + n * cc + 2 * cc * cc * d + cc * cc + 2 * cc * n * d + cc * n +
         kPinvNewtonFlopsPerC3 * cc * cc * cc + 2 * cc * n * dv + 2 * cc * cc * dv + 2 * n * cc * dv;
}

double attention_flops(const AttentionChoice& a, int N, int d, int dv) {
  const Resolved r = resolve(a, N, d);
  switch (a.method) {
    case Method::Exact:
      return exact_flops(N, d, dv);
    case Method::Monarch:
      return monarch_flops(N, d, dv, r.block, a.steps);
    case Method::BlockLocal:
      return block_local_flops(N, d, dv, r.block);
    case Method::Nystrom:
      return nystrom_flops(N, d, dv, r.landmarks);
  }
  return 0;
}

Matrix<double> block_local_head(const double* Q, const double* K, const double* V, int N, int d,
                                int dv, std::span<const std::uint8_t> keep, int b, Pad pad,
                                double tau) {
  const Geometry g = Geometry::make(N, b, pad);
  const ConstMatrixMap<double> Qm(Q, N, d), Km(K, N, d), Vm(V, N, dv);
  Matrix<double> O(N, dv);  // (N, d_v)
  for (int l = 0; l < g.m; ++l) {
    // Tokens of block l: padded indices l*b .. l*b+b-1 minus the pads, eq. (1).
    const int first = std::max(l * g.b - g.off, 0), last = std::min((l + 1) * g.b - g.off, N);
    if (first >= last) continue;
    const int n = last - first;
    Matrix<double> P = tau * (Qm.middleRows(first, n) * Km.middleRows(first, n).transpose());  // (n, n)
    for (int i = 0; i < n; ++i)
      if (!kept(keep, first + i)) P.col(i).setConstant(kNegInf);
    softmax_rows(P);
    O.middleRows(first, n).noalias() = P * Vm.middleRows(first, n);
  }
  return O;
}

double block_local_kl(const double* Q, const double* K, int N, int d,
                      std::span<const std::uint8_t> keep, int b, Pad pad, double tau) {
  const Geometry g = Geometry::make(N, b, pad);
  const ConstMatrixMap<double> Qm(Q, N, d), Km(K, N, d);
  double gap = 0;
  for (int n = 0; n < N; ++n) {
    if (!kept(keep, n)) continue;  // invalid queries are not in F, docs eq. (6)
    Eigen::RowVectorXd s = tau * (Qm.row(n) * Km.transpose());  // (N)
    for (int i = 0; i < N; ++i)
      if (!kept(keep, i)) s[i] = kNegInf;
    const int l = (n + g.off) / g.b;
    const int first = std::max(l * g.b - g.off, 0), last = std::min((l + 1) * g.b - g.off, N);
    gap += lse(s) - lse(s.segment(first, last - first));
  }
  return gap;
}

Matrix<double> nystrom_head(const double* Q, const double* K, const double* V, int N, int d,
                            int dv, std::span<const std::uint8_t> keep, int c, double tau,
                            int pinv_steps) {
  const ConstMatrixMap<double> Qm(Q, N, d), Km(K, N, d), Vm(V, N, dv);
  std::vector<int> valid;
  for (int n = 0; n < N; ++n)
    if (kept(keep, n)) valid.push_back(n);
  const int nv = static_cast<int>(valid.size());
  if (nv == 0) throw InputError("every key of the sequence is masked: attention over an empty set is undefined");
  c = std::clamp(c, 1, nv);
  // Landmarks: means of c contiguous segments of the valid tokens.
  Matrix<double> Ql = Matrix<double>::Zero(c, d), Kl = Matrix<double>::Zero(c, d);  // (c, d)
  Eigen::VectorXd count = Eigen::VectorXd::Zero(c);
  for (int t = 0; t < nv; ++t) {
    const int s = static_cast<int>(static_cast<long long>(t) * c / nv);
    Ql.row(s) += Qm.row(valid[t]);
    Kl.row(s) += Km.row(valid[t]);
    count[s] += 1;
  }
  for (int s = 0; s < c; ++s) {
    Ql.row(s) /= count[s];
    Kl.row(s) /= count[s];
  }
  Matrix<double> F = tau * (Qm * Kl.transpose());  // (N, c)
  softmax_rows(F);
  Matrix<double> A = tau * (Ql * Kl.transpose());  // (c, c)
  softmax_rows(A);
  Matrix<double> B = tau * (Ql * Km.transpose());  // (c, N)
  for (int n = 0; n < N; ++n)
    if (!kept(keep, n)) B.col(n).setConstant(kNegInf);
  softmax_rows(B);
  // pinv(A) by the Newton-Schulz iteration Nystromformer uses (what the FLOP count assumes):
  // Z_0 = A^T / (||A||_1 ||A||_inf), Z <- Z (13 I - A Z (15 I - A Z (7 I - A Z))) / 4.
  const Eigen::MatrixXd I = Eigen::MatrixXd::Identity(c, c);
  const double norm1 = A.cwiseAbs().colwise().sum().maxCoeff(), norm_inf = A.cwiseAbs().rowwise().sum().maxCoeff();
  Eigen::MatrixXd Ainv = A.transpose() / (norm1 * norm_inf);  // (c, c)
  for (int it = 0; it < pinv_steps; ++it) {
    const Eigen::MatrixXd AZ = A * Ainv;
    Ainv = 0.25 * Ainv * (13 * I - AZ * (15 * I - AZ * (7 * I - AZ)));
  }
  const Matrix<double> BV = B * Vm;  // (c, d_v)
  return F * (Ainv * BV);            // (N, d_v)
}

Matrix<double> attend_head(const AttentionChoice& a, const double* Q, const double* K,
                           const double* V, int N, int d, int dv,
                           std::span<const std::uint8_t> keep, double tau) {
  const Resolved r = resolve(a, N, d);
  switch (a.method) {
    case Method::Exact:
      return exact_head(Q, K, V, N, d, dv, keep, tau);
    case Method::Monarch:
      return monarch_head(Q, K, V, N, d, dv, keep, monarch_options(a, N, d, tau));
    case Method::BlockLocal:
      return block_local_head(Q, K, V, N, d, dv, keep, r.block, a.pad, tau);
    case Method::Nystrom:
      return nystrom_head(Q, K, V, N, d, dv, keep, r.landmarks, tau);
  }
  throw InputError("unknown attention method");
}

}  // namespace monarch::models
