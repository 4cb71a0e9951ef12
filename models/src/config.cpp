#include "monarch/models/config.hpp"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "monarch/options.hpp"

namespace monarch::models {
namespace {

nlohmann::json read_json(const std::filesystem::path& p) {
  std::ifstream in(p);
  if (!in) throw InputError("cannot read " + p.string());
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(p.string() + " is not valid JSON: " + e.what());
  }
}

int positive_int(const nlohmann::json& j, const char* key, const std::string& file) {
  if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<long long>() < 1 ||
      j[key].get<long long>() > (1 << 24))
    throw InputError(file + ": '" + key + "' must be a positive integer");
  return j[key].get<int>();
}

}  // namespace

BertConfig read_config(const std::string& model_dir) {
  namespace fs = std::filesystem;
  const fs::path dir(model_dir);
  const std::string cfg_file = (dir / "config.json").string();
  const auto j = read_json(dir / "config.json");
  BertConfig c;
  c.vocab_size = positive_int(j, "vocab_size", cfg_file);
  c.hidden = positive_int(j, "hidden_size", cfg_file);
  c.layers = positive_int(j, "num_hidden_layers", cfg_file);
  c.heads = positive_int(j, "num_attention_heads", cfg_file);
  c.intermediate = positive_int(j, "intermediate_size", cfg_file);
  c.max_position = positive_int(j, "max_position_embeddings", cfg_file);
  c.type_vocab = positive_int(j, "type_vocab_size", cfg_file);
  if (c.hidden % c.heads != 0)
    throw InputError(cfg_file + ": hidden_size is not a multiple of num_attention_heads");
  if (j.contains("layer_norm_eps")) c.layer_norm_eps = j["layer_norm_eps"].get<double>();
  if (j.value("hidden_act", std::string("gelu")) != "gelu")
    throw InputError(cfg_file + ": only hidden_act 'gelu' (the erf form) is supported");
  if (j.value("position_embedding_type", std::string("absolute")) != "absolute")
    throw InputError(cfg_file + ": only absolute position embeddings are supported");
  c.max_seq_length = c.max_position;
  if (fs::exists(dir / "sentence_bert_config.json")) {
    const auto s = read_json(dir / "sentence_bert_config.json");
    if (s.contains("max_seq_length"))
      c.max_seq_length = std::min(c.max_position, s["max_seq_length"].get<int>());
  }
  if (fs::exists(dir / "1_Pooling" / "config.json")) {
    const auto p = read_json(dir / "1_Pooling" / "config.json");
    if (!p.value("pooling_mode_mean_tokens", false))
      throw InputError((dir / "1_Pooling" / "config.json").string() +
                       ": only mean pooling is supported");
  }
  return c;
}

}  // namespace monarch::models
