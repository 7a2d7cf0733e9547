#pragma once
// SSE4.1 primitives of the normal generator's float math (see generic.hpp).

#include <xsimd/xsimd.hpp>

#include "robustxlt/core/detail/arch/generic.hpp"

namespace robustxlt::simd::detail::arch {

#if XSIMD_WITH_SSE4_1
// Blends on the bit shifted into the sign.
template <int Bit, class BU, class B>
B select_by_bit(const BU& word, const B& a, const B& b, xsimd::sse4_1) noexcept {
  return _mm_blendv_ps(b, a, xsimd::bitwise_cast<B>(word << (31 - Bit)));
}
#endif

}  // namespace robustxlt::simd::detail::arch
