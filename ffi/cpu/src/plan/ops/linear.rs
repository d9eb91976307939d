//! `linear`: `out[..., n] = sum_k x[..., k] W[n, k] + bias[n]`, through [`crate::linear`] on the
//! packed weights.
//!
//! The activation path never depends on the number of rows: quantized weights with `K % 32 == 0`
//! always take int8 activations (quantized per row), everything else f32. So a token's row is
//! computed identically in a 1-token decode call and in a 32-token call, which lookahead decoding
//! relies on to reproduce greedy decoding exactly.

use super::weight::WeightRef;
use super::{same_shape, staging, Checker, Ctx};
use crate::linear::{linear_reusing, ActivationPath, LinearOptions};
use crate::plan::convert::{to_f32, with_f32_out};
use crate::plan::format::Weight;
use crate::plan::memory::{Memory, Src};
use crate::plan::tensor::DType;
use crate::weights::{Scales, WeightData, WeightFormat, Weights, BLOCK};

/// A checked linear step.
#[derive(Debug)]
pub struct Linear {
    x: usize,
    w: WeightRef,
    format: WeightFormat,
    bias: Option<usize>,
    out: usize,
    /// Rows: elements of x over K.
    m: usize,
    x_staging: usize,
    bias_staging: usize,
    out_staging: usize,
}

/// The kernel format for a weight operand, or why there is none.
fn format_of(w: &WeightRef) -> Result<WeightFormat, String> {
    Ok(match (w.dtype, w.quant) {
        (DType::F32, None) => WeightFormat::F32,
        (DType::F16, None) => WeightFormat::F16,
        (DType::I8, Some(q)) if q.group == w.k => WeightFormat::Int8PerChannel,
        (DType::I4, Some(q)) if q.group == w.k => WeightFormat::Int4PerChannel,
        (DType::I4, Some(q)) if q.group == BLOCK => WeightFormat::Int4Block32,
        (dtype, quant) => {
            return Err(format!(
                "weight {} [{}, {}] with scales per {} inputs has no kernel: quantized weights \
                 take one scale per output channel (group = K), or int4 one per {BLOCK} inputs",
                dtype.name(),
                w.n,
                w.k,
                quant.map_or(0, |q| q.group)
            ))
        }
    })
}

impl Linear {
    /// Checks `x [..., K]`, the weight `[N, K]`, `bias [N]` and `out [..., N]`.
    pub fn check(
        c: &Checker,
        x: usize,
        weight: &Weight,
        bias: Option<usize>,
        out: usize,
    ) -> Result<Self, String> {
        let w = WeightRef::check(c, weight, "weight")?;
        let format = format_of(&w)?;
        let xi = c.input(x, "x")?;
        let oi = c.output(out, "out")?;
        let Some((&k, lead)) = xi.shape.split_last() else {
            return Err("x is a scalar, expected [..., K]".to_string());
        };
        if k != w.k {
            return Err(format!(
                "x has shape {:?}, whose last axis is not the weight's K = {}",
                xi.shape, w.k
            ));
        }
        if w.n == 0 || w.k == 0 {
            return Err(format!("weight has an empty shape [{}, {}]", w.n, w.k));
        }
        let mut want = lead.to_vec();
        want.push(w.n);
        same_shape("out", oi, &want)?;
        let bias_staging = match bias {
            Some(b) => {
                let bi = c.input(b, "bias")?;
                if bi.len != w.n {
                    return Err(format!(
                        "bias has shape {:?}, expected {} elements",
                        bi.shape, w.n
                    ));
                }
                staging(bi)
            }
            None => 0,
        };
        Ok(Linear {
            x,
            w,
            format,
            bias,
            out,
            m: xi.len / k,
            x_staging: staging(xi),
            bias_staging,
            out_staging: staging(oi),
        })
    }

    /// f32 scratch: converted x, bias and output.
    pub fn scratch(&self) -> usize {
        self.x_staging + self.bias_staging + self.out_staging
    }

    /// The int8 activations this step quantizes, `[m, k]`, if it takes that path.
    pub fn q8_rows(&self) -> Option<(usize, usize)> {
        (self.format.is_quantized() && self.w.k.is_multiple_of(BLOCK)).then_some((self.m, self.w.k))
    }

    /// The packed weights as the kernels read them.
    fn weights<'a>(&self, mem: &Memory<'a>) -> Result<Weights<'a>, String> {
        let scales = |q: Option<super::weight::Quant>| match q.map(|q| mem.src(q.scale)) {
            Some(Src::F16(s)) => Scales::F16(s),
            Some(Src::F32(s)) => Scales::F32(s),
            _ => unreachable!("checked at load: quantized weights have f16 or f32 scales"),
        };
        let data = match (self.format, mem.src(self.w.data)) {
            (WeightFormat::F32, Src::F32(d)) => WeightData::F32(d),
            (WeightFormat::F16, Src::F16(d)) => WeightData::F16(d),
            (WeightFormat::Int8PerChannel, Src::I8(d)) => WeightData::Int8PerChannel {
                data: d,
                scales: scales(self.w.quant),
            },
            (WeightFormat::Int4PerChannel, Src::I4(d)) => WeightData::Int4PerChannel {
                packed: d,
                scales: scales(self.w.quant),
            },
            (WeightFormat::Int4Block32, Src::I4(d)) => WeightData::Int4Block32 {
                packed: d,
                scales: scales(self.w.quant),
            },
            _ => unreachable!("checked at load: the format matches the data type"),
        };
        Weights::new(self.w.n, self.w.k, data).map_err(|e| e.message().to_string())
    }

    /// Runs the layer on the thread pool.
    pub fn run(&self, ctx: &mut Ctx) -> Result<(), String> {
        let weights = self.weights(ctx.mem)?;
        let (x_buf, rest) = ctx.scratch.split_at_mut(self.x_staging);
        let (bias_buf, out_buf) = rest.split_at_mut(self.bias_staging);
        let x = to_f32(ctx.cpu.kernels, ctx.mem.src(self.x), x_buf);
        let bias = self
            .bias
            .map(|b| to_f32(ctx.cpu.kernels, ctx.mem.src(b), bias_buf));
        let options = LinearOptions {
            bias,
            path: ActivationPath::Int8,
        };
        // SAFETY: `out` is this step's only output and is viewed once.
        let out = unsafe { ctx.mem.dst(self.out) };
        let (cpu, linear) = (ctx.cpu, &mut *ctx.linear);
        with_f32_out(cpu.kernels, out, out_buf, |y| {
            linear_reusing(cpu, y, x, &weights, &options, linear)
        })
        .map_err(|e| e.message().to_string())
    }
}
