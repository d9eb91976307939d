//! Activation quantization to int8 blocks of 32.

use std::arch::x86_64::*;

use super::simd::{hmax, hsum_i32, load};
use crate::kernels::q8_rows::Q8Layout;
use crate::weights::BLOCK;

/// Quantizes one row; same contract and same rounding as the scalar reference (the f32 products
/// are identical and `cvtps_epi32` rounds to nearest even), so the results match it exactly.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn quantize_row_q8(values: &mut [i8], scales: &mut [f32], x: &[f32], layout: Q8Layout) -> f32 {
    assert!(
        x.len().is_multiple_of(BLOCK) && values.len() == x.len() && scales.len() == x.len() / BLOCK,
        "quantize_row_q8: lengths do not match blocks of 32"
    );
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
    // After the two packs, 4-byte groups sit in the order 0 2 4 6 1 3 5 7 (in units of 4
    // elements); this dword permutation restores natural order.
    let unpack = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    // Within each 16-byte lane: even bytes to the low 8, odd bytes to the high 8.
    let even_odd = _mm256_setr_epi8(
        0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, //
        0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,
    );
    let mut row_sum = 0.0f32;
    for (b, scale) in scales.iter_mut().enumerate() {
        let base = b * BLOCK;
        let v = [0, 8, 16, 24].map(|o| load(x, base + o));
        let abs_max = v.iter().fold(_mm256_setzero_ps(), |m, &v| {
            _mm256_max_ps(m, _mm256_and_ps(v, abs_mask))
        });
        let max = hmax(abs_max);
        let inv = if max == 0.0 { 0.0 } else { 127.0 / max };
        *scale = max / 127.0;
        let inv_v = _mm256_set1_ps(inv);
        let q = v.map(|v| _mm256_cvtps_epi32(_mm256_mul_ps(v, inv_v)));
        let sum = hsum_i32(_mm256_add_epi32(
            _mm256_add_epi32(q[0], q[1]),
            _mm256_add_epi32(q[2], q[3]),
        ));
        let words = _mm256_packs_epi32(q[0], q[1]);
        let words_hi = _mm256_packs_epi32(q[2], q[3]);
        let bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(words, words_hi), unpack);
        let bytes = match layout {
            Q8Layout::Natural => bytes,
            // Evens and odds of each lane, then qwords (E0, E1, O0, O1); pairs of blocks are
            // interleaved below.
            Q8Layout::EvenOdd | Q8Layout::Pairs => {
                _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_shuffle_epi8(bytes, even_odd))
            }
        };
        let out = &mut values[base..base + BLOCK];
        // SAFETY: `out` is exactly 32 bytes, the size of the store; storeu accepts any alignment.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), bytes) };
        row_sum += *scale * sum as f32;
    }
    if layout == Q8Layout::Pairs {
        // Each full pair holds (evens 2p, odds 2p, evens 2p+1, odds 2p+1): swap the middle two.
        for pair in values.chunks_exact_mut(2 * BLOCK) {
            let (first, second) = pair.split_at_mut(BLOCK);
            first[BLOCK / 2..].swap_with_slice(&mut second[..BLOCK / 2]);
        }
    }
    row_sum
}
