#pragma once
// Configs that must fail, each with the path its error names and words of its message
// (test_config.cpp), and whether a JSON Schema can reject it too (test_config_keys.cpp).
#include <ostream>
#include <vector>

namespace mmfusion::testing {

struct BadConfig {
  const char* assignment;  // applied to an empty document
  const char* path;        // the JSON path the message must start with
  const char* words;       // and words it must contain
  // A rule between keys, which the schema cannot express; empty when the schema rejects
  // the config as well.
  const char* between_keys = "";
};

inline void PrintTo(const BadConfig& bad, std::ostream* os) { *os << "--set " << bad.assignment; }

inline const std::vector<BadConfig>& bad_configs() {
  static const std::vector<BadConfig> cases{
      BadConfig{"model.rank=0", "model.rank", "expected an integer >= 1, got 0"},
      BadConfig{"model.rank=\"four\"", "model.rank", "got a string \"four\""},
      BadConfig{"model.rank=2.5", "model.rank", "expected an integer"},
      BadConfig{"model.rnak=4", "model.rnak", "unknown key (did you mean model.rank?)"},
      BadConfig{"trian.epochs=3", "trian", "did you mean train?"},
      BadConfig{"model.dropout=1.0", "model.dropout", "in [0, 1)"},
      BadConfig{"model.dropout=-0.1", "model.dropout", "got -0.1"},
      BadConfig{"model.type=\"rnn\"", "model.type", "expected one of \"lmf\""},
      BadConfig{"train.lr=0", "train.lr", "expected a number > 0"},
      BadConfig{"train.optimizer=rmsprop", "train.optimizer", "\"adam\", \"adamw\", \"sgd\""},
      BadConfig{"train.loss=hinge", "train.loss", "\"mse\", \"l1\", \"huber\""},
      BadConfig{"train.epochs=0", "train.epochs", "expected an integer >= 1"},
      BadConfig{"train.batch_size=true", "train.batch_size", "got a boolean true"},
      BadConfig{"train.momentum=1", "train.momentum", "in [0, 1)"},
      BadConfig{"train.handwritten_step=1", "train.handwritten_step", "expected true or false"},
      BadConfig{"train.fused_step=1", "train.handwritten_step", "expected true or false"},
      BadConfig{"model.activation=gelu", "model.activation", "expected one of \"relu\", \"tanh\""},
      BadConfig{"train.flat_optimizer=\"no\"", "train.flat_optimizer", "expected true or false"},
      BadConfig{"device=gpu", "device", "\"auto\", \"cpu\", \"cuda\" or \"cuda:N\""},
      BadConfig{"threads=-1", "threads", "expected an integer >= 0"},
      BadConfig{"seed=-5", "seed", "expected an integer >= 0"},
      BadConfig{"name=a/b", "name", "without '/'"},
      BadConfig{"data.source=csv", "data.source", "\"synthetic\", \"file\""},
      BadConfig{"data.source=file", "data.path", "required when data.source is \"file\"",
                "data.path is required for file data"},
      BadConfig{"data.modalities=[{\"name\":\"a\",\"dim\":3},{\"name\":\"a\",\"dim\":4}]",
                "data.modalities[1].name", "duplicate modality name \"a\"",
                "modality names are unique (whole entries differ)"},
      BadConfig{"data.modalities=[{\"name\":\"a\",\"dim\":3}]", "data.modalities",
                "at least 2 modalities", "synthetic data needs 2 modalities, file data 1"},
      BadConfig{"data.synthetic.modalities=[{\"name\":\"visual\",\"dim\":128},{\"name\":"
                "\"audio\",\"dim\":64}]",
                "data.synthetic.modalities", "\"text\", which the generator does not draw",
                "the generator draws every modality the data keep"},
      BadConfig{"data.synthetic.shared_weight=1", "data.synthetic.shared_weight",
                "only with data.synthetic.terms", "the weights hold a shared term already"},
      BadConfig{"data.synthetic.shared_by=[\"sound\"]", "data.synthetic.shared_by",
                "no modality named \"sound\"", "shared_by names the generator's modalities"},
      BadConfig{"data.modalities=[{\"name\":\"a\",\"dim\":3},{\"name\":\"b\",\"dim\":0}]",
                "data.modalities[1].dim", "expected an integer >= 1, got 0"},
      BadConfig{"data.modalities=[{\"name\":\"a b\",\"dim\":3},{\"name\":\"c\",\"dim\":1}]",
                "data.modalities[0].name", "expected an identifier"},
      BadConfig{"data.modalities=[{\"name\":\"a\",\"dim\":3},{\"name\":\"b\",\"size\":1}]",
                "data.modalities[1].dim", "required"},
      BadConfig{"data.train_size=0", "data.train_size", "expected an integer >= 1"},
      BadConfig{"data.synthetic.feature_noise=-1", "data.synthetic.feature_noise", ">= 0"},
      BadConfig{"data.synthetic.weights.cubic=1", "data.synthetic.weights.cubic", "unknown key"},
      BadConfig{"model.encoders={\"speech\":[8]}", "model.encoders.speech",
                "no modality named \"speech\"",
                "model.encoders names modalities of data.modalities"},
      BadConfig{"model.encoders={\"text\":[8,0]}", "model.encoders.text[1]",
                "expected an integer >= 1, got 0"},
      BadConfig{"model.encoder_hidden=16", "model.encoder_hidden", "expected a list"},
      BadConfig{"model=[]", "model", "expected an object"}};
  return cases;
}

}  // namespace mmfusion::testing
