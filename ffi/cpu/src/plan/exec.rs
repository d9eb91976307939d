//! Running a checked plan: the caller's buffers are checked against the plan (count, exact byte
//! length, alignment, no output overlapping another buffer), then the steps run in order.

use std::sync::TryLockError;

use super::memory::{CallerBuffer, Memory};
use super::ops::Ctx;
use super::{BufferSpec, Plan};
use crate::error::Error;
use crate::linear::Cpu;

/// Checks one side's buffers against the plan.
fn check_buffers(kind: &str, specs: &[BufferSpec], buffers: &[CallerBuffer]) -> Result<(), Error> {
    if specs.len() != buffers.len() {
        return Err(Error::invalid(format!(
            "the plan takes {} {kind} buffers, got {}",
            specs.len(),
            buffers.len()
        )));
    }
    for (i, (spec, buffer)) in specs.iter().zip(buffers).enumerate() {
        let name = &spec.name;
        if buffer.ptr.is_null() && buffer.bytes == 0 && spec.bytes > 0 {
            return Err(Error::invalid(format!(
                "{kind} {i} (\"{name}\") is not bound for this run"
            )));
        }
        if buffer.bytes != spec.bytes {
            return Err(Error::invalid(format!(
                "{kind} {i} (\"{name}\") has {} bytes, the plan's tensor needs {}",
                buffer.bytes, spec.bytes
            )));
        }
        if buffer.ptr.is_null() && buffer.bytes > 0 {
            return Err(Error::invalid(format!(
                "{kind} {i} (\"{name}\") is a null pointer"
            )));
        }
        if !(buffer.ptr as usize).is_multiple_of(spec.align) {
            return Err(Error::invalid(format!(
                "{kind} {i} (\"{name}\") at {:p} is not aligned to {} bytes",
                buffer.ptr, spec.align
            )));
        }
    }
    Ok(())
}

fn overlap(a: &CallerBuffer, b: &CallerBuffer) -> bool {
    let (a0, b0) = (a.ptr as usize, b.ptr as usize);
    a.bytes > 0 && b.bytes > 0 && a0 < b0 + b.bytes && b0 < a0 + a.bytes
}

impl Plan {
    /// Runs the plan: `inputs` and `outputs` in the plan's order, each exactly as long as the
    /// plan's tensor. Outputs are written; inputs are only read.
    ///
    /// # Safety
    /// Each buffer's pointer is valid for reads (inputs) or writes (outputs) of its `bytes` for
    /// the duration of the call, and nothing else accesses the output buffers meanwhile.
    pub unsafe fn run(
        &self,
        inputs: &[CallerBuffer],
        outputs: &[CallerBuffer],
    ) -> Result<(), Error> {
        // SAFETY: forwarded from the caller.
        unsafe { self.run_observed(inputs, outputs, &mut |_| {}) }
    }

    /// [`Plan::run`], calling `after_step(i)` when step `i` has finished: for profiling (see the
    /// `run_plan` example), not for the runtime.
    ///
    /// # Safety
    /// As [`Plan::run`].
    pub unsafe fn run_observed(
        &self,
        inputs: &[CallerBuffer],
        outputs: &[CallerBuffer],
        after_step: &mut dyn FnMut(usize),
    ) -> Result<(), Error> {
        check_buffers("input", &self.checked.inputs, inputs)?;
        check_buffers("output", &self.checked.outputs, outputs)?;
        for (i, out) in outputs.iter().enumerate() {
            let clash = outputs[i + 1..]
                .iter()
                .map(|o| ("output", o))
                .chain(inputs.iter().map(|b| ("input", b)))
                .find(|(_, other)| overlap(out, other));
            if let Some((kind, _)) = clash {
                return Err(Error::invalid(format!(
                    "output {i} (\"{}\") overlaps an {kind} buffer",
                    self.checked.outputs[i].name
                )));
            }
        }
        let mut guard = match self.state.try_lock() {
            Ok(guard) => guard,
            // A run that panicked (reported as status 2) leaves only scratch behind, which every
            // run overwrites before reading: the state is fine to reuse.
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(Error::invalid(
                "the plan is already running on another thread: run it from one caller at a time",
            )),
        };
        let state = &mut *guard;
        // SAFETY: the buffers match the plan's sizes and alignments (checked above) and are valid
        // for the call (the caller's contract); the outputs overlap nothing (checked above); the
        // arena holds `arena_bytes`, which every arena tensor fits (checked at load); the weight
        // ranges were checked against the mapped file, which the plan keeps alive.
        let mem = unsafe {
            Memory::new(
                &self.checked.tensors,
                inputs,
                outputs,
                state.arena.ptr(),
                self.weights.bytes(),
                &self.checked.inline,
            )
        };
        let mut ctx = Ctx {
            mem: &mem,
            cpu: Cpu::global()?,
            scratch: &mut state.scratch,
            linear: &mut state.linear,
            attention: &state.attention,
        };
        for (i, op) in self.checked.ops.iter().enumerate() {
            op.run(&mut ctx).map_err(|e| {
                Error::invalid(format!("cannot run step {i} ({}): {e}", self.names[i]))
            })?;
            after_step(i);
        }
        Ok(())
    }
}
