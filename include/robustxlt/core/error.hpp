#pragma once
// Exceptions thrown by robustxlt. Every message names the argument, the expected and the actual value,
// e.g. "forward: ids[1, 3] must be in [0, 8000), got 9001".

#if !defined(__cpp_exceptions) && !defined(__EXCEPTIONS) && !defined(_CPPUNWIND)
#error "robustxlt reports bad input with exceptions (robustxlt::Error); compile with exceptions enabled (remove -fno-exceptions)."
// The compiler goes on after #error, and every throw and catch in the library would then add an error of
// its own. A missing header is fatal, so this stops it with the message above as the one that explains.
#include <robustxlt/compilation-stopped-because-exceptions-are-disabled>
#endif

#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace robustxlt {

// Base of every exception the library throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An argument has a value outside its documented domain.
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// A word, name or key is not where it was looked up (a vocabulary, a table, a checkpoint).
class LookupError : public InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};

// Tensor shapes disagree with each other or with the model.
class ShapeError : public InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};

// NaN or Inf where finite numbers are required.
class NumericError : public Error {
 public:
  using Error::Error;
};

// A file could not be opened, read, written or renamed.
class IoError : public Error {
 public:
  using Error::Error;
};

// A file was read but its contents are malformed (truncated, bad header, wrong dtype, ...).
class FormatError : public Error {
 public:
  using Error::Error;
};

// A computation would need more memory than the budget set with robustxlt::set_memory_budget allows;
// thrown before anything is allocated (see core/memory.hpp).
class MemoryBudgetError : public Error {
 public:
  using Error::Error;
};

namespace detail {

template <class... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

template <class E = InvalidArgument, class... Args>
[[noreturn]] void fail(Args&&... args) {
  throw E(concat(std::forward<Args>(args)...));
}

}  // namespace detail

// Throws E (InvalidArgument unless told otherwise) with the pieces of the message concatenated, unless
// condition holds. The error helper for code built on the library, in the library's message style:
//   robustxlt::require(k > 0, "my_loop: copies must be > 0, got ", k);
template <class E = InvalidArgument, class... Args>
void require(bool condition, Args&&... message) {
  static_assert(std::is_base_of_v<Error, E>, "robustxlt::require: E must derive from robustxlt::Error");
  if (!condition) detail::fail<E>(std::forward<Args>(message)...);
}

// Throws E with the pieces of the message concatenated: robustxlt::fail<FormatError>("parse: line ", n, " has no tab").
template <class E = InvalidArgument, class... Args>
[[noreturn]] void fail(Args&&... message) {
  static_assert(std::is_base_of_v<Error, E>, "robustxlt::fail: E must derive from robustxlt::Error");
  detail::fail<E>(std::forward<Args>(message)...);
}

}  // namespace robustxlt
