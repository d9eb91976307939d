//! Small AVX2 building blocks shared by the kernels of this module.
//!
//! Every function carries the module's target features so it inlines into the kernels; callers
//! outside a function with those features need `unsafe` (see `super` for who may call).

use std::arch::x86_64::*;

/// Lanes of an f32 vector.
pub const LANES: usize = 8;

/// 8 floats from `s[i..i + 8]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn load(s: &[f32], i: usize) -> __m256 {
    assert!(i + LANES <= s.len(), "simd::load out of bounds");
    // SAFETY: the assert keeps all 8 reads inside `s`; loadu accepts any alignment.
    unsafe { _mm256_loadu_ps(s.as_ptr().add(i)) }
}

/// Stores 8 floats to `s[i..i + 8]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn store(s: &mut [f32], i: usize, v: __m256) {
    assert!(i + LANES <= s.len(), "simd::store out of bounds");
    // SAFETY: the assert keeps all 8 writes inside `s`; storeu accepts any alignment.
    unsafe { _mm256_storeu_ps(s.as_mut_ptr().add(i), v) }
}

/// The tail `s[i..]` (fewer than 8 elements) in the low lanes, zeros above.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn load_tail(s: &[f32], i: usize) -> __m256 {
    let mut buf = [0f32; LANES];
    buf[..s.len() - i].copy_from_slice(&s[i..]);
    load(&buf, 0)
}

/// Stores the low lanes of `v` to the tail `s[i..]` (fewer than 8 elements).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn store_tail(s: &mut [f32], i: usize, v: __m256) {
    let mut buf = [0f32; LANES];
    store(&mut buf, 0, v);
    let n = s.len() - i;
    s[i..].copy_from_slice(&buf[..n]);
}

/// Sum of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Maximum of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn hmax(v: __m256) -> f32 {
    let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_max_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Sum of the 8 i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// One f16 (as bits) to f32 with F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn f16_to_f32(bits: u16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

/// `exp(x)` per lane: range reduction `x = n ln2 + r` with `|r| <= ln2 / 2`, a degree-6
/// polynomial for `e^r` (Cephes' `expf` coefficients, about 1 ulp), and `2^n` built in the
/// exponent bits. Inputs below ln(FLT_MIN) give 0 (the true value is at most a subnormal), inputs
/// above ln(FLT_MAX) give +inf, NaN stays NaN.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn exp(x: __m256) -> __m256 {
    const LN_FLT_MIN: f32 = -87.336_55;
    const HI: f32 = 88.376_26;
    const LN_FLT_MAX: f32 = 88.722_84;
    // max/min return their second operand when one is NaN, so NaN passes through.
    let clamped = _mm256_min_ps(
        _mm256_set1_ps(HI),
        _mm256_max_ps(_mm256_set1_ps(LN_FLT_MIN), x),
    );
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        clamped,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    // ln 2 split into a part exact in few bits and a correction, so n * ln2 loses nothing.
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), clamped);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm256_set1_ps(1.987_569_1e-4);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.398_2e-3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.333_452e-3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.166_579_6e-2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.666_666_5e-1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5e-1));
    p = _mm256_fmadd_ps(
        p,
        _mm256_mul_ps(r, r),
        _mm256_add_ps(r, _mm256_set1_ps(1.0)),
    );
    let pow2n = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    )));
    let result = _mm256_mul_ps(p, pow2n);
    // Below ln(FLT_MIN) the clamped value would give FLT_MIN; the answer is (nearly) 0. Above
    // ln(FLT_MAX) the answer overflows to +inf, as the scalar `exp` does.
    let underflow = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(LN_FLT_MIN));
    let overflow = _mm256_cmp_ps::<_CMP_GT_OQ>(x, _mm256_set1_ps(LN_FLT_MAX));
    let result = _mm256_blendv_ps(result, _mm256_set1_ps(f32::INFINITY), overflow);
    _mm256_andnot_ps(underflow, result)
}
