//! Kernels for x86-64 with `vpdpbusd`, the int8 dot product of VNNI: the AVX2 table with the
//! linear layers of int8 activations, prefill's work, done by it. The same kernels are compiled
//! for its two encodings: AVX-512 VNNI (EVEX, with AVX-512VL and BW: Ice Lake, Sapphire Rapids,
//! Zen 4 and later) and AVX-VNNI (VEX: Alder Lake and later Intel cores without AVX-512, Zen 5).
//!
//! The kernels keep AVX2's arithmetic exactly (see each module), so all three tables give the same
//! bits: a token's logits do not depend on which of them a machine picks. Their sums are those of
//! 256-bit vectors, eight lanes each, whatever the encoding: a 512-bit vector summed as one would
//! change the order. AVX-512 still gains from its 512-bit vectors where they hold two 256-bit
//! computations side by side, each summed on its own: the int8 and int4 prefill tiles put two
//! weight rows in each, the lut4 kernel two pairs of blocks, and an Intel core issues one
//! instruction where it would issue two. (Zen 4 runs a 512-bit operation as two 256-bit halves, so
//! it should gain little there; the tiles have not been run on it.) The encodings also differ in
//! their register files: AVX-512's 32 registers hold larger tiles than AVX-VNNI's 16. (AMX is not
//! used: no machine this project tests on has it.)
//!
//! The int8 and int4 kernel bodies are generic over the [`Encoding`] and `#[inline(always)]`; only
//! the entry points, one per encoding, carry `#[target_feature]`, so the bodies and the intrinsics
//! are compiled inside them with that encoding's features. The 512-bit code is AVX-512's own and
//! names its features: the int8 and int4 prefill tiles, and a lut4 kernel whose lookups take
//! 512-bit vectors (AVX-VNNI runs AVX2's).

mod linear_q8;
mod linear_q8_int4;
mod linear_q8_lut4;

use std::arch::x86_64::*;

use super::out_columns::OutColumns;
use super::q8_rows::{Q8Layout, Q8Rows};
use super::{x86_avx2, Isa, Kernels, LinearQ8Table};
use crate::weights::Weights;

/// Columns of a decode tile: four weight rows per step give four independent accumulator chains.
const DECODE_NR: usize = 4;

/// One encoding of `vpdpbusd` on 256-bit vectors.
pub(super) trait Encoding {
    /// Per i32 lane, `acc` plus the four products of the unsigned bytes of `u` with the signed
    /// bytes of `s` that share the lane.
    ///
    /// # Safety
    /// The CPU has this encoding's features, and the caller is compiled with them (it is inlined
    /// into an entry point that enables them).
    unsafe fn dpbusd(acc: __m256i, u: __m256i, s: __m256i) -> __m256i;
}

/// AVX-512 VNNI with AVX-512VL.
pub(super) struct Evex;

impl Encoding for Evex {
    #[inline(always)]
    unsafe fn dpbusd(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        // SAFETY: the caller's (the features of this encoding).
        unsafe { _mm256_dpbusd_epi32(acc, u, s) }
    }
}

/// AVX-VNNI.
pub(super) struct Vex;

impl Encoding for Vex {
    #[inline(always)]
    unsafe fn dpbusd(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        // SAFETY: the caller's (the features of this encoding).
        unsafe { _mm256_dpbusd_avx_epi32(acc, u, s) }
    }
}

/// `low` and `high` as the two 256-bit halves of one 512-bit vector.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni,avx512bw")]
fn join(low: __m256i, high: __m256i) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(low), high)
}

/// [`join`] for f32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni,avx512bw")]
fn join_ps(low: __m256, high: __m256) -> __m512 {
    _mm512_castsi512_ps(join(_mm256_castps_si256(low), _mm256_castps_si256(high)))
}

/// `v` in both 256-bit halves of a 512-bit vector.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni,avx512bw")]
fn broadcast_ps(v: __m256) -> __m512 {
    _mm512_castsi512_ps(_mm512_broadcast_i64x4(_mm256_castps_si256(v)))
}

/// The two 256-bit halves of `v`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni,avx512bw")]
fn halves(v: __m512) -> (__m256, __m256) {
    let high = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v));
    (_mm512_castps512_ps256(v), _mm256_castpd_ps(high))
}

/// Defines, for one encoding, the safe kernel functions of a table: each enables the encoding's
/// features, in which the generic kernel it names is compiled (with its prefill tile width).
macro_rules! entry_points {
    ($encoding:ty, $features:literal: $($name:ident => $module:ident::$kernel:ident, $nr:literal;)*) => {
        $(
            fn $name(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
                #[target_feature(enable = $features)]
                fn compiled(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
                    // SAFETY: this function runs with the encoding's features enabled.
                    unsafe { $module::$kernel::<$encoding, $nr>(out, x, w) }
                }
                // SAFETY: this function is only reachable through a table that `kernels()`
                // returns only after detecting the features on this CPU.
                unsafe { compiled(out, x, w) }
            }
        )*
    };
}

/// The AVX2 table with the VNNI linear layers of one encoding, whose prefill tiles are 4 rows by
/// `$int8_nr` columns for int8 weights and by `$int4_nr` for int4 weights, and with `$lut4`.
macro_rules! table {
    ($isa:expr, $encoding:ty, $features:literal, $int8_nr:literal, $int4_nr:literal, $lut4:expr) => {{
        entry_points! {
            $encoding, $features:
            int8_per_channel => linear_q8::int8_per_channel, $int8_nr;
            int4_per_channel => linear_q8_int4::int4_per_channel, $int4_nr;
            int4_block32 => linear_q8_int4::int4_block32, $int4_nr;
            int8_block32 => linear_q8::int8_block32, $int8_nr;
        }
        Kernels {
            isa: $isa,
            linear_q8: LinearQ8Table {
                int8_per_channel,
                int4_per_channel,
                int4_block32,
                int8_block32,
                lut4: $lut4,
                lut6: x86_avx2::KERNELS.linear_q8.lut6,
                int4_layout: Q8Layout::Pairs,
            },
            ..x86_avx2::KERNELS
        }
    }};
}

/// The AVX-512 lut4 kernel, safe.
fn lut4_avx512(out: &mut OutColumns, x: &Q8Rows, w: &Weights) {
    // SAFETY: this function is only reachable through AVX512, which `kernels()` returns only after
    // detecting its features on this CPU.
    unsafe { linear_q8_lut4::lut4(out, x, w) }
}

/// 32 registers: tiles of 4 rows by 6 columns, 12 accumulators of two columns each, with 3 int8
/// weight vectors or 6 int4 nibble vectors, and room for block-32 scales (4 by 8 spilled for int4,
/// and was no faster than 4 by 6 on per-channel weights of either width, slower on block-32 ones).
static AVX512: Kernels = table!(
    Isa::Avx512,
    Evex,
    "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni",
    6,
    6,
    lut4_avx512
);
/// 16 registers: AVX2's tiles.
static AVX_VNNI: Kernels = table!(
    Isa::AvxVnni,
    Vex,
    "avx2,fma,f16c,avxvnni",
    2,
    2,
    x86_avx2::KERNELS.linear_q8.lut4
);

/// The VNNI tables this CPU can run (with what the AVX2 table needs), AVX-VNNI first.
pub fn kernels() -> Vec<&'static Kernels> {
    let mut tables = Vec::new();
    if x86_avx2::kernels().is_none() {
        return tables;
    }
    if is_x86_feature_detected!("avxvnni") {
        tables.push(&AVX_VNNI);
    }
    if is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vnni")
    {
        tables.push(&AVX512);
    }
    tables
}
