//! `attention`: `out[l, h] = softmax(scale q[l, h] . K^T + mask[l]) V` with keys and values read
//! from their sources (the KV cache and the call's new entries) where they lie, through
//! [`crate::attention`]. Queries and the mask are read as f32, the output rounded once.

use super::{same_shape, staging, Checker, Ctx};
use crate::attention::{attention, Shape, Sources};
use crate::kernels::Rows;
use crate::plan::convert::{to_f32, with_f32_out};
use crate::plan::memory::Src;
use crate::plan::tensor::DType;

/// A checked attention step.
#[derive(Debug)]
pub struct Attention {
    q: usize,
    keys: Vec<usize>,
    values: Vec<usize>,
    mask: usize,
    scale: f32,
    out: usize,
    shape: Shape,
    key_lens: Vec<usize>,
    value_lens: Vec<usize>,
    /// f32 scratch: converted q, mask and output.
    staging: [usize; 3],
}

/// Checks sources `[hkv, s_i, d]` of f16 or f32 and returns their lengths.
fn sources(
    c: &Checker,
    tensors: &[usize],
    role: &str,
    (hkv, d): (usize, usize),
) -> Result<Vec<usize>, String> {
    if tensors.is_empty() {
        return Err(format!("there are no {role}"));
    }
    tensors
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let info = c.input(t, &format!("{role} {i}"))?;
            if !matches!(info.dtype, DType::F16 | DType::F32) {
                return Err(format!(
                    "{role} {i} (tensor {t}) is {}, expected f16 or f32",
                    info.describe()
                ));
            }
            match info.shape[..] {
                [a, s, b] if a == hkv && b == d => Ok(s),
                _ => Err(format!(
                    "{role} {i} (tensor {t}) has shape {:?}, expected [{hkv}, S, {d}]",
                    info.shape
                )),
            }
        })
        .collect()
}

impl Attention {
    /// Checks `q [L, H, D]`, keys and values `[Hkv, S_i, D]` (Hkv dividing H, the same S in all),
    /// `mask [L, S]` and `out [L, H, D]`.
    pub fn check(
        c: &Checker,
        (q, keys, values, mask): (usize, &[usize], &[usize], usize),
        scale: f64,
        out: usize,
    ) -> Result<Self, String> {
        let qi = c.input(q, "q")?;
        let [l, h, d] = qi.shape[..] else {
            return Err(format!("q has shape {:?}, expected [L, H, D]", qi.shape));
        };
        let first = c.input(*keys.first().ok_or("there are no keys")?, "keys 0")?;
        let hkv = first.shape.first().copied().unwrap_or(0);
        if hkv == 0 || !h.is_multiple_of(hkv) {
            return Err(format!(
                "keys 0 has shape {:?}, whose {hkv} heads do not divide the {h} query heads",
                first.shape
            ));
        }
        let key_lens = sources(c, keys, "keys", (hkv, d))?;
        let value_lens = sources(c, values, "values", (hkv, d))?;
        let s: usize = key_lens.iter().sum();
        if value_lens.iter().sum::<usize>() != s {
            return Err(format!(
                "the keys are {s} long, the values {}",
                value_lens.iter().sum::<usize>()
            ));
        }
        let mi = c.input(mask, "mask")?;
        same_shape("mask", mi, &[l, s])?;
        let oi = c.output(out, "out")?;
        same_shape("out", oi, &qi.shape)?;
        if !scale.is_finite() {
            return Err(format!("scale {scale} is not finite"));
        }
        Ok(Attention {
            q,
            keys: keys.to_vec(),
            values: values.to_vec(),
            mask,
            scale: scale as f32,
            out,
            shape: Shape { l, h, hkv, d, s },
            key_lens,
            value_lens,
            staging: [staging(qi), mi.len, staging(oi)],
        })
    }

    /// f32 scratch: converted q, mask (always converted: the mask row is scanned as f32) and
    /// output.
    pub fn scratch(&self) -> usize {
        self.staging.iter().sum()
    }

    /// The sizes the per-thread scratch must hold.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Runs the step on the thread pool.
    pub fn run(&self, ctx: &mut Ctx) -> Result<(), String> {
        let kernels = ctx.cpu.kernels;
        let mem = ctx.mem;
        let (q_buf, rest) = ctx.scratch.split_at_mut(self.staging[0]);
        let (mask_buf, out_buf) = rest.split_at_mut(self.staging[1]);
        let q = to_f32(kernels, mem.src(self.q), q_buf);
        let mask = match mem.src(self.mask) {
            Src::F32(m) => m,
            src => {
                crate::plan::convert::read_f32(kernels, src, 0, mask_buf);
                &*mask_buf
            }
        };
        let rows = |t: usize| match mem.src(t) {
            Src::F16(s) => Rows::F16(s),
            Src::F32(s) => Rows::F32(s),
            _ => unreachable!("checked at load: keys and values are f16 or f32"),
        };
        let key_rows = |i: usize| rows(self.keys[i]);
        let value_rows = |i: usize| rows(self.values[i]);
        let keys = Sources {
            lens: &self.key_lens,
            rows: &key_rows,
        };
        let values = Sources {
            lens: &self.value_lens,
            rows: &value_rows,
        };
        // SAFETY: `out` is this step's only output and is viewed once.
        let out = unsafe { mem.dst(self.out) };
        let (cpu, scratch) = (ctx.cpu, ctx.attention);
        with_f32_out(kernels, out, out_buf, |y| {
            attention(
                cpu,
                y,
                (q, mask, self.scale),
                &self.shape,
                &keys,
                &values,
                scratch,
            )
        })
        .map_err(|e| e.message().to_string())
    }
}
