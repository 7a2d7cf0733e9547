#pragma once
// File helpers: whole-file reads and atomic writes (temporary file in the same directory, flushed and
// synced, then renamed over the target), so a crash never leaves a half-written file behind.

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "robustxlt/core/error.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace robustxlt {

// Reads a whole file as bytes. Throws IoError naming the path when it cannot be opened or read.
inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) detail::fail<IoError>("read_file: cannot open '", path.string(), "': ", std::strerror(errno));
  std::string data;
  in.seekg(0, std::ios::end);
  const auto size = in.tellg();
  if (size < 0) detail::fail<IoError>("read_file: cannot determine the size of '", path.string(), "'");
  data.resize(static_cast<std::size_t>(size));
  in.seekg(0, std::ios::beg);
  if (size > 0 && !in.read(data.data(), size))
    detail::fail<IoError>("read_file: read error on '", path.string(), "'");
  return data;
}

// Writes bytes to path atomically: either the old file or the complete new one exists afterwards.
// Throws IoError naming the path on any failure (the temporary file is removed), and before writing
// anything when path exists but is not a regular file (a directory, a device such as /dev/null, a pipe):
// the final rename would replace it.
inline void write_file_atomic(const std::filesystem::path& path, std::string_view bytes) {
  namespace fs = std::filesystem;
  std::error_code status_ec;
  const auto st = fs::status(path, status_ec);
  if (!status_ec && fs::exists(st) && !fs::is_regular_file(st))
    detail::fail<IoError>("write_file_atomic: '", path.string(),
                          "' exists and is not a regular file; expected a regular file or a new path");
  fs::path tmp = path;
  tmp += ".tmp";
#if defined(__unix__) || defined(__APPLE__)
  tmp += std::to_string(static_cast<long>(::getpid()));
#endif
  std::FILE* f = std::fopen(tmp.string().c_str(), "wb");
  if (!f)
    detail::fail<IoError>("write_file_atomic: cannot create '", tmp.string(), "': ", std::strerror(errno));
  bool ok = bytes.empty() || std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  ok = (std::fflush(f) == 0) && ok;
#if defined(__unix__) || defined(__APPLE__)
  ok = (::fsync(::fileno(f)) == 0) && ok;
#endif
  ok = (std::fclose(f) == 0) && ok;
  std::error_code ec;
  if (!ok) {
    fs::remove(tmp, ec);
    detail::fail<IoError>("write_file_atomic: write error on '", tmp.string(), "'");
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    detail::fail<IoError>("write_file_atomic: cannot rename '", tmp.string(), "' to '", path.string(),
                          "': ", ec.message());
  }
}

// Calls fn(line_number, line) for each line of text (1-based numbers, without the newline or a trailing
// '\r'). Blank lines are passed on; nothing follows a final newline.
template <class Fn>
void for_each_line(std::string_view text, Fn&& fn) {
  std::size_t line = 0, start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view l = text.substr(start, end - start);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    fn(++line, l);
    start = end + 1;
  }
}

}  // namespace robustxlt
