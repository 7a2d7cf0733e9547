#pragma once
// A small strict JSON reader (to a document tree) and string writer: RFC 8259 syntax, UTF-8 validated, \u
// escapes with surrogate pairs, duplicate keys and nesting deeper than 64 refused; numbers are kept as
// their literal text, converted by whoever reads them. It reads safetensors headers and JSON neighbour
// tables, so the library depends on no JSON library and its headers compile without one.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "robustxlt/core/error.hpp"

namespace robustxlt::detail::json {

struct Value {
  enum class Kind { null, boolean, number, string, array, object };
  Kind kind = Kind::null;
  bool flag = false;                                  // boolean
  std::string text;                                   // string: its value; number: its literal
  std::vector<Value> items;                           // array
  std::vector<std::pair<std::string, Value>> members;  // object, in document order

  bool is_object() const noexcept { return kind == Kind::object; }
  bool is_array() const noexcept { return kind == Kind::array; }
  bool is_string() const noexcept { return kind == Kind::string; }

  const char* type_name() const noexcept {
    switch (kind) {
      case Kind::null: return "null";
      case Kind::boolean: return "boolean";
      case Kind::number: return "number";
      case Kind::string: return "string";
      case Kind::array: return "array";
      case Kind::object: return "object";
    }
    return "unknown";
  }

  // The member named key, or nullptr.
  const Value* find(std::string_view key) const noexcept {
    for (const auto& [k, v] : members)
      if (k == key) return &v;
    return nullptr;
  }

  // A number written as a non-negative integer literal that fits std::size_t (no sign, fraction or
  // exponent), into out; false otherwise.
  bool as_size(std::size_t& out) const noexcept {
    if (kind != Kind::number || text.empty()) return false;
    std::size_t v = 0;
    for (char c : text) {
      if (c < '0' || c > '9') return false;
      const auto d = static_cast<std::size_t>(c - '0');
      if (v > (static_cast<std::size_t>(-1) - d) / 10) return false;
      v = v * 10 + d;
    }
    out = v;
    return true;
  }

  // Compact text of the value (numbers as written), for error messages.
  std::string dump() const;
};

// Appends s as a JSON string literal: quotes, backslash and control characters escaped, other UTF-8 as is.
inline void append_quoted(std::string& out, std::string_view s) {
  static const char hex[] = "0123456789abcdef";
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

inline std::string Value::dump() const {
  std::string out;
  switch (kind) {
    case Kind::null: return "null";
    case Kind::boolean: return flag ? "true" : "false";
    case Kind::number: return text;
    case Kind::string: append_quoted(out, text); return out;
    case Kind::array:
      out += '[';
      for (std::size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + items[i].dump();
      return out + ']';
    case Kind::object:
      out += '{';
      for (std::size_t i = 0; i < members.size(); ++i) {
        if (i) out += ',';
        append_quoted(out, members[i].first);
        out += ':' + members[i].second.dump();
      }
      return out + '}';
  }
  return out;
}

// Thrown by parse with the byte offset of the problem, in its message and as offset(); callers wrap it in
// their own error (naming the file, the line).
class ParseError : public FormatError {
 public:
  ParseError(const std::string& message, std::size_t offset) : FormatError(message), offset_(offset) {}
  std::size_t offset() const noexcept { return offset_; }

 private:
  std::size_t offset_;
};

class Parser {
 public:
  static constexpr int max_depth = 64;

  explicit Parser(std::string_view text) : s_(text) {}

  // The one value the text holds, with only whitespace around it. Throws ParseError.
  Value parse() {
    Value v = value(0);
    skip_space();
    if (pos_ != s_.size()) error("unexpected '", s_[pos_], "' after the value");
    return v;
  }

 private:
  template <class... Args>
  [[noreturn]] void error(Args&&... args) const {
    throw ParseError(detail::concat("at byte ", pos_, ": ", std::forward<Args>(args)...), pos_);
  }

  void skip_space() noexcept {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }

  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  Value value(int depth) {
    if (depth >= max_depth) error("nesting deeper than ", max_depth, " levels");
    skip_space();
    if (pos_ == s_.size()) error("unexpected end of text, expected a value");
    Value v;
    const char c = s_[pos_];
    if (c == '{') {
      v.kind = Value::Kind::object;
      ++pos_;
      skip_space();
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        return v;
      }
      std::unordered_set<std::string> seen;  // keys so far: a header of n tensors is checked in O(n), not O(n^2)
      for (;;) {
        skip_space();
        if (pos_ == s_.size() || s_[pos_] != '"') error("expected a string key");
        std::string key = string();
        if (!seen.insert(key).second) error("duplicate key '", key, "'");
        skip_space();
        if (pos_ == s_.size() || s_[pos_] != ':') error("expected ':' after a key");
        ++pos_;
        v.members.emplace_back(std::move(key), value(depth + 1));
        skip_space();
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < s_.size() && s_[pos_] == '}') {
          ++pos_;
          return v;
        }
        error("expected ',' or '}' in an object");
      }
    }
    if (c == '[') {
      v.kind = Value::Kind::array;
      ++pos_;
      skip_space();
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return v;
      }
      for (;;) {
        v.items.push_back(value(depth + 1));
        skip_space();
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < s_.size() && s_[pos_] == ']') {
          ++pos_;
          return v;
        }
        error("expected ',' or ']' in an array");
      }
    }
    if (c == '"') {
      v.kind = Value::Kind::string;
      v.text = string();
      return v;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      v.kind = Value::Kind::number;
      v.text = number();
      return v;
    }
    if (literal("true") || literal("false")) {
      v.kind = Value::Kind::boolean;
      v.flag = c == 't';
      return v;
    }
    if (literal("null")) return v;
    error("unexpected '", c, "', expected a value");
  }

  std::string number() {
    const std::size_t start = pos_;
    auto digits = [&] {
      const std::size_t from = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ - from;
    };
    if (s_[pos_] == '-') ++pos_;
    if (pos_ < s_.size() && s_[pos_] == '0') {
      ++pos_;
    } else if (digits() == 0) {
      error("expected a digit");
    }
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (digits() == 0) error("expected a digit after '.'");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (digits() == 0) error("expected a digit in the exponent");
    }
    return std::string(s_.substr(start, pos_ - start));
  }

  unsigned hex4() {
    if (pos_ + 4 > s_.size()) error("truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = s_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f') v |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') v |= static_cast<unsigned>(h - 'A' + 10);
      else error("bad hex digit '", h, "' in a \\u escape");
    }
    return v;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // Length of the valid UTF-8 sequence at pos_ (1 to 4), or 0 when it is not valid (overlong forms,
  // surrogates and code points above U+10FFFF are invalid).
  std::size_t utf8_length() const noexcept {
    const auto b0 = static_cast<unsigned char>(s_[pos_]);
    std::size_t n;
    unsigned cp, min;
    if (b0 < 0x80) return 1;
    if ((b0 & 0xE0) == 0xC0) n = 2, cp = b0 & 0x1Fu, min = 0x80;
    else if ((b0 & 0xF0) == 0xE0) n = 3, cp = b0 & 0x0Fu, min = 0x800;
    else if ((b0 & 0xF8) == 0xF0) n = 4, cp = b0 & 0x07u, min = 0x10000;
    else return 0;
    if (pos_ + n > s_.size()) return 0;
    for (std::size_t i = 1; i < n; ++i) {
      const auto b = static_cast<unsigned char>(s_[pos_ + i]);
      if ((b & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (b & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
  }

  std::string string() {
    ++pos_;  // the opening quote
    std::string out;
    for (;;) {
      if (pos_ == s_.size()) error("unterminated string");
      const char c = s_[pos_];
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) error("control character in a string (escape it)");
      if (c != '\\') {
        const std::size_t n = utf8_length();
        if (n == 0) error("invalid UTF-8 in a string");
        out.append(s_.substr(pos_, n));
        pos_ += n;
        continue;
      }
      ++pos_;
      if (pos_ == s_.size()) error("unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) error("unpaired low surrogate in a \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (s_.substr(pos_, 2) != "\\u") error("unpaired high surrogate in a \\u escape");
            pos_ += 2;
            const unsigned low = hex4();
            if (low < 0xDC00 || low > 0xDFFF) error("a high surrogate must be followed by a low one");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default: error("unknown escape '\\", e, "'");
      }
    }
  }

  std::string_view s_;
  std::size_t pos_ = 0;
};

}  // namespace robustxlt::detail::json
