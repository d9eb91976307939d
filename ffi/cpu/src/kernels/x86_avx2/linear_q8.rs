//! Linear layers with int8 activations: integer dot products per block of 32 with
//! `vpmaddubsw` (u8 x i8 pairs to i16) and `vpmaddwd` (i16 pairs to i32), then one f32 FMA per
//! block with the scales.
//!
//! `vpmaddubsw` needs one unsigned operand. Per-channel int4 weights are stored as `u = q + 8` in
//! [0, 15] and the offset is removed once per output as `8 * row_sum(x)`. int8 and block int4
//! weights use the sign trick `|w| * (x * sign(w))`; with |x| <= 127 and |w| <= 128 a pair sums to
//! at most 32512, so the i16 never saturates. The register tile and row blocking mirror
//! `linear_f32`.

use std::arch::x86_64::*;

use super::simd::{f16_to_f32, hsum};
use crate::kernels::out_columns::OutColumns;
use crate::kernels::q8_rows::Q8Rows;
use crate::kernels::LinearQ8Table;
use crate::weights::{Scales, WeightData, Weights, BLOCK};

/// Activation bytes per row block: about half of the 512 KiB L2.
const ROW_BLOCK_BYTES: usize = 256 * 1024;

/// How many 1 x 4 tiles ahead decode prefetches.
const PREFETCH_TILES: usize = 2;

/// Reads one weight format 32 values (one block) at a time, in the activation layout.
trait DecodeBlock {
    /// Packed bytes of one block of 32 weights of a row.
    const BLOCK_BYTES: usize;
    /// Signed weights, multiplied with the sign trick; otherwise unsigned weights `q + 8`.
    const SIGNED: bool;
    /// Whether [`DecodeBlock::block_scale`] varies per block.
    const BLOCK_SCALES: bool;
    /// Block `b` of row `c`.
    ///
    /// # Safety
    /// `c < n`, `b < k / 32`, and the CPU has AVX2, FMA and F16C.
    unsafe fn block(&self, c: usize, b: usize) -> __m256i;
    /// Scale of block `b` of row `c` (only read when `BLOCK_SCALES`).
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C.
    unsafe fn block_scale(&self, c: usize, b: usize) -> f32;
    /// Factor applied to the finished sum of row `c`.
    fn row_scale(&self, c: usize) -> f32;
    /// Address of the packed data of row `c`; may lie past the end, as it is only prefetched.
    fn row_addr(&self, c: usize) -> *const u8;
}

/// The 32 nibbles of the 16 bytes at `packed[byte..]`: low nibbles (even elements) in the low
/// 16 bytes, high nibbles (odd elements) in the high 16 bytes, each in [0, 15].
///
/// # Safety
/// `byte + 16 <= packed.len()`, and the CPU has AVX2.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles(packed: &[u8], byte: usize) -> __m256i {
    // SAFETY: byte + 16 <= packed.len() (caller); loadu accepts any alignment.
    let v = unsafe { _mm_loadu_si128(packed.as_ptr().add(byte).cast()) };
    let both = _mm256_broadcastsi128_si256(v);
    let shifted = _mm256_srlv_epi64(both, _mm256_setr_epi64x(0, 0, 4, 4));
    _mm256_and_si256(shifted, _mm256_set1_epi8(0x0F))
}

/// A scale as f32, with F16C for f16 scales.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scale_at(scales: &Scales, i: usize) -> f32 {
    match scales {
        Scales::F32(s) => s[i],
        Scales::F16(s) => f16_to_f32(s[i]),
    }
}

struct Int8PerChannel<'a> {
    data: &'a [i8],
    scales: Scales<'a>,
    k: usize,
}

impl DecodeBlock for Int8PerChannel<'_> {
    const BLOCK_BYTES: usize = BLOCK;
    const SIGNED: bool = true;
    const BLOCK_SCALES: bool = false;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block(&self, c: usize, b: usize) -> __m256i {
        // SAFETY: c < n and b < k / 32 (caller) keep the 32 bytes inside the n * k data.
        unsafe { _mm256_loadu_si256(self.data.as_ptr().add(c * self.k + b * BLOCK).cast()) }
    }
    unsafe fn block_scale(&self, _: usize, _: usize) -> f32 {
        1.0
    }
    fn row_scale(&self, c: usize) -> f32 {
        self.scales.get(c)
    }
    fn row_addr(&self, c: usize) -> *const u8 {
        self.data.as_ptr().cast::<u8>().wrapping_add(c * self.k)
    }
}

struct Int4PerChannel<'a> {
    packed: &'a [u8],
    scales: Scales<'a>,
    k: usize,
}

impl DecodeBlock for Int4PerChannel<'_> {
    const BLOCK_BYTES: usize = BLOCK / 2;
    const SIGNED: bool = false;
    const BLOCK_SCALES: bool = false;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block(&self, c: usize, b: usize) -> __m256i {
        // SAFETY: k % 32 == 0 on this path, so block b of row c is the 16 bytes at
        // (c * k + 32 b) / 2, inside the n * k / 2 packed bytes since c < n and b < k / 32.
        let u = unsafe { nibbles(self.packed, (c * self.k + b * BLOCK) / 2) };
        // Flipping bit 3 maps the two's complement nibble q to q + 8.
        _mm256_xor_si256(u, _mm256_set1_epi8(8))
    }
    unsafe fn block_scale(&self, _: usize, _: usize) -> f32 {
        1.0
    }
    fn row_scale(&self, c: usize) -> f32 {
        self.scales.get(c)
    }
    fn row_addr(&self, c: usize) -> *const u8 {
        self.packed.as_ptr().wrapping_add(c * (self.k / 2))
    }
}

struct Int4Block32<'a> {
    packed: &'a [u8],
    scales: Scales<'a>,
    k: usize,
}

impl DecodeBlock for Int4Block32<'_> {
    const BLOCK_BYTES: usize = BLOCK / 2;
    const SIGNED: bool = true;
    const BLOCK_SCALES: bool = true;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block(&self, c: usize, b: usize) -> __m256i {
        // SAFETY: as for Int4PerChannel (k % 32 == 0 by Weights::new).
        let u = unsafe { nibbles(self.packed, (c * self.k + b * BLOCK) / 2) };
        // Two's complement nibble to i8 by table lookup.
        let signed = _mm256_setr_epi8(
            0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1, //
            0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1,
        );
        _mm256_shuffle_epi8(signed, u)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block_scale(&self, c: usize, b: usize) -> f32 {
        scale_at(&self.scales, c * (self.k / BLOCK) + b)
    }
    fn row_scale(&self, _: usize) -> f32 {
        1.0
    }
    fn row_addr(&self, c: usize) -> *const u8 {
        self.packed.as_ptr().wrapping_add(c * (self.k / 2))
    }
}

/// Rows `r0..r0 + MR` and columns `c0..c0 + NR` of the output.
///
/// # Safety
/// `r0 + MR <= m`, `c0 + NR <= n`, `x` is `[m, k]` with `k % 32 == 0`, `w` describes an `[n, k]`
/// matrix, and the CPU has AVX2, FMA and F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<const MR: usize, const NR: usize, W: DecodeBlock>(
    out: &mut OutColumns,
    x: &Q8Rows,
    w: &W,
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
            let addr = ahead.wrapping_add(b * NR * W::BLOCK_BYTES);
            _mm_prefetch::<_MM_HINT_T0>(addr.cast());
        }
        let mut wv = [_mm256_setzero_si256(); 4];
        let mut wabs = [_mm256_setzero_si256(); 4];
        let mut ws = [_mm256_setzero_ps(); 4];
        for c in 0..NR {
            // SAFETY: c0 + c < n and b < blocks, the contract of `block`.
            wv[c] = unsafe { w.block(c0 + c, b) };
            wabs[c] = if W::SIGNED {
                _mm256_abs_epi8(wv[c])
            } else {
                wv[c]
            };
            if W::BLOCK_SCALES {
                // SAFETY: this function runs only on CPUs with the features.
                ws[c] = _mm256_set1_ps(unsafe { w.block_scale(c0 + c, b) });
            }
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
                let p = if W::SIGNED {
                    _mm256_maddubs_epi16(wabs[c], _mm256_sign_epi8(xv, wv[c]))
                } else {
                    _mm256_maddubs_epi16(wv[c], xv)
                };
                let dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
                let d = if W::BLOCK_SCALES {
                    _mm256_mul_ps(dx, ws[c])
                } else {
                    dx
                };
                acc[r * NR + c] = _mm256_fmadd_ps(dot, d, acc[r * NR + c]);
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

/// Runs `tile::<MR, NR>` with `MR` chosen at run time for the last, shorter row group.
///
/// # Safety
/// As [`tile`], with `rows` in `1..=4` in place of `MR`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_rows<const NR: usize, W: DecodeBlock>(
    out: &mut OutColumns,
    x: &Q8Rows,
    w: &W,
    (r0, rows): (usize, usize),
    c0: usize,
) {
    // SAFETY: forwarded from the caller, with MR = rows.
    unsafe {
        match rows {
            1 => tile::<1, NR, W>(out, x, w, r0, c0),
            2 => tile::<2, NR, W>(out, x, w, r0, c0),
            3 => tile::<3, NR, W>(out, x, w, r0, c0),
            _ => tile::<4, NR, W>(out, x, w, r0, c0),
        }
    }
}

/// The whole product for the columns of `out`.
#[target_feature(enable = "avx2,fma,f16c")]
fn run<W: DecodeBlock>(out: &mut OutColumns, x: &Q8Rows, w: &W, weights: &Weights) {
    let (m, k) = (out.m(), weights.k());
    assert!(
        out.n() == weights.n() && x.m() == m && x.k() == k && k % BLOCK == 0,
        "linear_q8: activations, weights and output shapes disagree"
    );
    assert_eq!(
        x.layout(),
        LinearQ8Table::layout(weights.format()),
        "linear_q8: activation layout does not match the weight format"
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
                    tile::<1, 4, W>(out, x, w, 0, c);
                    c += 4;
                } else {
                    tile::<1, 1, W>(out, x, w, 0, c);
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
                        tile_rows::<2, W>(out, x, w, rows, c);
                    } else {
                        tile_rows::<1, W>(out, x, w, rows, c);
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

/// int4 weights, per-channel scales.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn int4_per_channel(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    let WeightData::Int4PerChannel { packed, scales } = w.data() else {
        panic!("int4_per_channel: weights are {:?}", w.format())
    };
    run(
        out,
        x,
        &Int4PerChannel {
            packed,
            scales,
            k: w.k(),
        },
        w,
    );
}

/// int4 weights, scales per block of 32.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn int4_block32(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    let WeightData::Int4Block32 { packed, scales } = w.data() else {
        panic!("int4_block32: weights are {:?}", w.format())
    };
    run(
        out,
        x,
        &Int4Block32 {
            packed,
            scales,
            k: w.k(),
        },
        w,
    );
}
