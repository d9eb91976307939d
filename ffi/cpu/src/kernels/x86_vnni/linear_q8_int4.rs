//! Linear layers with int8 activations and packed int4 weights, with `vpdpbusd` (u8 x i8 groups
//! of four, summed into i32 lanes).
//!
//! The weights, the activations ([`Q8Layout::Pairs`](crate::kernels::q8_rows::Q8Layout::Pairs))
//! and the float steps are those of the AVX2 kernel (`x86_avx2::linear_q8_int4`): each i32 lane
//! holds the same four products of low nibbles and four of high nibbles, converted and scaled in
//! the same order, so the results are bit-identical to AVX2's. What changes is the integer part,
//! two `vpdpbusd` per pair of blocks where AVX2 needs two `vpmaddubsw`, an add and a `vpmaddwd`,
//! and, with AVX-512, the width of the prefill tiles.
//!
//! AVX-VNNI has 256-bit vectors only, and AVX-512 decodes with them too: decode waits on memory,
//! not on the multiplies. AVX-512's prefill tiles put two weight rows in each 512-bit vector, one
//! to a 256-bit half, against one row of activations broadcast to both halves. Each half does
//! what a 256-bit vector does for its row, in the same order, and is summed on its own at the
//! end; the multiplies, conversions and fused multiply-adds issued per output are halved. On a
//! 2-core Intel Xeon that made the prefill of the Llama-3.2-1B shape about a third faster, on one
//! thread or two, than 4 x 3 tiles of 256-bit vectors.
//!
//! `vpdpbusd` takes its weights unsigned, `u = q + 8`. Per-channel weights remove the offset once
//! per output as `8 * row_sum(x)`, as AVX2 does. Block-32 weights must remove it per block,
//! before their scale: each lane starts from `-8 * (its four activations)`, counted once per row
//! and shared by the tile's columns, so the lane ends at the exact signed sum AVX2 computes.

use std::arch::x86_64::*;
use std::marker::PhantomData;

use crate::kernels::out_columns::OutColumns;
use crate::kernels::q8_rows::Q8Rows;
use crate::kernels::x86_avx2::linear_q8_int4::{check_shapes, Block32, Int4Rows, PerChannel};
use crate::kernels::x86_avx2::simd::hsum;
use crate::kernels::x86_avx2::tiling::{self, Product, Tiles, PREFETCH_TILES};
use crate::weights::{Weights, BLOCK};

use super::{broadcast_ps, halves, join, join_ps, Encoding, Evex, Vex, DECODE_NR};

/// Packed bytes of two blocks of one row.
const PAIR_BYTES: usize = BLOCK;

/// The int4 product, read through `W` and multiplied with VNNI in encoding `E`.
struct Vnni<'a, W, E>(&'a W, PhantomData<E>);

/// Per lane, `-8` times the sum of the four activations of `xe` and of `xo` it meets: the start
/// that makes a lane of unsigned signed-format weights end at the signed sum.
///
/// # Safety
/// The CPU has AVX2 and encoding `E`, and the caller is compiled with them.
#[inline(always)]
unsafe fn offset_start<W: Int4Rows, E: Encoding>(xe: __m256i, xo: __m256i) -> __m256i {
    if W::SIGNED {
        let eights = _mm256_set1_epi8(8);
        // SAFETY: the caller's.
        let sums = unsafe { E::dpbusd(E::dpbusd(_mm256_setzero_si256(), eights, xe), eights, xo) };
        _mm256_sub_epi32(_mm256_setzero_si256(), sums)
    } else {
        _mm256_setzero_si256()
    }
}

/// How an encoding covers a tile of the int4 product.
pub(super) trait Int4Tiles: Encoding + Sized {
    /// The tile of rows `r0..r0 + MR` and columns `c0..c0 + NR`.
    ///
    /// # Safety
    /// As [`tile_256`].
    unsafe fn tile<W: Int4Rows, const MR: usize, const NR: usize>(
        x: &Q8Rows,
        w: &W,
        out: &mut OutColumns,
        r0: usize,
        c0: usize,
    );
}

impl Int4Tiles for Vex {
    #[inline(always)]
    unsafe fn tile<W: Int4Rows, const MR: usize, const NR: usize>(
        x: &Q8Rows,
        w: &W,
        out: &mut OutColumns,
        r0: usize,
        c0: usize,
    ) {
        // SAFETY: the caller's.
        unsafe { tile_256::<W, Self, MR, NR>(x, w, out, r0, c0) }
    }
}

impl Int4Tiles for Evex {
    /// Decode's tiles (one row, `DECODE_NR` columns or one) on 256-bit vectors, prefill's on
    /// 512-bit ones.
    #[inline(always)]
    unsafe fn tile<W: Int4Rows, const MR: usize, const NR: usize>(
        x: &Q8Rows,
        w: &W,
        out: &mut OutColumns,
        r0: usize,
        c0: usize,
    ) {
        // SAFETY (all three): the caller's, which include the features of Evex; the const
        // arguments are MR and NR.
        unsafe {
            match (MR, NR) {
                (1, DECODE_NR) => tile_256::<W, Self, 1, DECODE_NR>(x, w, out, r0, c0),
                (1, 1) => tile_256::<W, Self, 1, 1>(x, w, out, r0, c0),
                _ => tile_512::<W, MR, NR>(x, w, out, r0, c0),
            }
        }
    }
}

impl<W: Int4Rows, E: Int4Tiles> Tiles for Product<'_, Q8Rows, Vnni<'_, W, E>> {
    /// # Safety
    /// As [`Tiles::tile`], which here means `r0 + MR <= m`, `c0 + NR <= n`, `x` is `[m, k]` in
    /// the pair layout with `k % 32 == 0`, `w` describes an `[n, k]` matrix, and the CPU has
    /// AVX2, FMA, F16C and encoding `E`, with which the caller is compiled.
    #[inline(always)]
    unsafe fn tile<const MR: usize, const NR: usize>(
        &self,
        out: &mut OutColumns,
        r0: usize,
        c0: usize,
    ) {
        // SAFETY: the caller's.
        unsafe { E::tile::<W, MR, NR>(self.x, self.w.0, out, r0, c0) }
    }
}

/// The tile of rows `r0..r0 + MR` and columns `c0..c0 + NR` on 256-bit vectors.
///
/// # Safety
/// As [`Tiles::tile`], which here means `r0 + MR <= m`, `c0 + NR <= n`, `x` is `[m, k]` in the
/// pair layout with `k % 32 == 0`, `w` describes an `[n, k]` matrix, and the CPU has AVX2, FMA,
/// F16C and encoding `E`, with which the caller is compiled.
#[inline(always)]
unsafe fn tile_256<W: Int4Rows, E: Encoding, const MR: usize, const NR: usize>(
    x: &Q8Rows,
    w: &W,
    out: &mut OutColumns,
    r0: usize,
    c0: usize,
) {
    let k = x.k();
    let blocks = k / BLOCK;
    let (pairs, stored_pairs) = (blocks / 2, blocks.div_ceil(2));
    let (xq, xs) = (x.values().as_ptr(), x.pair_scales().as_ptr());
    const {
        assert!(
            MR * NR <= 12 && NR <= 4,
            "tile larger than the accumulator array"
        )
    };
    // Flat accumulators indexed r * NR + c, with index loops: LLVM keeps these in registers.
    let mut acc = [_mm256_setzero_ps(); 12];
    let ahead = w.row_addr(c0 + PREFETCH_TILES * NR);
    for p in 0..pairs {
        if MR == 1 {
            // Decode: fetch the rows of a later tile, as the AVX2 kernel does.
            for line in (0..NR * PAIR_BYTES).step_by(64) {
                let addr = ahead.wrapping_add(p * NR * PAIR_BYTES + line);
                _mm_prefetch::<_MM_HINT_T0>(addr.cast());
            }
        }
        let mut nibbles = [(_mm256_setzero_si256(), _mm256_setzero_si256()); 4];
        let mut ws = [_mm256_setzero_ps(); 4];
        for c in 0..NR {
            // SAFETY (both): c0 + c < n and 2p + 1 < blocks, the contracts of the reads.
            nibbles[c] = unsafe { w.offset_pair(c0 + c, p) };
            if W::BLOCK_SCALES {
                ws[c] = unsafe { w.block_scales(c0 + c, 2 * p, 2 * p + 1) };
            }
        }
        for r in 0..MR {
            let row = (r0 + r) * k + p * 2 * BLOCK;
            // SAFETY: r0 + r < m, so the 64 values of pair p and its 8 scales lie inside
            // values() ([m, k]) and pair_scales() ([m, stored_pairs, 8]).
            let (xe, xo, xd) = unsafe {
                (
                    _mm256_loadu_si256(xq.add(row).cast()),
                    _mm256_loadu_si256(xq.add(row + BLOCK).cast()),
                    _mm256_loadu_ps(xs.add(((r0 + r) * stored_pairs + p) * 8)),
                )
            };
            // SAFETY (both): the features of E, the caller's.
            let start = unsafe { offset_start::<W, E>(xe, xo) };
            for c in 0..NR {
                let (low, high) = nibbles[c];
                let dot = unsafe { E::dpbusd(E::dpbusd(start, low, xe), high, xo) };
                let scale = if W::BLOCK_SCALES {
                    _mm256_mul_ps(xd, ws[c])
                } else {
                    xd
                };
                let i = r * NR + c;
                acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc[i]);
            }
        }
    }
    if blocks % 2 == 1 {
        // The last block has no partner: its values are stored even then odd, and its scale
        // fills all 8 lanes of its pair's scales.
        let b = blocks - 1;
        for c in 0..NR {
            // SAFETY: c0 + c < n and b < blocks.
            let weights = unsafe { w.offset_lone(c0 + c, b) };
            let ws = if W::BLOCK_SCALES {
                unsafe { w.block_scales(c0 + c, b, b) }
            } else {
                _mm256_setzero_ps()
            };
            for r in 0..MR {
                // SAFETY: the 32 values of block b of row r0 + r and the 8 scales of its pair.
                let (xv, xd) = unsafe {
                    (
                        _mm256_loadu_si256(xq.add((r0 + r) * k + b * BLOCK).cast()),
                        _mm256_loadu_ps(xs.add(((r0 + r) * stored_pairs + pairs) * 8)),
                    )
                };
                let scale = if W::BLOCK_SCALES {
                    _mm256_mul_ps(xd, ws)
                } else {
                    xd
                };
                // SAFETY (both): the features of E, the caller's.
                let start = unsafe { offset_start::<W, E>(xv, _mm256_setzero_si256()) };
                let dot = unsafe { E::dpbusd(start, weights, xv) };
                let i = r * NR + c;
                acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc[i]);
            }
        }
    }
    let start = out.cols().start;
    for r in 0..MR {
        let offset = if W::SIGNED {
            0.0
        } else {
            8.0 * x.row_sums()[r0 + r]
        };
        let row = out.row(r0 + r);
        for c in 0..NR {
            row[c0 + c - start] = (hsum(acc[r * NR + c]) - offset) * w.row_scale(c0 + c);
        }
    }
}

/// The tile of rows `r0..r0 + MR` and columns `c0..c0 + NR` with two columns to a 512-bit
/// vector: column `c0 + 2j` in the low half of vector `j`, `c0 + 2j + 1` in the high half (for an
/// odd `NR`, the last column fills both halves and the high one is dropped), and each row's
/// activations broadcast to both halves. Each half computes what [`tile_256`] computes for its
/// column, step for step.
///
/// # Safety
/// As [`tile_256`], with AVX-512F, VL, BW and VNNI.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni,avx512bw")]
unsafe fn tile_512<W: Int4Rows, const MR: usize, const NR: usize>(
    x: &Q8Rows,
    w: &W,
    out: &mut OutColumns,
    r0: usize,
    c0: usize,
) {
    let k = x.k();
    let blocks = k / BLOCK;
    let (pairs, stored_pairs) = (blocks / 2, blocks.div_ceil(2));
    let (xq, xs) = (x.values().as_ptr(), x.pair_scales().as_ptr());
    let np = NR.div_ceil(2);
    const {
        assert!(
            MR * NR.div_ceil(2) <= 16 && NR <= 8,
            "tile larger than the accumulator array"
        )
    };
    // The columns of vector j's halves.
    let columns = |j: usize| (c0 + 2 * j, c0 + (2 * j + 1).min(NR - 1));
    // Flat accumulators indexed r * np + j, with index loops: LLVM keeps these in registers.
    let mut acc = [_mm512_setzero_ps(); 16];
    for p in 0..pairs {
        let mut nibbles = [(_mm512_setzero_si512(), _mm512_setzero_si512()); 4];
        let mut ws = [_mm512_setzero_ps(); 4];
        for j in 0..np {
            let (c, c2) = columns(j);
            // SAFETY (both): c, c2 < n and 2p + 1 < blocks, the contracts of the reads.
            nibbles[j] = unsafe { offset_pairs(w, (c, c2), p) };
            if W::BLOCK_SCALES {
                ws[j] = unsafe {
                    join_ps(
                        w.block_scales(c, 2 * p, 2 * p + 1),
                        w.block_scales(c2, 2 * p, 2 * p + 1),
                    )
                };
            }
        }
        for r in 0..MR {
            let row = (r0 + r) * k + p * 2 * BLOCK;
            // SAFETY: r0 + r < m, so the 64 values of pair p and its 8 scales lie inside
            // values() ([m, k]) and pair_scales() ([m, stored_pairs, 8]).
            let (xe, xo, xd) = unsafe {
                (
                    _mm256_loadu_si256(xq.add(row).cast()),
                    _mm256_loadu_si256(xq.add(row + BLOCK).cast()),
                    _mm256_loadu_ps(xs.add(((r0 + r) * stored_pairs + p) * 8)),
                )
            };
            // SAFETY: the features of Evex, this function's.
            let start = _mm512_broadcast_i64x4(unsafe { offset_start::<W, Evex>(xe, xo) });
            let (xe, xo, xd) = (
                _mm512_broadcast_i64x4(xe),
                _mm512_broadcast_i64x4(xo),
                broadcast_ps(xd),
            );
            for j in 0..np {
                let (low, high) = nibbles[j];
                let dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(start, low, xe), high, xo);
                let scale = if W::BLOCK_SCALES {
                    _mm512_mul_ps(xd, ws[j])
                } else {
                    xd
                };
                let i = r * np + j;
                acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc[i]);
            }
        }
    }
    if blocks % 2 == 1 {
        // The last block has no partner, as in `tile_256`.
        let b = blocks - 1;
        for j in 0..np {
            let (c, c2) = columns(j);
            // SAFETY: c, c2 < n and b < blocks.
            let weights = unsafe { join(w.offset_lone(c, b), w.offset_lone(c2, b)) };
            let ws = if W::BLOCK_SCALES {
                unsafe { join_ps(w.block_scales(c, b, b), w.block_scales(c2, b, b)) }
            } else {
                _mm512_setzero_ps()
            };
            for r in 0..MR {
                // SAFETY: the 32 values of block b of row r0 + r and the 8 scales of its pair.
                let (xv, xd) = unsafe {
                    (
                        _mm256_loadu_si256(xq.add((r0 + r) * k + b * BLOCK).cast()),
                        _mm256_loadu_ps(xs.add(((r0 + r) * stored_pairs + pairs) * 8)),
                    )
                };
                let xd = broadcast_ps(xd);
                let scale = if W::BLOCK_SCALES {
                    _mm512_mul_ps(xd, ws)
                } else {
                    xd
                };
                // SAFETY: the features of Evex, this function's.
                let start = unsafe { offset_start::<W, Evex>(xv, _mm256_setzero_si256()) };
                let start = _mm512_broadcast_i64x4(start);
                let dot = _mm512_dpbusd_epi32(start, weights, _mm512_broadcast_i64x4(xv));
                let i = r * np + j;
                acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc[i]);
            }
        }
    }
    let start = out.cols().start;
    for r in 0..MR {
        let offset = if W::SIGNED {
            0.0
        } else {
            8.0 * x.row_sums()[r0 + r]
        };
        let row = out.row(r0 + r);
        for j in 0..np {
            let (low, high) = halves(acc[r * np + j]);
            let (c, c2) = columns(j);
            row[c - start] = (hsum(low) - offset) * w.row_scale(c);
            if c2 > c {
                row[c2 - start] = (hsum(high) - offset) * w.row_scale(c2);
            }
        }
    }
}

/// Pair `p` of rows `c` (low half) and `c2` (high half) as `q + 8`: low and high nibbles.
///
/// # Safety
/// `c, c2 < n`, `2p + 1 < k / 32`, and the CPU has AVX-512F and BW.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni,avx512bw")]
unsafe fn offset_pairs<W: Int4Rows>(
    w: &W,
    (c, c2): (usize, usize),
    p: usize,
) -> (__m512i, __m512i) {
    let (packed, k) = w.packed();
    // SAFETY: k % 32 == 0 on this path, so blocks 2p, 2p + 1 of a row c < n are the 32 bytes at
    // c * k / 2 + 32 p, inside the n * k / 2 packed bytes; loadu accepts any alignment.
    let load = |c: usize| unsafe {
        _mm256_loadu_si256(packed.as_ptr().add(c * (k / 2) + p * PAIR_BYTES).cast())
    };
    let v = join(load(c), load(c2));
    // Flipping bit 3 of each nibble maps q to q + 8.
    let v = _mm512_xor_si512(v, _mm512_set1_epi8(0x88u8 as i8));
    let nibble = _mm512_set1_epi8(0x0F);
    (
        _mm512_and_si512(v, nibble),
        _mm512_and_si512(_mm512_srli_epi16::<4>(v), nibble),
    )
}

/// The whole product for the columns of `out`, in prefill tiles of 4 rows by `PREFILL_NR`
/// columns.
///
/// # Safety
/// The CPU has AVX2, FMA, F16C and encoding `E`, and the caller is compiled with them.
#[inline(always)]
unsafe fn run<W: Int4Rows, E: Int4Tiles, const PREFILL_NR: usize>(
    out: &mut OutColumns,
    x: &Q8Rows,
    w: &W,
    weights: &Weights,
) {
    check_shapes(out, x, weights);
    let k = weights.k();
    let product = Product {
        x,
        w: &Vnni::<W, E>(w, PhantomData),
        k,
    };
    // SAFETY: shapes checked above; the features are the caller's.
    unsafe { tiling::run::<DECODE_NR, PREFILL_NR, _>(out, &product, k) }
}

/// int4 weights, per-channel scales.
///
/// # Safety
/// As `run`.
#[inline(always)]
pub(super) unsafe fn int4_per_channel<E: Int4Tiles, const PREFILL_NR: usize>(
    out: &mut OutColumns,
    x: &Q8Rows,
    w: &Weights,
) {
    // SAFETY: the caller's.
    unsafe { run::<_, E, PREFILL_NR>(out, x, &PerChannel::new(w), w) }
}

/// int4 weights, scales per block of 32.
///
/// # Safety
/// As `run`.
#[inline(always)]
pub(super) unsafe fn int4_block32<E: Int4Tiles, const PREFILL_NR: usize>(
    out: &mut OutColumns,
    x: &Q8Rows,
    w: &Weights,
) {
    // SAFETY: the caller's.
    unsafe { run::<_, E, PREFILL_NR>(out, x, &Block32::new(w), w) }
}
