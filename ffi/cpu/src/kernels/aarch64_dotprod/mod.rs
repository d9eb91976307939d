//! Kernels for aarch64 with the dot-product extension (FEAT_DotProd, `sdot`; Cortex-A76, Neoverse
//! N1, Apple M1 and later): the NEON table with the linear layers of int8 activations, prefill's
//! work, done by `sdot`. They give the scalar reference's bits, as the NEON ones do, so a token's
//! logits do not depend on which set a machine picks.

pub(super) mod linear_q8;

use super::out_columns::OutColumns;
use super::q8_rows::Q8Rows;
use super::{aarch64_neon, Isa, Kernels, LinearQ8Table};
use crate::weights::Weights;

/// Defines a safe function that forwards to a `#[target_feature]` kernel of this module.
macro_rules! detected {
    ($($name:ident => $target:path : ($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $name($($arg: $ty),*) {
                // SAFETY: this function is only reachable through KERNELS, which `kernels()`
                // returns only after detecting NEON and dotprod on this CPU.
                unsafe { $target($($arg),*) }
            }
        )*
    };
}

detected! {
    int8_per_channel_q8 => linear_q8::int8_per_channel: (out: &mut OutColumns, x: &Q8Rows, w: &Weights);
    int4_per_channel_q8 => linear_q8::int4_per_channel: (out: &mut OutColumns, x: &Q8Rows, w: &Weights);
    int4_block32_q8 => linear_q8::int4_block32: (out: &mut OutColumns, x: &Q8Rows, w: &Weights);
    int8_block32_q8 => linear_q8::int8_block32: (out: &mut OutColumns, x: &Q8Rows, w: &Weights);
}

pub(super) static KERNELS: Kernels = Kernels {
    isa: Isa::Dotprod,
    linear_q8: LinearQ8Table {
        int8_per_channel: int8_per_channel_q8,
        int4_per_channel: int4_per_channel_q8,
        int4_block32: int4_block32_q8,
        int8_block32: int8_block32_q8,
        ..aarch64_neon::KERNELS.linear_q8
    },
    ..aarch64_neon::KERNELS
};

/// The dotprod table if this CPU has NEON and the dot-product extension.
pub fn kernels() -> Option<&'static Kernels> {
    let ok =
        aarch64_neon::kernels().is_some() && std::arch::is_aarch64_feature_detected!("dotprod");
    ok.then_some(&KERNELS)
}
