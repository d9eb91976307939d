//! `rms_norm` and `layer_norm`: per row of the last axis, with the kernels' fixed summation
//! order (the same for every row, whatever the number of rows).

use super::{same_shape, staging, Checker, Ctx, Staging};
use crate::plan::convert::{to_f32, with_f32_out};
use crate::plan::tensor::TensorInfo;

/// Checks `x [..., D]` (D >= 1) and `out` of the same shape; returns D.
fn rows<'t>(
    c: &Checker<'t>,
    x: usize,
    out: usize,
) -> Result<(usize, &'t TensorInfo, &'t TensorInfo), String> {
    let xi = c.input(x, "x")?;
    let oi = c.output(out, "out")?;
    let dim = xi.shape.last().copied().unwrap_or(0);
    if dim == 0 {
        return Err(format!(
            "x has shape {:?}, which has no rows to normalize",
            xi.shape
        ));
    }
    same_shape("out", oi, &xi.shape)?;
    Ok((dim, xi, oi))
}

/// Checks a per-channel parameter `[D]`.
fn channel<'t>(
    c: &Checker<'t>,
    t: usize,
    role: &str,
    dim: usize,
) -> Result<&'t TensorInfo, String> {
    let info = c.input(t, role)?;
    if info.len != dim {
        return Err(format!(
            "{role} has shape {:?}, expected {dim} elements",
            info.shape
        ));
    }
    Ok(info)
}

/// A checked rms_norm step: `x / sqrt(mean(x^2) + eps) * gain`.
#[derive(Debug)]
pub struct RmsNorm {
    eps: f32,
    /// x, gain, out.
    io: Staging<2>,
}

impl RmsNorm {
    /// Checks `x [..., D]`, `gain [D]` and `out` like x.
    pub fn check(c: &Checker, x: usize, gain: usize, eps: f64, out: usize) -> Result<Self, String> {
        let (dim, xi, oi) = rows(c, x, out)?;
        let gi = channel(c, gain, "gain", dim)?;
        Ok(RmsNorm {
            eps: eps as f32,
            io: Staging::new([(x, xi), (gain, gi)], (out, oi)),
        })
    }

    /// f32 scratch: converted x, gain and output.
    pub fn scratch(&self) -> usize {
        self.io.scratch()
    }

    /// Normalizes every row.
    pub fn run(&self, ctx: &mut Ctx) {
        let kernels = ctx.cpu.kernels;
        self.io
            .run(ctx, |y, [x, gain]| (kernels.rms_norm)(y, x, gain, self.eps));
    }
}

/// A checked layer_norm step: `(x - mean) / sqrt(var + eps) * gamma + beta`.
#[derive(Debug)]
pub struct LayerNorm {
    x: usize,
    gamma: Option<usize>,
    beta: Option<usize>,
    eps: f32,
    out: usize,
    dim: usize,
    staging: [usize; 4],
}

impl LayerNorm {
    /// Checks `x [..., D]`, optional `gamma [D]` and `beta [D]`, and `out` like x.
    pub fn check(
        c: &Checker,
        x: usize,
        gamma: Option<usize>,
        beta: Option<usize>,
        eps: f64,
        out: usize,
    ) -> Result<Self, String> {
        let (dim, xi, oi) = rows(c, x, out)?;
        let gamma_staging = gamma.map_or(Ok(0), |g| channel(c, g, "gamma", dim).map(staging))?;
        let beta_staging = beta.map_or(Ok(0), |b| channel(c, b, "beta", dim).map(staging))?;
        Ok(LayerNorm {
            x,
            gamma,
            beta,
            eps: eps as f32,
            out,
            dim,
            staging: [staging(xi), gamma_staging, beta_staging, staging(oi)],
        })
    }

    /// f32 scratch: converted x, gamma, beta and output.
    pub fn scratch(&self) -> usize {
        self.staging.iter().sum()
    }

    /// Normalizes every row.
    pub fn run(&self, ctx: &mut Ctx) {
        let kernels = ctx.cpu.kernels;
        let (x_buf, rest) = ctx.scratch.split_at_mut(self.staging[0]);
        let (gamma_buf, rest) = rest.split_at_mut(self.staging[1]);
        let (beta_buf, out_buf) = rest.split_at_mut(self.staging[2]);
        let x = to_f32(kernels, ctx.mem.src(self.x), x_buf);
        let gamma = self
            .gamma
            .map(|g| to_f32(kernels, ctx.mem.src(g), gamma_buf));
        let beta = self.beta.map(|b| to_f32(kernels, ctx.mem.src(b), beta_buf));
        // SAFETY: `out` is this step's only output and is viewed once.
        let out = unsafe { ctx.mem.dst(self.out) };
        with_f32_out(kernels, out, out_buf, |y| {
            (kernels.layer_norm)(y, x, self.dim, gamma, beta, self.eps)
        });
    }
}
