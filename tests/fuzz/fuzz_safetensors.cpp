// safetensors images (SafetensorsReader on bytes). Accepted files: every record's bytes lie inside the
// input and match its shape; tensors of the supported element types copy out; writing the records and
// metadata back with SafetensorsWriter and reading that gives the same records, metadata and bytes.
#include <cstring>
#include <memory>

#include "fuzz_support.hpp"
#include "robustxlt/core/safetensors.hpp"

using namespace robustxlt;

namespace {

template <class T>
void copy_out(const SafetensorsReader& r, const std::string& name, const TensorRecord& rec) {
  if (rec.dtype != dtype_of<T>()) return;
  std::vector<T> buf(rec.numel());
  r.copy_to(name, buf.data(), rec.shape);
  FUZZ_CHECK(buf.empty() || std::memcmp(buf.data(), r.raw(name), buf.size() * sizeof(T)) == 0);
  if (rec.shape.size() == 1) {
    const auto t = r.tensor<T, 1>(name);
    FUZZ_CHECK(t.size() == rec.numel());
  } else if (rec.shape.size() == 2) {
    const auto t = r.tensor<T, 2>(name);
    FUZZ_CHECK(t.size() == rec.numel());
  } else if (rec.shape.size() == 3) {
    const auto t = r.tensor<T, 3>(name);
    FUZZ_CHECK(t.size() == rec.numel());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  std::unique_ptr<SafetensorsReader> reader;
  if (!robustxlt_fuzz::accepts([&] { reader = std::make_unique<SafetensorsReader>(bytes, "fuzz"); })) return 0;
  const SafetensorsReader& r = *reader;
  std::uint64_t header_len = 0;
  std::memcpy(&header_len, data, 8);
  const std::size_t data_start = 8 + static_cast<std::size_t>(header_len);
  SafetensorsWriter w;
  for (const auto& [name, rec] : r.records()) {
    FUZZ_CHECK(rec.begin <= rec.end && rec.end <= size - data_start);
    FUZZ_CHECK(rec.end - rec.begin == rec.numel() * dtype_size(rec.dtype));
    FUZZ_CHECK(std::memcmp(r.raw(name), bytes.data() + data_start + rec.begin, rec.end - rec.begin) == 0);
    copy_out<float>(r, name, rec);
    copy_out<double>(r, name, rec);
    copy_out<std::int64_t>(r, name, rec);
    copy_out<std::int32_t>(r, name, rec);
    copy_out<std::uint8_t>(r, name, rec);
    // A name the writer refuses is a valid header key (e.g. ""), so only names it accepts go back out.
    const std::string& n = name;
    const TensorRecord& t = rec;
    if (!robustxlt_fuzz::accepts([&] { w.add_raw(n, t.dtype, t.shape, r.raw(n)); })) continue;
  }
  for (const auto& [k, v] : r.metadata()) w.set_metadata(k, v);
  const SafetensorsReader back(w.serialize(), "fuzz round trip");
  FUZZ_CHECK(back.metadata() == r.metadata());
  for (const auto& [name, rec] : back.records()) {
    const TensorRecord& orig = r.record(name);
    FUZZ_CHECK(rec.dtype == orig.dtype && rec.shape == orig.shape);
    FUZZ_CHECK(std::memcmp(back.raw(name), r.raw(name), rec.end - rec.begin) == 0);
  }
  return 0;
}
