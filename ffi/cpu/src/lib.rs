//! llamane's CPU backend: compute kernels for Llama inference and the C ABI that Deno loads.
//!
//! A bundle piece runs as an execution plan ([`plan`], format in PLAN.md): the runtime compiles a
//! MIL function into tensors and steps, [`plan::Plan`] checks them against the piece's mapped
//! weight.bin ([`weight_file`]) and runs the steps on caller buffers, with scratch allocated once.
//!
//! Data flow of a linear layer: [`weights::Weights`] validates the packed bytes of weight.bin,
//! [`linear::linear`] picks f32 or int8 activations and splits the output columns over the
//! [`thread_pool::ThreadPool`], and a kernel from the [`kernels::Kernels`] table chosen at load
//! time (scalar, AVX2, NEON) computes each share; [`matmul`] does the same for products whose
//! right operand is read row by row. [`ffi`] exposes it all through `extern "C"` (ABI.md).

pub mod attention;
pub mod dtype;
pub mod error;
pub mod ffi;
pub mod kernels;
pub mod linear;
pub mod matmul;
pub mod palette;
pub mod plan;
pub mod quantize;
pub mod thread_pool;
pub mod weight_file;
pub mod weights;
