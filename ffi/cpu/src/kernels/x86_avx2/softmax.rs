//! Softmax over rows.

use std::arch::x86_64::*;

use super::simd::{exp, hmax, load, load_tail, store, store_tail, LANES};

/// Per row of `dim`: `out = exp(x - max) / sum(exp(x - max))`, zeros for an all -inf row.
///
/// Element `j` always lands in lane `j % 8` of the sum, the tail included, and the lanes are
/// added once at the end: entries of -inf contribute exact zeros to their lanes, so trailing
/// masked entries (a longer key axis) do not change a row's result.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn softmax(out: &mut [f32], x: &[f32], dim: usize) {
    assert!(
        dim > 0 && x.len() == out.len() && x.len().is_multiple_of(dim),
        "softmax: lengths are not rows of dim"
    );
    let main = dim / LANES * LANES;
    let neg_inf = _mm256_set1_ps(f32::NEG_INFINITY);
    for (o, x) in out.chunks_exact_mut(dim).zip(x.chunks_exact(dim)) {
        let mut max_v = neg_inf;
        for i in (0..main).step_by(LANES) {
            max_v = _mm256_max_ps(max_v, load(x, i));
        }
        let mut max = hmax(max_v);
        for &v in &x[main..] {
            max = max.max(v);
        }
        if max == f32::NEG_INFINITY {
            o.fill(0.0);
            continue;
        }
        let max_v = _mm256_set1_ps(max);
        let mut sum_v = _mm256_setzero_ps();
        for i in (0..main).step_by(LANES) {
            let e = exp(_mm256_sub_ps(load(x, i), max_v));
            store(o, i, e);
            sum_v = _mm256_add_ps(sum_v, e);
        }
        if main < dim {
            // Pad with -inf so the padded lanes contribute exp(-inf) = 0.
            let mut buf = [f32::NEG_INFINITY; LANES];
            buf[..dim - main].copy_from_slice(&x[main..]);
            let e = exp(_mm256_sub_ps(load(&buf, 0), max_v));
            store_tail(o, main, e);
            sum_v = _mm256_add_ps(sum_v, e);
        }
        let inv = _mm256_set1_ps(1.0 / super::simd::hsum(sum_v));
        for i in (0..main).step_by(LANES) {
            store(o, i, _mm256_mul_ps(load(o, i), inv));
        }
        if main < dim {
            store_tail(o, main, _mm256_mul_ps(load_tail(o, main), inv));
        }
    }
}
