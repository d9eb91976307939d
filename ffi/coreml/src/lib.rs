//! llamane's Core ML bridge: the C functions of ABI.md over Core ML (objc2-core-ml). `abi` checks
//! what crosses the boundary, keeps each handle's bound buffers and builds everywhere, so its
//! tests run on Linux; `bridge` is the Core ML side and exists only on Apple systems.

// Every unsafe block states what it relies on; clippy enforces it (build.sh, the Linux check).
#![deny(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]

pub mod abi;
#[cfg(target_vendor = "apple")]
mod bridge;
