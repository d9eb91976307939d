//! Linear layers with int8 activations and int8 weights, with `vpdpbusd` on 256-bit vectors.
//!
//! Each i32 lane sums the same four products as in the AVX2 kernel (`x86_avx2::linear_q8`) and
//! the float steps are the same, so the results are bit-identical to AVX2's. `vpdpbusd` takes its
//! weights unsigned, `u = w + 128`: each lane starts from `-128` times the sum of its four
//! activations, counted once per row and block and shared by the tile's columns, and so ends at
//! the signed sum. One `vpdpbusd` per block and output replaces AVX2's sign, `vpmaddubsw` and
//! `vpmaddwd`.

use std::arch::x86_64::*;
use std::marker::PhantomData;

use crate::kernels::out_columns::OutColumns;
use crate::kernels::q8_rows::Q8Rows;
use crate::kernels::x86_avx2::linear_q8::Int8;
use crate::kernels::x86_avx2::simd::hsum;
use crate::kernels::x86_avx2::tiling::{self, Product, Tiles, PREFETCH_TILES};
use crate::weights::{Weights, BLOCK};

use super::Encoding;

/// The int8 product, read through AVX2's reader and multiplied with VNNI in encoding `E`.
struct Vnni<'a, E, const BLOCKWISE: bool>(&'a Int8<'a, BLOCKWISE>, PhantomData<E>);

impl<E, const BLOCKWISE: bool> Vnni<'_, E, BLOCKWISE> {
    /// Block `b` of row `c` as `w + 128`.
    ///
    /// # Safety
    /// As `Int8::block`.
    #[inline(always)]
    unsafe fn block(&self, c: usize, b: usize) -> __m256i {
        // SAFETY: the caller's.
        let v = unsafe { self.0.block(c, b) };
        _mm256_xor_si256(v, _mm256_set1_epi8(i8::MIN))
    }
}

impl<E: Encoding, const BLOCKWISE: bool> Tiles for Product<'_, Q8Rows, Vnni<'_, E, BLOCKWISE>> {
    /// # Safety
    /// As [`Tiles::tile`], which here means `r0 + MR <= m`, `c0 + NR <= n`, `x` is `[m, k]` with
    /// `k % 32 == 0`, `w` describes an `[n, k]` matrix, and the CPU has AVX2, FMA, F16C and
    /// encoding `E`, with which the caller is compiled.
    #[inline(always)]
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
                MR * NR <= 16 && NR <= 4,
                "tile larger than the accumulator array"
            )
        };
        let offset = _mm256_set1_epi8(i8::MIN);
        let mut acc = [_mm256_setzero_ps(); 16];
        let ahead = w.0.row_addr(c0 + PREFETCH_TILES * NR);
        for b in 0..blocks {
            if MR == 1 {
                let addr = ahead.wrapping_add(b * NR * BLOCK);
                _mm_prefetch::<_MM_HINT_T0>(addr.cast());
            }
            let mut wv = [_mm256_setzero_si256(); 4];
            let mut ws = [1.0f32; 4];
            for c in 0..NR {
                // SAFETY: c0 + c < n and b < blocks, the contract of `block`.
                wv[c] = unsafe { w.block(c0 + c, b) };
                ws[c] = w.0.block_scale(c0 + c, b);
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
                // SAFETY (both dpbusd): the features of E, the caller's.
                let start = _mm256_sub_epi32(_mm256_setzero_si256(), unsafe {
                    E::dpbusd(_mm256_setzero_si256(), offset, xv)
                });
                for c in 0..NR {
                    let dot = _mm256_cvtepi32_ps(unsafe { E::dpbusd(start, wv[c], xv) });
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
                row[c0 + c - start] = hsum(acc[r * NR + c]) * w.0.row_scale(c0 + c);
            }
        }
    }
}

/// The product for `Int8` weights of either kind, in prefill tiles of 4 rows by `PREFILL_NR`
/// columns.
///
/// # Safety
/// The CPU has AVX2, FMA, F16C and encoding `E`, and the caller is compiled with them.
#[inline(always)]
unsafe fn run<E: Encoding, const PREFILL_NR: usize, const BLOCKWISE: bool>(
    out: &mut OutColumns,
    x: &Q8Rows,
    weights: &Weights,
) {
    let w = &Vnni::<E, BLOCKWISE>(&Int8::checked(out, x, weights), PhantomData);
    let k = weights.k();
    // SAFETY: shapes checked by `checked`; the features are the caller's.
    unsafe { tiling::run::<4, PREFILL_NR, _>(out, &Product { x, w, k }, k) }
}

/// int8 weights, per-channel scales.
///
/// # Safety
/// As `run`.
#[inline(always)]
pub(super) unsafe fn int8_per_channel<E: Encoding, const PREFILL_NR: usize>(
    out: &mut OutColumns,
    x: &Q8Rows,
    w: &Weights,
) {
    // SAFETY: the caller's.
    unsafe { run::<E, PREFILL_NR, false>(out, x, w) }
}

/// int8 weights, scales per block of 32.
///
/// # Safety
/// As `run`.
#[inline(always)]
pub(super) unsafe fn int8_block32<E: Encoding, const PREFILL_NR: usize>(
    out: &mut OutColumns,
    x: &Q8Rows,
    w: &Weights,
) {
    // SAFETY: the caller's.
    unsafe { run::<E, PREFILL_NR, true>(out, x, w) }
}
