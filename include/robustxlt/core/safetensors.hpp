#pragma once
// Reader and writer for the safetensors format: an 8-byte little-endian header length N, N bytes of JSON
// ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}), then the raw
// little-endian tensor data; offsets count from the start of the data section. The reader validates every
// field before any data is touched and names the offending tensor in its errors.

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "robustxlt/core/detail/json.hpp"
#include "robustxlt/core/error.hpp"
#include "robustxlt/core/io.hpp"
#include "robustxlt/core/tensor.hpp"

#if defined(__BYTE_ORDER__) && (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__)
#error "robustxlt's safetensors support assumes a little-endian host"
#endif

namespace robustxlt {

enum class Dtype { BOOL, U8, I8, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64 };

inline const char* dtype_name(Dtype d) noexcept {
  switch (d) {
    case Dtype::BOOL: return "BOOL";
    case Dtype::U8: return "U8";
    case Dtype::I8: return "I8";
    case Dtype::I16: return "I16";
    case Dtype::U16: return "U16";
    case Dtype::F16: return "F16";
    case Dtype::BF16: return "BF16";
    case Dtype::I32: return "I32";
    case Dtype::U32: return "U32";
    case Dtype::F32: return "F32";
    case Dtype::F64: return "F64";
    case Dtype::I64: return "I64";
    case Dtype::U64: return "U64";
  }
  return "?";
}

// Bytes per element.
inline std::size_t dtype_size(Dtype d) noexcept {
  switch (d) {
    case Dtype::BOOL:
    case Dtype::U8:
    case Dtype::I8: return 1;
    case Dtype::I16:
    case Dtype::U16:
    case Dtype::F16:
    case Dtype::BF16: return 2;
    case Dtype::I32:
    case Dtype::U32:
    case Dtype::F32: return 4;
    case Dtype::F64:
    case Dtype::I64:
    case Dtype::U64: return 8;
  }
  return 0;
}

// The safetensors dtype that stores C++ type T.
template <class T>
constexpr Dtype dtype_of() noexcept {
  if constexpr (std::is_same_v<T, float>) return Dtype::F32;
  else if constexpr (std::is_same_v<T, double>) return Dtype::F64;
  else if constexpr (std::is_same_v<T, std::int64_t>) return Dtype::I64;
  else if constexpr (std::is_same_v<T, std::int32_t>) return Dtype::I32;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return Dtype::U8;
  else static_assert(sizeof(T) == 0, "dtype_of: unsupported element type");
}

// One tensor entry of a safetensors header; offsets are relative to the data section.
struct TensorRecord {
  Dtype dtype = Dtype::F32;
  std::vector<std::size_t> shape;
  std::size_t begin = 0;
  std::size_t end = 0;

  std::size_t numel() const noexcept {
    std::size_t n = 1;
    for (auto s : shape) n *= s;
    return n;
  }
};

class SafetensorsReader {
 public:
  // Header sizes above this are rejected before parsing (the format's own limit).
  static constexpr std::size_t max_header_bytes = 100u * 1024u * 1024u;

  // Reads and validates a file. Throws IoError when it cannot be read, FormatError when it is malformed.
  explicit SafetensorsReader(const std::filesystem::path& path)
      : SafetensorsReader(read_file(path), path.string()) {}

  // Validates an in-memory image; source names it in error messages.
  SafetensorsReader(std::string bytes, std::string source) : bytes_(std::move(bytes)), source_(std::move(source)) {
    parse();
  }

  const std::string& source() const noexcept { return source_; }
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
  const std::map<std::string, TensorRecord>& records() const noexcept { return records_; }
  bool contains(const std::string& name) const { return records_.count(name) != 0; }

  // Throws FormatError "missing tensor" when name is absent.
  const TensorRecord& record(const std::string& name) const {
    auto it = records_.find(name);
    if (it == records_.end()) fail("missing tensor '", name, "'");
    return it->second;
  }

  // Pointer to the raw bytes of a tensor (not necessarily aligned for its type).
  const char* raw(const std::string& name) const { return data_begin() + record(name).begin; }

  // Copies a tensor into dst after checking dtype == dtype_of<T>() and shape == expected.
  template <class T>
  void copy_to(const std::string& name, T* dst, const std::vector<std::size_t>& expected_shape) const {
    const TensorRecord& r = record(name);
    if (r.dtype != dtype_of<T>())
      fail("tensor '", name, "': expected dtype ", dtype_name(dtype_of<T>()), ", got ", dtype_name(r.dtype));
    if (r.shape != expected_shape)
      fail("tensor '", name, "': expected shape ", shape_string(expected_shape), ", got ", shape_string(r.shape));
    if (r.end > r.begin) std::memcpy(static_cast<void*>(dst), data_begin() + r.begin, r.end - r.begin);
  }

  // The tensor as an owning xtensor of rank N; checks dtype and rank.
  template <class T, std::size_t N>
  Tensor<T, N> tensor(const std::string& name) const {
    const TensorRecord& r = record(name);
    if (r.shape.size() != N) fail("tensor '", name, "': expected rank ", N, ", got shape ", shape_string(r.shape));
    std::array<std::size_t, N> shape{};
    for (std::size_t i = 0; i < N; ++i) shape[i] = r.shape[i];
    Tensor<T, N> out = Tensor<T, N>::from_shape(shape);
    copy_to(name, out.data(), r.shape);
    return out;
  }

 private:
  template <class... Args>
  [[noreturn]] void fail(Args&&... args) const {
    detail::fail<FormatError>("safetensors '", source_, "': ", std::forward<Args>(args)...);
  }

  const char* data_begin() const noexcept { return bytes_.data() + 8 + header_len_; }

  static std::size_t to_size(const detail::json::Value& v, bool& ok) {
    std::size_t out = 0;
    if (!v.as_size(out)) ok = false;
    return out;
  }

  void parse() {
    if (bytes_.size() < 8) fail("truncated: expected at least 8 bytes, got ", bytes_.size());
    std::uint64_t n = 0;
    std::memcpy(&n, bytes_.data(), 8);
    if (n > max_header_bytes) fail("header length ", n, " exceeds the limit of ", max_header_bytes, " bytes");
    if (n > bytes_.size() - 8) fail("header length ", n, " exceeds the ", bytes_.size() - 8, " bytes after the length field");
    header_len_ = static_cast<std::size_t>(n);
    const std::size_t data_size = bytes_.size() - 8 - header_len_;
    detail::json::Value header;
    try {
      header = detail::json::Parser(std::string_view(bytes_).substr(8, header_len_)).parse();
    } catch (const detail::json::ParseError& e) {
      fail("bad JSON header: ", e.what());
    }
    if (!header.is_object()) fail("header must be a JSON object, got ", header.type_name());
    for (const auto& [name, v] : header.members) {
      if (name == "__metadata__") {
        if (!v.is_object()) fail("__metadata__ must be an object, got ", v.type_name());
        for (const auto& [key, value] : v.members) {
          if (!value.is_string()) fail("__metadata__ value of '", key, "' must be a string, got ", value.type_name());
          metadata_[key] = value.text;
        }
        continue;
      }
      if (!v.is_object()) fail("tensor '", name, "': entry must be an object, got ", v.type_name());
      TensorRecord r;
      const auto* dt = v.find("dtype");
      if (!dt || !dt->is_string()) fail("tensor '", name, "': missing string field 'dtype'");
      r.dtype = parse_dtype(name, dt->text);
      const auto* sh = v.find("shape");
      if (!sh || !sh->is_array()) fail("tensor '", name, "': missing array field 'shape'");
      // span: the product of the non-zero extents. Tensors index with signed strides, so even an empty
      // tensor ([0, 2^40, 2^40]) must have extents whose product fits in std::ptrdiff_t.
      std::size_t numel = 1, span = 1;
      for (const auto& d : sh->items) {
        bool ok = true;
        const std::size_t s = to_size(d, ok);
        if (!ok) fail("tensor '", name, "': shape entries must be non-negative integers, got ", d.dump());
        const std::size_t extent = s == 0 ? 1 : s;
        if (span > static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max()) / extent)
          fail("tensor '", name, "': shape ", sh->dump(), " overflows (the product of its extents exceeds ",
               std::numeric_limits<std::ptrdiff_t>::max(), ")");
        span *= extent;
        numel *= s;
        r.shape.push_back(s);
      }
      const auto* off = v.find("data_offsets");
      if (!off || !off->is_array() || off->items.size() != 2)
        fail("tensor '", name, "': 'data_offsets' must be an array [begin, end]");
      bool ok = true;
      r.begin = to_size(off->items[0], ok);
      r.end = to_size(off->items[1], ok);
      if (!ok) fail("tensor '", name, "': data_offsets must be non-negative integers, got ", off->dump());
      if (r.begin > r.end || r.end > data_size)
        fail("tensor '", name, "': data_offsets [", r.begin, ", ", r.end, "] outside the data section of ", data_size,
             " bytes (truncated file?)");
      const std::size_t esize = dtype_size(r.dtype);
      if (numel > std::numeric_limits<std::size_t>::max() / esize) fail("tensor '", name, "': shape overflows");
      if (r.end - r.begin != numel * esize)
        fail("tensor '", name, "': shape ", shape_string(r.shape), " of ", dtype_name(r.dtype), " needs ", numel * esize,
             " bytes, data_offsets span ", r.end - r.begin);
      records_.emplace(name, std::move(r));
    }
  }

  Dtype parse_dtype(const std::string& name, const std::string& s) const {
    static const std::pair<const char*, Dtype> table[] = {
        {"BOOL", Dtype::BOOL}, {"U8", Dtype::U8},   {"I8", Dtype::I8},     {"I16", Dtype::I16}, {"U16", Dtype::U16},
        {"F16", Dtype::F16},   {"BF16", Dtype::BF16}, {"I32", Dtype::I32}, {"U32", Dtype::U32}, {"F32", Dtype::F32},
        {"F64", Dtype::F64},   {"I64", Dtype::I64}, {"U64", Dtype::U64}};
    for (const auto& [text, d] : table)
      if (s == text) return d;
    fail("tensor '", name, "': unknown dtype '", s, "'");
  }

  std::string bytes_;
  std::string source_;
  std::size_t header_len_ = 0;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, TensorRecord> records_;
};

class SafetensorsWriter {
 public:
  // Adds a tensor by copying numel(shape) elements from data. Throws InvalidArgument on a duplicate name.
  template <class T>
  void add(const std::string& name, const T* data, const std::vector<std::size_t>& shape) {
    add_raw(name, dtype_of<T>(), shape, data);
  }

  template <class T, std::size_t N>
  void add(const std::string& name, const Tensor<T, N>& t) {
    add(name, t.data(), std::vector<std::size_t>(t.shape().begin(), t.shape().end()));
  }

  void add_raw(const std::string& name, Dtype dtype, const std::vector<std::size_t>& shape, const void* data) {
    if (name.empty() || name == "__metadata__")
      detail::fail("SafetensorsWriter::add: name must be non-empty and not '__metadata__', got '", name, "'");
    for (const auto& e : entries_)
      if (e.first == name) detail::fail("SafetensorsWriter::add: duplicate tensor name '", name, "'");
    TensorRecord r;
    r.dtype = dtype;
    r.shape = shape;
    r.begin = data_.size();
    r.end = r.begin + r.numel() * dtype_size(dtype);
    data_.append(static_cast<const char*>(data), r.end - r.begin);
    entries_.emplace_back(name, std::move(r));
  }

  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

  // The complete file image.
  std::string serialize() const {
    // Compact, keys in sorted byte order (the tensors' and __metadata__'s), as the safetensors reference writes.
    std::map<std::string, std::string> fields;
    for (const auto& [name, r] : entries_) {
      std::string f = "{\"dtype\":\"" + std::string(dtype_name(r.dtype)) + "\",\"shape\":[";
      for (std::size_t i = 0; i < r.shape.size(); ++i) f += (i ? "," : "") + std::to_string(r.shape[i]);
      fields[name] = f + "],\"data_offsets\":[" + std::to_string(r.begin) + "," + std::to_string(r.end) + "]}";
    }
    if (!metadata_.empty()) {
      std::string f = "{";
      for (const auto& [k, v] : metadata_) {
        if (f.size() > 1) f += ',';
        detail::json::append_quoted(f, k);
        f += ':';
        detail::json::append_quoted(f, v);
      }
      fields["__metadata__"] = f + "}";
    }
    std::string text = "{";
    for (const auto& [k, f] : fields) {
      if (text.size() > 1) text += ',';
      detail::json::append_quoted(text, k);
      text += ':' + f;
    }
    text += '}';
    // Pad with spaces so the data section starts 8-byte aligned.
    text.append((8 - (8 + text.size()) % 8) % 8, ' ');
    const std::uint64_t n = text.size();
    std::string out(8, '\0');
    std::memcpy(out.data(), &n, 8);
    out += text;
    out += data_;
    return out;
  }

  // Writes the file atomically (temporary file, then rename). Throws IoError.
  void write(const std::filesystem::path& path) const { write_file_atomic(path, serialize()); }

 private:
  std::vector<std::pair<std::string, TensorRecord>> entries_;
  std::map<std::string, std::string> metadata_;
  std::string data_;
};

}  // namespace robustxlt
