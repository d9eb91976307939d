//! Linear layers with int8 activations, with `sdot` (FEAT_DotProd): each i32 lane sums four int8
//! products, so two instructions give a block of 32 in four lanes, and pairwise adds gather the
//! blocks of four columns into one vector of exact integer dot products.
//!
//! The floats are then combined as the scalar reference combines them, per output and block in
//! order, `sum += (scale_x * scale_w) * dot`, with vector multiplies and adds that round as the
//! scalar ones do (no fused multiply-add): the results are the reference's bits, whatever the tile
//! or the number of rows. The tile schedule, [`run`], is shared with the i8mm kernels, which only
//! compute the integer dot products differently ([`BlockDots`]).

use std::arch::aarch64::*;
use std::arch::asm;

use crate::kernels::aarch64_neon::linear_q8::{
    check_shapes, DecodeBlock, Int4Block32, Int4PerChannel, Int8Block32, Int8PerChannel,
};
use crate::kernels::out_columns::OutColumns;
use crate::kernels::q8_rows::Q8Rows;
use crate::weights::{Scales, Weights, BLOCK};

/// Output columns per register tile: one f32 vector per activation row.
pub(in crate::kernels) const NR: usize = 4;

/// Activation rows per register tile: four rows of four columns keep the weights, activations
/// and sums of a block in registers.
const MR: usize = 4;

/// Activation bytes per row block: the rows of a block stay in L2 while every column tile of the
/// weights streams past once per block rather than once per tile of rows.
const ROW_BLOCK_BYTES: usize = 256 * 1024;

/// Exact integer dot products of one block of 32, for a tile of activation rows and [`NR`]
/// weight rows whose values are in the same order.
pub(in crate::kernels) trait BlockDots {
    /// Lane `c` of entry `r` is the dot product of `x[r]` with `w[c]`.
    ///
    /// # Safety
    /// The CPU has the features the implementation is compiled for.
    unsafe fn dots<const ROWS: usize>(
        x: &[[int8x16_t; 2]; ROWS],
        w: &[[int8x16_t; 2]; NR],
    ) -> [int32x4_t; ROWS];
}

/// `acc` plus, in lane `i`, the products of bytes `4i..4i + 4` of `a` and `b`.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: the instruction reads and writes these registers only, and the attribute requires
    // the dot-product extension. (Its intrinsic, vdotq_s32, is not stable Rust yet.)
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// The dot products with `sdot`, one row at a time.
pub(in crate::kernels) struct Sdot;

impl BlockDots for Sdot {
    #[inline]
    #[target_feature(enable = "neon,dotprod")]
    unsafe fn dots<const ROWS: usize>(
        x: &[[int8x16_t; 2]; ROWS],
        w: &[[int8x16_t; 2]; NR],
    ) -> [int32x4_t; ROWS] {
        let mut out = [vdupq_n_s32(0); ROWS];
        for r in 0..ROWS {
            let mut lanes = [vdupq_n_s32(0); NR];
            for c in 0..NR {
                lanes[c] = sdot(sdot(lanes[c], x[r][0], w[c][0]), x[r][1], w[c][1]);
            }
            // Each pairwise add sums neighbours: two rounds leave column c's total in lane c.
            out[r] = vpaddq_s32(
                vpaddq_s32(lanes[0], lanes[1]),
                vpaddq_s32(lanes[2], lanes[3]),
            );
        }
        out
    }
}

/// Block `b` of the activation rows `r0..r0 + ROWS`.
#[inline]
#[target_feature(enable = "neon")]
fn activation_blocks<const ROWS: usize>(x: &Q8Rows, r0: usize, b: usize) -> [[int8x16_t; 2]; ROWS] {
    let k = x.k();
    let mut v = [[vdupq_n_s8(0); 2]; ROWS];
    for (r, v) in v.iter_mut().enumerate() {
        let s = &x.values()[(r0 + r) * k + b * BLOCK..(r0 + r) * k + (b + 1) * BLOCK];
        // SAFETY: `s` holds 32 bytes.
        *v = unsafe { [vld1q_s8(s.as_ptr()), vld1q_s8(s.as_ptr().add(16))] };
    }
    v
}

/// The scales of block `b` of the rows `columns` of the weights.
#[inline]
#[target_feature(enable = "neon")]
fn weight_scales<W: DecodeBlock>(w: &W, columns: [usize; NR], b: usize) -> float32x4_t {
    let at = columns.map(|c| w.scale_index(c, b));
    match w.scales() {
        Scales::F32(s) => {
            let v = at.map(|i| s[i]);
            // SAFETY: `v` holds four floats.
            unsafe { vld1q_f32(v.as_ptr()) }
        }
        Scales::F16(s) => {
            let v = at.map(|i| s[i]);
            // SAFETY: `v` holds four f16 bit patterns.
            let bits = unsafe { vld1_u16(v.as_ptr()) };
            let out: float32x4_t;
            // SAFETY: `fcvtl` (base Advanced SIMD) reads and writes these registers only. It
            // widens exactly, as the scalar conversion does; f16 vector types are not stable Rust.
            unsafe {
                asm!(
                    "fcvtl {out:v}.4s, {bits:v}.4h",
                    out = lateout(vreg) out,
                    bits = in(vreg) bits,
                    options(pure, nomem, nostack, preserves_flags),
                );
            }
            out
        }
    }
}

/// Rows `r0..r0 + ROWS` and columns `c0..c0 + NR` of the output; columns past the end of
/// `out.cols()` repeat its last column and are not stored.
///
/// # Safety
/// `r0 + ROWS <= out.m()`, `c0` lies inside `out.cols()`, the shapes passed [`check_shapes`],
/// and the CPU has the features of `D`.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn tile<D: BlockDots, W: DecodeBlock, const ROWS: usize>(
    out: &mut OutColumns,
    x: &Q8Rows,
    w: &W,
    r0: usize,
    c0: usize,
) {
    let blocks = x.k() / BLOCK;
    let cols = out.cols();
    let columns: [usize; NR] = std::array::from_fn(|i| (c0 + i).min(cols.end - 1));
    // Per-channel scales are the same for every block: read once.
    let row_scales = (!W::BLOCK_SCALES).then(|| weight_scales(w, columns, 0));
    let mut sums = [vdupq_n_f32(0.0); ROWS];
    for b in 0..blocks {
        let mut wv = [[vdupq_n_s8(0); 2]; NR];
        for i in 0..NR {
            // SAFETY: the column is below n and b below k / 32; this function runs with NEON.
            wv[i] = unsafe { w.block(columns[i], b) };
        }
        let ws = row_scales.unwrap_or_else(|| weight_scales(w, columns, b));
        // SAFETY: the caller's features.
        let dots = unsafe { D::dots(&activation_blocks::<ROWS>(x, r0, b), &wv) };
        for (r, sum) in sums.iter_mut().enumerate() {
            let scale = vmulq_f32(vdupq_n_f32(x.scales()[(r0 + r) * blocks + b]), ws);
            *sum = vaddq_f32(*sum, vmulq_f32(scale, vcvtq_f32_s32(dots[r])));
        }
    }
    let stored = (cols.end - c0).min(NR);
    for (r, sum) in sums.iter().enumerate() {
        let mut lanes = [0.0f32; NR];
        // SAFETY: `lanes` holds four floats.
        unsafe { vst1q_f32(lanes.as_mut_ptr(), *sum) };
        let at = c0 - cols.start;
        out.row(r0 + r)[at..at + stored].copy_from_slice(&lanes[..stored]);
    }
}

/// The whole product for the columns of `out`, in tiles of up to [`MR`] rows by [`NR`] columns.
///
/// # Safety
/// The shapes passed [`check_shapes`], and the CPU has the features of `D`.
#[inline]
#[target_feature(enable = "neon,dotprod")]
pub(in crate::kernels) unsafe fn run<D: BlockDots, W: DecodeBlock>(
    out: &mut OutColumns,
    x: &Q8Rows,
    w: &W,
) {
    let m = out.m();
    let cols = out.cols();
    let row_block = (ROW_BLOCK_BYTES / x.k().max(1)).max(MR) / MR * MR;
    for rb in (0..m).step_by(row_block) {
        let rb_end = (rb + row_block).min(m);
        for c0 in cols.clone().step_by(NR) {
            for r0 in (rb..rb_end).step_by(MR) {
                // SAFETY: r0 + rows <= m, c0 lies inside the columns, and the shapes and
                // features are the caller's.
                unsafe {
                    match rb_end - r0 {
                        1 => tile::<D, W, 1>(out, x, w, r0, c0),
                        2 => tile::<D, W, 2>(out, x, w, r0, c0),
                        3 => tile::<D, W, 3>(out, x, w, r0, c0),
                        _ => tile::<D, W, MR>(out, x, w, r0, c0),
                    }
                }
            }
        }
    }
}

/// int8 weights, per-channel scales.
#[target_feature(enable = "neon,dotprod")]
pub fn int8_per_channel(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    check_shapes(out, x, w);
    // SAFETY: shapes checked, and this module only runs on CPUs with dotprod.
    unsafe { run::<Sdot, _>(out, x, &Int8PerChannel::new(w)) }
}

/// int4 weights, per-channel scales.
#[target_feature(enable = "neon,dotprod")]
pub fn int4_per_channel(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    check_shapes(out, x, w);
    // SAFETY: as above.
    unsafe { run::<Sdot, _>(out, x, &Int4PerChannel::new(w)) }
}

/// int4 weights, scales per block of 32.
#[target_feature(enable = "neon,dotprod")]
pub fn int4_block32(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    check_shapes(out, x, w);
    // SAFETY: as above.
    unsafe { run::<Sdot, _>(out, x, &Int4Block32::new(w)) }
}

/// int8 weights, scales per block of 32.
#[target_feature(enable = "neon,dotprod")]
pub fn int8_block32(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    check_shapes(out, x, w);
    // SAFETY: as above.
    unsafe { run::<Sdot, _>(out, x, &Int8Block32::new(w)) }
}
