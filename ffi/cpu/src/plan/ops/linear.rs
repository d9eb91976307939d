//! `linear` and `fused_linear`: `out[..., n] = sum_k x[..., k] W[n, k] + bias[n]`, through
//! [`crate::linear`] on the packed weights. A fused step runs several weight matrices that read
//! the same `x` (the pieces of a split layer, or the projections of one input) as one job, their
//! results side by side along the last axis of its outputs; `linear` is the case of one part.
//!
//! The activation path never depends on the number of rows: quantized weights with `K % 32 == 0`
//! always take int8 activations (quantized per row), everything else f32 (or everything f32 when
//! `LLAMANE_CPU_ACTIVATIONS=f32`, see [`plan_activations`]). So a token's row is
//! computed identically in a 1-token decode call and in a 32-token call, which lookahead decoding
//! relies on to reproduce greedy decoding exactly.

use super::weight::WeightRef;
use super::{same_shape, staging, Checker, Ctx};
use crate::kernels::out_columns::Part;
use crate::linear::{linear_parts, plan_activations};
use crate::palette::{quantize_levels, Palettes};
use crate::plan::convert::{read_f32, to_f32, write_f32};
use crate::plan::format::LinearPart;
use crate::plan::memory::{Dst, Memory, Src};
use crate::plan::tensor::DType;
use crate::weights::{Scales, WeightData, WeightFormat, Weights, BLOCK};
use std::sync::OnceLock;

/// A checked linear or fused_linear step.
#[derive(Debug)]
pub struct Linear {
    x: usize,
    /// Per part: the weight and the bias tensor with its offset in the bias staging.
    weights: Vec<(WeightRef, Option<(usize, usize)>)>,
    /// Where each part's columns go.
    parts: Vec<Part>,
    outs: Vec<usize>,
    /// Columns of each output.
    widths: Vec<usize>,
    format: WeightFormat,
    k: usize,
    /// Rows: elements of x over K.
    m: usize,
    x_staging: usize,
    bias_staging: usize,
    /// f32 elements of all outputs, 0 when the single output is f32 and written in place.
    out_staging: usize,
    /// Per part of palettized weights, its palettes' int16 levels and steps, made on first use.
    levels: Vec<OnceLock<(Vec<i16>, Vec<f32>)>>,
}

/// The kernel format for a weight operand, or why there is none.
fn format_of(w: &WeightRef) -> Result<WeightFormat, String> {
    Ok(match (w.dtype, w.quant) {
        (DType::F32, None) => WeightFormat::F32,
        (DType::F16, None) => WeightFormat::F16,
        (DType::I8, Some(q)) if q.group == w.k => WeightFormat::Int8PerChannel,
        (DType::I4, Some(q)) if q.group == w.k => WeightFormat::Int4PerChannel,
        (DType::I4, Some(q)) if q.group == BLOCK => WeightFormat::Int4Block32,
        (DType::I8, Some(q)) if q.group == BLOCK => WeightFormat::Int8Block32,
        (DType::U4, None) => WeightFormat::Lut4,
        (DType::U6, None) => WeightFormat::Lut6,
        (dtype, quant) => {
            return Err(format!(
                "weight {} [{}, {}] with scales per {} inputs has no kernel: quantized weights \
                 take one scale per output channel (group = K), or one per {BLOCK} inputs",
                dtype.name(),
                w.n,
                w.k,
                quant.map_or(0, |q| q.group)
            ))
        }
    })
}

impl Linear {
    /// Checks `x [..., K]`, every part's weight `[N_p, K]` (one format for all) and bias `[N_p]`,
    /// and the outputs `[..., M_o]`, each made of whole consecutive parts.
    pub fn check(
        c: &Checker,
        x: usize,
        parts: &[LinearPart],
        outs: &[usize],
    ) -> Result<Self, String> {
        let xi = c.input(x, "x")?;
        let Some((&k, lead)) = xi.shape.split_last() else {
            return Err("x is a scalar, expected [..., K]".to_string());
        };
        if parts.is_empty() || outs.is_empty() {
            return Err("there are no parts or no outputs".to_string());
        }
        let mut weights = Vec::with_capacity(parts.len());
        let mut format = None;
        let mut bias_staging = 0;
        for (i, part) in parts.iter().enumerate() {
            let role = if parts.len() == 1 {
                "weight".to_string()
            } else {
                format!("part {i} weight")
            };
            let w = WeightRef::check(c, &part.weight, &role)?;
            let f = format_of(&w)?;
            if *format.get_or_insert(f) != f {
                return Err(format!(
                    "{role} is {f:?}, but part 0 is {:?}: fused parts share one format",
                    format.unwrap_or(f)
                ));
            }
            if w.k != k {
                return Err(format!(
                    "x has shape {:?}, whose last axis is not the {role}'s K = {}",
                    xi.shape, w.k
                ));
            }
            if w.n == 0 || w.k == 0 {
                return Err(format!("{role} has an empty shape [{}, {}]", w.n, w.k));
            }
            let bias = match part.bias {
                Some(b) => {
                    let bi = c.input(b, "bias")?;
                    if bi.len != w.n {
                        return Err(format!(
                            "bias of part {i} has shape {:?}, expected {} elements",
                            bi.shape, w.n
                        ));
                    }
                    bias_staging += w.n;
                    Some((b, bias_staging - w.n))
                }
                None => None,
            };
            weights.push((w, bias));
        }
        if let ([(w, _)], [out]) = (&weights[..], outs) {
            let mut want = lead.to_vec();
            want.push(w.n);
            same_shape("out", c.output(*out, "out")?, &want)?;
        }
        let mut layout = Vec::with_capacity(parts.len());
        let mut widths = Vec::with_capacity(outs.len());
        let mut next = weights.iter().map(|(w, _)| w.n);
        let mut all_f32 = true;
        for (o, &out) in outs.iter().enumerate() {
            let oi = c.output(out, "out")?;
            let Some((&width, out_lead)) = oi.shape.split_last() else {
                return Err(format!("output {o} is a scalar, expected [..., N]"));
            };
            if out_lead != lead {
                return Err(format!(
                    "output {o} has shape {:?}, expected x's leading axes {lead:?}",
                    oi.shape
                ));
            }
            all_f32 &= oi.dtype == DType::F32;
            let mut filled = 0;
            while filled < width {
                let Some(n) = next.next() else {
                    return Err(format!(
                        "output {o} has {width} columns, the parts end after {filled}"
                    ));
                };
                layout.push(Part {
                    n,
                    out: o,
                    shift: filled,
                });
                filled += n;
            }
            if filled != width {
                return Err(format!(
                    "output {o} has {width} columns, which do not end at a part boundary \
                     ({filled})"
                ));
            }
            widths.push(width);
        }
        if next.next().is_some() {
            return Err("the parts have more columns than the outputs".to_string());
        }
        let m = xi.len / k;
        let columns: usize = widths.iter().sum();
        let levels = weights.iter().map(|_| OnceLock::new()).collect();
        Ok(Linear {
            levels,
            x,
            weights,
            parts: layout,
            outs: outs.to_vec(),
            widths,
            format: format.expect("at least one part"),
            k,
            m,
            x_staging: staging(xi),
            bias_staging,
            out_staging: if outs.len() == 1 && all_f32 {
                0
            } else {
                m * columns
            },
        })
    }

    /// f32 scratch: converted x, the biases (always copied, to sit side by side) and outputs.
    pub fn scratch(&self) -> usize {
        self.x_staging + self.bias_staging + self.out_staging
    }

    /// The int8 activations this step quantizes, `[m, k]`, if it takes that path.
    pub fn q8_rows(&self) -> Option<(usize, usize)> {
        (self.format.is_quantized() && self.k.is_multiple_of(BLOCK)).then_some((self.m, self.k))
    }

    /// The packed weights of part `p` as the kernels read them (checked at load).
    fn weights<'a>(&'a self, mem: &Memory<'a>, p: usize) -> Weights<'a> {
        let w = &self.weights[p].0;
        let floats = |t: Option<usize>| match t.map(|t| mem.src(t)) {
            Some(Src::F16(s)) => Scales::F16(s),
            Some(Src::F32(s)) => Scales::F32(s),
            _ => unreachable!("checked at load: scales and palettes are f16 or f32"),
        };
        let scales = |q: Option<super::weight::Quant>| floats(q.map(|q| q.scale));
        let data = match (self.format, mem.src(w.data)) {
            (WeightFormat::F32, Src::F32(d)) => WeightData::F32(d),
            (WeightFormat::F16, Src::F16(d)) => WeightData::F16(d),
            (WeightFormat::Int8PerChannel, Src::I8(d)) => WeightData::Int8PerChannel {
                data: d,
                scales: scales(w.quant),
            },
            (WeightFormat::Int4PerChannel, Src::I4(d)) => WeightData::Int4PerChannel {
                packed: d,
                scales: scales(w.quant),
            },
            (WeightFormat::Int4Block32, Src::I4(d)) => WeightData::Int4Block32 {
                packed: d,
                scales: scales(w.quant),
            },
            (WeightFormat::Int8Block32, Src::I8(d)) => WeightData::Int8Block32 {
                data: d,
                scales: scales(w.quant),
            },
            (WeightFormat::Lut4 | WeightFormat::Lut6, Src::Indices { bits, packed }) => {
                let palette = w.palette.expect("checked at load: indices have palettes");
                let values = floats(Some(palette.lut));
                let (levels, steps) =
                    self.levels[p].get_or_init(|| quantize_levels(values, 1 << bits));
                WeightData::Palettized(Palettes {
                    bits,
                    indices: packed,
                    group_rows: palette.group_rows,
                    values,
                    levels,
                    steps,
                })
            }
            _ => unreachable!("checked at load: the format matches the data type"),
        };
        let weights =
            Weights::new(w.n, w.k, data).expect("checked at load: weight sizes match their shape");
        match w
            .quant
            .and_then(|q| Some((q.offset?, w.n * (w.k / q.group))))
        {
            Some((offset, len)) => weights
                .with_offsets(super::weight::offsets_of(mem.src(offset), len))
                .expect("checked at load: one offset per scale"),
            None => weights,
        }
    }

    /// Runs every part as one job on the thread pool.
    pub fn run(&self, ctx: &mut Ctx) -> Result<(), String> {
        let kernels = ctx.cpu.kernels;
        let mem = ctx.mem;
        let (x_buf, rest) = ctx.scratch.split_at_mut(self.x_staging);
        let (bias_buf, out_buf) = rest.split_at_mut(self.bias_staging);
        let x = to_f32(kernels, mem.src(self.x), x_buf);
        for (w, bias) in &self.weights {
            if let Some((b, at)) = *bias {
                read_f32(kernels, mem.src(b), 0, &mut bias_buf[at..at + w.n]);
            }
        }
        let bias_buf = &*bias_buf;
        let part = |p: usize| {
            let bias = self.weights[p]
                .1
                .map(|(_, at)| &bias_buf[at..at + self.parts[p].n]);
            (self.weights(mem, p), bias)
        };
        let layout = (&self.widths[..], &self.parts[..]);
        let (cpu, linear) = (ctx.cpu, &mut *ctx.linear);
        let path = plan_activations()?;
        let mut run = |y: &mut [f32]| {
            linear_parts(cpu, y, x, layout, &part, path, linear)
                .map_err(|e| e.message().to_string())
        };
        if self.out_staging == 0 {
            // SAFETY: `out` is this step's only output and is viewed once.
            let Dst::F32(y) = (unsafe { mem.dst(self.outs[0]) }) else {
                unreachable!("checked at load: an unstaged output is f32")
            };
            return run(y);
        }
        let staged = &mut out_buf[..self.out_staging];
        run(staged)?;
        let mut from = 0;
        for (&out, &width) in self.outs.iter().zip(&self.widths) {
            // SAFETY: each output of this step is viewed once (the outputs are distinct tensors,
            // which the load-time check keeps from overlapping).
            let mut dst = unsafe { mem.dst(out) };
            let len = self.m * width;
            write_f32(kernels, &staged[from..from + len], &mut dst, 0);
            from += len;
        }
        Ok(())
    }
}
