//! Rotary position embedding in the half-split layout.

/// Per row of `2 * cos.len()`: the halves `x1 = x[..h]`, `x2 = x[h..]` become
/// `x1 cos - x2 sin` and `x2 cos + x1 sin`, the layout the exporter writes (export/graph/rope.ts,
/// its wq and wk rows reordered so that each pair of a head is `(x1[i], x2[i])`). Products and
/// the sum are rounded separately, as the exported graph's mul, sub and add steps are.
pub fn rope(out: &mut [f32], x: &[f32], cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    assert!(
        half > 0 && sin.len() == half && x.len() == out.len() && x.len().is_multiple_of(2 * half),
        "rope: lengths are not rows of 2 * cos.len()"
    );
    for (o, x) in out.chunks_exact_mut(2 * half).zip(x.chunks_exact(2 * half)) {
        let (x1, x2) = x.split_at(half);
        let (o1, o2) = o.split_at_mut(half);
        for i in 0..half {
            o1[i] = x1[i] * cos[i] - x2[i] * sin[i];
            o2[i] = x2[i] * cos[i] + x1[i] * sin[i];
        }
    }
}
