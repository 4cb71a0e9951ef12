// The hand-written BERT tokenizer against the model's own (transformers) tokenizer.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "helpers.hpp"

using namespace monarch::models;
using monarch::Matrix;
using monarch::models::test::fixture;
using monarch::models::test::model;

TEST_CASE("tokenizer gives the fixture's ids for every text, accents, symbols and CJK included") {
  const auto& tok = model().tokenizer();
  const auto& texts = fixture()["tokens"];
  REQUIRE(texts.size() >= 100);
  int mismatches = 0;
  for (const auto& t : texts) {
    const auto expect = t["ids"].get<std::vector<int>>();
    const auto got = tok.encode(t["text"].get<std::string>(), 100000);
    if (got != expect) {
      ++mismatches;
      MESSAGE("mismatch on: " << t["text"].get<std::string>().substr(0, 100));
    }
  }
  CHECK(mismatches == 0);
}

TEST_CASE("tokenizer truncates to max_seq_length like sentence-transformers") {
  for (const auto& e : fixture()["embeddings"]) {
    const auto ids = model().tokenize(e["text"].get<std::string>());
    CHECK(ids == e["ids"].get<std::vector<int>>());
    CHECK(static_cast<int>(ids.size()) <= model().config().max_seq_length);
  }
}

TEST_CASE("basic tokenizer lowercases, strips accents and splits punctuation") {
  const auto& tok = model().tokenizer();
  CHECK(tok.basic_tokenize("Gröbner bases, Ğ1 (Ünïcödé)!") ==
        std::vector<std::string>{"grobner", "bases", ",", "g1", "(", "unicode", ")", "!"});
  CHECK(tok.basic_tokenize("Nokogiri (鋸) parser") ==
        std::vector<std::string>{"nokogiri", "(", "鋸", ")", "parser"});
  CHECK(tok.basic_tokenize("tab\there\x01\ncontrol") ==
        std::vector<std::string>{"tab", "here", "control"});
}

TEST_CASE("wordpiece marks continuations and gives [UNK] to unmatchable or overlong words") {
  const auto& tok = model().tokenizer();
  std::vector<int> ids;
  tok.wordpiece("unaffable", ids);
  REQUIRE(ids.size() >= 2);
  CHECK(ids[0] != tok.unk_id());
  ids.clear();
  tok.wordpiece(std::string(WordPieceTokenizer::kMaxInputCharsPerWord + 1, 'a'), ids);
  CHECK(ids == std::vector<int>{tok.unk_id()});
  const auto enc = tok.encode("", 8);
  CHECK(enc == std::vector<int>{tok.cls_id(), tok.sep_id()});
  CHECK_THROWS_AS(tok.encode("x", 1), monarch::InputError);
}

TEST_CASE("a vocabulary that repeats a line keeps every id below size(), which counts lines") {
  // Fuzz finding: fuzz/tokenizer_vocab.txt listed "##s" twice, so the last line's id equalled the
  // number of distinct tokens and fell outside size(). Ids are line numbers; size() is the line count.
  const std::string path = (std::filesystem::temp_directory_path() / "monarch_repeated_vocab.txt").string();
  {
    std::ofstream out(path);
    out << "[PAD]\n[UNK]\n[CLS]\n[SEP]\nab\n##s\n##s\nzz\n";
  }
  const auto t = monarch::models::WordPieceTokenizer::from_vocab_file(path);
  std::filesystem::remove(path);
  CHECK(t.size() == 8);
  CHECK(t.id("zz") == 7);
  CHECK(t.id("##s") == 5);  // the first occurrence wins
  for (int id : t.encode("zz abs", 16)) CHECK((id >= 0 && id < t.size()));
}
