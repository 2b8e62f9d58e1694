#include "mmfusion/data/dataset.hpp"

#include "mmfusion/base/errors.hpp"

namespace mmfusion {

const char* split_name(Split split) {
  switch (split) {
    case Split::Train: return "train";
    case Split::Val: return "val";
    default: return "test";
  }
}

Split parse_split(const std::string& name) {
  if (name == "train") return Split::Train;
  if (name == "val") return Split::Val;
  if (name == "test") return Split::Test;
  throw ConfigError("split: expected train, val or test, got \"" + name + "\"");
}

Dataset Dataset::to(const torch::Device& device) const {
  Dataset out = *this;
  for (auto& f : out.features) f = f.to(device);
  if (target.defined()) out.target = target.to(device);
  return out;
}

Dataset Dataset::rows(const torch::Tensor& index) const {
  Dataset out;
  out.names = names;
  out.origin = origin;
  for (const auto& f : features) out.features.push_back(f.index_select(0, index));
  if (target.defined()) out.target = target.index_select(0, index);
  for (torch::Tensor Dataset::*part : {&Dataset::unimodal, &Dataset::bimodal, &Dataset::trimodal})
    if ((this->*part).defined()) out.*part = (this->*part).index_select(0, index);
  for (const auto& r : nonfinite)
    out.nonfinite.push_back(r.defined() ? r.index_select(0, index.to(r.device())) : r);
  return out;
}

}  // namespace mmfusion
