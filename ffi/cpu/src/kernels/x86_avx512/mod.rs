//! Kernels for x86-64 with AVX-512 VNNI (Ice Lake, Zen 4 and later): the AVX2 table with the
//! linear layers of int8 activations, prefill's work, done by `vpdpbusd`.
//!
//! The kernels keep AVX2's arithmetic exactly (see each module), so both tables give the same
//! bits: a token's logits do not depend on which of them a machine picks. They run on 256-bit
//! vectors with AVX-512VL, whose 32 registers allow larger tiles; on Zen 4, 512-bit vectors
//! would take two passes through the same 256-bit units, and would change the summation order.
//! (The lut4 kernel is the exception: it puts two pairs of blocks side by side in 512-bit vectors
//! for its integer work only, which keeps the order, and needs AVX-512BW, which the table requires
//! with the rest.)
//! (AVX-VNNI, the 256-bit VEX form on CPUs without AVX-512, and AMX are not used: no machine
//! this project tests on has them.)

mod linear_q8;
mod linear_q8_int4;
mod linear_q8_lut4;

use super::out_columns::OutColumns;
use super::q8_rows::{Q8Layout, Q8Rows};
use super::{x86_avx2, Isa, Kernels, LinearQ8Table};
use crate::weights::Weights;

/// Defines a safe function that forwards to a `#[target_feature]` kernel of this module.
macro_rules! detected {
    ($($name:ident => $target:path : ($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $name($($arg: $ty),*) {
                // SAFETY: this function is only reachable through KERNELS, which `kernels()`
                // returns only after detecting AVX2, FMA, F16C, AVX-512F, AVX-512VL,
                // AVX-512BW and AVX-512 VNNI on this CPU.
                unsafe { $target($($arg),*) }
            }
        )*
    };
}

detected! {
    int8_per_channel_q8 => linear_q8::int8_per_channel: (out: &mut OutColumns, x: &Q8Rows, w: &Weights);
    int4_per_channel_q8 => linear_q8_int4::int4_per_channel: (out: &mut OutColumns, x: &Q8Rows, w: &Weights);
    int4_block32_q8 => linear_q8_int4::int4_block32: (out: &mut OutColumns, x: &Q8Rows, w: &Weights);
    int8_block32_q8 => linear_q8::int8_block32: (out: &mut OutColumns, x: &Q8Rows, w: &Weights);
    lut4_q8 => linear_q8_lut4::lut4: (out: &mut OutColumns, x: &Q8Rows, w: &Weights);
}

static KERNELS: Kernels = Kernels {
    isa: Isa::Avx512,
    linear_q8: LinearQ8Table {
        int8_per_channel: int8_per_channel_q8,
        int4_per_channel: int4_per_channel_q8,
        int4_block32: int4_block32_q8,
        int8_block32: int8_block32_q8,
        lut4: lut4_q8,
        lut6: x86_avx2::KERNELS.linear_q8.lut6,
        int4_layout: Q8Layout::Pairs,
    },
    ..x86_avx2::KERNELS
};

/// The AVX-512 VNNI table if this CPU has it, AVX-512F, VL and BW (and what the AVX2 table
/// needs).
pub fn kernels() -> Option<&'static Kernels> {
    let ok = x86_avx2::kernels().is_some()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vnni");
    ok.then_some(&KERNELS)
}
