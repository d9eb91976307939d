//! Linear layers with f32 activations: weights decoded 16 at a time into four f32x4 vectors,
//! reused by up to four activation rows.

use std::arch::aarch64::*;

use crate::kernels::out_columns::OutColumns;
use crate::weights::{int4_at, Scales, WeightData, Weights, BLOCK};

/// Rows of activations sharing one decoded weight vector.
const ROWS: usize = 4;

/// Decodes one weight format 16 inputs at a time.
trait Decode16 {
    /// Weights `(c, j..j + 16)` as f32, times the block scale for block formats.
    ///
    /// # Safety
    /// `c < n`, `j + 16 <= k`, `j % 16 == 0`.
    unsafe fn load16(&self, c: usize, j: usize) -> [float32x4_t; 4];
    /// Weight `(c, j)` as `load16` scales it, for the row tail.
    fn at(&self, c: usize, j: usize) -> f32;
    /// Factor applied to the finished dot product of row `c`.
    fn row_scale(&self, c: usize) -> f32;
}

/// Sixteen i8 widened to four f32x4.
#[inline]
#[target_feature(enable = "neon")]
fn widen(v: int8x16_t) -> [float32x4_t; 4] {
    let lo = vmovl_s8(vget_low_s8(v));
    let hi = vmovl_high_s8(v);
    [
        vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))),
        vcvtq_f32_s32(vmovl_high_s16(lo)),
        vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))),
        vcvtq_f32_s32(vmovl_high_s16(hi)),
    ]
}

/// Sixteen int4 values from 8 packed bytes, in element order: low nibbles (even elements) are
/// sign-extended by shifting up and arithmetically back, high nibbles by the arithmetic shift
/// alone, then the two are interleaved.
///
/// # Safety
/// `byte + 8 <= packed.len()`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn int4x16(packed: &[u8], byte: usize) -> int8x16_t {
    // SAFETY: byte + 8 <= packed.len() (caller).
    let v = vreinterpret_s8_u8(unsafe { vld1_u8(packed.as_ptr().add(byte)) });
    let even = vshr_n_s8::<4>(vshl_n_s8::<4>(v));
    let odd = vshr_n_s8::<4>(v);
    vcombine_s8(vzip1_s8(even, odd), vzip2_s8(even, odd))
}

struct DenseF32<'a> {
    data: &'a [f32],
    k: usize,
}

impl Decode16 for DenseF32<'_> {
    #[target_feature(enable = "neon")]
    unsafe fn load16(&self, c: usize, j: usize) -> [float32x4_t; 4] {
        let p = self.data[c * self.k + j..c * self.k + j + 16].as_ptr();
        // SAFETY: the slice above bounds-checks the 16 floats read.
        unsafe {
            [
                vld1q_f32(p),
                vld1q_f32(p.add(4)),
                vld1q_f32(p.add(8)),
                vld1q_f32(p.add(12)),
            ]
        }
    }
    fn at(&self, c: usize, j: usize) -> f32 {
        self.data[c * self.k + j]
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

impl Decode16 for Int8PerChannel<'_> {
    #[target_feature(enable = "neon")]
    unsafe fn load16(&self, c: usize, j: usize) -> [float32x4_t; 4] {
        let p = self.data[c * self.k + j..c * self.k + j + 16].as_ptr();
        // SAFETY: the slice above bounds-checks the 16 bytes read.
        widen(unsafe { vld1q_s8(p) })
    }
    fn at(&self, c: usize, j: usize) -> f32 {
        f32::from(self.data[c * self.k + j])
    }
    fn row_scale(&self, c: usize) -> f32 {
        self.scales.get(c)
    }
}

struct Int4PerChannel<'a> {
    packed: &'a [u8],
    scales: Scales<'a>,
    k: usize,
}

impl Decode16 for Int4PerChannel<'_> {
    #[target_feature(enable = "neon")]
    unsafe fn load16(&self, c: usize, j: usize) -> [float32x4_t; 4] {
        // SAFETY: k is even (entry point) and j % 16 == 0, so the 16 values are the 8 bytes at
        // (c * k + j) / 2, inside the packed data as c < n and j + 16 <= k.
        widen(unsafe { int4x16(self.packed, (c * self.k + j) / 2) })
    }
    fn at(&self, c: usize, j: usize) -> f32 {
        f32::from(int4_at(self.packed, c * self.k + j))
    }
    fn row_scale(&self, c: usize) -> f32 {
        self.scales.get(c)
    }
}

struct Int4Block32<'a> {
    packed: &'a [u8],
    scales: Scales<'a>,
    k: usize,
}

impl Decode16 for Int4Block32<'_> {
    #[target_feature(enable = "neon")]
    unsafe fn load16(&self, c: usize, j: usize) -> [float32x4_t; 4] {
        let scale = vdupq_n_f32(self.scales.get(c * (self.k / BLOCK) + j / BLOCK));
        // SAFETY: as for Int4PerChannel (k % 32 == 0 by Weights::new).
        let v = widen(unsafe { int4x16(self.packed, (c * self.k + j) / 2) });
        v.map(|v| vmulq_f32(v, scale))
    }
    fn at(&self, c: usize, j: usize) -> f32 {
        self.scales.get(c * (self.k / BLOCK) + j / BLOCK)
            * f32::from(int4_at(self.packed, c * self.k + j))
    }
    fn row_scale(&self, _: usize) -> f32 {
        1.0
    }
}

/// The whole product for the columns of `out`, in groups of up to [`ROWS`] activation rows.
#[target_feature(enable = "neon")]
fn run<W: Decode16>(out: &mut OutColumns, x: &[f32], w: &W, n: usize, k: usize) {
    let m = out.m();
    assert!(
        out.n() == n && x.len() == m * k,
        "linear: x, weights and output shapes disagree"
    );
    let k16 = k / 16 * 16;
    let start = out.cols().start;
    for r0 in (0..m).step_by(ROWS) {
        let rows = (m - r0).min(ROWS);
        for c in out.cols() {
            let mut acc = [[vdupq_n_f32(0.0); 4]; ROWS];
            for j in (0..k16).step_by(16) {
                // SAFETY: c < n and j + 16 <= k16 <= k.
                let wv = unsafe { w.load16(c, j) };
                for (r, acc_r) in acc.iter_mut().enumerate().take(rows) {
                    let xr = &x[(r0 + r) * k + j..(r0 + r) * k + j + 16];
                    for (q, a) in acc_r.iter_mut().enumerate() {
                        // SAFETY: xr holds 16 floats; q * 4 + 4 <= 16.
                        let xv = unsafe { vld1q_f32(xr.as_ptr().add(q * 4)) };
                        *a = vfmaq_f32(*a, xv, wv[q]);
                    }
                }
            }
            for (r, acc_r) in acc.iter().enumerate().take(rows) {
                let sum4 = vaddq_f32(vaddq_f32(acc_r[0], acc_r[1]), vaddq_f32(acc_r[2], acc_r[3]));
                let mut sum = vaddvq_f32(sum4);
                for j in k16..k {
                    sum += x[(r0 + r) * k + j] * w.at(c, j);
                }
                out.row(r0 + r)[c - start] = sum * w.row_scale(c);
            }
        }
    }
}

/// Dense f32 weights.
#[target_feature(enable = "neon")]
pub fn dense_f32(out: &mut OutColumns, x: &[f32], w: &Weights) {
    let WeightData::F32(data) = w.data() else {
        panic!("dense_f32: weights are {:?}", w.format())
    };
    run(out, x, &DenseF32 { data, k: w.k() }, w.n(), w.k());
}

/// int8 weights, per-channel scales.
#[target_feature(enable = "neon")]
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

/// int4 weights, per-channel scales (odd `k` falls back to the scalar kernel, as on x86).
#[target_feature(enable = "neon")]
pub fn int4_per_channel(out: &mut OutColumns, x: &[f32], w: &Weights) {
    let WeightData::Int4PerChannel { packed, scales } = w.data() else {
        panic!("int4_per_channel: weights are {:?}", w.format())
    };
    if !w.k().is_multiple_of(2) {
        return (crate::kernels::scalar::KERNELS.linear_f32.int4_per_channel)(out, x, w);
    }
    run(
        out,
        x,
        &Int4PerChannel {
            packed,
            scales,
            k: w.k(),
        },
        w.n(),
        w.k(),
    );
}

/// int4 weights, scales per block of 32.
#[target_feature(enable = "neon")]
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
