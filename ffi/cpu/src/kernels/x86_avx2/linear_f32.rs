//! Linear layers with f32 activations: fused dequantize-and-multiply, written once over a
//! [`Decode8`] per weight format.
//!
//! The loop is a dot-product register tile: `MR` activation rows times `NR` weight rows, eight
//! inputs at a time, one accumulator vector per pair, lanes summed at the end. Weights are decoded
//! in registers once per tile and reused by its `MR` rows; `tiling` processes rows in blocks whose
//! activations stay in L2 while all the columns stream past. Decode (`m = 1`) uses a 1 x 8 tile:
//! eight independent accumulators keep both FMA pipes busy while the weights stream from memory.

use std::arch::x86_64::*;

use super::simd::{f16_to_f32, hsum};
use super::tiling::{self, Product, Tiles, PREFETCH_TILES};
use crate::kernels::out_columns::OutColumns;
use crate::weights::{int4_at, Scales, WeightData, Weights, BLOCK};

/// Reads one weight format eight inputs at a time.
trait Decode8 {
    /// Bytes of packed data per 8 inputs of one row.
    const BYTES_PER_8: usize;
    /// Address of the packed data of row `c`; may lie past the end, as it is only prefetched.
    fn row_addr(&self, c: usize) -> *const u8;
    /// Weights `(c, j..j + 8)` as f32, times the block scale for block formats.
    ///
    /// # Safety
    /// `c < n`, `j + 8 <= k`, `j % 8 == 0`, and the CPU has AVX2, FMA and F16C.
    unsafe fn load8(&self, c: usize, j: usize) -> __m256;
    /// Weight `(c, j)` as [`Decode8::load8`] scales it, for the tail of a row.
    fn at(&self, c: usize, j: usize) -> f32;
    /// Factor applied to the finished dot product of row `c` (the per-channel scale, or 1).
    fn row_scale(&self, c: usize) -> f32;
    /// Subtracted from the dot product of activation row `r` before the row scale (see
    /// [`Int4PerChannel`]); 0 for formats decoded exactly.
    fn row_offset(&self, _r: usize) -> f32 {
        0.0
    }
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

struct DenseF32<'a> {
    data: &'a [f32],
    k: usize,
}

impl Decode8 for DenseF32<'_> {
    const BYTES_PER_8: usize = 32;
    fn row_addr(&self, c: usize) -> *const u8 {
        self.data.as_ptr().cast::<u8>().wrapping_add(c * self.k * 4)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(&self, c: usize, j: usize) -> __m256 {
        // SAFETY: c < n and j + 8 <= k (caller), and data holds n * k floats (Weights::new).
        unsafe { _mm256_loadu_ps(self.data.as_ptr().add(c * self.k + j)) }
    }
    fn at(&self, c: usize, j: usize) -> f32 {
        self.data[c * self.k + j]
    }
    fn row_scale(&self, _: usize) -> f32 {
        1.0
    }
}

struct DenseF16<'a> {
    data: &'a [u16],
    k: usize,
}

impl Decode8 for DenseF16<'_> {
    const BYTES_PER_8: usize = 16;
    fn row_addr(&self, c: usize) -> *const u8 {
        self.data.as_ptr().cast::<u8>().wrapping_add(c * self.k * 2)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(&self, c: usize, j: usize) -> __m256 {
        // SAFETY: c < n and j + 8 <= k (caller), and data holds n * k halves (Weights::new).
        _mm256_cvtph_ps(unsafe { _mm_loadu_si128(self.data.as_ptr().add(c * self.k + j).cast()) })
    }
    fn at(&self, c: usize, j: usize) -> f32 {
        half::f16::from_bits(self.data[c * self.k + j]).to_f32()
    }
    fn row_scale(&self, _: usize) -> f32 {
        1.0
    }
}

struct Int8PerChannel<'a> {
    data: &'a [i8],
    scales: Scales<'a>,
    k: usize,
}

impl Decode8 for Int8PerChannel<'_> {
    const BYTES_PER_8: usize = 8;
    fn row_addr(&self, c: usize) -> *const u8 {
        self.data.as_ptr().cast::<u8>().wrapping_add(c * self.k)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(&self, c: usize, j: usize) -> __m256 {
        // SAFETY: c < n and j + 8 <= k (caller), and data holds n * k bytes (Weights::new).
        let q = unsafe { _mm_loadl_epi64(self.data.as_ptr().add(c * self.k + j).cast()) };
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q))
    }
    fn at(&self, c: usize, j: usize) -> f32 {
        f32::from(self.data[c * self.k + j])
    }
    fn row_scale(&self, c: usize) -> f32 {
        self.scales.get(c)
    }
}

struct Int8Block32<'a> {
    data: &'a [i8],
    scales: Scales<'a>,
    k: usize,
}

impl Decode8 for Int8Block32<'_> {
    const BYTES_PER_8: usize = 8;
    fn row_addr(&self, c: usize) -> *const u8 {
        self.data.as_ptr().cast::<u8>().wrapping_add(c * self.k)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(&self, c: usize, j: usize) -> __m256 {
        let scale = scale_at(&self.scales, c * (self.k / BLOCK) + j / BLOCK);
        // SAFETY: c < n and j + 8 <= k (caller), and data holds n * k bytes (Weights::new).
        let q = unsafe { _mm_loadl_epi64(self.data.as_ptr().add(c * self.k + j).cast()) };
        _mm256_mul_ps(
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)),
            _mm256_set1_ps(scale),
        )
    }
    fn at(&self, c: usize, j: usize) -> f32 {
        self.scales.get(c * (self.k / BLOCK) + j / BLOCK) * f32::from(self.data[c * self.k + j])
    }
    fn row_scale(&self, _: usize) -> f32 {
        1.0
    }
}

/// Eight int4 values starting at an even flat index `e`, sign-extended in 32-bit lanes.
///
/// The 4 bytes at `e / 2` hold the 8 values LSB-first, value `i` in bits `4i..4i + 4`. Broadcast
/// to every lane, shifted left so lane `i`'s nibble lands in the top bits, then shifted right
/// arithmetically: lane `i` holds value `i`, sign-extended, with no shuffle.
///
/// # Safety
/// `e` is even, `e / 2 + 4 <= packed.len()`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn int4x8(packed: &[u8], e: usize) -> __m256 {
    // SAFETY: e / 2 + 4 <= packed.len() (caller); read_unaligned has no alignment need.
    let word = unsafe { packed.as_ptr().add(e / 2).cast::<i32>().read_unaligned() };
    let to_top = _mm256_setr_epi32(28, 24, 20, 16, 12, 8, 4, 0);
    let v = _mm256_srai_epi32::<28>(_mm256_sllv_epi32(_mm256_set1_epi32(word), to_top));
    _mm256_cvtepi32_ps(v)
}

/// Per-channel int4, decoded without shifts.
///
/// The 4 bytes of 8 values are broadcast to all lanes; XOR with `0x0888_8888` turns nibbles 0..7
/// into `q + 8` (unsigned), and an AND with lane `i`'s mask keeps nibble `i` in place:
/// lane `i` holds `(q_i + 8) * 16^i`, except lane 7, left as `q_7 * 2^28` (its top bit is
/// the int32 sign, so no offset is needed). Converted to f32 that is exact. The activations are
/// pre-scaled by `16^-i` (exact) to cancel the position factor, and the `+ 8` of lanes 0..7 is
/// removed once per row as `8 * sum(x[j], j % 8 != 7)`. This replaces the two shifts of
/// [`int4x8`], which compete for two of Zen's four vector pipes, by two bitwise ops that run on
/// any of them: decode (m = 1) streams weights about half again as fast.
struct Int4PerChannel<'a> {
    packed: &'a [u8],
    scales: Scales<'a>,
    k: usize,
    /// Per activation row: `8 * sum(x[j], j < k / 8 * 8, j % 8 != 7)`.
    offsets: Vec<f32>,
}

impl Int4PerChannel<'_> {
    /// Activation scale of lane `i`, undoing the lane's `16^i`.
    const LANE_SCALE: [f32; 8] = [
        1.0,
        1.0 / 16.0,
        1.0 / 256.0,
        1.0 / 4096.0,
        1.0 / 65536.0,
        1.0 / 1_048_576.0,
        1.0 / 16_777_216.0,
        1.0 / 268_435_456.0,
    ];

    /// The activations pre-scaled per lane (the row tails, not decoded by vectors, stay as they
    /// are) and the per-row offsets.
    fn prescale(x: &[f32], k: usize) -> (Vec<f32>, Vec<f32>) {
        let k8 = k / 8 * 8;
        let mut scaled = x.to_vec();
        let mut offsets = Vec::with_capacity(x.len() / k);
        for row in scaled.chunks_exact_mut(k) {
            let mut offset = 0.0f32;
            for (j, v) in row[..k8].iter_mut().enumerate() {
                if j % 8 != 7 {
                    offset += *v;
                }
                *v *= Self::LANE_SCALE[j % 8];
            }
            offsets.push(8.0 * offset);
        }
        (scaled, offsets)
    }
}

impl Decode8 for Int4PerChannel<'_> {
    const BYTES_PER_8: usize = 4;
    fn row_addr(&self, c: usize) -> *const u8 {
        self.packed.as_ptr().wrapping_add(c * (self.k / 2))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(&self, c: usize, j: usize) -> __m256 {
        // Row start and column offset in bytes, kept apart so that one induction variable
        // serves all rows of a tile.
        let byte = c * (self.k / 2) + j / 2;
        // SAFETY: k is even (checked by the entry point) and j % 8 == 0, so the 8 values are the
        // 4 bytes at (c * k + j) / 2 = byte, inside the n * k / 2 packed bytes as c < n and
        // j + 8 <= k; read_unaligned has no alignment need.
        let word = unsafe {
            self.packed
                .as_ptr()
                .add(byte)
                .cast::<i32>()
                .read_unaligned()
        };
        let masks = _mm256_setr_epi32(
            0xF,
            0xF0,
            0xF00,
            0xF000,
            0xF_0000,
            0xF0_0000,
            0xF00_0000,
            0xF000_0000_u32 as i32,
        );
        let flipped = _mm256_xor_si256(_mm256_set1_epi32(word), _mm256_set1_epi32(0x0888_8888));
        _mm256_cvtepi32_ps(_mm256_and_si256(flipped, masks))
    }
    fn at(&self, c: usize, j: usize) -> f32 {
        f32::from(int4_at(self.packed, c * self.k + j))
    }
    fn row_scale(&self, c: usize) -> f32 {
        self.scales.get(c)
    }
    fn row_offset(&self, r: usize) -> f32 {
        self.offsets[r]
    }
}

struct Int4Block32<'a> {
    packed: &'a [u8],
    scales: Scales<'a>,
    k: usize,
}

impl Decode8 for Int4Block32<'_> {
    const BYTES_PER_8: usize = 4;
    fn row_addr(&self, c: usize) -> *const u8 {
        self.packed.as_ptr().wrapping_add(c * (self.k / 2))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(&self, c: usize, j: usize) -> __m256 {
        let scale = scale_at(&self.scales, c * (self.k / BLOCK) + j / BLOCK);
        // SAFETY: k % 32 == 0 (Weights::new) and j % 8 == 0 make the flat index even; c < n and
        // j + 8 <= k put its 4 bytes inside the packed data.
        let v = unsafe { int4x8(self.packed, c * self.k + j) };
        _mm256_mul_ps(v, _mm256_set1_ps(scale))
    }
    fn at(&self, c: usize, j: usize) -> f32 {
        self.scales.get(c * (self.k / BLOCK) + j / BLOCK)
            * f32::from(int4_at(self.packed, c * self.k + j))
    }
    fn row_scale(&self, _: usize) -> f32 {
        1.0
    }
}

impl<W: Decode8> Tiles for Product<'_, [f32], W> {
    /// # Safety
    /// As [`Tiles::tile`], which here means `r0 + MR <= m`, `c0 + NR <= n`,
    /// `x.len() == m * k`, `w` describes an `[n, k]` matrix, and the CPU has AVX2, FMA and F16C.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn tile<const MR: usize, const NR: usize>(
        &self,
        out: &mut OutColumns,
        r0: usize,
        c0: usize,
    ) {
        let (x, w, k) = (self.x, self.w, self.k);
        let k8 = k / 8 * 8;
        let mut acc = [[_mm256_setzero_ps(); NR]; MR];
        let xp = x.as_ptr();
        // Decode streams rows from DRAM in short runs (a 1 KiB row is 16 cache lines), too short
        // for the hardware prefetcher to ramp up: fetch the rows of a tile further on, in memory
        // order, a cache line per step.
        let ahead = w.row_addr(c0 + PREFETCH_TILES * NR);
        let per_step = NR * W::BYTES_PER_8;
        for j in (0..k8).step_by(8) {
            if MR == 1 {
                for line in (0..per_step).step_by(64) {
                    let addr = ahead.wrapping_add(j / 8 * per_step + line);
                    _mm_prefetch::<_MM_HINT_T0>(addr.cast());
                }
            }
            // SAFETY: c0 + c < n and j + 8 <= k8 <= k, the contract of load8.
            let wv: [__m256; NR] = std::array::from_fn(|c| unsafe { w.load8(c0 + c, j) });
            for (r, acc_r) in acc.iter_mut().enumerate() {
                // SAFETY: (r0 + r) * k + j + 8 <= m * k = x.len() since r0 + r < m and j + 8 <= k.
                let xv = unsafe { _mm256_loadu_ps(xp.add((r0 + r) * k + j)) };
                for (a, wc) in acc_r.iter_mut().zip(&wv) {
                    *a = _mm256_fmadd_ps(xv, *wc, *a);
                }
            }
        }
        let start = out.cols().start;
        for (r, acc_r) in acc.iter().enumerate() {
            let xr = &x[(r0 + r) * k..(r0 + r + 1) * k];
            let row = out.row(r0 + r);
            for (c, a) in acc_r.iter().enumerate() {
                let mut sum = hsum(*a);
                for (j, xv) in xr.iter().enumerate().skip(k8) {
                    sum += xv * w.at(c0 + c, j);
                }
                row[c0 + c - start] = (sum - w.row_offset(r0 + r)) * w.row_scale(c0 + c);
            }
        }
    }
}

/// The whole product for the columns of `out`.
#[target_feature(enable = "avx2,fma,f16c")]
fn run<W: Decode8>(out: &mut OutColumns, x: &[f32], w: &W, n: usize, k: usize) {
    let m = out.m();
    assert!(
        out.n() == n && x.len() == m * k,
        "linear: x, weights and output shapes disagree"
    );
    // SAFETY: shapes asserted above, and this function only runs on CPUs with the features
    // (module contract).
    unsafe { tiling::run::<8, 2, _>(out, &Product { x, w, k }, 4 * k) }
}

/// Dense f32 weights.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn dense_f32(out: &mut OutColumns, x: &[f32], w: &Weights) {
    let WeightData::F32(data) = w.data() else {
        panic!("dense_f32: weights are {:?}", w.format())
    };
    run(out, x, &DenseF32 { data, k: w.k() }, w.n(), w.k());
}

/// Dense f16 weights.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn dense_f16(out: &mut OutColumns, x: &[f32], w: &Weights) {
    let WeightData::F16(data) = w.data() else {
        panic!("dense_f16: weights are {:?}", w.format())
    };
    run(out, x, &DenseF16 { data, k: w.k() }, w.n(), w.k());
}

/// int8 weights, per-channel scales.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn int8_per_channel(out: &mut OutColumns, x: &[f32], w: &Weights) {
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
        w.n(),
        w.k(),
    );
}

/// int4 weights, per-channel scales. An odd `k` starts every other row mid-byte, which the
/// vector decoder does not handle: such (unusual) matrices use the scalar kernel.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn int4_per_channel(out: &mut OutColumns, x: &[f32], w: &Weights) {
    let WeightData::Int4PerChannel { packed, scales } = w.data() else {
        panic!("int4_per_channel: weights are {:?}", w.format())
    };
    if !w.k().is_multiple_of(2) {
        return (crate::kernels::scalar::KERNELS.linear_f32.int4_per_channel)(out, x, w);
    }
    let (scaled, offsets) = Int4PerChannel::prescale(x, w.k());
    let decoder = Int4PerChannel {
        packed,
        scales,
        k: w.k(),
        offsets,
    };
    run(out, &scaled, &decoder, w.n(), w.k());
}

/// int4 weights, scales per block of 32.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn int4_block32(out: &mut OutColumns, x: &[f32], w: &Weights) {
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
        w.n(),
        w.k(),
    );
}

/// int8 weights, scales per block of 32.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn int8_block32(out: &mut OutColumns, x: &[f32], w: &Weights) {
    let WeightData::Int8Block32 { data, scales } = w.data() else {
        panic!("int8_block32: weights are {:?}", w.format())
    };
    run(
        out,
        x,
        &Int8Block32 {
            data,
            scales,
            k: w.k(),
        },
        w.n(),
        w.k(),
    );
}
