#include "mmfusion/training/checkpoint.hpp"

#include <cmath>
#include <filesystem>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/io/file_safety.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/base/version.hpp"
#include "mmfusion/config/config_io.hpp"

namespace mmfusion {

using nlohmann::json;

namespace {

// FNV-1a, 64 bit: checksums of what a checkpoint holds. The archive's reader does not
// verify its records, so a damaged payload would otherwise be read back silently.
struct Fnv {
  uint64_t h = 0xcbf29ce484222325ULL;
  void mix(const void* data, size_t n) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ bytes[i]) * 0x100000001b3ULL;
  }
  void mix(const std::string& s) {
    const uint64_t n = s.size();
    mix(&n, sizeof n);
    mix(s.data(), s.size());
  }
  void mix_tensor(const torch::Tensor& t) {
    const auto c = t.detach().to(torch::kCPU).contiguous();
    mix(c.data_ptr(), c.numel() * c.element_size());
  }
  std::string hex() const {
    char out[17];
    std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
    return out;
  }
};

// Format 2's checksum: every parameter and buffer and every scaling statistic (names and
// bytes). Without scaling it is the digest of format 1's first files.
std::string model_digest(torch::nn::Module& model, const Scaling& scaling) {
  Fnv f;
  auto add = [&f](const std::string& name, const torch::Tensor& t) {
    f.mix(name.data(), name.size());
    f.mix_tensor(t);
  };
  for (const auto& p : model.named_parameters()) add(p.key(), p.value());
  for (const auto& b : model.named_buffers()) add(b.key(), b.value());
  for (const auto& [name, t] : scaling.named_tensors()) add("scaling." + name, t);
  return f.hex();
}

// Format 3: a checksum of each entry of the archive (every value in it, nested archives
// by attribute name, tensors by dtype, shape and bytes), kept in the entry "digests".
void mix_value(Fnv& f, const c10::IValue& v) {
  f.mix(v.tagKind());
  if (v.isTensor()) {
    const auto& t = v.toTensor();
    f.mix(c10::toString(t.scalar_type()));
    for (int64_t d : t.sizes()) f.mix(&d, sizeof d);
    f.mix_tensor(t);
  } else if (v.isString()) {
    f.mix(v.toStringRef());
  } else if (v.isInt()) {
    const int64_t x = v.toInt();
    f.mix(&x, sizeof x);
  } else if (v.isDouble()) {
    const double x = v.toDouble();
    f.mix(&x, sizeof x);
  } else if (v.isBool()) {
    const bool x = v.toBool();
    f.mix(&x, sizeof x);
  } else if (v.isList()) {
    for (const auto& e : v.toListRef()) mix_value(f, e);
  } else if (v.isTuple()) {
    for (const auto& e : v.toTupleRef().elements()) mix_value(f, e);
  } else if (v.isGenericDict()) {
    for (const auto& e : v.toGenericDict()) mix_value(f, e.key()), mix_value(f, e.value());
  } else if (v.isObject()) {
    const auto object = v.toObject();
    const auto& type = object->type();
    for (size_t i = 0; i < type->numAttributes(); ++i) {
      f.mix(type->getAttributeName(i));
      mix_value(f, object->getSlot(i));
    }
  }
}

constexpr const char* kDigestsEntry = "digests";

// {entry: checksum} over every entry but "digests", plus "record": the checksum of the
// other lines, so that damage to the record itself is told apart from damage elsewhere.
json entry_digests(torch::serialize::InputArchive& archive) {
  json digests = json::object();
  for (const auto& key : archive.keys()) {
    if (key == kDigestsEntry) continue;
    c10::IValue value;
    if (!archive.try_read(key, value)) continue;
    Fnv f;
    mix_value(f, value);
    digests[key] = f.hex();
  }
  Fnv record;
  record.mix(digests.dump());
  digests["record"] = record.hex();
  return digests;
}

// What an entry holds, for messages.
std::string entry_label(const std::string& key) {
  if (key == "model") return "the model (parameters and buffers)";
  if (key == "optimizer") return "the optimizer state";
  if (key == "scaling") return "the scaling statistics";
  if (key == "meta") return "the metadata (progress and config)";
  if (key.rfind("rng_", 0) == 0) return "the generator state " + key;
  return "entry " + key;
}

void verify_entry_digests(torch::serialize::InputArchive& archive, const std::string& path) {
  const std::string damaged = path + ": corrupt checkpoint: ";
  const std::string after = " (the file was damaged after it was written)";
  c10::IValue stored_value;
  json stored;
  if (archive.try_read(kDigestsEntry, stored_value) && stored_value.isString())
    stored = json::parse(stored_value.toStringRef(), nullptr, /*allow_exceptions=*/false);
  if (!stored.is_object() || !stored.contains("record"))
    throw Error(damaged + "its checksum record is missing or unreadable" + after);
  json lines = stored;
  lines.erase("record");
  Fnv record;
  record.mix(lines.dump());
  if (stored["record"] != record.hex())
    throw Error(damaged + "its checksum record is damaged" + after);
  const json actual = entry_digests(archive);
  for (const auto& [key, digest] : actual.items()) {
    if (key == "record") continue;
    if (!stored.contains(key)) throw Error(damaged + entry_label(key) + " has no checksum" + after);
    if (stored[key] != digest)
      throw Error(damaged + entry_label(key) + " does not match its checksum" + after);
  }
  for (const auto& [key, digest] : stored.items())
    if (!actual.contains(key)) throw Error(damaged + entry_label(key) + " is missing" + after);
}

}  // namespace

json to_json(const TrainProgress& p) {
  return {{"epoch", p.epoch},
          {"epoch_step", p.epoch_step},
          {"global_step", p.global_step},
          {"best_val_loss", std::isfinite(p.best_val_loss) ? json(p.best_val_loss) : json(nullptr)},
          {"best_epoch", p.best_epoch},
          {"bad_epochs", p.bad_epochs},
          {"epoch_loss_sum", p.epoch_loss_sum},
          {"epoch_samples", p.epoch_samples},
          {"train_seconds", p.train_seconds},
          {"stopped_early", p.stopped_early}};
}

TrainProgress progress_from_json(const json& j) {
  TrainProgress p;
  p.epoch = j.at("epoch").get<int64_t>();
  p.epoch_step = j.at("epoch_step").get<int64_t>();
  p.global_step = j.at("global_step").get<int64_t>();
  const auto& best = j.at("best_val_loss");
  p.best_val_loss = best.is_null() ? std::numeric_limits<double>::infinity() : best.get<double>();
  p.best_epoch = j.at("best_epoch").get<int64_t>();
  p.bad_epochs = j.at("bad_epochs").get<int64_t>();
  p.epoch_loss_sum = j.at("epoch_loss_sum").get<double>();
  p.epoch_samples = j.at("epoch_samples").get<int64_t>();
  p.train_seconds = j.at("train_seconds").get<double>();
  p.stopped_early = j.at("stopped_early").get<bool>();
  return p;
}

RngStates capture_default_rng(const torch::Device& device, torch::Tensor shuffle_state) {
  RngStates s;
  s.shuffle = std::move(shuffle_state);
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    s.cpu = gen.get_state();
  }
  if (device.is_cuda()) {
    auto gen = at::globalContext().defaultGenerator(device);
    std::lock_guard<std::mutex> lock(gen.mutex());
    s.cuda = gen.get_state();
  }
  return s;
}

void restore_default_rng(const RngStates& states, const torch::Device& device) {
  if (states.cpu.defined()) {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(states.cpu);
  }
  // A CPU checkpoint resumed on CUDA (or the reverse) has no matching state: dropout
  // then continues from the seeded generator, which is all that can be done.
  if (device.is_cuda() && states.cuda.defined()) {
    auto gen = at::globalContext().defaultGenerator(device);
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(states.cuda);
  }
}

void save_checkpoint(const std::string& path, const ExperimentConfig& config,
                     const TrainProgress& progress, torch::nn::Module& model,
                     const torch::optim::Optimizer* optimizer, const RngStates& rng,
                     const Scaling& scaling) {
  // Statistics that disagree with the config would make a file no reader accepts.
  if (!scaling.follows(Scaling::plan(config)))
    throw Error(path +
                ": cannot save: the scaling statistics do not match data.standardize / "
                "data.standardize_target of the config");
  json meta = {{"format", kCheckpointFormat},  {"format_version", kCheckpointFormatVersion},
               {"mmfusion_version", kVersion}, {"progress", to_json(progress)},
               {"config", to_json(config)},    {"model_digest", model_digest(model, scaling)}};
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_archive;
  model.save(model_archive);
  archive.write("model", model_archive);
  const auto statistics = scaling.named_tensors();
  if (!statistics.empty()) {
    torch::serialize::OutputArchive scaling_archive;
    for (const auto& [name, t] : statistics)
      scaling_archive.write(name, t.cpu(), /*is_buffer=*/true);
    archive.write("scaling", scaling_archive);
  }
  if (optimizer) {
    torch::serialize::OutputArchive optimizer_archive;
    optimizer->save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
  }
  // Generator states are byte tensors on the CPU.
  if (rng.shuffle.defined()) archive.write("rng_shuffle", rng.shuffle, /*is_buffer=*/true);
  if (rng.cpu.defined()) archive.write("rng_cpu", rng.cpu, /*is_buffer=*/true);
  if (rng.cuda.defined()) archive.write("rng_cuda", rng.cuda.cpu(), /*is_buffer=*/true);
  archive.write("meta", c10::IValue(meta.dump()));
  // Serialized into memory, never by LibTorch to a file: its file writer fails in a
  // destructor (an abort) when the disk fills. The checksums are those of the entries as a
  // reader will see them: the archive is written to memory and read back once.
  auto serialized = [&archive] {
    std::string bytes;
    archive.save_to([&bytes](const void* data, size_t n) {
      bytes.append(static_cast<const char*>(data), n);
      return n;
    });
    return bytes;
  };
  {
    const std::string bytes = serialized();
    torch::serialize::InputArchive written;
    written.load_from(bytes.data(), bytes.size());
    archive.write(kDigestsEntry, c10::IValue(entry_digests(written).dump()));
  }
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  atomic_write_text(path, serialized());
}

Checkpoint open_checkpoint(const std::string& path, const torch::Device& device) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw Error(path + ": no such checkpoint file");
  const std::vector<char> bytes = read_bytes(path);
  return parse_checkpoint(bytes.data(), bytes.size(), path, device);
}

Checkpoint parse_checkpoint(const char* data, size_t size, const std::string& path,
                            const torch::Device& device) {
  const std::string unreadable =
      "not a readable checkpoint (the file is truncated, corrupt or not an mmfusion checkpoint)";
  check_archive_pickles(data, size, path, unreadable);  // before the unpickler trusts a length
  Checkpoint c;
  c.path = path;
  try {
    // The archive is read on the CPU; tensors move to `device` once they are checked.
    c.archive.load_from(data, size, torch::kCPU);
  } catch (const std::exception&) { throw Error(path + ": " + unreadable); }
  // Every tensor's view must lie inside its storage before anything reads a value.
  bool has_digests = false;
  for (const auto& key : c.archive.keys()) {
    c10::IValue value;
    if (c.archive.try_read(key, value)) check_file_tensors(value, path + ": " + key);
    has_digests = has_digests || key == kDigestsEntry;
  }
  // Format 3 and later checksum every entry; a file without the record passes only as an
  // older format, whose model checksum load_model checks.
  if (has_digests) verify_entry_digests(c.archive, path);
  if (!device.is_cpu()) {
    try {
      c.archive.load_from(data, size, device);
    } catch (const std::exception&) {
      throw Error(path + ": cannot map the checkpoint to " + device.str());
    }
  }
  c10::IValue meta;
  if (!c.archive.try_read("meta", meta) || !meta.isString())
    throw Error(path + ": not an mmfusion checkpoint (no metadata)");
  try {
    c.meta = json::parse(meta.toStringRef());
  } catch (const json::exception&) {
    throw Error(path + ": not an mmfusion checkpoint (unreadable metadata)");
  }
  if (!c.meta.is_object() || c.meta.value("format", "") != kCheckpointFormat)
    throw Error(path + ": not an mmfusion checkpoint (unknown format)");
  const int version = c.meta.value("format_version", 0);
  if (version > kCheckpointFormatVersion)
    throw Error(path + ": checkpoint format version " + std::to_string(version) +
                " is newer than this mmfusion (" + kVersion + ") reads (version " +
                std::to_string(kCheckpointFormatVersion) + "); upgrade mmfusion");
  if (version < 1) throw Error(path + ": invalid checkpoint format version");
  if (version >= 3 && !has_digests)
    throw Error(
        path +
        ": corrupt checkpoint: its checksum record is missing (the file was damaged after it was written)");
  try {
    c.progress = progress_from_json(c.meta.at("progress"));
  } catch (const json::exception& e) {
    throw Error(path + ": damaged checkpoint metadata: " + e.what());
  }
  try {
    c.config = parse_config(c.meta.at("config"));
    // Written before data.standardize existed: trained on unscaled data, whatever the
    // default is now.
    if (!c.meta.at("config").value("data", json::object()).contains("standardize")) {
      c.config.data.standardize = Standardize::None;
      c.config.data.standardize_target = false;
    }
    // Written before data.synthetic.generator existed: its data came from the first one.
    if (!c.meta.at("config")
             .value("data", json::object())
             .value("synthetic", json::object())
             .contains("generator"))
      c.config.data.synthetic.generator = kFirstGenerator;
  } catch (const ConfigError& e) {
    throw Error(path + ": the checkpoint's config is invalid: " + e.what());
  } catch (const json::exception& e) {
    throw Error(path + ": damaged checkpoint metadata: " + e.what());
  }
  std::vector<std::pair<std::string, torch::Tensor>> statistics;
  torch::serialize::InputArchive scaling_archive;
  if (c.archive.try_read("scaling", scaling_archive))
    for (const auto& key : scaling_archive.keys()) {
      torch::Tensor t;
      if (!scaling_archive.try_read(key, t, /*is_buffer=*/true))
        throw Error(path + ": scaling." + key + " is not a tensor");
      statistics.emplace_back(key, t);
    }
  c.scaling = Scaling::from_named(statistics, c.config, path + ": scaling");
  return c;
}

void Checkpoint::load_model(torch::nn::Module& model) {
  torch::serialize::InputArchive model_archive;
  if (!archive.try_read("model", model_archive))
    throw Error(path + ": the checkpoint holds no model");
  // LibTorch's Module::load swaps each tensor for the file's without comparing shapes: a
  // file whose tensors disagree with its config would reach code that trusts the config's
  // sizes (the hand-written LMF pass reads and writes by them). Compare after loading.
  std::vector<std::pair<std::string, torch::Tensor>> expected;
  for (const auto& p : model.named_parameters())
    expected.emplace_back(p.key(), torch::empty_like(p.value()));
  for (const auto& b : model.named_buffers())
    expected.emplace_back(b.key(), torch::empty_like(b.value()));
  try {
    model.load(model_archive);
  } catch (const c10::Error& e) {
    throw Error(path + ": the model in the checkpoint does not match its config: " +
                e.what_without_backtrace());
  }
  auto loaded = model.named_parameters();
  for (const auto& b : model.named_buffers()) loaded.insert(b.key(), b.value());
  for (const auto& [name, want] : expected) {
    const torch::Tensor* got = loaded.find(name);
    if (!got || got->sizes() != want.sizes() || got->scalar_type() != want.scalar_type())
      throw Error(path + ": model." + name + " has " +
                  (got ? "shape " + c10::str(got->sizes()) + " " + c10::toString(got->scalar_type())
                       : std::string("no value")) +
                  ", its config gives " + c10::str(want.sizes()) + " " +
                  c10::toString(want.scalar_type()));
  }
  if (meta.contains("model_digest") && meta["model_digest"] != model_digest(model, scaling))
    throw Error(path +
                ": corrupt checkpoint: the model's checksum does not match (the file was "
                "damaged after it was written)");
}

ModelPtr Checkpoint::build_model(const torch::Device& device) {
  ModelPtr model = make_model(model_config(config), config.data.modalities, config.model.output_dim);
  load_model(*model);
  model->to(device);
  model->eval();
  return model;
}

bool Checkpoint::has_optimizer() {
  torch::serialize::InputArchive optimizer_archive;
  return archive.try_read("optimizer", optimizer_archive);
}

void Checkpoint::load_optimizer(torch::optim::Optimizer& optimizer) {
  torch::serialize::InputArchive optimizer_archive;
  if (!archive.try_read("optimizer", optimizer_archive))
    throw Error(path + ": the checkpoint holds no optimizer state (cannot resume from it)");
  try {
    optimizer.load(optimizer_archive);
  } catch (const c10::Error& e) {
    throw Error(path + ": the optimizer state does not match (" + e.what_without_backtrace() + ")");
  } catch (const Error& e) { throw Error(path + ": " + e.what()); }
}

RngStates Checkpoint::rng() {
  RngStates s;
  archive.try_read("rng_shuffle", s.shuffle, /*is_buffer=*/true);
  archive.try_read("rng_cpu", s.cpu, /*is_buffer=*/true);
  archive.try_read("rng_cuda", s.cuda, /*is_buffer=*/true);
  // Generator states must be CPU byte tensors, whatever device the archive was mapped to.
  for (auto* t : {&s.shuffle, &s.cpu, &s.cuda})
    if (t->defined()) *t = t->cpu();
  return s;
}

}  // namespace mmfusion
