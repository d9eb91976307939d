//! Element-wise kernels: residual add, the SwiGLU gate and the activations.

/// `out[i] = a[i] + b[i]`.
pub fn add(out: &mut [f32], a: &[f32], b: &[f32]) {
    assert!(
        a.len() == out.len() && b.len() == out.len(),
        "add: length mismatch"
    );
    for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
        *o = a + b;
    }
}

/// `out[i] = a[i] / (1 + exp(-a[i])) * b[i]`.
pub fn silu_mul(out: &mut [f32], a: &[f32], b: &[f32]) {
    assert!(
        a.len() == out.len() && b.len() == out.len(),
        "silu_mul: length mismatch"
    );
    for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
        *o = a / (1.0 + (-a).exp()) * b;
    }
}

/// `out[i] = x[i] / (1 + exp(-x[i]))`.
pub fn silu(out: &mut [f32], x: &[f32]) {
    assert_eq!(x.len(), out.len(), "silu: length mismatch");
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v / (1.0 + (-v).exp());
    }
}

/// `out[i] = 1 / (1 + exp(-x[i]))`.
pub fn sigmoid(out: &mut [f32], x: &[f32]) {
    assert_eq!(x.len(), out.len(), "sigmoid: length mismatch");
    for (o, &v) in out.iter_mut().zip(x) {
        *o = 1.0 / (1.0 + (-v).exp());
    }
}
