//! `llamane_linear`, an export only the tests use (cargo feature `test-hooks`): one linear layer
//! through the library's own path selection, kernels and threads, for cross-checks of the C ABI.
//! The library Deno loads is built without it.

use std::ffi::c_void;

use super::{guard, slice, slice_mut, ErrorBuffer};
use crate::dtype::DType;
use crate::error::Error;
use crate::linear::{linear, ActivationPath, Cpu, LinearOptions};
use crate::weights::{Scales, WeightData, WeightFormat, Weights};

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

/// Test hook: `y [m, n] = x [m, k] W^T + bias` through the library's own path selection, kernels
/// and threads. See ABI.md for every argument.
///
/// # Safety
/// Every pointer is null with a zero length or points to that many elements of its type (bytes
/// for `w`), valid for the call; `y` overlaps no input; `error` is null or `error_capacity`
/// writable bytes.
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
    error: *mut u8,
    error_capacity: usize,
) -> i32 {
    // SAFETY: the caller passes an error buffer of error_capacity bytes, or null.
    let error = unsafe { ErrorBuffer::new(error, error_capacity) };
    guard(error, || {
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
        let cpu = Cpu::global()?;
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
        WeightFormat::Int8Block32 => WeightData::Int8Block32 {
            data: cast(bytes)?,
            scales,
        },
        WeightFormat::Lut4 | WeightFormat::Lut6 => {
            return Err(Error::invalid(format!(
                "linear: {format:?} weights carry palettes, which only plans describe"
            )))
        }
    })
}
