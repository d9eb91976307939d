//! Rotary position embedding in the half-split layout.

use std::arch::x86_64::*;

use super::simd::{load, store, LANES};

/// Per row of `2 * cos.len()`: `x1 cos - x2 sin | x2 cos + x1 sin` (see the scalar reference),
/// eight pairs at a time, the same roundings (no fused multiply-add).
#[target_feature(enable = "avx2,fma,f16c")]
pub fn rope(out: &mut [f32], x: &[f32], cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    assert!(
        half > 0 && sin.len() == half && x.len() == out.len() && x.len().is_multiple_of(2 * half),
        "rope: lengths are not rows of 2 * cos.len()"
    );
    let main = half / LANES * LANES;
    for (o, x) in out.chunks_exact_mut(2 * half).zip(x.chunks_exact(2 * half)) {
        let (x1, x2) = x.split_at(half);
        let (o1, o2) = o.split_at_mut(half);
        for i in (0..main).step_by(LANES) {
            let (a, b) = (load(x1, i), load(x2, i));
            let (c, s) = (load(cos, i), load(sin, i));
            store(
                o1,
                i,
                _mm256_sub_ps(_mm256_mul_ps(a, c), _mm256_mul_ps(b, s)),
            );
            store(
                o2,
                i,
                _mm256_add_ps(_mm256_mul_ps(b, c), _mm256_mul_ps(a, s)),
            );
        }
        for i in main..half {
            o1[i] = x1[i] * cos[i] - x2[i] * sin[i];
            o2[i] = x2[i] * cos[i] + x1[i] * sin[i];
        }
    }
}
