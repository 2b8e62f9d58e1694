#include "mmfusion/config.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "mmfusion/config_keys.hpp"
#include "mmfusion/errors.hpp"
#include "config_reader.hpp"

namespace mmfusion {

const char* to_string(Task v) {
  switch (v) {
    case Task::Regression: return "regression";
    case Task::Classification: return "classification";
  }
  return "?";
}
const char* to_string(Loss v) {
  switch (v) {
    case Loss::MSE: return "mse";
    case Loss::L1: return "l1";
    case Loss::Huber: return "huber";
    case Loss::CrossEntropy: return "cross_entropy";
  }
  return "?";
}
const char* to_string(ModelType v) {
  switch (v) {
    case ModelType::LMF: return "lmf";
    case ModelType::TFN: return "tfn";
    case ModelType::Concat: return "concat";
    case ModelType::Late: return "late";
    case ModelType::Intense: return "intense";
  }
  return "?";
}
const char* to_string(OptimizerType v) {
  switch (v) {
    case OptimizerType::Adam: return "adam";
    case OptimizerType::AdamW: return "adamw";
    case OptimizerType::SGD: return "sgd";
  }
  return "?";
}
const char* to_string(Activation v) {
  switch (v) {
    case Activation::ReLU: return "relu";
    case Activation::Tanh: return "tanh";
  }
  return "?";
}
const char* to_string(RankWeighting v) {
  switch (v) {
    case RankWeighting::Learned: return "learned";
    case RankWeighting::Sum: return "sum";
  }
  return "?";
}
const char* to_string(LateCombine v) {
  switch (v) {
    case LateCombine::Sum: return "sum";
    case LateCombine::Mean: return "mean";
  }
  return "?";
}
const char* to_string(DataSource v) {
  switch (v) {
    case DataSource::Synthetic: return "synthetic";
    case DataSource::File: return "file";
  }
  return "?";
}
const char* to_string(Standardize v) {
  switch (v) {
    case Standardize::None: return "none";
    case Standardize::ZScore: return "zscore";
  }
  return "?";
}

template <>
const std::vector<Task>& all_values() {
  static const std::vector<Task> v{Task::Regression, Task::Classification};
  return v;
}
template <>
const std::vector<Loss>& all_values() {
  static const std::vector<Loss> v{Loss::MSE, Loss::L1, Loss::Huber, Loss::CrossEntropy};
  return v;
}
template <>
const std::vector<ModelType>& all_values() {
  static const std::vector<ModelType> v{ModelType::LMF, ModelType::TFN, ModelType::Concat, ModelType::Late,
                                        ModelType::Intense};
  return v;
}
template <>
const std::vector<OptimizerType>& all_values() {
  static const std::vector<OptimizerType> v{OptimizerType::Adam, OptimizerType::AdamW, OptimizerType::SGD};
  return v;
}
template <>
const std::vector<Activation>& all_values() {
  static const std::vector<Activation> v{Activation::ReLU, Activation::Tanh};
  return v;
}
template <>
const std::vector<RankWeighting>& all_values() {
  static const std::vector<RankWeighting> v{RankWeighting::Learned, RankWeighting::Sum};
  return v;
}
template <>
const std::vector<LateCombine>& all_values() {
  static const std::vector<LateCombine> v{LateCombine::Sum, LateCombine::Mean};
  return v;
}
template <>
const std::vector<DataSource>& all_values() {
  static const std::vector<DataSource> v{DataSource::Synthetic, DataSource::File};
  return v;
}
template <>
const std::vector<Standardize>& all_values() {
  static const std::vector<Standardize> v{Standardize::None, Standardize::ZScore};
  return v;
}

namespace config_detail {

namespace {

// A present value of a plain key, checked against its row: the value to store.
json checked(const ConfigKey& k, const json& v, const std::string& at) {
  switch (k.kind) {
    case KeyKind::Integer:
      return check_integer(v, at, static_cast<int64_t>(k.minimum),
                           std::isfinite(k.maximum) ? static_cast<int64_t>(k.maximum) : INT64_MAX);
    case KeyKind::Number:
      return k.exclusive_minimum ? check_positive(v, at) : check_number(v, at, k.minimum, k.maximum, k.exclusive_maximum);
    case KeyKind::Boolean: return check_boolean(v, at);
    case KeyKind::String: {
      const std::string text = check_string(v, at);
      if (!k.pattern.empty() && !std::regex_match(text, std::regex(k.pattern)))
        fail(at, k.pattern_message + ", got \"" + text + "\"");
      return text;
    }
    case KeyKind::Choice: return check_choice(v, at, k.choices);
    case KeyKind::Sizes: return check_sizes(v, at);
    case KeyKind::Object:
    case KeyKind::Special:
    case KeyKind::Ignored: break;
  }
  throw std::logic_error("config key " + k.path + " has no plain value");
}

}  // namespace

void read_group(const std::string& group, const json* j, const std::string& at, const std::string& slot,
                ExperimentConfig& config, std::vector<std::string>* deprecations, const json& doc) {
  ObjectReader r(j, at);
  for (const ConfigKey* k : keys_under(group)) {
    const std::string name = k->name();
    if (k->kind == KeyKind::Ignored) {
      if (const json* v = r.find_unlisted(name)) check_string(*v, r.path(name));
      continue;
    }
    const json* v = k->old_name.empty() ? r.find(name) : r.find_renamed(name, k->old_name, deprecations);
    switch (k->kind) {
      case KeyKind::Object:
        read_group(k->path, v && k->nullable && v->is_null() ? nullptr : v, r.path(name), slot, config, deprecations, doc);
        break;
      case KeyKind::Special: k->parse(config, v, r.path(name), j); break;
      default:
        if (v) k->set(config, slot, checked(*k, *v, r.path(name)));
        else if (k->dynamic_default) k->set(config, slot, k->dynamic_default(config, slot));
    }
    if (k->check) k->check(config, doc);
  }
  r.finish();
}

json write_group(const std::string& group, const ExperimentConfig& config, const std::string& slot) {
  json out = json::object();
  for (const ConfigKey* k : keys_under(group)) {
    if (k->kind == KeyKind::Ignored || (k->written && !k->written(config))) continue;
    out[k->name()] = k->kind == KeyKind::Object ? write_group(k->path, config, slot) : k->get(config, slot);
  }
  return out;
}

}  // namespace config_detail

namespace {

using nlohmann::json;
using config_detail::fail;

// InTense's blocks: latent_dim^|S| values per sample each, at most model.max_fused_size.
void check_intense_blocks(const ModelConfig& m) {
  const auto& c = m.intense;
  for (size_t i = 0; i < c.interactions.size(); ++i) {
    const double size = std::pow(double(c.latent_dim), double(c.interactions[i].size()));
    if (size > double(m.max_fused_size))
      fail("model.intense.interactions[" + std::to_string(i) + "]",
           "the block of " + std::to_string(c.interactions[i].size()) + " modalities has latent_dim^" +
               std::to_string(c.interactions[i].size()) + " = " + std::to_string(std::llround(size)) +
               " values per sample, above model.max_fused_size = " + std::to_string(m.max_fused_size) +
               "; use a smaller model.intense.latent_dim");
  }
}

}  // namespace

const KernelConfig& kernel_for(const MKLConfig& mkl, const std::string& modality) {
  auto it = mkl.kernels.find(modality);
  return it == mkl.kernels.end() ? mkl.default_kernel : it->second;
}

ExperimentConfig parse_config(const json& doc, std::vector<std::string>* deprecations) {
  // Every key alone, from the table (config_keys.cpp); then the rules between keys.
  ExperimentConfig c;
  config_detail::read_group("", &doc, "", "", c, deprecations, doc);
  const bool classification = c.task == Task::Classification;
  if (classification != (c.train.loss == Loss::CrossEntropy))
    fail("train.loss", classification ? "classification trains with \"cross_entropy\", got \"" +
                                            std::string(to_string(c.train.loss)) + "\""
                                      : "\"cross_entropy\" needs task \"classification\"");
  if (classification && c.num_classes > 0 && c.model.output_dim != 0 && c.model.output_dim != c.num_classes)
    fail("model.output_dim", "must equal num_classes (" + std::to_string(c.num_classes) +
                                 ") for classification, got " + std::to_string(c.model.output_dim));
  if (c.model.type == ModelType::TFN) {
    // The outer product's size is prod(d_m + 1): refuse what cannot be held.
    const double fused = tfn_fused_size(encoder_output_dims(c.model, c.data.modalities));
    if (fused > double(c.model.max_fused_size)) {
      std::ostringstream msg;
      msg << "TFN's fused size prod(d_m + 1) would be " << std::llround(fused) << " values per sample ("
          << fused * 4 * c.train.batch_size / (1 << 20) << " MiB per training batch of "
          << c.train.batch_size << ", and a first post-fusion layer of "
          << std::llround(fused * (c.model.post_hidden.empty() ? 1 : c.model.post_hidden[0]))
          << " weights), above model.max_fused_size = " << c.model.max_fused_size
          << "; use smaller encoder outputs, or lmf";
      fail("model.encoders", msg.str());
    }
  }
  if (c.model.type == ModelType::Intense) check_intense_blocks(c.model);
  if (c.train.factor_lr > 0 && c.model.type != ModelType::LMF)
    fail("train.factor_lr", "only LMF has factors; model.type is \"" + std::string(to_string(c.model.type)) + "\"");
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
      if (text[i] == '\n') ++line, column = 1;
      else ++column;
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
  } catch (const json::parse_error&) {
    return text;
  }
}

void apply_override(json& doc, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("--set " + assignment + ": expected KEY=VALUE (e.g. model.rank=8)");
  const std::string key = assignment.substr(0, eq);
  const json value = parse_value(assignment.substr(eq + 1));
  json* node = &doc;
  std::string walked;
  size_t start = 0;
  while (true) {
    const auto dot = key.find('.', start);
    const std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (part.empty()) throw ConfigError("--set " + key + ": empty key segment");
    if (!node->is_object())
      throw ConfigError("--set " + key + ": " + walked + " is not an object, cannot set " + part);
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

std::vector<int64_t> encoder_output_dims(const ModelConfig& model, const std::vector<ModalityConfig>& modalities) {
  std::vector<int64_t> dims;
  for (const auto& m : modalities) {
    const auto& hidden = encoder_hidden_for(model, m.name);
    dims.push_back(hidden.empty() ? m.dim : hidden.back());
  }
  return dims;
}

double tfn_fused_size(const std::vector<int64_t>& encoder_output_dims) {
  double fused = 1;
  for (int64_t d : encoder_output_dims) fused *= double(d) + 1;
  return fused;
}

int64_t resolve_output_dim(const ExperimentConfig& config, int64_t target_columns) {
  switch (config.task) {
    case Task::Classification:
      // num_classes may have been inferred after parsing: check model.output_dim again.
      if (config.model.output_dim != 0 && config.model.output_dim != config.num_classes)
        throw ConfigError("model.output_dim: " + std::to_string(config.model.output_dim) + " but num_classes is " +
                          std::to_string(config.num_classes));
      return config.num_classes;
    case Task::Regression: break;
  }
  if (config.model.output_dim == 0) return target_columns;
  if (config.model.output_dim != target_columns)
    throw ConfigError("model.output_dim: " + std::to_string(config.model.output_dim) + " but the target has " +
                      std::to_string(target_columns) + " column(s)");
  return config.model.output_dim;
}

std::string subset_name(const std::vector<std::string>& modalities) {
  std::string out;
  for (const auto& m : modalities) out += (out.empty() ? "" : ":") + m;
  return out;
}

const std::vector<int64_t>& encoder_hidden_for(const ModelConfig& model, const std::string& modality) {
  auto it = model.encoders.find(modality);
  return it == model.encoders.end() ? model.encoder_hidden : it->second;
}

bool operator==(const ExperimentConfig& a, const ExperimentConfig& b) {
  return to_json(a) == to_json(b);
}

}  // namespace mmfusion
