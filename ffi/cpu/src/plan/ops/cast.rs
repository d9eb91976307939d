//! `cast` to the output's type: float to int truncates toward zero (saturating), int to float
//! and f32 to f16 round to nearest even.

use super::{same_shape, Checker, Ctx};
use crate::plan::convert::move_run;

/// A checked cast step.
#[derive(Debug)]
pub struct Cast {
    x: usize,
    out: usize,
}

impl Cast {
    /// Checks that `out` has `x`'s shape.
    pub fn check(c: &Checker, x: usize, out: usize) -> Result<Self, String> {
        let xi = c.input(x, "x")?;
        let oi = c.output(out, "out")?;
        same_shape("out", oi, &xi.shape)?;
        Ok(Cast { x, out })
    }

    /// Converts every element.
    pub fn run(&self, ctx: &mut Ctx) {
        let src = ctx.mem.src(self.x);
        // SAFETY: `out` is this step's only output and is viewed once.
        let mut dst = unsafe { ctx.mem.dst(self.out) };
        let len = dst.len();
        move_run(ctx.cpu.kernels, src, 0, &mut dst, 0, len);
    }
}
