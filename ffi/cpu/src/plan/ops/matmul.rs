//! `matmul`: batched `a @ b` after swapping the last two axes of the flagged operands, batch
//! axes broadcast (NumPy). B is read where it lies, f16 or f32, never packed:
//!
//! - `transposeB` (b stored `[N, K]`, attention's `q @ K^T`): B is the "weights" of the dense
//!   linear kernel, one dot product per output.
//! - otherwise (b stored `[K, N]`, attention's `probs @ V`): [`crate::matmul::matmul_rows`]
//!   accumulates `a[r, j] * b[j, :]` over `j`.
//!
//! Both keep one summation order per output, so a row's result is a function of that row alone
//! (whatever the number of rows or threads). Grouped-query attention,
//! `q [Hkv, G, L, hd] @ K [Hkv, 1, C+L, hd]^T`, folds `G` into the rows: all `G * L` query rows
//! of a KV head run against its K rows while they are in cache. A is converted to f32 (or
//! transposed) per batch when it is not f32 `[M, K]` already.

use super::{staging, Checker, Ctx};
use crate::kernels::Rows;
use crate::linear::{linear_reusing, ActivationPath, LinearOptions};
use crate::matmul::matmul_rows;
use crate::plan::convert::{read_f32, with_f32_out};
use crate::plan::memory::Src;
use crate::plan::shape::{broadcast, broadcast_strides, count};
use crate::plan::tensor::TensorInfo;
use crate::weights::{WeightData, Weights};

/// A checked matmul step.
#[derive(Debug)]
pub struct Matmul {
    a: usize,
    b: usize,
    out: usize,
    transpose_a: bool,
    transpose_b: bool,
    /// Rows of one product after folding batch axes into them.
    m: usize,
    /// Rows of one product before folding (a's own matrix rows).
    m_own: usize,
    k: usize,
    n: usize,
    /// Sizes of the batch axes left after folding.
    outer: Vec<usize>,
    /// Element strides of a and b along `outer` (0 where broadcast).
    a_strides: Vec<usize>,
    b_strides: Vec<usize>,
    /// f32 scratch: packed A, converted B (i32 only), one row for transposing A, output.
    staging: [usize; 4],
}

/// The two matrix axes of an operand, `(rows, cols)` as stored.
fn matrix(t: &TensorInfo, role: &str) -> Result<(usize, usize), String> {
    match t.shape[..] {
        [.., r, c] => Ok((r, c)),
        _ => Err(format!(
            "{role} has shape {:?}, expected rank 2 or more",
            t.shape
        )),
    }
}

/// Writes `src[from..]`, a row-major `[rows, cols]` matrix, transposed into `dst [cols, rows]`
/// as f32, one converted row at a time through `row`.
fn pack_transposed(
    kernels: &crate::kernels::Kernels,
    src: Src,
    from: usize,
    (rows, cols): (usize, usize),
    dst: &mut [f32],
    row: &mut [f32],
) {
    let row = &mut row[..cols];
    for r in 0..rows {
        read_f32(kernels, src, from + r * cols, row);
        for (c, &v) in row.iter().enumerate() {
            dst[c * rows + r] = v;
        }
    }
}

impl Matmul {
    /// Checks inner sizes, batch broadcasting and the output shape, and plans the folding.
    pub fn check(
        c: &Checker,
        a: usize,
        b: usize,
        transpose_a: bool,
        transpose_b: bool,
        out: usize,
    ) -> Result<Self, String> {
        let ai = c.input(a, "a")?;
        let bi = c.input(b, "b")?;
        let oi = c.output(out, "out")?;
        let (ar, ac) = matrix(ai, "a")?;
        let (br, bc) = matrix(bi, "b")?;
        let (m, ka) = if transpose_a { (ac, ar) } else { (ar, ac) };
        let (kb, n) = if transpose_b { (bc, br) } else { (br, bc) };
        if ka != kb {
            return Err(format!(
                "a {:?} (transposeA {transpose_a}) and b {:?} (transposeB {transpose_b}) have \
                 inner sizes {ka} and {kb}",
                ai.shape, bi.shape
            ));
        }
        let a_batch = &ai.shape[..ai.shape.len() - 2];
        let b_batch = &bi.shape[..bi.shape.len() - 2];
        let batch = broadcast(a_batch, b_batch).ok_or_else(|| {
            format!(
                "batch axes of a {:?} and b {:?} do not broadcast",
                ai.shape, bi.shape
            )
        })?;
        let mut want = batch.clone();
        want.extend([m, n]);
        if oi.shape != want {
            return Err(format!(
                "a {:?} @ b {:?} gives {want:?}, but out has shape {:?}",
                ai.shape, bi.shape, oi.shape
            ));
        }
        let k = ka;
        let a_strides: Vec<usize> = broadcast_strides(a_batch, &batch)
            .iter()
            .map(|s| s * m * k)
            .collect();
        let b_strides: Vec<usize> = broadcast_strides(b_batch, &batch)
            .iter()
            .map(|s| s * k * n)
            .collect();
        // Trailing batch axes along which a advances contiguously and b stays put become rows:
        // a's rows there are consecutive in memory, and so are out's.
        let mut outer = batch.len();
        while outer > 0
            && !transpose_a
            && b_strides[outer - 1] == 0
            && (a_strides[outer - 1] != 0 || batch[outer - 1] == 1)
        {
            outer -= 1;
        }
        let folded = count(&batch[outer..]);
        let f32_in = |t: &TensorInfo| t.dtype == crate::plan::tensor::DType::F32;
        let a_pack = if transpose_a || !f32_in(ai) {
            m * folded * k
        } else {
            0
        };
        // The kernels read f16 and f32 in place; only i32 needs converting.
        let b_pack = if bi.dtype == crate::plan::tensor::DType::I32 {
            k * n
        } else {
            0
        };
        let row = if transpose_a { m } else { 0 };
        Ok(Matmul {
            a,
            b,
            out,
            transpose_a,
            transpose_b,
            m: m * folded,
            m_own: m,
            k,
            n,
            outer: batch[..outer].to_vec(),
            a_strides: a_strides[..outer].to_vec(),
            b_strides: b_strides[..outer].to_vec(),
            staging: [a_pack, b_pack, row, staging(oi)],
        })
    }

    /// f32 scratch: packed A, converted B, a transposition row and the output.
    pub fn scratch(&self) -> usize {
        self.staging.iter().sum()
    }

    /// Element offsets of batch `index` in a and b.
    fn offsets(&self, mut index: usize) -> (usize, usize) {
        let (mut a, mut b) = (0, 0);
        for axis in (0..self.outer.len()).rev() {
            let i = index % self.outer[axis];
            index /= self.outer[axis];
            a += i * self.a_strides[axis];
            b += i * self.b_strides[axis];
        }
        (a, b)
    }

    /// Runs every batch.
    pub fn run(&self, ctx: &mut Ctx) -> Result<(), String> {
        let kernels = ctx.cpu.kernels;
        let (m, k, n) = (self.m, self.k, self.n);
        let (a_buf, rest) = ctx.scratch.split_at_mut(self.staging[0]);
        let (b_buf, rest) = rest.split_at_mut(self.staging[1]);
        let (row, out_buf) = rest.split_at_mut(self.staging[2]);
        let (a, b) = (ctx.mem.src(self.a), ctx.mem.src(self.b));
        // SAFETY: `out` is this step's only output and is viewed once.
        let out = unsafe { ctx.mem.dst(self.out) };
        let (cpu, linear) = (ctx.cpu, &mut *ctx.linear);
        let options = LinearOptions {
            bias: None,
            path: ActivationPath::F32,
        };
        let message = |e: crate::error::Error| e.message().to_string();
        with_f32_out(kernels, out, out_buf, |y| {
            if m * n == 0 {
                return Ok(());
            }
            for (batch, y) in y.chunks_exact_mut(m * n).enumerate() {
                let (ao, bo) = self.offsets(batch);
                if k == 0 {
                    y.fill(0.0);
                    continue;
                }
                let a_rows: &[f32] = match a {
                    Src::F32(s) if !self.transpose_a => &s[ao..ao + m * k],
                    _ if !self.transpose_a => {
                        read_f32(kernels, a, ao, &mut a_buf[..m * k]);
                        &a_buf[..m * k]
                    }
                    _ => {
                        pack_transposed(kernels, a, ao, (k, self.m_own), a_buf, row);
                        &a_buf[..m * k]
                    }
                };
                let b_rows = match b {
                    Src::F32(s) => Rows::F32(&s[bo..bo + k * n]),
                    Src::F16(s) => Rows::F16(&s[bo..bo + k * n]),
                    _ => {
                        read_f32(kernels, b, bo, &mut b_buf[..k * n]);
                        Rows::F32(&b_buf[..k * n])
                    }
                };
                if self.transpose_b {
                    let data = match b_rows {
                        Rows::F32(s) => WeightData::F32(s),
                        Rows::F16(s) => WeightData::F16(s),
                    };
                    let weights = Weights::new(n, k, data).map_err(message)?;
                    linear_reusing(cpu, y, a_rows, &weights, &options, linear).map_err(message)?;
                } else {
                    matmul_rows(cpu, y, a_rows, b_rows, n).map_err(message)?;
                }
            }
            Ok(())
        })
    }
}
