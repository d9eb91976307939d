//! Row normalizations: RMS norm (Llama) and layer norm.

use std::arch::x86_64::*;

use super::simd::{hsum, load, load_tail, store, store_tail, LANES};

/// Sum over the row of `f(8 lanes)`, the zero-padded tail included.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn row_sum(x: &[f32], f: impl Fn(__m256, __m256) -> __m256) -> f32 {
    let main = x.len() / LANES * LANES;
    let mut acc = _mm256_setzero_ps();
    for i in (0..main).step_by(LANES) {
        acc = f(load(x, i), acc);
    }
    let mut sum = hsum(acc);
    if main < x.len() {
        // The tail is summed lane by lane so its zero padding adds nothing.
        let mut buf = [0f32; LANES];
        store(&mut buf, 0, f(load_tail(x, main), _mm256_setzero_ps()));
        sum += buf[..x.len() - main].iter().sum::<f32>();
    }
    sum
}

/// Per row of `weight.len()`: `out = x / sqrt(mean(x^2) + eps) * weight`.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn rms_norm(out: &mut [f32], x: &[f32], weight: &[f32], eps: f32) {
    let dim = weight.len();
    assert!(
        dim > 0 && x.len() == out.len() && x.len().is_multiple_of(dim),
        "rms_norm: lengths are not rows of weight.len()"
    );
    let main = dim / LANES * LANES;
    for (o, x) in out.chunks_exact_mut(dim).zip(x.chunks_exact(dim)) {
        let sum_sq = row_sum(x, |v, acc| _mm256_fmadd_ps(v, v, acc));
        let inv = _mm256_set1_ps(1.0 / (sum_sq / dim as f32 + eps).sqrt());
        for i in (0..main).step_by(LANES) {
            store(
                o,
                i,
                _mm256_mul_ps(_mm256_mul_ps(load(x, i), inv), load(weight, i)),
            );
        }
        if main < dim {
            let v = _mm256_mul_ps(load_tail(x, main), inv);
            store_tail(o, main, _mm256_mul_ps(v, load_tail(weight, main)));
        }
    }
}

/// Per row of `dim`: `out = (x - mean) / sqrt(var + eps) * gamma + beta`, biased variance.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn layer_norm(
    out: &mut [f32],
    x: &[f32],
    dim: usize,
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
    eps: f32,
) {
    assert!(
        dim > 0 && x.len() == out.len() && x.len().is_multiple_of(dim),
        "layer_norm: lengths are not rows of dim"
    );
    assert!(
        gamma.is_none_or(|g| g.len() == dim) && beta.is_none_or(|b| b.len() == dim),
        "layer_norm: gamma or beta length is not dim"
    );
    let main = dim / LANES * LANES;
    let scale_shift = |v: __m256, g: Option<__m256>, b: Option<__m256>| {
        let v = g.map_or(v, |g| _mm256_mul_ps(v, g));
        b.map_or(v, |b| _mm256_add_ps(v, b))
    };
    for (o, x) in out.chunks_exact_mut(dim).zip(x.chunks_exact(dim)) {
        let mean = row_sum(x, |v, acc| _mm256_add_ps(v, acc)) / dim as f32;
        let mean_v = _mm256_set1_ps(mean);
        let var = row_sum(x, |v, acc| {
            let d = _mm256_sub_ps(v, mean_v);
            _mm256_fmadd_ps(d, d, acc)
        });
        // The zero padding of the tail contributed (0 - mean)^2 per padded lane only inside
        // `row_sum`'s vector, which it discards, so `var` covers exactly the row.
        let inv = _mm256_set1_ps(1.0 / (var / dim as f32 + eps).sqrt());
        for i in (0..main).step_by(LANES) {
            let v = _mm256_mul_ps(_mm256_sub_ps(load(x, i), mean_v), inv);
            let v = scale_shift(v, gamma.map(|g| load(g, i)), beta.map(|b| load(b, i)));
            store(o, i, v);
        }
        if main < dim {
            let v = _mm256_mul_ps(_mm256_sub_ps(load_tail(x, main), mean_v), inv);
            let v = scale_shift(
                v,
                gamma.map(|g| load_tail(g, main)),
                beta.map(|b| load_tail(b, main)),
            );
            store_tail(o, main, v);
        }
    }
}
