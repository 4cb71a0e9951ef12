// BERT's uncased WordPiece tokenizer (the one all-MiniLM-L6-v2 was trained with), written by hand:
// no Debian library provides it (ICU has the Unicode pieces but not the BERT rules, and the
// reference implementations are Python and Rust). It follows the reference BasicTokenizer and
// WordpieceTokenizer step by step:
//   1. clean: drop U+0000, U+FFFD and control characters (category C*), map whitespace to ' ';
//   2. put spaces around CJK ideographs (each becomes its own word);
//   3. split on whitespace; lowercase each word and strip accents (NFD, then drop category Mn);
//   4. split off every punctuation character (ASCII symbols and category P*) as its own word;
//   5. WordPiece: greedy longest match from the left against vocab.txt, continuation pieces
//      prefixed "##"; a word with an unmatchable rest, or longer than 100 characters, is [UNK].
// The Unicode facts (categories, lowercase + NFD) are a table generated from Python's
// unicodedata by models/scripts/make_unicode_tables.py, so both sides agree character by
// character; Hangul syllables are decomposed by the Unicode formula instead of the table.
// Known gap: Python's str.lower() maps a word-final capital sigma to 'ς'; we always give 'σ'.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace monarch::models {

class WordPieceTokenizer {
 public:
  static constexpr int kMaxInputCharsPerWord = 100;

  /// Reads vocab.txt (one token a line, the line number is the id). Throws InputError.
  static WordPieceTokenizer from_vocab_file(const std::string& path);

  /// [CLS] pieces... [SEP], the pieces truncated so that the whole has at most max_length ids.
  std::vector<int> encode(std::string_view utf8, int max_length) const;

  /// Steps 1-4: the words before WordPiece, as UTF-8.
  std::vector<std::string> basic_tokenize(std::string_view utf8) const;
  /// Step 5 on one word (UTF-8): appends its ids to out.
  void wordpiece(const std::string& word, std::vector<int>& out) const;

  int id(const std::string& token) const;  ///< InputError when absent
  /// Ids run over [0, size()): the number of lines, which exceeds the number of distinct tokens
  /// when a line repeats an earlier one (its id is then never produced, as in the reference).
  int size() const { return lines_; }
  int cls_id() const { return cls_; }
  int sep_id() const { return sep_; }
  int pad_id() const { return pad_; }
  int unk_id() const { return unk_; }

 private:
  std::unordered_map<std::string, int> vocab_;
  int lines_ = 0;  // the vocabulary's length: ids are line numbers
  int cls_ = -1, sep_ = -1, pad_ = -1, unk_ = -1;
};

}  // namespace monarch::models
