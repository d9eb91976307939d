//! Element-wise kernels: residual add, the SwiGLU gate and the activations.

use std::arch::x86_64::*;

use super::simd::{exp, load, load_tail, store, store_tail, LANES};

/// Applies `f` to 8 lanes of `a` and `b` at a time; the tail goes through `f` zero-padded, so
/// every element sees the same arithmetic.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn binary(out: &mut [f32], a: &[f32], b: &[f32], f: impl Fn(__m256, __m256) -> __m256) {
    assert!(
        a.len() == out.len() && b.len() == out.len(),
        "length mismatch"
    );
    let main = out.len() / LANES * LANES;
    for i in (0..main).step_by(LANES) {
        store(out, i, f(load(a, i), load(b, i)));
    }
    if main < out.len() {
        store_tail(out, main, f(load_tail(a, main), load_tail(b, main)));
    }
}

/// `out[i] = a[i] + b[i]`.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn add(out: &mut [f32], a: &[f32], b: &[f32]) {
    binary(out, a, b, |a, b| _mm256_add_ps(a, b));
}

/// `out[i] = a[i] / (1 + exp(-a[i])) * b[i]`.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn silu_mul(out: &mut [f32], a: &[f32], b: &[f32]) {
    binary(out, a, b, |a, b| {
        let neg = _mm256_xor_ps(a, _mm256_set1_ps(-0.0));
        let denom = _mm256_add_ps(_mm256_set1_ps(1.0), exp(neg));
        _mm256_mul_ps(_mm256_div_ps(a, denom), b)
    });
}

/// Applies `f` to 8 lanes of `x` at a time, the tail zero-padded (see `binary`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn unary(out: &mut [f32], x: &[f32], f: impl Fn(__m256) -> __m256) {
    assert_eq!(x.len(), out.len(), "length mismatch");
    let main = out.len() / LANES * LANES;
    for i in (0..main).step_by(LANES) {
        store(out, i, f(load(x, i)));
    }
    if main < out.len() {
        store_tail(out, main, f(load_tail(x, main)));
    }
}

/// `1 + exp(-x)`, the denominator of both activations.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn one_plus_exp_neg(x: __m256) -> __m256 {
    let neg = _mm256_xor_ps(x, _mm256_set1_ps(-0.0));
    _mm256_add_ps(_mm256_set1_ps(1.0), exp(neg))
}

/// `out[i] = x[i] / (1 + exp(-x[i]))`.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn silu(out: &mut [f32], x: &[f32]) {
    unary(out, x, |x| _mm256_div_ps(x, one_plus_exp_neg(x)));
}

/// `out[i] = 1 / (1 + exp(-x[i]))`.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn sigmoid(out: &mut [f32], x: &[f32]) {
    unary(out, x, |x| {
        _mm256_div_ps(_mm256_set1_ps(1.0), one_plus_exp_neg(x))
    });
}
