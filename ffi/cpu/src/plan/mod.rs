//! Execution plans: one MIL function at one call length, compiled by
//! `runtime/backend/cpu/plan.ts` into tensors and steps (ffi/cpu/PLAN.md), checked once against
//! the piece's weight.bin, then run any number of times on caller-owned buffers.
//!
//! Data flow: `format.rs` parses the JSON, `check.rs` verifies every index, shape, size and
//! weight record and turns each step into an op (`ops/`, one file per op), and [`Plan::run`]
//! resolves the tensors to memory ([`memory`]: caller buffers, the arena, the mapped weights,
//! inline constants) and runs the ops in order. Scratch (arena, f32 staging, int8 activations) is
//! allocated when the plan is created, so a run allocates nothing.

mod arena;
mod check;
mod convert;
mod exec;
mod format;
pub mod memory;
mod ops;
mod shape;
pub mod tensor;

pub use check::BufferSpec;

use std::sync::{Arc, Mutex};

use crate::attention::AttentionScratch;
use crate::error::Error;
use crate::linear::LinearScratch;
use crate::thread_pool::ThreadPool;
use crate::weight_file::WeightFile;
use arena::Arena;
use check::Checked;

/// What a run writes besides the outputs; one run at a time uses it.
struct RunState {
    arena: Arena,
    /// f32 staging, as large as the hungriest step needs.
    scratch: Vec<f32>,
    linear: LinearScratch,
    attention: AttentionScratch,
}

/// A checked plan with its scratch memory, holding its weight file open.
pub struct Plan {
    weights: Arc<WeightFile>,
    checked: Checked,
    /// Op name of each step, for messages.
    names: Vec<&'static str>,
    state: Mutex<RunState>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("weights", &self.weights)
            .field("steps", &self.names.len())
            .field("arena_bytes", &self.checked.arena_bytes)
            .finish()
    }
}

impl Plan {
    /// Parses and checks a plan against `weights` and allocates its scratch.
    pub fn new(weights: Arc<WeightFile>, json: &[u8]) -> Result<Self, Error> {
        let fail = |e: String| Error::invalid(format!("cannot load the execution plan: {e}"));
        let doc = format::parse(json).map_err(fail)?;
        let checked = check::check(&doc, &weights).map_err(fail)?;
        // Scratch sizes come from the plan's shapes: allocate fallibly, so that an absurd plan is
        // an error instead of an abort.
        let no_memory = |what: &str, e: std::collections::TryReserveError| {
            fail(format!("cannot allocate the {what}: {e}"))
        };
        let mut linear = LinearScratch::default();
        for (m, k) in checked.ops.iter().filter_map(ops::Op::q8_rows) {
            linear
                .try_reserve(m, k)
                .map_err(|e| no_memory("int8 activations", e))?;
        }
        let mut attention = AttentionScratch::default();
        for shape in checked.ops.iter().filter_map(ops::Op::attention) {
            attention
                .try_reserve(ThreadPool::global().threads(), &shape)
                .map_err(|e| no_memory("attention buffers", e))?;
        }
        let elements = checked.ops.iter().map(ops::Op::scratch).max().unwrap_or(0);
        let mut scratch = Vec::new();
        scratch
            .try_reserve_exact(elements)
            .map_err(|e| no_memory("f32 scratch", e))?;
        scratch.resize(elements, 0.0);
        let state = RunState {
            arena: Arena::new(checked.arena_bytes).map_err(fail)?,
            scratch,
            linear,
            attention,
        };
        Ok(Plan {
            weights,
            checked,
            names: doc.steps.iter().map(format::Step::op).collect(),
            state: Mutex::new(state),
        })
    }

    /// The caller's input buffers, in the order `run` takes them.
    pub fn inputs(&self) -> &[BufferSpec] {
        &self.checked.inputs
    }

    /// The caller's output buffers, in the order `run` takes them.
    pub fn outputs(&self) -> &[BufferSpec] {
        &self.checked.outputs
    }

    /// Number of steps.
    pub fn steps(&self) -> usize {
        self.names.len()
    }

    /// The op name of step `i` (panics when out of range).
    pub fn step_name(&self, i: usize) -> &'static str {
        self.names[i]
    }

    /// The checked tensor `t` (panics when out of range).
    pub fn tensor(&self, t: usize) -> &tensor::TensorInfo {
        &self.checked.tensors[t]
    }
}
