// libFuzzer target: the WordPiece tokenizer (models/) on arbitrary bytes -- malformed UTF-8,
// control characters, surrogates, code points past U+10FFFF, very long words. It must never
// crash or read out of bounds, and its output must keep its promises:
//   - encode(text, L) is [CLS] pieces... [SEP], at most L ids, every id inside the vocabulary;
//   - the pieces are exactly the WordPiece ids of basic_tokenize's words, truncated;
//   - basic_tokenize's words are non-empty and hold no whitespace.
// The vocabulary is fuzz/tokenizer_vocab.txt (specials, letters, ## pieces, a few accented and
// CJK words), so the run does not depend on the downloaded model.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "monarch/models/tokenizer.hpp"

namespace {

constexpr int kModelMaxLength = 512;  // all-MiniLM-L6-v2's limit
constexpr int kSmallLengths = 7;      // also a short limit, 2 + size % 7, to exercise truncation

const monarch::models::WordPieceTokenizer& tokenizer() {
  static const auto t = monarch::models::WordPieceTokenizer::from_vocab_file(MONARCH_FUZZ_VOCAB);
  return t;
}

void require(bool ok, const char* what) {
  if (!ok) throw std::logic_error(std::string("tokenizer contract violated: ") + what);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& t = tokenizer();
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  const std::vector<std::string> words = t.basic_tokenize(text);
  std::vector<int> pieces;
  for (const auto& w : words) {
    require(!w.empty(), "an empty word");
    require(w.find_first_of(" \t\r\n") == std::string::npos, "whitespace inside a word");
    t.wordpiece(w, pieces);
  }
  for (int max_length : {kModelMaxLength, 2 + static_cast<int>(size % kSmallLengths)}) {
    const std::vector<int> ids = t.encode(text, max_length);
    require(ids.size() >= 2 && static_cast<int>(ids.size()) <= max_length, "length outside [2, max_length]");
    require(ids.front() == t.cls_id() && ids.back() == t.sep_id(), "not framed by [CLS] ... [SEP]");
    for (int id : ids) require(id >= 0 && id < t.size(), "an id outside the vocabulary");
    // The middle is a prefix of the pieces of all words (encode stops early once it is full).
    const std::size_t n = ids.size() - 2;
    require(n <= pieces.size(), "more pieces than the words give");
    for (std::size_t i = 0; i < n; ++i) require(ids[i + 1] == pieces[i], "pieces differ from wordpiece()");
    require(n == std::min(pieces.size(), static_cast<std::size_t>(max_length - 2)), "truncated wrongly");
  }
  return 0;
}
