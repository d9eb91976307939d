//! `silu_mul`: SwiGLU's gate, `out = silu(gate) * up` element by element (the kernel's
//! arithmetic), in one pass instead of a `silu` step and a `mul` step.

use super::{same_shape, Checker, Ctx, Staging};

/// A checked silu_mul step.
#[derive(Debug)]
pub struct SiluMul {
    /// gate, up, out.
    io: Staging<2>,
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
            io: Staging::new([(gate, gi), (up, ui)], (out, oi)),
        })
    }

    /// f32 scratch: converted gate, up and output.
    pub fn scratch(&self) -> usize {
        self.io.scratch()
    }

    /// Computes every element.
    pub fn run(&self, ctx: &mut Ctx) {
        let kernels = ctx.cpu.kernels;
        self.io
            .run(ctx, |y, [gate, up]| (kernels.silu_mul)(y, gate, up));
    }
}
