//! Kernels for aarch64 with the int8 matrix-multiply extension (FEAT_I8MM, `smmla`; Neoverse V1
//! and N2, Apple M2 and later): the dotprod table with the linear layers of int8 activations done
//! by `smmla`, two activation rows by two weight rows per instruction. They give the scalar
//! reference's bits, as the NEON and dotprod ones do.

mod linear_q8;

use super::out_columns::OutColumns;
use super::q8_rows::Q8Rows;
use super::{aarch64_dotprod, Isa, Kernels, LinearQ8Table};
use crate::weights::Weights;

/// Defines a safe function that forwards to a `#[target_feature]` kernel of this module.
macro_rules! detected {
    ($($name:ident => $target:path : ($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $name($($arg: $ty),*) {
                // SAFETY: this function is only reachable through KERNELS, which `kernels()`
                // returns only after detecting NEON, dotprod and i8mm on this CPU.
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

static KERNELS: Kernels = Kernels {
    isa: Isa::I8mm,
    linear_q8: LinearQ8Table {
        int8_per_channel: int8_per_channel_q8,
        int4_per_channel: int4_per_channel_q8,
        int4_block32: int4_block32_q8,
        int8_block32: int8_block32_q8,
        ..aarch64_dotprod::KERNELS.linear_q8
    },
    ..aarch64_dotprod::KERNELS
};

/// The i8mm table if this CPU has what the dotprod table needs and the int8 matrix-multiply
/// extension.
pub fn kernels() -> Option<&'static Kernels> {
    let ok =
        aarch64_dotprod::kernels().is_some() && std::arch::is_aarch64_feature_detected!("i8mm");
    ok.then_some(&KERNELS)
}
