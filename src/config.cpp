#include "mmfusion/config.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "mmfusion/errors.hpp"

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

namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw ConfigError(path + ": " + what);
}

std::string describe(const json& j) {
  std::string text = j.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  switch (j.type()) {
    case json::value_t::string: return "a string " + text;
    case json::value_t::boolean: return "a boolean " + text;
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    default: return text;
  }
}

std::string join_path(const std::string& base, const std::string& key) {
  return base.empty() ? key : base + "." + key;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// Reads one JSON object: each getter checks type and range and records the key as
// known; finish() rejects whatever was not asked for, suggesting the nearest key.
class ObjectReader {
 public:
  ObjectReader(const json* j, std::string path) : j_(j), path_(std::move(path)) {
    if (j_ && !j_->is_object()) fail(path_, "expected an object, got " + describe(*j_));
  }

  const json* find(const std::string& key) {
    known_.insert(key);
    if (!j_) return nullptr;
    auto it = j_->find(key);
    return it == j_->end() ? nullptr : &*it;
  }

  std::string path(const std::string& key) const { return join_path(path_, key); }

  int64_t integer(const std::string& key, int64_t def, int64_t min,
                  int64_t max = INT64_MAX) {
    const json* v = find(key);
    if (!v) return def;
    std::string expect = "expected an integer >= " + std::to_string(min);
    if (max != INT64_MAX) expect += " and <= " + std::to_string(max);
    if (!v->is_number_integer()) fail(path(key), expect + ", got " + describe(*v));
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      fail(path(key), expect + ", got " + v->dump());
    const int64_t x = v->get<int64_t>();
    if (x < min || x > max) fail(path(key), expect + ", got " + v->dump());
    return x;
  }

  // A number in [lo, hi] (or [lo, hi) when hi_open).
  double number(const std::string& key, double def, double lo, double hi, bool hi_open = false) {
    const json* v = find(key);
    if (!v) return def;
    std::ostringstream expect;
    expect << "expected a number";
    if (std::isfinite(hi)) expect << " in [" << lo << ", " << hi << (hi_open ? ")" : "]");
    else expect << " >= " << lo;
    if (!v->is_number()) fail(path(key), expect.str() + ", got " + describe(*v));
    const double x = v->get<double>();
    if (!std::isfinite(x) || x < lo || x > hi || (hi_open && x >= hi))
      fail(path(key), expect.str() + ", got " + v->dump());
    return x;
  }

  // A number > lo.
  double positive(const std::string& key, double def) {
    const json* v = find(key);
    if (!v) return def;
    if (!v->is_number() || !(v->get<double>() > 0) || !std::isfinite(v->get<double>()))
      fail(path(key), "expected a number > 0, got " + describe(*v));
    return v->get<double>();
  }

  bool boolean(const std::string& key, bool def) { return boolean_at(find(key), key, def); }

  bool boolean_at(const json* v, const std::string& key, bool def) {
    if (!v) return def;
    if (!v->is_boolean()) fail(path(key), "expected true or false, got " + describe(*v));
    return v->get<bool>();
  }

  std::string string(const std::string& key, const std::string& def) {
    const json* v = find(key);
    if (!v) return def;
    if (!v->is_string()) fail(path(key), "expected a string, got " + describe(*v));
    return v->get<std::string>();
  }

  // One of an enum's values, spelt as to_string spells it.
  template <typename E>
  E choice(const std::string& key, E def) {
    std::vector<std::string> options;
    for (E v : all_values<E>()) options.push_back(to_string(v));
    const std::string chosen = choice(key, to_string(def), options);
    for (E v : all_values<E>())
      if (chosen == to_string(v)) return v;
    return def;
  }

  // A key that was renamed: the old spelling still works, noted in *deprecations.
  const json* find_renamed(const std::string& key, const std::string& old_key,
                           std::vector<std::string>* deprecations) {
    const json* now = find(key);
    const json* old = find(old_key);
    if (old && now) fail(path(old_key), "is the old name of " + path(key) + "; give only " + path(key));
    if (old && deprecations)
      deprecations->push_back(path(old_key) + " is deprecated; it is now " + path(key));
    return now ? now : old;
  }

  std::string choice(const std::string& key, const std::string& def,
                     const std::vector<std::string>& options) {
    const json* v = find(key);
    std::string allowed;
    for (const auto& o : options) allowed += (allowed.empty() ? "\"" : ", \"") + o + "\"";
    if (!v) return def;
    if (!v->is_string() ||
        std::find(options.begin(), options.end(), v->get<std::string>()) == options.end())
      fail(path(key), "expected one of " + allowed + ", got " + describe(*v));
    return v->get<std::string>();
  }

  // A list of integers >= 1 (may be empty).
  std::vector<int64_t> sizes(const json& v, const std::string& at) {
    if (!v.is_array()) fail(at, "expected a list of integers >= 1, got " + describe(v));
    std::vector<int64_t> out;
    for (size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_number_integer() || v[i].get<int64_t>() < 1)
        fail(at + "[" + std::to_string(i) + "]",
             "expected an integer >= 1, got " + describe(v[i]));
      out.push_back(v[i].get<int64_t>());
    }
    return out;
  }

  void finish() const {
    if (!j_) return;
    for (const auto& item : j_->items()) {
      if (known_.count(item.key())) continue;
      std::string best;
      size_t best_distance = SIZE_MAX;
      for (const auto& k : known_) {
        const size_t d = edit_distance(item.key(), k);
        if (d < best_distance) best_distance = d, best = k;
      }
      const size_t limit = std::max<size_t>(2, item.key().size() / 3);
      std::string hint;
      if (best_distance <= limit) {
        hint = " (did you mean " + path(best) + "?)";
      } else {
        for (const auto& k : known_) hint += (hint.empty() ? " (known keys: " : ", ") + k;
        hint += ")";
      }
      fail(path(item.key()), "unknown key" + hint);
    }
  }

 private:
  const json* j_;
  std::string path_;
  std::set<std::string> known_;
};

const std::regex& identifier() {
  static const std::regex re("[A-Za-z_][A-Za-z0-9_]*");
  return re;
}

// Synthetic data needs two modalities (its target has cross-modal terms); file data may
// have one, which is how a single modality's worth is measured.
std::vector<ModalityConfig> parse_modalities(const json* v, const std::string& path, size_t at_least) {
  if (!v) return DataConfig{}.modalities;
  if (!v->is_array()) fail(path, "expected a list of {\"name\", \"dim\"} objects, got " + describe(*v));
  if (v->size() < at_least)
    fail(path, "expected at least " + std::to_string(at_least) + " modalities" +
                   (at_least > 1 ? " for synthetic data" : "") + ", got " + std::to_string(v->size()));
  std::vector<ModalityConfig> out;
  std::set<std::string> seen;
  for (size_t i = 0; i < v->size(); ++i) {
    const std::string at = path + "[" + std::to_string(i) + "]";
    ObjectReader r(&(*v)[i], at);
    ModalityConfig m;
    const json* name = r.find("name");
    if (!name) fail(r.path("name"), "required (a modality needs a name)");
    m.name = r.string("name", "");
    if (!std::regex_match(m.name, identifier()) || m.name == "target")
      fail(r.path("name"), "expected an identifier (letters, digits, '_'; not \"target\"), got \"" +
                               m.name + "\"");
    if (!seen.insert(m.name).second) fail(r.path("name"), "duplicate modality name \"" + m.name + "\"");
    if (!r.find("dim")) fail(r.path("dim"), "required (the modality's feature size)");
    m.dim = r.integer("dim", 0, 1);
    r.finish();
    out.push_back(m);
  }
  return out;
}

// A set of at least `at_least` distinct modality names from data.modalities, returned in
// the config's modality order (so that every spelling of a set is one set).
std::vector<std::string> parse_modality_set(const json* names, const std::string& at,
                                            const std::vector<ModalityConfig>& modalities, size_t at_least) {
  if (!names || !names->is_array() || names->size() < at_least)
    fail(at, "expected a list of " + std::string(at_least > 1 ? "at least " + std::to_string(at_least) : "one or more") +
                 " modality names, got " + (names ? describe(*names) : std::string("nothing")));
  std::set<std::string> wanted;
  for (const auto& n : *names) {
    if (!n.is_string()) fail(at, "expected modality names, got " + describe(n));
    const std::string name = n.get<std::string>();
    const bool known = std::any_of(modalities.begin(), modalities.end(),
                                   [&](const ModalityConfig& m) { return m.name == name; });
    if (!known) fail(at, "no modality named \"" + name + "\" in data.modalities");
    if (!wanted.insert(name).second) fail(at, "\"" + name + "\" appears twice");
  }
  std::vector<std::string> set;
  for (const auto& m : modalities)
    if (wanted.count(m.name)) set.push_back(m.name);
  return set;
}

// data.synthetic.terms: [{"modalities": [names], "weight": w}, ...]. Each term's set is
// stored in the config's modality order; a set may appear once.
std::vector<TargetTerm> parse_terms(const json& v, const std::vector<ModalityConfig>& modalities) {
  const std::string path = "data.synthetic.terms";
  if (!v.is_array() || v.empty())
    fail(path, "expected a non-empty list of {\"modalities\": [names], \"weight\": w}, got " + describe(v));
  std::vector<TargetTerm> out;
  std::set<std::vector<std::string>> seen;
  for (size_t i = 0; i < v.size(); ++i) {
    ObjectReader r(&v[i], path + "[" + std::to_string(i) + "]");
    TargetTerm term;
    term.modalities = parse_modality_set(r.find("modalities"), r.path("modalities"), modalities, 1);
    term.weight = r.positive("weight", term.weight);
    r.finish();
    if (!seen.insert(term.modalities).second)
      fail(r.path("modalities"), "the same set of modalities as an earlier term (give it one weight)");
    out.push_back(std::move(term));
  }
  return out;
}

DataConfig parse_data(const json* j, Task task) {
  ObjectReader r(j, "data");
  DataConfig d;
  d.source = r.choice("source", d.source);
  // Real features come in their own units; synthetic ones have unit scale by construction.
  const bool file = d.source == DataSource::File;
  d.standardize = r.choice("standardize", file ? Standardize::ZScore : Standardize::None);
  d.standardize_target = r.boolean("standardize_target", file && task == Task::Regression);
  if (d.standardize_target && task != Task::Regression)
    fail("data.standardize_target", "only for regression (class labels are not scaled)");
  d.modalities = parse_modalities(r.find("modalities"), "data.modalities", file ? 1 : 2);
  d.train_size = r.integer("train_size", d.train_size, 1);
  d.val_size = r.integer("val_size", d.val_size, 1);
  d.test_size = r.integer("test_size", d.test_size, 1);
  d.path = r.string("path", d.path);
  d.val_path = r.string("val_path", d.val_path);
  d.test_path = r.string("test_path", d.test_path);
  d.val_fraction = r.number("val_fraction", d.val_fraction, 0.0, 1.0, true);
  d.test_fraction = r.number("test_fraction", d.test_fraction, 0.0, 1.0, true);

  ObjectReader s(r.find("synthetic"), "data.synthetic");
  auto& sy = d.synthetic;
  sy.latent_dim = s.integer("latent_dim", sy.latent_dim, 1, 4096);
  sy.shared_latent_dim = s.integer("shared_latent_dim", sy.shared_latent_dim, 0, 4096);
  sy.feature_noise = s.number("feature_noise", sy.feature_noise, 0.0, INFINITY);
  sy.target_noise = s.number("target_noise", sy.target_noise, 0.0, INFINITY);
  sy.generator = s.integer("generator", sy.generator, 1, 2);
  sy.stream = s.boolean("stream", sy.stream);
  // weights: null is no weights, so that --set can drop a config's weights for terms.
  const json* weights = s.find("weights");
  if (weights && weights->is_null()) weights = nullptr;
  const json* terms = s.find("terms");
  if (terms) {
    if (weights)
      fail("data.synthetic.terms", "give either terms or weights, not both (weights is shorthand for a "
                                   "fixed set of terms; --set data.synthetic.weights=null drops them)");
    sy.terms = parse_terms(*terms, d.modalities);
  }
  ObjectReader w(weights, "data.synthetic.weights");
  sy.weight_unimodal = w.number("unimodal", sy.weight_unimodal, 0.0, INFINITY);
  sy.weight_bimodal = w.number("bimodal", sy.weight_bimodal, 0.0, INFINITY);
  const bool trimodal_given = w.find("trimodal") != nullptr;
  sy.weight_trimodal = w.number("trimodal", d.modalities.size() >= 3 ? sy.weight_trimodal : 0.0,
                                0.0, INFINITY);
  w.finish();
  s.finish();
  r.finish();

  if (trimodal_given && sy.weight_trimodal > 0 && d.modalities.size() < 3)
    fail("data.synthetic.weights.trimodal",
         "needs at least 3 modalities, the config has " + std::to_string(d.modalities.size()) +
             " (set it to 0)");
  if (sy.stream && sy.generator < 2)
    fail("data.synthetic.stream", "needs data.synthetic.generator 2 (generator 1 draws a split in one sequence)");
  if (sy.stream && d.source != DataSource::Synthetic)
    fail("data.synthetic.stream", "only for synthetic data (data.source is \"file\")");
  if (d.source == DataSource::Synthetic && sy.terms.empty() &&
      sy.weight_unimodal + sy.weight_bimodal + sy.weight_trimodal == 0)
    fail("data.synthetic.weights", "at least one weight must be > 0 (the target would be noise)");
  if (d.source == DataSource::File) {
    if (d.path.empty()) fail("data.path", "required when data.source is \"file\"");
    if (d.val_path.empty() && d.val_fraction <= 0)
      fail("data.val_fraction", "expected a number in (0, 1) when data.val_path is not given, got " +
                                    json(d.val_fraction).dump());
    if (d.test_path.empty() && d.test_fraction <= 0)
      fail("data.test_fraction",
           "expected a number in (0, 1) when data.test_path is not given, got " +
               json(d.test_fraction).dump());
    const double taken = (d.val_path.empty() ? d.val_fraction : 0) +
                         (d.test_path.empty() ? d.test_fraction : 0);
    if (taken >= 0.9)
      fail("data.val_fraction", "val_fraction + test_fraction must leave at least 10% for "
                                "training, got " + json(taken).dump());
  }
  return d;
}

// A list of distinct modality sets of at least 2 modalities each (InTense's and MKL's
// interactions), each in the config's order.
std::vector<std::vector<std::string>> parse_modality_sets(const json& sets, const std::string& path,
                                                          const std::vector<ModalityConfig>& modalities) {
  if (!sets.is_array())
    fail(path, "expected a list of modality-name lists (e.g. [[\"visual\", \"audio\"]]), got " + describe(sets));
  std::vector<std::vector<std::string>> out;
  for (size_t i = 0; i < sets.size(); ++i) {
    const std::string at = path + "[" + std::to_string(i) + "]";
    auto set = parse_modality_set(&sets[i], at, modalities, 2);
    if (std::find(out.begin(), out.end(), set) != out.end())
      fail(at, "the same set of modalities as an earlier interaction");
    out.push_back(std::move(set));
  }
  return out;
}

// Every set of 2 to max_order modalities, by size, then in the config's order.
std::vector<std::vector<std::string>> all_interactions(const std::vector<ModalityConfig>& modalities,
                                                       int64_t max_order) {
  std::vector<std::vector<std::string>> sets;
  const size_t M = modalities.size();
  for (size_t k = 2; k <= std::min<size_t>(M, size_t(max_order)); ++k) {
    std::vector<size_t> pick(k);
    for (size_t i = 0; i < k; ++i) pick[i] = i;
    while (true) {
      std::vector<std::string> set;
      for (size_t i : pick) set.push_back(modalities[i].name);
      sets.push_back(std::move(set));
      size_t i = k;  // the next k-subset in lexicographic order
      while (i > 0 && pick[i - 1] == M - k + (i - 1)) --i;
      if (i == 0) break;
      ++pick[i - 1];
      for (size_t j = i; j < k; ++j) pick[j] = pick[j - 1] + 1;
    }
  }
  return sets;
}

// Every pair of modalities, and the full set when there are exactly 3 (InTense's default).
std::vector<std::vector<std::string>> default_interactions(const std::vector<ModalityConfig>& modalities) {
  return all_interactions(modalities, modalities.size() == 3 ? 3 : 2);
}

IntenseConfig parse_intense(const json* j, const std::vector<ModalityConfig>& modalities) {
  ObjectReader r(j, "model.intense");
  IntenseConfig c;
  c.latent_dim = r.integer("latent_dim", c.latent_dim, 1, 4096);
  c.p = r.number("p", c.p, 1.0, 100.0);  // larger p: q = 2p/(p+1) and the scores lose their precision
  c.reg = r.number("reg", c.reg, 0.0, INFINITY);
  const json* sets = r.find("interactions");
  c.interactions = sets ? parse_modality_sets(*sets, r.path("interactions"), modalities)
                        : default_interactions(modalities);
  r.finish();
  return c;
}

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

ModelConfig parse_model(const json* j, const std::vector<ModalityConfig>& modalities) {
  ObjectReader r(j, "model");
  ModelConfig m;
  m.type = r.choice("type", m.type);
  m.rank = r.integer("rank", m.rank, 1);
  m.rank_weighting = r.choice("rank_weighting", m.rank_weighting);
  m.dropout = r.number("dropout", m.dropout, 0.0, 1.0, true);
  m.activation = r.choice("activation", m.activation);
  m.fused_dim = r.integer("fused_dim", m.fused_dim, 1, 1 << 20);
  m.output_dim = r.integer("output_dim", m.output_dim, 0, kMaxClasses);
  if (const json* v = r.find("encoder_hidden")) m.encoder_hidden = r.sizes(*v, r.path("encoder_hidden"));
  if (const json* v = r.find("post_hidden")) m.post_hidden = r.sizes(*v, r.path("post_hidden"));
  m.late_combine = r.choice("late_combine", m.late_combine);
  m.max_fused_size = r.integer("max_fused_size", m.max_fused_size, 1);
  if (const json* v = r.find("encoders")) {
    if (!v->is_object())
      fail(r.path("encoders"), "expected an object {modality: [hidden sizes]}, got " + describe(*v));
    for (const auto& item : v->items()) {
      const std::string at = r.path("encoders") + "." + item.key();
      const bool exists = std::any_of(modalities.begin(), modalities.end(),
                                      [&](const ModalityConfig& mc) { return mc.name == item.key(); });
      if (!exists) {
        std::string names;
        for (const auto& mc : modalities) names += (names.empty() ? "" : ", ") + mc.name;
        fail(at, "no modality named \"" + item.key() + "\" (modalities: " + names + ")");
      }
      m.encoders[item.key()] = r.sizes(item.value(), at);
    }
  }
  m.intense = parse_intense(r.find("intense"), modalities);
  r.finish();
  return m;
}

TrainConfig parse_train(const json* j, bool classification, std::vector<std::string>* deprecations) {
  ObjectReader r(j, "train");
  TrainConfig t;
  if (classification) t.loss = Loss::CrossEntropy;
  t.epochs = r.integer("epochs", t.epochs, 1, 1000000);
  t.batch_size = r.integer("batch_size", t.batch_size, 1);
  t.eval_batch_size = r.integer("eval_batch_size", t.eval_batch_size, 1);
  t.optimizer = r.choice("optimizer", t.optimizer);
  t.lr = r.positive("lr", t.lr);
  t.factor_lr = r.number("factor_lr", t.factor_lr, 0.0, INFINITY);
  t.weight_decay = r.number("weight_decay", t.weight_decay, 0.0, INFINITY);
  t.momentum = r.number("momentum", t.momentum, 0.0, 1.0, true);
  t.loss = r.choice("loss", t.loss);
  t.huber_delta = r.positive("huber_delta", t.huber_delta);
  t.grad_clip = r.number("grad_clip", t.grad_clip, 0.0, INFINITY);
  t.patience = r.integer("patience", t.patience, 0);
  t.flat_optimizer =
      r.boolean_at(r.find_renamed("flat_optimizer", "fused_optimizer", deprecations), "flat_optimizer", t.flat_optimizer);
  t.handwritten_step = r.boolean_at(r.find_renamed("handwritten_step", "fused_step", deprecations),
                                    "handwritten_step", t.handwritten_step);
  t.cuda_graphs = r.boolean("cuda_graphs", t.cuda_graphs);
  t.tf32 = r.boolean("tf32", t.tf32);
  r.finish();
  return t;
}

KernelConfig parse_kernel(const json* j, const std::string& path, const KernelConfig& def) {
  ObjectReader r(j, path);
  KernelConfig k = def;
  k.type = r.choice("type", k.type, {"linear", "polynomial", "rbf"});
  k.gamma = r.number("gamma", k.gamma, 0.0, INFINITY);
  k.gamma_scale = r.positive("gamma_scale", k.gamma_scale);
  k.degree = r.integer("degree", k.degree, 1, 10);
  k.coef0 = r.number("coef0", k.coef0, 0.0, INFINITY);
  k.normalize = r.choice("normalize", k.normalize, {"none", "unit_diagonal", "unit_trace"});
  r.finish();
  return k;
}

MKLConfig parse_mkl(const json* j, const std::vector<ModalityConfig>& modalities) {
  ObjectReader r(j, "mkl");
  MKLConfig m;
  m.solver = r.choice("solver", m.solver, {"average", "lp", "simple"});
  m.p = r.number("p", m.p, 1.0, INFINITY);
  m.lambda = r.positive("lambda", m.lambda);
  m.max_iter = r.integer("max_iter", m.max_iter, 1, 1000000);
  m.tol = r.positive("tol", m.tol);
  m.train_size = r.integer("train_size", m.train_size, 0);
  m.max_memory_gb = r.positive("max_memory_gb", m.max_memory_gb);
  m.max_order = r.integer("max_order", m.max_order, 2, 16);
  if (const json* v = r.find("interactions")) {
    if (v->is_string() && v->get<std::string>() != "all")
      fail(r.path("interactions"), "expected \"all\" or a list of modality-name lists, got " + describe(*v));
    m.interactions = v->is_string() ? all_interactions(modalities, m.max_order)
                                    : parse_modality_sets(*v, r.path("interactions"), modalities);
  }
  m.centre = r.boolean("centre", !m.interactions.empty());
  if (const json* v = r.find("kernels")) {
    ObjectReader k(v, "mkl.kernels");
    m.default_kernel = parse_kernel(k.find("default"), "mkl.kernels.default", m.default_kernel);
    for (const auto& mc : modalities)
      if (const json* own = k.find(mc.name))
        m.kernels[mc.name] = parse_kernel(own, "mkl.kernels." + mc.name, m.default_kernel);
    k.finish();
  }
  r.finish();
  return m;
}

}  // namespace

const KernelConfig& kernel_for(const MKLConfig& mkl, const std::string& modality) {
  auto it = mkl.kernels.find(modality);
  return it == mkl.kernels.end() ? mkl.default_kernel : it->second;
}

ExperimentConfig parse_config(const json& doc, std::vector<std::string>* deprecations) {
  ObjectReader r(&doc, "");
  ExperimentConfig c;
  c.name = r.string("name", c.name);
  c.task = r.choice("task", c.task);
  const bool classification = c.task == Task::Classification;
  c.num_classes = r.integer("num_classes", classification ? 0 : c.num_classes, 0, kMaxClasses);
  c.data = parse_data(r.find("data"), c.task);
  // File data may leave num_classes out: training infers it from the training labels.
  const bool inferred = c.data.source == DataSource::File && !r.find("num_classes");
  if (classification && c.num_classes < 2 && !inferred)
    fail("num_classes", "expected an integer >= 2 when task is \"classification\", got " +
                            std::to_string(c.num_classes) +
                            (c.data.source == DataSource::File ? " (or leave it out to infer it from the training labels)" : ""));
  if (!classification && c.num_classes != 0)
    fail("num_classes", "only used when task is \"classification\" (task is \"regression\")");
  if (c.name.empty() || c.name.find_first_of("/\\") != std::string::npos || c.name == "." ||
      c.name == "..")
    fail("name", "expected a non-empty name without '/' (it names the run folder), got \"" +
                     c.name + "\"");
  c.seed = static_cast<uint64_t>(r.integer("seed", static_cast<int64_t>(c.seed), 0));
  c.device = r.string("device", c.device);
  static const std::regex device_re("auto|cpu|cuda|cuda:[0-9]+");
  if (!std::regex_match(c.device, device_re))
    fail("device", "expected \"auto\", \"cpu\", \"cuda\" or \"cuda:N\", got \"" + c.device + "\"");
  c.threads = r.integer("threads", c.threads, 0, 1024);
  c.model = parse_model(r.find("model"), c.data.modalities);
  c.train = parse_train(r.find("train"), classification, deprecations);
  c.mkl = parse_mkl(r.find("mkl"), c.data.modalities);
  {
    ObjectReader d(r.find("distributed"), "distributed");
    c.distributed.backend = d.choice("backend", c.distributed.backend, {"auto", "gloo", "nccl"});
    c.distributed.timeout_s = d.positive("timeout_s", c.distributed.timeout_s);
    d.finish();
  }
  r.finish();
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

json to_json(const ExperimentConfig& c) {
  json modalities = json::array();
  for (const auto& m : c.data.modalities) modalities.push_back({{"name", m.name}, {"dim", m.dim}});
  json data = {{"source", to_string(c.data.source)},
               {"modalities", modalities},
               {"standardize", to_string(c.data.standardize)}};
  if (c.task == Task::Regression) data["standardize_target"] = c.data.standardize_target;
  if (c.data.source == DataSource::Synthetic) {
    const auto& s = c.data.synthetic;
    data["train_size"] = c.data.train_size;
    data["val_size"] = c.data.val_size;
    data["test_size"] = c.data.test_size;
    data["synthetic"] = {{"latent_dim", s.latent_dim},
                         {"shared_latent_dim", s.shared_latent_dim},
                         {"feature_noise", s.feature_noise},
                         {"target_noise", s.target_noise},
                         {"generator", s.generator},
                         {"stream", s.stream}};
    if (s.terms.empty()) {
      data["synthetic"]["weights"] = {
          {"unimodal", s.weight_unimodal}, {"bimodal", s.weight_bimodal}, {"trimodal", s.weight_trimodal}};
    } else {
      json terms = json::array();
      for (const auto& t : s.terms) terms.push_back({{"modalities", t.modalities}, {"weight", t.weight}});
      data["synthetic"]["terms"] = terms;
    }
  } else {
    data["path"] = c.data.path;
    data["val_path"] = c.data.val_path;
    data["test_path"] = c.data.test_path;
    data["val_fraction"] = c.data.val_fraction;
    data["test_fraction"] = c.data.test_fraction;
  }
  json encoders = json::object();
  for (const auto& [name, hidden] : c.model.encoders) encoders[name] = hidden;
  const auto& t = c.train;
  json out = {{"name", c.name},
          {"task", to_string(c.task)},
          {"seed", c.seed},
          {"device", c.device},
          {"threads", c.threads},
          {"data", data},
          {"model",
           {{"type", to_string(c.model.type)},
            {"rank", c.model.rank},
            {"rank_weighting", to_string(c.model.rank_weighting)},
            {"dropout", c.model.dropout},
            {"activation", to_string(c.model.activation)},
            {"fused_dim", c.model.fused_dim},
            {"output_dim", c.model.output_dim},
            {"encoder_hidden", c.model.encoder_hidden},
            {"encoders", encoders},
            {"post_hidden", c.model.post_hidden},
            {"late_combine", to_string(c.model.late_combine)},
            {"max_fused_size", c.model.max_fused_size},
            {"intense",
             {{"interactions", c.model.intense.interactions},
              {"latent_dim", c.model.intense.latent_dim},
              {"p", c.model.intense.p},
              {"reg", c.model.intense.reg}}}}},
          {"train",
           {{"epochs", t.epochs},
            {"batch_size", t.batch_size},
            {"eval_batch_size", t.eval_batch_size},
            {"optimizer", to_string(t.optimizer)},
            {"lr", t.lr},
            {"factor_lr", t.factor_lr},
            {"weight_decay", t.weight_decay},
            {"momentum", t.momentum},
            {"loss", to_string(t.loss)},
            {"huber_delta", t.huber_delta},
            {"grad_clip", t.grad_clip},
            {"patience", t.patience},
            {"flat_optimizer", t.flat_optimizer},
            {"handwritten_step", t.handwritten_step},
            {"cuda_graphs", t.cuda_graphs},
            {"tf32", t.tf32}}}};
  if (c.task == Task::Classification && c.num_classes > 0) out["num_classes"] = c.num_classes;
  auto kernel_json = [](const KernelConfig& k) {
    return json{{"type", k.type}, {"gamma", k.gamma}, {"gamma_scale", k.gamma_scale}, {"degree", k.degree}, {"coef0", k.coef0},
                {"normalize", k.normalize}};
  };
  json kernels = {{"default", kernel_json(c.mkl.default_kernel)}};
  for (const auto& [name, k] : c.mkl.kernels) kernels[name] = kernel_json(k);
  out["mkl"] = {{"solver", c.mkl.solver},       {"p", c.mkl.p},
                {"lambda", c.mkl.lambda},       {"max_iter", c.mkl.max_iter},
                {"tol", c.mkl.tol},             {"train_size", c.mkl.train_size},
                {"max_memory_gb", c.mkl.max_memory_gb}, {"kernels", kernels},
                {"interactions", c.mkl.interactions}, {"max_order", c.mkl.max_order},
                {"centre", c.mkl.centre}};
  out["distributed"] = {{"backend", c.distributed.backend}, {"timeout_s", c.distributed.timeout_s}};
  return out;
}

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
    walked = join_path(walked, part);
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
