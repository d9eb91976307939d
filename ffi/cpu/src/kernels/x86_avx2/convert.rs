//! f16 <-> f32 buffer conversion with F16C.

use std::arch::x86_64::*;

/// `out[i] = f32(x[i])`.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn f16_to_f32(out: &mut [f32], x: &[u16]) {
    assert_eq!(out.len(), x.len(), "f16_to_f32: length mismatch");
    let main = x.len() / 8 * 8;
    for i in (0..main).step_by(8) {
        // SAFETY: i + 8 <= main <= x.len(): the 16-byte read stays inside `x`.
        let h = unsafe { _mm_loadu_si128(x.as_ptr().add(i).cast()) };
        super::simd::store(out, i, _mm256_cvtph_ps(h));
    }
    for i in main..x.len() {
        out[i] = super::simd::f16_to_f32(x[i]);
    }
}

/// `out[i] = f16(x[i])`, round to nearest even.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn f32_to_f16(out: &mut [u16], x: &[f32]) {
    assert_eq!(out.len(), x.len(), "f32_to_f16: length mismatch");
    let main = x.len() / 8 * 8;
    for i in (0..main).step_by(8) {
        let h = _mm256_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT }>(super::simd::load(x, i));
        // SAFETY: i + 8 <= main <= out.len(): the 16-byte write stays inside `out`.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().add(i).cast(), h) };
    }
    for i in main..x.len() {
        let h = _mm_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT }>(_mm_set_ss(x[i]));
        out[i] = _mm_extract_epi16::<0>(h) as u16;
    }
}
