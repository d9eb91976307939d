//! `split` along an axis into consecutive parts sized by the outputs' shapes (the inverse of
//! [`super::concat`]).

use super::{Checker, Ctx};
use crate::plan::convert::move_run;
use crate::plan::shape::count;

/// A checked split step.
#[derive(Debug)]
pub struct Split {
    x: usize,
    /// Per output: tensor, elements per outer index, offset inside x's outer block.
    parts: Vec<(usize, usize, usize)>,
    outer: usize,
    block: usize,
}

impl Split {
    /// Checks that the outputs agree with x on every axis but `axis`, where they add up.
    pub fn check(c: &Checker, x: usize, axis: usize, outs: &[usize]) -> Result<Self, String> {
        let xi = c.input(x, "x")?;
        let rank = xi.shape.len();
        if axis >= rank {
            return Err(format!("axis {axis} is not an axis of x {:?}", xi.shape));
        }
        if outs.is_empty() {
            return Err("there are no outputs".to_string());
        }
        let inner = count(&xi.shape[axis + 1..]);
        let mut parts = Vec::with_capacity(outs.len());
        let mut along = 0;
        for (i, &t) in outs.iter().enumerate() {
            let ti = c.output(t, &format!("output {i}"))?;
            let same_elsewhere = ti.shape.len() == rank
                && (0..rank).all(|d| d == axis || ti.shape[d] == xi.shape[d]);
            if !same_elsewhere {
                return Err(format!(
                    "output {i} (tensor {t}) has shape {:?}, which differs from x {:?} on an \
                     axis other than {axis}",
                    ti.shape, xi.shape
                ));
            }
            parts.push((t, ti.shape[axis] * inner, along * inner));
            along += ti.shape[axis];
        }
        if along != xi.shape[axis] {
            return Err(format!(
                "the outputs add up to {along} along axis {axis}, x has {}",
                xi.shape[axis]
            ));
        }
        Ok(Split {
            x,
            parts,
            outer: count(&xi.shape[..axis]),
            block: xi.shape[axis] * inner,
        })
    }

    /// Copies each part out.
    pub fn run(&self, ctx: &mut Ctx) {
        let kernels = ctx.cpu.kernels;
        let src = ctx.mem.src(self.x);
        for &(t, run, offset) in &self.parts {
            // SAFETY: each output of this step is viewed once (the parts are distinct tensors,
            // which the load-time check keeps from overlapping).
            let mut dst = unsafe { ctx.mem.dst(t) };
            for o in 0..self.outer {
                move_run(
                    kernels,
                    src,
                    o * self.block + offset,
                    &mut dst,
                    o * run,
                    run,
                );
            }
        }
    }
}
