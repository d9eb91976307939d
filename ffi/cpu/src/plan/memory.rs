//! Typed views of a plan's tensors during one run: the only place raw buffers become slices.
//!
//! The bytes of a tensor are in one of five places: the caller's input or output buffers, the
//! plan's arena, the mapped weight.bin or the plan's inline constants. [`Memory`] resolves a
//! tensor index to a slice of its element type. Reading views ([`Src`]) may coexist freely;
//! a writing view ([`Dst`]) is sound because the load-time checks guarantee that a step's outputs
//! overlap none of its inputs nor each other, and the run-time checks that the caller's output
//! buffers overlap nothing else.

use std::marker::PhantomData;

use super::tensor::{DType, InlineData, Place, TensorInfo};

/// A read-only view of one tensor's elements.
#[derive(Clone, Copy, Debug)]
pub enum Src<'a> {
    /// f16 bit patterns.
    F16(&'a [u16]),
    /// f32 values.
    F32(&'a [f32]),
    /// i32 values.
    I32(&'a [i32]),
    /// i8 values.
    I8(&'a [i8]),
    /// i4 values, two per byte, low nibble first.
    I4(&'a [u8]),
    /// Palette indices of `bits` bits, packed LSB-first.
    Indices { bits: u32, packed: &'a [u8] },
}

impl Src<'_> {
    /// Element `i` as f32 (f16 and i32 convert; i32 above 2^24 rounds to nearest). Not for i8/i4,
    /// which are only read through scales.
    #[inline]
    pub fn get(&self, i: usize) -> f32 {
        match self {
            Src::F16(s) => half::f16::from_bits(s[i]).to_f32(),
            Src::F32(s) => s[i],
            Src::I32(s) => s[i] as f32,
            Src::I8(_) | Src::I4(_) | Src::Indices { .. } => {
                panic!("Src::get on packed integer weights")
            }
        }
    }
}

/// A writable view of one tensor's elements (only numeric types are ever written).
#[derive(Debug)]
pub enum Dst<'a> {
    /// f16 bit patterns.
    F16(&'a mut [u16]),
    /// f32 values.
    F32(&'a mut [f32]),
    /// i32 values.
    I32(&'a mut [i32]),
}

impl Dst<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Dst::F16(d) => d.len(),
            Dst::F32(d) => d.len(),
            Dst::I32(d) => d.len(),
        }
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores `v` at `i`, rounded to the element type: f16 to nearest even (as F16C does), i32
    /// truncated toward zero (saturating; NaN gives 0).
    #[inline]
    pub fn set(&mut self, i: usize, v: f32) {
        match self {
            Dst::F16(d) => d[i] = half::f16::from_f32(v).to_bits(),
            Dst::F32(d) => d[i] = v,
            Dst::I32(d) => d[i] = v as i32,
        }
    }
}

/// A caller buffer for one run.
#[derive(Clone, Copy, Debug)]
pub struct CallerBuffer {
    /// First byte (null only when `bytes == 0`).
    pub ptr: *mut u8,
    /// Length in bytes, checked against the plan before the run.
    pub bytes: usize,
}

/// Everything the tensors of one run live in.
pub struct Memory<'a> {
    tensors: &'a [TensorInfo],
    inputs: &'a [CallerBuffer],
    outputs: &'a [CallerBuffer],
    arena: *mut u8,
    weights: &'a [u8],
    inline: &'a [InlineData],
    _arena: PhantomData<&'a mut [u8]>,
}

// SAFETY: the raw pointers only become slices through `src` (shared reads of tensors that no
// output of the running step overlaps, checked at load) and the unsafe `dst`, whose contract
// makes each writable view exclusive; so threads of one step may share the memory to read their
// inputs, as they would share `&[T]` slices.
unsafe impl Sync for Memory<'_> {}

impl<'a> Memory<'a> {
    /// Memory for one run.
    ///
    /// # Safety
    /// Every tensor's bytes lie inside its place: caller buffers were checked to be at least as
    /// long as each tensor placed in them and aligned for its type, `arena` points to an
    /// allocation holding every arena tensor (64-byte aligned), all valid for 'a; caller output
    /// buffers overlap no other buffer, and nothing else accesses these buffers during 'a.
    pub unsafe fn new(
        tensors: &'a [TensorInfo],
        inputs: &'a [CallerBuffer],
        outputs: &'a [CallerBuffer],
        arena: *mut u8,
        weights: &'a [u8],
        inline: &'a [InlineData],
    ) -> Self {
        Memory {
            tensors,
            inputs,
            outputs,
            arena,
            weights,
            inline,
            _arena: PhantomData,
        }
    }

    /// The checked description of tensor `t`.
    pub fn info(&self, t: usize) -> &'a TensorInfo {
        &self.tensors[t]
    }

    /// First byte of tensor `t`, or None when it is an inline constant.
    fn base(&self, t: usize) -> Option<*mut u8> {
        let info = &self.tensors[t];
        match &info.place {
            Place::Input(i) => Some(self.inputs[*i].ptr),
            Place::Output(i) => Some(self.outputs[*i].ptr),
            // SAFETY: arena tensors lie inside the arena allocation (checked at load).
            Place::Arena(offset) => Some(unsafe { self.arena.add(*offset) }),
            Place::Weight(range) => Some(self.weights[range.clone()].as_ptr().cast_mut()),
            Place::Inline(_) => None,
        }
    }

    /// A read-only view of tensor `t`.
    ///
    /// Sound while no [`Dst`] of an overlapping tensor is alive: steps only read tensors that
    /// their outputs do not overlap (checked at load).
    pub fn src(&self, t: usize) -> Src<'a> {
        let info = &self.tensors[t];
        if let Place::Inline(i) = info.place {
            return match &self.inline[i] {
                InlineData::F16(v) => Src::F16(v),
                InlineData::F32(v) => Src::F32(v),
                InlineData::I32(v) => Src::I32(v),
            };
        }
        let ptr = self.base(t).expect("not inline");
        let len = info.len;
        /// `len` elements of `T` at `ptr`; empty views never touch the pointer.
        ///
        /// # Safety
        /// As `Memory::new` promises for the tensor: in bounds and aligned.
        unsafe fn view<'b, T>(ptr: *mut u8, len: usize) -> &'b [T] {
            if len == 0 {
                return &[];
            }
            // SAFETY: forwarded from the caller.
            unsafe { std::slice::from_raw_parts(ptr.cast::<T>().cast_const(), len) }
        }
        // SAFETY: Memory::new's contract places the tensor's `bytes()` inside its buffer with
        // the alignment of its type; every bit pattern is valid for these element types.
        unsafe {
            match info.dtype {
                DType::F16 => Src::F16(view(ptr, len)),
                DType::F32 => Src::F32(view(ptr, len)),
                DType::I32 => Src::I32(view(ptr, len)),
                DType::I8 => Src::I8(view(ptr, len)),
                DType::I4 => Src::I4(view(ptr, info.bytes())),
                DType::U4 => Src::Indices {
                    bits: 4,
                    packed: view(ptr, info.bytes()),
                },
                DType::U6 => Src::Indices {
                    bits: 6,
                    packed: view(ptr, info.bytes()),
                },
            }
        }
    }

    /// A writable view of tensor `t`.
    ///
    /// # Safety
    /// `t` is an output of the running step (so writable, and overlapping none of the step's
    /// inputs or other outputs: checked at load), and this is the only view of `t` taken during
    /// the step.
    pub unsafe fn dst(&self, t: usize) -> Dst<'a> {
        let info = &self.tensors[t];
        assert!(
            info.is_writable(),
            "Memory::dst: tensor {t} is not writable"
        );
        let ptr = self.base(t).expect("writable tensors are not inline");
        let len = info.len;
        /// `len` elements of `T` at `ptr`, writable.
        ///
        /// # Safety
        /// As `Memory::dst` promises: in bounds, aligned, exclusive.
        unsafe fn view<'b, T>(ptr: *mut u8, len: usize) -> &'b mut [T] {
            if len == 0 {
                return &mut [];
            }
            // SAFETY: forwarded from the caller.
            unsafe { std::slice::from_raw_parts_mut(ptr.cast::<T>(), len) }
        }
        // SAFETY: in bounds and aligned by Memory::new's contract, exclusive by this function's.
        unsafe {
            match info.dtype {
                DType::F16 => Dst::F16(view(ptr, len)),
                DType::F32 => Dst::F32(view(ptr, len)),
                DType::I32 => Dst::I32(view(ptr, len)),
                DType::I8 | DType::I4 | DType::U4 | DType::U6 => {
                    unreachable!("checked at load: outputs are numeric")
                }
            }
        }
    }
}
