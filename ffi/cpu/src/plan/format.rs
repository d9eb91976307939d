//! The plan's JSON, as `runtime/backend/cpu/plan.ts` writes it (field names are the types of
//! `runtime/backend/cpu/format.ts`; the format is ffi/cpu/PLAN.md). Parsing only: nothing here is trusted until
//! [`super::check`] has checked it.
//!
//! Tensors and steps are parsed one by one from generic JSON values, so an error names the tensor
//! or step it is about instead of a column in a one-line document. Unknown fields are errors: the
//! plan is a versioned contract, and a misspelt field must not silently take a default.

use serde::Deserialize;

/// Element type of a plan tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// IEEE binary16.
    F16,
    /// IEEE binary32.
    F32,
    /// Signed 32-bit integers.
    I32,
    /// Signed 8-bit integers (weights only).
    I8,
    /// Signed 4-bit integers, two per byte, low nibble first (weights only).
    I4,
    /// Unsigned 4-bit palette indices, two per byte, low nibble first (weights only).
    U4,
    /// Unsigned 6-bit palette indices, one LSB-first bit stream (weights only).
    U6,
}

/// Where a tensor's bytes live.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Storage {
    /// The caller's `index`-th input buffer.
    Input { index: usize },
    /// The caller's `index`-th output buffer.
    Output { index: usize },
    /// `offset` bytes into the scratch arena.
    Arena { offset: usize },
    /// The blob whose metadata record is at `offset` in weight.bin.
    Weight { offset: usize },
    /// Constants written in the plan.
    Inline { values: Vec<f64> },
}

/// One tensor.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tensor {
    /// Element type.
    pub dtype: DType,
    /// Static sizes, row-major; `[]` is a scalar.
    pub shape: Vec<usize>,
    /// Where the bytes are.
    pub storage: Storage,
}

/// A weight read by a fused op: dense data, or quantized data with scales per `group` inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weight {
    /// Tensor of the data `[N, K]`.
    pub data: usize,
    /// Tensor of the scales `[N, K / group]` (quantized data only).
    pub scale: Option<usize>,
    /// Inputs per scale along a row (quantized data only).
    pub group: Option<usize>,
    /// Tensor of the offsets `[N, K / group]`, subtracted from the data before scaling
    /// (quantized data only; none means zero).
    pub offset: Option<usize>,
    /// Tensor of the palettes `[G, 1, 2^bits, 1]` of u4/u6 indices, one per `N / G` rows.
    pub lut: Option<usize>,
}

/// One weight matrix of a `fused_linear` step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearPart {
    /// The weight `[N, K]`.
    pub weight: Weight,
    /// Tensor of the bias `[N]`.
    pub bias: Option<usize>,
}

/// `binary` kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BinaryKind {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b`.
    Div,
}

/// `unary` kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnaryKind {
    /// `x * sigmoid(x)`.
    Silu,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `1 / sqrt(x + eps)`.
    Rsqrt,
}

/// One step; every `usize` field names a tensor.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// `out[..., n] = sum_k x[..., k] W[n, k] + bias[n]`.
    Linear {
        x: usize,
        weight: Weight,
        bias: Option<usize>,
        out: usize,
    },
    /// Several linears on one `x`: the parts' results, side by side along the last axis, are
    /// the outputs side by side, each output made of whole consecutive parts.
    FusedLinear {
        x: usize,
        parts: Vec<LinearPart>,
        outs: Vec<usize>,
    },
    /// `out[l, h] = softmax(scale q[l, h] . K^T + mask[l]) V` over the key sources in order.
    Attention {
        q: usize,
        keys: Vec<usize>,
        values: Vec<usize>,
        mask: usize,
        scale: f64,
        out: usize,
    },
    /// Half-split rotary embedding of `x [L, H, D]` by `cos`, `sin` `[L, D / 2]`.
    Rope {
        x: usize,
        cos: usize,
        sin: usize,
        out: usize,
    },
    /// `silu(gate) * up`.
    SiluMul { gate: usize, up: usize, out: usize },
    /// `out[i..., :] = T[indices[i...], :]`.
    Gather {
        table: Weight,
        indices: usize,
        out: usize,
    },
    /// `out = W`, dense.
    Dequantize { weight: Weight, out: usize },
    /// Per row: `x / sqrt(mean(x^2) + eps) * gain`.
    RmsNorm {
        x: usize,
        gain: usize,
        eps: f64,
        out: usize,
    },
    /// Per row: `(x - mean) / sqrt(var + eps) * gamma + beta`.
    LayerNorm {
        x: usize,
        gamma: Option<usize>,
        beta: Option<usize>,
        eps: f64,
        out: usize,
    },
    /// Element-wise with broadcasting.
    Binary {
        kind: BinaryKind,
        a: usize,
        b: usize,
        out: usize,
    },
    /// Element-wise.
    Unary {
        kind: UnaryKind,
        eps: f64,
        x: usize,
        out: usize,
    },
    /// Over the last axis.
    Softmax { x: usize, out: usize },
    /// Batched `a @ b` after the flagged transposes.
    Matmul {
        a: usize,
        b: usize,
        #[serde(rename = "transposeA")]
        transpose_a: bool,
        #[serde(rename = "transposeB")]
        transpose_b: bool,
        out: usize,
    },
    /// `out.shape[i] = x.shape[perm[i]]`.
    Transpose {
        x: usize,
        perm: Vec<usize>,
        out: usize,
    },
    /// Along `axis`.
    Concat {
        inputs: Vec<usize>,
        axis: usize,
        out: usize,
    },
    /// Consecutive parts along `axis`.
    Split {
        x: usize,
        axis: usize,
        outs: Vec<usize>,
    },
    /// To the output's dtype.
    Cast { x: usize, out: usize },
    /// Mean over `axes`.
    ReduceMean {
        x: usize,
        axes: Vec<usize>,
        out: usize,
    },
    /// Same bytes, another shape.
    Copy { x: usize, out: usize },
}

impl Step {
    /// The op name as written in the plan, for messages.
    pub fn op(&self) -> &'static str {
        match self {
            Step::Linear { .. } => "linear",
            Step::FusedLinear { .. } => "fused_linear",
            Step::Attention { .. } => "attention",
            Step::Rope { .. } => "rope",
            Step::SiluMul { .. } => "silu_mul",
            Step::Gather { .. } => "gather",
            Step::Dequantize { .. } => "dequantize",
            Step::RmsNorm { .. } => "rms_norm",
            Step::LayerNorm { .. } => "layer_norm",
            Step::Binary { .. } => "binary",
            Step::Unary { .. } => "unary",
            Step::Softmax { .. } => "softmax",
            Step::Matmul { .. } => "matmul",
            Step::Transpose { .. } => "transpose",
            Step::Concat { .. } => "concat",
            Step::Split { .. } => "split",
            Step::Cast { .. } => "cast",
            Step::ReduceMean { .. } => "reduce_mean",
            Step::Copy { .. } => "copy",
        }
    }
}

/// The whole plan, tensors and steps still unparsed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Document {
    version: u32,
    tensors: Vec<serde_json::Value>,
    inputs: Vec<usize>,
    input_names: Vec<String>,
    outputs: Vec<usize>,
    output_names: Vec<String>,
    steps: Vec<serde_json::Value>,
    arena_bytes: usize,
}

/// A parsed plan.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanJson {
    /// Format version (1).
    pub version: u32,
    /// Every tensor; steps refer to them by index.
    pub tensors: Vec<Tensor>,
    /// Tensor of each caller input, in buffer order.
    pub inputs: Vec<usize>,
    /// Name of each input, for messages.
    pub input_names: Vec<String>,
    /// Tensor of each caller output, in buffer order.
    pub outputs: Vec<usize>,
    /// Name of each output, for messages.
    pub output_names: Vec<String>,
    /// Steps in execution order.
    pub steps: Vec<Step>,
    /// Bytes of scratch arena the plan needs.
    pub arena_bytes: usize,
}

/// The version of the format this library reads.
pub const VERSION: u32 = 1;

/// Parses a plan; an error names the tensor or step that is malformed. The version is checked
/// first, so a plan from a newer planner says so instead of failing on a field it added.
pub fn parse(json: &[u8]) -> Result<PlanJson, String> {
    let doc: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("plan is not valid JSON: {e}"))?;
    match doc.get("version").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => {
            return Err(format!(
                "plan has format version {v}, this library reads version {VERSION}"
            ))
        }
        None => return Err("plan has no numeric \"version\" field".to_string()),
    }
    let doc: Document =
        serde_json::from_value(doc).map_err(|e| format!("plan is malformed: {e}"))?;
    let tensors = doc
        .tensors
        .into_iter()
        .enumerate()
        .map(|(i, t)| serde_json::from_value(t).map_err(|e| format!("tensor {i}: {e}")))
        .collect::<Result<_, _>>()?;
    let steps = doc
        .steps
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let op = s
                .get("op")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("?")
                .to_string();
            serde_json::from_value(s).map_err(|e| format!("step {i} ({op}): {e}"))
        })
        .collect::<Result<_, _>>()?;
    Ok(PlanJson {
        version: doc.version,
        tensors,
        inputs: doc.inputs,
        input_names: doc.input_names,
        outputs: doc.outputs,
        output_names: doc.output_names,
        steps,
        arena_bytes: doc.arena_bytes,
    })
}
