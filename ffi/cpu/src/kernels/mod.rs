//! The compute kernels and the table of function pointers that selects them.
//!
//! Every kernel exists as a scalar reference in [`scalar`] (always compiled: the definition of
//! correctness) and, where it pays, as SIMD versions in one module per instruction set. Which
//! version runs is decided once, on first use, by run-time feature detection: one dylib serves
//! every CPU of an architecture. A new instruction set (AVX-512, SVE) is one more module that
//! fills a [`Kernels`] table, plus one line in [`available`].
//!
//! All entries are safe functions: they assert their length contracts (a panic is caught at the
//! C ABI) and the SIMD tables are only reachable on CPUs that have the features.

pub mod out_columns;
pub mod q8_rows;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
pub mod x86_avx2;
#[cfg(target_arch = "x86_64")]
pub mod x86_vnni;

#[cfg(target_arch = "aarch64")]
pub mod aarch64_dotprod;
#[cfg(target_arch = "aarch64")]
pub mod aarch64_i8mm;
#[cfg(target_arch = "aarch64")]
pub mod aarch64_neon;

use std::ffi::CStr;
use std::sync::OnceLock;

use crate::weights::{WeightFormat, Weights};
use out_columns::OutColumns;
use q8_rows::{Q8Layout, Q8Rows};

/// The instruction set a [`Kernels`] table is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust, no explicit SIMD.
    Scalar,
    /// x86-64 with AVX2, FMA and F16C.
    Avx2,
    /// x86-64 with AVX2 and AVX-VNNI (`vpdpbusd` in VEX encoding).
    AvxVnni,
    /// x86-64 with AVX2 and AVX-512 VNNI (with AVX-512F, VL and BW).
    Avx512,
    /// aarch64 Advanced SIMD.
    Neon,
    /// aarch64 Advanced SIMD with the dot-product extension (`sdot`).
    Dotprod,
    /// aarch64 Advanced SIMD with the dot-product and int8 matrix-multiply extensions (`smmla`).
    I8mm,
}

impl Isa {
    /// Lower-case name, as accepted by [`FORCE_VARIABLE`].
    pub fn name(self) -> &'static str {
        self.c_name().to_str().expect("kernel set names are ASCII")
    }

    /// [`Isa::name`] NUL-terminated, for the C ABI.
    pub fn c_name(self) -> &'static CStr {
        match self {
            Isa::Scalar => c"scalar",
            Isa::Avx2 => c"avx2",
            Isa::AvxVnni => c"avxvnni",
            Isa::Avx512 => c"avx512",
            Isa::Neon => c"neon",
            Isa::Dotprod => c"dotprod",
            Isa::I8mm => c"i8mm",
        }
    }
}

/// `y[r, c] = sum_j x[r, j] * W[c, j]` for the columns `c` of `out`, with f32 activations
/// `x [m, k]` (`m = out.m()`, `k = w.k()`). No bias: the caller adds it.
pub type LinearF32Fn = fn(out: &mut OutColumns, x: &[f32], w: &Weights);

/// Same product with activations quantized to int8 blocks ([`Q8Rows`] in the layout that
/// [`LinearQ8Table::layout`] names for the weight format).
pub type LinearQ8Fn = fn(out: &mut OutColumns, x: &Q8Rows, w: &Weights);

/// A row-major matrix of f32 or f16 values, the right operand of [`MatmulRowsFn`].
#[derive(Clone, Copy, Debug)]
pub enum Rows<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// f16 bit patterns.
    F16(&'a [u16]),
}

impl Rows<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Rows::F32(s) => s.len(),
            Rows::F16(s) => s.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as f32.
    #[inline]
    pub fn get(&self, i: usize) -> f32 {
        match self {
            Rows::F32(s) => s[i],
            Rows::F16(s) => half::f16::from_bits(s[i]).to_f32(),
        }
    }
}

/// Rows of a `[rows, width]` matrix of `len` elements, checked to fit transposed into `out_len`
/// elements with rows of `stride` (the contract of [`Kernels::transpose`]).
pub fn transposed_rows(out_len: usize, stride: usize, len: usize, width: usize) -> usize {
    assert!(
        width > 0 && len.is_multiple_of(width),
        "transpose: {len} elements are not rows of {width}"
    );
    let rows = len / width;
    assert!(
        rows <= stride && (rows == 0 || (width - 1) * stride + rows <= out_len),
        "transpose: [{rows}, {width}] does not fit {out_len} elements in rows of {stride}"
    );
    rows
}

/// `y[r, c] = sum_j a[r, j] * b[j, c]` for the columns `c` of `out`, with `a [m, k]` and
/// `b [k, n]` (`m = out.m()`, `n = out.n()`, `k = a.len() / m`): each output accumulates over `j`
/// in order, one fused multiply-add per term, so a row's result is a function of that row alone
/// and terms with `a[r, j] = 0` leave it unchanged.
pub type MatmulRowsFn = fn(out: &mut OutColumns, a: &[f32], b: Rows);

/// Layer norm over rows of `dim`, optional gamma and beta (see [`Kernels::layer_norm`]).
pub type LayerNormFn = fn(
    out: &mut [f32],
    x: &[f32],
    dim: usize,
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
    eps: f32,
);

/// RoPE over rows of `2 * cos.len()` (see [`Kernels::rope`]).
pub type RopeFn = fn(out: &mut [f32], x: &[f32], cos: &[f32], sin: &[f32]);

/// One [`LinearF32Fn`] per weight format.
#[derive(Clone, Copy)]
pub struct LinearF32Table {
    /// Dense f32 weights.
    pub f32: LinearF32Fn,
    /// Dense f16 weights.
    pub f16: LinearF32Fn,
    /// int8, per-channel scales.
    pub int8_per_channel: LinearF32Fn,
    /// int4, per-channel scales.
    pub int4_per_channel: LinearF32Fn,
    /// int4, scales per block of 32.
    pub int4_block32: LinearF32Fn,
    /// int8, scales per block of 32.
    pub int8_block32: LinearF32Fn,
    /// Palette indices, 4 or 6 bits.
    pub palettized: LinearF32Fn,
}

impl LinearF32Table {
    /// The kernel for `format`.
    pub fn get(&self, format: WeightFormat) -> LinearF32Fn {
        match format {
            WeightFormat::F32 => self.f32,
            WeightFormat::F16 => self.f16,
            WeightFormat::Int8PerChannel => self.int8_per_channel,
            WeightFormat::Int4PerChannel => self.int4_per_channel,
            WeightFormat::Int4Block32 => self.int4_block32,
            WeightFormat::Int8Block32 => self.int8_block32,
            WeightFormat::Lut4 | WeightFormat::Lut6 => self.palettized,
        }
    }
}

/// One [`LinearQ8Fn`] per quantized weight format.
#[derive(Clone, Copy)]
pub struct LinearQ8Table {
    /// int8, per-channel scales.
    pub int8_per_channel: LinearQ8Fn,
    /// int4, per-channel scales.
    pub int4_per_channel: LinearQ8Fn,
    /// int4, scales per block of 32.
    pub int4_block32: LinearQ8Fn,
    /// int8, scales per block of 32.
    pub int8_block32: LinearQ8Fn,
    /// 4-bit palette indices.
    pub lut4: LinearQ8Fn,
    /// 6-bit palette indices.
    pub lut6: LinearQ8Fn,
    /// The activation layout of the int4 and palette kernels (int8 weights take
    /// [`Q8Layout::Natural`]).
    pub int4_layout: Q8Layout,
}

impl LinearQ8Table {
    /// The kernel for `format`, or None for dense formats (they have no integer path).
    pub fn get(&self, format: WeightFormat) -> Option<LinearQ8Fn> {
        match format {
            WeightFormat::F32 | WeightFormat::F16 => None,
            WeightFormat::Int8PerChannel => Some(self.int8_per_channel),
            WeightFormat::Int4PerChannel => Some(self.int4_per_channel),
            WeightFormat::Int4Block32 => Some(self.int4_block32),
            WeightFormat::Int8Block32 => Some(self.int8_block32),
            WeightFormat::Lut4 => Some(self.lut4),
            WeightFormat::Lut6 => Some(self.lut6),
        }
    }

    /// The activation layout the kernel for `format` expects.
    pub fn layout(&self, format: WeightFormat) -> Q8Layout {
        match format {
            WeightFormat::Int4PerChannel
            | WeightFormat::Int4Block32
            | WeightFormat::Lut4
            | WeightFormat::Lut6 => self.int4_layout,
            _ => Q8Layout::Natural,
        }
    }
}

/// The kernels of one instruction set. Row-wise kernels take the output first; a slice holding
/// several rows is cut by the length of the per-row parameter.
#[derive(Clone, Copy)]
pub struct Kernels {
    /// Which instruction set this table uses.
    pub isa: Isa,
    /// `out[i] = f32(x[i])`, x as f16 bits.
    pub f16_to_f32: fn(out: &mut [f32], x: &[u16]),
    /// `out[i] = f16(x[i])`, round to nearest even, as bits.
    pub f32_to_f16: fn(out: &mut [u16], x: &[f32]),
    /// `out[i] = a[i] + b[i]`.
    pub add: fn(out: &mut [f32], a: &[f32], b: &[f32]),
    /// `out[i] = silu(a[i]) * b[i]`, `silu(a) = a / (1 + exp(-a))` (Llama's SwiGLU).
    pub silu_mul: fn(out: &mut [f32], a: &[f32], b: &[f32]),
    /// `out[i] = x[i] / (1 + exp(-x[i]))`.
    pub silu: fn(out: &mut [f32], x: &[f32]),
    /// `out[i] = 1 / (1 + exp(-x[i]))`.
    pub sigmoid: fn(out: &mut [f32], x: &[f32]),
    /// Per row of `weight.len()`: `out = x / sqrt(mean(x^2) + eps) * weight`.
    pub rms_norm: fn(out: &mut [f32], x: &[f32], weight: &[f32], eps: f32),
    /// Per row of `dim`: `out = (x - mean) / sqrt(var + eps) * gamma + beta` (biased variance).
    pub layer_norm: LayerNormFn,
    /// Per row of `dim`: `out = exp(x - max) / sum(exp(x - max))`; a row that is entirely -inf
    /// gives zeros. Entries equal to -inf add exactly nothing to the sum, wherever they are.
    pub softmax: fn(out: &mut [f32], x: &[f32], dim: usize),
    /// Per row of `2 * cos.len()`, rotates the pairs `(x[i], x[i + h])` (`h = cos.len()`) by the
    /// angle whose cosine and sine are `cos[i]`, `sin[i]` (the exporter's half-split RoPE).
    pub rope: RopeFn,
    /// Writes the `[rows, cols]` matrix `x` (`cols = width`) transposed and as f32 into the
    /// columns `0..rows` of `out`, a row-major matrix with rows of `stride`:
    /// `out[c * stride + r] = x[r, c]`. Attention's keys, turned so that a query meets 8 keys per
    /// vector.
    pub transpose: fn(out: &mut [f32], stride: usize, x: Rows, width: usize),
    /// Quantizes one row (`x.len() % 32 == 0`) to int8 blocks in `layout` order; returns the
    /// row's dequantized sum (see [`Q8Rows`]).
    pub quantize_row_q8:
        fn(values: &mut [i8], scales: &mut [f32], x: &[f32], layout: Q8Layout) -> f32,
    /// Matrix products with the right operand read row by row (attention's `probs @ V`).
    pub matmul_rows: MatmulRowsFn,
    /// Linear layers with f32 activations.
    pub linear_f32: LinearF32Table,
    /// Linear layers with int8 activations.
    pub linear_q8: LinearQ8Table,
}

/// Every table this CPU can run, scalar first, best last.
pub fn available() -> Vec<&'static Kernels> {
    let mut tables = vec![&scalar::KERNELS];
    #[cfg(target_arch = "x86_64")]
    tables.extend(x86_avx2::kernels());
    #[cfg(target_arch = "x86_64")]
    tables.extend(x86_vnni::kernels());
    #[cfg(target_arch = "aarch64")]
    tables.extend(aarch64_neon::kernels());
    #[cfg(target_arch = "aarch64")]
    tables.extend(aarch64_dotprod::kernels());
    #[cfg(target_arch = "aarch64")]
    tables.extend(aarch64_i8mm::kernels());
    tables
}

/// The scalar reference table.
pub fn scalar() -> &'static Kernels {
    &scalar::KERNELS
}

/// The environment variable that forces a kernel table by name, for cross-checks and bug reports.
pub const FORCE_VARIABLE: &str = "LLAMANE_CPU_KERNELS";

/// The available table named `name` (see [`Isa::name`]); the error says which ones this CPU has.
pub fn by_name(name: &str) -> Result<&'static Kernels, String> {
    let tables = available();
    tables
        .iter()
        .find(|t| t.isa.name() == name)
        .copied()
        .ok_or_else(|| {
            let names: Vec<_> = tables.iter().map(|t| t.isa.name()).collect();
            format!(
                "{FORCE_VARIABLE}={name:?} names no kernel set this CPU can run (it has {})",
                names.join(", ")
            )
        })
}

/// The table used by the library, chosen on first call: the one [`FORCE_VARIABLE`] names when it
/// is set and not empty, else the best available one. A name this CPU cannot run is an error for
/// every call, rather than a silent fallback that a bug report would then misdescribe.
pub fn try_selected() -> Result<&'static Kernels, String> {
    static SELECTED: OnceLock<Result<&'static Kernels, String>> = OnceLock::new();
    SELECTED
        .get_or_init(|| match std::env::var(FORCE_VARIABLE) {
            Err(std::env::VarError::NotPresent) => Ok(best()),
            Ok(name) if name.is_empty() => Ok(best()),
            Ok(name) => by_name(&name),
            Err(e) => Err(format!("{FORCE_VARIABLE}: {e}")),
        })
        .clone()
}

/// [`try_selected`] for tests and tools, which may panic on a bad [`FORCE_VARIABLE`].
pub fn selected() -> &'static Kernels {
    try_selected().unwrap_or_else(|e| panic!("{e}"))
}

/// The best table this CPU can run.
fn best() -> &'static Kernels {
    let tables = available();
    tables[tables.len() - 1]
}
