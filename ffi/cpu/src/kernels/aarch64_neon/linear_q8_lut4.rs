//! Linear layers with int8 activations and 4-bit palette indices (`lut4`), in the lane order of the
//! scalar reference (`scalar::linear_lut`), whose results they match bit for bit.
//!
//! A palette's 16 int16 levels become two byte tables, their low and their high bytes; `tbl` looks
//! up 16 indices in each and `zip` interleaves the two lookups into int16 levels. A block's 16
//! bytes of indices hold its even elements (low nibbles) and odd ones (high nibbles), which meet
//! the activations in [`Q8Layout::EvenOdd`](crate::kernels::q8_rows::Q8Layout::EvenOdd) order.
//! Widening multiplies (`smull`, `smlal`) give each product its own i32 lane, four consecutive even
//! (or odd) elements to a vector, and pairwise adds (`addp`) gather them into the reference's
//! lanes: the four runs of 8 elements of a block, or, for a last block without a partner, its
//! even and its odd elements in runs of four.

use std::arch::aarch64::*;

use super::linear_q8::check_shapes;
use crate::kernels::out_columns::OutColumns;
use crate::kernels::q8_rows::Q8Rows;
use crate::kernels::scalar::linear_lut::lane_sum;
use crate::weights::{WeightData, Weights, BLOCK};

/// Entries of a 4-bit palette.
const ENTRIES: usize = 16;

/// The low and the high bytes of a palette's 16 levels, as two `tbl` tables.
#[inline]
#[target_feature(enable = "neon")]
fn tables(levels: &[i16]) -> (uint8x16_t, uint8x16_t) {
    let levels = &levels[..ENTRIES];
    // SAFETY: `levels` holds 16 int16, the 32 bytes read.
    let (a, b) = unsafe {
        (
            vreinterpretq_u8_s16(vld1q_s16(levels.as_ptr())),
            vreinterpretq_u8_s16(vld1q_s16(levels.as_ptr().add(8))),
        )
    };
    (vuzp1q_u8(a, b), vuzp2q_u8(a, b))
}

/// Products of the levels of 16 indices with 16 activations, one per i32 lane: four vectors of
/// four consecutive indices each.
#[inline]
#[target_feature(enable = "neon")]
fn products(
    (low, high): (uint8x16_t, uint8x16_t),
    indices: uint8x16_t,
    x: int8x16_t,
) -> [int32x4_t; 4] {
    let (lo, hi) = (vqtbl1q_u8(low, indices), vqtbl1q_u8(high, indices));
    let first = vreinterpretq_s16_u8(vzip1q_u8(lo, hi));
    let second = vreinterpretq_s16_u8(vzip2q_u8(lo, hi));
    let (x0, x1) = (vmovl_s8(vget_low_s8(x)), vmovl_high_s8(x));
    [
        vmull_s16(vget_low_s16(first), vget_low_s16(x0)),
        vmull_high_s16(first, x0),
        vmull_s16(vget_low_s16(second), vget_low_s16(x1)),
        vmull_high_s16(second, x1),
    ]
}

/// The lane sums of four vectors, as the lanes of one.
#[inline]
#[target_feature(enable = "neon")]
fn lane_totals(v: [int32x4_t; 4]) -> int32x4_t {
    vpaddq_s32(vpaddq_s32(v[0], v[1]), vpaddq_s32(v[2], v[3]))
}

/// 4-bit palette indices.
#[target_feature(enable = "neon")]
pub fn lut4(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    check_shapes(out, x, w);
    let WeightData::Palettized(p) = w.data() else {
        panic!("lut4: weights are {:?}", w.format())
    };
    assert_eq!(p.bits, 4, "lut4: indices of {} bits", p.bits);
    let (m, k) = (out.m(), w.k());
    let blocks = k / BLOCK;
    let start = out.cols().start;
    for c in out.cols() {
        let palette = tables(&p.levels[p.group(c) * ENTRIES..]);
        let row = &p.indices[c * k / 2..(c + 1) * k / 2];
        for r in 0..m {
            let xq = &x.values()[r * k..(r + 1) * k];
            let xs = &x.scales()[r * blocks..(r + 1) * blocks];
            // Block b's indices and activations, each as (even elements, odd elements).
            let block = |b: usize| {
                let (idx, xb) = (&row[b * BLOCK / 2..][..16], &xq[b * BLOCK..][..BLOCK]);
                // SAFETY: `idx` holds 16 bytes and `xb` 32.
                let (v, xe, xo) = unsafe {
                    (
                        vld1q_u8(idx.as_ptr()),
                        vld1q_s8(xb.as_ptr()),
                        vld1q_s8(xb.as_ptr().add(16)),
                    )
                };
                let even = products(palette, vandq_u8(v, vdupq_n_u8(0x0F)), xe);
                let odd = products(palette, vshrq_n_u8::<4>(v), xo);
                (even, odd)
            };
            let (mut low, mut high) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
            for pair in 0..blocks / 2 {
                for (b, acc) in [(2 * pair, &mut low), (2 * pair + 1, &mut high)] {
                    let (even, odd) = block(b);
                    // Run j of the block: the evens and odds of products vector j.
                    let runs = lane_totals([0, 1, 2, 3].map(|j| vaddq_s32(even[j], odd[j])));
                    *acc = vfmaq_n_f32(*acc, vcvtq_f32_s32(runs), xs[b]);
                }
            }
            if blocks % 2 == 1 {
                let b = blocks - 1;
                let (even, odd) = block(b);
                low = vfmaq_n_f32(low, vcvtq_f32_s32(lane_totals(even)), xs[b]);
                high = vfmaq_n_f32(high, vcvtq_f32_s32(lane_totals(odd)), xs[b]);
            }
            let mut lanes = [0f32; 8];
            // SAFETY: `lanes` holds the 8 floats written.
            unsafe {
                vst1q_f32(lanes.as_mut_ptr(), low);
                vst1q_f32(lanes.as_mut_ptr().add(4), high);
            }
            out.row(r)[c - start] = lane_sum(lanes) * p.steps[p.group(c)];
        }
    }
}
