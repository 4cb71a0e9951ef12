// The parts of a BERT checkpoint's configuration that the encoder needs: config.json (the
// transformer), sentence_bert_config.json (max_seq_length) and 1_Pooling/config.json (mean pooling).
#pragma once

#include <string>

namespace monarch::models {

struct BertConfig {
  int vocab_size = 0;
  int hidden = 0;          // 384 for all-MiniLM-L6-v2
  int layers = 0;          // 6
  int heads = 0;           // 12
  int intermediate = 0;    // 1536
  int max_position = 0;    // 512
  int type_vocab = 0;      // 2
  double layer_norm_eps = 1e-12;
  int max_seq_length = 0;  // the sentence-transformers truncation, 256; max_position if absent
  int head_dim() const { return hidden / heads; }
};

/// Reads and validates the configuration files of a sentence-transformers BERT directory.
/// Throws InputError with one line for a missing file, a missing key or an unsupported choice
/// (an activation other than exact GELU, pooling other than mean, absolute positions only).
BertConfig read_config(const std::string& model_dir);

}  // namespace monarch::models
