//! Linear layers with int8 activations: per block of 32, widening multiplies (`smull`) and
//! pairwise accumulation (`sadalp`) give the exact integer dot product; the blocks are combined
//! in f32 in the same order as the scalar reference, so results match it bit for bit.
//!
//! The weight readers and the shape check are shared with the dotprod and i8mm kernels.

use std::arch::aarch64::*;

use crate::kernels::out_columns::OutColumns;
use crate::kernels::q8_rows::Q8Rows;
use crate::weights::{Scales, WeightData, Weights, BLOCK};

/// Reads one weight format a block of 32 at a time, in the activation layout.
pub(in crate::kernels) trait DecodeBlock {
    /// Block `b` of row `c` as two halves of 16 signed values.
    ///
    /// # Safety
    /// The CPU has NEON (every aarch64 CPU does; the attribute makes it explicit).
    unsafe fn block(&self, c: usize, b: usize) -> [int8x16_t; 2];
    /// The dequantization scales.
    fn scales(&self) -> Scales<'_>;
    /// Where in [`DecodeBlock::scales`] the scale of block `b` of row `c` is.
    fn scale_index(&self, c: usize, b: usize) -> usize;
    /// Whether the scale depends on the block (else there is one per row).
    const BLOCK_SCALES: bool;

    /// Scale of block `b` of row `c`.
    fn scale(&self, c: usize, b: usize) -> f32 {
        self.scales().get(self.scale_index(c, b))
    }
}

pub(in crate::kernels) struct Int8PerChannel<'a> {
    data: &'a [i8],
    scales: Scales<'a>,
    k: usize,
}

impl<'a> Int8PerChannel<'a> {
    /// The reader of `w`, which must hold int8 weights with per-channel scales.
    pub(in crate::kernels) fn new(w: &Weights<'a>) -> Self {
        let WeightData::Int8PerChannel { data, scales } = w.data() else {
            panic!("int8_per_channel: weights are {:?}", w.format())
        };
        Int8PerChannel {
            data,
            scales,
            k: w.k(),
        }
    }
}

/// Block `b` of row `c` of int8 weights `[n, k]`, in natural order.
#[target_feature(enable = "neon")]
fn int8_block(data: &[i8], k: usize, c: usize, b: usize) -> [int8x16_t; 2] {
    let s = &data[c * k + b * BLOCK..c * k + (b + 1) * BLOCK];
    // SAFETY: `s` holds 32 bytes.
    unsafe { [vld1q_s8(s.as_ptr()), vld1q_s8(s.as_ptr().add(16))] }
}

impl DecodeBlock for Int8PerChannel<'_> {
    const BLOCK_SCALES: bool = false;
    #[target_feature(enable = "neon")]
    unsafe fn block(&self, c: usize, b: usize) -> [int8x16_t; 2] {
        int8_block(self.data, self.k, c, b)
    }
    fn scales(&self) -> Scales<'_> {
        self.scales
    }
    fn scale_index(&self, c: usize, _: usize) -> usize {
        c
    }
}

pub(in crate::kernels) struct Int8Block32<'a> {
    data: &'a [i8],
    scales: Scales<'a>,
    k: usize,
}

impl<'a> Int8Block32<'a> {
    /// The reader of `w`, which must hold int8 weights with scales per block of 32.
    pub(in crate::kernels) fn new(w: &Weights<'a>) -> Self {
        let WeightData::Int8Block32 { data, scales } = w.data() else {
            panic!("int8_block32: weights are {:?}", w.format())
        };
        Int8Block32 {
            data,
            scales,
            k: w.k(),
        }
    }
}

impl DecodeBlock for Int8Block32<'_> {
    const BLOCK_SCALES: bool = true;
    #[target_feature(enable = "neon")]
    unsafe fn block(&self, c: usize, b: usize) -> [int8x16_t; 2] {
        int8_block(self.data, self.k, c, b)
    }
    fn scales(&self) -> Scales<'_> {
        self.scales
    }
    fn scale_index(&self, c: usize, b: usize) -> usize {
        c * (self.k / BLOCK) + b
    }
}

/// The 32 values of a packed int4 block as (even elements, odd elements), matching
/// [`crate::kernels::q8_rows::Q8Layout::EvenOdd`].
#[target_feature(enable = "neon")]
fn int4_block(packed: &[u8], k: usize, c: usize, b: usize) -> [int8x16_t; 2] {
    let start = (c * k + b * BLOCK) / 2;
    let s = &packed[start..start + BLOCK / 2];
    // SAFETY: `s` holds 16 bytes.
    let v = vreinterpretq_s8_u8(unsafe { vld1q_u8(s.as_ptr()) });
    [vshrq_n_s8::<4>(vshlq_n_s8::<4>(v)), vshrq_n_s8::<4>(v)]
}

pub(in crate::kernels) struct Int4PerChannel<'a> {
    packed: &'a [u8],
    scales: Scales<'a>,
    k: usize,
}

impl<'a> Int4PerChannel<'a> {
    /// The reader of `w`, which must hold int4 weights with per-channel scales.
    pub(in crate::kernels) fn new(w: &Weights<'a>) -> Self {
        let WeightData::Int4PerChannel { packed, scales } = w.data() else {
            panic!("int4_per_channel: weights are {:?}", w.format())
        };
        Int4PerChannel {
            packed,
            scales,
            k: w.k(),
        }
    }
}

impl DecodeBlock for Int4PerChannel<'_> {
    const BLOCK_SCALES: bool = false;
    #[target_feature(enable = "neon")]
    unsafe fn block(&self, c: usize, b: usize) -> [int8x16_t; 2] {
        int4_block(self.packed, self.k, c, b)
    }
    fn scales(&self) -> Scales<'_> {
        self.scales
    }
    fn scale_index(&self, c: usize, _: usize) -> usize {
        c
    }
}

pub(in crate::kernels) struct Int4Block32<'a> {
    packed: &'a [u8],
    scales: Scales<'a>,
    k: usize,
}

impl<'a> Int4Block32<'a> {
    /// The reader of `w`, which must hold int4 weights with scales per block of 32.
    pub(in crate::kernels) fn new(w: &Weights<'a>) -> Self {
        let WeightData::Int4Block32 { packed, scales } = w.data() else {
            panic!("int4_block32: weights are {:?}", w.format())
        };
        Int4Block32 {
            packed,
            scales,
            k: w.k(),
        }
    }
}

impl DecodeBlock for Int4Block32<'_> {
    const BLOCK_SCALES: bool = true;
    #[target_feature(enable = "neon")]
    unsafe fn block(&self, c: usize, b: usize) -> [int8x16_t; 2] {
        int4_block(self.packed, self.k, c, b)
    }
    fn scales(&self) -> Scales<'_> {
        self.scales
    }
    fn scale_index(&self, c: usize, b: usize) -> usize {
        c * (self.k / BLOCK) + b
    }
}

/// Exact dot product of two blocks of 32 int8.
#[inline]
#[target_feature(enable = "neon")]
fn dot32(x: [int8x16_t; 2], w: [int8x16_t; 2]) -> i32 {
    let mut acc = vdupq_n_s32(0);
    for (x, w) in x.into_iter().zip(w) {
        acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(x), vget_low_s8(w)));
        acc = vpadalq_s16(acc, vmull_high_s8(x, w));
    }
    vaddvq_s32(acc)
}

/// Panics unless `x [m, k]`, the weights `[n, k]` and `out [m, n]` agree, `k` is whole blocks
/// and `x` is in the layout the NEON kernels read (the dotprod and i8mm ones read the same).
pub(in crate::kernels) fn check_shapes(out: &OutColumns, x: &Q8Rows, weights: &Weights) {
    let k = weights.k();
    assert!(
        out.n() == weights.n() && x.m() == out.m() && x.k() == k && k.is_multiple_of(BLOCK),
        "linear_q8: activations, weights and output shapes disagree"
    );
    assert_eq!(
        x.layout(),
        super::KERNELS.linear_q8.layout(weights.format()),
        "linear_q8: activation layout does not match the weight format"
    );
}

/// The whole product for the columns of `out`.
#[target_feature(enable = "neon")]
fn run<W: DecodeBlock>(out: &mut OutColumns, x: &Q8Rows, w: &W, weights: &Weights) {
    check_shapes(out, x, weights);
    let (m, k) = (out.m(), weights.k());
    let blocks = k / BLOCK;
    let start = out.cols().start;
    for c in out.cols() {
        for r in 0..m {
            let mut sum = 0.0f32;
            for b in 0..blocks {
                let xb = &x.values()[r * k + b * BLOCK..r * k + (b + 1) * BLOCK];
                // SAFETY: `xb` holds 32 bytes.
                let xv = unsafe { [vld1q_s8(xb.as_ptr()), vld1q_s8(xb.as_ptr().add(16))] };
                // SAFETY: this function runs with NEON enabled.
                let dot = dot32(xv, unsafe { w.block(c, b) });
                sum += x.scales()[r * blocks + b] * w.scale(c, b) * dot as f32;
            }
            out.row(r)[c - start] = sum;
        }
    }
}

/// int8 weights, per-channel scales.
#[target_feature(enable = "neon")]
pub fn int8_per_channel(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    run(out, x, &Int8PerChannel::new(w), w);
}

/// int4 weights, per-channel scales.
#[target_feature(enable = "neon")]
pub fn int4_per_channel(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    run(out, x, &Int4PerChannel::new(w), w);
}

/// int4 weights, scales per block of 32.
#[target_feature(enable = "neon")]
pub fn int4_block32(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    run(out, x, &Int4Block32::new(w), w);
}

/// int8 weights, scales per block of 32.
#[target_feature(enable = "neon")]
pub fn int8_block32(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    run(out, x, &Int8Block32::new(w), w);
}
