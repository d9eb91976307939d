//! Linear layers with int8 activations: exact integer dot products per block of 32, then
//! `sum_b scale_x[b] * scale_w * dot_b` in f32. The activations are read through their layout,
//! whichever it is, so this reference checks the kernels of every instruction set.

use crate::kernels::out_columns::OutColumns;
use crate::kernels::q8_rows::Q8Rows;
use crate::weights::{int4_at, WeightData, Weights, BLOCK};

/// Calls `dot(r, c, b)` (the integer dot product of block `b`) and combines the blocks with the
/// activation scales and `weight_scale(c, b)`.
fn each_output(
    out: &mut OutColumns,
    x: &Q8Rows,
    w: &Weights,
    weight_scale: impl Fn(usize, usize) -> f32,
    weight: impl Fn(usize, usize) -> i32,
) {
    let k = w.k();
    assert!(
        out.n() == w.n() && x.m() == out.m() && x.k() == k,
        "linear_q8: activations, weights and output shapes disagree"
    );
    let blocks = k / BLOCK;
    let cols = out.cols();
    for r in 0..out.m() {
        let xq = &x.values()[r * k..(r + 1) * k];
        let xs = &x.scales()[r * blocks..(r + 1) * blocks];
        for (o, c) in out.row(r).iter_mut().zip(cols.clone()) {
            let mut sum = 0.0f32;
            for b in 0..blocks {
                let dot: i32 = (0..BLOCK)
                    .map(|i| {
                        let q = xq[x.layout().position(b * BLOCK + i, k)];
                        i32::from(q) * weight(c, b * BLOCK + i)
                    })
                    .sum();
                sum += xs[b] * weight_scale(c, b) * dot as f32;
            }
            *o = sum;
        }
    }
}

/// int8 weights, per-channel scales.
pub fn int8_per_channel(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    let WeightData::Int8PerChannel { data, scales } = w.data() else {
        panic!("int8_per_channel: weights are {:?}", w.format())
    };
    let k = w.k();
    each_output(
        out,
        x,
        w,
        |c, _| scales.get(c),
        |c, j| i32::from(data[c * k + j]),
    );
}

/// int4 weights, per-channel scales.
pub fn int4_per_channel(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    let WeightData::Int4PerChannel { packed, scales } = w.data() else {
        panic!("int4_per_channel: weights are {:?}", w.format())
    };
    let k = w.k();
    each_output(
        out,
        x,
        w,
        |c, _| scales.get(c),
        |c, j| i32::from(int4_at(packed, c * k + j)),
    );
}

/// int4 weights, scales per block of 32.
pub fn int4_block32(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    let WeightData::Int4Block32 { packed, scales } = w.data() else {
        panic!("int4_block32: weights are {:?}", w.format())
    };
    let k = w.k();
    let blocks = k / BLOCK;
    each_output(
        out,
        x,
        w,
        |c, b| scales.get(c * blocks + b),
        |c, j| i32::from(int4_at(packed, c * k + j)),
    );
}

/// int8 weights, scales per block of 32.
pub fn int8_block32(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    let WeightData::Int8Block32 { data, scales } = w.data() else {
        panic!("int8_block32: weights are {:?}", w.format())
    };
    let k = w.k();
    let blocks = k / BLOCK;
    each_output(
        out,
        x,
        w,
        |c, b| scales.get(c * blocks + b),
        |c, j| i32::from(data[c * k + j]),
    );
}
