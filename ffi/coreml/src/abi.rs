//! What crosses the C boundary (ABI.md), checked before any pointer is used, and the buffers bound
//! to a model handle. Platform independent, so tests/abi.rs runs all of it on Linux too.

use std::{ffi::c_void, ptr::NonNull, sync::Mutex, sync::MutexGuard, sync::TryLockError};

/// Bumped whenever a signature or rule in ABI.md changes.
pub const ABI_VERSION: u32 = 3;
/// `open` flag: pass no output backings, so that Core ML returns arrays of its own and every
/// output goes through the strided copy (the path Neural Engine outputs take).
pub const DECLINE_OUTPUT_BACKINGS: u32 = 1;
/// Call statuses; a failed call wrote its message into the caller's error buffer.
pub const OK: i32 = 0;
pub const FAILED: i32 = 1;
/// The element types ABI.md allows, as `MLMultiArrayDataType` values: fp16, fp32, int32.
pub const DTYPES: [u32; 3] = [0x10000 | 16, 0x10000 | 32, 0x20000 | 32];

/// Bytes per element of a [`DTYPES`] code, whose low bits count bits.
pub fn element_bytes(dtype: u32) -> usize {
    (dtype & 0xffff) as usize / 8
}

/// Borrows `len` values given as pointer plus count (empty when `len` is 0, whatever `ptr` is).
///
/// # Safety
/// Unless `len` is 0 or `ptr` null, `ptr` must be valid for reads of `len` values for `'a`.
pub unsafe fn slice_arg<'a, T>(ptr: *const T, len: usize, what: &str) -> Result<&'a [T], String> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() || !ptr.is_aligned() {
        return Err(format!("{what} is null or misaligned but {len} long"));
    }
    // SAFETY: non-null, aligned and, by this function's contract, valid for `len` values.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Borrows a UTF-8 string given as pointer plus byte length (empty when the length is 0).
///
/// # Safety
/// As [`slice_arg`].
pub unsafe fn str_arg<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a str, String> {
    // SAFETY: forwarded from this function's contract.
    let bytes = unsafe { slice_arg(ptr, len, what) }?;
    std::str::from_utf8(bytes).map_err(|e| format!("{what} is not UTF-8: {e}"))
}

/// One caller buffer bound as an input or output, checked by [`Tensor::new`]: `dtype` is one of
/// [`DTYPES`], `data` non-null, aligned for it and `bytes` long. Only the name and shape are
/// copied; `data` stays the caller's (ABI.md says for how long).
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: u32,
    pub data: NonNull<c_void>,
    pub bytes: usize,
}

impl Tensor {
    /// Checks what one `llamane_coreml_bind` call describes: the name is UTF-8, the dtype known,
    /// the rank 1 to 8, no dimension 0, and `bytes` exactly the shape's size (no overflow).
    ///
    /// # Safety
    /// As [`slice_arg`] for `name` (bytes) and `shape` (values), during this call only.
    pub unsafe fn new(
        (name, name_len): (*const u8, usize), (shape, rank): (*const u64, usize), dtype: u32,
        data: *mut c_void, bytes: usize,
    ) -> Result<Tensor, String> {
        // SAFETY: forwarded from this function's contract.
        let name = unsafe { str_arg(name, name_len, "the tensor name") }?.to_owned();
        if !DTYPES.contains(&dtype) || !(1..=8).contains(&rank) {
            return Err(format!("tensor \"{name}\" has dtype {dtype} and rank {rank}"));
        }
        // SAFETY: as above.
        let dims = unsafe { slice_arg(shape, rank, &format!("the shape of \"{name}\"")) }?;
        let shape: Vec<usize> = dims.iter().filter_map(|&d| usize::try_from(d).ok()).collect();
        let size = element_bytes(dtype);
        let needed = shape.iter().try_fold(size, |n, &d| n.checked_mul(d).filter(|_| d > 0));
        if shape.len() != rank || needed != Some(bytes) {
            return Err(format!("tensor \"{name}\" {dims:?} needs {needed:?} bytes, not {bytes}"));
        }
        let data = NonNull::new(data).filter(|p| (p.as_ptr() as usize).is_multiple_of(size));
        let data = data.ok_or_else(|| format!("tensor \"{name}\" is null or misaligned"))?;
        Ok(Tensor { name, shape, dtype, data, bytes })
    }
}

/// The buffers bound to one model handle: inputs (side 0) and outputs (side 1), in index order.
/// The lock makes overlapping calls on one handle fail instead of racing.
#[derive(Default)]
pub struct Bindings(Mutex<[Vec<Tensor>; 2]>);

impl Bindings {
    /// The bound buffers, for the length of one call; fails while another call holds them.
    pub fn lock(&self) -> Result<MutexGuard<'_, [Vec<Tensor>; 2]>, String> {
        match self.0.try_lock() {
            Ok(bound) => Ok(bound),
            // A panic mid-call leaves whole bindings: each is stored in one move.
            Err(TryLockError::Poisoned(bound)) => Ok(bound.into_inner()),
            Err(TryLockError::WouldBlock) => Err("the model is in use by another call".into()),
        }
    }

    /// Binds `tensor` as number `index` of `side`, replacing a bound one or right after the last.
    pub fn bind(&self, side: u32, index: usize, tensor: Tensor) -> Result<(), String> {
        let mut bound = self.lock()?;
        let list =
            bound.get_mut(side as usize).ok_or_else(|| format!("there is no side {side}"))?;
        if index < list.len() {
            list[index] = tensor;
        } else if index == list.len() {
            list.push(tensor);
        } else {
            return Err(format!("index {index} of side {side} comes before index {}", list.len()));
        }
        Ok(())
    }
}

/// Writes `message` into a caller's buffer (an error message, the compute plan) as NUL-terminated
/// UTF-8, cut at a character boundary to fit `capacity` bytes.
///
/// # Safety
/// Unless `buffer` is null, it must be valid for writes of `capacity` bytes.
pub unsafe fn write_text(buffer: *mut u8, capacity: usize, message: &str) {
    if buffer.is_null() || capacity == 0 {
        return;
    }
    let end = (0..=message.len().min(capacity - 1)).rev().find(|&i| message.is_char_boundary(i));
    let end = end.unwrap_or(0);
    // SAFETY: `end` <= capacity - 1, so the text and its terminator fit the `capacity` bytes the
    // contract promises.
    unsafe {
        std::ptr::copy_nonoverlapping(message.as_ptr(), buffer, end);
        *buffer.add(end) = 0;
    }
}
