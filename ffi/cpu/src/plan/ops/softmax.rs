//! `softmax` over the last axis: the row maximum is subtracted first, a row that is entirely
//! -inf (fully masked) gives zeros, and each row is computed the same way whatever the number of
//! rows.

use super::{same_shape, Checker, Ctx, Staging};

/// A checked softmax step.
#[derive(Debug)]
pub struct Softmax {
    dim: usize,
    /// x, out.
    io: Staging<1>,
}

impl Softmax {
    /// Checks `x [..., D]` (D >= 1) and `out` of the same shape.
    pub fn check(c: &Checker, x: usize, out: usize) -> Result<Self, String> {
        let xi = c.input(x, "x")?;
        let oi = c.output(out, "out")?;
        let dim = xi.shape.last().copied().unwrap_or(0);
        if dim == 0 {
            return Err(format!(
                "x has shape {:?}, which has no last axis to normalize over",
                xi.shape
            ));
        }
        same_shape("out", oi, &xi.shape)?;
        Ok(Softmax {
            dim,
            io: Staging::new([(x, xi)], (out, oi)),
        })
    }

    /// f32 scratch: converted x and output.
    pub fn scratch(&self) -> usize {
        self.io.scratch()
    }

    /// Normalizes every row.
    pub fn run(&self, ctx: &mut Ctx) {
        let kernels = ctx.cpu.kernels;
        self.io.run(ctx, |y, [x]| (kernels.softmax)(y, x, self.dim));
    }
}
