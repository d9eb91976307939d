//! Builds small execution plans and their weight.bin for tests, and runs them.
//!
//! Tensors get their own storage (arena tensors never share bytes) unless a test places them
//! itself; weights are appended to an in-memory weight.bin written in the format of
//! `coreml/blob_storage.ts` (64-byte header, a 64-byte record before each blob).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use llamane_cpu::plan::memory::CallerBuffer;
use llamane_cpu::plan::Plan;
use llamane_cpu::quantize::{int4_block32, int4_per_channel, int8_per_channel};
use llamane_cpu::weight_file::WeightFile;

/// Little-endian bytes of f32 values.
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Little-endian bytes of f16 values (rounded to nearest even).
pub fn f16_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_bits().to_le_bytes())
        .collect()
}

/// Little-endian bytes of i32 values.
pub fn i32_bytes(values: &[i32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Bytes of values in `dtype` ("f32", "f16" or "i32"; i32 from whole f32 values).
pub fn bytes_of(dtype: &str, values: &[f32]) -> Vec<u8> {
    match dtype {
        "f32" => f32_bytes(values),
        "f16" => f16_bytes(values),
        "i32" => i32_bytes(&values.iter().map(|&v| v as i32).collect::<Vec<_>>()),
        other => panic!("bytes_of: {other}"),
    }
}

/// Values of `dtype` bytes as f32.
pub fn values_of(dtype: &str, bytes: &[u8]) -> Vec<f32> {
    match dtype {
        "f32" => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        "f16" => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_bits(u16::from_le_bytes(c.try_into().unwrap())).to_f32())
            .collect(),
        "i32" => bytes
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        other => panic!("values_of: {other}"),
    }
}

/// `values` rounded through `dtype` (what a step writing that type stores).
pub fn rounded(dtype: &str, values: &[f32]) -> Vec<f32> {
    values_of(dtype, &bytes_of(dtype, values))
}

fn element_bytes(dtype: &str, count: usize) -> usize {
    match dtype {
        "f16" => count * 2,
        "f32" | "i32" => count * 4,
        "i8" => count,
        "i4" => count.div_ceil(2),
        other => panic!("element_bytes: {other}"),
    }
}

fn blob_code(dtype: &str) -> u32 {
    match dtype {
        "f16" => 1,
        "f32" => 2,
        "i8" => 4,
        "i4" => 8,
        "i32" => 14,
        other => panic!("blob_code: {other}"),
    }
}

/// A plan under construction.
pub struct PlanBuilder {
    pub tensors: Vec<Value>,
    pub steps: Vec<Value>,
    inputs: Vec<usize>,
    outputs: Vec<usize>,
    /// Caller data of each input.
    pub input_data: Vec<Vec<u8>>,
    /// Bytes of each output buffer.
    pub output_bytes: Vec<usize>,
    pub arena_bytes: usize,
    /// weight.bin so far.
    pub blobs: Vec<u8>,
}

impl Default for PlanBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PlanBuilder {
    pub fn new() -> Self {
        let mut blobs = vec![0u8; 64];
        blobs[4..8].copy_from_slice(&2u32.to_le_bytes());
        PlanBuilder {
            tensors: Vec::new(),
            steps: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            input_data: Vec::new(),
            output_bytes: Vec::new(),
            arena_bytes: 0,
            blobs,
        }
    }

    /// A tensor with explicit storage.
    pub fn tensor(&mut self, dtype: &str, shape: &[usize], storage: Value) -> usize {
        self.tensors
            .push(json!({ "dtype": dtype, "shape": shape, "storage": storage }));
        self.tensors.len() - 1
    }

    /// A caller input holding `bytes`.
    pub fn input_bytes(&mut self, dtype: &str, shape: &[usize], bytes: Vec<u8>) -> usize {
        let count: usize = shape.iter().product();
        assert_eq!(
            bytes.len(),
            element_bytes(dtype, count),
            "input_bytes: size"
        );
        let index = self.inputs.len();
        let t = self.tensor(dtype, shape, json!({ "kind": "input", "index": index }));
        self.inputs.push(t);
        self.input_data.push(bytes);
        t
    }

    /// A caller input holding `values` in `dtype`.
    pub fn input(&mut self, dtype: &str, shape: &[usize], values: &[f32]) -> usize {
        self.input_bytes(dtype, shape, bytes_of(dtype, values))
    }

    /// A caller output.
    pub fn output(&mut self, dtype: &str, shape: &[usize]) -> usize {
        let index = self.outputs.len();
        let t = self.tensor(dtype, shape, json!({ "kind": "output", "index": index }));
        self.outputs.push(t);
        self.output_bytes
            .push(element_bytes(dtype, shape.iter().product()));
        t
    }

    /// A tensor in fresh arena bytes.
    pub fn arena(&mut self, dtype: &str, shape: &[usize]) -> usize {
        let offset = self.arena_bytes;
        let bytes = element_bytes(dtype, shape.iter().product());
        self.arena_bytes += bytes.div_ceil(64) * 64;
        self.tensor(dtype, shape, json!({ "kind": "arena", "offset": offset }))
    }

    /// A tensor of inline constants.
    pub fn inline(&mut self, dtype: &str, shape: &[usize], values: &[f64]) -> usize {
        self.tensor(dtype, shape, json!({ "kind": "inline", "values": values }))
    }

    /// Appends a blob to weight.bin and returns its record offset.
    pub fn blob(&mut self, dtype: &str, count: usize, data: &[u8]) -> usize {
        assert_eq!(data.len(), element_bytes(dtype, count), "blob: size");
        let record = self.blobs.len().div_ceil(64) * 64;
        self.blobs.resize(record + 64, 0);
        let r = &mut self.blobs[record..];
        r[0..4].copy_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
        r[4..8].copy_from_slice(&blob_code(dtype).to_le_bytes());
        r[8..16].copy_from_slice(&(data.len() as u64).to_le_bytes());
        r[16..24].copy_from_slice(&((record + 64) as u64).to_le_bytes());
        let padding = if dtype == "i4" && count % 2 == 1 {
            4u64
        } else {
            0
        };
        r[24..32].copy_from_slice(&padding.to_le_bytes());
        self.blobs.extend_from_slice(data);
        let count_now = u32::from_le_bytes(self.blobs[0..4].try_into().unwrap()) + 1;
        self.blobs[0..4].copy_from_slice(&count_now.to_le_bytes());
        record
    }

    /// A weight tensor holding `data` (raw bytes in `dtype`).
    pub fn weight_bytes(&mut self, dtype: &str, shape: &[usize], data: &[u8]) -> usize {
        let record = self.blob(dtype, shape.iter().product(), data);
        self.tensor(dtype, shape, json!({ "kind": "weight", "offset": record }))
    }

    /// A weight tensor holding `values` in `dtype` (f16, f32 or i32).
    pub fn weight(&mut self, dtype: &str, shape: &[usize], values: &[f32]) -> usize {
        self.weight_bytes(dtype, shape, &bytes_of(dtype, values))
    }

    /// `w [n, k]` as the weight operand of a linear step in one of the bundle's formats (f32, f16,
    /// c8w, c4w; anything else is b4w), scales f16.
    pub fn linear_weight(&mut self, format: &str, w: &[f32], (n, k): (usize, usize)) -> Value {
        let f16 = |v: &[f32]| bytes_of("f16", v);
        match format {
            "f32" | "f16" => json!({ "data": self.weight(format, &[n, k], w) }),
            "c8w" => {
                let (q, s) = int8_per_channel(w, n, k);
                let data: Vec<u8> = q.iter().map(|&v| v as u8).collect();
                json!({
                    "data": self.weight_bytes("i8", &[n, k], &data),
                    "scale": self.weight_bytes("f16", &[n, 1], &f16(&s)),
                    "group": k,
                })
            }
            "c4w" => {
                let (p, s) = int4_per_channel(w, n, k);
                json!({
                    "data": self.weight_bytes("i4", &[n, k], &p),
                    "scale": self.weight_bytes("f16", &[n, 1], &f16(&s)),
                    "group": k,
                })
            }
            _ => {
                let (p, s) = int4_block32(w, n, k);
                json!({
                    "data": self.weight_bytes("i4", &[n, k], &p),
                    "scale": self.weight_bytes("f16", &[n, k / 32], &f16(&s)),
                    "group": 32,
                })
            }
        }
    }

    /// Adds a step.
    pub fn step(&mut self, step: Value) {
        self.steps.push(step);
    }

    /// The plan as JSON.
    pub fn json(&self) -> Value {
        json!({
            "version": 1,
            "tensors": self.tensors,
            "inputs": self.inputs,
            "inputNames": (0..self.inputs.len()).map(|i| format!("in{i}")).collect::<Vec<_>>(),
            "outputs": self.outputs,
            "outputNames": (0..self.outputs.len()).map(|i| format!("out{i}")).collect::<Vec<_>>(),
            "steps": self.steps,
            "arenaBytes": self.arena_bytes,
        })
    }

    /// weight.bin written to a unique temporary file and mapped (the file is removed at once;
    /// the mapping stays valid).
    pub fn weights(&self) -> Arc<WeightFile> {
        map_bytes(&self.blobs)
    }

    /// Creates the plan from `json` (which may be this builder's, edited).
    pub fn plan_from(&self, json: &Value) -> Result<Plan, String> {
        Plan::new(self.weights(), json.to_string().as_bytes()).map_err(|e| e.message().to_string())
    }

    /// Creates the plan.
    pub fn plan(&self) -> Result<Plan, String> {
        self.plan_from(&self.json())
    }

    /// Runs `plan` on this builder's inputs and returns the output bytes.
    pub fn run_plan(&self, plan: &Plan) -> Result<Vec<Vec<u8>>, String> {
        run(plan, &self.input_data, &self.output_bytes)
    }

    /// Creates and runs the plan.
    pub fn run(&self) -> Result<Vec<Vec<u8>>, String> {
        let plan = self.plan()?;
        self.run_plan(&plan)
    }
}

/// Writes `bytes` to a unique temporary file, maps it and removes the file.
pub fn map_bytes(bytes: &[u8]) -> Arc<WeightFile> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let path: PathBuf = std::env::temp_dir().join(format!(
        "llamane-test-{}-{}.bin",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, bytes).unwrap();
    let file = WeightFile::open(&path);
    std::fs::remove_file(&path).unwrap();
    Arc::new(file.unwrap())
}

/// Runs `plan` on copies of `inputs` (8-byte aligned) into fresh outputs of the given sizes.
pub fn run(
    plan: &Plan,
    inputs: &[Vec<u8>],
    output_bytes: &[usize],
) -> Result<Vec<Vec<u8>>, String> {
    let mut ins: Vec<Vec<u64>> = inputs
        .iter()
        .map(|b| {
            let mut words = vec![0u64; b.len().div_ceil(8)];
            // SAFETY: the Vec holds at least b.len() bytes.
            unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), b.len()) }
                .copy_from_slice(b);
            words
        })
        .collect();
    let mut outs: Vec<Vec<u64>> = output_bytes
        .iter()
        .map(|&n| vec![0u64; n.div_ceil(8)])
        .collect();
    let in_bufs: Vec<CallerBuffer> = ins
        .iter_mut()
        .zip(inputs)
        .map(|(w, b)| CallerBuffer {
            ptr: w.as_mut_ptr().cast(),
            bytes: b.len(),
        })
        .collect();
    let out_bufs: Vec<CallerBuffer> = outs
        .iter_mut()
        .zip(output_bytes)
        .map(|(w, &n)| CallerBuffer {
            ptr: w.as_mut_ptr().cast(),
            bytes: n,
        })
        .collect();
    // SAFETY: every buffer is an owned, distinct Vec of its stated size, alive for the call.
    unsafe { plan.run(&in_bufs, &out_bufs) }.map_err(|e| e.message().to_string())?;
    Ok(outs
        .iter()
        .zip(output_bytes)
        .map(|(w, &n)| {
            // SAFETY: the Vec holds at least n bytes.
            unsafe { std::slice::from_raw_parts(w.as_ptr().cast::<u8>(), n) }.to_vec()
        })
        .collect())
}
