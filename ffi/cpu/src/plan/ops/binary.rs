//! `binary`: `add`, `sub`, `mul`, `div` with NumPy broadcasting of `a` and `b` to `out`'s shape
//! (rank up to 5), e.g. RoPE's `[1, L, H, hd/2] * [L, hd/2]` or the mask add
//! `[Hkv, G, L, C+L] + [1, L, C+L]`.

use super::{Checker, Ctx, Staging};
use crate::plan::format::BinaryKind;
use crate::plan::shape::{broadcast, broadcast_strides, strides, Loops};

/// A checked binary step.
#[derive(Debug)]
pub struct Binary {
    kind: BinaryKind,
    /// Over out's shape; operands out, a, b.
    loops: Loops,
    /// a, b, out.
    io: Staging<2>,
}

/// `out[i] = f(a[i * sa], b[i * sb])` with each stride 0 or 1, written as four loops so that each
/// vectorizes.
#[inline(always)]
fn run_inner(
    out: &mut [f32],
    a: &[f32],
    sa: usize,
    b: &[f32],
    sb: usize,
    f: impl Fn(f32, f32) -> f32,
) {
    let n = out.len();
    match (sa, sb) {
        (1, 1) => {
            for ((o, &x), &y) in out.iter_mut().zip(&a[..n]).zip(&b[..n]) {
                *o = f(x, y);
            }
        }
        (1, 0) => {
            let y = b[0];
            for (o, &x) in out.iter_mut().zip(&a[..n]) {
                *o = f(x, y);
            }
        }
        (0, 1) => {
            let x = a[0];
            for (o, &y) in out.iter_mut().zip(&b[..n]) {
                *o = f(x, y);
            }
        }
        _ => {
            let v = f(a[0], b[0]);
            out.fill(v);
        }
    }
}

impl Binary {
    /// Checks that `a` and `b` broadcast to exactly `out`'s shape.
    pub fn check(
        c: &Checker,
        kind: BinaryKind,
        a: usize,
        b: usize,
        out: usize,
    ) -> Result<Self, String> {
        let ai = c.input(a, "a")?;
        let bi = c.input(b, "b")?;
        let oi = c.output(out, "out")?;
        let shape = broadcast(&ai.shape, &bi.shape)
            .ok_or_else(|| format!("a {:?} and b {:?} do not broadcast", ai.shape, bi.shape))?;
        if shape != oi.shape {
            return Err(format!(
                "a {:?} and b {:?} broadcast to {shape:?}, but out has shape {:?}",
                ai.shape, bi.shape, oi.shape
            ));
        }
        let loops = Loops::new(
            &oi.shape,
            &[
                strides(&oi.shape),
                broadcast_strides(&ai.shape, &oi.shape),
                broadcast_strides(&bi.shape, &oi.shape),
            ],
        );
        Ok(Binary {
            kind,
            loops,
            io: Staging::new([(a, ai), (b, bi)], (out, oi)),
        })
    }

    /// f32 scratch: converted a, b and output.
    pub fn scratch(&self) -> usize {
        self.io.scratch()
    }

    /// Computes every element.
    pub fn run(&self, ctx: &mut Ctx) {
        let inner = self.loops.inner();
        let (sa, sb) = (self.loops.inner_stride(1), self.loops.inner_stride(2));
        // The output is contiguous, so its innermost merged axis has stride 1 (or there is none);
        // operands are contiguous or broadcast, so theirs is 1 or 0.
        assert!(sa <= 1 && sb <= 1, "binary: inner strides {sa}, {sb}");
        self.io.run(ctx, |y, [a, b]| {
            self.loops.for_each_run(|[o, ia, ib]: [usize; 3]| {
                let (y, a, b) = (&mut y[o..o + inner], &a[ia..], &b[ib..]);
                match self.kind {
                    BinaryKind::Add => run_inner(y, a, sa, b, sb, |x, z| x + z),
                    BinaryKind::Sub => run_inner(y, a, sa, b, sb, |x, z| x - z),
                    BinaryKind::Mul => run_inner(y, a, sa, b, sb, |x, z| x * z),
                    BinaryKind::Div => run_inner(y, a, sa, b, sb, |x, z| x / z),
                }
            });
        });
    }
}
