//! Linear layers with int8 activations and 4-bit palette indices (`lut4`), two blocks of 32 at a
//! time, in the lane order of the scalar reference (`scalar::linear_lut`).
//!
//! The indices are packed as int4 weights are, so they split into low nibbles (even elements) and
//! high nibbles (odd elements) that meet the activations in
//! [`Q8Layout::Pairs`](crate::kernels::q8_rows::Q8Layout::Pairs) order. A palette's 16 int16
//! levels become two byte tables, their low and their high bytes, and `vpshufb` looks up 32
//! indices in each. Interleaving the two lookups gives int16 levels, which `vpmaddwd` multiplies
//! with the activations widened to int16. The int16 products of a 128-bit lane cover two runs of
//! 8 elements each (elements 0, 2, .., 14 for the low unpack), so one `vphaddd` of the two halves'
//! sums brings each run into its own i32 lane: lanes 0-3 the runs of block `2p`, lanes 4-7 those
//! of block `2p + 1`, exact integers as the reference's. The f32 steps are then the int4
//! kernels': one conversion and one fused multiply-add with the pair's scales per pair.

use std::arch::x86_64::*;

use super::linear_q8_int4::{block_nibbles, check_shapes, split_nibbles};
use super::simd::hsum;
use super::tiling::{self, Product, Tiles, PREFETCH_TILES};
use crate::kernels::out_columns::OutColumns;
use crate::kernels::q8_rows::Q8Rows;
use crate::weights::{WeightData, Weights, BLOCK};

/// Packed bytes of two blocks of one row.
const PAIR_BYTES: usize = BLOCK;

/// Entries of a 4-bit palette.
const ENTRIES: usize = 16;

/// 4-bit palette indices with their palettes' int16 levels. The AVX-512 kernel reads them too.
pub(in crate::kernels) struct Lut4<'a> {
    packed: &'a [u8],
    levels: &'a [i16],
    steps: &'a [f32],
    group_rows: usize,
    k: usize,
}

impl<'a> Lut4<'a> {
    /// The reader of `w`; panics unless `w` holds 4-bit palette indices.
    pub(in crate::kernels) fn new(w: &Weights<'a>) -> Self {
        let WeightData::Palettized(p) = w.data() else {
            panic!("lut4: weights are {:?}", w.format())
        };
        assert_eq!(p.bits, 4, "lut4: indices of {} bits", p.bits);
        Lut4 {
            packed: p.indices,
            levels: p.levels,
            steps: p.steps,
            group_rows: p.group_rows,
            k: w.k(),
        }
    }

    /// The low and the high bytes of the levels of row `c`'s palette, as two `vpshufb` tables
    /// (the 16 bytes repeated in both 128-bit lanes).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(in crate::kernels) fn tables(&self, c: usize) -> (__m256i, __m256i) {
        let levels = &self.levels[c / self.group_rows * ENTRIES..][..ENTRIES];
        // SAFETY: the 16 int16 levels are the 32 bytes read; loadu accepts any alignment.
        let v = unsafe { _mm256_loadu_si256(levels.as_ptr().cast()) };
        let bytes = _mm256_setr_epi8(
            0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, //
            0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,
        );
        // Quarters: low bytes of levels 0-7, high bytes of 0-7, low of 8-15, high of 8-15.
        let split = _mm256_shuffle_epi8(v, bytes);
        let split = _mm256_permute4x64_epi64::<0b11_01_10_00>(split);
        (
            _mm256_permute2x128_si256::<0x00>(split, split),
            _mm256_permute2x128_si256::<0x11>(split, split),
        )
    }

    /// Low and high nibbles of blocks `2p`, `2p + 1` of row `c`.
    ///
    /// # Safety
    /// `c < n`, `2p + 1 < k / 32`, and the CPU has AVX2, FMA and F16C.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(in crate::kernels) unsafe fn pair(&self, c: usize, p: usize) -> (__m256i, __m256i) {
        // SAFETY: k % 32 == 0 on this path, so the pair's 32 bytes lie inside row c's k / 2.
        unsafe { split_nibbles(self.packed, c * (self.k / 2) + p * PAIR_BYTES, 0) }
    }

    /// Block `b` of row `c`: its even elements' indices in the low 16 bytes, its odd ones' in the
    /// high.
    ///
    /// # Safety
    /// `c < n`, `b < k / 32`, and the CPU has AVX2, FMA and F16C.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(in crate::kernels) unsafe fn lone(&self, c: usize, b: usize) -> __m256i {
        // SAFETY: as for `pair`, for the 16 bytes of block b.
        unsafe { block_nibbles(self.packed, c * (self.k / 2) + b * BLOCK / 2, 0) }
    }

    /// The packed indices of row `c`.
    pub(in crate::kernels) fn row(&self, c: usize) -> &'a [u8] {
        &self.packed[c * (self.k / 2)..][..self.k / 2]
    }

    /// The value of one level of row `c`'s palette.
    pub(in crate::kernels) fn step(&self, c: usize) -> f32 {
        self.steps[c / self.group_rows]
    }

    /// Address of the indices of row `c`; may lie past the end, as it is only prefetched.
    pub(in crate::kernels) fn row_addr(&self, c: usize) -> *const u8 {
        self.packed.as_ptr().wrapping_add(c * (self.k / 2))
    }
}

/// 32 int8 activations widened to int16 as the level unpacks order them: bytes 0-7 of each
/// 128-bit lane, then bytes 8-15.
#[derive(Clone, Copy)]
struct Widened(__m256i, __m256i);

/// Loads and widens the 32 activations at `x`.
///
/// # Safety
/// `x` points to 32 readable bytes, and the CPU has AVX2, FMA and F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn widen(x: *const i8) -> Widened {
    // SAFETY: 32 bytes (caller); loadu accepts any alignment.
    let v = unsafe { _mm256_loadu_si256(x.cast()) };
    // Each byte doubled into an int16, then shifted down with its sign.
    Widened(
        _mm256_srai_epi16::<8>(_mm256_unpacklo_epi8(v, v)),
        _mm256_srai_epi16::<8>(_mm256_unpackhi_epi8(v, v)),
    )
}

/// The int16 levels of 32 indices, ordered as [`Widened`].
#[derive(Clone, Copy)]
struct Levels(__m256i, __m256i);

/// Looks up `indices` (bytes in [0, 15]) in the byte tables of [`Lut4::tables`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn look_up((low, high): (__m256i, __m256i), indices: __m256i) -> Levels {
    let (lo, hi) = (
        _mm256_shuffle_epi8(low, indices),
        _mm256_shuffle_epi8(high, indices),
    );
    Levels(_mm256_unpacklo_epi8(lo, hi), _mm256_unpackhi_epi8(lo, hi))
}

/// Products of levels and activations summed in pairs: i32 lane `i` of each 128-bit lane holds
/// bytes `2i, 2i + 1` (first vector) and `8 + 2i, 9 + 2i` (second) of the 32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn products(w: Levels, x: Widened) -> (__m256i, __m256i) {
    (_mm256_madd_epi16(w.0, x.0), _mm256_madd_epi16(w.1, x.1))
}

impl Tiles for Product<'_, Q8Rows, Lut4<'_>> {
    /// # Safety
    /// As [`Tiles::tile`], which here means `r0 + MR <= m`, `c0 + NR <= n`, `x` is `[m, k]` in
    /// the pair layout with `k % 32 == 0`, `w` describes an `[n, k]` matrix, and the CPU has
    /// AVX2, FMA and F16C.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn tile<const MR: usize, const NR: usize>(
        &self,
        out: &mut OutColumns,
        r0: usize,
        c0: usize,
    ) {
        let (x, w) = (self.x, self.w);
        let k = x.k();
        let blocks = k / BLOCK;
        let (pairs, stored_pairs) = (blocks / 2, blocks.div_ceil(2));
        let (xq, xs) = (x.values().as_ptr(), x.pair_scales().as_ptr());
        const {
            assert!(
                MR <= 4 && MR * NR <= 8 && NR <= 4,
                "tile larger than the accumulator array"
            )
        };
        // Flat accumulators indexed r * NR + c, with index loops: LLVM keeps these in registers.
        let mut acc = [_mm256_setzero_ps(); 8];
        let mut tables = [(_mm256_setzero_si256(), _mm256_setzero_si256()); 4];
        for (c, t) in tables.iter_mut().enumerate().take(NR) {
            *t = w.tables(c0 + c);
        }
        // Each row's activations are widened once per pair and shared by the tile's columns.
        let zero = Widened(_mm256_setzero_si256(), _mm256_setzero_si256());
        let mut wide = [(zero, zero); 4];
        let ahead = w.row_addr(c0 + PREFETCH_TILES * NR);
        for p in 0..pairs {
            if MR == 1 {
                // Decode: fetch the rows of a later tile, as the int4 kernel does.
                for line in (0..NR * PAIR_BYTES).step_by(64) {
                    let addr = ahead.wrapping_add(p * NR * PAIR_BYTES + line);
                    _mm_prefetch::<_MM_HINT_T0>(addr.cast());
                }
            }
            for (r, x) in wide.iter_mut().enumerate().take(MR) {
                let row = (r0 + r) * k + p * 2 * BLOCK;
                // SAFETY: r0 + r < m, so the 64 values of pair p lie inside values() ([m, k]).
                *x = unsafe { (widen(xq.add(row)), widen(xq.add(row + BLOCK))) };
            }
            for (c, &palette) in tables.iter().enumerate().take(NR) {
                // SAFETY: c0 + c < n and 2p + 1 < blocks.
                let (low, high) = unsafe { w.pair(c0 + c, p) };
                let (even, odd) = (look_up(palette, low), look_up(palette, high));
                for (r, &(xe, xo)) in wide.iter().enumerate().take(MR) {
                    let (e0, e1) = products(even, xe);
                    let (o0, o1) = products(odd, xo);
                    let dot = _mm256_hadd_epi32(_mm256_add_epi32(e0, o0), _mm256_add_epi32(e1, o1));
                    // SAFETY: the 8 scales of pair p of row r0 + r < m lie inside pair_scales()
                    // ([m, stored_pairs, 8]).
                    let xd = unsafe { _mm256_loadu_ps(xs.add(((r0 + r) * stored_pairs + p) * 8)) };
                    let i = r * NR + c;
                    acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), xd, acc[i]);
                }
            }
        }
        if blocks % 2 == 1 {
            // The last block has no partner: its values are stored even then odd, and its scale
            // fills all 8 lanes of its pair's scales.
            let b = blocks - 1;
            for (c, &palette) in tables.iter().enumerate().take(NR) {
                // SAFETY: c0 + c < n and b < blocks.
                let levels = look_up(palette, unsafe { w.lone(c0 + c, b) });
                for r in 0..MR {
                    // SAFETY: the 32 values of block b of row r0 + r and the 8 scales of its pair.
                    let (xv, xd) = unsafe {
                        (
                            widen(xq.add((r0 + r) * k + b * BLOCK)),
                            _mm256_loadu_ps(xs.add(((r0 + r) * stored_pairs + pairs) * 8)),
                        )
                    };
                    let (d0, d1) = products(levels, xv);
                    let dot = _mm256_hadd_epi32(d0, d1);
                    let i = r * NR + c;
                    acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), xd, acc[i]);
                }
            }
        }
        let start = out.cols().start;
        for r in 0..MR {
            let row = out.row(r0 + r);
            for c in 0..NR {
                row[c0 + c - start] = hsum(acc[r * NR + c]) * w.step(c0 + c);
            }
        }
    }
}

/// 4-bit palette indices.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn lut4(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    check_shapes(out, x, w);
    let k = w.k();
    // Decode: four weight rows per step give four independent accumulator chains.
    // SAFETY: shapes checked above, and this module only runs on CPUs with the features.
    unsafe {
        tiling::run::<4, 2, _>(
            out,
            &Product {
                x,
                w: &Lut4::new(w),
                k,
            },
            k,
        )
    }
}
