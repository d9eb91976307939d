//! Transposing conversion of a matrix to f32.

use crate::kernels::Rows;

/// `out[c * stride + r] = x[r, c]` for the `[rows, width]` matrix `x` (see `Kernels::transpose`).
pub fn transpose(out: &mut [f32], stride: usize, x: Rows, width: usize) {
    let rows = crate::kernels::transposed_rows(out.len(), stride, x.len(), width);
    for r in 0..rows {
        for c in 0..width {
            out[c * stride + r] = x.get(r * width + c);
        }
    }
}
