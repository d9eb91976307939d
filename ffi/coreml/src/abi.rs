//! What crosses the C boundary (ABI.md), checked before any pointer is used. Platform independent,
//! so tests/abi.rs runs these checks on Linux too.

use std::ffi::c_void;
use std::ptr::NonNull;

/// Bumped whenever a signature or struct in ABI.md changes.
pub const ABI_VERSION: u32 = 1;
/// Call statuses; a failed call wrote its message into the caller's error buffer.
pub const OK: i32 = 0;
pub const FAILED: i32 = 1;
/// The element types ABI.md allows, as `MLMultiArrayDataType` values: fp16, fp32, int32.
pub const DTYPES: [usize; 3] = [0x10000 | 16, 0x10000 | 32, 0x20000 | 32];

/// One input or output as the caller lays it out (ABI.md, `LlamaneCoremlTensor`).
#[repr(C)]
pub struct Tensor {
    pub name: *const u8,
    pub name_len: usize,
    pub data: *mut c_void,
    pub data_bytes: usize,
    pub shape: *const usize,
    pub rank: usize,
    pub dtype: usize,
}

// Seven 8-byte fields, no padding: the layout ffi/coreml.ts writes.
const _: () = assert!(std::mem::size_of::<Tensor>() == 56);

/// A [`Tensor`] whose fields were all checked; `dtype` is one of [`DTYPES`].
pub struct TensorView<'a> {
    pub name: &'a str,
    pub data: NonNull<c_void>,
    pub shape: &'a [usize],
    pub dtype: usize,
}

/// Bytes per element of a [`DTYPES`] code, whose low bits count bits.
pub fn element_bytes(dtype: usize) -> usize {
    (dtype & 0xffff) / 8
}

/// Borrows a string given as pointer plus byte length (empty when the length is 0).
///
/// # Safety
/// Unless `len` is 0, `ptr` must be valid for reads of `len` bytes for `'a`.
pub unsafe fn str_arg<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a str, String> {
    if len == 0 {
        return Ok("");
    }
    if ptr.is_null() {
        return Err(format!("{what} is null but {len} bytes long"));
    }
    // SAFETY: non-null and, by this function's contract, valid for `len` bytes.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
    std::str::from_utf8(bytes).map_err(|e| format!("{what} is not UTF-8: {e}"))
}

/// Checks a table of `count` tensors: names, dtype codes, ranks, and that each buffer is
/// non-null, aligned for its element type and exactly as long as its shape.
///
/// # Safety
/// Unless `count` is 0, `tensors` must point to `count` records whose `name` and `shape`
/// pointers are valid for `name_len` bytes and `rank` values for `'a`.
pub unsafe fn read_tensors<'a>(
    tensors: *const Tensor, count: usize,
) -> Result<Vec<TensorView<'a>>, String> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if tensors.is_null() {
        return Err(format!("the tensor table is null but holds {count} entries"));
    }
    // SAFETY: non-null and, by this function's contract, `count` records long.
    let records = unsafe { std::slice::from_raw_parts(tensors, count) };
    let mut views: Vec<TensorView<'a>> = Vec::with_capacity(count);
    for (i, t) in records.iter().enumerate() {
        // SAFETY: by the contract, `name` is valid for `name_len` bytes.
        let name = unsafe { str_arg(t.name, t.name_len, &format!("the name of tensor {i}")) }?;
        if !DTYPES.contains(&t.dtype) || !(1..=8).contains(&t.rank) || t.shape.is_null() {
            return Err(format!("tensor \"{name}\" has dtype {} and rank {}", t.dtype, t.rank));
        }
        // SAFETY: non-null and, by the contract, `rank` values long.
        let shape = unsafe { std::slice::from_raw_parts(t.shape, t.rank) };
        let size = element_bytes(t.dtype);
        let bytes = shape.iter().try_fold(size, |n, &d| n.checked_mul(d).filter(|_| d > 0));
        if bytes != Some(t.data_bytes) {
            return Err(format!(
                "tensor \"{name}\" {shape:?} needs {bytes:?} bytes, not {}",
                t.data_bytes
            ));
        }
        let data = NonNull::new(t.data).filter(|p| (p.as_ptr() as usize).is_multiple_of(size));
        let data =
            data.ok_or_else(|| format!("tensor \"{name}\" has a null or misaligned buffer"))?;
        views.push(TensorView { name, data, shape, dtype: t.dtype });
    }
    Ok(views)
}

/// Element strides of a contiguous row-major array of `shape`.
pub fn row_major_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (1..shape.len()).rev() {
        strides[i - 1] = strides[i] * shape[i];
    }
    strides
}

/// Copies an array of `shape` stored with element `strides` in `src` into the contiguous `dst`,
/// `size` bytes per element. Bad lengths panic on a slice bound; nothing is read out of bounds.
pub fn copy_strided(src: &[u8], strides: &[usize], shape: &[usize], size: usize, dst: &mut [u8]) {
    assert!(strides.len() == shape.len() && dst.len() == shape.iter().product::<usize>() * size);
    let contiguous = row_major_strides(shape);
    for (i, out) in dst.chunks_exact_mut(size).enumerate() {
        let at: usize = (0..shape.len()).map(|a| i / contiguous[a] % shape[a] * strides[a]).sum();
        out.copy_from_slice(&src[at * size..(at + 1) * size]);
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
