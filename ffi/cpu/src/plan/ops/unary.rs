//! `unary`: `silu`, `sigmoid` (vectorized kernels) and `rsqrt` (`1 / sqrt(x + eps)`).

use super::{same_shape, Checker, Ctx, Staging};
use crate::plan::format::UnaryKind;

/// A checked unary step.
#[derive(Debug)]
pub struct Unary {
    kind: UnaryKind,
    eps: f32,
    /// x, out.
    io: Staging<1>,
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
            io: Staging::new([(x, xi)], (out, oi)),
        })
    }

    /// f32 scratch: converted x and output.
    pub fn scratch(&self) -> usize {
        self.io.scratch()
    }

    /// Computes every element.
    pub fn run(&self, ctx: &mut Ctx) {
        let kernels = ctx.cpu.kernels;
        self.io.run(ctx, |y, [x]| match self.kind {
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
