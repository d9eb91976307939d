//! Linear layers with int8 activations and packed int4 weights, two blocks of 32 at a time.
//!
//! 32 packed bytes hold two blocks of a weight row. One AND and one shift split them into low
//! nibbles (the even elements of both blocks) and high nibbles (the odd elements), which meet the
//! activations stored in [`Q8Layout::Pairs`](crate::kernels::q8_rows::Q8Layout::Pairs) order.
//! `vpmaddubsw` (u8 x i8 pairs to i16) turns each half into 16 pair sums; the two are added in
//! i16 (at most 4 * 15 * 127 = 7620 in magnitude: no overflow), and one `vpmaddwd` with ones
//! (i16 pairs to i32), one conversion and one fused multiply-add with the pair's scales finish
//! both blocks, the low 128 bits carrying block `2p` and the high 128 bits block `2p + 1`. That is
//! two multiply-class instructions per block instead of three; on Zen 3, `vpmaddubsw`,
//! `vpmaddwd` and FMA share two pipes, which bound the prefill product.
//!
//! `vpmaddubsw` needs one unsigned operand. Per-channel weights are read as `u = q + 8` in
//! [0, 15] and the offset is removed once per output as `8 * row_sum(x)`. Block-32 weights use the
//! sign trick `|w| * (x * sign(w))` (|w| <= 8) and multiply in their own block scales.

use std::arch::x86_64::*;

use super::simd::{f16_to_f32, hsum};
use super::tiling::{self, Product, Tiles, PREFETCH_TILES};
use crate::kernels::out_columns::OutColumns;
use crate::kernels::q8_rows::{Q8Layout, Q8Rows};
use crate::weights::{Scales, WeightData, Weights, BLOCK};

/// Packed bytes of two blocks of one row.
const PAIR_BYTES: usize = BLOCK;

/// Reads one int4 weight format two blocks (or, for a last odd block, one) at a time. The
/// VNNI kernels read their weights through it too.
pub(in crate::kernels) trait Int4Rows {
    /// Signed weights, multiplied with the sign trick; otherwise unsigned weights `q + 8`.
    const SIGNED: bool;
    /// Whether the weights have a scale per block (else one per row).
    const BLOCK_SCALES: bool;
    /// Low and high nibbles of blocks `2p`, `2p + 1` of row `c`.
    ///
    /// # Safety
    /// `c < n`, `2p + 1 < k / 32`, and the CPU has AVX2, FMA and F16C.
    unsafe fn pair(&self, c: usize, p: usize) -> (__m256i, __m256i);
    /// Block `b` of row `c`: its even elements in the low 16 bytes, its odd ones in the high.
    ///
    /// # Safety
    /// `c < n`, `b < k / 32`, and the CPU has AVX2, FMA and F16C.
    unsafe fn lone(&self, c: usize, b: usize) -> __m256i;
    /// Block scales of row `c` as lanes: blocks `b` (low half) and `b2` (high half).
    ///
    /// # Safety
    /// `c < n`, `b, b2 < k / 32`, and the CPU has AVX2, FMA and F16C.
    unsafe fn block_scales(&self, c: usize, b: usize, b2: usize) -> __m256;
    /// Factor applied to the finished sum of row `c`.
    fn row_scale(&self, c: usize) -> f32;
    /// The packed weights (`[n, k / 2]` bytes) and `k`.
    fn packed(&self) -> (&[u8], usize);

    /// Address of the packed data of row `c`; may lie past the end, as it is only prefetched.
    fn row_addr(&self, c: usize) -> *const u8 {
        let (packed, k) = self.packed();
        packed.as_ptr().wrapping_add(c * (k / 2))
    }

    /// As [`Self::pair`], but as `q + 8` in [0, 15] whatever the format.
    ///
    /// # Safety
    /// As [`Self::pair`].
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn offset_pair(&self, c: usize, p: usize) -> (__m256i, __m256i) {
        let (packed, k) = self.packed();
        // SAFETY: k % 32 == 0 on this path, so blocks 2p, 2p + 1 of row c are the 32 bytes at
        // c * k / 2 + 32 p, inside the n * k / 2 packed bytes since c < n and 2p + 1 < k / 32.
        // Flipping bit 3 of each nibble maps q to q + 8.
        unsafe { split_nibbles(packed, c * (k / 2) + p * PAIR_BYTES, 0x88u8 as i8) }
    }

    /// As [`Self::lone`], but as `q + 8` in [0, 15] whatever the format.
    ///
    /// # Safety
    /// As [`Self::lone`].
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn offset_lone(&self, c: usize, b: usize) -> __m256i {
        let (packed, k) = self.packed();
        // SAFETY: as for `offset_pair`, for the 16 bytes of block b.
        unsafe { block_nibbles(packed, c * (k / 2) + b * BLOCK / 2, 0x88u8 as i8) }
    }
}

/// The 32 bytes of two blocks at `packed[byte..]` split into low and high nibbles, each in
/// [0, 15], after XOR with `flip` (which turns two's complement nibbles into `q + 8`, or not).
/// The palette kernels split their indices with it too.
///
/// # Safety
/// `byte + 32 <= packed.len()`, and the CPU has AVX2.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(in crate::kernels) unsafe fn split_nibbles(
    packed: &[u8],
    byte: usize,
    flip: i8,
) -> (__m256i, __m256i) {
    // SAFETY: byte + 32 <= packed.len() (caller); loadu accepts any alignment.
    let v = unsafe { _mm256_loadu_si256(packed.as_ptr().add(byte).cast()) };
    let v = _mm256_xor_si256(v, _mm256_set1_epi8(flip));
    let low = _mm256_set1_epi8(0x0F);
    (
        _mm256_and_si256(v, low),
        _mm256_and_si256(_mm256_srli_epi16::<4>(v), low),
    )
}

/// The 16 bytes of one block at `packed[byte..]`: low nibbles in the low 16 bytes, high nibbles
/// in the high 16, each in [0, 15], after XOR with `flip`.
///
/// # Safety
/// `byte + 16 <= packed.len()`, and the CPU has AVX2.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(in crate::kernels) unsafe fn block_nibbles(packed: &[u8], byte: usize, flip: i8) -> __m256i {
    // SAFETY: byte + 16 <= packed.len() (caller); loadu accepts any alignment.
    let v = unsafe { _mm_loadu_si128(packed.as_ptr().add(byte).cast()) };
    let both = _mm256_broadcastsi128_si256(_mm_xor_si128(v, _mm_set1_epi8(flip)));
    let shifted = _mm256_srlv_epi64(both, _mm256_setr_epi64x(0, 0, 4, 4));
    _mm256_and_si256(shifted, _mm256_set1_epi8(0x0F))
}

/// Two's complement nibbles in [0, 15] to i8 in [-8, 7], by table lookup.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn signed(u: __m256i) -> __m256i {
    let table = _mm256_setr_epi8(
        0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1, //
        0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1,
    );
    _mm256_shuffle_epi8(table, u)
}

/// int4 weights with one scale per row.
pub(in crate::kernels) struct PerChannel<'a> {
    packed: &'a [u8],
    scales: Scales<'a>,
    k: usize,
}

impl<'a> PerChannel<'a> {
    /// The reader of `w`; panics unless `w` is int4 with per-channel scales.
    pub(in crate::kernels) fn new(w: &Weights<'a>) -> Self {
        let WeightData::Int4PerChannel { packed, scales } = w.data() else {
            panic!("int4_per_channel: weights are {:?}", w.format())
        };
        PerChannel {
            packed,
            scales,
            k: w.k(),
        }
    }
}

impl Int4Rows for PerChannel<'_> {
    const SIGNED: bool = false;
    const BLOCK_SCALES: bool = false;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn pair(&self, c: usize, p: usize) -> (__m256i, __m256i) {
        // SAFETY: the caller's, which are those of `offset_pair`.
        unsafe { self.offset_pair(c, p) }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn lone(&self, c: usize, b: usize) -> __m256i {
        // SAFETY: the caller's, which are those of `offset_lone`.
        unsafe { self.offset_lone(c, b) }
    }
    unsafe fn block_scales(&self, _: usize, _: usize, _: usize) -> __m256 {
        _mm256_set1_ps(1.0)
    }
    fn row_scale(&self, c: usize) -> f32 {
        self.scales.get(c)
    }
    fn packed(&self) -> (&[u8], usize) {
        (self.packed, self.k)
    }
}

/// int4 weights with one scale per block of 32.
pub(in crate::kernels) struct Block32<'a> {
    packed: &'a [u8],
    scales: Scales<'a>,
    k: usize,
}

impl<'a> Block32<'a> {
    /// The reader of `w`; panics unless `w` is int4 with block-32 scales.
    pub(in crate::kernels) fn new(w: &Weights<'a>) -> Self {
        let WeightData::Int4Block32 { packed, scales } = w.data() else {
            panic!("int4_block32: weights are {:?}", w.format())
        };
        Block32 {
            packed,
            scales,
            k: w.k(),
        }
    }
}

impl Int4Rows for Block32<'_> {
    const SIGNED: bool = true;
    const BLOCK_SCALES: bool = true;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn pair(&self, c: usize, p: usize) -> (__m256i, __m256i) {
        // SAFETY: as for PerChannel (k % 32 == 0 by Weights::new).
        let (low, high) =
            unsafe { split_nibbles(self.packed, c * (self.k / 2) + p * PAIR_BYTES, 0) };
        (signed(low), signed(high))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn lone(&self, c: usize, b: usize) -> __m256i {
        // SAFETY: as for `pair`, for the 16 bytes of block b.
        signed(unsafe { block_nibbles(self.packed, c * (self.k / 2) + b * BLOCK / 2, 0) })
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block_scales(&self, c: usize, b: usize, b2: usize) -> __m256 {
        let row = c * (self.k / BLOCK);
        let (s, s2) = match self.scales {
            Scales::F32(s) => (s[row + b], s[row + b2]),
            Scales::F16(s) => (f16_to_f32(s[row + b]), f16_to_f32(s[row + b2])),
        };
        _mm256_setr_ps(s, s, s, s, s2, s2, s2, s2)
    }
    fn row_scale(&self, _: usize) -> f32 {
        1.0
    }
    fn packed(&self) -> (&[u8], usize) {
        (self.packed, self.k)
    }
}

/// `acc += (low . xe + high . xo) * scale`, the i16 sums of both halves added before widening.
///
/// # Safety
/// `xe` and `xo` point to 32 readable bytes each, and the CPU has AVX2, FMA and F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn accumulate<W: Int4Rows>(
    acc: __m256,
    (low, high): (__m256i, __m256i),
    (xe, xo): (*const i8, *const i8),
    scale: __m256,
) -> __m256 {
    // SAFETY: 32 bytes each (caller); loadu accepts any alignment.
    let (xe, xo) = unsafe { (_mm256_loadu_si256(xe.cast()), _mm256_loadu_si256(xo.cast())) };
    let sums = if W::SIGNED {
        _mm256_add_epi16(
            _mm256_maddubs_epi16(_mm256_abs_epi8(low), _mm256_sign_epi8(xe, low)),
            _mm256_maddubs_epi16(_mm256_abs_epi8(high), _mm256_sign_epi8(xo, high)),
        )
    } else {
        _mm256_add_epi16(
            _mm256_maddubs_epi16(low, xe),
            _mm256_maddubs_epi16(high, xo),
        )
    };
    let dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(sums, _mm256_set1_epi16(1)));
    _mm256_fmadd_ps(dot, scale, acc)
}

impl<W: Int4Rows> Tiles for Product<'_, Q8Rows, W> {
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
                MR * NR <= 8 && NR <= 4,
                "tile larger than the accumulator array"
            )
        };
        // Flat accumulators indexed r * NR + c, with index loops: LLVM keeps these in registers.
        let mut acc = [_mm256_setzero_ps(); 8];
        // Decode streams rows from DRAM in runs too short for the hardware prefetcher: fetch the
        // rows of a later tile, in memory order, as fast as this one is read.
        let ahead = w.row_addr(c0 + PREFETCH_TILES * NR);
        for p in 0..pairs {
            if MR == 1 {
                for line in (0..NR * PAIR_BYTES).step_by(64) {
                    let addr = ahead.wrapping_add(p * NR * PAIR_BYTES + line);
                    _mm_prefetch::<_MM_HINT_T0>(addr.cast());
                }
            }
            for c in 0..NR {
                // SAFETY (all three): c0 + c < n and 2p + 1 < blocks, the contracts of the reads.
                let nibbles = unsafe { w.pair(c0 + c, p) };
                let ws = if W::BLOCK_SCALES {
                    unsafe { w.block_scales(c0 + c, 2 * p, 2 * p + 1) }
                } else {
                    _mm256_setzero_ps()
                };
                for r in 0..MR {
                    let row = (r0 + r) * k + p * 2 * BLOCK;
                    // SAFETY: r0 + r < m, so the 64 values of pair p and its 8 scales lie inside
                    // values() ([m, k]) and pair_scales() ([m, stored_pairs, 8]).
                    unsafe {
                        let xd = _mm256_loadu_ps(xs.add(((r0 + r) * stored_pairs + p) * 8));
                        let scale = if W::BLOCK_SCALES {
                            _mm256_mul_ps(xd, ws)
                        } else {
                            xd
                        };
                        acc[r * NR + c] = accumulate::<W>(
                            acc[r * NR + c],
                            nibbles,
                            (xq.add(row), xq.add(row + BLOCK)),
                            scale,
                        );
                    }
                }
            }
        }
        if blocks % 2 == 1 {
            // The last block has no partner: its values are stored even then odd, and its scale
            // fills all 8 lanes of its pair's scales.
            let b = blocks - 1;
            for c in 0..NR {
                // SAFETY: c0 + c < n and b < blocks.
                let weights = unsafe { w.lone(c0 + c, b) };
                let ws = if W::BLOCK_SCALES {
                    unsafe { w.block_scales(c0 + c, b, b) }
                } else {
                    _mm256_setzero_ps()
                };
                for r in 0..MR {
                    // SAFETY: the 32 values of block b of row r0 + r and the 8 scales of its pair.
                    unsafe {
                        let xv = _mm256_loadu_si256(xq.add((r0 + r) * k + b * BLOCK).cast());
                        let xd = _mm256_loadu_ps(xs.add(((r0 + r) * stored_pairs + pairs) * 8));
                        let scale = if W::BLOCK_SCALES {
                            _mm256_mul_ps(xd, ws)
                        } else {
                            xd
                        };
                        let sums = if W::SIGNED {
                            _mm256_maddubs_epi16(
                                _mm256_abs_epi8(weights),
                                _mm256_sign_epi8(xv, weights),
                            )
                        } else {
                            _mm256_maddubs_epi16(weights, xv)
                        };
                        let dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(sums, _mm256_set1_epi16(1)));
                        acc[r * NR + c] = _mm256_fmadd_ps(dot, scale, acc[r * NR + c]);
                    }
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
}

/// Checks that `out`, `x` and `weights` agree, with `x` in pairs of blocks: what the int4 tiles
/// (here and in the AVX-512 module) rely on.
pub(in crate::kernels) fn check_shapes(out: &OutColumns, x: &Q8Rows, weights: &Weights) {
    let (m, k) = (out.m(), weights.k());
    assert!(
        out.n() == weights.n() && x.m() == m && x.k() == k && k % BLOCK == 0,
        "linear_q8: activations, weights and output shapes disagree"
    );
    assert_eq!(
        x.layout(),
        Q8Layout::Pairs,
        "linear_q8: int4 weights take activations in pairs of blocks"
    );
}

/// The whole product for the columns of `out`.
#[target_feature(enable = "avx2,fma,f16c")]
fn run<W: Int4Rows>(out: &mut OutColumns, x: &Q8Rows, w: &W, weights: &Weights) {
    check_shapes(out, x, weights);
    // Decode: four weight rows per step give four independent accumulator chains.
    // SAFETY: shapes checked above, and this module only runs on CPUs with the features.
    unsafe {
        tiling::run::<4, 2, _>(
            out,
            &Product {
                x,
                w,
                k: weights.k(),
            },
            weights.k(),
        )
    }
}

/// int4 weights, per-channel scales.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn int4_per_channel(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    run(out, x, &PerChannel::new(w), w);
}

/// int4 weights, scales per block of 32.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn int4_block32(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    run(out, x, &Block32::new(w), w);
}
