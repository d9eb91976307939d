//! Symmetric weight quantization and int4 packing, as the exporter does it (docs/design.md).
//!
//! The runtime never quantizes weights (the bundle holds them packed); tests and benchmarks use
//! this to build packed matrices from f32 data.

use crate::weights::BLOCK;

/// `[n, k]` weights quantized to `bits` with one scale per group of `group` inputs
/// (`group == k` is per output channel): `scale = max|w| / qmax`,
/// `q = clamp(round(w / scale), qmin, qmax)`. Returns `(q, scales)` with scales `[n, k / group]`.
pub fn quantize_symmetric(
    w: &[f32],
    n: usize,
    k: usize,
    bits: u32,
    group: usize,
) -> (Vec<i8>, Vec<f32>) {
    assert!(
        (2..=8).contains(&bits),
        "quantize_symmetric: bits must be in 2..=8"
    );
    assert!(
        w.len() == n * k && group > 0 && k.is_multiple_of(group),
        "quantize_symmetric: bad shape"
    );
    let qmax = ((1i32 << (bits - 1)) - 1) as f32;
    let qmin = -(1i32 << (bits - 1)) as f32;
    let mut q = Vec::with_capacity(n * k);
    let mut scales = Vec::with_capacity(n * k / group);
    for chunk in w.chunks_exact(group) {
        let max = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = max / qmax;
        scales.push(scale);
        for &v in chunk {
            let r = if scale == 0.0 {
                0.0
            } else {
                (v / scale).round()
            };
            q.push(r.clamp(qmin, qmax) as i8);
        }
    }
    (q, scales)
}

/// Packs int4 values (each in [-8, 7]) two per byte, LSB-first: element `2b` in the low nibble of
/// byte `b`, element `2b + 1` in the high nibble. An odd count leaves the last high nibble zero.
pub fn pack_int4(values: &[i8]) -> Vec<u8> {
    values
        .chunks(2)
        .map(|pair| {
            let lo = pair[0];
            let hi = pair.get(1).copied().unwrap_or(0);
            assert!(
                (-8..=7).contains(&lo) && (-8..=7).contains(&hi),
                "pack_int4: value out of [-8, 7]"
            );
            (lo as u8 & 0x0F) | ((hi as u8 & 0x0F) << 4)
        })
        .collect()
}

/// Per-output-channel int4 (`c4w`): `(packed, scales [n])`.
pub fn int4_per_channel(w: &[f32], n: usize, k: usize) -> (Vec<u8>, Vec<f32>) {
    let (q, s) = quantize_symmetric(w, n, k, 4, k);
    (pack_int4(&q), s)
}

/// Per-block-of-32 int4 (`b4w`): `(packed, scales [n, k/32])`.
pub fn int4_block32(w: &[f32], n: usize, k: usize) -> (Vec<u8>, Vec<f32>) {
    let (q, s) = quantize_symmetric(w, n, k, 4, BLOCK);
    (pack_int4(&q), s)
}

/// Per-block-of-32 int8 (the layout of GGUF's Q8_0): `(data, scales [n, k/32])`.
pub fn int8_block32(w: &[f32], n: usize, k: usize) -> (Vec<i8>, Vec<f32>) {
    quantize_symmetric(w, n, k, 8, BLOCK)
}

/// Per-output-channel int8 (`c8w`): `(data, scales [n])`.
pub fn int8_per_channel(w: &[f32], n: usize, k: usize) -> (Vec<i8>, Vec<f32>) {
    quantize_symmetric(w, n, k, 8, k)
}
