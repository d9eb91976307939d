//! The register-tile schedule of the linear kernels, written once for every weight format and
//! both activation types (f32 in `linear_f32`, int8 in `linear_q8` and `linear_q8_int4`).
//!
//! A kernel supplies one dot-product register tile, `MR` activation rows times `NR` weight rows
//! ([`Tiles::tile`]); [`run`] covers the output with them. Decode (`m = 1`) walks the columns in
//! 1 x `DECODE_NR` tiles: independent accumulators keep the pipes busy while the weights stream
//! from memory. Prefill takes the rows in blocks whose activations stay in L2 while all the
//! columns stream past, in tiles of up to 4 rows by `PREFILL_NR` columns (2 with AVX2's 16
//! registers; the AVX-512 kernels, with 32, take 3 for lut4 weights and 6 for int8 and int4 ones,
//! two columns to a 512-bit vector). The VNNI kernels share this schedule.
//!
//! The schedule itself has no vector code and is always inlined, so that it is compiled with the
//! features of the kernel that calls it: the VNNI kernels' tiles are generic over their encoding
//! and take its features only from their entry point.

use crate::kernels::out_columns::OutColumns;

/// Activation bytes per row block: about half of the 512 KiB L2, leaving room for the weights.
const ROW_BLOCK_BYTES: usize = 256 * 1024;

/// How many decode tiles ahead the kernels prefetch weight rows: at about 1.5 cycles per 8 f32
/// weights per row, two 1 x 8 tiles of a 2048-wide row take some 250 ns, a few DRAM latencies.
pub(in crate::kernels) const PREFETCH_TILES: usize = 2;

/// The activations `x` (`[m, k]`) and weights `w` (`[n, k]`) of one product.
pub(in crate::kernels) struct Product<'a, X: ?Sized, W> {
    pub x: &'a X,
    pub w: &'a W,
    pub k: usize,
}

/// One register tile of a product, implemented per weight format.
pub(in crate::kernels) trait Tiles {
    /// Rows `r0..r0 + MR` and columns `c0..c0 + NR` of the output.
    ///
    /// # Safety
    /// `r0 + MR <= out.m()`, `c0..c0 + NR` lies inside `out.cols()`, the product's shapes agree
    /// with `out` (each kernel's entry point asserts them, see the implementations), and the CPU
    /// has the features the implementation is compiled for (AVX2, FMA and F16C at least).
    unsafe fn tile<const MR: usize, const NR: usize>(
        &self,
        out: &mut OutColumns,
        r0: usize,
        c0: usize,
    );
}

/// Runs `p.tile::<MR, NR>` with `MR` chosen at run time for the last, shorter row group.
///
/// # Safety
/// As [`Tiles::tile`], with `rows` in `1..=4` in place of `MR`.
#[inline(always)]
unsafe fn tile_rows<const NR: usize, P: Tiles>(
    out: &mut OutColumns,
    p: &P,
    (r0, rows): (usize, usize),
    c0: usize,
) {
    // SAFETY: forwarded from the caller, with MR = rows.
    unsafe {
        match rows {
            1 => p.tile::<1, NR>(out, r0, c0),
            2 => p.tile::<2, NR>(out, r0, c0),
            3 => p.tile::<3, NR>(out, r0, c0),
            _ => p.tile::<4, NR>(out, r0, c0),
        }
    }
}

/// The whole product `p` for the columns of `out`, with `row_bytes` activation bytes per row.
///
/// # Safety
/// The shapes of `p` agree with `out` as [`Tiles::tile`] requires, and the CPU has the features
/// of `P`'s tiles.
#[inline(always)]
pub(in crate::kernels) unsafe fn run<const DECODE_NR: usize, const PREFILL_NR: usize, P: Tiles>(
    out: &mut OutColumns,
    p: &P,
    row_bytes: usize,
) {
    let m = out.m();
    let cols = out.cols();
    if m == 1 {
        let mut c = cols.start;
        while c < cols.end {
            // SAFETY: row 0 < m = 1, the columns stay below cols.end <= n, and the shapes and
            // features are the caller's.
            unsafe {
                if c + DECODE_NR <= cols.end {
                    p.tile::<1, DECODE_NR>(out, 0, c);
                    c += DECODE_NR;
                } else {
                    p.tile::<1, 1>(out, 0, c);
                    c += 1;
                }
            }
        }
        return;
    }
    let row_block = (ROW_BLOCK_BYTES / row_bytes).max(4) / 4 * 4;
    for rb in (0..m).step_by(row_block) {
        let rb_end = (rb + row_block).min(m);
        let mut c = cols.start;
        while c < cols.end {
            let nr = if c + PREFILL_NR <= cols.end {
                PREFILL_NR
            } else {
                1
            };
            for r in (rb..rb_end).step_by(4) {
                let rows = (r, (rb_end - r).min(4));
                // SAFETY: r + rows <= m, c + nr <= cols.end <= n, and the shapes and features
                // are the caller's.
                unsafe {
                    if nr == PREFILL_NR {
                        tile_rows::<PREFILL_NR, P>(out, p, rows, c);
                    } else {
                        tile_rows::<1, P>(out, p, rows, c);
                    }
                }
            }
            c += nr;
        }
    }
}
