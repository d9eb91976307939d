//! Scalar reference kernels: plain loops in a fixed summation order. They define what every
//! SIMD kernel must compute (up to f32 reassociation) and run on any CPU.

mod convert;
mod elementwise;
mod linear_f32;
pub(super) mod linear_lut;
mod linear_q8;
mod matmul_rows;
mod norm;
mod quantize_q8;
mod rope;
mod softmax;
mod transpose;

use super::q8_rows::Q8Layout;
use super::{Isa, Kernels, LinearF32Table, LinearQ8Table};

/// The scalar table.
pub static KERNELS: Kernels = Kernels {
    isa: Isa::Scalar,
    f16_to_f32: convert::f16_to_f32,
    f32_to_f16: convert::f32_to_f16,
    add: elementwise::add,
    silu_mul: elementwise::silu_mul,
    silu: elementwise::silu,
    sigmoid: elementwise::sigmoid,
    rms_norm: norm::rms_norm,
    layer_norm: norm::layer_norm,
    softmax: softmax::softmax,
    rope: rope::rope,
    transpose: transpose::transpose,
    quantize_row_q8: quantize_q8::quantize_row_q8,
    matmul_rows: matmul_rows::matmul_rows,
    linear_f32: LinearF32Table {
        f32: linear_f32::dense_f32,
        f16: linear_f32::dense_f16,
        int8_per_channel: linear_f32::int8_per_channel,
        int4_per_channel: linear_f32::int4_per_channel,
        int4_block32: linear_f32::int4_block32,
        int8_block32: linear_f32::int8_block32,
        palettized: linear_lut::palettized,
    },
    linear_q8: LinearQ8Table {
        int8_per_channel: linear_q8::int8_per_channel,
        int4_per_channel: linear_q8::int4_per_channel,
        int4_block32: linear_q8::int4_block32,
        int8_block32: linear_q8::int8_block32,
        lut4: linear_lut::palettized_q8,
        lut6: linear_lut::palettized_q8,
        int4_layout: Q8Layout::EvenOdd,
    },
};
