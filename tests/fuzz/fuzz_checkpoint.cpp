// Checkpoints fed as bytes: the path load_model takes (SafetensorsReader, TransformerConfig::from_metadata,
// a model built from that config, load_checkpoint). The memory budget is set to 4 MiB so that configs read
// from the input are rejected before allocating rather than exhausting memory. A loaded model must hold
// exactly the file's tensors and run a forward pass on a one-token batch.
#include <cstring>
#include <memory>

#include "fuzz_support.hpp"
#include "robustxlt/nn/checkpoint.hpp"

using namespace robustxlt;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const MemoryBudgetScope budget(4u << 20);
  std::unique_ptr<SafetensorsReader> file;
  if (!robustxlt_fuzz::accepts([&] {
        file = std::make_unique<SafetensorsReader>(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
      }))
    return 0;
  std::unique_ptr<nn::TransformerClassifier<float>> model;
  if (!robustxlt_fuzz::accepts([&] {
        model = std::make_unique<nn::TransformerClassifier<float>>(nn::TransformerConfig::from_metadata(file->metadata()));
        nn::load_checkpoint(*model, *file);
      }))
    return 0;
  const auto& ps = model->params();
  FUZZ_CHECK(ps.count() == file->records().size());
  for (std::size_t i = 0; i < ps.count(); ++i) {
    const auto& info = ps.infos()[i];
    FUZZ_CHECK(std::memcmp(ps.value(i), file->raw(info.name), info.size * sizeof(float)) == 0);
  }
  nn::TokenBatch batch;
  batch.ids = Tensor<std::int64_t, 2>::from_shape({1, 1});
  batch.ids(0, 0) = 0;
  // Weights read from the file may be NaN or huge; only a robustxlt::Error may come out of the forward pass.
  (void)robustxlt_fuzz::accepts([&] { (void)model->forward(batch); });
  return 0;
}
