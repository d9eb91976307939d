//! `rope`: rotary position embedding in the half-split layout of every head of `x [L, H, D]`
//! with the tables `cos`, `sin` `[L, D / 2]` of its positions (the kernel's arithmetic).

use super::{same_shape, staging, Checker, Ctx};
use crate::plan::convert::{to_f32, with_f32_out};

/// A checked rope step.
#[derive(Debug)]
pub struct Rope {
    x: usize,
    cos: usize,
    sin: usize,
    out: usize,
    /// Elements per position: `H * D`.
    row: usize,
    half: usize,
    staging: [usize; 4],
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
            x,
            cos,
            sin,
            out,
            row: h * d,
            half: d / 2,
            staging: [staging(xi), staging(ci), staging(si), staging(oi)],
        })
    }

    /// f32 scratch: converted x, cos, sin and output.
    pub fn scratch(&self) -> usize {
        self.staging.iter().sum()
    }

    /// Rotates every head.
    pub fn run(&self, ctx: &mut Ctx) {
        let kernels = ctx.cpu.kernels;
        let (x_buf, rest) = ctx.scratch.split_at_mut(self.staging[0]);
        let (cos_buf, rest) = rest.split_at_mut(self.staging[1]);
        let (sin_buf, out_buf) = rest.split_at_mut(self.staging[2]);
        let x = to_f32(kernels, ctx.mem.src(self.x), x_buf);
        let cos = to_f32(kernels, ctx.mem.src(self.cos), cos_buf);
        let sin = to_f32(kernels, ctx.mem.src(self.sin), sin_buf);
        // SAFETY: `out` is this step's only output and is viewed once.
        let out = unsafe { ctx.mem.dst(self.out) };
        with_f32_out(kernels, out, out_buf, |y| {
            let positions = y.chunks_exact_mut(self.row).zip(x.chunks_exact(self.row));
            for (p, (y, x)) in positions.enumerate() {
                let table = p * self.half..(p + 1) * self.half;
                (kernels.rope)(y, x, &cos[table.clone()], &sin[table]);
            }
        });
    }
}
