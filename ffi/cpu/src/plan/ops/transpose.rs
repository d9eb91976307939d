//! `transpose`: `out.shape[i] = x.shape[perm[i]]`, a strided copy (elements keep their bits when
//! the types match). Axes that stay contiguous are merged, so attention's head/sequence swaps
//! copy whole `hd`-long runs.

use super::{same_shape, Checker, Ctx};
use crate::plan::convert::{move_one, move_run};
use crate::plan::shape::{strides, Loops};

/// A checked transpose step.
#[derive(Debug)]
pub struct Transpose {
    x: usize,
    out: usize,
    /// Over out's shape; operands out, x.
    loops: Loops,
}

impl Transpose {
    /// Checks that `perm` is a permutation of x's axes and out's shape is x's permuted.
    pub fn check(c: &Checker, x: usize, perm: &[usize], out: usize) -> Result<Self, String> {
        let xi = c.input(x, "x")?;
        let oi = c.output(out, "out")?;
        let rank = xi.shape.len();
        let mut seen = vec![false; rank];
        for &p in perm {
            if p >= rank || std::mem::replace(&mut seen[p], true) {
                return Err(format!(
                    "perm {perm:?} is not a permutation of the {rank} axes of x {:?}",
                    xi.shape
                ));
            }
        }
        if perm.len() != rank {
            return Err(format!(
                "perm {perm:?} has {} entries, x {:?} has {rank} axes",
                perm.len(),
                xi.shape
            ));
        }
        let want: Vec<usize> = perm.iter().map(|&p| xi.shape[p]).collect();
        same_shape("out", oi, &want)?;
        let own = strides(&xi.shape);
        let permuted = perm.iter().map(|&p| own[p]).collect();
        Ok(Transpose {
            x,
            out,
            loops: Loops::new(&oi.shape, &[strides(&oi.shape), permuted]),
        })
    }

    /// Copies every element to its new place.
    pub fn run(&self, ctx: &mut Ctx) {
        let kernels = ctx.cpu.kernels;
        let src = ctx.mem.src(self.x);
        // SAFETY: `out` is this step's only output and is viewed once.
        let mut dst = unsafe { ctx.mem.dst(self.out) };
        let inner = self.loops.inner();
        let stride = self.loops.inner_stride(1);
        self.loops.for_each_run(|[o, s]: [usize; 2]| {
            if stride == 1 {
                move_run(kernels, src, s, &mut dst, o, inner);
            } else {
                for i in 0..inner {
                    move_one(&src, s + i * stride, &mut dst, o + i);
                }
            }
        });
    }
}
