//! The linear layer `y = x W^T (+ bias)`: picks the activation path and spreads the output
//! columns over the thread pool. The arithmetic lives in the kernels.

use std::collections::TryReserveError;
use std::sync::OnceLock;

use crate::error::{check_len, Error};
use crate::kernels::out_columns::{whole, ColumnSplitter, OutColumns, Part};
use crate::kernels::q8_rows::Q8Rows;
use crate::kernels::Kernels;
use crate::thread_pool::ThreadPool;
use crate::weights::{Weights, BLOCK};

/// What the activations of each scale group sum to, for weights with offsets: `w = scale * (q -
/// offset)` adds `-scale * offset * sum(x over the group)` to every output, which is subtracted
/// after the kernel by scalar code shared by every kernel set, so results stay identical across
/// them.
#[derive(Clone, Copy)]
enum GroupSums<'a> {
    /// f32 activations `[m, k]`, summed in order per group as needed.
    F32(&'a [f32]),
    /// int8 activations with their row and block sums.
    Q8(&'a Q8Rows),
}

/// `out[r, c] -= sum_g scale[c, g] * offset[c, g] * xsum[r, g]` over the groups of `w`'s rows,
/// accumulated in group order, for the columns of `out`.
fn subtract_offsets(out: &mut OutColumns, w: &Weights, sums: GroupSums) {
    let (Some(offsets), Some(scales), Some(group)) = (w.offsets(), w.scales(), w.group()) else {
        return;
    };
    let (k, groups) = (w.k(), w.k() / group);
    let cols = out.cols();
    for r in 0..out.m() {
        let xsum = |g: usize| match sums {
            GroupSums::F32(x) => x[r * k + g * group..r * k + (g + 1) * group].iter().sum(),
            GroupSums::Q8(xq) if groups == 1 => xq.row_sums()[r],
            GroupSums::Q8(xq) => xq.block_sums()[r * groups + g],
        };
        // Per-channel weights have one group: its sum serves every column.
        let row_sum = if groups == 1 { xsum(0) } else { 0.0 };
        for (o, c) in out.row(r).iter_mut().zip(cols.clone()) {
            let mut shift = 0.0f32;
            for g in 0..groups {
                let i = c * groups + g;
                let sum = if groups == 1 { row_sum } else { xsum(g) };
                shift += scales.get(i) * offsets.get(i) * sum;
            }
            *o -= shift;
        }
    }
}

/// How the activations meet quantized weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActivationPath {
    /// int8 activations for quantized weights once `m` reaches [`Q8_MIN_ROWS`] (prefill), f32
    /// otherwise (decode).
    Auto,
    /// f32 activations: exact up to f32 rounding.
    F32,
    /// int8 activations per block of 32 and integer dot products (quantized weights with
    /// `k % 32 == 0` only; other weights use f32).
    Int8,
}

impl ActivationPath {
    /// Decodes an ABI code: 0 auto, 1 f32, 2 int8.
    pub fn from_code(code: u32) -> Result<Self, Error> {
        match code {
            0 => Ok(ActivationPath::Auto),
            1 => Ok(ActivationPath::F32),
            2 => Ok(ActivationPath::Int8),
            _ => Err(Error::invalid(format!(
                "unknown activation path code {code}: expected 0 (auto), 1 (f32) or 2 (int8)"
            ))),
        }
    }
}

/// The environment variable that chooses how a plan's linear steps meet quantized weights: `int8`
/// (the default) or `f32`, which computes exactly what a float bundle of the dequantized weights
/// computes, for cross-checks. Read once, like the kernel set's variable.
pub const ACTIVATIONS_VARIABLE: &str = "LLAMANE_CPU_ACTIVATIONS";

/// The activation path of plans: [`ActivationPath::Int8`] unless [`ACTIVATIONS_VARIABLE`] says
/// `f32`; any other value is an error for every run, as an unknown kernel set is.
pub fn plan_activations() -> Result<ActivationPath, String> {
    static SELECTED: OnceLock<Result<ActivationPath, String>> = OnceLock::new();
    SELECTED
        .get_or_init(|| match std::env::var(ACTIVATIONS_VARIABLE) {
            Err(std::env::VarError::NotPresent) => Ok(ActivationPath::Int8),
            Ok(name) if name.is_empty() || name == "int8" => Ok(ActivationPath::Int8),
            Ok(name) if name == "f32" => Ok(ActivationPath::F32),
            Ok(name) => Err(format!(
                "{ACTIVATIONS_VARIABLE}={name:?} is neither \"int8\" nor \"f32\""
            )),
            Err(e) => Err(format!("{ACTIVATIONS_VARIABLE}: {e}")),
        })
        .clone()
}

/// Rows from which [`ActivationPath::Auto`] quantizes activations. Prefill chunks are above it;
/// decode (1 row) and lookahead verification windows (a few rows) stay below, on the exact f32
/// path, where the weights are streamed from memory and int8 would not be faster. Callers that
/// need results identical to decode at any row count pass [`ActivationPath::F32`].
pub const Q8_MIN_ROWS: usize = 16;

/// Products (`m * n * k`) under which a call stays on the calling thread: waking the pool
/// costs more than it saves.
const SINGLE_THREAD_MACS: usize = 1 << 17;

/// Column tasks per thread: more than one, so a thread slowed by another process hands its
/// share to the others.
const TASKS_PER_THREAD: usize = 4;

/// Column ranges start at multiples of this, so kernels see whole register tiles.
const COLUMN_ALIGN: usize = 8;

/// The kernels and threads a call runs on.
#[derive(Clone, Copy)]
pub struct Cpu<'a> {
    /// The kernel table.
    pub kernels: &'a Kernels,
    /// The worker threads.
    pub pool: &'a ThreadPool,
}

impl Cpu<'static> {
    /// The selected kernels on the global pool; fails when `LLAMANE_CPU_KERNELS` names a set this
    /// CPU cannot run.
    pub fn global() -> Result<Self, Error> {
        Ok(Cpu {
            kernels: crate::kernels::try_selected().map_err(Error::invalid)?,
            pool: ThreadPool::global(),
        })
    }
}

/// Optional parts of a linear call.
#[derive(Clone, Copy, Debug)]
pub struct LinearOptions<'a> {
    /// `[n]`, added to every row of the output.
    pub bias: Option<&'a [f32]>,
    /// Activation path.
    pub path: ActivationPath,
}

impl Default for LinearOptions<'_> {
    fn default() -> Self {
        LinearOptions {
            bias: None,
            path: ActivationPath::Auto,
        }
    }
}

/// Buffers a linear call reuses: the int8 activations. A caller that runs many layers (a plan)
/// keeps one and sizes it once with [`LinearScratch::try_reserve`], so no call allocates.
#[derive(Default)]
pub struct LinearScratch {
    q8: Q8Rows,
}

impl LinearScratch {
    /// Makes room for `[m, k]` activations on the int8 path; fails when the memory cannot be had.
    pub fn try_reserve(&mut self, m: usize, k: usize) -> Result<(), TryReserveError> {
        self.q8.try_reserve(m, k)
    }
}

/// `y [m, n] = x [m, k] W^T + bias` where `W` is `[n, k]` and `m = x.len() / k`.
pub fn linear(
    cpu: Cpu,
    y: &mut [f32],
    x: &[f32],
    w: &Weights,
    options: &LinearOptions,
) -> Result<(), Error> {
    linear_reusing(cpu, y, x, w, options, &mut LinearScratch::default())
}

/// [`linear`] with buffers kept by the caller.
///
/// Each output is computed by one task, with one summation order that depends only on the path
/// (not on `m`, the row's position or the number of threads); with [`ActivationPath::F32`] or
/// [`ActivationPath::Int8`] a row's result is therefore a function of that row alone.
pub fn linear_reusing(
    cpu: Cpu,
    y: &mut [f32],
    x: &[f32],
    w: &Weights,
    options: &LinearOptions,
    scratch: &mut LinearScratch,
) -> Result<(), Error> {
    let n = w.n();
    if let Some(bias) = options.bias {
        check_len("linear: bias", bias.len(), n)?;
    }
    let widths = [n];
    let parts = whole(n);
    linear_parts(
        cpu,
        y,
        x,
        (&widths, &parts),
        &|_| (*w, options.bias),
        options.path,
        scratch,
    )
}

/// Several linear layers on the same `x [m, k]`, as one job: `parts.1[p]` says where the columns
/// of `part(p)` (its weights `[n_p, k]` and optional bias `[n_p]`) go among the output matrices,
/// which lie one after the other in `y` (matrix `o` is `[m, parts.0[o]]`). Every part has the same
/// weight format and `k`; the activations are converted (quantized) once for all of them. The
/// columns of all parts are split over the threads together, so a layer cut into pieces, or the
/// projections that read the same input, cost one job instead of one per matrix. Each output is
/// computed as by [`linear_reusing`].
pub fn linear_parts<'w>(
    cpu: Cpu,
    y: &mut [f32],
    x: &[f32],
    (widths, parts): (&[usize], &[Part]),
    part: &(dyn Fn(usize) -> (Weights<'w>, Option<&'w [f32]>) + Sync),
    path: ActivationPath,
    scratch: &mut LinearScratch,
) -> Result<(), Error> {
    let Some(first) = parts.first().map(|_| part(0).0) else {
        return Err(Error::invalid("linear: no weights"));
    };
    let (format, k) = (first.format(), first.k());
    for (p, want) in parts.iter().enumerate() {
        let (w, bias) = part(p);
        if w.format() != format || w.k() != k || w.n() != want.n {
            return Err(Error::invalid(format!(
                "linear: part {p} is {:?} [{}, {}], expected {format:?} [{}, {k}]",
                w.format(),
                w.n(),
                w.k(),
                want.n
            )));
        }
        if let Some(bias) = bias {
            check_len("linear: bias", bias.len(), w.n())?;
        }
    }
    if !x.len().is_multiple_of(k) {
        return Err(Error::invalid(format!(
            "linear: x has {} elements, not a multiple of k = {k}",
            x.len()
        )));
    }
    let m = x.len() / k;
    let columns: usize = widths.iter().sum();
    check_len("linear: y", y.len(), m * columns)?;
    if parts
        .iter()
        .any(|p| p.out >= widths.len() || p.shift + p.n > widths[p.out])
    {
        return Err(Error::invalid("linear: a part lies outside its output"));
    }
    let q8 = cpu.kernels.linear_q8.get(format).filter(|_| {
        k % BLOCK == 0
            && match path {
                ActivationPath::Auto => m >= Q8_MIN_ROWS,
                ActivationPath::F32 => false,
                ActivationPath::Int8 => true,
            }
    });
    let total = parts.iter().map(|p| p.n).sum::<usize>();
    let per_task = columns_per_task(m * total * k, total, cpu.pool.threads());
    let splitter = ColumnSplitter::new(y, m, widths, parts, per_task);
    let add_bias = |out: &mut OutColumns, bias: Option<&[f32]>| {
        if let Some(bias) = bias {
            let cols = out.cols();
            for r in 0..m {
                for (o, b) in out.row(r).iter_mut().zip(&bias[cols.clone()]) {
                    *o += b;
                }
            }
        }
    };
    match q8 {
        Some(kernel) => {
            let layout = cpu.kernels.linear_q8.layout(format);
            scratch.q8.requantize(cpu.kernels, x, m, k, layout);
            let xq = &scratch.q8;
            cpu.pool.run(splitter.len(), &|task| {
                // SAFETY: the pool runs each task index exactly once.
                unsafe {
                    splitter.columns(task, |p, mut out| {
                        let (w, bias) = part(p);
                        kernel(&mut out, xq, &w);
                        subtract_offsets(&mut out, &w, GroupSums::Q8(xq));
                        add_bias(&mut out, bias);
                    })
                };
            });
        }
        None => {
            let kernel = cpu.kernels.linear_f32.get(format);
            cpu.pool.run(splitter.len(), &|task| {
                // SAFETY: the pool runs each task index exactly once.
                unsafe {
                    splitter.columns(task, |p, mut out| {
                        let (w, bias) = part(p);
                        kernel(&mut out, x, &w);
                        subtract_offsets(&mut out, &w, GroupSums::F32(x));
                        add_bias(&mut out, bias);
                    })
                };
            });
        }
    }
    Ok(())
}

/// Columns per task, a multiple of [`COLUMN_ALIGN`]: all of them for small problems, otherwise a
/// few tasks per thread.
pub(crate) fn columns_per_task(macs: usize, n: usize, threads: usize) -> usize {
    let tasks = if macs < SINGLE_THREAD_MACS || threads == 1 {
        1
    } else {
        (threads * TASKS_PER_THREAD).min(n.div_ceil(COLUMN_ALIGN))
    };
    n.div_ceil(tasks.max(1))
        .next_multiple_of(COLUMN_ALIGN)
        .max(COLUMN_ALIGN)
}
