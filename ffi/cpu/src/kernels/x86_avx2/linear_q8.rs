//! Linear layers with int8 activations and int8 weights: integer dot products per block of 32
//! with `vpmaddubsw` (u8 x i8 pairs to i16) and `vpmaddwd` (i16 pairs to i32), then one f32 FMA
//! per block with the activation scale, times the block's weight scale when the weights have one
//! per block of 32. (int4 weights: `linear_q8_int4`.)
//!
//! `vpmaddubsw` needs one unsigned operand: the sign trick `|w| * (x * sign(w))`; with
//! |x| <= 127 and |w| <= 128 a pair sums to at most 32512, so the i16 never saturates (which is
//! also why two blocks cannot share one widening, as int4 blocks do). The register tiles are
//! scheduled by `tiling`, as in `linear_f32`.

use std::arch::x86_64::*;

use super::simd::hsum;
use super::tiling::{self, Product, Tiles, PREFETCH_TILES};
use crate::kernels::out_columns::OutColumns;
use crate::kernels::q8_rows::{Q8Layout, Q8Rows};
use crate::weights::{Scales, WeightData, Weights, BLOCK};

/// int8 weights with one scale per row, or per block of 32 when `BLOCKWISE` (the AVX-512 kernel
/// reads them through this too).
pub(in crate::kernels) struct Int8<'a, const BLOCKWISE: bool> {
    data: &'a [i8],
    /// One per row, or `[n, k / 32]`.
    scales: Scales<'a>,
    k: usize,
}

impl<'a, const BLOCKWISE: bool> Int8<'a, BLOCKWISE> {
    /// The weights of a product of `x` into `out`; panics unless they are int8 with the scales
    /// `BLOCKWISE` says and the shapes and the activation layout agree.
    pub(in crate::kernels) fn checked(out: &OutColumns, x: &Q8Rows, weights: &Weights<'a>) -> Self {
        let (data, scales) = match weights.data() {
            WeightData::Int8PerChannel { data, scales } if !BLOCKWISE => (data, scales),
            WeightData::Int8Block32 { data, scales } if BLOCKWISE => (data, scales),
            _ => panic!("linear_q8 int8: weights are {:?}", weights.format()),
        };
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
        Int8 { data, scales, k }
    }

    /// The scale block `b` of row `c` adds to the activation scale: 1 for per-row scales.
    #[inline(always)]
    pub(in crate::kernels) fn block_scale(&self, c: usize, b: usize) -> f32 {
        if BLOCKWISE {
            self.scales.get(c * (self.k / BLOCK) + b)
        } else {
            1.0
        }
    }

    /// The scale applied to row `c`'s sum over blocks: 1 for per-block scales.
    #[inline(always)]
    pub(in crate::kernels) fn row_scale(&self, c: usize) -> f32 {
        if BLOCKWISE {
            1.0
        } else {
            self.scales.get(c)
        }
    }

    /// Block `b` of row `c`.
    ///
    /// # Safety
    /// `c < n`, `b < k / 32`, and the CPU has AVX2.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(in crate::kernels) unsafe fn block(&self, c: usize, b: usize) -> __m256i {
        // SAFETY: c < n and b < k / 32 (caller) keep the 32 bytes inside the n * k data.
        unsafe { _mm256_loadu_si256(self.data.as_ptr().add(c * self.k + b * BLOCK).cast()) }
    }

    /// Address of row `c`; may lie past the end, as it is only prefetched.
    pub(in crate::kernels) fn row_addr(&self, c: usize) -> *const u8 {
        self.data.as_ptr().cast::<u8>().wrapping_add(c * self.k)
    }
}

impl<const BLOCKWISE: bool> Tiles for Product<'_, Q8Rows, Int8<'_, BLOCKWISE>> {
    /// # Safety
    /// As [`Tiles::tile`], which here means `r0 + MR <= m`, `c0 + NR <= n`, `x` is `[m, k]` with
    /// `k % 32 == 0`, `w` describes an `[n, k]` matrix, and the CPU has AVX2, FMA and F16C.
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
            let mut ws = [1.0f32; 4];
            for c in 0..NR {
                // SAFETY: c0 + c < n and b < blocks, the contract of `block`.
                wv[c] = unsafe { w.block(c0 + c, b) };
                wabs[c] = _mm256_abs_epi8(wv[c]);
                ws[c] = w.block_scale(c0 + c, b);
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
                    let d = if BLOCKWISE {
                        _mm256_mul_ps(dx, _mm256_set1_ps(ws[c]))
                    } else {
                        dx
                    };
                    acc[r * NR + c] = _mm256_fmadd_ps(dot, d, acc[r * NR + c]);
                }
            }
        }
        let start = out.cols().start;
        for r in 0..MR {
            let row = out.row(r0 + r);
            for c in 0..NR {
                row[c0 + c - start] = hsum(acc[r * NR + c]) * w.row_scale(c0 + c);
            }
        }
    }
}

/// The product for `Int8` weights of either kind.
#[target_feature(enable = "avx2,fma,f16c")]
fn run<const BLOCKWISE: bool>(out: &mut OutColumns, x: &Q8Rows, weights: &Weights) {
    let w = &Int8::<BLOCKWISE>::checked(out, x, weights);
    let k = weights.k();
    // Decode: four weight rows per step give four independent accumulator chains.
    // SAFETY: shapes checked by `checked`, and this module only runs on CPUs with the features.
    unsafe { tiling::run::<4, 2, _>(out, &Product { x, w, k }, k) }
}

/// int8 weights, per-channel scales.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn int8_per_channel(out: &mut OutColumns, x: &Q8Rows, weights: &Weights) {
    run::<false>(out, x, weights)
}

/// int8 weights, scales per block of 32.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn int8_block32(out: &mut OutColumns, x: &Q8Rows, weights: &Weights) {
    run::<true>(out, x, weights)
}
