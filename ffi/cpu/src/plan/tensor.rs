//! A plan tensor after the load-time checks: element type, shape, element count and a place
//! whose bounds have been verified.

use std::ops::Range;

pub use super::format::DType;

/// Highest rank a plan tensor may have (PLAN.md).
pub const MAX_RANK: usize = 5;

impl DType {
    /// Bytes of `elements` values (i4: `ceil(elements / 2)`).
    pub fn bytes(self, elements: usize) -> usize {
        match self {
            DType::F16 => elements * 2,
            DType::F32 | DType::I32 => elements * 4,
            DType::I8 => elements,
            DType::I4 | DType::U4 => elements.div_ceil(2),
            DType::U6 => (elements * 6).div_ceil(8),
        }
    }

    /// Alignment a buffer of this type needs to be read in place.
    pub fn align(self) -> usize {
        match self {
            DType::F16 => 2,
            DType::F32 | DType::I32 => 4,
            DType::I8 | DType::I4 | DType::U4 | DType::U6 => 1,
        }
    }

    /// Whether steps read this type as numbers (f16, f32, i32); i8 and i4 are only ever read
    /// through a weight's scales, u4 and u6 through its palettes.
    pub fn is_numeric(self) -> bool {
        matches!(self, DType::F16 | DType::F32 | DType::I32)
    }

    /// Lower-case name, as in the plan.
    pub fn name(self) -> &'static str {
        match self {
            DType::F16 => "f16",
            DType::F32 => "f32",
            DType::I32 => "i32",
            DType::I8 => "i8",
            DType::I4 => "i4",
            DType::U4 => "u4",
            DType::U6 => "u6",
        }
    }
}

/// Where a checked tensor's bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// The caller's input buffer `i`, from its first byte.
    Input(usize),
    /// The caller's output buffer `i`, from its first byte.
    Output(usize),
    /// At this byte offset of the arena.
    Arena(usize),
    /// These bytes of weight.bin (the blob's data, record checked).
    Weight(Range<usize>),
    /// The plan's inline constant `i`.
    Inline(usize),
}

/// A checked tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Element type.
    pub dtype: DType,
    /// Static sizes, row-major.
    pub shape: Vec<usize>,
    /// Number of elements (1 for a scalar).
    pub len: usize,
    /// Where the bytes are.
    pub place: Place,
}

impl TensorInfo {
    /// Bytes the tensor occupies.
    pub fn bytes(&self) -> usize {
        self.dtype.bytes(self.len)
    }

    /// Whether steps may write it (arena and output buffers).
    pub fn is_writable(&self) -> bool {
        matches!(self.place, Place::Arena(_) | Place::Output(_))
    }

    /// Byte range inside the arena, if it lives there.
    pub fn arena_range(&self) -> Option<Range<usize>> {
        match self.place {
            Place::Arena(offset) => Some(offset..offset + self.bytes()),
            _ => None,
        }
    }

    /// Whether writing `self` could change the bytes of `other`: both in the arena with
    /// intersecting ranges, or views of the same caller buffer (views start at its first byte).
    /// Empty tensors overlap nothing.
    pub fn overlaps(&self, other: &TensorInfo) -> bool {
        if self.bytes() == 0 || other.bytes() == 0 {
            return false;
        }
        match (&self.place, &other.place) {
            (Place::Arena(_), Place::Arena(_)) => {
                let (a, b) = (self.arena_range(), other.arena_range());
                let (a, b) = (a.expect("arena"), b.expect("arena"));
                a.start < b.end && b.start < a.end
            }
            (Place::Input(i), Place::Input(j)) | (Place::Output(i), Place::Output(j)) => i == j,
            _ => false,
        }
    }

    /// `dtype[shape]`, for messages.
    pub fn describe(&self) -> String {
        format!("{}{:?}", self.dtype.name(), self.shape)
    }
}

/// Constants written in the plan, converted to their tensor's type at load.
#[derive(Clone, Debug, PartialEq)]
pub enum InlineData {
    /// f16 bit patterns.
    F16(Vec<u16>),
    /// f32 values.
    F32(Vec<f32>),
    /// i32 values.
    I32(Vec<i32>),
}
