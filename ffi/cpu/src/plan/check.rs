//! Every load-time check of a plan (PLAN.md, "Checks the library makes at load"): tensors
//! (rank, sizes, types, storage bounds, weight records, inline constants), the caller's buffers,
//! each step's shapes against its semantics (in the op's own file), and that no step writes
//! memory it also reads. A plan that passes can run without any further bounds reasoning; a plan
//! that fails gets a message naming the tensor or step and what was expected.

use super::arena::ALIGN;
use super::format::{PlanJson, Step, Storage, Weight};
use super::ops::{Checker, Op};
use super::tensor::{DType, InlineData, Place, TensorInfo, MAX_RANK};
use crate::weight_file::{BlobDType, WeightFile};

/// One caller buffer as the plan defines it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferSpec {
    /// Its name (an input or output of the MIL function).
    pub name: String,
    /// The tensor listed for it in `inputs` / `outputs`: its size is the buffer's.
    pub tensor: usize,
    /// Exact byte length the caller must pass.
    pub bytes: usize,
    /// Alignment the buffer needs for every tensor placed in it.
    pub align: usize,
}

/// A plan that passed every check.
#[derive(Debug)]
pub struct Checked {
    /// The tensors, with verified places.
    pub tensors: Vec<TensorInfo>,
    /// Inline constants, converted to their tensors' types.
    pub inline: Vec<InlineData>,
    /// The steps, ready to run.
    pub ops: Vec<Op>,
    /// The caller's input buffers, in order.
    pub inputs: Vec<BufferSpec>,
    /// The caller's output buffers, in order.
    pub outputs: Vec<BufferSpec>,
    /// Bytes of arena.
    pub arena_bytes: usize,
}

fn blob_dtype(dtype: DType) -> BlobDType {
    match dtype {
        DType::F16 => BlobDType::F16,
        DType::F32 => BlobDType::F32,
        DType::I32 => BlobDType::I32,
        DType::I8 => BlobDType::I8,
        DType::I4 => BlobDType::I4,
        DType::U4 => BlobDType::U4,
        DType::U6 => BlobDType::U6,
    }
}

/// Converts inline values to the tensor's type; integers must be whole and in range.
fn inline_data(dtype: DType, values: &[f64]) -> Result<InlineData, String> {
    Ok(match dtype {
        DType::F16 => InlineData::F16(
            values
                .iter()
                .map(|&v| half::f16::from_f64(v).to_bits())
                .collect(),
        ),
        DType::F32 => InlineData::F32(values.iter().map(|&v| v as f32).collect()),
        DType::I32 => InlineData::I32(
            values
                .iter()
                .map(|&v| {
                    if v.fract() == 0.0 && v >= f64::from(i32::MIN) && v <= f64::from(i32::MAX) {
                        Ok(v as i32)
                    } else {
                        Err(format!("inline value {v} is not an i32"))
                    }
                })
                .collect::<Result<_, _>>()?,
        ),
        DType::I8 | DType::I4 | DType::U4 | DType::U6 => {
            unreachable!("checked before: packed integers are weights")
        }
    })
}

/// Checks one tensor and resolves its place.
fn tensor(
    t: &super::format::Tensor,
    plan: &PlanJson,
    weights: &WeightFile,
    inline: &mut Vec<InlineData>,
) -> Result<TensorInfo, String> {
    if t.shape.len() > MAX_RANK {
        return Err(format!(
            "shape {:?} has rank {}, above the limit of {MAX_RANK}",
            t.shape,
            t.shape.len()
        ));
    }
    let len = t
        .shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n.checked_mul(4).is_some())
        .ok_or_else(|| format!("shape {:?} has too many elements", t.shape))?;
    let bytes = t.dtype.bytes(len);
    if !t.dtype.is_numeric() && !matches!(t.storage, Storage::Weight { .. }) {
        return Err(format!(
            "{} tensors are weights only, but this one is stored as {:?}",
            t.dtype.name(),
            t.storage
        ));
    }
    let place = match &t.storage {
        Storage::Input { index } if *index < plan.inputs.len() => Place::Input(*index),
        Storage::Output { index } if *index < plan.outputs.len() => Place::Output(*index),
        Storage::Input { index } | Storage::Output { index } => {
            return Err(format!(
                "storage {:?} names buffer {index}, but the plan has {} inputs and {} outputs",
                t.storage,
                plan.inputs.len(),
                plan.outputs.len()
            ))
        }
        Storage::Arena { offset } => {
            if !offset.is_multiple_of(ALIGN) {
                return Err(format!(
                    "arena offset {offset} is not a multiple of {ALIGN}"
                ));
            }
            if offset
                .checked_add(bytes)
                .is_none_or(|end| end > plan.arena_bytes)
            {
                return Err(format!(
                    "occupies arena bytes {offset}..{}, past arenaBytes {}",
                    offset.saturating_add(bytes),
                    plan.arena_bytes
                ));
            }
            Place::Arena(*offset)
        }
        Storage::Weight { offset } => Place::Weight(
            weights
                .blob(*offset, blob_dtype(t.dtype), len)
                .map_err(|e| format!("{} in \"{}\"", e, weights.path().display()))?,
        ),
        Storage::Inline { values } => {
            if values.len() != len {
                return Err(format!(
                    "has {} inline values for shape {:?} ({len} elements)",
                    values.len(),
                    t.shape
                ));
            }
            inline.push(inline_data(t.dtype, values)?);
            Place::Inline(inline.len() - 1)
        }
    };
    Ok(TensorInfo {
        dtype: t.dtype,
        shape: t.shape.clone(),
        len,
        place,
    })
}

/// Checks the tensors listed for the caller's buffers and sizes each buffer.
fn buffers(
    kind: &str,
    listed: &[usize],
    names: &[String],
    tensors: &[TensorInfo],
    place: impl Fn(usize) -> Place,
) -> Result<Vec<BufferSpec>, String> {
    if names.len() != listed.len() {
        return Err(format!(
            "{} {kind}s but {} {kind} names",
            listed.len(),
            names.len()
        ));
    }
    let mut specs = Vec::with_capacity(listed.len());
    for (i, (&t, name)) in listed.iter().zip(names).enumerate() {
        let info = tensors.get(t).ok_or_else(|| {
            format!(
                "{kind} {i} (\"{name}\") is tensor {t}, but the plan has {} tensors",
                tensors.len()
            )
        })?;
        if info.place != place(i) {
            return Err(format!(
                "{kind} {i} (\"{name}\") is tensor {t}, which is stored in {:?}, not {:?}",
                info.place,
                place(i)
            ));
        }
        let mut spec = BufferSpec {
            name: name.clone(),
            tensor: t,
            bytes: info.bytes(),
            align: 1,
        };
        for (u, view) in tensors
            .iter()
            .enumerate()
            .filter(|(_, v)| v.place == place(i))
        {
            if view.bytes() > spec.bytes {
                return Err(format!(
                    "tensor {u} ({}) is a view of {kind} {i} (\"{name}\", {} bytes) but needs {} bytes",
                    view.describe(),
                    spec.bytes,
                    view.bytes()
                ));
            }
            spec.align = spec.align.max(view.dtype.align());
        }
        specs.push(spec);
    }
    Ok(specs)
}

fn weight_operands(w: &Weight) -> impl Iterator<Item = usize> {
    std::iter::once(w.data).chain(w.scale).chain(w.offset)
}

/// The tensors a step reads and the ones it writes.
fn operands(step: &Step) -> (Vec<usize>, Vec<usize>) {
    match step {
        Step::Linear {
            x,
            weight,
            bias,
            out,
        } => {
            let reads = [*x].into_iter().chain(weight_operands(weight)).chain(*bias);
            (reads.collect(), vec![*out])
        }
        Step::FusedLinear { x, parts, outs } => {
            let reads = parts
                .iter()
                .flat_map(|p| weight_operands(&p.weight).chain(p.bias));
            (std::iter::once(*x).chain(reads).collect(), outs.clone())
        }
        Step::Attention {
            q,
            keys,
            values,
            mask,
            out,
            ..
        } => {
            let reads = [*q, *mask]
                .into_iter()
                .chain(keys.iter().chain(values).copied());
            (reads.collect(), vec![*out])
        }
        Step::Rope { x, cos, sin, out } => (vec![*x, *cos, *sin], vec![*out]),
        Step::SiluMul { gate, up, out } => (vec![*gate, *up], vec![*out]),
        Step::Gather {
            table,
            indices,
            out,
        } => (
            weight_operands(table).chain([*indices]).collect(),
            vec![*out],
        ),
        Step::Dequantize { weight, out } => (weight_operands(weight).collect(), vec![*out]),
        Step::RmsNorm { x, gain, out, .. } => (vec![*x, *gain], vec![*out]),
        Step::LayerNorm {
            x,
            gamma,
            beta,
            out,
            ..
        } => (
            [*x].into_iter().chain(*gamma).chain(*beta).collect(),
            vec![*out],
        ),
        Step::Binary { a, b, out, .. } | Step::Matmul { a, b, out, .. } => {
            (vec![*a, *b], vec![*out])
        }
        Step::Unary { x, out, .. }
        | Step::Softmax { x, out }
        | Step::Transpose { x, out, .. }
        | Step::Cast { x, out }
        | Step::ReduceMean { x, out, .. }
        | Step::Copy { x, out } => (vec![*x], vec![*out]),
        Step::Concat { inputs, out, .. } => (inputs.clone(), vec![*out]),
        Step::Split { x, outs, .. } => (vec![*x], outs.clone()),
    }
}

/// Fails if a step writes bytes it also reads, or writes the same bytes twice: a step's views
/// must be disjoint for it to run on them (see `memory.rs`). Indices are already in range.
fn disjoint(step: &Step, tensors: &[TensorInfo]) -> Result<(), String> {
    let (reads, writes) = operands(step);
    for (j, &w) in writes.iter().enumerate() {
        let clash = reads
            .iter()
            .map(|&r| ("input", r))
            .chain(writes[j + 1..].iter().map(|&o| ("output", o)))
            .find(|&(_, t)| tensors[w].overlaps(&tensors[t]));
        if let Some((role, t)) = clash {
            return Err(format!(
                "output tensor {w} ({:?}) overlaps {role} tensor {t} ({:?}); a step may not \
                 write the memory it reads",
                tensors[w].place, tensors[t].place
            ));
        }
    }
    Ok(())
}

/// Checks `plan` against `weights`.
pub fn check(plan: &PlanJson, weights: &WeightFile) -> Result<Checked, String> {
    let mut inline = Vec::new();
    let tensors = plan
        .tensors
        .iter()
        .enumerate()
        .map(|(i, t)| tensor(t, plan, weights, &mut inline).map_err(|e| format!("tensor {i}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let inputs = buffers(
        "input",
        &plan.inputs,
        &plan.input_names,
        &tensors,
        Place::Input,
    )?;
    let outputs = buffers(
        "output",
        &plan.outputs,
        &plan.output_names,
        &tensors,
        Place::Output,
    )?;
    let checker = Checker::new(&tensors);
    let ops = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            Op::check(step, &checker)
                .and_then(|op| disjoint(step, &tensors).map(|()| op))
                .map_err(|e| format!("step {i} ({}): {e}", step.op()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Checked {
        tensors,
        inline,
        ops,
        inputs,
        outputs,
        arena_bytes: plan.arena_bytes,
    })
}
