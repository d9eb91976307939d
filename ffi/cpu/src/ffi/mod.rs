//! Every `extern "C"` function of the library (documented in ABI.md).
//!
//! Each export runs its body inside `guard`, which catches panics and turns errors into a
//! status code plus a message written into the error buffer passed with that call: the library
//! keeps no error state of its own, so calls on different threads never share a message slot.
//! Pointers and lengths become slices on the first lines of each export, after null, alignment
//! and overlap checks.

#[cfg(feature = "test-hooks")]
pub mod linear_hook;

use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use crate::error::{Error, Status};
use crate::plan::memory::CallerBuffer;
use crate::plan::Plan;
use crate::weight_file::WeightFile;

/// Version of this ABI: bumped on any incompatible change to the exports below.
pub const ABI_VERSION: u32 = 4;

/// A caller's buffer for NUL-terminated text: the error buffer passed with one call, or the name
/// `llamane_kernel_set` asks for.
pub(crate) struct ErrorBuffer {
    ptr: *mut u8,
    capacity: usize,
}

impl ErrorBuffer {
    /// The caller's buffer, for the length of the call.
    ///
    /// # Safety
    /// `ptr` is null or valid for writes of `capacity` bytes until the call returns.
    pub(crate) unsafe fn new(ptr: *mut u8, capacity: usize) -> Self {
        ErrorBuffer { ptr, capacity }
    }

    /// Writes `message` as NUL-terminated UTF-8, cut at a character boundary to fit. A null
    /// buffer or a capacity of 0 ignores the message.
    fn write(&self, message: &str) {
        if self.ptr.is_null() || self.capacity == 0 {
            return;
        }
        let mut end = message.len().min(self.capacity - 1);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        // SAFETY: `end + 1 <= capacity` bytes, which `new`'s contract makes writable.
        unsafe {
            std::ptr::copy_nonoverlapping(message.as_ptr(), self.ptr, end);
            *self.ptr.add(end) = 0;
        }
    }
}

/// Runs `body`, catching panics; on failure writes the message into the caller's error buffer.
pub(crate) fn guard(error: ErrorBuffer, body: impl FnOnce() -> Result<(), Error>) -> i32 {
    let result = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        let text = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic payload".to_string());
        Err(Error::new(
            Status::Panic,
            format!("llamane-cpu panicked (a bug, please report): {text}"),
        ))
    });
    match result {
        Ok(()) => Status::Ok as i32,
        Err(e) => {
            error.write(e.message());
            e.status() as i32
        }
    }
}

/// Runs `body` like [`guard`] and returns what it made, or None after reporting the failure.
fn guard_value<T>(error: ErrorBuffer, body: impl FnOnce() -> Result<T, Error>) -> Option<T> {
    let mut made = None;
    let status = guard(error, || {
        made = Some(body()?);
        Ok(())
    });
    made.filter(|_| status == Status::Ok as i32)
}

/// `ptr[..len]` as a slice, after null and alignment checks. A null pointer is an empty slice
/// when `len == 0`.
///
/// # Safety
/// A non-null `ptr` must point to `len` initialized `T`s that stay valid and unmodified for `'a`.
pub(crate) unsafe fn slice<'a, T>(what: &str, ptr: *const T, len: usize) -> Result<&'a [T], Error> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(Error::invalid(format!(
                "{what}: null pointer with length {len}"
            )))
        };
    }
    if !(ptr as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return Err(Error::invalid(format!(
            "{what}: pointer {ptr:p} is not aligned to {} bytes",
            std::mem::align_of::<T>()
        )));
    }
    // SAFETY: non-null and aligned (checked), and the caller guarantees len valid elements.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// `ptr[..len]` as a mutable slice, after the checks of [`slice`].
///
/// # Safety
/// A non-null `ptr` must point to `len` `T`s that only this call accesses during `'a`.
#[cfg(feature = "test-hooks")]
pub(crate) unsafe fn slice_mut<'a, T>(
    what: &str,
    ptr: *mut T,
    len: usize,
) -> Result<&'a mut [T], Error> {
    // SAFETY: same contract as `slice`, which only checks.
    unsafe { slice(what, ptr.cast_const(), len)? };
    if len == 0 {
        return Ok(&mut []);
    }
    // SAFETY: non-null and aligned (checked above); the caller grants exclusive access.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// The library version (the crate version), a static NUL-terminated string.
#[no_mangle]
pub extern "C" fn llamane_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The ABI version ([`ABI_VERSION`]).
#[no_mangle]
pub extern "C" fn llamane_abi_version() -> u32 {
    ABI_VERSION
}

/// The instruction set of the selected kernels ("scalar", "avx2", "avxvnni", "avx512", "neon",
/// "dotprod", "i8mm"), a static NUL-terminated string; empty when `LLAMANE_CPU_KERNELS` names a set this CPU
/// cannot run. Selecting happens on the first call of this or any compute function.
#[no_mangle]
pub extern "C" fn llamane_kernel_isa() -> *const c_char {
    let Ok(kernels) = crate::kernels::try_selected() else {
        return c"".as_ptr();
    };
    kernels.isa.c_name().as_ptr()
}

/// Writes the name of the selected kernel set (as `llamane_kernel_isa`) into `name`, NUL-terminated;
/// for callers that may not read pointers. Fails with status 1 when `LLAMANE_CPU_KERNELS` names a
/// set this CPU cannot run, or when `name_capacity` is too small (8 bytes hold every name).
///
/// # Safety
/// `name` is null or `name_capacity` writable bytes; `error` is null or `error_capacity` writable
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn llamane_kernel_set(
    name: *mut u8,
    name_capacity: usize,
    error: *mut u8,
    error_capacity: usize,
) -> i32 {
    // SAFETY: the caller passes buffers of the stated capacities, or null.
    let (name, error) = unsafe {
        (
            ErrorBuffer::new(name, name_capacity),
            ErrorBuffer::new(error, error_capacity),
        )
    };
    guard(error, || {
        let set = crate::kernels::try_selected().map_err(Error::invalid)?;
        let text = set.isa.name();
        if name.ptr.is_null() || name_capacity <= text.len() {
            return Err(Error::invalid(format!(
                "kernel set: {name_capacity} bytes cannot hold {text:?} and its NUL"
            )));
        }
        name.write(text);
        Ok(())
    })
}

/// Memory-maps a weight.bin and checks its header. Returns a handle for `llamane_plan_create`,
/// freed with `llamane_weights_free`, or null after writing the reason into `error`.
///
/// # Safety
/// `path` points to `path_len` bytes of UTF-8; `error` is null or `error_capacity` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn llamane_weights_open(
    path: *const u8,
    path_len: usize,
    error: *mut u8,
    error_capacity: usize,
) -> *mut Arc<WeightFile> {
    // SAFETY: the caller passes an error buffer of error_capacity bytes, or null.
    let error = unsafe { ErrorBuffer::new(error, error_capacity) };
    let opened = guard_value(error, || {
        // SAFETY: the caller guarantees path_len readable bytes at `path`.
        let bytes = unsafe { slice("weights_open: path", path, path_len)? };
        let path = std::str::from_utf8(bytes)
            .map_err(|e| Error::invalid(format!("weights_open: the path is not UTF-8: {e}")))?;
        Ok(Arc::new(WeightFile::open(Path::new(path))?))
    });
    opened.map_or(std::ptr::null_mut(), |w| Box::into_raw(Box::new(w)))
}

/// Releases a handle from `llamane_weights_open`. Plans made from it keep the mapping alive
/// until they are freed. Null is ignored.
///
/// # Safety
/// `weights` is null or a handle from `llamane_weights_open` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn llamane_weights_free(weights: *mut Arc<WeightFile>) {
    if !weights.is_null() {
        // SAFETY: a live handle made by Box::into_raw in llamane_weights_open, freed once.
        drop(unsafe { Box::from_raw(weights) });
    }
}

/// A plan and the caller buffers bound to it for its next run.
///
/// Buffers are bound one at a time because a caller without blanket FFI rights (Deno's
/// `--allow-ffi=<path>`) can pass buffers as arguments but cannot build a table of pointers. A
/// run consumes the bindings: each run uses only buffers bound for it, never a pointer kept from
/// an earlier call, whose memory the caller may have released since.
pub struct BoundPlan {
    plan: Plan,
    bound: Mutex<Bindings>,
}

/// The buffers bound so far, one slot per plan input and output.
struct Bindings {
    inputs: Vec<CallerBuffer>,
    outputs: Vec<CallerBuffer>,
}

/// The empty slot: a run fails on it, naming the buffer.
const UNBOUND: CallerBuffer = CallerBuffer {
    ptr: std::ptr::null_mut(),
    bytes: 0,
};

// SAFETY: the pointers are only dereferenced by `Plan::run`, under the caller's guarantee (see
// `llamane_plan_bind`) that they stay valid and untouched until the run that uses them returns.
unsafe impl Send for Bindings {}

impl BoundPlan {
    /// The bindings, for the length of one call; fails while another call holds them, so that
    /// overlapping calls on one plan fail instead of racing or blocking the caller's thread.
    fn lock(&self) -> Result<MutexGuard<'_, Bindings>, Error> {
        match self.bound.try_lock() {
            Ok(bound) => Ok(bound),
            // A panic mid-call leaves whole slots behind: each is stored in one move.
            Err(TryLockError::Poisoned(bound)) => Ok(bound.into_inner()),
            Err(TryLockError::WouldBlock) => Err(Error::invalid(
                "the plan is in use by another call: run it from one caller at a time",
            )),
        }
    }
}

/// Another counted reference to the plan behind `handle`, for the length of one call.
///
/// # Safety
/// `handle` is null or a live handle from `llamane_plan_create`.
unsafe fn plan_ref(handle: *const BoundPlan, what: &str) -> Result<Arc<BoundPlan>, Error> {
    if handle.is_null() {
        return Err(Error::invalid(format!("{what}: null plan")));
    }
    // SAFETY: a live handle made by Arc::into_raw in llamane_plan_create; taking one more
    // reference keeps the plan alive through this call even if it is freed meanwhile.
    unsafe {
        Arc::increment_strong_count(handle);
        Ok(Arc::from_raw(handle))
    }
}

/// Parses a plan (JSON, PLAN.md), checks it against the weights and allocates its scratch.
/// Returns a handle for `llamane_plan_bind` and `llamane_plan_run`, freed with
/// `llamane_plan_free`, or null after writing the reason into `error`.
///
/// # Safety
/// `weights` is a live handle from `llamane_weights_open`; `json` points to `json_len` bytes;
/// `error` is null or `error_capacity` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn llamane_plan_create(
    weights: *const Arc<WeightFile>,
    json: *const u8,
    json_len: usize,
    error: *mut u8,
    error_capacity: usize,
) -> *const BoundPlan {
    // SAFETY: the caller passes an error buffer of error_capacity bytes, or null.
    let error = unsafe { ErrorBuffer::new(error, error_capacity) };
    let created = guard_value(error, || {
        // SAFETY: the caller passes a live handle or null, which as_ref turns into None.
        let weights = unsafe { weights.as_ref() }
            .ok_or_else(|| Error::invalid("plan_create: null weights handle"))?;
        // SAFETY: the caller guarantees json_len readable bytes at `json`.
        let json = unsafe { slice("plan_create: json", json, json_len)? };
        let plan = Plan::new(Arc::clone(weights), json)?;
        // Allocated here, once: runs allocate nothing.
        let bound = Bindings {
            inputs: vec![UNBOUND; plan.inputs().len()],
            outputs: vec![UNBOUND; plan.outputs().len()],
        };
        Ok(Arc::new(BoundPlan {
            plan,
            bound: Mutex::new(bound),
        }))
    });
    created.map_or(std::ptr::null(), Arc::into_raw)
}

/// Which side of a plan a buffer is bound to.
const INPUT: u32 = 0;
const OUTPUT: u32 = 1;

/// Binds the caller's buffer for input (`side` 0) or output (`side` 1) number `index`, in the
/// plan's order, for the next run. Its length must match the plan's tensor exactly.
///
/// # Safety
/// `plan` is a live handle from `llamane_plan_create`. `ptr` points to `bytes` bytes that stay
/// valid, and that nobody else touches while the run is in progress (writes for outputs), until
/// the next run returns or the plan is freed. `error` is null or `error_capacity` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn llamane_plan_bind(
    plan: *const BoundPlan,
    side: u32,
    index: usize,
    ptr: *mut u8,
    bytes: usize,
    error: *mut u8,
    error_capacity: usize,
) -> i32 {
    // SAFETY: the caller passes an error buffer of error_capacity bytes, or null.
    let error = unsafe { ErrorBuffer::new(error, error_capacity) };
    guard(error, || {
        // SAFETY: the caller passes a live handle or null.
        let handle = unsafe { plan_ref(plan, "plan_bind")? };
        let mut bound = handle.lock()?;
        let (slots, specs, what) = match side {
            INPUT => (&mut bound.inputs, handle.plan.inputs(), "input"),
            OUTPUT => (&mut bound.outputs, handle.plan.outputs(), "output"),
            _ => {
                return Err(Error::invalid(format!(
                    "plan_bind: side {side} is neither 0 (input) nor 1 (output)"
                )))
            }
        };
        let slot = slots.get_mut(index).ok_or_else(|| {
            Error::invalid(format!(
                "plan_bind: {what} {index} does not exist (the plan has {})",
                specs.len()
            ))
        })?;
        *slot = CallerBuffer { ptr, bytes };
        Ok(())
    })
}

/// Runs a plan on the buffers bound for this run, each checked against the plan's tensor sizes,
/// and then forgets them. One call at a time per plan: a run or bind that finds another call of
/// the same plan in progress fails.
///
/// # Safety
/// `plan` is a live handle from `llamane_plan_create` whose bound buffers honour
/// `llamane_plan_bind`'s contract. It may be freed while this call runs (the run keeps it alive),
/// not before the call has started. `error` is null or `error_capacity` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn llamane_plan_run(
    plan: *const BoundPlan,
    error: *mut u8,
    error_capacity: usize,
) -> i32 {
    // SAFETY: the caller passes an error buffer of error_capacity bytes, or null.
    let error = unsafe { ErrorBuffer::new(error, error_capacity) };
    guard(error, || {
        // SAFETY: the caller passes a live handle or null.
        let handle = unsafe { plan_ref(plan, "plan_run")? };
        let mut bound = handle.lock()?;
        // SAFETY: the bound buffers are valid for their lengths during the run and not
        // accessed by anyone else (llamane_plan_bind's contract); Plan::run checks sizes,
        // alignment and overlap, and fails on an unbound (null) buffer.
        let result = unsafe { handle.plan.run(&bound.inputs, &bound.outputs) };
        bound.inputs.fill(UNBOUND);
        bound.outputs.fill(UNBOUND);
        result
    })
}

/// Releases the caller's reference to a plan. A run in progress keeps the plan alive until it
/// returns; the plan and its scratch are freed then. Null is ignored.
///
/// # Safety
/// `plan` is null or a live handle from `llamane_plan_create`, not used again.
#[no_mangle]
pub unsafe extern "C" fn llamane_plan_free(plan: *const BoundPlan) {
    if !plan.is_null() {
        // SAFETY: a live handle made by Arc::into_raw in llamane_plan_create, released once.
        drop(unsafe { Arc::from_raw(plan) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(buffer: &[u8]) -> &str {
        let end = buffer.iter().position(|&b| b == 0).unwrap();
        std::str::from_utf8(&buffer[..end]).unwrap()
    }

    #[test]
    fn guard_turns_a_panic_into_status_2_and_a_message() {
        let mut bytes = [0xffu8; 128];
        // SAFETY: `bytes` has 128 writable bytes.
        let error = unsafe { ErrorBuffer::new(bytes.as_mut_ptr(), bytes.len()) };
        assert_eq!(
            guard(error, || panic!("boom at {}", 42)),
            Status::Panic as i32
        );
        assert!(
            message(&bytes).contains("boom at 42"),
            "{}",
            message(&bytes)
        );
        // SAFETY: a null buffer ignores the message.
        let ignored = unsafe { ErrorBuffer::new(std::ptr::null_mut(), 0) };
        assert_eq!(guard(ignored, || Err(Error::invalid("lost"))), 1);
    }

    #[test]
    fn messages_are_cut_at_a_character_boundary_and_terminated() {
        let mut bytes = [0xffu8; 6];
        // SAFETY: `bytes` has 6 writable bytes.
        unsafe { ErrorBuffer::new(bytes.as_mut_ptr(), bytes.len()) }.write("ab\u{e9}\u{e9}cd");
        // "ab" and one "é" (2 bytes) fit 5 bytes before the terminator; half an "é" does not.
        assert_eq!(message(&bytes), "ab\u{e9}");
        // SAFETY: capacity 1 holds only the terminator.
        unsafe { ErrorBuffer::new(bytes.as_mut_ptr(), 1) }.write("anything");
        assert_eq!(message(&bytes), "");
    }
}
