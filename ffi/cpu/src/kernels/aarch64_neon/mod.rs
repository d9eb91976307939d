//! Kernels for aarch64 with Advanced SIMD (NEON, part of every aarch64 CPU).
//!
//! Written for the two linear paths, where the time goes; the other entries are the scalar
//! reference until a NEON version earns its place (f16 vector types are not stable in Rust yet,
//! so conversions stay scalar). Compile-checked for `aarch64-unknown-linux-gnu`; see ABI.md for
//! how far it is tested.

mod linear_f32;
pub(super) mod linear_q8;
mod linear_q8_lut4;

use super::out_columns::OutColumns;
use super::q8_rows::{Q8Layout, Q8Rows};
use super::{scalar, Isa, Kernels, LinearF32Table, LinearQ8Table};
use crate::weights::Weights;

/// Defines a safe function that forwards to a `#[target_feature(enable = "neon")]` kernel.
macro_rules! detected {
    ($($name:ident => $target:path : ($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $name($($arg: $ty),*) {
                // SAFETY: this function is only reachable through KERNELS, which `kernels()`
                // returns only after detecting NEON.
                unsafe { $target($($arg),*) }
            }
        )*
    };
}

detected! {
    dense_f32 => linear_f32::dense_f32: (out: &mut OutColumns, x: &[f32], w: &Weights);
    int8_per_channel => linear_f32::int8_per_channel: (out: &mut OutColumns, x: &[f32], w: &Weights);
    int4_per_channel => linear_f32::int4_per_channel: (out: &mut OutColumns, x: &[f32], w: &Weights);
    int4_block32 => linear_f32::int4_block32: (out: &mut OutColumns, x: &[f32], w: &Weights);
    int8_per_channel_q8 => linear_q8::int8_per_channel: (out: &mut OutColumns, x: &Q8Rows, w: &Weights);
    int4_per_channel_q8 => linear_q8::int4_per_channel: (out: &mut OutColumns, x: &Q8Rows, w: &Weights);
    int4_block32_q8 => linear_q8::int4_block32: (out: &mut OutColumns, x: &Q8Rows, w: &Weights);
    int8_block32_q8 => linear_q8::int8_block32: (out: &mut OutColumns, x: &Q8Rows, w: &Weights);
    lut4_q8 => linear_q8_lut4::lut4: (out: &mut OutColumns, x: &Q8Rows, w: &Weights);
}

pub(super) static KERNELS: Kernels = Kernels {
    isa: Isa::Neon,
    linear_f32: LinearF32Table {
        f32: dense_f32,
        f16: scalar::KERNELS.linear_f32.f16,
        int8_per_channel,
        int4_per_channel,
        int4_block32,
        int8_block32: scalar::KERNELS.linear_f32.int8_block32,
        palettized: scalar::KERNELS.linear_f32.palettized,
    },
    linear_q8: LinearQ8Table {
        int8_per_channel: int8_per_channel_q8,
        int4_per_channel: int4_per_channel_q8,
        int4_block32: int4_block32_q8,
        int8_block32: int8_block32_q8,
        lut4: lut4_q8,
        lut6: scalar::KERNELS.linear_q8.lut6,
        int4_layout: Q8Layout::EvenOdd,
    },
    ..scalar::KERNELS
};

/// The NEON table if this CPU has Advanced SIMD.
pub fn kernels() -> Option<&'static Kernels> {
    std::arch::is_aarch64_feature_detected!("neon").then_some(&KERNELS)
}
