//! llamane's Core ML bridge: the C functions of ABI.md over Core ML (objc2-core-ml). `abi` checks
//! what crosses the boundary and keeps each handle's bound buffers; `portable` is the logic around
//! Core ML calls that needs no Core ML; both build everywhere, so their tests run on Linux.
//! `bridge` is the Core ML side and exists only on Apple systems.

// Every unsafe block states what it relies on; clippy enforces it (build.sh, the Linux check).
#![deny(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]

pub mod abi;
#[cfg(target_vendor = "apple")]
mod bridge;
pub mod portable;
