//! Softmax over rows.

/// Per row of `dim`: `out = exp(x - max) / sum(exp(x - max))`. Subtracting the row maximum keeps
/// `exp` from overflowing; masked entries of -inf give exactly 0, and a row with nothing visible
/// (all -inf) gives zeros rather than 0/0.
pub fn softmax(out: &mut [f32], x: &[f32], dim: usize) {
    assert!(
        dim > 0 && x.len() == out.len() && x.len().is_multiple_of(dim),
        "softmax: lengths are not rows of dim"
    );
    for (o, x) in out.chunks_exact_mut(dim).zip(x.chunks_exact(dim)) {
        let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        if max == f32::NEG_INFINITY {
            o.fill(0.0);
            continue;
        }
        let mut sum = 0.0f32;
        for (o, &v) in o.iter_mut().zip(x) {
            *o = (v - max).exp();
            sum += *o;
        }
        let inv = 1.0 / sum;
        for o in o.iter_mut() {
            *o *= inv;
        }
    }
}
