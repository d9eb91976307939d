//! Kernels for x86-64 with AVX2, FMA and F16C (Haswell, Zen and later).
//!
//! The kernels are `#[target_feature]` functions; the table holds safe wrappers around them and
//! is only handed out by [`kernels`] after run-time detection, which is what makes calling the
//! wrappers sound.

mod convert;
mod elementwise;
mod linear_f32;
pub(super) mod linear_q8;
pub(super) mod linear_q8_int4;
pub(super) mod linear_q8_lut4;
mod matmul_rows;
mod norm;
mod quantize_q8;
mod rope;
pub(super) mod simd;
mod softmax;
pub(super) mod tiling;
mod transpose;

use super::out_columns::OutColumns;
use super::q8_rows::{Q8Layout, Q8Rows};
use super::{scalar, Isa, Kernels, LinearF32Table, LinearQ8Table, Rows};
use crate::weights::Weights;

/// Defines a safe function that forwards to a `#[target_feature]` kernel of this module.
macro_rules! detected {
    ($($name:ident => $target:path : ($($arg:ident: $ty:ty),*) $(-> $ret:ty)?;)*) => {
        $(
            fn $name($($arg: $ty),*) $(-> $ret)? {
                // SAFETY: this function is only reachable through KERNELS, which `kernels()`
                // returns only after detecting AVX2, FMA and F16C on this CPU.
                unsafe { $target($($arg),*) }
            }
        )*
    };
}

detected! {
    f16_to_f32 => convert::f16_to_f32: (out: &mut [f32], x: &[u16]);
    f32_to_f16 => convert::f32_to_f16: (out: &mut [u16], x: &[f32]);
    add => elementwise::add: (out: &mut [f32], a: &[f32], b: &[f32]);
    silu_mul => elementwise::silu_mul: (out: &mut [f32], a: &[f32], b: &[f32]);
    silu => elementwise::silu: (out: &mut [f32], x: &[f32]);
    sigmoid => elementwise::sigmoid: (out: &mut [f32], x: &[f32]);
    rms_norm => norm::rms_norm: (out: &mut [f32], x: &[f32], weight: &[f32], eps: f32);
    layer_norm => norm::layer_norm: (
        out: &mut [f32], x: &[f32], dim: usize, gamma: Option<&[f32]>, beta: Option<&[f32]>,
        eps: f32
    );
    softmax => softmax::softmax: (out: &mut [f32], x: &[f32], dim: usize);
    rope => rope::rope: (out: &mut [f32], x: &[f32], cos: &[f32], sin: &[f32]);
    transpose => transpose::transpose: (out: &mut [f32], stride: usize, x: Rows, width: usize);
    quantize_row_q8 => quantize_q8::quantize_row_q8: (
        values: &mut [i8], scales: &mut [f32], x: &[f32], layout: Q8Layout
    ) -> f32;
    matmul_rows => matmul_rows::matmul_rows: (out: &mut OutColumns, a: &[f32], b: Rows);
    dense_f32 => linear_f32::dense_f32: (out: &mut OutColumns, x: &[f32], w: &Weights);
    dense_f16 => linear_f32::dense_f16: (out: &mut OutColumns, x: &[f32], w: &Weights);
    int8_per_channel => linear_f32::int8_per_channel: (out: &mut OutColumns, x: &[f32], w: &Weights);
    int4_per_channel => linear_f32::int4_per_channel: (out: &mut OutColumns, x: &[f32], w: &Weights);
    int4_block32 => linear_f32::int4_block32: (out: &mut OutColumns, x: &[f32], w: &Weights);
    int8_block32 => linear_f32::int8_block32: (out: &mut OutColumns, x: &[f32], w: &Weights);
    int8_per_channel_q8 => linear_q8::int8_per_channel: (out: &mut OutColumns, x: &Q8Rows, w: &Weights);
    int4_per_channel_q8 => linear_q8_int4::int4_per_channel: (out: &mut OutColumns, x: &Q8Rows, w: &Weights);
    int4_block32_q8 => linear_q8_int4::int4_block32: (out: &mut OutColumns, x: &Q8Rows, w: &Weights);
    int8_block32_q8 => linear_q8::int8_block32: (out: &mut OutColumns, x: &Q8Rows, w: &Weights);
    lut4_q8 => linear_q8_lut4::lut4: (out: &mut OutColumns, x: &Q8Rows, w: &Weights);
}

pub(super) static KERNELS: Kernels = Kernels {
    isa: Isa::Avx2,
    f16_to_f32,
    f32_to_f16,
    add,
    silu_mul,
    silu,
    sigmoid,
    rms_norm,
    layer_norm,
    softmax,
    rope,
    transpose,
    quantize_row_q8,
    matmul_rows,
    linear_f32: LinearF32Table {
        f32: dense_f32,
        f16: dense_f16,
        int8_per_channel,
        int4_per_channel,
        int4_block32,
        int8_block32,
        palettized: scalar::KERNELS.linear_f32.palettized,
    },
    linear_q8: LinearQ8Table {
        int8_per_channel: int8_per_channel_q8,
        int4_per_channel: int4_per_channel_q8,
        int4_block32: int4_block32_q8,
        int8_block32: int8_block32_q8,
        lut4: lut4_q8,
        lut6: scalar::KERNELS.linear_q8.lut6,
        int4_layout: Q8Layout::Pairs,
    },
};

/// The AVX2 table if this CPU has AVX2, FMA and F16C.
pub fn kernels() -> Option<&'static Kernels> {
    let ok = is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c");
    ok.then_some(&KERNELS)
}
