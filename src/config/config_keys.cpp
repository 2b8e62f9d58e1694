// The table of config keys (config_keys.hpp) and the parsers of its structured values.
// Defaults live in config.hpp's struct initialisers; a row reads them, it does not repeat
// them.
#include "mmfusion/config/config_keys.hpp"

#include <algorithm>
#include <map>
#include <regex>
#include <type_traits>

#include "config_reader.hpp"
#include "mmfusion/base/files.hpp"

namespace mmfusion {

using nlohmann::json;
using namespace config_detail;

std::string ConfigKey::name() const {
  const auto dot = path.rfind('.');
  return dot == std::string::npos ? path : path.substr(dot + 1);
}

std::string ConfigKey::parent() const {
  const auto dot = path.rfind('.');
  return dot == std::string::npos ? "" : path.substr(0, dot);
}

namespace {

// ---- the structured values -------------------------------------------------------------

// A modality name: an identifier (it becomes part of parameter names), and not the data
// files' "target". The parser and the schema both take it from here.
const std::string kModalityNamePattern =
    std::string("(?!") + kTargetEntry + "$)[A-Za-z_][A-Za-z0-9_]*";

const std::regex& modality_name() {
  static const std::regex re(kModalityNamePattern);
  return re;
}

// Synthetic data needs two modalities (its target has cross-modal terms); file data may
// have one, which is how a single modality's worth is measured.
std::vector<ModalityConfig> parse_modalities(const json* v, const std::string& path,
                                             size_t at_least) {
  if (!v) return DataConfig{}.modalities;
  if (!v->is_array())
    fail(path, "expected a list of {\"name\", \"dim\"} objects, got " + describe(*v));
  if (v->size() < at_least)
    fail(path, "expected at least " + std::to_string(at_least) + " modalities" +
                   (at_least > 1 ? " for synthetic data" : "") + ", got " +
                   std::to_string(v->size()));
  std::vector<ModalityConfig> out;
  std::set<std::string> seen;
  for (size_t i = 0; i < v->size(); ++i) {
    ObjectReader r(&(*v)[i], path + "[" + std::to_string(i) + "]");
    ModalityConfig m;
    const json* name = r.find("name");
    if (!name) fail(r.path("name"), "required (a modality needs a name)");
    m.name = check_string(*name, r.path("name"));
    if (!std::regex_match(m.name, modality_name()))
      fail(r.path("name"), "expected an identifier (letters, digits, '_'; not \"" +
                               std::string(kTargetEntry) + "\"), got \"" + m.name + "\"");
    if (!seen.insert(m.name).second)
      fail(r.path("name"), "duplicate modality name \"" + m.name + "\"");
    const json* dim = r.find("dim");
    if (!dim) fail(r.path("dim"), "required (the modality's feature size)");
    m.dim = check_integer(*dim, r.path("dim"), 1);
    if (const json* seq = r.find("sequence")) m.sequence = check_boolean(*seq, r.path("sequence"));
    const json* max_len = r.find("max_len");
    const json* padding = r.find("padding");
    if ((max_len || padding) && !m.sequence)
      fail(r.path(max_len ? "max_len" : "padding"),
           "only a sequence has one (add \"sequence\": true)");
    if (max_len) m.max_len = check_integer(*max_len, r.path("max_len"), 1, kMaxSequenceSteps);
    if (padding) {
      const std::string side = check_choice(*padding, r.path("padding"), {"back", "front"});
      m.padding = side == "front" ? Padding::Front : Padding::Back;
    }
    r.finish();
    out.push_back(m);
  }
  return out;
}

// A set of at least `at_least` distinct modality names from data.modalities, returned in
// the config's modality order (so that every spelling of a set is one set).
std::vector<std::string> parse_modality_set(const json* names, const std::string& at,
                                            const std::vector<ModalityConfig>& modalities,
                                            size_t at_least, const char* list = "data.modalities") {
  if (!names || !names->is_array() || names->size() < at_least)
    fail(at,
         "expected a list of " +
             std::string(at_least > 1 ? "at least " + std::to_string(at_least) : "one or more") +
             " modality names, got " + (names ? describe(*names) : std::string("nothing")));
  std::set<std::string> wanted;
  for (const auto& n : *names) {
    if (!n.is_string()) fail(at, "expected modality names, got " + describe(n));
    const std::string name = n.get<std::string>();
    const bool known = std::any_of(modalities.begin(), modalities.end(),
                                   [&](const ModalityConfig& m) { return m.name == name; });
    if (!known) fail(at, "no modality named \"" + name + "\" in " + list);
    if (!wanted.insert(name).second) fail(at, "\"" + name + "\" appears twice");
  }
  std::vector<std::string> set;
  for (const auto& m : modalities)
    if (wanted.count(m.name)) set.push_back(m.name);
  return set;
}

// data.synthetic.terms: [{"modalities": [names], "weight": w}, ...]. Each term's set is
// stored in the config's modality order; a set may appear once.
std::vector<TargetTerm> parse_terms(const json& v, const std::string& path,
                                    const std::vector<ModalityConfig>& modalities) {
  if (!v.is_array() || v.empty())
    fail(path, "expected a non-empty list of {\"modalities\": [names], \"weight\": w}, got " +
                   describe(v));
  std::vector<TargetTerm> out;
  std::set<std::vector<std::string>> seen;
  for (size_t i = 0; i < v.size(); ++i) {
    ObjectReader r(&v[i], path + "[" + std::to_string(i) + "]");
    TargetTerm term;
    term.modalities = parse_modality_set(r.find("modalities"), r.path("modalities"), modalities, 1,
                                         "the generator's modalities");
    if (const json* w = r.find("weight")) term.weight = check_positive(*w, r.path("weight"));
    r.finish();
    if (!seen.insert(term.modalities).second)
      fail(r.path("modalities"),
           "the same set of modalities as an earlier term (give it one weight)");
    out.push_back(std::move(term));
  }
  return out;
}

// A list of distinct modality sets of at least 2 modalities each (InTense's and MKL's
// interactions), each in the config's order.
std::vector<std::vector<std::string>> parse_modality_sets(
    const json& sets, const std::string& path, const std::vector<ModalityConfig>& modalities) {
  if (!sets.is_array())
    fail(path, "expected a list of modality-name lists (e.g. [[\"visual\", \"audio\"]]), got " +
                   describe(sets));
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
std::vector<std::vector<std::string>> all_interactions(
    const std::vector<ModalityConfig>& modalities, int64_t max_order) {
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

// model.encoders.<name>: [hidden sizes], or an encoder object {"type": ..., ...}
// (docs/sequences.md), checked against its modality: mlp takes a vector, every other type
// a sequence. hidden defaults to model.encoder_hidden for the pooling types.
EncoderConfig parse_encoder(const json& v, const std::string& at, const ModalityConfig& modality,
                            const std::vector<int64_t>& default_hidden) {
  EncoderConfig e;
  if (v.is_array()) {
    e.hidden = check_sizes(v, at);
  } else if (!v.is_object()) {
    fail(at,
         "expected hidden sizes [n, ...] or an encoder {\"type\": \"mlp\", \"hidden\": [...], "
         "\"batch_norm\": true} (docs/sequences.md has the other types), got " +
             describe(v));
  } else {
    ObjectReader r(&v, at);
    std::vector<std::string> types;
    for (EncoderType t : all_values<EncoderType>()) types.push_back(to_string(t));
    e.type = modality.sequence ? EncoderType::Mean : EncoderType::MLP;
    if (const json* type = r.find("type")) {
      const std::string name = check_choice(*type, r.path("type"), types);
      for (EncoderType t : all_values<EncoderType>())
        if (name == to_string(t)) e.type = t;
    }
    const bool pooled = !takes_sequence(e.type) || e.type == EncoderType::Mean ||
                        e.type == EncoderType::MeanPadded || e.type == EncoderType::Last;
    const bool recurrent = e.type == EncoderType::LSTM || e.type == EncoderType::GRU;
    const bool transformer = e.type == EncoderType::Transformer;
    const std::string kind = std::string("a ") + to_string(e.type) + " encoder";
    // Each key is read only by the types that have it: another type's key is an error.
    auto key = [&](const char* name, bool has) -> const json* {
      const json* value = r.find(name);
      if (value && !has) fail(r.path(name), kind + " has no \"" + name + "\"");
      return value;
    };
    e.hidden = default_hidden;
    if (const json* hidden = r.find("hidden")) {
      if (recurrent)
        e.state = check_integer(*hidden, r.path("hidden"), 1, 65536);
      else if (transformer)
        fail(r.path("hidden"), kind + " has no \"hidden\" (its sizes are width and ff)");
      else
        e.hidden = check_sizes(*hidden, r.path("hidden"));
    }
    if (const json* norm = key("batch_norm", pooled))
      e.batch_norm = check_boolean(*norm, r.path("batch_norm"));
    if (const json* layers = key("layers", recurrent || transformer))
      e.layers = check_integer(*layers, r.path("layers"), 1, 64);
    if (const json* bi = key("bidirectional", recurrent))
      e.bidirectional = check_boolean(*bi, r.path("bidirectional"));
    e.pooling = transformer ? Pooling::Mean : Pooling::Last;
    if (const json* pooling = key("pooling", recurrent || transformer)) {
      const std::string p = check_choice(*pooling, r.path("pooling"),
                                         recurrent ? std::vector<std::string>{"last", "mean"}
                                                   : std::vector<std::string>{"mean", "token"});
      for (Pooling x : all_values<Pooling>())
        if (p == to_string(x)) e.pooling = x;
    }
    if (const json* width = key("width", transformer))
      e.width = check_integer(*width, r.path("width"), 1, 65536);
    if (const json* heads = key("heads", transformer))
      e.heads = check_integer(*heads, r.path("heads"), 1, 1024);
    if (const json* ff = key("ff", transformer)) e.ff = check_integer(*ff, r.path("ff"), 1, 1 << 20);
    if (const json* positions = key("positions", transformer)) {
      const std::string p =
          check_choice(*positions, r.path("positions"), {"sinusoidal", "learned"});
      e.positions = p == "learned" ? Positions::Learned : Positions::Sinusoidal;
    }
    if (const json* dropout = key("dropout", recurrent || transformer))
      e.dropout = check_number(*dropout, r.path("dropout"), 0, 1, true);
    if (const json* out = key("out", recurrent || transformer))
      e.out = check_integer(*out, r.path("out"), 0, 65536);
    r.finish();
    if (transformer && e.width % e.heads != 0)
      fail(r.path("heads"), std::to_string(e.heads) + " heads do not divide width " +
                                std::to_string(e.width));
    if (transformer && e.positions == Positions::Learned && modality.max_len == 0)
      fail(r.path("positions"),
           "learned positions need the modality's max_len (data.modalities: \"" + modality.name +
               "\")");
  }
  if (takes_sequence(e.type) && !modality.sequence)
    fail(v.is_object() ? at + ".type" : at,
         std::string("a ") + to_string(e.type) + " encoder takes a sequence, and \"" +
             modality.name + "\" is a vector (mlp encodes it)");
  if (!takes_sequence(e.type) && modality.sequence)
    fail(v.is_object() ? at + ".type" : at,
         "\"" + modality.name +
             "\" is a sequence: an mlp takes a vector (use mean, mean_padded, last, lstm, gru or "
             "transformer)");
  return e;
}

// The resolved form of one encoder: the shorthand where it says everything (so that earlier
// configs resolve as before), else the type's own keys.
json encoder_json(const EncoderConfig& e) {
  switch (e.type) {
    case EncoderType::MLP:
      if (!e.batch_norm) return json(e.hidden);
      [[fallthrough]];
    case EncoderType::Mean:
    case EncoderType::MeanPadded:
    case EncoderType::Last: {
      json out = {{"type", to_string(e.type)}, {"hidden", e.hidden}};
      if (e.batch_norm) out["batch_norm"] = true;
      return out;
    }
    case EncoderType::LSTM:
    case EncoderType::GRU: {
      json out = {{"type", to_string(e.type)}, {"hidden", e.state},
                  {"layers", e.layers},        {"bidirectional", e.bidirectional},
                  {"pooling", to_string(e.pooling)}, {"out", e.out}};
      if (e.dropout >= 0) out["dropout"] = e.dropout;
      return out;
    }
    case EncoderType::Transformer: {
      json out = {{"type", "transformer"},     {"layers", e.layers},
                  {"width", e.width},          {"heads", e.heads},
                  {"ff", e.ff},                {"positions", to_string(e.positions)},
                  {"pooling", to_string(e.pooling)}, {"out", e.out}};
      if (e.dropout >= 0) out["dropout"] = e.dropout;
      return out;
    }
  }
  return json();
}

std::map<std::string, EncoderConfig> parse_encoders(const json& v, const std::string& at,
                                                    const std::vector<ModalityConfig>& modalities,
                                                    const std::vector<int64_t>& default_hidden) {
  if (!v.is_object()) fail(at, "expected an object {modality: encoder}, got " + describe(v));
  std::map<std::string, EncoderConfig> out;
  for (const auto& item : v.items()) {
    const std::string entry = at + "." + item.key();
    const bool exists =
        std::any_of(modalities.begin(), modalities.end(),
                    [&](const ModalityConfig& mc) { return mc.name == item.key(); });
    if (!exists) {
      std::string names;
      for (const auto& mc : modalities) names += (names.empty() ? "" : ", ") + mc.name;
      fail(entry, "no modality named \"" + item.key() + "\" (modalities: " + names + ")");
    }
    const auto& modality = *std::find_if(
        modalities.begin(), modalities.end(),
        [&](const ModalityConfig& mc) { return mc.name == item.key(); });
    out[item.key()] = parse_encoder(item.value(), entry, modality, default_hidden);
  }
  return out;
}

// data.keys (config.hpp's DataKeys): one key, or the list of keys to follow.
KeyPath parse_key_path(const json& v, const std::string& at) {
  constexpr size_t kMaxDepth = 16;
  KeyPath out;
  if (v.is_string()) {
    out.push_back(v.get<std::string>());
  } else if (v.is_array() && !v.empty() && v.size() <= kMaxDepth) {
    for (const auto& k : v) {
      if (!k.is_string()) fail(at, "expected keys (strings), got " + describe(k));
      out.push_back(k.get<std::string>());
    }
  } else {
    fail(at, "expected a key or a list of 1 to " + std::to_string(kMaxDepth) +
                 " keys (e.g. \"train\" or [\"b'happy'\", \"b'train'\"]), got " + describe(v));
  }
  for (const auto& k : out)
    if (k.empty()) fail(at, "a key is an empty string");
  return out;
}

json key_path_json(const KeyPath& p) {
  return p.size() == 1 ? json(p.front()) : json(p);
}

json key_path_schema() {
  const json key = {{"type", "string"}};
  return {{"anyOf", json::array({key, {{"type", "array"}, {"items", key}, {"minItems", 1}}})}};
}

DataKeys parse_data_keys(const json& v, const std::string& at,
                         const std::vector<ModalityConfig>& modalities) {
  if (!v.is_object())
    fail(at, "expected an object {splits, modalities, lengths, target}, got " + describe(v));
  auto modality = [&](const std::string& name, const std::string& entry) -> const ModalityConfig& {
    const auto it = std::find_if(modalities.begin(), modalities.end(),
                                 [&](const ModalityConfig& m) { return m.name == name; });
    if (it == modalities.end()) {
      std::string names;
      for (const auto& m : modalities) names += (names.empty() ? "" : ", ") + m.name;
      fail(entry, "no modality named \"" + name + "\" (modalities: " + names + ")");
    }
    return *it;
  };
  DataKeys out;
  for (const auto& item : v.items()) {
    const std::string entry = at + "." + item.key();
    if (item.key() == "splits") {
      if (!item.value().is_array() || item.value().size() != 3)
        fail(entry, "expected 3 paths (train, validation, test), got " + describe(item.value()));
      for (size_t i = 0; i < 3; ++i)
        out.splits.push_back(parse_key_path(item.value()[i], entry + "[" + std::to_string(i) + "]"));
    } else if (item.key() == "modalities" || item.key() == "lengths") {
      if (!item.value().is_object())
        fail(entry, "expected an object {modality: path}, got " + describe(item.value()));
      for (const auto& m : item.value().items()) {
        const std::string where = entry + "." + m.key();
        const ModalityConfig& mc = modality(m.key(), where);
        if (item.key() == "lengths" && !mc.sequence)
          fail(where, "\"" + m.key() + "\" is not a sequence (only sequences have lengths)");
        (item.key() == "lengths" ? out.lengths : out.modalities)[m.key()] =
            parse_key_path(m.value(), where);
      }
    } else if (item.key() == "target") {
      out.target = parse_key_path(item.value(), entry);
    } else {
      fail(entry, "unknown key (known: splits, modalities, lengths, target)");
    }
  }
  return out;
}

json data_keys_json(const DataKeys& k) {
  json out = json::object();
  if (!k.splits.empty()) {
    out["splits"] = json::array();
    for (const auto& p : k.splits) out["splits"].push_back(key_path_json(p));
  }
  for (const char* group : {"modalities", "lengths"}) {
    const auto& paths = std::string(group) == "modalities" ? k.modalities : k.lengths;
    if (paths.empty()) continue;
    out[group] = json::object();
    for (const auto& [name, p] : paths) out[group][name] = key_path_json(p);
  }
  if (!k.target.empty()) out["target"] = key_path_json(k.target);
  return out;
}

// mkl.kernels.<kernel>: "default", or a modality name (whose keys default to default's).
KernelConfig& kernel_slot(ExperimentConfig& c, const std::string& slot) {
  return slot == "default" ? c.mkl.default_kernel : c.mkl.kernels[slot];
}
const KernelConfig& kernel_slot(const ExperimentConfig& c, const std::string& slot) {
  return slot == "default" ? c.mkl.default_kernel : kernel_for(c.mkl, slot);
}

constexpr const char* kKernelGroup = "mkl.kernels.<kernel>";

// The rules between the data keys, and num_classes's, which depends on the source
// (data.standardize_target's is its own check).
void check_data(const ExperimentConfig& c, const json& doc) {
  const DataConfig& d = c.data;
  const auto& sy = d.synthetic;
  if (sy.weight_trimodal > 0 && generator_modalities(d).size() < 3)
    fail("data.synthetic.weights.trimodal", "needs at least 3 modalities, the config has " +
                                                std::to_string(generator_modalities(d).size()) +
                                                " (set it to 0)");
  if (sy.stream && sy.generator < 2)
    fail("data.synthetic.stream",
         "needs data.synthetic.generator 2 (generator 1 draws a split in one sequence)");
  if (sy.stream && d.source != DataSource::Synthetic)
    fail("data.synthetic.stream", "only for synthetic data (data.source is \"file\")");
  if (d.source == DataSource::Synthetic && sy.terms.empty() && !sy.moment.enabled() &&
      sy.weight_unimodal + sy.weight_bimodal + sy.weight_trimodal == 0)
    fail("data.synthetic.weights", "at least one weight must be > 0 (the target would be noise)");
  if (d.source == DataSource::Synthetic)
    for (const auto& m : generator_modalities(d)) {
      if (!m.sequence) continue;
      const std::string at = d.synthetic.modalities.empty() ? "data.modalities"
                                                            : "data.synthetic.modalities";
      if (m.max_len < 2)
        fail(at, "\"" + m.name +
                     "\" is a synthetic sequence: it needs \"max_len\" >= 2 (the steps the "
                     "generator draws)");
      if (sy.min_len == 1)
        fail("data.synthetic.min_len",
             "expected 0 or an integer >= 2, got 1 (a pattern over one step has no mean of zero)");
      if (sy.min_len > m.max_len)
        fail("data.synthetic.min_len", std::to_string(sy.min_len) + " is more than \"" + m.name +
                                           "\"'s max_len " + std::to_string(m.max_len));
    }
  if (d.layout != Layout::None && d.source != DataSource::File)
    fail("data.layout", "only for file data (data.source is \"synthetic\")");
  if (!d.keys.empty() && d.source != DataSource::File)
    fail("data.keys", "only for file data (data.source is \"synthetic\")");
  if (d.nonfinite != NonFinite::Error && d.source != DataSource::File)
    fail("data.nonfinite", "only for file data (data.source is \"synthetic\")");
  if (d.source == DataSource::File) {
    if (d.path.empty()) fail("data.path", "required when data.source is \"file\"");
    if (d.layout == Layout::None && !d.keys.empty() && d.keys.splits.empty())
      fail("data.keys",
           "names no \"splits\": with data.layout \"none\", data.keys reads data.path as a pickle "
           "and needs the paths of its train, validation and test splits");
    if (reads_pickle(d) && !(d.val_path.empty() && d.test_path.empty()))
      fail(d.val_path.empty() ? "data.test_path" : "data.val_path",
           std::string("a \"") + (d.layout != Layout::None ? to_string(d.layout) : "data.keys") +
               "\" file holds all three splits in data.path (leave val_path and test_path out)");
    if (d.val_path.empty() && d.val_fraction <= 0)
      fail("data.val_fraction",
           "expected a number in (0, 1) when data.val_path is not given, got " +
               json(d.val_fraction).dump());
    if (d.test_path.empty() && d.test_fraction <= 0)
      fail("data.test_fraction",
           "expected a number in (0, 1) when data.test_path is not given, got " +
               json(d.test_fraction).dump());
    const double taken =
        (d.val_path.empty() ? d.val_fraction : 0) + (d.test_path.empty() ? d.test_fraction : 0);
    if (taken >= 0.9)
      fail("data.val_fraction",
           "val_fraction + test_fraction must leave at least 10% for "
           "training, got " +
               json(taken).dump());
  }
  // File data may leave num_classes out: training infers it from the training labels.
  const bool classification = c.task == Task::Classification;
  const bool inferred = d.source == DataSource::File && !doc.contains("num_classes");
  if (classification && c.num_classes < 2 && !inferred)
    fail("num_classes", "expected an integer >= 2 when task is \"classification\", got " +
                            std::to_string(c.num_classes) +
                            (d.source == DataSource::File
                                 ? " (or leave it out to infer it from the training labels)"
                                 : ""));
  if (!classification && c.num_classes != 0)
    fail("num_classes", "only used when task is \"classification\" (task is \"regression\")");
}

// ---- the rows --------------------------------------------------------------------------

// A field of the config, for const and non-const configs alike.
#define MMF_FIELD(member) \
  [](auto& c, const std::string&) -> auto& { return c.member; }
#define MMF_KERNEL_FIELD(member) \
  [](auto& c, const std::string& slot) -> auto& { return kernel_slot(c, slot).member; }

template <typename Ref>
void bind(ConfigKey& k, Ref ref) {
  using T = std::decay_t<decltype(ref(std::declval<ExperimentConfig&>(), std::string()))>;
  if constexpr (std::is_enum_v<T>) {
    k.get = [ref](const ExperimentConfig& c, const std::string& slot) {
      return json(to_string(ref(c, slot)));
    };
    k.set = [ref](ExperimentConfig& c, const std::string& slot, const json& v) {
      for (T e : all_values<T>())
        if (v.get<std::string>() == to_string(e)) ref(c, slot) = e;
    };
  } else {
    k.get = [ref](const ExperimentConfig& c, const std::string& slot) {
      return json(ref(c, slot));
    };
    k.set = [ref](ExperimentConfig& c, const std::string& slot, const json& v) {
      ref(c, slot) = v.get<T>();
    };
  }
}

template <typename Ref>
ConfigKey row(std::string path, KeyKind kind, Ref ref, std::string description) {
  ConfigKey k;
  k.path = std::move(path), k.kind = kind, k.description = std::move(description);
  bind(k, ref);
  using T = std::decay_t<decltype(ref(std::declval<ExperimentConfig&>(), std::string()))>;
  if constexpr (std::is_enum_v<T>)
    for (T e : all_values<T>()) k.choices.push_back(to_string(e));
  return k;
}

template <typename Ref>
ConfigKey integer(std::string path, Ref ref, double min, double max, std::string description) {
  ConfigKey k = row(std::move(path), KeyKind::Integer, ref, std::move(description));
  k.minimum = min, k.maximum = max;
  return k;
}

// A number >= min (and <= max, or < max when max_open).
template <typename Ref>
ConfigKey number(std::string path, Ref ref, double min, double max, bool max_open,
                 std::string description) {
  ConfigKey k = row(std::move(path), KeyKind::Number, ref, std::move(description));
  k.minimum = min, k.maximum = max, k.exclusive_maximum = max_open;
  return k;
}

template <typename Ref>
ConfigKey positive(std::string path, Ref ref, std::string description) {
  ConfigKey k = row(std::move(path), KeyKind::Number, ref, std::move(description));
  k.minimum = 0, k.exclusive_minimum = true;
  return k;
}

ConfigKey group(std::string path, std::string description, std::string commands = "") {
  ConfigKey k;
  k.path = std::move(path), k.kind = KeyKind::Object, k.description = std::move(description);
  k.commands = std::move(commands);
  return k;
}

ConfigKey special(std::string path, std::string type_text, std::string range_text, json schema,
                  std::string description) {
  ConfigKey k;
  k.path = std::move(path), k.kind = KeyKind::Special, k.description = std::move(description);
  k.type_text = std::move(type_text), k.range_text = std::move(range_text),
  k.special_schema = std::move(schema);
  return k;
}

// Small modifiers, so that a row reads as one statement.
ConfigKey with_default(ConfigKey k, std::string rule,
                       std::function<json(const ExperimentConfig&, const std::string&)> dynamic) {
  k.default_rule = std::move(rule), k.dynamic_default = std::move(dynamic);
  return k;
}
ConfigKey written_when(ConfigKey k, std::function<bool(const ExperimentConfig&)> when) {
  k.written = std::move(when);
  return k;
}
ConfigKey resumable(ConfigKey k) {
  k.resumable = true;
  return k;
}

ConfigKey used_by(ConfigKey k, std::string commands) {
  k.commands = std::move(commands);
  return k;
}

// A value per modality, given as one number for all or as {modality: value} (the others
// keep `fallback`); stored resolved, {modality: value} for every modality.
template <typename T, typename Field>
ConfigKey per_modality_value(std::string path, Field field, double min, double max, T fallback,
                             bool integral, std::string description) {
  const std::string range = (integral ? "integer " : "number ") + format_number(min) + " to " +
                            format_number(max);
  json one = {{"type", integral ? "integer" : "number"}, {"minimum", min}, {"maximum", max}};
  ConfigKey k = special(std::move(path), (integral ? "integer" : "number") + std::string(" or object"),
                        range + ", or {modality: value}",
                        {{"anyOf", json::array({one, {{"type", "object"},
                                                       {"additionalProperties", one}}})}},
                        std::move(description));
  k.parse = [field, min, max, fallback, integral](ExperimentConfig& c, const json* v,
                                                  const std::string& at, const json*) {
    auto& out = field(c);
    out.clear();
    auto value = [&](const json& x, const std::string& where) -> T {
      if (!x.is_number() || (integral && !x.is_number_integer()))
        fail(where, std::string("expected ") + (integral ? "an integer" : "a number") + ", got " +
                        describe(x));
      const double d = x.get<double>();
      if (!(d >= min && d <= max))
        fail(where, "expected " + format_number(min) + " to " + format_number(max) + ", got " +
                        format_number(d));
      return static_cast<T>(d);
    };
    T all = fallback;
    std::map<std::string, T> named;
    if (v && v->is_object()) {
      for (const auto& [name, x] : v->items()) {
        const bool known = std::any_of(c.data.modalities.begin(), c.data.modalities.end(),
                                       [&](const ModalityConfig& m) { return m.name == name; });
        if (!known) fail(at + "." + name, "not a modality of data.modalities");
        named[name] = value(x, at + "." + name);
      }
    } else if (v) {
      all = value(*v, at);
    }
    for (const auto& m : c.data.modalities) out[m.name] = named.count(m.name) ? named[m.name] : all;
  };
  k.get = [field](const ExperimentConfig& c, const std::string&) {
    return json(field(const_cast<ExperimentConfig&>(c)));
  };
  k.default_rule = format_number(double(fallback)) + " for every modality";
  k.per_modality = true;
  return k;
}

template <typename Field>
ConfigKey per_modality_integer(std::string path, Field field, double min, double max,
                               int64_t fallback, std::string description) {
  return per_modality_value<int64_t>(std::move(path), field, min, max, fallback, true,
                                     std::move(description));
}

template <typename Field>
ConfigKey per_modality_number(std::string path, Field field, double fallback,
                              std::string description) {
  return per_modality_value<double>(std::move(path), field, 0, 1, fallback, false,
                                    std::move(description));
}

bool synthetic(const ExperimentConfig& c) { return c.data.source == DataSource::Synthetic; }
bool from_file(const ExperimentConfig& c) { return c.data.source == DataSource::File; }

}  // namespace

json modality_json(const ModalityConfig& m) {
  json out = {{"name", m.name}, {"dim", m.dim}};
  if (!m.sequence) return out;
  out["sequence"] = true;
  if (m.max_len > 0) out["max_len"] = m.max_len;
  out["padding"] = to_string(m.padding);
  return out;
}

namespace {

// data.modalities and data.synthetic.modalities: a list of {name, dim}.
json modalities_schema(int min_items) {
  return {{"type", "array"},
          {"minItems", min_items},
          {"items",
           {{"type", "object"},
            {"properties",
             {{"name",
               {{"type", "string"}, {"pattern", std::string("^") + kModalityNamePattern + "$"}}},
              {"dim", {{"type", "integer"}, {"minimum", 1}}},
              {"sequence", {{"type", "boolean"}, {"default", false}}},
              {"max_len", {{"type", "integer"}, {"minimum", 1}, {"maximum", kMaxSequenceSteps}}},
              {"padding", {{"enum", {"back", "front"}}, {"default", "back"}}}}},
            {"required", {"name", "dim"}},
            {"additionalProperties", false}}}};
}

json sizes_schema() {
  return {{"type", "array"}, {"items", {{"type", "integer"}, {"minimum", 1}}}};
}

// One model.encoders entry: hidden sizes, or the encoder object.
json encoder_schema() {
  std::vector<std::string> types;
  for (EncoderType t : all_values<EncoderType>()) types.push_back(to_string(t));
  const json size = {{"type", "integer"}, {"minimum", 1}};
  json object = {
      {"type", "object"},
      {"properties",
       {{"type", {{"enum", types}}},
        {"hidden", {{"anyOf", json::array({sizes_schema(), size})}}},
        {"batch_norm", {{"type", "boolean"}, {"default", false}}},
        {"layers", size},
        {"bidirectional", {{"type", "boolean"}, {"default", false}}},
        {"pooling", {{"enum", {"last", "mean", "token"}}}},
        {"width", size},
        {"heads", size},
        {"ff", size},
        {"positions", {{"enum", {"sinusoidal", "learned"}}, {"default", "sinusoidal"}}},
        {"dropout", {{"type", "number"}, {"minimum", 0}, {"exclusiveMaximum", 1}}},
        {"out", {{"type", "integer"}, {"minimum", 0}}}}},
      {"additionalProperties", false}};
  return {{"anyOf", json::array({sizes_schema(), object})}};
}

json modality_sets_schema() {
  return {{"type", "array"},
          {"items",
           {{"type", "array"},
            {"minItems", 2},
            {"uniqueItems", true},
            {"items", {{"type", "string"}}}}}};
}

std::vector<ConfigKey> make_table() {
  std::vector<ConfigKey> t;
  const double inf = std::numeric_limits<double>::infinity();

  // ---- top level
  {
    ConfigKey k;
    k.path = "$schema", k.kind = KeyKind::Ignored, k.commands = "editors";
    k.description =
        "the JSON Schema an editor checks this file against (configs/mmfusion.schema.json); mmfusion ignores it";
    k.get = [](const ExperimentConfig&, const std::string&) { return json(); };
    k.written = [](const ExperimentConfig&) { return false; };
    t.push_back(k);
  }
  {
    ConfigKey k = used_by(row("name", KeyKind::String, MMF_FIELD(name),
                              "names the run folder `runs/<name>-<timestamp>`"),
                          "train, sweep, mkl");
    k.pattern = R"((?!\.\.?$)[^/\\]+)";
    k.pattern_message = "expected a non-empty name without '/' (it names the run folder)";
    k.range_text = "non-empty, no `/`";
    t.push_back(k);
  }
  const std::string everywhere = "train, synth, mkl, bench";
  t.push_back(
      used_by(row("task", KeyKind::Choice, MMF_FIELD(task),
                  "classification trains with cross-entropy and reports accuracy and macro-F1"),
              everywhere));
  t.push_back(used_by(
      written_when(
          with_default(
              integer("num_classes", MMF_FIELD(num_classes), 0, double(kMaxClasses),
                      "classification: synthetic labels cut the continuous target into this many "
                      "equally likely classes; file labels must lie in [0, num_classes)"),
              "classification: required (>= 2) with synthetic data; file data may leave it out, "
              "and training then sets it to the training split's largest label + 1",
              nullptr),
          [](const ExperimentConfig& c) {
            return c.task == Task::Classification && c.num_classes > 0;
          }),
      everywhere));
  // ---- data
  {
    ConfigKey k = group("data", "where the samples come from", "train, synth, mkl, bench");
    k.check = check_data;
    t.push_back(k);
  }
  // data.path before data.source, whose default it decides: a config that names a file
  // reads it (a preset of synthetic data takes the field's file by its path alone).
  {
    ConfigKey k = written_when(
        row("data.path", KeyKind::String, MMF_FIELD(data.path),
            "file: the training data (or all data, split by the fractions), or one pickle of the "
            "field's holding all three splits (benchmarks.md)"),
        from_file);
    k.range_text = "required for file data";
    t.push_back(k);
  }
  t.push_back(with_default(
      row("data.source", KeyKind::Choice, MMF_FIELD(data.source), "where the data comes from"),
      "`\"file\"` when `data.path` is given, else `\"synthetic\"`",
      [](const ExperimentConfig& c, const std::string&) {
        return json(to_string(c.data.path.empty() ? DataSource::Synthetic : DataSource::File));
      }));
  t.push_back(with_default(
      row("data.standardize", KeyKind::Choice, MMF_FIELD(data.standardize),
          "per-feature scaling x' = (x - mean) / std fitted on the training split only, kept in every checkpoint and "
          "applied by `eval` and `predict`; `mkl` fits its own on the training points it uses"),
      "`\"zscore\"` for file data", [](const ExperimentConfig& c, const std::string&) {
        return json(to_string(from_file(c) ? Standardize::ZScore : Standardize::None));
      }));
  {
    ConfigKey k = written_when(
        with_default(
            row("data.standardize_target", KeyKind::Boolean, MMF_FIELD(data.standardize_target),
                "regression only: the same scaling for each target column; predictions and metrics are "
                "reported in the target's own units, `loss` and `val_loss` in scaled units"),
            "`true` for file data",
            [](const ExperimentConfig& c, const std::string&) {
              return json(from_file(c) && c.task == Task::Regression);
            }),
        [](const ExperimentConfig& c) { return c.task == Task::Regression; });
    k.check = [](const ExperimentConfig& c, const json&) {
      if (c.data.standardize_target && c.task != Task::Regression)
        fail("data.standardize_target", "only for regression (class labels are not scaled)");
    };
    t.push_back(k);
  }
  {
    ConfigKey k = special(
        "data.modalities", "list of objects",
        ">= 1 entries; synthetic data draw >= 2 (here or in `synthetic.modalities`)",
        modalities_schema(1),
        "`{\"name\": identifier, \"dim\": integer >= 1}` each; names are unique, not `target`, made of letters, digits "
        "and `_` (they become parameter names); a sequence adds `\"sequence\": true` and optionally `\"max_len\"` (steps "
        "kept) and `\"padding\": \"back\" | \"front\"` (sequences.md)");
    k.parse = [](ExperimentConfig& c, const json* v, const std::string& at, const json*) {
      // Synthetic data need 2 modalities in the generator (data.synthetic.modalities'
      // check); the data may keep one of them.
      c.data.modalities = parse_modalities(v, at, 1);
    };
    k.get = [](const ExperimentConfig& c, const std::string&) {
      json out = json::array();
      for (const auto& m : c.data.modalities) out.push_back(modality_json(m));
      return out;
    };
    t.push_back(k);
  }
  t.push_back(
      written_when(integer("data.train_size", MMF_FIELD(data.train_size), 1, inf,
                           "synthetic: training samples (with `synthetic.stream`, per epoch)"),
                   synthetic));
  t.push_back(written_when(
      integer("data.val_size", MMF_FIELD(data.val_size), 1, inf, "synthetic: validation samples"),
      synthetic));
  t.push_back(written_when(
      integer("data.test_size", MMF_FIELD(data.test_size), 1, inf, "synthetic: test samples"),
      synthetic));
  t.push_back(written_when(
      row("data.layout", KeyKind::Choice, MMF_FIELD(data.layout),
          "file: `mmsa`, `multibench` or `lmf` read one pickle of that framework holding all three splits, "
          "modalities named as it names them (benchmarks.md); `none` reads mmfusion's .pt/.npz files, and a "
          ".pkl file as the layout its keys show"),
      from_file));
  {
    ConfigKey k = special(
        "data.keys", "object", "paths of keys; modality names from `data.modalities`",
        {{"type", "object"},
         {"properties",
          {{"splits", {{"type", "array"}, {"items", key_path_schema()}, {"minItems", 3}}},
           {"modalities", {{"type", "object"}, {"additionalProperties", key_path_schema()}}},
           {"lengths", {{"type", "object"}, {"additionalProperties", key_path_schema()}}},
           {"target", key_path_schema()}}},
         {"additionalProperties", false}},
        "file: where a pickle keeps each thing, overriding the layout's names (benchmarks.md): "
        "`splits` (3 paths from the root: train, validation, test), `modalities` and `lengths` "
        "(`{modality: path}` inside a split) and `target`; a path is a key or a list of keys, "
        "e.g. `[\"happy\", \"train\"]`, a key matching a str or bytes key and `\"b'x'\"` a bytes key "
        "only; with layout `none` it reads `path` as a pickle and needs `splits`");
    k.parse = [](ExperimentConfig& c, const json* v, const std::string& at, const json*) {
      if (v) c.data.keys = parse_data_keys(*v, at, c.data.modalities);
    };
    k.get = [](const ExperimentConfig& c, const std::string&) { return data_keys_json(c.data.keys); };
    k.written = [](const ExperimentConfig& c) { return from_file(c) && !c.data.keys.empty(); };
    t.push_back(k);
  }
  t.push_back(written_when(
      row("data.nonfinite", KeyKind::Choice, MMF_FIELD(data.nonfinite),
          "file: a NaN or Inf feature value is an `error` naming the entry and row, or `zero`: put 0 in its "
          "place, log the count per modality and split and write them to `nonfinite.json` in the run "
          "folder (a target's are always an error)"),
      from_file));
  t.push_back(written_when(row("data.val_path", KeyKind::String, MMF_FIELD(data.val_path),
                               "file: validation data; when empty, `val_fraction` of `path`"),
                           from_file));
  t.push_back(written_when(row("data.test_path", KeyKind::String, MMF_FIELD(data.test_path),
                               "file: test data; when empty, `test_fraction` of `path`"),
                           from_file));
  t.push_back(written_when(number("data.val_fraction", MMF_FIELD(data.val_fraction), 0, 1, true,
                                  "file: share of `path` held out for validation"),
                           from_file));
  t.push_back(written_when(number("data.test_fraction", MMF_FIELD(data.test_fraction), 0, 1, true,
                                  "file: share of `path` held out for testing"),
                           from_file));
  t.push_back(
      written_when(group("data.synthetic", "the synthetic generator (data.md)"), synthetic));
  {
    ConfigKey k = special(
        "data.synthetic.modalities", "list of objects",
        ">= 2 entries, holding every entry of `data.modalities`", modalities_schema(2),
        "the modalities the generator draws, as `data.modalities` gives them; the data keep "
        "`data.modalities` alone, whose rows are the same whatever the others (how `attribute` trains a "
        "subset of the modalities on the same data)");
    k.parse = [](ExperimentConfig& c, const json* v, const std::string& at, const json*) {
      c.data.synthetic.modalities = c.data.modalities;
      if (!v) {
        if (synthetic(c) && c.data.modalities.size() < 2)
          fail("data.modalities", "expected at least 2 modalities for synthetic data, got " +
                                      std::to_string(c.data.modalities.size()) +
                                      " (or list the generator's in data.synthetic.modalities)");
        return;
      }
      c.data.synthetic.modalities = parse_modalities(v, at, 2);
      for (const auto& m : c.data.modalities) {
        const auto& all = c.data.synthetic.modalities;
        const auto it = std::find_if(all.begin(), all.end(),
                                     [&](const ModalityConfig& g) { return g.name == m.name; });
        if (it == all.end())
          fail(at, "data.modalities has \"" + m.name + "\", which the generator does not draw");
        if (!(*it == m))
          fail(at, "\"" + m.name + "\" is " + modality_json(*it).dump() + " here and " +
                       modality_json(m).dump() + " in data.modalities");
      }
    };
    k.get = [](const ExperimentConfig& c, const std::string&) {
      json out = json::array();
      for (const auto& m : generator_modalities(c.data)) out.push_back(modality_json(m));
      return out;
    };
    k.written = [](const ExperimentConfig& c) {
      const auto& g = generator_modalities(c.data);
      return g.size() != c.data.modalities.size() ||
             !std::equal(g.begin(), g.end(), c.data.modalities.begin());
    };
    k.default_rule = "`data.modalities`";
    t.push_back(k);
  }
  t.push_back(integer("data.synthetic.latent_dim", MMF_FIELD(data.synthetic.latent_dim), 1, 4096,
                      "latents unique to each modality"));
  t.push_back(integer("data.synthetic.shared_latent_dim",
                      MMF_FIELD(data.synthetic.shared_latent_dim), 0, 4096,
                      "latents shared by the modalities of `shared_by`"));
  {
    ConfigKey k = special(
        "data.synthetic.shared_by", "list of strings", "one or more of the generator's modalities",
        {{"type", "array"},
         {"minItems", 1},
         {"uniqueItems", true},
         {"items", {{"type", "string"}}}},
        "the modalities whose features see the shared latents (the others see their own latents "
        "alone); a term of the shared latents (`shared_weight`) is then redundant between them");
    k.parse = [](ExperimentConfig& c, const json* v, const std::string& at, const json*) {
      if (v)
        c.data.synthetic.shared_by = parse_modality_set(v, at, generator_modalities(c.data), 1,
                                                        "the generator's modalities");
    };
    k.get = [](const ExperimentConfig& c, const std::string&) {
      return json(c.data.synthetic.shared_by);
    };
    k.written = [](const ExperimentConfig& c) { return !c.data.synthetic.shared_by.empty(); };
    k.default_rule = "every modality";
    t.push_back(k);
  }
  t.push_back(number("data.synthetic.feature_noise", MMF_FIELD(data.synthetic.feature_noise), 0,
                     inf, false, "std of the noise added to each feature"));
  t.push_back(number("data.synthetic.target_noise", MMF_FIELD(data.synthetic.target_noise), 0, inf,
                     false, "std of the noise added to the target"));
  {
    auto sequences = [](const ExperimentConfig& c) {
      for (const auto& m : generator_modalities(c.data))
        if (m.sequence) return true;
      return false;
    };
    t.push_back(written_when(
        number("data.synthetic.temporal", MMF_FIELD(data.synthetic.temporal), 0, 1, false,
               "sequences: the fraction of each sequence modality's features written as a pattern over time "
               "(times sqrt(2) cos(2 pi t / length)), which a mean over the steps cancels; the others are the "
               "same at every step (sequences.md)"),
        sequences));
    t.push_back(written_when(
        integer("data.synthetic.min_len", MMF_FIELD(data.synthetic.min_len), 0,
                double(kMaxSequenceSteps),
                "sequences: the fewest steps of a row, lengths uniform from there to the modality's `max_len`; "
                "0: half of `max_len`, at least 2"),
        sequences));
  }
  t.push_back(integer(
      "data.synthetic.generator", MMF_FIELD(data.synthetic.generator), 1, 2,
      "which generator draws the samples: 2 keys each row's randomness by its index (float32, "
      "threaded, the same rows on any thread count); 1 is the first one (float64, one sequence per "
      "split), which checkpoints written before generator 2 are read with"));
  t.push_back(row(
      "data.synthetic.stream", KeyKind::Boolean, MMF_FIELD(data.synthetic.stream),
      "make each training batch from (seed, epoch, rows) when it is needed instead of holding a training "
      "split: constant memory whatever `train_size`, fresh samples every epoch, exact resume; needs "
      "`generator` 2"));
  {
    ConfigKey k = special(
        "data.synthetic.terms", "list of objects", "non-empty; each set of modalities once",
        {{"type", "array"},
         {"minItems", 1},
         {"items",
          {{"type", "object"},
           {"properties",
            {{"modalities",
              {{"type", "array"},
               {"minItems", 1},
               {"uniqueItems", true},
               {"items", {{"type", "string"}}}}},
             {"weight",
              {{"type", "number"}, {"exclusiveMinimum", 0}, {"default", TargetTerm{}.weight}}}}},
           {"required", {"modalities"}},
           {"additionalProperties", false}}}},
        "the target as a sum of terms `{\"modalities\": [names], \"weight\": w > 0}` (weight 1 when left out), each "
        "the product over its modalities of a fixed random projection of that modality's latents: a pure "
        "interaction of unit variance. Not together with `weights` (`--set data.synthetic.weights=null` drops "
        "them). See explain.md");
    k.parse = [](ExperimentConfig& c, const json* v, const std::string& at, const json* siblings) {
      if (!v) return;
      if (siblings && siblings->contains("weights") && !(*siblings)["weights"].is_null())
        fail(
            at,
            "give either terms or weights, not both (weights is shorthand for a fixed set of terms; "
            "--set data.synthetic.weights=null drops them)");
      c.data.synthetic.terms = parse_terms(*v, at, generator_modalities(c.data));
    };
    k.get = [](const ExperimentConfig& c, const std::string&) {
      json terms = json::array();
      for (const auto& term : c.data.synthetic.terms)
        terms.push_back({{"modalities", term.modalities}, {"weight", term.weight}});
      return terms;
    };
    k.written = [](const ExperimentConfig& c) { return !c.data.synthetic.terms.empty(); };
    k.default_rule = "none: the `weights` below";
    t.push_back(k);
  }
  {
    ConfigKey k = special(
        "data.synthetic.moment", "object", "two sequence modalities of the same `max_len`",
        {{"type", "object"},
         {"properties", {{"marker", {{"type", "string"}}}, {"content", {{"type", "string"}}}}},
         {"required", {"marker", "content"}},
         {"additionalProperties", false}},
        "the target as `{\"marker\": name, \"content\": name}`: the marker's steps are noise but one, "
        "which marks a moment; the target is a fixed projection of the content's step at that "
        "moment, less its mean over the steps, so neither modality alone tells anything about it "
        "(data.md). Not together with `terms` or `weights`");
    k.parse = [](ExperimentConfig& c, const json* v, const std::string& at, const json* siblings) {
      if (!v) return;
      for (const char* other : {"terms", "weights"})
        if (siblings && siblings->contains(other) && !(*siblings)[other].is_null())
          fail(at, std::string("give either moment or ") + other +
                       ", not both (the moment is the whole target)");
      ObjectReader r(v, at);
      MomentConfig moment;
      const auto& all = generator_modalities(c.data);
      const ModalityConfig* found[2] = {nullptr, nullptr};
      const char* roles[2] = {"marker", "content"};
      for (int i = 0; i < 2; ++i) {
        const json* name = r.find(roles[i]);
        const std::string where = r.path(roles[i]);
        if (!name) fail(where, "required (a sequence modality's name)");
        if (!name->is_string()) fail(where, "expected a modality name, got " + describe(*name));
        const std::string text = name->get<std::string>();
        for (const auto& m : all)
          if (m.name == text) found[i] = &m;
        if (!found[i]) fail(where, "no modality named \"" + text + "\" in the generator's modalities");
        if (!found[i]->sequence)
          fail(where, "\"" + text + "\" is not a sequence (the moment is one of its steps)");
        (i == 0 ? moment.marker : moment.content) = text;
      }
      r.finish();
      if (moment.marker == moment.content)
        fail(r.path("content"), "the same modality as the marker (the moment needs two)");
      if (found[0]->max_len != found[1]->max_len)
        fail(at, "\"" + moment.marker + "\" has max_len " + std::to_string(found[0]->max_len) +
                     " and \"" + moment.content + "\" " + std::to_string(found[1]->max_len) +
                     " (the moment is a step of both: give them the same max_len)");
      c.data.synthetic.moment = moment;
    };
    k.get = [](const ExperimentConfig& c, const std::string&) {
      const auto& m = c.data.synthetic.moment;
      return json{{"marker", m.marker}, {"content", m.content}};
    };
    k.written = [](const ExperimentConfig& c) { return c.data.synthetic.moment.enabled(); };
    k.default_rule = "none";
    t.push_back(k);
  }
  {
    ConfigKey k = written_when(
        number(
            "data.synthetic.shared_weight", MMF_FIELD(data.synthetic.shared_weight), 0, inf, false,
            "with `terms`: the weight of a unit-variance linear term of the shared latents, which "
            "every modality of `shared_by` observes (redundant information); 0 = none"),
        [](const ExperimentConfig& c) { return !c.data.synthetic.terms.empty(); });
    k.check = [](const ExperimentConfig& c, const json&) {
      const auto& sy = c.data.synthetic;
      if (sy.shared_weight > 0 && sy.terms.empty())
        fail("data.synthetic.shared_weight",
             "only with data.synthetic.terms (the weights' unimodal part has a term of the shared "
             "latents already)");
      if (sy.shared_weight > 0 && sy.shared_latent_dim == 0)
        fail("data.synthetic.shared_weight", "needs data.synthetic.shared_latent_dim > 0");
    };
    t.push_back(k);
  }
  {
    ConfigKey k =
        written_when(group("data.synthetic.weights",
                           "the target's unimodal, bimodal and trimodal parts "
                           "(shorthand for a fixed set of terms); null: none"),
                     [](const ExperimentConfig& c) {
                       return c.data.synthetic.terms.empty() && !c.data.synthetic.moment.enabled();
                     });
    k.nullable = true;
    t.push_back(k);
  }
  t.push_back(number("data.synthetic.weights.unimodal", MMF_FIELD(data.synthetic.weight_unimodal),
                     0, inf, false, "weight of the unit-variance unimodal part"));
  t.push_back(number("data.synthetic.weights.bimodal", MMF_FIELD(data.synthetic.weight_bimodal), 0,
                     inf, false, "weight of the unit-variance bimodal part"));
  t.push_back(with_default(
      number("data.synthetic.weights.trimodal", MMF_FIELD(data.synthetic.weight_trimodal), 0, inf,
             false, "weight of the unit-variance trimodal part; > 0 needs 3 or more modalities"),
      "`0` with fewer than 3 modalities", [](const ExperimentConfig& c, const std::string&) {
        return json(generator_modalities(c.data).size() >= 3 ? SyntheticConfig{}.weight_trimodal
                                                             : 0.0);
      }));

  // ---- top level again: after data, where the parser has always read them (the order
  // in which errors are found)
  t.push_back(used_by(
      integer(
          "seed", MMF_FIELD(seed), 0, inf,
          "data generation and splits; model initialisation, dropout and shuffling unless `train.seed` is given"),
      everywhere));
  {
    ConfigKey k = used_by(
        row("device", KeyKind::String, MMF_FIELD(device),
            "`auto`: CUDA when LibTorch sees a GPU, else the CPU; asking for CUDA where there is "
            "none is a config error, never a silent fallback"),
        "train, mkl, bench");
    k.pattern = "auto|cpu|cuda|cuda:[0-9]+";
    k.pattern_message = "expected \"auto\", \"cpu\", \"cuda\" or \"cuda:N\"";
    k.range_text = "`auto`, `cpu`, `cuda`, `cuda:N`";
    t.push_back(resumable(k));
  }
  t.push_back(resumable(used_by(
      integer("threads", MMF_FIELD(threads), 0, 1024,
              "CPU threads for LibTorch; 0 = the cores other processes leave free, re-checked "
              "as training runs (docs/performance.md); a number fixes the "
              "count, and with it the results' last bits"),
      "train, synth, mkl, bench")));

  // ---- model
  t.push_back(group("model", "the fusion model", "train, bench"));
  t.push_back(row("model.type", KeyKind::Choice, MMF_FIELD(model.type),
                  "the fusion model; all share the encoders below"));
  t.push_back(integer("model.rank", MMF_FIELD(model.rank), 1, inf, "LMF rank r"));
  t.push_back(row(
      "model.rank_weighting", KeyKind::Choice, MMF_FIELD(model.rank_weighting),
      "LMF: learned (1, rank) weights as in the reference code, or the paper's plain sum over rank"));
  t.push_back(number("model.dropout", MMF_FIELD(model.dropout), 0, 1, true,
                     "dropout after every encoder layer"));
  t.push_back(row(
      "model.activation", KeyKind::Choice, MMF_FIELD(model.activation),
      "the activation after every encoder and post-fusion Linear layer; the hand-written LMF pass "
      "implements `relu` only (with `tanh` LMF trains through autograd)"));
  t.push_back(integer("model.fused_dim", MMF_FIELD(model.fused_dim), 1, 1 << 20,
                      "LMF output size d_out (the fused vector)"));
  t.push_back(integer(
      "model.output_dim", MMF_FIELD(model.output_dim), 0, double(kMaxClasses),
      "prediction size; 0 = the target's number of columns (resolved at training time and stored)"));
  {
    ConfigKey k = row(
        "model.encoder_hidden", KeyKind::Sizes, MMF_FIELD(model.encoder_hidden),
        "hidden sizes of every modality's MLP encoder; the last is h_m's size; `[]` = identity encoder");
    t.push_back(k);
  }
  t.push_back(row("model.post_hidden", KeyKind::Sizes, MMF_FIELD(model.post_hidden),
                  "TFN and concat: hidden sizes of the post-fusion MLP"));
  t.push_back(row("model.late_combine", KeyKind::Choice, MMF_FIELD(model.late_combine),
                  "late fusion: how the per-modality heads' outputs are combined"));
  t.push_back(integer(
      "model.max_fused_size", MMF_FIELD(model.max_fused_size), 1, inf,
      "TFN: refuse an outer product prod(d_m + 1) larger than this (the error says what it would "
      "cost); InTense: refuse a larger interaction block"));
  {
    ConfigKey k = special(
        "model.encoders", "object", "keys are modality names",
        {{"type", "object"}, {"additionalProperties", encoder_schema()}},
        "per-modality encoders overriding `encoder_hidden`: hidden sizes, e.g. `{\"text\": [64]}`, "
        "or `{\"type\": \"mlp\", \"hidden\": [...], \"batch_norm\": true}` (`hidden` defaults to "
        "`encoder_hidden`; `batch_norm` normalises the modality's input first, as the LMF paper's "
        "audio and visual subnets do); a sequence's types are `mean`, `mean_padded`, `last`, `lstm`, "
        "`gru` and `transformer` (sequences.md; default: `mean` of `encoder_hidden`)");
    k.parse = [](ExperimentConfig& c, const json* v, const std::string& at, const json*) {
      if (v) c.model.encoders = parse_encoders(*v, at, c.data.modalities, c.model.encoder_hidden);
    };
    k.get = [](const ExperimentConfig& c, const std::string&) {
      json out = json::object();
      for (const auto& [name, e] : c.model.encoders) out[name] = encoder_json(e);
      return out;
    };
    t.push_back(k);
  }
  t.push_back(group("model.intense", "InTense (intense.md)"));
  t.push_back(integer(
      "model.intense.latent_dim", MMF_FIELD(model.intense.latent_dim), 1, 4096,
      "size of each modality's projection (Linear + batch norm) from which the interaction blocks are "
      "built; a block of k modalities has latent_dim^k columns"));
  t.push_back(number(
      "model.intense.p", MMF_FIELD(model.intense.p), 1, 100, false,
      "the p of the relevance scores' unit p-norm and of the block regulariser (q = 2p/(p+1))"));
  t.push_back(number("model.intense.reg", MMF_FIELD(model.intense.reg), 0, inf, false,
                     "weight of the block regulariser added to the training loss; 0: none"));
  {
    ConfigKey k = special(
        "model.intense.interactions", "list of lists of names",
        "each a set of >= 2 modality names, no set twice", modality_sets_schema(),
        "the modality sets with an interaction block (`[]`: unimodal blocks only); stored resolved, "
        "in the config's modality order");
    k.parse = [](ExperimentConfig& c, const json* v, const std::string& at, const json*) {
      const auto& modalities = c.data.modalities;
      c.model.intense.interactions =
          v ? parse_modality_sets(*v, at, modalities)
            : all_interactions(modalities, modalities.size() == 3 ? 3 : 2);
    };
    k.get = [](const ExperimentConfig& c, const std::string&) {
      return json(c.model.intense.interactions);
    };
    k.default_rule = "every pair of modalities, and the full set with exactly 3";
    t.push_back(k);
  }

  t.push_back(group("model.mult", "MulT, the Multimodal Transformer (mult.md)"));
  t.push_back(integer("model.mult.width", MMF_FIELD(model.mult.width), 1, 4096,
                      "d: every modality's Conv1d projection and every cross-modal layer's width"));
  t.push_back(integer("model.mult.heads", MMF_FIELD(model.mult.heads), 1, 256,
                      "attention heads of every layer; must divide `width`"));
  t.push_back(integer("model.mult.layers", MMF_FIELD(model.mult.layers), 1, 64,
                      "layers of each cross-modal transformer (target × source)"));
  t.push_back(integer("model.mult.memory_layers", MMF_FIELD(model.mult.memory_layers), 0, 64,
                      "layers of each target's self-attention transformer over its concatenated "
                      "cross-modal outputs; 0: none"));
  t.push_back(per_modality_integer(
      "model.mult.kernel", [](ExperimentConfig& c) -> auto& { return c.model.mult.kernel; }, 1, 64, MultConfig::kKernel,
      "the Conv1d's kernel size, one number for every modality or `{modality: size}`"));
  t.push_back(row("model.mult.causal", KeyKind::Boolean, MMF_FIELD(model.mult.causal),
                  "a query step attends only to source steps at or before its own time (by "
                  "position over the padded lengths: j / T_source <= i / T_target)"));
  {
    ConfigKey k = row("model.mult.pool", KeyKind::String, MMF_FIELD(model.mult.pool),
                      "`last`: each target's last valid step; `mean`: the mean of its valid steps");
    k.pattern = "last|mean";
    k.pattern_message = "expected \"last\" or \"mean\"";
    k.range_text = "`last`, `mean`";
    t.push_back(k);
  }
  t.push_back(group("model.mult.dropout", "MulT's dropouts"));
  t.push_back(per_modality_number(
      "model.mult.dropout.attention",
      [](ExperimentConfig& c) -> auto& { return c.model.mult.attention_dropout; },
      MultConfig::kAttentionDropout,
      "attention dropout, one number or `{modality: p}`: a modality's value serves the "
      "cross-modal transformers it is the source of and its own memory transformer"));
  t.push_back(number("model.mult.dropout.relu", MMF_FIELD(model.mult.relu_dropout), 0, 1, true,
                     "dropout after the feed-forward ReLU"));
  t.push_back(number("model.mult.dropout.embedding", MMF_FIELD(model.mult.embedding_dropout), 0, 1,
                     true, "dropout of the scaled, position-encoded inputs of every transformer"));
  t.push_back(number("model.mult.dropout.residual", MMF_FIELD(model.mult.residual_dropout), 0, 1,
                     true, "dropout of each sublayer's output before its residual sum"));
  t.push_back(per_modality_number(
      "model.mult.dropout.input",
      [](ExperimentConfig& c) -> auto& { return c.model.mult.input_dropout; },
      MultConfig::kInputDropout,
      "dropout of a modality's input features, one number or `{modality: p}` (MMSA: text 0.5)"));
  t.push_back(number("model.mult.dropout.output", MMF_FIELD(model.mult.output_dropout), 0, 1, true,
                     "dropout inside the head's residual block"));
  t.push_back(row("model.mult.mmsa_compat", KeyKind::Boolean, MMF_FIELD(model.mult.mmsa_compat),
                  "MMSA's MulT: no key masks (padded steps are attended to), the padded last step, "
                  "a Conv1d without padding, MMSA's causal mask; exactly 3 modalities, taken as text, "
                  "audio, vision in the config's order (mult.md says why it is off)"));
  t.push_back(row("model.mult.unimodal", KeyKind::Boolean, MMF_FIELD(model.mult.unimodal),
                  "with one modality, the paper's unimodal ablation: self-attention in place of "
                  "the cross-modal stack (attribute sets it for its single-modality runs); "
                  "false: one modality is an error. No effect with 2 or more"));

  // ---- train
  t.push_back(group("train", "the optimisation", "train, bench"));
  t.push_back(with_default(
      integer("train.seed", MMF_FIELD(train.seed), 0, inf,
              "model initialisation, dropout and the epochs' shuffles; the data's draws and splits "
              "follow the top-level `seed` (so runs that differ here see the same data)"),
      "the top-level `seed`",
      [](const ExperimentConfig& c, const std::string&) { return json(c.seed); }));
  t.push_back(resumable(integer("train.epochs", MMF_FIELD(train.epochs), 1, 1000000,
                                "epochs to train (resume may raise it)")));
  t.push_back(integer("train.batch_size", MMF_FIELD(train.batch_size), 1, inf,
                      "training batch size (the last batch of an epoch may be smaller)"));
  t.push_back(used_by(integer("train.eval_batch_size", MMF_FIELD(train.eval_batch_size), 1, inf,
                              "batch size for validation, test, eval and predict"),
                      "train"));
  t.push_back(row("train.optimizer", KeyKind::Choice, MMF_FIELD(train.optimizer), "the optimizer"));
  t.push_back(positive("train.lr", MMF_FIELD(train.lr), "learning rate"));
  t.push_back(number(
      "train.factor_lr", MMF_FIELD(train.factor_lr), 0, inf, false,
      "LMF factors' own learning rate (a second parameter group, as in the reference code); 0 = `lr`"));
  t.push_back(number("train.weight_decay", MMF_FIELD(train.weight_decay), 0, inf, false,
                     "L2 (adam, sgd) or decoupled (adamw) weight decay"));
  t.push_back(number("train.momentum", MMF_FIELD(train.momentum), 0, 1, true, "sgd only"));
  t.push_back(with_default(
      row("train.loss", KeyKind::Choice, MMF_FIELD(train.loss),
          "mean over all elements; `cross_entropy` exactly when task is classification"),
      "`\"cross_entropy\"` for classification", [](const ExperimentConfig& c, const std::string&) {
        return json(
            to_string(c.task == Task::Classification ? Loss::CrossEntropy : TrainConfig{}.loss));
      }));
  t.push_back(positive("train.huber_delta", MMF_FIELD(train.huber_delta), "huber only"));
  t.push_back(number("train.grad_clip", MMF_FIELD(train.grad_clip), 0, inf, false,
                     "clip the global gradient norm to this; 0 = off"));
  t.push_back(number(
      "train.modality_dropout", MMF_FIELD(train.modality_dropout), 0, 1, true,
      "each modality of each training row dropped with this probability and replaced by a learned "
      "missing encoding (one per modality); such a model reads files without a modality, and sequence "
      "rows of length 0, as missing (robustness.md); 0 = off"));
  t.push_back(resumable(integer(
      "train.patience", MMF_FIELD(train.patience), 0, inf,
      "early stopping: stop when the validation loss has not improved for this many epochs; 0 = off")));
  {
    ConfigKey k = row(
        "train.flat_optimizer", KeyKind::Boolean, MMF_FIELD(train.flat_optimizer),
        "adam/adamw over one flat parameter buffer (LibTorch's arithmetic, far fewer operations); "
        "`false` uses torch::optim; a checkpoint resumes only with the setting it was trained with");
    k.old_name = "fused_optimizer";
    t.push_back(k);
  }
  {
    ConfigKey k = row(
        "train.handwritten_step", KeyKind::Boolean, MMF_FIELD(train.handwritten_step),
        "LMF on the CPU: the forward and backward pass written out by hand instead of autograd, in "
        "training and evaluation, where it implements the model exactly (ReLU encoders)");
    k.old_name = "fused_step";
    t.push_back(k);
  }
  t.push_back(resumable(
      row("train.cuda_graphs", KeyKind::Boolean, MMF_FIELD(train.cuda_graphs),
          "CUDA: the whole training step captured once per batch size as a CUDA graph and "
          "replayed (with `flat_optimizer` and adam/adamw in one process; gpu.md); may change "
          "on resume")));
  t.push_back(resumable(
      row("train.tf32", KeyKind::Boolean, MMF_FIELD(train.tf32),
          "CUDA: float32 matrix products may run on TF32 tensor cores (inputs rounded to 10 "
          "mantissa bits; gpu.md); may change on resume")));

  // ---- mkl
  t.push_back(group("mkl", "multiple kernel learning (mkl.md)", "mkl"));
  t.push_back(
      row("mkl.solver", KeyKind::Choice, MMF_FIELD(mkl.solver),
          "`average`: uniform weights (the baseline); `lp`: lp-norm MKL; `simple`: SimpleMKL"));
  t.push_back(
      number("mkl.p", MMF_FIELD(mkl.p), 1, inf, false, "lp: the norm of the weight constraint"));
  t.push_back(positive("mkl.lambda", MMF_FIELD(mkl.lambda), "kernel ridge regularisation"));
  t.push_back(integer("mkl.max_iter", MMF_FIELD(mkl.max_iter), 1, 1000000,
                      "iterations of the weight learner"));
  t.push_back(positive(
      "mkl.tol", MMF_FIELD(mkl.tol),
      "lp: relative objective change to stop at; simple: KKT gap relative to the largest gradient"));
  t.push_back(integer("mkl.train_size", MMF_FIELD(mkl.train_size), 0, inf,
                      "training points used (the first ones of the training split); 0 = all"));
  t.push_back(positive("mkl.max_memory_gb", MMF_FIELD(mkl.max_memory_gb),
                       "refuse a problem whose kernel matrices would need more"));
  t.push_back(integer("mkl.max_order", MMF_FIELD(mkl.max_order), 2, 16,
                      "the largest set `\"all\"` stands for in `interactions`"));
  {
    json sets = modality_sets_schema();
    ConfigKey k = special(
        "mkl.interactions", "`\"all\"` or list of lists of names",
        "each a set of >= 2 modality names, no set twice", {{"anyOf", {{{"const", "all"}}, sets}}},
        "product kernels beside the one kernel per modality: the listed sets, or every set of 2 to "
        "`max_order` modalities; `[]`: the additive model; stored resolved");
    k.parse = [](ExperimentConfig& c, const json* v, const std::string& at, const json*) {
      if (!v) return;
      if (v->is_string() && v->get<std::string>() != "all")
        fail(at, "expected \"all\" or a list of modality-name lists, got " + describe(*v));
      c.mkl.interactions = v->is_string() ? all_interactions(c.data.modalities, c.mkl.max_order)
                                          : parse_modality_sets(*v, at, c.data.modalities);
    };
    k.get = [](const ExperimentConfig& c, const std::string&) { return json(c.mkl.interactions); };
    t.push_back(k);
  }
  t.push_back(row("mkl.split_gamma", KeyKind::Boolean, MMF_FIELD(mkl.split_gamma),
                  "product kernels: each RBF member of a product over |S| modalities at its "
                  "gamma / |S|, since a product of RBF kernels adds their gammas; false keeps "
                  "each member's own gamma"));
  t.push_back(with_default(row("mkl.centre", KeyKind::Boolean, MMF_FIELD(mkl.centre),
                               "ANOVA centring of every base kernel on the training points"),
                           "`true` with interactions",
                           [](const ExperimentConfig& c, const std::string&) {
                             return json(!c.mkl.interactions.empty());
                           }));
  {
    ConfigKey k =
        special("mkl.kernels", "object", "`default` and modality names", nullptr,
                "the kernels: `default` for every modality, `<modality>` overrides keys for one");
    k.parse = [](ExperimentConfig& c, const json* v, const std::string& at, const json*) {
      ObjectReader r(v, at);
      read_group(kKernelGroup, r.find("default"), r.path("default"), "default", c, nullptr, json());
      for (const auto& m : c.data.modalities)
        if (const json* own = r.find(m.name)) {
          c.mkl.kernels[m.name] = c.mkl.default_kernel;
          read_group(kKernelGroup, own, r.path(m.name), m.name, c, nullptr, json());
        }
      r.finish();
    };
    k.get = [](const ExperimentConfig& c, const std::string&) {
      json out = {{"default", write_group(kKernelGroup, c, "default")}};
      for (const auto& entry : c.mkl.kernels)
        out[entry.first] = write_group(kKernelGroup, c, entry.first);
      return out;
    };
    t.push_back(k);
  }
  t.push_back(group(kKernelGroup, "one kernel; a modality's keys default to `default`'s"));
  t.push_back(
      row("mkl.kernels.<kernel>.type", KeyKind::Choice, MMF_KERNEL_FIELD(type),
          "`linear`: x.z; `polynomial`: (x.z / dim + coef0)^degree; `rbf`: exp(-gamma |x - z|^2)"));
  t.push_back(number(
      "mkl.kernels.<kernel>.gamma", MMF_KERNEL_FIELD(gamma), 0, inf, false,
      "rbf; 0 = the median heuristic: `gamma_scale` / median of the pairwise squared distances of (up "
      "to 1000) training points"));
  t.push_back(positive(
      "mkl.kernels.<kernel>.gamma_scale", MMF_KERNEL_FIELD(gamma_scale),
      "rbf with the median heuristic: a product of RBF kernels adds their gammas, so its members "
      "may need wider kernels"));
  t.push_back(
      integer("mkl.kernels.<kernel>.degree", MMF_KERNEL_FIELD(degree), 1, 10, "polynomial"));
  t.push_back(
      number("mkl.kernels.<kernel>.coef0", MMF_KERNEL_FIELD(coef0), 0, inf, false, "polynomial"));
  t.push_back(row(
      "mkl.kernels.<kernel>.normalize", KeyKind::Choice, MMF_KERNEL_FIELD(normalize),
      "`unit_diagonal`: K(x,z) / sqrt(K(x,x) K(z,z)) (RBF already is); `unit_trace`: divided by the "
      "mean of the training diagonal"));
  for (auto& k : t)
    if (k.path.rfind(std::string(kKernelGroup) + ".", 0) == 0)
      k.default_rule = "`mkl.kernels.default`'s, for a modality";

  // ---- distributed
  t.push_back(group("distributed",
                    "several processes (distributed.md); used only when WORLD_SIZE > 1",
                    "train (several processes)"));
  t.push_back(row(
      "distributed.backend", KeyKind::Choice, MMF_FIELD(distributed.backend),
      "`auto`: Gloo (NCCL is not wired for LibTorch 2.x yet); `gloo` is an error in a build without "
      "Gloo's headers"));
  t.push_back(
      positive("distributed.timeout_s", MMF_FIELD(distributed.timeout_s),
               "joining the group and every collective fail after this long without the peers"));

  // ---- metrics
  t.push_back(group("metrics", "what results.json and metrics.jsonl report (metrics.md)",
                    "train, eval, mkl"));
  t.push_back(resumable(row(
      "metrics.set", KeyKind::Choice, MMF_FIELD(metrics.set),
      "metrics beside the default ones: `msa`, the sentiment benchmarks' as MMSA computes them "
      "(acc2_has0, f1_has0, acc2_non0, f1_non0, acc7, acc5, corr; classification adds weighted_f1); "
      "`sims`, CH-SIMS's fixed bins (sims_acc2, sims_acc3, sims_acc5, sims_f1, sims_mae, sims_corr)")));

  // A key without its own commands has its group's.
  for (auto& k : t)
    for (std::string p = k.parent(); k.commands.empty() && !p.empty();) {
      const auto it =
          std::find_if(t.begin(), t.end(), [&](const ConfigKey& g) { return g.path == p; });
      if (it != t.end()) k.commands = it->commands;
      const auto dot = p.rfind('.');
      p = dot == std::string::npos ? "" : p.substr(0, dot);
    }
  return t;
}

#undef MMF_FIELD
#undef MMF_KERNEL_FIELD

}  // namespace

const std::vector<ConfigKey>& config_keys() {
  static const std::vector<ConfigKey> table = make_table();
  return table;
}

std::vector<const ConfigKey*> keys_under(const std::string& parent) {
  std::vector<const ConfigKey*> out;
  for (const auto& k : config_keys())
    if (k.parent() == parent) out.push_back(&k);
  return out;
}

const ConfigKey* find_key(const std::string& path) {
  for (const auto& k : config_keys())
    if (k.path == path) return &k;
  return nullptr;
}

json key_default(const ConfigKey& key) {
  if (key.kind == KeyKind::Object || key.kind == KeyKind::Ignored) return nullptr;
  static const ExperimentConfig built_in = [] {
    // Every key at its default: the walker alone (the rules between keys only refuse).
    ExperimentConfig c;
    const json empty = json::object();
    read_group("", &empty, "", "", c, nullptr, empty);
    return c;
  }();
  // A structured value the built-in config leaves out (data.synthetic.terms) has none.
  if (key.kind == KeyKind::Special && key.written && !key.written(built_in)) return nullptr;
  return key.get(built_in, key.path.rfind(std::string(kKernelGroup), 0) == 0 ? "default" : "");
}

// The walker of the table: reads and writes a group of keys (config_reader.hpp).
namespace config_detail {

namespace {

// A present value of a plain key, checked against its row: the value to store.
json checked(const ConfigKey& k, const json& v, const std::string& at) {
  switch (k.kind) {
    case KeyKind::Integer:
      return check_integer(v, at, static_cast<int64_t>(k.minimum),
                           std::isfinite(k.maximum) ? static_cast<int64_t>(k.maximum) : INT64_MAX);
    case KeyKind::Number:
      return k.exclusive_minimum ? check_positive(v, at)
                                 : check_number(v, at, k.minimum, k.maximum, k.exclusive_maximum);
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

void read_group(const std::string& group, const json* j, const std::string& at,
                const std::string& slot, ExperimentConfig& config,
                std::vector<std::string>* deprecations, const json& doc) {
  ObjectReader r(j, at);
  for (const ConfigKey* k : keys_under(group)) {
    const std::string name = k->name();
    if (k->kind == KeyKind::Ignored) {
      if (const json* v = r.find_unlisted(name)) check_string(*v, r.path(name));
      continue;
    }
    const json* v =
        k->old_name.empty() ? r.find(name) : r.find_renamed(name, k->old_name, deprecations);
    switch (k->kind) {
      case KeyKind::Object:
        read_group(k->path, v && k->nullable && v->is_null() ? nullptr : v, r.path(name), slot,
                   config, deprecations, doc);
        break;
      case KeyKind::Special: k->parse(config, v, r.path(name), j); break;
      default:
        if (v)
          k->set(config, slot, checked(*k, *v, r.path(name)));
        else if (k->dynamic_default)
          k->set(config, slot, k->dynamic_default(config, slot));
    }
    if (k->check) k->check(config, doc);
  }
  r.finish();
}

json write_group(const std::string& group, const ExperimentConfig& config,
                 const std::string& slot) {
  json out = json::object();
  for (const ConfigKey* k : keys_under(group)) {
    if (k->kind == KeyKind::Ignored || (k->written && !k->written(config))) continue;
    out[k->name()] =
        k->kind == KeyKind::Object ? write_group(k->path, config, slot) : k->get(config, slot);
  }
  return out;
}

}  // namespace config_detail

}  // namespace mmfusion
