//! Linear layers with int8 activations and int8 weights, with `vpdpbusd`.
//!
//! Each i32 lane sums the same four products as in the AVX2 kernel (`x86_avx2::linear_q8`) and
//! the float steps are the same, so the results are bit-identical to AVX2's. `vpdpbusd` takes its
//! weights unsigned, `u = w + 128`: each lane starts from `-128` times the sum of its four
//! activations, counted once per row and block and shared by the tile's columns, and so ends at
//! the signed sum. One `vpdpbusd` per block and output replaces AVX2's sign, `vpmaddubsw` and
//! `vpmaddwd`.
//!
//! AVX-512's prefill tiles take two weight rows to a 512-bit vector, as the int4 kernel's do (see
//! there), with the same effect: on a 2-core Intel Xeon, prefill of SmolLM2-135M with int8
//! weights became about a quarter faster with per-channel scales and two fifths with block-32
//! ones than with 4 x 4 tiles of 256-bit vectors.

use std::arch::x86_64::*;
use std::marker::PhantomData;

use crate::kernels::out_columns::OutColumns;
use crate::kernels::q8_rows::Q8Rows;
use crate::kernels::x86_avx2::linear_q8::Int8;
use crate::kernels::x86_avx2::simd::hsum;
use crate::kernels::x86_avx2::tiling::{self, Product, Tiles, PREFETCH_TILES};
use crate::weights::{Weights, BLOCK};

use super::{halves, join, join_ps, Encoding, Evex, Vex, DECODE_NR};

/// The int8 product, read through AVX2's reader and multiplied with VNNI in encoding `E`.
struct Vnni<'a, E, const BLOCKWISE: bool>(&'a Int8<'a, BLOCKWISE>, PhantomData<E>);

/// Block `b` of row `c` as `w + 128`.
///
/// # Safety
/// As `Int8::block`.
#[inline(always)]
unsafe fn offset_block<const BLOCKWISE: bool>(w: &Int8<BLOCKWISE>, c: usize, b: usize) -> __m256i {
    // SAFETY: the caller's.
    let v = unsafe { w.block(c, b) };
    _mm256_xor_si256(v, _mm256_set1_epi8(i8::MIN))
}

/// The tile of rows `r0..r0 + MR` and columns `c0..c0 + NR` on 256-bit vectors.
///
/// # Safety
/// As [`Tiles::tile`], which here means `r0 + MR <= m`, `c0 + NR <= n`, `x` is `[m, k]` with
/// `k % 32 == 0`, `w` describes an `[n, k]` matrix, and the CPU has AVX2, FMA, F16C and encoding
/// `E`, with which the caller is compiled.
#[inline(always)]
unsafe fn tile_256<E: Encoding, const BLOCKWISE: bool, const MR: usize, const NR: usize>(
    x: &Q8Rows,
    w: &Int8<'_, BLOCKWISE>,
    out: &mut OutColumns,
    r0: usize,
    c0: usize,
) {
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
    let ahead = w.row_addr(c0 + PREFETCH_TILES * NR);
    for b in 0..blocks {
        if MR == 1 {
            let addr = ahead.wrapping_add(b * NR * BLOCK);
            _mm_prefetch::<_MM_HINT_T0>(addr.cast());
        }
        let mut wv = [_mm256_setzero_si256(); 4];
        let mut ws = [1.0f32; 4];
        for c in 0..NR {
            // SAFETY: c0 + c < n and b < blocks, the contract of `block`.
            wv[c] = unsafe { offset_block(w, c0 + c, b) };
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
            row[c0 + c - start] = hsum(acc[r * NR + c]) * w.row_scale(c0 + c);
        }
    }
}

/// How an encoding covers a tile of the int8 product.
pub(super) trait Int8Tiles: Encoding + Sized {
    /// The tile of rows `r0..r0 + MR` and columns `c0..c0 + NR`.
    ///
    /// # Safety
    /// As [`tile_256`].
    unsafe fn tile<const BLOCKWISE: bool, const MR: usize, const NR: usize>(
        x: &Q8Rows,
        w: &Int8<'_, BLOCKWISE>,
        out: &mut OutColumns,
        r0: usize,
        c0: usize,
    );
}

impl Int8Tiles for Vex {
    #[inline(always)]
    unsafe fn tile<const BLOCKWISE: bool, const MR: usize, const NR: usize>(
        x: &Q8Rows,
        w: &Int8<'_, BLOCKWISE>,
        out: &mut OutColumns,
        r0: usize,
        c0: usize,
    ) {
        // SAFETY: the caller's.
        unsafe { tile_256::<Self, BLOCKWISE, MR, NR>(x, w, out, r0, c0) }
    }
}

impl Int8Tiles for Evex {
    /// Decode's tiles (one row, `DECODE_NR` columns or one) on 256-bit vectors, prefill's on
    /// 512-bit ones.
    #[inline(always)]
    unsafe fn tile<const BLOCKWISE: bool, const MR: usize, const NR: usize>(
        x: &Q8Rows,
        w: &Int8<'_, BLOCKWISE>,
        out: &mut OutColumns,
        r0: usize,
        c0: usize,
    ) {
        // SAFETY (all three): the caller's, which include the features of Evex; the const
        // arguments are MR and NR.
        unsafe {
            match (MR, NR) {
                (1, DECODE_NR) => tile_256::<Self, BLOCKWISE, 1, DECODE_NR>(x, w, out, r0, c0),
                (1, 1) => tile_256::<Self, BLOCKWISE, 1, 1>(x, w, out, r0, c0),
                _ => tile_512::<BLOCKWISE, MR, NR>(x, w, out, r0, c0),
            }
        }
    }
}

impl<E: Int8Tiles, const BLOCKWISE: bool> Tiles for Product<'_, Q8Rows, Vnni<'_, E, BLOCKWISE>> {
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
        // SAFETY: the caller's.
        unsafe { E::tile::<BLOCKWISE, MR, NR>(self.x, self.w.0, out, r0, c0) }
    }
}

/// The tile of rows `r0..r0 + MR` and columns `c0..c0 + NR` with two columns to a 512-bit
/// vector, as in the int4 kernel's `tile_512`: each half computes what [`tile_256`] computes for
/// its column, step for step.
///
/// # Safety
/// As [`tile_256`], with AVX-512F, VL, BW and VNNI.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni,avx512bw")]
unsafe fn tile_512<const BLOCKWISE: bool, const MR: usize, const NR: usize>(
    x: &Q8Rows,
    w: &Int8<'_, BLOCKWISE>,
    out: &mut OutColumns,
    r0: usize,
    c0: usize,
) {
    let k = x.k();
    let blocks = k / BLOCK;
    let (xq, xs) = (x.values().as_ptr(), x.scales().as_ptr());
    let np = NR.div_ceil(2);
    const {
        assert!(
            MR * NR.div_ceil(2) <= 16 && NR <= 8,
            "tile larger than the accumulator array"
        )
    };
    // The columns of vector j's halves (for an odd NR, the last column fills both).
    let columns = |j: usize| (c0 + 2 * j, c0 + (2 * j + 1).min(NR - 1));
    let offset = _mm256_set1_epi8(i8::MIN);
    let mut acc = [_mm512_setzero_ps(); 16];
    for b in 0..blocks {
        let mut wv = [_mm512_setzero_si512(); 4];
        let mut ws = [_mm512_setzero_ps(); 4];
        for j in 0..np {
            let (c, c2) = columns(j);
            // SAFETY: c, c2 < n and b < blocks, the contract of `block`.
            wv[j] = unsafe { join(offset_block(w, c, b), offset_block(w, c2, b)) };
            if BLOCKWISE {
                let (s, s2) = (w.block_scale(c, b), w.block_scale(c2, b));
                ws[j] = join_ps(_mm256_set1_ps(s), _mm256_set1_ps(s2));
            }
        }
        for r in 0..MR {
            // SAFETY: as in `tile_256`.
            let (xv, dx) = unsafe {
                (
                    _mm256_loadu_si256(xq.add((r0 + r) * k + b * BLOCK).cast()),
                    _mm512_set1_ps(*xs.add((r0 + r) * blocks + b)),
                )
            };
            let start = _mm256_sub_epi32(
                _mm256_setzero_si256(),
                _mm256_dpbusd_epi32(_mm256_setzero_si256(), offset, xv),
            );
            let (start, xv) = (_mm512_broadcast_i64x4(start), _mm512_broadcast_i64x4(xv));
            for j in 0..np {
                let dot = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(start, wv[j], xv));
                let d = if BLOCKWISE {
                    _mm512_mul_ps(dx, ws[j])
                } else {
                    dx
                };
                acc[r * np + j] = _mm512_fmadd_ps(dot, d, acc[r * np + j]);
            }
        }
    }
    let start = out.cols().start;
    for r in 0..MR {
        let row = out.row(r0 + r);
        for j in 0..np {
            let (low, high) = halves(acc[r * np + j]);
            let (c, c2) = columns(j);
            row[c - start] = hsum(low) * w.row_scale(c);
            if c2 > c {
                row[c2 - start] = hsum(high) * w.row_scale(c2);
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
unsafe fn run<E: Int8Tiles, const PREFILL_NR: usize, const BLOCKWISE: bool>(
    out: &mut OutColumns,
    x: &Q8Rows,
    weights: &Weights,
) {
    let w = &Vnni::<E, BLOCKWISE>(&Int8::checked(out, x, weights), PhantomData);
    let k = weights.k();
    // SAFETY: shapes checked by `checked`; the features are the caller's.
    unsafe { tiling::run::<DECODE_NR, PREFILL_NR, _>(out, &Product { x, w, k }, k) }
}

/// int8 weights, per-channel scales.
///
/// # Safety
/// As `run`.
#[inline(always)]
pub(super) unsafe fn int8_per_channel<E: Int8Tiles, const PREFILL_NR: usize>(
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
pub(super) unsafe fn int8_block32<E: Int8Tiles, const PREFILL_NR: usize>(
    out: &mut OutColumns,
    x: &Q8Rows,
    w: &Weights,
) {
    // SAFETY: the caller's.
    unsafe { run::<E, PREFILL_NR, true>(out, x, w) }
}
