//! Linear layers with int8 activations and int8 weights: integer dot products per block of 32
//! with `vpmaddubsw` (u8 x i8 pairs to i16) and `vpmaddwd` (i16 pairs to i32), then one f32 FMA
//! per block with the activation scale. (int4 weights: `linear_q8_int4`.)
//!
//! `vpmaddubsw` needs one unsigned operand: the sign trick `|w| * (x * sign(w))`; with
//! |x| <= 127 and |w| <= 128 a pair sums to at most 32512, so the i16 never saturates (which is
//! also why two blocks cannot share one widening, as int4 blocks do). The register tile and row
//! blocking mirror `linear_f32`.

use std::arch::x86_64::*;

use super::simd::hsum;
use crate::kernels::out_columns::OutColumns;
use crate::kernels::q8_rows::{Q8Layout, Q8Rows};
use crate::weights::{Scales, WeightData, Weights, BLOCK};

/// Activation bytes per row block: about half of the 512 KiB L2.
const ROW_BLOCK_BYTES: usize = 256 * 1024;

/// How many 1 x 4 tiles ahead decode prefetches.
const PREFETCH_TILES: usize = 2;

/// int8 weights with one scale per row.
struct Int8PerChannel<'a> {
    data: &'a [i8],
    scales: Scales<'a>,
    k: usize,
}

impl Int8PerChannel<'_> {
    /// Block `b` of row `c`.
    ///
    /// # Safety
    /// `c < n`, `b < k / 32`, and the CPU has AVX2.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block(&self, c: usize, b: usize) -> __m256i {
        // SAFETY: c < n and b < k / 32 (caller) keep the 32 bytes inside the n * k data.
        unsafe { _mm256_loadu_si256(self.data.as_ptr().add(c * self.k + b * BLOCK).cast()) }
    }

    /// Address of row `c`; may lie past the end, as it is only prefetched.
    fn row_addr(&self, c: usize) -> *const u8 {
        self.data.as_ptr().cast::<u8>().wrapping_add(c * self.k)
    }
}

/// Rows `r0..r0 + MR` and columns `c0..c0 + NR` of the output.
///
/// # Safety
/// `r0 + MR <= m`, `c0 + NR <= n`, `x` is `[m, k]` with `k % 32 == 0`, `w` describes an `[n, k]`
/// matrix, and the CPU has AVX2, FMA and F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<const MR: usize, const NR: usize>(
    out: &mut OutColumns,
    x: &Q8Rows,
    w: &Int8PerChannel,
    r0: usize,
    c0: usize,
) {
    let k = x.k();
    let blocks = k / BLOCK;
    let (xq, xs) = (x.values().as_ptr(), x.scales().as_ptr());
    const {
        assert!(
            MR * NR <= 8 && NR <= 4,
            "tile larger than the accumulator array"
        )
    };
    let ones = _mm256_set1_epi16(1);
    // Flat accumulators indexed r * NR + c, with index loops: LLVM keeps these in registers
    // across the block loop, where nested arrays and iterators made it shuffle registers.
    let mut acc = [_mm256_setzero_ps(); 8];
    // Decode streams rows from DRAM in runs too short for the hardware prefetcher (see
    // linear_f32): fetch the rows of a later tile, in memory order, one cache line per block.
    let ahead = w.row_addr(c0 + PREFETCH_TILES * NR);
    for b in 0..blocks {
        if MR == 1 {
            let addr = ahead.wrapping_add(b * NR * BLOCK);
            _mm_prefetch::<_MM_HINT_T0>(addr.cast());
        }
        let mut wv = [_mm256_setzero_si256(); 4];
        let mut wabs = [_mm256_setzero_si256(); 4];
        for c in 0..NR {
            // SAFETY: c0 + c < n and b < blocks, the contract of `block`.
            wv[c] = unsafe { w.block(c0 + c, b) };
            wabs[c] = _mm256_abs_epi8(wv[c]);
        }
        for r in 0..MR {
            // SAFETY: r0 + r < m and b < blocks, so (r0 + r) * k + 32 b + 32 <= m * k, the
            // length of values(), and (r0 + r) * blocks + b < m * blocks, that of scales().
            let (xv, dx) = unsafe {
                (
                    _mm256_loadu_si256(xq.add((r0 + r) * k + b * BLOCK).cast()),
                    _mm256_set1_ps(*xs.add((r0 + r) * blocks + b)),
                )
            };
            for c in 0..NR {
                let p = _mm256_maddubs_epi16(wabs[c], _mm256_sign_epi8(xv, wv[c]));
                let dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
                acc[r * NR + c] = _mm256_fmadd_ps(dot, dx, acc[r * NR + c]);
            }
        }
    }
    let start = out.cols().start;
    for r in 0..MR {
        let row = out.row(r0 + r);
        for c in 0..NR {
            row[c0 + c - start] = hsum(acc[r * NR + c]) * w.scales.get(c0 + c);
        }
    }
}

/// Runs `tile::<MR, NR>` with `MR` chosen at run time for the last, shorter row group.
///
/// # Safety
/// As [`tile`], with `rows` in `1..=4` in place of `MR`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_rows<const NR: usize>(
    out: &mut OutColumns,
    x: &Q8Rows,
    w: &Int8PerChannel,
    (r0, rows): (usize, usize),
    c0: usize,
) {
    // SAFETY: forwarded from the caller, with MR = rows.
    unsafe {
        match rows {
            1 => tile::<1, NR>(out, x, w, r0, c0),
            2 => tile::<2, NR>(out, x, w, r0, c0),
            3 => tile::<3, NR>(out, x, w, r0, c0),
            _ => tile::<4, NR>(out, x, w, r0, c0),
        }
    }
}

/// The whole product for the columns of `out`.
#[target_feature(enable = "avx2,fma,f16c")]
fn run(out: &mut OutColumns, x: &Q8Rows, w: &Int8PerChannel, weights: &Weights) {
    let (m, k) = (out.m(), weights.k());
    assert!(
        out.n() == weights.n() && x.m() == m && x.k() == k && k % BLOCK == 0,
        "linear_q8: activations, weights and output shapes disagree"
    );
    assert_eq!(
        x.layout(),
        Q8Layout::Natural,
        "linear_q8: int8 weights take activations in natural order"
    );
    let cols = out.cols();
    if m == 1 {
        // Decode: four weight rows per step give four independent accumulator chains.
        let mut c = cols.start;
        while c < cols.end {
            // SAFETY: row 0 < m = 1, the columns stay below cols.end <= n, shapes asserted above,
            // and this module only runs on CPUs with the features.
            unsafe {
                if c + 4 <= cols.end {
                    tile::<1, 4>(out, x, w, 0, c);
                    c += 4;
                } else {
                    tile::<1, 1>(out, x, w, 0, c);
                    c += 1;
                }
            }
        }
        return;
    }
    let row_block = (ROW_BLOCK_BYTES / k).max(4) / 4 * 4;
    for rb in (0..m).step_by(row_block) {
        let rb_end = (rb + row_block).min(m);
        let mut c = cols.start;
        while c < cols.end {
            let nr = if c + 2 <= cols.end { 2 } else { 1 };
            for r in (rb..rb_end).step_by(4) {
                let rows = (r, (rb_end - r).min(4));
                // SAFETY: r + rows <= m, c + nr <= cols.end <= n, shapes asserted above, and
                // this module only runs on CPUs with the features.
                unsafe {
                    if nr == 2 {
                        tile_rows::<2>(out, x, w, rows, c);
                    } else {
                        tile_rows::<1>(out, x, w, rows, c);
                    }
                }
            }
            c += nr;
        }
    }
}

/// int8 weights, per-channel scales.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn int8_per_channel(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    let WeightData::Int8PerChannel { data, scales } = w.data() else {
        panic!("int8_per_channel: weights are {:?}", w.format())
    };
    run(
        out,
        x,
        &Int8PerChannel {
            data,
            scales,
            k: w.k(),
        },
        w,
    );
}
