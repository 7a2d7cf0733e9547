#pragma once
// Named parameters in one flat, 64-byte aligned buffer (and a twin buffer of gradients), so optimizers,
// gradient clipping and zeroing are single passes over memory, and checkpoints see PyTorch-style names.

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>
#include <xsimd/xsimd.hpp>
#include <xtensor/xadapt.hpp>

#include "robustxlt/core/error.hpp"
#include "robustxlt/core/tensor.hpp"

namespace robustxlt::nn {

struct ParameterInfo {
  std::string name;                // e.g. "encoder.layers.0.linear1.weight"
  std::vector<std::size_t> shape;  // e.g. [F, D]
  std::size_t offset = 0;          // first element in the flat buffers
  std::size_t size = 0;            // number of elements
};

template <class T>
class ParameterStore {
 public:
  using buffer_type = std::vector<T, xsimd::aligned_allocator<T, 64>>;

  // Registers a parameter and returns its index. The buffers grow and are zero-filled; pointers taken
  // earlier are invalidated, so models register everything before taking pointers.
  std::size_t add(const std::string& name, std::vector<std::size_t> shape) {
    if (find(name) != npos) detail::fail("ParameterStore::add: duplicate parameter name '", name, "'");
    ParameterInfo p;
    p.name = name;
    p.shape = std::move(shape);
    p.size = 1;
    for (auto s : p.shape) p.size *= s;
    // Start every parameter on a 64-byte boundary so SIMD loops over one parameter stay aligned.
    constexpr std::size_t align = 64 / sizeof(T);
    p.offset = (values_.size() + align - 1) / align * align;
    values_.resize(p.offset + p.size, T(0));
    grads_.resize(values_.size(), T(0));
    infos_.push_back(std::move(p));
    return infos_.size() - 1;
  }

  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  // Index of a parameter, or npos.
  std::size_t find(const std::string& name) const {
    for (std::size_t i = 0; i < infos_.size(); ++i)
      if (infos_[i].name == name) return i;
    return npos;
  }

  // Index of a parameter; throws InvalidArgument naming it when absent.
  std::size_t index(const std::string& name) const {
    const std::size_t i = find(name);
    if (i == npos) detail::fail("ParameterStore: no parameter named '", name, "'");
    return i;
  }

  const std::vector<ParameterInfo>& infos() const noexcept { return infos_; }
  std::size_t count() const noexcept { return infos_.size(); }
  // Number of scalar parameters (excluding alignment padding).
  std::size_t numel() const noexcept {
    std::size_t n = 0;
    for (const auto& p : infos_) n += p.size;
    return n;
  }

  T* value(std::size_t i) noexcept { return values_.data() + infos_[i].offset; }
  const T* value(std::size_t i) const noexcept { return values_.data() + infos_[i].offset; }
  T* grad(std::size_t i) noexcept { return grads_.data() + infos_[i].offset; }
  const T* grad(std::size_t i) const noexcept { return grads_.data() + infos_[i].offset; }

  // Flat buffers (padding between parameters stays zero in both).
  buffer_type& values() noexcept { return values_; }
  const buffer_type& values() const noexcept { return values_; }
  buffer_type& grads() noexcept { return grads_; }
  const buffer_type& grads() const noexcept { return grads_; }

  // xtensor views over one parameter's value or gradient (no copy; shape as registered).
  auto value_view(const std::string& name) {
    const auto& p = infos_[index(name)];
    return xt::adapt(values_.data() + p.offset, p.size, xt::no_ownership(), p.shape);
  }
  auto grad_view(const std::string& name) {
    const auto& p = infos_[index(name)];
    return xt::adapt(grads_.data() + p.offset, p.size, xt::no_ownership(), p.shape);
  }

  void zero_grad() noexcept { std::fill(grads_.begin(), grads_.end(), T(0)); }

 private:
  std::vector<ParameterInfo> infos_;
  buffer_type values_;
  buffer_type grads_;
};

}  // namespace robustxlt::nn
