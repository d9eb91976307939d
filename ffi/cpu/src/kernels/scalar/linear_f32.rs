//! Linear layers with f32 activations, one function per weight format.
//!
//! Each output is one dot product in index order. Quantized formats multiply integers by the
//! activations and apply the scale once per channel (or once per block of 32), which is how the
//! SIMD kernels group their rounding too.

use crate::kernels::out_columns::OutColumns;
use crate::weights::{int4_at, Scales, WeightData, Weights, BLOCK};

/// Calls `dot(x_row, c)` for every row of `x` and column `c` of `out`.
fn each_output(out: &mut OutColumns, x: &[f32], w: &Weights, dot: impl Fn(&[f32], usize) -> f32) {
    let k = w.k();
    assert!(
        out.n() == w.n() && x.len() == out.m() * k,
        "linear: x, weights and output shapes disagree"
    );
    let cols = out.cols();
    for r in 0..out.m() {
        let xr = &x[r * k..(r + 1) * k];
        for (o, c) in out.row(r).iter_mut().zip(cols.clone()) {
            *o = dot(xr, c);
        }
    }
}

/// Dense f32 weights.
pub fn dense_f32(out: &mut OutColumns, x: &[f32], w: &Weights) {
    let WeightData::F32(data) = w.data() else {
        panic!("dense_f32: weights are {:?}", w.format())
    };
    let k = w.k();
    each_output(out, x, w, |xr, c| {
        xr.iter()
            .zip(&data[c * k..(c + 1) * k])
            .map(|(a, b)| a * b)
            .sum()
    });
}

/// Dense f16 weights.
pub fn dense_f16(out: &mut OutColumns, x: &[f32], w: &Weights) {
    let WeightData::F16(data) = w.data() else {
        panic!("dense_f16: weights are {:?}", w.format())
    };
    let k = w.k();
    each_output(out, x, w, |xr, c| {
        xr.iter()
            .zip(&data[c * k..(c + 1) * k])
            .map(|(a, &b)| a * half::f16::from_bits(b).to_f32())
            .sum()
    });
}

/// int8 weights, per-channel scales: `scale[c] * sum_j x[j] * q[c, j]`.
pub fn int8_per_channel(out: &mut OutColumns, x: &[f32], w: &Weights) {
    let WeightData::Int8PerChannel { data, scales } = w.data() else {
        panic!("int8_per_channel: weights are {:?}", w.format())
    };
    let k = w.k();
    each_output(out, x, w, |xr, c| {
        let dot: f32 = xr
            .iter()
            .zip(&data[c * k..(c + 1) * k])
            .map(|(a, &q)| a * f32::from(q))
            .sum();
        scales.get(c) * dot
    });
}

/// int4 weights, per-channel scales: `scale[c] * sum_j x[j] * q[c, j]`.
pub fn int4_per_channel(out: &mut OutColumns, x: &[f32], w: &Weights) {
    let WeightData::Int4PerChannel { packed, scales } = w.data() else {
        panic!("int4_per_channel: weights are {:?}", w.format())
    };
    let k = w.k();
    each_output(out, x, w, |xr, c| {
        let dot: f32 = xr
            .iter()
            .enumerate()
            .map(|(j, a)| a * f32::from(int4_at(packed, c * k + j)))
            .sum();
        scales.get(c) * dot
    });
}

/// `sum_b scale[c, b] * sum_(j in b) x[j] * q(c * k + j)` over the blocks of 32 of row `c`.
fn block_dot(xr: &[f32], c: usize, scales: Scales, q: impl Fn(usize) -> i8) -> f32 {
    let k = xr.len();
    let blocks = k / BLOCK;
    let mut sum = 0.0f32;
    for (b, xb) in xr.chunks_exact(BLOCK).enumerate() {
        let base = c * k + b * BLOCK;
        let dot: f32 = xb
            .iter()
            .enumerate()
            .map(|(i, a)| a * f32::from(q(base + i)))
            .sum();
        sum += scales.get(c * blocks + b) * dot;
    }
    sum
}

/// int4 weights, scales per block of 32: `sum_b scale[c, b] * sum_(j in b) x[j] * q[c, j]`.
pub fn int4_block32(out: &mut OutColumns, x: &[f32], w: &Weights) {
    let WeightData::Int4Block32 { packed, scales } = w.data() else {
        panic!("int4_block32: weights are {:?}", w.format())
    };
    each_output(out, x, w, |xr, c| {
        block_dot(xr, c, scales, |i| int4_at(packed, i))
    });
}

/// int8 weights, scales per block of 32: as [`int4_block32`].
pub fn int8_block32(out: &mut OutColumns, x: &[f32], w: &Weights) {
    let WeightData::Int8Block32 { data, scales } = w.data() else {
        panic!("int8_block32: weights are {:?}", w.format())
    };
    each_output(out, x, w, |xr, c| block_dot(xr, c, scales, |i| data[i]));
}
