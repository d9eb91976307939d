//! `reduce_mean` over some axes; the output keeps them as size 1 or drops them (its shape says
//! which). Each mean sums its elements in row-major order.

use super::{Checker, Ctx, Staging};
use crate::plan::shape::{count, strides, Loops};

/// A checked reduce_mean step.
#[derive(Debug)]
pub struct ReduceMean {
    /// Over x's shape; operands x, out (stride 0 along the reduced axes).
    loops: Loops,
    /// Elements averaged per output.
    count: usize,
    /// x, out.
    io: Staging<1>,
}

impl ReduceMean {
    /// Checks the axes and that out's shape is x's with them kept as 1 or removed.
    pub fn check(c: &Checker, x: usize, axes: &[usize], out: usize) -> Result<Self, String> {
        let xi = c.input(x, "x")?;
        let oi = c.output(out, "out")?;
        let rank = xi.shape.len();
        let mut reduced = vec![false; rank];
        for &a in axes {
            if a >= rank || std::mem::replace(&mut reduced[a], true) {
                return Err(format!(
                    "axes {axes:?} are not distinct axes of x {:?}",
                    xi.shape
                ));
            }
        }
        let kept: Vec<usize> = (0..rank)
            .map(|d| if reduced[d] { 1 } else { xi.shape[d] })
            .collect();
        let removed: Vec<usize> = (0..rank)
            .filter(|&d| !reduced[d])
            .map(|d| xi.shape[d])
            .collect();
        if oi.shape != kept && oi.shape != removed {
            return Err(format!(
                "out has shape {:?}, expected {kept:?} (axes kept) or {removed:?} (axes removed)",
                oi.shape
            ));
        }
        let out_strides: Vec<usize> = strides(&kept)
            .iter()
            .zip(&reduced)
            .map(|(&s, &r)| if r { 0 } else { s })
            .collect();
        Ok(ReduceMean {
            loops: Loops::new(&xi.shape, &[strides(&xi.shape), out_strides]),
            count: count(&xi.shape) / count(&kept).max(1),
            io: Staging::new([(x, xi)], (out, oi)),
        })
    }

    /// f32 scratch: converted x and output.
    pub fn scratch(&self) -> usize {
        self.io.scratch()
    }

    /// Sums into the output, then divides.
    pub fn run(&self, ctx: &mut Ctx) {
        let inner = self.loops.inner();
        let stride = self.loops.inner_stride(1);
        self.io.run(ctx, |y, [x]| {
            y.fill(0.0);
            self.loops.for_each_run(|[xo, yo]: [usize; 2]| {
                for (i, &v) in x[xo..xo + inner].iter().enumerate() {
                    y[yo + i * stride] += v;
                }
            });
            let count = self.count as f32;
            for v in y.iter_mut() {
                *v /= count;
            }
        });
    }
}
