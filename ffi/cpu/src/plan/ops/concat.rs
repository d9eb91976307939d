//! `concat` along an axis: each input is a run of `size(axis) * inner` elements repeated for
//! every index of the outer axes (the KV cache concat copies whole heads at a time).

use super::{Checker, Ctx};
use crate::plan::convert::move_run;
use crate::plan::shape::count;

/// A checked concat step.
#[derive(Debug)]
pub struct Concat {
    /// Per input: tensor, elements per outer index, offset inside out's outer block.
    parts: Vec<(usize, usize, usize)>,
    out: usize,
    /// Product of the axes before `axis`.
    outer: usize,
    /// Elements of out per outer index.
    block: usize,
}

impl Concat {
    /// Checks that the inputs agree with out on every axis but `axis`, where they add up.
    pub fn check(c: &Checker, inputs: &[usize], axis: usize, out: usize) -> Result<Self, String> {
        let oi = c.output(out, "out")?;
        let rank = oi.shape.len();
        if axis >= rank {
            return Err(format!("axis {axis} is not an axis of out {:?}", oi.shape));
        }
        if inputs.is_empty() {
            return Err("there are no inputs".to_string());
        }
        let inner = count(&oi.shape[axis + 1..]);
        let mut parts = Vec::with_capacity(inputs.len());
        let mut along = 0;
        for (i, &t) in inputs.iter().enumerate() {
            let ti = c.input(t, &format!("input {i}"))?;
            let same_elsewhere = ti.shape.len() == rank
                && (0..rank).all(|d| d == axis || ti.shape[d] == oi.shape[d]);
            if !same_elsewhere {
                return Err(format!(
                    "input {i} (tensor {t}) has shape {:?}, which differs from out {:?} on an \
                     axis other than {axis}",
                    ti.shape, oi.shape
                ));
            }
            parts.push((t, ti.shape[axis] * inner, along * inner));
            along += ti.shape[axis];
        }
        if along != oi.shape[axis] {
            return Err(format!(
                "the inputs add up to {along} along axis {axis}, out has {}",
                oi.shape[axis]
            ));
        }
        Ok(Concat {
            parts,
            out,
            outer: count(&oi.shape[..axis]),
            block: oi.shape[axis] * inner,
        })
    }

    /// Copies every input into place.
    pub fn run(&self, ctx: &mut Ctx) {
        let kernels = ctx.cpu.kernels;
        // SAFETY: `out` is this step's only output and is viewed once.
        let mut dst = unsafe { ctx.mem.dst(self.out) };
        for &(t, run, offset) in &self.parts {
            let src = ctx.mem.src(t);
            for o in 0..self.outer {
                move_run(
                    kernels,
                    src,
                    o * run,
                    &mut dst,
                    o * self.block + offset,
                    run,
                );
            }
        }
    }
}
