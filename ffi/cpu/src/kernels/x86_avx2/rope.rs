//! Rotary position embedding on adjacent pairs.

use std::arch::x86_64::*;

use super::simd::{load, load4, store, LANES};

/// Per row of `2 * cos.len()`: each pair `(x0, x1)` becomes
/// `(x0 cos - x1 sin, x0 sin + x1 cos)`.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn rope(out: &mut [f32], x: &[f32], cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    assert!(
        half > 0 && sin.len() == half && x.len() == out.len() && x.len().is_multiple_of(2 * half),
        "rope: lengths are not rows of 2 * cos.len()"
    );
    let dim = 2 * half;
    // Whole vectors cover 4 pairs; the remaining pairs go through the scalar formula.
    let main = dim / LANES * LANES;
    // Spreads 4 consecutive cos (or sin) values over 8 lanes as c0 c0 c1 c1 c2 c2 c3 c3.
    let spread = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    for (o, x) in out.chunks_exact_mut(dim).zip(x.chunks_exact(dim)) {
        for i in (0..main).step_by(LANES) {
            // Only lanes 0..4 of the widened vectors are read by the permutation.
            let c = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(load4(cos, i / 2)), spread);
            let s = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(load4(sin, i / 2)), spread);
            let v = load(x, i);
            let swapped = _mm256_permute_ps::<0b10_11_00_01>(v);
            // Even lanes: x0 c - x1 s; odd lanes: x1 c + x0 s.
            store(o, i, _mm256_fmaddsub_ps(v, c, _mm256_mul_ps(swapped, s)));
        }
        for p in main / 2..half {
            let (x0, x1) = (x[2 * p], x[2 * p + 1]);
            o[2 * p] = x0 * cos[p] - x1 * sin[p];
            o[2 * p + 1] = x0 * sin[p] + x1 * cos[p];
        }
    }
}
