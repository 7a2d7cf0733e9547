#pragma once
// AVX, AVX2 and AVX2 + FMA3 primitives of the normal generator's float math (see generic.hpp).

#include <xsimd/xsimd.hpp>

#include "robustxlt/core/detail/arch/generic.hpp"

namespace robustxlt::simd::detail::arch {

#if XSIMD_WITH_AVX
// Blends on the bit shifted into the sign.
template <int Bit, class BU, class B>
B select_by_bit(const BU& word, const B& a, const B& b, xsimd::avx) noexcept {
  return _mm256_blendv_ps(b, a, xsimd::bitwise_cast<B>(word << (31 - Bit)));
}
#endif

#if XSIMD_WITH_AVX2
// One 8-float permute: the entries of table[0..8) at the low 3 bits of each lane of idx.
template <class BI>
xsimd::batch<float, typename BI::arch_type> lookup8(const float* table, const BI& idx, xsimd::avx2) noexcept {
  return _mm256_permutevar8x32_ps(_mm256_load_ps(table), idx);
}
#endif

// AVX2 has the permute; the fused multiply-add comes with FMA3. (A batch of this architecture exists only
// where both are compiled in.)
constexpr bool has_log_tables(xsimd::fma3<xsimd::avx2>) noexcept { return true; }

}  // namespace robustxlt::simd::detail::arch
