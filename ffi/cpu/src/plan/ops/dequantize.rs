//! `dequantize`: a weight operand written out as a dense tensor `[N, K]`, for ops that read a
//! weight some other way than `linear` and `gather` do.

use super::weight::WeightRef;
use super::{same_shape, Checker, Ctx};
use crate::plan::convert::{move_run, write_f32};
use crate::plan::format::Weight;

/// A checked dequantize step.
#[derive(Debug)]
pub struct Dequantize {
    w: WeightRef,
    out: usize,
}

impl Dequantize {
    /// Checks that `out` has the data's shape `[N, K]`.
    pub fn check(c: &Checker, weight: &Weight, out: usize) -> Result<Self, String> {
        let w = WeightRef::check(c, weight, "weight")?;
        let oi = c.output(out, "out")?;
        same_shape("out", oi, &[w.n, w.k])?;
        Ok(Dequantize { w, out })
    }

    /// f32 scratch: one dequantized row.
    pub fn scratch(&self) -> usize {
        if self.w.is_packed() {
            self.w.k
        } else {
            0
        }
    }

    /// Writes every row.
    pub fn run(&self, ctx: &mut Ctx) {
        let kernels = ctx.cpu.kernels;
        let k = self.w.k;
        // SAFETY: `out` is this step's only output and is viewed once.
        let mut out = unsafe { ctx.mem.dst(self.out) };
        if !self.w.is_packed() {
            return move_run(
                kernels,
                ctx.mem.src(self.w.data),
                0,
                &mut out,
                0,
                self.w.n * k,
            );
        }
        for row in 0..self.w.n {
            let buf = &mut ctx.scratch[..k];
            self.w.row_f32(ctx.mem, kernels, row, buf);
            write_f32(kernels, buf, &mut out, row * k);
        }
    }
}
