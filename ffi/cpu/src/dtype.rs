//! Element types of float buffers crossing the C ABI (activations, outputs, scales).

use crate::error::Error;

/// A float element type; the numbers are the codes used at the C ABI (see ABI.md).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// IEEE binary32.
    F32 = 0,
    /// IEEE binary16, passed as raw `u16` bit patterns.
    F16 = 1,
}

impl DType {
    /// Decodes an ABI code.
    pub fn from_code(code: u32) -> Result<Self, Error> {
        match code {
            0 => Ok(DType::F32),
            1 => Ok(DType::F16),
            _ => Err(Error::invalid(format!(
                "unknown dtype code {code}: expected 0 (f32) or 1 (f16)"
            ))),
        }
    }

    /// Bytes per element.
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
        }
    }
}
