//! The steps a plan can run, one file per op: each checks its operands' shapes against its
//! semantics at load ([`Checker`]), says how much f32 scratch it needs, and runs on the views a
//! [`Ctx`] hands out. Every op reads its inputs as f32 and rounds its result to the output's type.

mod attention;
mod binary;
mod cast;
mod concat;
mod copy;
mod dequantize;
mod gather;
mod linear;
mod matmul;
mod norm;
mod reduce_mean;
mod rope;
mod silu_mul;
mod softmax;
mod split;
mod transpose;
mod unary;
mod weight;

use super::convert::{to_f32, with_f32_out};
use super::format::{LinearPart, Step};
use super::memory::Memory;
use super::tensor::TensorInfo;
use crate::attention::{AttentionScratch, Shape};
use crate::linear::{Cpu, LinearScratch};

/// What a step runs with: the tensors' memory, the kernels and threads, and scratch sized at
/// load for the hungriest step.
pub struct Ctx<'r, 'a> {
    /// Views of the tensors.
    pub mem: &'r Memory<'a>,
    /// Kernels and thread pool.
    pub cpu: Cpu<'static>,
    /// f32 scratch of at least the running op's [`Op::scratch`] elements.
    pub scratch: &'r mut [f32],
    /// Buffers of the linear layers (int8 activations), sized at load.
    pub linear: &'r mut LinearScratch,
    /// Per-thread buffers of attention, sized at load.
    pub attention: &'r AttentionScratch,
}

/// Looks up and classifies the tensors a step names, with messages that say which operand.
pub struct Checker<'t> {
    tensors: &'t [TensorInfo],
}

impl<'t> Checker<'t> {
    /// A checker over the plan's checked tensors.
    pub fn new(tensors: &'t [TensorInfo]) -> Self {
        Checker { tensors }
    }

    /// Tensor `t`, which the step calls `role`.
    pub fn tensor(&self, t: usize, role: &str) -> Result<&'t TensorInfo, String> {
        self.tensors.get(t).ok_or_else(|| {
            format!(
                "{role} is tensor {t}, but the plan has {} tensors",
                self.tensors.len()
            )
        })
    }

    /// Tensor `t`, read as numbers (f16, f32 or i32).
    pub fn input(&self, t: usize, role: &str) -> Result<&'t TensorInfo, String> {
        let info = self.tensor(t, role)?;
        if !info.dtype.is_numeric() {
            return Err(format!(
                "{role} (tensor {t}) is {}, which is only read as weight data with scales",
                info.describe()
            ));
        }
        Ok(info)
    }

    /// Tensor `t`, written by the step: numeric and in the arena or an output buffer.
    pub fn output(&self, t: usize, role: &str) -> Result<&'t TensorInfo, String> {
        let info = self.input(t, role)?;
        if !info.is_writable() {
            return Err(format!(
                "{role} (tensor {t}) is stored in {:?}, which steps may not write",
                info.place
            ));
        }
        Ok(info)
    }
}

/// Fails unless two shapes are equal.
pub fn same_shape(what: &str, got: &TensorInfo, want: &[usize]) -> Result<(), String> {
    if got.shape == want {
        Ok(())
    } else {
        Err(format!(
            "{what} has shape {:?}, expected {want:?}",
            got.shape
        ))
    }
}

/// f32 elements needed to hold `t` converted, or 0 when it is f32 already (read in place).
pub fn staging(t: &TensorInfo) -> usize {
    if t.dtype == super::tensor::DType::F32 {
        0
    } else {
        t.len
    }
}

/// The operands of a step that reads `N` inputs as f32 and writes one output through an f32
/// buffer, and the scratch that takes: a part per input that is not f32 (converted into it), then
/// a part for the output when it is not f32 (computed there, then rounded into place).
///
/// Used by the single-output ops whose inputs are all required and read whole: softmax, unary,
/// reduce_mean, binary, silu_mul, rope and rms_norm. Ops with optional inputs (layer_norm) or
/// other buffers (attention, matmul, linear) lay out their own scratch.
#[derive(Debug)]
pub struct Staging<const N: usize> {
    inputs: [usize; N],
    /// The step's only output.
    out: usize,
    /// [`staging`] of each input, then of the output.
    sizes: [usize; N],
    out_size: usize,
}

impl<const N: usize> Staging<N> {
    /// The checked `inputs` and `out`, each with its info. `out` must be the step's only output
    /// ([`Checker::output`]): [`Staging::run`] writes it.
    pub fn new(inputs: [(usize, &TensorInfo); N], out: (usize, &TensorInfo)) -> Self {
        Staging {
            inputs: inputs.map(|(t, _)| t),
            out: out.0,
            sizes: inputs.map(|(_, info)| staging(info)),
            out_size: staging(out.1),
        }
    }

    /// f32 scratch: the converted inputs and the output.
    pub fn scratch(&self) -> usize {
        self.sizes.iter().sum::<usize>() + self.out_size
    }

    /// Converts the inputs in order, calls `f` with the output as f32 and the inputs, and rounds
    /// the output into place (see [`with_f32_out`]). The step calls this once per run and takes
    /// no other view of its output.
    pub fn run<R>(&self, ctx: &mut Ctx, f: impl FnOnce(&mut [f32], [&[f32]; N]) -> R) -> R {
        let (kernels, mem) = (ctx.cpu.kernels, ctx.mem);
        let mut rest = &mut *ctx.scratch;
        let xs = std::array::from_fn(|i| {
            let (buf, tail) = std::mem::take(&mut rest).split_at_mut(self.sizes[i]);
            rest = tail;
            to_f32(kernels, mem.src(self.inputs[i]), buf)
        });
        // SAFETY: `self.out` is this step's only output (`new`'s contract, kept by each op's
        // `check`), and this is the step's only view of it: the op's `run` calls `run` once and
        // views no tensor itself.
        let out = unsafe { mem.dst(self.out) };
        with_f32_out(kernels, out, rest, |y| f(y, xs))
    }
}

/// A checked step, ready to run.
#[derive(Debug)]
pub enum Op {
    /// See [`linear::Linear`].
    Linear(linear::Linear),
    /// See [`attention::Attention`].
    Attention(attention::Attention),
    /// See [`rope::Rope`].
    Rope(rope::Rope),
    /// See [`silu_mul::SiluMul`].
    SiluMul(silu_mul::SiluMul),
    /// See [`gather::Gather`].
    Gather(gather::Gather),
    /// See [`dequantize::Dequantize`].
    Dequantize(dequantize::Dequantize),
    /// See [`norm::RmsNorm`].
    RmsNorm(norm::RmsNorm),
    /// See [`norm::LayerNorm`].
    LayerNorm(norm::LayerNorm),
    /// See [`binary::Binary`].
    Binary(binary::Binary),
    /// See [`unary::Unary`].
    Unary(unary::Unary),
    /// See [`softmax::Softmax`].
    Softmax(softmax::Softmax),
    /// See [`matmul::Matmul`].
    Matmul(matmul::Matmul),
    /// See [`transpose::Transpose`].
    Transpose(transpose::Transpose),
    /// See [`concat::Concat`].
    Concat(concat::Concat),
    /// See [`split::Split`].
    Split(split::Split),
    /// See [`cast::Cast`].
    Cast(cast::Cast),
    /// See [`reduce_mean::ReduceMean`].
    ReduceMean(reduce_mean::ReduceMean),
    /// See [`copy::Copy`].
    Copy(copy::Copy),
}

impl Op {
    /// Checks `step`'s operands against its semantics.
    pub fn check(step: &Step, c: &Checker) -> Result<Op, String> {
        Ok(match step {
            Step::Linear {
                x,
                weight,
                bias,
                out,
            } => Op::Linear(linear::Linear::check(
                c,
                *x,
                &[LinearPart {
                    weight: *weight,
                    bias: *bias,
                }],
                &[*out],
            )?),
            Step::FusedLinear { x, parts, outs } => {
                Op::Linear(linear::Linear::check(c, *x, parts, outs)?)
            }
            Step::Attention {
                q,
                keys,
                values,
                mask,
                scale,
                out,
            } => Op::Attention(attention::Attention::check(
                c,
                (*q, keys, values, *mask),
                *scale,
                *out,
            )?),
            Step::Rope { x, cos, sin, out } => {
                Op::Rope(rope::Rope::check(c, *x, (*cos, *sin), *out)?)
            }
            Step::SiluMul { gate, up, out } => {
                Op::SiluMul(silu_mul::SiluMul::check(c, *gate, *up, *out)?)
            }
            Step::Gather {
                table,
                indices,
                out,
            } => Op::Gather(gather::Gather::check(c, table, *indices, *out)?),
            Step::Dequantize { weight, out } => {
                Op::Dequantize(dequantize::Dequantize::check(c, weight, *out)?)
            }
            Step::RmsNorm { x, gain, eps, out } => {
                Op::RmsNorm(norm::RmsNorm::check(c, *x, *gain, *eps, *out)?)
            }
            Step::LayerNorm {
                x,
                gamma,
                beta,
                eps,
                out,
            } => Op::LayerNorm(norm::LayerNorm::check(c, *x, *gamma, *beta, *eps, *out)?),
            Step::Binary { kind, a, b, out } => {
                Op::Binary(binary::Binary::check(c, *kind, *a, *b, *out)?)
            }
            Step::Unary { kind, eps, x, out } => {
                Op::Unary(unary::Unary::check(c, *kind, *eps, *x, *out)?)
            }
            Step::Softmax { x, out } => Op::Softmax(softmax::Softmax::check(c, *x, *out)?),
            Step::Matmul {
                a,
                b,
                transpose_a,
                transpose_b,
                out,
            } => Op::Matmul(matmul::Matmul::check(
                c,
                *a,
                *b,
                *transpose_a,
                *transpose_b,
                *out,
            )?),
            Step::Transpose { x, perm, out } => {
                Op::Transpose(transpose::Transpose::check(c, *x, perm, *out)?)
            }
            Step::Concat { inputs, axis, out } => {
                Op::Concat(concat::Concat::check(c, inputs, *axis, *out)?)
            }
            Step::Split { x, axis, outs } => Op::Split(split::Split::check(c, *x, *axis, outs)?),
            Step::Cast { x, out } => Op::Cast(cast::Cast::check(c, *x, *out)?),
            Step::ReduceMean { x, axes, out } => {
                Op::ReduceMean(reduce_mean::ReduceMean::check(c, *x, axes, *out)?)
            }
            Step::Copy { x, out } => Op::Copy(copy::Copy::check(c, *x, *out)?),
        })
    }

    /// f32 scratch elements the op needs.
    pub fn scratch(&self) -> usize {
        match self {
            Op::Linear(op) => op.scratch(),
            Op::Attention(op) => op.scratch(),
            Op::Rope(op) => op.scratch(),
            Op::SiluMul(op) => op.scratch(),
            Op::Gather(op) => op.scratch(),
            Op::Dequantize(op) => op.scratch(),
            Op::RmsNorm(op) => op.scratch(),
            Op::LayerNorm(op) => op.scratch(),
            Op::Binary(op) => op.scratch(),
            Op::Unary(op) => op.scratch(),
            Op::Softmax(op) => op.scratch(),
            Op::Matmul(op) => op.scratch(),
            Op::Transpose(_) | Op::Concat(_) | Op::Split(_) | Op::Cast(_) | Op::Copy(_) => 0,
            Op::ReduceMean(op) => op.scratch(),
        }
    }

    /// `[m, k]` of the largest int8 activation matrix the op quantizes, if any.
    pub fn q8_rows(&self) -> Option<(usize, usize)> {
        match self {
            Op::Linear(op) => op.q8_rows(),
            _ => None,
        }
    }

    /// The sizes of the attention this op runs, if it is one (for the per-thread scratch).
    pub fn attention(&self) -> Option<Shape> {
        match self {
            Op::Attention(op) => Some(op.shape()),
            _ => None,
        }
    }

    /// Runs the op; the only run-time failure is an index outside a gather table.
    pub fn run(&self, ctx: &mut Ctx) -> Result<(), String> {
        match self {
            Op::Linear(op) => op.run(ctx)?,
            Op::Attention(op) => op.run(ctx)?,
            Op::Rope(op) => op.run(ctx),
            Op::SiluMul(op) => op.run(ctx),
            Op::Gather(op) => op.run(ctx)?,
            Op::Dequantize(op) => op.run(ctx),
            Op::RmsNorm(op) => op.run(ctx),
            Op::LayerNorm(op) => op.run(ctx),
            Op::Binary(op) => op.run(ctx),
            Op::Unary(op) => op.run(ctx),
            Op::Softmax(op) => op.run(ctx),
            Op::Matmul(op) => op.run(ctx)?,
            Op::Transpose(op) => op.run(ctx),
            Op::Concat(op) => op.run(ctx),
            Op::Split(op) => op.run(ctx),
            Op::Cast(op) => op.run(ctx),
            Op::ReduceMean(op) => op.run(ctx),
            Op::Copy(op) => op.run(ctx),
        }
        Ok(())
    }
}
