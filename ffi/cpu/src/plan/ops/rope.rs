//! `rope`: rotary position embedding in the half-split layout of every head of `x [L, H, D]`
//! with the tables `cos`, `sin` `[L, D / 2]` of its positions (the kernel's arithmetic).

use super::{same_shape, Checker, Ctx, Staging};

/// A checked rope step.
#[derive(Debug)]
pub struct Rope {
    /// Elements per position: `H * D`.
    row: usize,
    half: usize,
    /// x, cos, sin, out.
    io: Staging<3>,
}

impl Rope {
    /// Checks `x [L, H, D]` (D even), `cos` and `sin` `[L, D / 2]`, and `out` like x.
    pub fn check(
        c: &Checker,
        x: usize,
        (cos, sin): (usize, usize),
        out: usize,
    ) -> Result<Self, String> {
        let xi = c.input(x, "x")?;
        let [l, h, d] = xi.shape[..] else {
            return Err(format!("x has shape {:?}, expected [L, H, D]", xi.shape));
        };
        if d == 0 || !d.is_multiple_of(2) {
            return Err(format!(
                "x has shape {:?}, whose head size is not even",
                xi.shape
            ));
        }
        let ci = c.input(cos, "cos")?;
        let si = c.input(sin, "sin")?;
        same_shape("cos", ci, &[l, d / 2])?;
        same_shape("sin", si, &[l, d / 2])?;
        let oi = c.output(out, "out")?;
        same_shape("out", oi, &xi.shape)?;
        Ok(Rope {
            row: h * d,
            half: d / 2,
            io: Staging::new([(x, xi), (cos, ci), (sin, si)], (out, oi)),
        })
    }

    /// f32 scratch: converted x, cos, sin and output.
    pub fn scratch(&self) -> usize {
        self.io.scratch()
    }

    /// Rotates every head.
    pub fn run(&self, ctx: &mut Ctx) {
        let kernels = ctx.cpu.kernels;
        self.io.run(ctx, |y, [x, cos, sin]| {
            let positions = y.chunks_exact_mut(self.row).zip(x.chunks_exact(self.row));
            for (p, (y, x)) in positions.enumerate() {
                let table = p * self.half..(p + 1) * self.half;
                (kernels.rope)(y, x, &cos[table.clone()], &sin[table]);
            }
        });
    }
}
