//! Moving elements between tensors of possibly different types, with PLAN.md's arithmetic:
//! inputs are read as f32, results rounded to the output's type (f16 to nearest even through the
//! selected kernels, F16C where available; i32 truncated toward zero). Moves between equal types
//! copy the bits, so i32 data never takes a lossy trip through f32.

use super::memory::{Dst, Src};
use crate::kernels::Kernels;

/// `src[start..start + out.len()]` as f32 into `out`.
pub fn read_f32(kernels: &Kernels, src: Src, start: usize, out: &mut [f32]) {
    let range = start..start + out.len();
    match src {
        Src::F32(s) => out.copy_from_slice(&s[range]),
        Src::F16(s) => (kernels.f16_to_f32)(out, &s[range]),
        Src::I32(s) => {
            for (o, &v) in out.iter_mut().zip(&s[range]) {
                *o = v as f32;
            }
        }
        Src::I8(_) | Src::I4(_) | Src::Indices { .. } => {
            panic!("read_f32: packed integer weights have no plain value")
        }
    }
}

/// `src` as f32: the tensor itself when it is f32, else a conversion into the front of `scratch`.
pub fn to_f32<'s>(kernels: &Kernels, src: Src<'s>, scratch: &'s mut [f32]) -> &'s [f32] {
    match src {
        Src::F32(s) => s,
        Src::F16(s) => {
            let out = &mut scratch[..s.len()];
            (kernels.f16_to_f32)(out, s);
            out
        }
        Src::I32(s) => {
            let out = &mut scratch[..s.len()];
            read_f32(kernels, src, 0, out);
            out
        }
        Src::I8(_) | Src::I4(_) | Src::Indices { .. } => {
            panic!("to_f32: packed integer weights have no plain value")
        }
    }
}

/// Rounds `values` into `dst[start..start + values.len()]`.
pub fn write_f32(kernels: &Kernels, values: &[f32], dst: &mut Dst, start: usize) {
    let range = start..start + values.len();
    match dst {
        Dst::F32(d) => d[range].copy_from_slice(values),
        Dst::F16(d) => (kernels.f32_to_f16)(&mut d[range], values),
        Dst::I32(d) => {
            for (o, &v) in d[range].iter_mut().zip(values) {
                *o = v as i32;
            }
        }
    }
}

/// Calls `f` with an f32 buffer for all of `dst`: `dst` itself when it is f32, else the front of
/// `scratch`, rounded into `dst` afterwards.
pub fn with_f32_out<R>(
    kernels: &Kernels,
    mut dst: Dst,
    scratch: &mut [f32],
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    match &mut dst {
        Dst::F32(d) => f(d),
        _ => {
            let len = dst.len();
            let out = &mut scratch[..len];
            let result = f(out);
            write_f32(kernels, out, &mut dst, 0);
            result
        }
    }
}

/// Moves `len` elements from `src[from..]` to `dst[to..]`: a copy when the types match, else
/// read as f32 and rounded.
pub fn move_run(kernels: &Kernels, src: Src, from: usize, dst: &mut Dst, to: usize, len: usize) {
    let (s, d) = (from..from + len, to..to + len);
    match (src, dst) {
        (Src::F16(a), Dst::F16(b)) => b[d].copy_from_slice(&a[s]),
        (Src::F32(a), Dst::F32(b)) => b[d].copy_from_slice(&a[s]),
        (Src::I32(a), Dst::I32(b)) => b[d].copy_from_slice(&a[s]),
        (Src::F16(a), Dst::F32(b)) => (kernels.f16_to_f32)(&mut b[d], &a[s]),
        (Src::F32(a), Dst::F16(b)) => (kernels.f32_to_f16)(&mut b[d], &a[s]),
        (src, dst) => {
            for (i, j) in s.zip(d) {
                dst.set(j, src.get(i));
            }
        }
    }
}

/// Moves one element (see [`move_run`]); for strided copies.
#[inline]
pub fn move_one(src: &Src, from: usize, dst: &mut Dst, to: usize) {
    match (src, dst) {
        (Src::F16(a), Dst::F16(b)) => b[to] = a[from],
        (Src::F32(a), Dst::F32(b)) => b[to] = a[from],
        (Src::I32(a), Dst::I32(b)) => b[to] = a[from],
        (src, dst) => dst.set(to, src.get(from)),
    }
}
