//! Transposing conversion of a matrix to f32, 8 x 8 blocks at a time.

use std::arch::x86_64::*;

use super::simd::{f16_to_f32, LANES};
use crate::kernels::Rows;

/// The 8 x 8 block of `v` (row `i` in `v[i]`) transposed in registers.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn transpose8(v: [__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(v[0], v[1]);
    let t1 = _mm256_unpackhi_ps(v[0], v[1]);
    let t2 = _mm256_unpacklo_ps(v[2], v[3]);
    let t3 = _mm256_unpackhi_ps(v[2], v[3]);
    let t4 = _mm256_unpacklo_ps(v[4], v[5]);
    let t5 = _mm256_unpackhi_ps(v[4], v[5]);
    let t6 = _mm256_unpacklo_ps(v[6], v[7]);
    let t7 = _mm256_unpackhi_ps(v[6], v[7]);
    let u0 = _mm256_shuffle_ps::<0b01_00_01_00>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0b11_10_11_10>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0b01_00_01_00>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0b11_10_11_10>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0b01_00_01_00>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0b11_10_11_10>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0b01_00_01_00>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0b11_10_11_10>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}

/// `out[c * stride + r] = x[r, c]` for the `[rows, width]` matrix `x` (see `Kernels::transpose`).
#[target_feature(enable = "avx2,fma,f16c")]
pub fn transpose(out: &mut [f32], stride: usize, x: Rows, width: usize) {
    let rows = crate::kernels::transposed_rows(out.len(), stride, x.len(), width);
    let (row_blocks, col_blocks) = (rows / LANES * LANES, width / LANES * LANES);
    for r0 in (0..row_blocks).step_by(LANES) {
        for c0 in (0..col_blocks).step_by(LANES) {
            let block: [__m256; 8] = std::array::from_fn(|i| {
                let at = (r0 + i) * width + c0;
                // SAFETY: r0 + i < rows and c0 + 8 <= width, so the 8 elements at `at` lie inside
                // x (rows * width elements); loadu has no alignment need.
                unsafe {
                    match x {
                        Rows::F32(s) => _mm256_loadu_ps(s.as_ptr().add(at)),
                        Rows::F16(s) => _mm256_cvtph_ps(_mm_loadu_si128(s.as_ptr().add(at).cast())),
                    }
                }
            });
            for (i, v) in transpose8(block).into_iter().enumerate() {
                let at = (c0 + i) * stride + r0;
                super::simd::store(out, at, v);
            }
        }
    }
    let get = |i: usize| match x {
        Rows::F32(s) => s[i],
        Rows::F16(s) => f16_to_f32(s[i]),
    };
    for r in 0..rows {
        let first = if r < row_blocks { col_blocks } else { 0 };
        for c in first..width {
            out[c * stride + r] = get(r * width + c);
        }
    }
}
