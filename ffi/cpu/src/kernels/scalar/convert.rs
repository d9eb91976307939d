//! f16 <-> f32 buffer conversion.

/// `out[i] = f32(x[i])`; exact.
pub fn f16_to_f32(out: &mut [f32], x: &[u16]) {
    assert_eq!(out.len(), x.len(), "f16_to_f32: length mismatch");
    for (o, &h) in out.iter_mut().zip(x) {
        *o = half::f16::from_bits(h).to_f32();
    }
}

/// `out[i] = f16(x[i])`, rounding to nearest even (as F16C with rounding mode 0).
pub fn f32_to_f16(out: &mut [u16], x: &[f32]) {
    assert_eq!(out.len(), x.len(), "f32_to_f16: length mismatch");
    for (o, &v) in out.iter_mut().zip(x) {
        *o = half::f16::from_f32(v).to_bits();
    }
}
