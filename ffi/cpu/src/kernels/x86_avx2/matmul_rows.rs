//! Matrix product with the right operand read row by row: `y [m, n] = a [m, k] b [k, n]`.
//!
//! The register tile is two output rows by 32 columns (four vectors): per term `j`, the 32
//! values of `b[j, ..]` are loaded (converted from f16 with F16C) once and meet both rows'
//! broadcast `a[r, j]`. Terms are taken in blocks whose `b` rows stay in L1 while every row pair
//! passes; the partial sums wait in the output between blocks, which rounds nothing (they are f32
//! either way), so each output is the same chain of fused multiply-adds over `j` as in the
//! scalar reference.

use std::arch::x86_64::*;

use super::simd::{f16_to_f32, LANES};
use crate::kernels::out_columns::OutColumns;
use crate::kernels::Rows;

/// Terms per block: 128 rows of 32 columns of `b` are 16 KiB as f32, half of L1.
const TERMS: usize = 128;

/// Vector `v` (8 columns) of row `j` of `b`, starting at column `c`.
///
/// # Safety
/// `j * n + c + 8 <= b.len()` and the CPU has AVX2, FMA and F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_b(b: Rows, at: usize) -> __m256 {
    // SAFETY: the caller keeps the 8 elements at `at` inside `b`; loadu has no alignment need.
    unsafe {
        match b {
            Rows::F32(s) => _mm256_loadu_ps(s.as_ptr().add(at)),
            Rows::F16(s) => _mm256_cvtph_ps(_mm_loadu_si128(s.as_ptr().add(at).cast())),
        }
    }
}

/// Rows `r0..r0 + MR`, columns `c0..c0 + 8 NV`, terms `j0..j1`, added to the output (which holds
/// the sums of the earlier terms, or is cleared first when `j0 == 0`).
///
/// # Safety
/// `r0 + MR <= m`, the columns lie inside `out.cols()`, `j1 <= k`, `a` is `[m, k]`, `b` is
/// `[k, n]`, and the CPU has AVX2, FMA and F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<const MR: usize, const NV: usize>(
    out: &mut OutColumns,
    a: &[f32],
    b: Rows,
    (k, n): (usize, usize),
    (r0, c0): (usize, usize),
    (j0, j1): (usize, usize),
) {
    let start = out.cols().start;
    let mut acc = [[_mm256_setzero_ps(); NV]; MR];
    if j0 > 0 {
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let row = out.row(r0 + r);
            for (v, a) in acc_r.iter_mut().enumerate() {
                let at = c0 - start + v * LANES;
                // SAFETY: the slice is 8 floats of this row's share of the output.
                *a = unsafe { _mm256_loadu_ps(row[at..at + LANES].as_ptr()) };
            }
        }
    }
    let ap = a.as_ptr();
    for j in j0..j1 {
        // SAFETY: j < k and c0 + 8 NV <= n, so the vectors lie inside row j of b.
        let bv: [__m256; NV] =
            std::array::from_fn(|v| unsafe { load_b(b, j * n + c0 + v * LANES) });
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: r0 + r < m and j < k: inside a, which is [m, k].
            let x = _mm256_set1_ps(unsafe { *ap.add((r0 + r) * k + j) });
            for (a, bv) in acc_r.iter_mut().zip(&bv) {
                *a = _mm256_fmadd_ps(x, *bv, *a);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        let row = out.row(r0 + r);
        for (v, a) in acc_r.iter().enumerate() {
            let at = c0 - start + v * LANES;
            // SAFETY: the slice is 8 floats of this row's share of the output.
            unsafe { _mm256_storeu_ps(row[at..at + LANES].as_mut_ptr(), *a) };
        }
    }
}

/// All rows for columns `c0..c0 + 8 NV` and terms `j0..j1`.
///
/// # Safety
/// As [`tile`], for every row.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn columns<const NV: usize>(
    out: &mut OutColumns,
    a: &[f32],
    b: Rows,
    kn: (usize, usize),
    c0: usize,
    terms: (usize, usize),
) {
    let m = out.m();
    let mut r = 0;
    // SAFETY (both): r + 2 <= m or r + 1 <= m; the rest is forwarded from the caller.
    while r + 2 <= m {
        unsafe { tile::<2, NV>(out, a, b, kn, (r, c0), terms) };
        r += 2;
    }
    if r < m {
        unsafe { tile::<1, NV>(out, a, b, kn, (r, c0), terms) };
    }
}

/// `y[r, c] = sum_j a[r, j] * b[j, c]` for the columns of `out` (see the module doc).
#[target_feature(enable = "avx2,fma,f16c")]
pub fn matmul_rows(out: &mut OutColumns, a: &[f32], b: Rows) {
    let (m, n) = (out.m(), out.n());
    assert!(
        m > 0 && a.len().is_multiple_of(m) && b.len() == a.len() / m * n,
        "matmul_rows: a, b and output shapes disagree"
    );
    let k = a.len() / m;
    let cols = out.cols();
    let start = cols.start;
    if k == 0 {
        for r in 0..m {
            out.row(r).fill(0.0);
        }
        return;
    }
    // Columns past the last whole vector: scalar fused multiply-adds, the same rounding.
    let vector_end = start + (cols.len() / LANES) * LANES;
    for j0 in (0..k).step_by(TERMS) {
        let terms = (j0, (j0 + TERMS).min(k));
        let mut c = start;
        while c + 4 * LANES <= vector_end {
            // SAFETY: columns c..c + 32 lie inside out.cols() (c + 32 <= vector_end), the terms
            // inside 0..k, the shapes were asserted above, and this module only runs on CPUs with
            // the features.
            unsafe { columns::<4>(out, a, b, (k, n), c, terms) };
            c += 4 * LANES;
        }
        while c + LANES <= vector_end {
            // SAFETY: as above, for columns c..c + 8.
            unsafe { columns::<1>(out, a, b, (k, n), c, terms) };
            c += LANES;
        }
    }
    let b_at = |j: usize, c: usize| match b {
        Rows::F32(s) => s[j * n + c],
        Rows::F16(s) => f16_to_f32(s[j * n + c]),
    };
    for r in 0..m {
        let ar = &a[r * k..(r + 1) * k];
        let row = out.row(r);
        for c in vector_end..cols.end {
            row[c - start] = ar
                .iter()
                .enumerate()
                .fold(0.0f32, |acc, (j, &x)| x.mul_add(b_at(j, c), acc));
        }
    }
}
