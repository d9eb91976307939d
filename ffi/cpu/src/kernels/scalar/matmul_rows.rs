//! Matrix product with the right operand read row by row.

use crate::kernels::out_columns::OutColumns;
use crate::kernels::Rows;

/// `y[r, c] = sum_j a[r, j] * b[j, c]` for the columns of `out`, accumulated over `j` in order
/// with one fused multiply-add per term (as the SIMD versions round).
pub fn matmul_rows(out: &mut OutColumns, a: &[f32], b: Rows) {
    let (m, n) = (out.m(), out.n());
    assert!(
        m > 0 && a.len().is_multiple_of(m) && b.len() == a.len() / m * n,
        "matmul_rows: a, b and output shapes disagree"
    );
    let k = a.len() / m;
    let cols = out.cols();
    let b_at = |j: usize, c: usize| match b {
        Rows::F32(s) => s[j * n + c],
        Rows::F16(s) => half::f16::from_bits(s[j * n + c]).to_f32(),
    };
    for r in 0..m {
        let ar = &a[r * k..(r + 1) * k];
        for (o, c) in out.row(r).iter_mut().zip(cols.clone()) {
            *o = ar
                .iter()
                .enumerate()
                .fold(0.0f32, |acc, (j, &x)| x.mul_add(b_at(j, c), acc));
        }
    }
}
