#pragma once
// Float -2 ln x, sine/cosine and a bit select for the normal generator (core/random.hpp). The polynomials
// are near-minimax fits whose approximation error is below float rounding on the reduced interval, so the
// error is a few rounding steps; tests/test_random.cpp checks them on every input the generator can give
// them, on every instruction set the tests are built for. The instructions that differ between instruction
// sets (permutes, blends, the fused multiply-add) are in core/detail/arch/, one file per instruction set.

#include <cstdint>
#include <utility>
#include <xsimd/xsimd.hpp>

#include "robustxlt/core/detail/arch/avx.hpp"
#include "robustxlt/core/detail/arch/avx512f.hpp"
#include "robustxlt/core/detail/arch/generic.hpp"
#include "robustxlt/core/detail/arch/sse4_1.hpp"
#include "robustxlt/core/simd.hpp"

namespace robustxlt::simd::detail {

// -2 ln x on AVX2 with FMA3 and on AVX-512: [sqrt(1/2), sqrt(2)) is cut into 8 slices by the top 3 bits of
// the mantissa offset from sqrt(1/2). Slice i has a multiplier c_i near the reciprocal of its middle, with
// at most 13 significant bits so that m c_i - 1 is nearly exact, chosen so that 2 ln c_i is within 7e-11
// of the float stored for it (c = 1 on the slice holding 1, which keeps the result exact in relative terms
// near x = 1).
// Entries 8-15 repeat 0-7 for AVX-512's 16-entry permute. Table of -2 c_i and of 2 ln c_i:
alignas(64) inline constexpr float neg2_log_scale[16] = {
    -2.694580078125f, -2.4945068359375f, -2.361083984375f,  -2.11474609375f,
    -2.0f,            -1.8055419921875f, -1.64111328125f,   -1.49285888671875f,
    -2.694580078125f, -2.4945068359375f, -2.361083984375f,  -2.11474609375f,
    -2.0f,            -1.8055419921875f, -1.64111328125f,   -1.49285888671875f};
alignas(64) inline constexpr float neg2_log_offset[16] = {
    0.5961903929710388f, 0.4418877363204956f,   0.33194729685783386f, 0.11157514899969101f,
    0.0f,                -0.20457272231578827f, -0.3955446779727936f, -0.5849083662033081f,
    0.5961903929710388f, 0.4418877363204956f,   0.33194729685783386f, 0.11157514899969101f,
    0.0f,                -0.20457272231578827f, -0.3955446779727936f, -0.5849083662033081f};

// Whether neg2_log uses the tables (AVX2 with FMA3, or AVX-512 batches) or a division (other instruction
// sets, where a fused multiply-add may not exist).
inline constexpr bool neg2_log_has_permute = arch::has_log_tables(typename batch<float>::arch_type{});


// -2 ln(x 2^-ScaleExp) for positive normal floats x (2^-126 <= x < inf; 0, subnormals, infinities and NaN
// are not handled); ScaleExp folds a power-of-two scale into the exponent at no cost. x = 2^e m with m in
// [sqrt(1/2), sqrt(2)), and -2 ln x = -2 e ln 2 - 2 ln m:
// - on AVX2 with FMA3 and on AVX-512, -2 ln m = 2 ln c_i - 2 log1p(r) with r = m c_i - 1, |r| < 0.062,
//   from the tables above (two permutes, no division); -2 log1p(r) = r' + r'^2 Q(r') with r' = -2r and Q of
//   degree 3 (relative approximation error 1e-8);
// - elsewhere, -2 ln m = -4 atanh(s) with s = (m - 1) / (m + 1), |s| <= 0.1716, as -4s (1 + z P(z)),
//   z = s^2, P of degree 2 (relative approximation error 8e-10).
// The two paths agree to a few rounding steps, not bit for bit.
template <int ScaleExp = 0>
inline batch<float> neg2_log(const batch<float>& x) noexcept {
  using bi = xsimd::batch<std::int32_t>;
  using bf = batch<float>;
  static_assert(ScaleExp >= 0 && ScaleExp < 64, "neg2_log: ScaleExp must be in [0, 64)");
  constexpr std::int32_t sqrt_half = 0x3f3504f3;  // bits of 0.70710677f
  const bi bits = xsimd::bitwise_cast<bi>(x) - bi(sqrt_half + ScaleExp * (1 << 23));
  const bi e = bits >> 23;  // arithmetic shift: the exponent of x 2^-ScaleExp relative to the interval above
  const auto m = xsimd::bitwise_cast<bf>((bits & bi(0x007fffff)) + bi(sqrt_half));
  if constexpr (neg2_log_has_permute) {
    const bi slice = bits >> 20;  // the permutes read only its low bits: the top 3 bits of the mantissa offset
    using A = typename bf::arch_type;
    const auto fused_multiply_add = [](const bf& a, const bf& b, const bf& c) { return arch::fused_multiply_add(a, b, c, A{}); };
    const bf rp = fused_multiply_add(m, arch::lookup8(neg2_log_scale, slice, A{}), bf(2.0f));  // -2 (m c_i - 1)
    const bf rp2 = rp * rp;
    const bf q = fused_multiply_add(rp2, fused_multiply_add(rp, bf(0.012555756606161594f), bf(0.03135000541806221f)),
                                    fused_multiply_add(rp, bf(0.08333300054073334f), bf(0.24999961256980896f)));
    // Estrin's scheme, and the exponent term added off the chain through r': the sqrt after this waits on it
    const bf offset = fused_multiply_add(xsimd::batch_cast<float>(e), bf(-1.386294361119890618f),
                                         arch::lookup8(neg2_log_offset, slice, A{}));
    return fused_multiply_add(rp2, q, rp + offset);
  } else {
    const bf s4 = xsimd::fma(m, bf(-4.0f), bf(4.0f)) / (m + bf(1.0f));  // -4s; 4 - 4m is exact
    const bf z = s4 * s4;                                               // 16 s^2
    bf p = xsimd::fma(z, bf(0.1493547409772873f / 4096), bf(0.19988787174224854f / 256));
    p = xsimd::fma(p, z, bf(0.3333338797092438f / 16));
    return xsimd::fma(xsimd::batch_cast<float>(e), bf(-1.386294361119890618f), xsimd::fma(s4 * z, p, s4));
  }
}

// Lanes of a where bit Bit of the 32-bit lane of word is set, of b elsewhere. B is batch<float> and BU the
// batch of 32-bit unsigned integers of the same width. AVX-512 tests the bit into a mask register, AVX and
// SSE4.1 blend on the bit shifted into the sign, other instruction sets mask with the bit spread over the lane.
template <int Bit, class BU, class B>
inline B select_by_bit(const BU& word, const B& a, const B& b) noexcept {
  static_assert(Bit >= 0 && Bit < 32, "select_by_bit: Bit must be in [0, 32)");
  static_assert(BU::size == B::size, "select_by_bit: word and values must have the same number of lanes");
  return arch::select_by_bit<Bit>(word, a, b, typename B::arch_type{});
}

// a sin(pi x / 2) and a cos(pi x / 2) for |x| <= 1/2, so angles in [-pi/4, pi/4] (the normal generator draws
// its angles there, in units of a quarter turn, and maps them to the other quarter turns with random
// bits): with t = pi x / 2, sin t = t (1 + t^2 S(t^2)) and cos t = 1 + t^2 C(t^2), S and C of degree 2
// (relative approximation errors 4e-9 and 4e-8), the powers of pi / 2 folded into the coefficients, and
// so is the factor a (callers in a loop compute those products once). Returns {a sin, a cos}.
inline std::pair<batch<float>, batch<float>> sincos_half_pi(const batch<float>& x,
                                                            const batch<float>& a = batch<float>(1.0f)) noexcept {
  using bf = batch<float>;
  const bf z = x * x;
  bf ps = xsimd::fma(z, a * bf(-0.00460530924384514f), a * bf(0.07968157762828856f));
  ps = xsimd::fma(ps, z, a * bf(-0.6459636547279496f));
  bf pc = xsimd::fma(z, a * bf(-0.020417278987280733f), a * bf(0.25360319966332245f));
  pc = xsimd::fma(pc, z, a * bf(-1.2336976822991308f));
  return {x * xsimd::fma(z, ps, a * bf(1.5707963267948966f)), xsimd::fma(pc, z, a)};
}

}  // namespace robustxlt::simd::detail
