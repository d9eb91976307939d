//! `softmax` over the last axis: the row maximum is subtracted first, a row that is entirely
//! -inf (fully masked) gives zeros, and each row is computed the same way whatever the number of
//! rows.

use super::{same_shape, staging, Checker, Ctx};
use crate::plan::convert::{to_f32, with_f32_out};

/// A checked softmax step.
#[derive(Debug)]
pub struct Softmax {
    x: usize,
    out: usize,
    dim: usize,
    staging: [usize; 2],
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
            x,
            out,
            dim,
            staging: [staging(xi), staging(oi)],
        })
    }

    /// f32 scratch: converted x and output.
    pub fn scratch(&self) -> usize {
        self.staging.iter().sum()
    }

    /// Normalizes every row.
    pub fn run(&self, ctx: &mut Ctx) {
        let kernels = ctx.cpu.kernels;
        let (x_buf, out_buf) = ctx.scratch.split_at_mut(self.staging[0]);
        let x = to_f32(kernels, ctx.mem.src(self.x), x_buf);
        // SAFETY: `out` is this step's only output and is viewed once.
        let out = unsafe { ctx.mem.dst(self.out) };
        with_f32_out(kernels, out, out_buf, |y| (kernels.softmax)(y, x, self.dim));
    }
}
