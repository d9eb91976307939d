//! Linear layers with palettized weights: the f32 path looks every index up in its row's palette;
//! the int8 path (the reference the SIMD kernels match bit for bit) multiplies the int8
//! activations with the palette's int16 levels (`crate::palette`).
//!
//! The int8 path fixes its summation order so that 8-lane SIMD kernels can reproduce it exactly:
//! eight lanes, each summing exact integer dot products of 8 consecutive elements of a block
//! (lanes 0-3 the four runs of block `2p`, lanes 4-7 those of block `2p + 1`, for each pair of
//! blocks `p`), converted to f32 and added with a fused multiply-add of the block's activation
//! scale. A last block without a partner fills the lanes with its even elements (lanes 0-3, runs
//! of four) and its odd elements (lanes 4-7). The lanes are then added as
//! `((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7))` and the sum multiplied by the palette's
//! step.

use crate::kernels::out_columns::OutColumns;
use crate::kernels::q8_rows::Q8Rows;
use crate::palette::Palettes;
use crate::weights::{WeightData, Weights, BLOCK};

/// The palettes of `w`; panics for another format.
fn palettes<'a>(w: &Weights<'a>) -> Palettes<'a> {
    let WeightData::Palettized(p) = w.data() else {
        panic!("palettized: weights are {:?}", w.format())
    };
    p
}

/// `y[r, c] = sum_j x[r, j] * palette[c][index(c, j)]`, in index order.
pub fn palettized(out: &mut OutColumns, x: &[f32], w: &Weights) {
    let p = palettes(w);
    let k = w.k();
    assert!(
        out.n() == w.n() && x.len() == out.m() * k,
        "linear: x, weights and output shapes disagree"
    );
    let cols = out.cols();
    for r in 0..out.m() {
        let xr = &x[r * k..(r + 1) * k];
        for (o, c) in out.row(r).iter_mut().zip(cols.clone()) {
            let palette = p.group(c) * p.entries();
            *o = xr
                .iter()
                .enumerate()
                .map(|(j, a)| a * p.values.get(palette + p.index(c * k + j)))
                .sum();
        }
    }
}

/// The eight lanes summed in the order of an 8-lane SIMD reduction.
pub fn lane_sum(l: [f32; 8]) -> f32 {
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
}

/// The int8-activation product in the lane order the module documentation states.
pub fn palettized_q8(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    let p = palettes(w);
    let k = w.k();
    assert!(
        out.n() == w.n() && x.m() == out.m() && x.k() == k,
        "linear_q8: activations, weights and output shapes disagree"
    );
    let blocks = k / BLOCK;
    // Where each element of a row sits in the activations' layout, worked out once.
    let position: Vec<usize> = (0..k).map(|e| x.layout().position(e, k)).collect();
    let cols = out.cols();
    let mut row_levels = vec![0i32; k];
    for c in cols.clone() {
        let levels = &p.levels[p.group(c) * p.entries()..][..p.entries()];
        for (e, level) in row_levels.iter_mut().enumerate() {
            *level = i32::from(levels[p.index(c * k + e)]);
        }
        for r in 0..out.m() {
            let xq = &x.values()[r * k..(r + 1) * k];
            let xs = &x.scales()[r * blocks..(r + 1) * blocks];
            // The integer dot product of the elements `j` of block `b` of this row.
            let dot = |b: usize, j: &mut dyn Iterator<Item = usize>| -> i32 {
                j.map(|i| {
                    let e = b * BLOCK + i;
                    i32::from(xq[position[e]]) * row_levels[e]
                })
                .sum()
            };
            let mut lanes = [0f32; 8];
            for pair in 0..blocks / 2 {
                for (lane, acc) in lanes.iter_mut().enumerate() {
                    let b = 2 * pair + lane / 4;
                    let run = 8 * (lane % 4);
                    let d = dot(b, &mut (run..run + 8));
                    *acc = (d as f32).mul_add(xs[b], *acc);
                }
            }
            if blocks % 2 == 1 {
                let b = blocks - 1;
                for (lane, acc) in lanes.iter_mut().enumerate() {
                    let first = 8 * (lane % 4) + lane / 4;
                    let d = dot(b, &mut (0..4).map(|i| first + 2 * i));
                    *acc = (d as f32).mul_add(xs[b], *acc);
                }
            }
            out.row(r)[c - cols.start] = lane_sum(lanes) * p.steps[p.group(c)];
        }
    }
}
