// BERT uncased WordPiece tokenizer: see tokenizer.hpp for why it is written by hand and which
// reference steps it follows.
#include "monarch/models/tokenizer.hpp"

#include <algorithm>
#include <fstream>

#include "monarch/options.hpp"

namespace monarch::models {
namespace {

struct ClassRange {
  char32_t first, last;
  int cls;
};
struct FoldEntry {
  char32_t cp;
  int offset, length;
};
#include "unicode_tables.inc"

enum CharClass { kOther = 0, kWhitespace = 1, kControl = 2, kPunct = 3, kMark = 4 };

int char_class(char32_t c) {
  const auto* end = std::end(kClassRanges);
  const auto* it = std::upper_bound(std::begin(kClassRanges), end, c,
                                    [](char32_t v, const ClassRange& r) { return v < r.first; });
  if (it == std::begin(kClassRanges)) return kOther;
  --it;
  return c <= it->last ? it->cls : kOther;
}

// The CJK Unified Ideograph blocks that the reference treats as Chinese characters
// (Hangul and kana are not among them on purpose).
bool is_cjk(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// lowercase, NFD, drop Mn: appends the image of c to out.
void fold(char32_t c, std::u32string& out) {
  constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
  constexpr int kVCount = 21, kTCount = 28, kSCount = 11172;
  if (c >= kSBase && c < kSBase + kSCount) {  // Hangul syllable: Unicode 3.12 decomposition
    const int s = static_cast<int>(c - kSBase);
    out += static_cast<char32_t>(kLBase + s / (kVCount * kTCount));
    out += static_cast<char32_t>(kVBase + (s % (kVCount * kTCount)) / kTCount);
    if (s % kTCount) out += static_cast<char32_t>(kTBase + s % kTCount);
    return;
  }
  if (char_class(c) == kMark) return;
  const auto* end = std::end(kFold);
  const auto* it = std::lower_bound(std::begin(kFold), end, c,
                                    [](const FoldEntry& e, char32_t v) { return e.cp < v; });
  if (it != end && it->cp == c)
    out.append(kFoldData + it->offset, kFoldData + it->offset + it->length);
  else
    out += c;
}

// UTF-8 to code points; a malformed byte becomes U+FFFD (which cleaning then drops).
std::u32string decode_utf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    int len = b0 < 0x80 ? 1 : (b0 >> 5) == 0x6 ? 2 : (b0 >> 4) == 0xE ? 3 : (b0 >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) {
      out += U'\uFFFD';
      ++i;
      continue;
    }
    char32_t c = len == 1 ? b0 : b0 & (0x7F >> len);
    bool ok = true;
    for (int k = 1; k < len; ++k) {
      const auto bk = static_cast<unsigned char>(s[i + k]);
      ok = ok && (bk >> 6) == 0x2;
      c = (c << 6) | (bk & 0x3F);
    }
    out += ok ? c : U'\uFFFD';
    i += ok ? len : 1;
  }
  return out;
}

std::string encode_utf8(std::u32string_view s) {
  std::string out;
  for (char32_t c : s) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c < 0x800) {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out += static_cast<char>(0xE0 | (c >> 12));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (c >> 18));
      out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return out;
}

}  // namespace

WordPieceTokenizer WordPieceTokenizer::from_vocab_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError("cannot read the vocabulary " + path);
  WordPieceTokenizer t;
  std::string line;
  int next = 0;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    t.vocab_.emplace(line, next++);  // the first occurrence wins, as in the reference
  }
  t.lines_ = next;  // not vocab_.size(): a repeated line still takes an id (fuzz finding, a vocabulary
                    // with "##s" twice gave the last line an id equal to the distinct-token count)
  if (t.vocab_.empty()) throw InputError("the vocabulary " + path + " is empty");
  auto need = [&](const char* tok) {
    auto it = t.vocab_.find(tok);
    if (it == t.vocab_.end())
      throw InputError("the vocabulary " + path + " lacks the special token " + tok);
    return it->second;
  };
  t.cls_ = need("[CLS]");
  t.sep_ = need("[SEP]");
  t.pad_ = need("[PAD]");
  t.unk_ = need("[UNK]");
  return t;
}

int WordPieceTokenizer::id(const std::string& token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) throw InputError("token '" + token + "' is not in the vocabulary");
  return it->second;
}

std::vector<std::string> WordPieceTokenizer::basic_tokenize(std::string_view utf8) const {
  // Steps 1 and 2: clean and isolate CJK ideographs.
  std::u32string text;
  for (char32_t c : decode_utf8(utf8)) {
    if (c == 0 || c == 0xFFFD) continue;
    const int k = char_class(c);
    if (k == kControl) continue;
    if (k == kWhitespace) {
      text += U' ';
    } else if (is_cjk(c)) {
      text += U' ';
      text += c;
      text += U' ';
    } else {
      text += c;
    }
  }
  // Steps 3 and 4, word by word: fold, then split off punctuation.
  std::vector<std::string> words;
  std::u32string word, folded, cur;
  auto flush = [&](std::u32string& w) {
    if (!w.empty()) words.push_back(encode_utf8(w));
    w.clear();
  };
  auto finish_word = [&] {
    if (word.empty()) return;
    folded.clear();
    for (char32_t c : word) fold(c, folded);
    for (char32_t c : folded) {
      const int k = char_class(c);
      if (k == kPunct) {
        flush(cur);
        std::u32string p(1, c);
        flush(p);
      } else if (k == kWhitespace) {  // a fold never makes whitespace, but stay safe
        flush(cur);
      } else {
        cur += c;
      }
    }
    flush(cur);
    word.clear();
  };
  for (char32_t c : text) {
    if (c == U' ')
      finish_word();
    else
      word += c;
  }
  finish_word();
  return words;
}

void WordPieceTokenizer::wordpiece(const std::string& word, std::vector<int>& out) const {
  const std::u32string chars = decode_utf8(word);
  const int n = static_cast<int>(chars.size());
  if (n > kMaxInputCharsPerWord) {
    out.push_back(unk_);
    return;
  }
  std::vector<int> pieces;
  for (int start = 0; start < n;) {
    int found = -1, end = n;
    for (; end > start; --end) {
      std::string piece = start > 0 ? "##" : "";  // a continuation piece
      piece += encode_utf8(std::u32string_view(chars).substr(start, end - start));
      auto it = vocab_.find(piece);
      if (it != vocab_.end()) {
        found = it->second;
        break;
      }
    }
    if (found < 0) {  // no piece matches here: the whole word is unknown
      out.push_back(unk_);
      return;
    }
    pieces.push_back(found);
    start = end;
  }
  out.insert(out.end(), pieces.begin(), pieces.end());
}

std::vector<int> WordPieceTokenizer::encode(std::string_view utf8, int max_length) const {
  if (max_length < 2) throw InputError("max_length must be >= 2 to hold [CLS] and [SEP]");
  std::vector<int> ids{cls_};
  for (const auto& w : basic_tokenize(utf8)) {
    wordpiece(w, ids);
    if (static_cast<int>(ids.size()) >= max_length - 1) break;
  }
  if (static_cast<int>(ids.size()) > max_length - 1) ids.resize(max_length - 1);
  ids.push_back(sep_);
  return ids;
}

}  // namespace monarch::models
