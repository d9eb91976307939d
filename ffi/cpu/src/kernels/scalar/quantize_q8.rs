//! Activation quantization to int8 blocks of 32.

use crate::kernels::q8_rows::Q8Layout;
use crate::weights::BLOCK;

/// Quantizes one row: per block, `scale = max|x| / 127`, `q = round_ties_even(x * (127 / max))`
/// (0 for an all-zero block), stored in `layout` order. Returns `sum_b scale_b * sum_i q_bi`.
pub fn quantize_row_q8(values: &mut [i8], scales: &mut [f32], x: &[f32], layout: Q8Layout) -> f32 {
    assert!(
        x.len().is_multiple_of(BLOCK) && values.len() == x.len() && scales.len() == x.len() / BLOCK,
        "quantize_row_q8: lengths do not match blocks of 32"
    );
    let k = x.len();
    let mut row_sum = 0.0f32;
    for (b, (xb, scale)) in x.chunks_exact(BLOCK).zip(scales.iter_mut()).enumerate() {
        let max = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let inv = if max == 0.0 { 0.0 } else { 127.0 / max };
        *scale = max / 127.0;
        let mut sum = 0i32;
        for (i, &v) in xb.iter().enumerate() {
            // |v * inv| <= 127 up to rounding of inv, so the conversion cannot saturate.
            let q = (v * inv).round_ties_even() as i32;
            values[layout.position(b * BLOCK + i, k)] = q as i8;
            sum += q;
        }
        row_sum += *scale * sum as f32;
    }
    row_sum
}
