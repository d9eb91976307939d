//! Rotary position embedding on adjacent pairs.

/// Per row of `2 * cos.len()`: `(x0, x1) -> (x0 cos - x1 sin, x0 sin + x1 cos)` for each pair
/// `(x[2i], x[2i+1])` with `cos[i]`, `sin[i]`, as Meta's reference multiplies by `e^(i theta)`.
pub fn rope(out: &mut [f32], x: &[f32], cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    assert!(
        half > 0 && sin.len() == half && x.len() == out.len() && x.len().is_multiple_of(2 * half),
        "rope: lengths are not rows of 2 * cos.len()"
    );
    for (o, x) in out.chunks_exact_mut(2 * half).zip(x.chunks_exact(2 * half)) {
        for i in 0..half {
            let (x0, x1) = (x[2 * i], x[2 * i + 1]);
            o[2 * i] = x0 * cos[i] - x1 * sin[i];
            o[2 * i + 1] = x0 * sin[i] + x1 * cos[i];
        }
    }
}
