//! `copy`: the same elements into a tensor of another shape (a reshape whose result must land in
//! a caller's output buffer).

use super::{Checker, Ctx};
use crate::plan::convert::move_run;

/// A checked copy step.
#[derive(Debug)]
pub struct Copy {
    x: usize,
    out: usize,
}

impl Copy {
    /// Checks that x and out have the same element count and type.
    pub fn check(c: &Checker, x: usize, out: usize) -> Result<Self, String> {
        let xi = c.input(x, "x")?;
        let oi = c.output(out, "out")?;
        if xi.len != oi.len || xi.dtype != oi.dtype {
            return Err(format!(
                "x is {} and out is {}: a copy keeps the element count and type",
                xi.describe(),
                oi.describe()
            ));
        }
        Ok(Copy { x, out })
    }

    /// Copies the elements.
    pub fn run(&self, ctx: &mut Ctx) {
        let src = ctx.mem.src(self.x);
        // SAFETY: `out` is this step's only output and is viewed once.
        let mut dst = unsafe { ctx.mem.dst(self.out) };
        let len = dst.len();
        move_run(ctx.cpu.kernels, src, 0, &mut dst, 0, len);
    }
}
