//! Shared test helpers: deterministic data and tolerances.

#![allow(dead_code)] // each test binary uses its own subset

pub mod plan_builder;

use llamane_cpu::weights::Weights;

/// SplitMix64: a tiny deterministic generator, so every run sees the same data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// Roughly normal (sum of four uniforms), unit-ish variance.
    pub fn normal(&mut self) -> f32 {
        (self.uniform() + self.uniform() + self.uniform() + self.uniform()) * 0.866
    }

    pub fn normals(&mut self, len: usize, scale: f32) -> Vec<f32> {
        (0..len).map(|_| self.normal() * scale).collect()
    }

    /// Activation-like data: normal, with a few channels 20x larger, as Llama hidden states have.
    pub fn activations(&mut self, m: usize, k: usize) -> Vec<f32> {
        let mut x = self.normals(m * k, 1.0);
        for r in 0..m {
            for j in (3..k).step_by(97) {
                x[r * k + j] *= 20.0;
            }
        }
        x
    }
}

/// Asserts `|got - want| <= tol * magnitude + 1e-30` element-wise, with a helpful message.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], magnitude: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for i in 0..got.len() {
        let err = (got[i] - want[i]).abs();
        let bound = tol * magnitude[i] + 1e-30;
        assert!(
            err <= bound,
            "{what}: element {i}: got {}, want {}, error {err:e} > bound {bound:e}",
            got[i],
            want[i]
        );
    }
}

/// `sum_j |x[r, j] * w[c, j]|` for every output, from the dequantized weights.
pub fn magnitudes(x: &[f32], m: usize, w: &Weights) -> Vec<f32> {
    let (n, k) = (w.n(), w.k());
    let mut row = vec![0.0; k];
    let mut mag = vec![0.0; m * n];
    for c in 0..n {
        w.dequantize_row(c, &mut row);
        for r in 0..m {
            mag[r * n + c] = (0..k).map(|j| (x[r * k + j] * row[j]).abs()).sum();
        }
    }
    mag
}

/// `x W^T` from the dequantized weights, in f64: the mathematical answer.
pub fn dequantized_product(x: &[f32], m: usize, w: &Weights) -> Vec<f32> {
    let (n, k) = (w.n(), w.k());
    let mut row = vec![0.0; k];
    let mut y = vec![0.0; m * n];
    for c in 0..n {
        w.dequantize_row(c, &mut row);
        for r in 0..m {
            let dot: f64 = (0..k)
                .map(|j| f64::from(x[r * k + j]) * f64::from(row[j]))
                .sum();
            y[r * n + c] = dot as f32;
        }
    }
    y
}
