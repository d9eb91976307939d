//! `gather`: `out[i..., :] = T[indices[i...], :]` over a dense or quantized table `[V, D]` (the
//! embedding). Only the indexed rows are read; an index outside `[0, V)` fails the run.

use super::weight::WeightRef;
use super::{same_shape, Checker, Ctx};
use crate::plan::convert::{move_run, write_f32};
use crate::plan::format::Weight;
use crate::plan::memory::Src;
use crate::plan::tensor::DType;

/// A checked gather step.
#[derive(Debug)]
pub struct Gather {
    table: WeightRef,
    indices: usize,
    out: usize,
}

impl Gather {
    /// Checks `indices` (i32, any shape) and `out [indices..., D]`.
    pub fn check(c: &Checker, table: &Weight, indices: usize, out: usize) -> Result<Self, String> {
        let table = WeightRef::check(c, table, "table")?;
        let ii = c.input(indices, "indices")?;
        if ii.dtype != DType::I32 {
            return Err(format!(
                "indices (tensor {indices}) are {}, expected i32",
                ii.describe()
            ));
        }
        let oi = c.output(out, "out")?;
        let mut want = ii.shape.clone();
        want.push(table.k);
        same_shape("out", oi, &want)?;
        Ok(Gather {
            table,
            indices,
            out,
        })
    }

    /// f32 scratch: one dequantized row.
    pub fn scratch(&self) -> usize {
        if self.table.is_packed() {
            self.table.k
        } else {
            0
        }
    }

    /// Copies (or dequantizes) one table row per index.
    pub fn run(&self, ctx: &mut Ctx) -> Result<(), String> {
        let Src::I32(indices) = ctx.mem.src(self.indices) else {
            unreachable!("checked at load: indices are i32")
        };
        let (n, k) = (self.table.n, self.table.k);
        let kernels = ctx.cpu.kernels;
        // SAFETY: `out` is this step's only output and is viewed once.
        let mut out = unsafe { ctx.mem.dst(self.out) };
        let table = ctx.mem.src(self.table.data);
        for (position, &index) in indices.iter().enumerate() {
            let row = usize::try_from(index)
                .ok()
                .filter(|&r| r < n)
                .ok_or_else(|| {
                    format!("index {index} at position {position} is outside the table's {n} rows")
                })?;
            if self.table.is_packed() {
                let buf = &mut ctx.scratch[..k];
                self.table.row_f32(ctx.mem, kernels, row, buf);
                write_f32(kernels, buf, &mut out, position * k);
            } else {
                move_run(kernels, table, row * k, &mut out, position * k, k);
            }
        }
        Ok(())
    }
}
