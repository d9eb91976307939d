//! Every `extern "C"` function of the library (documented in ABI.md).
//!
//! Each export runs its body inside `guard`, which catches panics and turns errors into a
//! status code plus a process-wide last-error message; nothing unwinds across the boundary.
//! Pointers and lengths become slices on the first lines of each export, after null, alignment
//! and overlap checks.

use std::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::dtype::DType;
use crate::error::{Error, Status};
use crate::linear::{linear, ActivationPath, Cpu, LinearOptions};
use crate::plan::memory::CallerBuffer;
use crate::plan::Plan;
use crate::weight_file::WeightFile;
use crate::weights::{Scales, WeightData, WeightFormat, Weights};

/// Version of this ABI: bumped on any incompatible change to the exports below.
pub const ABI_VERSION: u32 = 3;

/// Message of the last failed call in the process. Process-wide rather than per thread: Deno
/// runs `llamane_plan_run` nonblocking on a thread of its own and reads the message from the
/// JavaScript thread.
static LAST_ERROR: Mutex<String> = Mutex::new(String::new());

/// Replaces the last-error message.
fn set_last_error(message: &str) {
    let mut last = LAST_ERROR.lock().unwrap_or_else(|e| e.into_inner());
    last.clear();
    last.push_str(message);
}

/// Runs `body`, catching panics; on failure stores the message for `llamane_last_error`.
fn guard(body: impl FnOnce() -> Result<(), Error>) -> i32 {
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
            set_last_error(e.message());
            e.status() as i32
        }
    }
}

/// `ptr[..len]` as a slice, after null and alignment checks. A null pointer is an empty slice
/// when `len == 0`.
///
/// # Safety
/// A non-null `ptr` must point to `len` initialized `T`s that stay valid and unmodified for `'a`.
unsafe fn slice<'a, T>(what: &str, ptr: *const T, len: usize) -> Result<&'a [T], Error> {
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
unsafe fn slice_mut<'a, T>(what: &str, ptr: *mut T, len: usize) -> Result<&'a mut [T], Error> {
    // SAFETY: same contract as `slice`, which only checks.
    unsafe { slice(what, ptr.cast_const(), len)? };
    if len == 0 {
        return Ok(&mut []);
    }
    // SAFETY: non-null and aligned (checked above); the caller grants exclusive access.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// A float buffer of either dtype.
enum Floats<'a> {
    F32(&'a [f32]),
    F16(&'a [u16]),
}

/// `len` elements of `dtype` at `ptr`.
///
/// # Safety
/// As [`slice`] for the element type named by `dtype`.
unsafe fn floats<'a>(
    what: &str,
    ptr: *const c_void,
    len: usize,
    dtype: u32,
) -> Result<Floats<'a>, Error> {
    // SAFETY: forwarded from the caller, with the element type the caller named.
    unsafe {
        Ok(match DType::from_code(dtype)? {
            DType::F32 => Floats::F32(slice(what, ptr.cast::<f32>(), len)?),
            DType::F16 => Floats::F16(slice(what, ptr.cast::<u16>(), len)?),
        })
    }
}

/// Fails if the byte ranges of `y` and `other` overlap: `y` is written while `other` is read.
fn check_disjoint(
    y: (*const c_void, usize),
    other: (&str, *const c_void, usize),
) -> Result<(), Error> {
    let (y_start, y_end) = (y.0 as usize, y.0 as usize + y.1);
    let (name, ptr, bytes) = other;
    let (o_start, o_end) = (ptr as usize, ptr as usize + bytes);
    if bytes > 0 && y.1 > 0 && y_start < o_end && o_start < y_end {
        return Err(Error::invalid(format!("linear: y overlaps {name}")));
    }
    Ok(())
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

/// The instruction set of the selected kernels ("scalar", "avx2", "neon"), a static
/// NUL-terminated string. Selecting happens on the first call of this or any compute function.
#[no_mangle]
pub extern "C" fn llamane_kernel_isa() -> *const c_char {
    match crate::kernels::selected().isa.name() {
        "avx2" => c"avx2".as_ptr(),
        "neon" => c"neon".as_ptr(),
        _ => c"scalar".as_ptr(),
    }
}

/// Copies the last error message (UTF-8, no terminator) into `buf`, at most `cap` bytes, and
/// returns its full length in bytes: call with `cap = 0` to size the buffer. Reading never
/// changes the stored message.
///
/// # Safety
/// `buf` is null (with `cap == 0`) or points to `cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn llamane_last_error(buf: *mut u8, cap: usize) -> usize {
    // Not through `guard`: a failure here must not replace the message being read.
    let copy = || {
        let last = LAST_ERROR.lock().unwrap_or_else(|e| e.into_inner());
        let n = last.len().min(cap);
        if n > 0 {
            // SAFETY: the caller guarantees `cap` writable bytes at a non-null `buf`; `slice_mut`
            // checks the pointer.
            if let Ok(buf) = unsafe { slice_mut("last_error: buf", buf, n) } {
                buf.copy_from_slice(&last.as_bytes()[..n]);
            }
        }
        last.len()
    };
    catch_unwind(copy).unwrap_or(0)
}

/// Runs `body`, catching panics like [`guard`]; returns its handle, or null after recording the
/// failure for `llamane_last_error`.
fn guard_handle<T>(body: impl FnOnce() -> Result<T, Error>) -> *mut T {
    let mut made = None;
    let status = guard(|| {
        made = Some(body()?);
        Ok(())
    });
    match made {
        Some(value) if status == Status::Ok as i32 => Box::into_raw(Box::new(value)),
        _ => std::ptr::null_mut(),
    }
}

/// Memory-maps a weight.bin and checks its header. Returns a handle for `llamane_plan_create`,
/// freed with `llamane_weights_free`, or null on failure.
///
/// # Safety
/// `path` points to `path_len` bytes of UTF-8.
#[no_mangle]
pub unsafe extern "C" fn llamane_weights_open(
    path: *const u8,
    path_len: usize,
) -> *mut Arc<WeightFile> {
    guard_handle(|| {
        // SAFETY: the caller guarantees path_len readable bytes at `path`.
        let bytes = unsafe { slice("weights_open: path", path, path_len)? };
        let path = std::str::from_utf8(bytes)
            .map_err(|e| Error::invalid(format!("weights_open: the path is not UTF-8: {e}")))?;
        Ok(Arc::new(WeightFile::open(Path::new(path))?))
    })
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

/// A plan with the caller buffers bound to it for the next run.
///
/// Buffers are bound one at a time because a caller without blanket FFI rights (Deno's
/// `--allow-ffi=<path>`) can pass buffers as arguments but cannot build a table of pointers.
pub struct BoundPlan {
    plan: Plan,
    bound: Mutex<Bindings>,
}

/// The buffers bound so far, one slot per plan input and output.
struct Bindings {
    inputs: Vec<CallerBuffer>,
    outputs: Vec<CallerBuffer>,
}

// SAFETY: the pointers are only dereferenced by `Plan::run`, under the caller's guarantee (see
// `llamane_plan_bind`) that they stay valid and untouched until the run that uses them returns.
unsafe impl Send for Bindings {}

/// Parses a plan (JSON, PLAN.md), checks it against the weights and allocates its scratch.
/// Returns a handle for `llamane_plan_bind` and `llamane_plan_run`, freed with
/// `llamane_plan_free`, or null on failure.
///
/// # Safety
/// `weights` is a live handle from `llamane_weights_open`; `json` points to `json_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn llamane_plan_create(
    weights: *const Arc<WeightFile>,
    json: *const u8,
    json_len: usize,
) -> *mut BoundPlan {
    guard_handle(|| {
        // SAFETY: the caller passes a live handle or null, which as_ref turns into None.
        let weights = unsafe { weights.as_ref() }
            .ok_or_else(|| Error::invalid("plan_create: null weights handle"))?;
        // SAFETY: the caller guarantees json_len readable bytes at `json`.
        let json = unsafe { slice("plan_create: json", json, json_len)? };
        let plan = Plan::new(Arc::clone(weights), json)?;
        let unbound = CallerBuffer {
            ptr: std::ptr::null_mut(),
            bytes: 0,
        };
        // Allocated here, once: runs allocate nothing.
        let bound = Bindings {
            inputs: vec![unbound; plan.inputs().len()],
            outputs: vec![unbound; plan.outputs().len()],
        };
        Ok(BoundPlan {
            plan,
            bound: Mutex::new(bound),
        })
    })
}

/// Which side of a plan a buffer is bound to.
const INPUT: u32 = 0;
const OUTPUT: u32 = 1;

/// Binds the caller's buffer for input (`side` 0) or output (`side` 1) number `index`, in the
/// plan's order, for the following runs. Its length must match the plan's tensor exactly.
///
/// # Safety
/// `plan` is a live handle from `llamane_plan_create`. `ptr` points to `bytes` bytes that stay
/// valid, and that nobody else touches while a run is in progress (writes for outputs), until
/// another buffer is bound in its place or the plan is freed.
#[no_mangle]
pub unsafe extern "C" fn llamane_plan_bind(
    plan: *const BoundPlan,
    side: u32,
    index: usize,
    ptr: *mut u8,
    bytes: usize,
) -> i32 {
    guard(|| {
        // SAFETY: the caller passes a live handle or null, which as_ref turns into None.
        let handle =
            unsafe { plan.as_ref() }.ok_or_else(|| Error::invalid("plan_bind: null plan"))?;
        let mut bound = handle.bound.lock().unwrap_or_else(|e| e.into_inner());
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

/// Runs a plan on the buffers bound to it, each checked against the plan's tensor sizes. One
/// run at a time per plan (a concurrent call fails).
///
/// # Safety
/// `plan` is a live handle from `llamane_plan_create` whose bound buffers honour
/// `llamane_plan_bind`'s contract.
#[no_mangle]
pub unsafe extern "C" fn llamane_plan_run(plan: *const BoundPlan) -> i32 {
    guard(|| {
        // SAFETY: the caller passes a live handle or null, which as_ref turns into None.
        let handle =
            unsafe { plan.as_ref() }.ok_or_else(|| Error::invalid("plan_run: null plan"))?;
        let bound = handle.bound.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the bound buffers are valid for their lengths during the run and not accessed
        // by anyone else (llamane_plan_bind's contract); Plan::run checks sizes, alignment and
        // overlap, and fails on an unbound (null) buffer.
        unsafe { handle.plan.run(&bound.inputs, &bound.outputs) }
    })
}

/// Frees a plan. Null is ignored.
///
/// # Safety
/// `plan` is null or a live handle from `llamane_plan_create`, not running and not used again.
#[no_mangle]
pub unsafe extern "C" fn llamane_plan_free(plan: *mut BoundPlan) {
    if !plan.is_null() {
        // SAFETY: a live handle made by Box::into_raw in llamane_plan_create, freed once.
        drop(unsafe { Box::from_raw(plan) });
    }
}

/// Test hook: `y [m, n] = x [m, k] W^T + bias` through the library's own path selection, kernels
/// and threads. See ABI.md for every argument.
///
/// # Safety
/// Every pointer is null with a zero length or points to that many elements of its type (bytes
/// for `w`), valid for the call; `y` overlaps no input.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn llamane_linear(
    y: *mut c_void,
    y_len: usize,
    y_dtype: u32,
    x: *const c_void,
    x_len: usize,
    x_dtype: u32,
    n: usize,
    k: usize,
    w: *const u8,
    w_bytes: usize,
    w_format: u32,
    scales: *const c_void,
    scales_len: usize,
    scales_dtype: u32,
    bias: *const f32,
    bias_len: usize,
    path: u32,
) -> i32 {
    guard(|| {
        // SAFETY (all five): the caller guarantees each pointer/length pair as documented above,
        // and `y` is checked against every input for overlap before it is written.
        let x_in = unsafe { floats("linear: x", x, x_len, x_dtype)? };
        let w_in = unsafe { slice("linear: w", w, w_bytes)? };
        let scales_in = unsafe { floats("linear: scales", scales, scales_len, scales_dtype)? };
        let bias_in = unsafe { slice("linear: bias", bias, bias_len)? };
        let y_dtype = DType::from_code(y_dtype)?;
        let y_bytes = y_len.saturating_mul(y_dtype.size_bytes());
        for other in [
            (
                "x",
                x,
                x_len.saturating_mul(DType::from_code(x_dtype)?.size_bytes()),
            ),
            ("w", w.cast(), w_bytes),
            (
                "scales",
                scales,
                scales_len.saturating_mul(DType::from_code(scales_dtype)?.size_bytes()),
            ),
            ("bias", bias.cast(), bias_len.saturating_mul(4)),
        ] {
            check_disjoint((y.cast_const(), y_bytes), other)?;
        }
        let format = WeightFormat::from_code(w_format)?;
        let scales = match scales_in {
            Floats::F32(s) => Scales::F32(s),
            Floats::F16(s) => Scales::F16(s),
        };
        let weights = Weights::new(n, k, weight_data(format, w_in, scales)?)?;
        let cpu = Cpu::global();
        let x_f32: std::borrow::Cow<[f32]> = match x_in {
            Floats::F32(x) => x.into(),
            Floats::F16(x) => {
                let mut wide = vec![0f32; x.len()];
                (cpu.kernels.f16_to_f32)(&mut wide, x);
                wide.into()
            }
        };
        let options = LinearOptions {
            bias: (!bias_in.is_empty()).then_some(bias_in),
            path: ActivationPath::from_code(path)?,
        };
        match y_dtype {
            DType::F32 => {
                // SAFETY: the caller guarantees y_len writable f32 at `y`, exclusive to this
                // call; no input overlaps it (checked above).
                let y = unsafe { slice_mut("linear: y", y.cast::<f32>(), y_len)? };
                linear(cpu, y, &x_f32, &weights, &options)
            }
            DType::F16 => {
                let mut wide = vec![0f32; y_len];
                linear(cpu, &mut wide, &x_f32, &weights, &options)?;
                // SAFETY: as above, for y_len f16 values.
                let y = unsafe { slice_mut("linear: y", y.cast::<u16>(), y_len)? };
                (cpu.kernels.f32_to_f16)(y, &wide);
                Ok(())
            }
        }
    })
}

/// Reinterprets the weight bytes as the format's element type.
fn weight_data<'a>(
    format: WeightFormat,
    bytes: &'a [u8],
    scales: Scales<'a>,
) -> Result<WeightData<'a>, Error> {
    fn cast<T>(bytes: &[u8]) -> Result<&[T], Error> {
        let size = std::mem::size_of::<T>();
        if !bytes.len().is_multiple_of(size) {
            return Err(Error::invalid(format!(
                "linear: w has {} bytes, not a multiple of {size}",
                bytes.len()
            )));
        }
        // SAFETY: `bytes` is valid for its length, which is a whole number of T; `slice` checks
        // the alignment; T is f32, u16 or i8, for which every bit pattern is valid.
        unsafe { slice("linear: w", bytes.as_ptr().cast::<T>(), bytes.len() / size) }
    }
    if format.is_quantized() && scales.is_empty() {
        return Err(Error::invalid(format!(
            "linear: {format:?} weights need scales"
        )));
    }
    if !format.is_quantized() && !scales.is_empty() {
        return Err(Error::invalid(format!(
            "linear: {format:?} weights take no scales"
        )));
    }
    Ok(match format {
        WeightFormat::F32 => WeightData::F32(cast(bytes)?),
        WeightFormat::F16 => WeightData::F16(cast(bytes)?),
        WeightFormat::Int8PerChannel => WeightData::Int8PerChannel {
            data: cast(bytes)?,
            scales,
        },
        WeightFormat::Int4PerChannel => WeightData::Int4PerChannel {
            packed: bytes,
            scales,
        },
        WeightFormat::Int4Block32 => WeightData::Int4Block32 {
            packed: bytes,
            scales,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_turns_a_panic_into_status_2_and_a_message() {
        let status = guard(|| panic!("boom at {}", 42));
        assert_eq!(status, Status::Panic as i32);
        let message = LAST_ERROR.lock().unwrap().clone();
        assert!(message.contains("boom at 42"), "{message}");
        assert_eq!(guard(|| Ok(())), 0);
    }
}
