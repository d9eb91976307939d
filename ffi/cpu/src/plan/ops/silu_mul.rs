//! `silu_mul`: SwiGLU's gate, `out = silu(gate) * up` element by element (the kernel's
//! arithmetic), in one pass instead of a `silu` step and a `mul` step.

use super::{same_shape, staging, Checker, Ctx};
use crate::plan::convert::{to_f32, with_f32_out};

/// A checked silu_mul step.
#[derive(Debug)]
pub struct SiluMul {
    gate: usize,
    up: usize,
    out: usize,
    staging: [usize; 3],
}

impl SiluMul {
    /// Checks that gate, up and out have one shape.
    pub fn check(c: &Checker, gate: usize, up: usize, out: usize) -> Result<Self, String> {
        let gi = c.input(gate, "gate")?;
        let ui = c.input(up, "up")?;
        let oi = c.output(out, "out")?;
        same_shape("up", ui, &gi.shape)?;
        same_shape("out", oi, &gi.shape)?;
        Ok(SiluMul {
            gate,
            up,
            out,
            staging: [staging(gi), staging(ui), staging(oi)],
        })
    }

    /// f32 scratch: converted gate, up and output.
    pub fn scratch(&self) -> usize {
        self.staging.iter().sum()
    }

    /// Computes every element.
    pub fn run(&self, ctx: &mut Ctx) {
        let kernels = ctx.cpu.kernels;
        let (gate_buf, rest) = ctx.scratch.split_at_mut(self.staging[0]);
        let (up_buf, out_buf) = rest.split_at_mut(self.staging[1]);
        let gate = to_f32(kernels, ctx.mem.src(self.gate), gate_buf);
        let up = to_f32(kernels, ctx.mem.src(self.up), up_buf);
        // SAFETY: `out` is this step's only output and is viewed once.
        let out = unsafe { ctx.mem.dst(self.out) };
        with_f32_out(kernels, out, out_buf, |y| (kernels.silu_mul)(y, gate, up));
    }
}
