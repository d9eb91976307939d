//! Linear layers with int8 activations, with `smmla` (FEAT_I8MM): one instruction multiplies a
//! 2 x 8 block of int8 activations (two rows) by the transpose of a 2 x 8 block of int8 weights
//! (two columns) and adds the 2 x 2 products to four i32 lanes. Four of them give a block of 32
//! for two rows and two columns; `sdot` takes a single row.
//!
//! Only the integer dot products differ from the dotprod kernels: the tile schedule and the float
//! steps are theirs (`aarch64_dotprod::linear_q8`), so the results are the scalar reference's bits.

use std::arch::aarch64::*;
use std::arch::asm;

use crate::kernels::aarch64_dotprod::linear_q8::{run, BlockDots, Sdot, NR};
use crate::kernels::aarch64_neon::linear_q8::{
    check_shapes, Int4Block32, Int4PerChannel, Int8Block32, Int8PerChannel,
};
use crate::kernels::out_columns::OutColumns;
use crate::kernels::q8_rows::Q8Rows;
use crate::weights::Weights;

/// `acc` plus the 2 x 2 products of the rows of `a` (bytes 0..8 and 8..16) with those of `b`:
/// lanes (a0 b0, a0 b1, a1 b0, a1 b1).
#[inline]
#[target_feature(enable = "neon,i8mm")]
fn smmla(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: the instruction reads and writes these registers only, and the attribute requires
    // the int8 matrix-multiply extension. (Its intrinsic, vmmlaq_s32, is not stable Rust yet.)
    unsafe {
        asm!(
            "smmla {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// Two blocks of 32 as the four 2 x 8 operands of `smmla`: each 8 values of `a` beside the same 8
/// of `b`.
#[inline]
#[target_feature(enable = "neon")]
fn interleave(a: [int8x16_t; 2], b: [int8x16_t; 2]) -> [int8x16_t; 4] {
    let (a, b) = (
        a.map(|v| vreinterpretq_s64_s8(v)),
        b.map(|v| vreinterpretq_s64_s8(v)),
    );
    [
        vzip1q_s64(a[0], b[0]),
        vzip2q_s64(a[0], b[0]),
        vzip1q_s64(a[1], b[1]),
        vzip2q_s64(a[1], b[1]),
    ]
    .map(|v| vreinterpretq_s8_s64(v))
}

/// The dot products with `smmla`, two rows at a time; a lone last row of a tile is paired with
/// itself, and a single-row tile (decode) takes `sdot`.
struct Smmla;

impl BlockDots for Smmla {
    #[inline]
    #[target_feature(enable = "neon,dotprod,i8mm")]
    unsafe fn dots<const ROWS: usize>(
        x: &[[int8x16_t; 2]; ROWS],
        w: &[[int8x16_t; 2]; NR],
    ) -> [int32x4_t; ROWS] {
        if ROWS == 1 {
            // SAFETY: this function's features include sdot's.
            return unsafe { Sdot::dots(x, w) };
        }
        let wp = [interleave(w[0], w[1]), interleave(w[2], w[3])];
        let mut out = [vdupq_n_s32(0); ROWS];
        for r in (0..ROWS).step_by(2) {
            let xp = interleave(x[r], x[(r + 1).min(ROWS - 1)]);
            // Per column pair, lanes (r c, r c+1, r+1 c, r+1 c+1).
            let mut pairs = [vdupq_n_s32(0); 2];
            for (acc, wp) in pairs.iter_mut().zip(&wp) {
                for i in 0..4 {
                    *acc = smmla(*acc, xp[i], wp[i]);
                }
            }
            let [low, high] = pairs.map(|v| vreinterpretq_s64_s32(v));
            out[r] = vreinterpretq_s32_s64(vzip1q_s64(low, high));
            if r + 1 < ROWS {
                out[r + 1] = vreinterpretq_s32_s64(vzip2q_s64(low, high));
            }
        }
        out
    }
}

/// int8 weights, per-channel scales.
#[target_feature(enable = "neon,dotprod,i8mm")]
pub fn int8_per_channel(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    check_shapes(out, x, w);
    // SAFETY: shapes checked, and this module only runs on CPUs with dotprod and i8mm.
    unsafe { run::<Smmla, _>(out, x, &Int8PerChannel::new(w)) }
}

/// int4 weights, per-channel scales.
#[target_feature(enable = "neon,dotprod,i8mm")]
pub fn int4_per_channel(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    check_shapes(out, x, w);
    // SAFETY: as above.
    unsafe { run::<Smmla, _>(out, x, &Int4PerChannel::new(w)) }
}

/// int4 weights, scales per block of 32.
#[target_feature(enable = "neon,dotprod,i8mm")]
pub fn int4_block32(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    check_shapes(out, x, w);
    // SAFETY: as above.
    unsafe { run::<Smmla, _>(out, x, &Int4Block32::new(w)) }
}

/// int8 weights, scales per block of 32.
#[target_feature(enable = "neon,dotprod,i8mm")]
pub fn int8_block32(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    check_shapes(out, x, w);
    // SAFETY: as above.
    unsafe { run::<Smmla, _>(out, x, &Int8Block32::new(w)) }
}
