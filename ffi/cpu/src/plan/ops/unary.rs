//! `unary`: `silu`, `sigmoid` (vectorized kernels) and `rsqrt` (`1 / sqrt(x + eps)`).

use super::{same_shape, staging, Checker, Ctx};
use crate::plan::convert::{to_f32, with_f32_out};
use crate::plan::format::UnaryKind;

/// A checked unary step.
#[derive(Debug)]
pub struct Unary {
    kind: UnaryKind,
    eps: f32,
    x: usize,
    out: usize,
    staging: [usize; 2],
}

impl Unary {
    /// Checks that `out` has `x`'s shape.
    pub fn check(
        c: &Checker,
        kind: UnaryKind,
        eps: f64,
        x: usize,
        out: usize,
    ) -> Result<Self, String> {
        let xi = c.input(x, "x")?;
        let oi = c.output(out, "out")?;
        same_shape("out", oi, &xi.shape)?;
        Ok(Unary {
            kind,
            eps: eps as f32,
            x,
            out,
            staging: [staging(xi), staging(oi)],
        })
    }

    /// f32 scratch: converted x and output.
    pub fn scratch(&self) -> usize {
        self.staging.iter().sum()
    }

    /// Computes every element.
    pub fn run(&self, ctx: &mut Ctx) {
        let kernels = ctx.cpu.kernels;
        let (x_buf, out_buf) = ctx.scratch.split_at_mut(self.staging[0]);
        let x = to_f32(kernels, ctx.mem.src(self.x), x_buf);
        // SAFETY: `out` is this step's only output and is viewed once.
        let out = unsafe { ctx.mem.dst(self.out) };
        with_f32_out(kernels, out, out_buf, |y| match self.kind {
            UnaryKind::Silu => (kernels.silu)(y, x),
            UnaryKind::Sigmoid => (kernels.sigmoid)(y, x),
            UnaryKind::Rsqrt => {
                for (o, &v) in y.iter_mut().zip(x) {
                    *o = 1.0 / (v + self.eps).sqrt();
                }
            }
        });
    }
}
