#pragma once
// Checkpoints of a TransformerClassifier in the safetensors format, with PyTorch state_dict names and the
// model config in the metadata. Saving is atomic; loading is strict: every tensor must be present with the
// model's dtype and shape, and no other tensor may appear.

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "robustxlt/core/error.hpp"
#include "robustxlt/core/safetensors.hpp"
#include "robustxlt/nn/config.hpp"
#include "robustxlt/nn/transformer.hpp"

namespace robustxlt::nn {

// Writes every parameter (dtype F32 for float models, F64 for double) plus the config and any extra
// metadata, atomically. Throws IoError.
template <class T>
void save_checkpoint(const TransformerClassifier<T>& model, const std::filesystem::path& path,
                     const std::map<std::string, std::string>& extra_metadata = {}) {
  SafetensorsWriter w;
  const auto& ps = model.params();
  for (std::size_t i = 0; i < ps.count(); ++i) w.add(ps.infos()[i].name, ps.value(i), ps.infos()[i].shape);
  for (const auto& [k, v] : model.config().to_metadata()) w.set_metadata(k, v);
  for (const auto& [k, v] : extra_metadata) w.set_metadata(k, v);
  w.write(path);
}

// Loads parameters from a reader into model. Throws FormatError naming the tensor on a missing or unexpected
// tensor, a wrong dtype or a wrong shape; the model is unchanged when it throws.
template <class T>
void load_checkpoint(TransformerClassifier<T>& model, const SafetensorsReader& file) {
  auto& ps = model.params();
  for (const auto& [name, rec] : file.records())
    if (ps.find(name) == ParameterStore<T>::npos)
      detail::fail<FormatError>("load_checkpoint '", file.source(), "': unexpected tensor '", name, "' (shape ",
                                shape_string(rec.shape), ") is not a parameter of this model");
  // Validate everything before writing anything.
  for (const auto& info : ps.infos()) {
    if (!file.contains(info.name))
      detail::fail<FormatError>("load_checkpoint '", file.source(), "': missing tensor '", info.name, "' (expected shape ",
                                shape_string(info.shape), ")");
    const auto& rec = file.record(info.name);
    if (rec.dtype != dtype_of<T>())
      detail::fail<FormatError>("load_checkpoint '", file.source(), "': tensor '", info.name, "' must have dtype ",
                                dtype_name(dtype_of<T>()), ", got ", dtype_name(rec.dtype));
    if (rec.shape != info.shape)
      detail::fail<FormatError>("load_checkpoint '", file.source(), "': tensor '", info.name, "' must have shape ",
                                shape_string(info.shape), ", got ", shape_string(rec.shape));
  }
  for (std::size_t i = 0; i < ps.count(); ++i) file.copy_to(ps.infos()[i].name, ps.value(i), ps.infos()[i].shape);
}

template <class T>
void load_checkpoint(TransformerClassifier<T>& model, const std::filesystem::path& path) {
  load_checkpoint(model, SafetensorsReader(path));
}

// Builds a model from the config stored in a checkpoint's metadata and loads its weights.
template <class T>
TransformerClassifier<T> load_model(const std::filesystem::path& path) {
  SafetensorsReader file(path);
  TransformerClassifier<T> model(TransformerConfig::from_metadata(file.metadata()));
  load_checkpoint(model, file);
  return model;
}

}  // namespace robustxlt::nn
