// Reading configs: parse and validate a document through the key table, the rules between
// keys, JSON files with line and column in their errors, and --set overrides.
#include "mmfusion/config/config_io.hpp"

#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/config/config_keys.hpp"
#include "config_reader.hpp"

namespace mmfusion {

namespace {

using config_detail::fail;
using nlohmann::json;

// InTense's blocks: latent_dim^|S| values per sample each, at most model.max_fused_size.
void check_intense_blocks(const ModelConfig& m) {
  const auto& c = m.intense;
  for (size_t i = 0; i < c.interactions.size(); ++i) {
    const double size = std::pow(double(c.latent_dim), double(c.interactions[i].size()));
    if (size > double(m.max_fused_size))
      fail("model.intense.interactions[" + std::to_string(i) + "]",
           "the block of " + std::to_string(c.interactions[i].size()) +
               " modalities has latent_dim^" + std::to_string(c.interactions[i].size()) + " = " +
               std::to_string(std::llround(size)) +
               " values per sample, above model.max_fused_size = " +
               std::to_string(m.max_fused_size) + "; use a smaller model.intense.latent_dim");
  }
}

}  // namespace

ExperimentConfig parse_config(const json& doc, std::vector<std::string>* deprecations) {
  // Every key alone, from the table (config_keys.cpp); then the rules between keys.
  ExperimentConfig c;
  config_detail::read_group("", &doc, "", "", c, deprecations, doc);
  const bool classification = c.task == Task::Classification;
  if (classification != (c.train.loss == Loss::CrossEntropy))
    fail("train.loss", classification ? "classification trains with \"cross_entropy\", got \"" +
                                            std::string(to_string(c.train.loss)) + "\""
                                      : "\"cross_entropy\" needs task \"classification\"");
  if (classification && c.num_classes > 0 && c.model.output_dim != 0 &&
      c.model.output_dim != c.num_classes)
    fail("model.output_dim", "must equal num_classes (" + std::to_string(c.num_classes) +
                                 ") for classification, got " + std::to_string(c.model.output_dim));
  if (c.model.type == ModelType::TFN) {
    // The outer product's size is prod(d_m + 1): refuse what cannot be held.
    const double fused = tfn_fused_size(encoder_output_dims(c.model, c.data.modalities));
    if (fused > double(c.model.max_fused_size)) {
      std::ostringstream msg;
      msg << "TFN's fused size prod(d_m + 1) would be " << std::llround(fused)
          << " values per sample (" << fused * 4 * c.train.batch_size / (1 << 20)
          << " MiB per training batch of " << c.train.batch_size
          << ", and a first post-fusion layer of "
          << std::llround(fused * (c.model.post_hidden.empty() ? 1 : c.model.post_hidden[0]))
          << " weights), above model.max_fused_size = " << c.model.max_fused_size
          << "; use smaller encoder outputs, or lmf";
      fail("model.encoders", msg.str());
    }
  }
  if (c.model.type == ModelType::Intense) check_intense_blocks(c.model);
  if (c.model.type == ModelType::MulT) {
    const size_t M = c.data.modalities.size();
    if (M < 2 && !c.model.mult.unimodal)
      fail("model.type",
           "\"mult\" attends across modalities and needs at least 2; data.modalities has " +
               std::to_string(M) +
               " (model.mult.unimodal: true trains its unimodal ablation, "
               "self-attention on the one modality)");
    if (c.model.mult.width % c.model.mult.heads != 0)
      fail("model.mult.heads", std::to_string(c.model.mult.heads) + " heads do not divide width " +
                                   std::to_string(c.model.mult.width));
    if (c.train.modality_dropout > 0)
      fail("train.modality_dropout", "not for \"mult\", which has no learned missing encodings "
                                     "(use it with lmf, tfn, concat, late or intense)");
    if (c.model.mult.mmsa_compat && M != 3)
      fail("model.mult.mmsa_compat", "MMSA's MulT takes exactly 3 modalities (text, audio, vision); "
                                     "data.modalities has " + std::to_string(M));
  }
  if (c.train.factor_lr > 0 && c.model.type != ModelType::LMF)
    fail("train.factor_lr",
         "only LMF has factors; model.type is \"" + std::string(to_string(c.model.type)) + "\"");
  return c;
}

json to_json(const ExperimentConfig& c) { return config_detail::write_group("", c, ""); }

json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot open the config file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    // e.byte is 1-based; turn it into a line and column for humans.
    size_t line = 1, column = 1;
    for (size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
      if (text[i] == '\n')
        ++line, column = 1;
      else
        ++column;
    }
    std::string reason = e.what();
    const auto colon = reason.rfind(": ");
    if (colon != std::string::npos) reason = reason.substr(colon + 2);
    throw ConfigError(path + ": malformed JSON at line " + std::to_string(line) + ", column " +
                      std::to_string(column) + ": " + reason);
  }
}

json parse_value(const std::string& text) {
  try {
    return json::parse(text);
  } catch (const json::parse_error&) { return text; }
}

void apply_override(json& doc, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw UsageError("--set " + assignment + ": expected KEY=VALUE (e.g. model.rank=8)");
  const std::string key = assignment.substr(0, eq);
  const json value = parse_value(assignment.substr(eq + 1));
  json* node = &doc;
  std::string walked;
  size_t start = 0;
  while (true) {
    const auto dot = key.find('.', start);
    const std::string part =
        key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (part.empty()) throw UsageError("--set " + key + ": empty key segment");
    if (!node->is_object())
      throw UsageError("--set " + key + ": " + walked + " is not an object, cannot set " + part);
    walked = config_detail::join_path(walked, part);
    if (dot == std::string::npos) {
      (*node)[part] = value;
      return;
    }
    node = &(*node)[part];
    if (node->is_null()) *node = json::object();
    start = dot + 1;
  }
}

ExperimentConfig parse_config_logged(const json& doc) {
  std::vector<std::string> deprecations;
  ExperimentConfig config = parse_config(doc, &deprecations);
  for (const auto& d : deprecations) spdlog::warn("config: {}", d);
  return config;
}

ExperimentConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  json doc = read_json_file(path);
  for (const auto& o : overrides) apply_override(doc, o);
  return parse_config_logged(doc);
}

bool operator==(const ExperimentConfig& a, const ExperimentConfig& b) {
  return to_json(a) == to_json(b);
}

}  // namespace mmfusion
