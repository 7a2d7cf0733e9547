#pragma once
// AVX-512 primitives of the normal generator's float math (see generic.hpp).

#include <cstdint>
#include <xsimd/xsimd.hpp>

#include "robustxlt/core/detail/arch/generic.hpp"

namespace robustxlt::simd::detail::arch {

// A batch of this architecture exists only where AVX-512F is compiled in.
constexpr bool has_log_tables(xsimd::avx512f) noexcept { return true; }

#if XSIMD_WITH_AVX512F
// One 16-float permute: the entries of table[0..16) at the low 4 bits of each lane of idx.
template <class BI>
xsimd::batch<float, typename BI::arch_type> lookup8(const float* table, const BI& idx, xsimd::avx512f) noexcept {
  return _mm512_permutexvar_ps(idx, _mm512_load_ps(table));
}

// xsimd 8 has no AVX-512 kernel for fma and falls back to a * b + c, which only some compilers contract; the
// table path of -2 ln x needs the single rounding, so it asks for the instruction.
template <class B>
B fused_multiply_add(const B& a, const B& b, const B& c, xsimd::avx512f) noexcept {
  return _mm512_fmadd_ps(a, b, c);
}

// Tests the bit into a mask register and blends on it.
template <int Bit, class BU, class B>
B select_by_bit(const BU& word, const B& a, const B& b, xsimd::avx512f) noexcept {
  return _mm512_mask_blend_ps(_mm512_test_epi32_mask(word, _mm512_set1_epi32(std::int32_t(1u << Bit))), b, a);
}
#endif

}  // namespace robustxlt::simd::detail::arch
