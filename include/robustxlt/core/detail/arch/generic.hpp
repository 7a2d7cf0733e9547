#pragma once
// Instruction-set primitives of the normal generator's float math (core/detail/normal_math.hpp), the
// portable versions. Each primitive takes the xsimd architecture of its batch as a last, tag argument; the
// files next to this one overload it for the instruction sets that have a faster instruction, and overload
// resolution picks the most derived architecture (xsimd's avx512bw derives from avx512f, fma3<avx2> from
// avx2 and avx, sse4_2 from sse4_1, and all from generic). Every intrinsic lives in one of those files.

#include <cstdint>
#include <xsimd/xsimd.hpp>

namespace robustxlt::simd::detail::arch {

// Whether -2 ln x may use the slice tables: it needs a permute of 8 or 16 floats (lookup8) and a fused
// multiply-add; the portable path divides instead.
constexpr bool has_log_tables(xsimd::generic) noexcept { return false; }

// The entries of table at the low bits of each lane of idx. Only instruction sets with a permute have one.
template <class BI>
xsimd::batch<float, typename BI::arch_type> lookup8(const float*, const BI&, xsimd::generic) noexcept {
  static_assert(sizeof(BI) == 0, "lookup8: needs an AVX2 or AVX-512 batch (check has_log_tables first)");
  return {};
}

// a b + c. On instruction sets with FMA3 xsimd::fma is the fused instruction, rounded once.
template <class B>
B fused_multiply_add(const B& a, const B& b, const B& c, xsimd::generic) noexcept {
  return xsimd::fma(a, b, c);
}

// Lanes of a where bit Bit of the 32-bit lane of word is set, of b elsewhere: the bit spread over the lane
// by an arithmetic shift, then a masked exchange.
template <int Bit, class BU, class B>
B select_by_bit(const BU& word, const B& a, const B& b, xsimd::generic) noexcept {
  using bi = xsimd::batch<std::int32_t, typename B::arch_type>;
  const auto sign = xsimd::bitwise_cast<B>(word << (31 - Bit));
  const auto full = xsimd::bitwise_cast<B>(xsimd::bitwise_cast<bi>(sign) >> 31);
  return b ^ ((a ^ b) & full);
}

}  // namespace robustxlt::simd::detail::arch
