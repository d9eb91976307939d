//! Row normalizations: RMS norm (Llama) and layer norm.

/// Per row of `weight.len()`: `out = x / sqrt(mean(x^2) + eps) * weight`.
pub fn rms_norm(out: &mut [f32], x: &[f32], weight: &[f32], eps: f32) {
    let dim = weight.len();
    assert!(
        dim > 0 && x.len() == out.len() && x.len().is_multiple_of(dim),
        "rms_norm: lengths are not rows of weight.len()"
    );
    for (o, x) in out.chunks_exact_mut(dim).zip(x.chunks_exact(dim)) {
        let sum_sq: f32 = x.iter().map(|v| v * v).sum();
        let inv = 1.0 / (sum_sq / dim as f32 + eps).sqrt();
        for ((o, &v), &w) in o.iter_mut().zip(x).zip(weight) {
            *o = v * inv * w;
        }
    }
}

/// Per row of `dim`: `out = (x - mean) / sqrt(var + eps) * gamma + beta`, biased variance,
/// two passes (mean first) so rows far from zero keep their precision.
pub fn layer_norm(
    out: &mut [f32],
    x: &[f32],
    dim: usize,
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
    eps: f32,
) {
    assert!(
        dim > 0 && x.len() == out.len() && x.len().is_multiple_of(dim),
        "layer_norm: lengths are not rows of dim"
    );
    assert!(
        gamma.is_none_or(|g| g.len() == dim) && beta.is_none_or(|b| b.len() == dim),
        "layer_norm: gamma or beta length is not dim"
    );
    for (o, x) in out.chunks_exact_mut(dim).zip(x.chunks_exact(dim)) {
        let mean = x.iter().sum::<f32>() / dim as f32;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / dim as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for (j, (o, &v)) in o.iter_mut().zip(x).enumerate() {
            let g = gamma.map_or(1.0, |g| g[j]);
            let b = beta.map_or(0.0, |b| b[j]);
            *o = (v - mean) * inv * g + b;
        }
    }
}
