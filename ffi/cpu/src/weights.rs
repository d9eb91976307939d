//! Linear-layer weights as they sit in an exported weight.bin, validated once.
//!
//! Core ML's `constexpr_blockwise_shift_scale` dequantizes `w = scale[g] * (data - offset[g])`:
//! every quantized format here is an integer array plus one scale per output channel or per block
//! of 32 inputs (the block of GGUF's Q8_0 and Q4_0, which bundles can keep), and optionally one
//! offset per scale ([`Offsets`]). Nothing is ever expanded to f32 in memory: the kernels read
//! these packed views directly, and [`crate::linear`] subtracts the offsets' share afterwards.

use crate::dtype::DType;
use crate::error::{check_len, Error};
use crate::palette::Palettes;

/// Number of inputs sharing one scale in [`WeightFormat::Int4Block32`], and the block size of the
/// int8 activation quantization.
pub const BLOCK: usize = 32;

/// A weight format; the numbers are the codes used at the C ABI (see ABI.md).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightFormat {
    /// Dense f32 `[n, k]`, row-major.
    F32 = 0,
    /// Dense f16 `[n, k]`, row-major.
    F16 = 1,
    /// int8 `[n, k]` with one scale per output channel, scales `[n]`.
    Int8PerChannel = 2,
    /// int4 `[n, k]` packed two per byte, one scale per output channel, scales `[n]`.
    Int4PerChannel = 3,
    /// int4 `[n, k]` packed two per byte, one scale per block of 32 inputs, scales `[n, k/32]`.
    Int4Block32 = 4,
    /// int8 `[n, k]`, one scale per block of 32 inputs, scales `[n, k/32]`.
    Int8Block32 = 5,
    /// 4-bit palette indices `[n, k]`, one palette of 16 values per group of rows (plans only).
    Lut4 = 6,
    /// 6-bit palette indices `[n, k]`, one palette of 64 values per group of rows (plans only).
    Lut6 = 7,
}

impl WeightFormat {
    /// Decodes an ABI code.
    pub fn from_code(code: u32) -> Result<Self, Error> {
        Ok(match code {
            0 => WeightFormat::F32,
            1 => WeightFormat::F16,
            2 => WeightFormat::Int8PerChannel,
            3 => WeightFormat::Int4PerChannel,
            4 => WeightFormat::Int4Block32,
            5 => WeightFormat::Int8Block32,
            _ => {
                return Err(Error::invalid(format!(
                    "unknown weight format code {code}: expected 0..=5 (see ABI.md)"
                )))
            }
        })
    }

    /// Bytes of the data array (not the scales) for an `[n, k]` matrix.
    pub fn data_bytes(self, n: usize, k: usize) -> usize {
        match self {
            WeightFormat::F32 => n * k * 4,
            WeightFormat::F16 => n * k * 2,
            WeightFormat::Int8PerChannel | WeightFormat::Int8Block32 => n * k,
            WeightFormat::Int4PerChannel | WeightFormat::Int4Block32 | WeightFormat::Lut4 => {
                (n * k).div_ceil(2)
            }
            WeightFormat::Lut6 => (n * k * 6).div_ceil(8),
        }
    }

    /// Number of scales for an `[n, k]` matrix (0 for dense and palettized formats).
    pub fn scale_count(self, n: usize, k: usize) -> usize {
        match self {
            WeightFormat::F32 | WeightFormat::F16 | WeightFormat::Lut4 | WeightFormat::Lut6 => 0,
            WeightFormat::Int8PerChannel | WeightFormat::Int4PerChannel => n,
            WeightFormat::Int4Block32 | WeightFormat::Int8Block32 => n * (k / BLOCK),
        }
    }

    /// Whether the int8-activation path applies to this format.
    pub fn is_quantized(self) -> bool {
        !matches!(self, WeightFormat::F32 | WeightFormat::F16)
    }
}

/// Dequantization scales, f16 in fp16 models and f32 in fp32 models.
#[derive(Clone, Copy, Debug)]
pub enum Scales<'a> {
    /// f32 scales.
    F32(&'a [f32]),
    /// f16 scales as raw bit patterns.
    F16(&'a [u16]),
}

impl Scales<'_> {
    /// Number of scales.
    pub fn len(&self) -> usize {
        match self {
            Scales::F32(s) => s.len(),
            Scales::F16(s) => s.len(),
        }
    }

    /// Whether there are no scales.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The scale at `i` as f32.
    #[inline(always)]
    pub fn get(&self, i: usize) -> f32 {
        match self {
            Scales::F32(s) => s[i],
            Scales::F16(s) => half::f16::from_bits(s[i]).to_f32(),
        }
    }

    /// The element type of the scales.
    pub fn dtype(&self) -> DType {
        match self {
            Scales::F32(_) => DType::F32,
            Scales::F16(_) => DType::F16,
        }
    }
}

/// Offsets subtracted from quantized data before scaling, one per scale: integers of the data's
/// type (zero points) or floats.
#[derive(Clone, Copy, Debug)]
pub enum Offsets<'a> {
    /// int8 offsets.
    Int8(&'a [i8]),
    /// int4 offsets packed two per byte as the data are.
    Int4 { packed: &'a [u8], len: usize },
    /// f16 offsets as raw bit patterns.
    F16(&'a [u16]),
    /// f32 offsets.
    F32(&'a [f32]),
}

impl Offsets<'_> {
    /// Number of offsets.
    pub fn len(&self) -> usize {
        match self {
            Offsets::Int8(o) => o.len(),
            Offsets::Int4 { len, .. } => *len,
            Offsets::F16(o) => o.len(),
            Offsets::F32(o) => o.len(),
        }
    }

    /// Whether there are no offsets.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The offset at `i` as f32 (exact for every stored type).
    #[inline(always)]
    pub fn get(&self, i: usize) -> f32 {
        match self {
            Offsets::Int8(o) => f32::from(o[i]),
            Offsets::Int4 { packed, .. } => f32::from(int4_at(packed, i)),
            Offsets::F16(o) => half::f16::from_bits(o[i]).to_f32(),
            Offsets::F32(o) => o[i],
        }
    }
}

/// The packed data of a weight matrix, one variant per [`WeightFormat`].
#[derive(Clone, Copy, Debug)]
pub enum WeightData<'a> {
    /// Dense f32 `[n, k]`.
    F32(&'a [f32]),
    /// Dense f16 `[n, k]` as raw bit patterns.
    F16(&'a [u16]),
    /// int8 `[n, k]`, scales `[n]`.
    Int8PerChannel { data: &'a [i8], scales: Scales<'a> },
    /// int4 `[n, k]` packed LSB-first, scales `[n]`.
    Int4PerChannel {
        packed: &'a [u8],
        scales: Scales<'a>,
    },
    /// int4 `[n, k]` packed LSB-first, scales `[n, k/32]`.
    Int4Block32 {
        packed: &'a [u8],
        scales: Scales<'a>,
    },
    /// int8 `[n, k]`, scales `[n, k/32]`.
    Int8Block32 { data: &'a [i8], scales: Scales<'a> },
    /// Palette indices `[n, k]` and the palettes of their row groups.
    Palettized(Palettes<'a>),
}

/// A validated `[n, k]` weight matrix (`n` outputs, `k` inputs): every length matches the shape,
/// so kernels may index without further checks.
#[derive(Clone, Copy, Debug)]
pub struct Weights<'a> {
    n: usize,
    k: usize,
    data: WeightData<'a>,
    offsets: Option<Offsets<'a>>,
}

impl<'a> Weights<'a> {
    /// Checks that the buffers match an `[n, k]` matrix of the variant's format.
    pub fn new(n: usize, k: usize, data: WeightData<'a>) -> Result<Self, Error> {
        if n == 0 || k == 0 {
            return Err(Error::invalid(format!(
                "weights: shape [{n}, {k}] is empty"
            )));
        }
        let w = Weights {
            n,
            k,
            data,
            offsets: None,
        };
        let format = w.format();
        let blockwise = matches!(
            format,
            WeightFormat::Int4Block32 | WeightFormat::Int8Block32
        );
        if blockwise && !k.is_multiple_of(BLOCK) {
            return Err(Error::invalid(format!(
                "weights: {format:?} needs k divisible by {BLOCK}, got k = {k}"
            )));
        }
        let (data_len, unit) = match data {
            WeightData::F32(d) => (d.len() * 4, 4),
            WeightData::F16(d) => (d.len() * 2, 2),
            WeightData::Int8PerChannel { data, .. } | WeightData::Int8Block32 { data, .. } => {
                (data.len(), 1)
            }
            WeightData::Int4PerChannel { packed, .. } | WeightData::Int4Block32 { packed, .. } => {
                (packed.len(), 1)
            }
            WeightData::Palettized(p) => {
                if p.group_rows == 0 || !n.is_multiple_of(p.group_rows) {
                    return Err(Error::invalid(format!(
                        "weights: {} rows per palette do not divide n = {n}",
                        p.group_rows
                    )));
                }
                let palettes = n / p.group_rows;
                check_len("weights: palettes", p.values.len(), palettes * p.entries())?;
                check_len("weights: levels", p.levels.len(), palettes * p.entries())?;
                check_len("weights: steps", p.steps.len(), palettes)?;
                (p.indices.len(), 1)
            }
        };
        check_len(
            "weights: data",
            data_len / unit,
            format.data_bytes(n, k) / unit,
        )?;
        if let Some(scales) = w.scales() {
            check_len("weights: scales", scales.len(), format.scale_count(n, k))?;
        }
        Ok(w)
    }

    /// The same weights with one offset per scale (quantized formats only).
    pub fn with_offsets(self, offsets: Offsets<'a>) -> Result<Self, Error> {
        let Some(scales) = self.scales() else {
            return Err(Error::invalid(format!(
                "weights: {:?} data take no offsets",
                self.format()
            )));
        };
        let packed_len = match offsets {
            Offsets::Int4 { packed, len } => Some((packed.len(), len.div_ceil(2))),
            _ => None,
        };
        if let Some((have, want)) = packed_len {
            check_len("weights: packed offsets", have, want)?;
        }
        check_len("weights: offsets", offsets.len(), scales.len())?;
        Ok(Weights {
            offsets: Some(offsets),
            ..self
        })
    }

    /// The offsets, when the data have them.
    pub fn offsets(&self) -> Option<Offsets<'a>> {
        self.offsets
    }

    /// Inputs per scale along a row (formats with scales only).
    pub fn group(&self) -> Option<usize> {
        match self.format() {
            WeightFormat::F32 | WeightFormat::F16 | WeightFormat::Lut4 | WeightFormat::Lut6 => None,
            WeightFormat::Int8PerChannel | WeightFormat::Int4PerChannel => Some(self.k),
            WeightFormat::Int4Block32 | WeightFormat::Int8Block32 => Some(BLOCK),
        }
    }

    /// Output features (rows).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Input features (columns).
    pub fn k(&self) -> usize {
        self.k
    }

    /// The packed data.
    pub fn data(&self) -> WeightData<'a> {
        self.data
    }

    /// The format of the packed data.
    pub fn format(&self) -> WeightFormat {
        match self.data {
            WeightData::F32(_) => WeightFormat::F32,
            WeightData::F16(_) => WeightFormat::F16,
            WeightData::Int8PerChannel { .. } => WeightFormat::Int8PerChannel,
            WeightData::Int4PerChannel { .. } => WeightFormat::Int4PerChannel,
            WeightData::Int4Block32 { .. } => WeightFormat::Int4Block32,
            WeightData::Int8Block32 { .. } => WeightFormat::Int8Block32,
            WeightData::Palettized(p) if p.bits == 4 => WeightFormat::Lut4,
            WeightData::Palettized(_) => WeightFormat::Lut6,
        }
    }

    /// The scales of a quantized format.
    pub fn scales(&self) -> Option<Scales<'a>> {
        match self.data {
            WeightData::F32(_) | WeightData::F16(_) | WeightData::Palettized(_) => None,
            WeightData::Int8PerChannel { scales, .. }
            | WeightData::Int4PerChannel { scales, .. }
            | WeightData::Int4Block32 { scales, .. }
            | WeightData::Int8Block32 { scales, .. } => Some(scales),
        }
    }

    /// Bytes the kernels read for the whole matrix (data plus scales): the traffic of a GEMV.
    /// Offsets are read once per call, not per row, and are left out.
    pub fn size_bytes(&self) -> usize {
        let scales = match self.data {
            WeightData::Palettized(p) => p.values.len() * p.values.dtype().size_bytes(),
            _ => self
                .scales()
                .map_or(0, |s| s.len() * s.dtype().size_bytes()),
        };
        self.format().data_bytes(self.n, self.k) + scales
    }

    /// Row `row` dequantized into `out` (length `k`): `scale * (q - offset)`, the definition every
    /// kernel is tested against. For tests and cross-checks only: kernels never expand a whole
    /// matrix.
    pub fn dequantize_row(&self, row: usize, out: &mut [f32]) {
        let k = self.k;
        assert!(
            row < self.n && out.len() == k,
            "dequantize_row: bad row or length"
        );
        let base = row * k;
        let group = self.group().unwrap_or(k);
        let offset = |j: usize| {
            self.offsets
                .map_or(0.0, |o| o.get(row * (k / group) + j / group))
        };
        for (j, o) in out.iter_mut().enumerate() {
            *o = match self.data {
                WeightData::F32(d) => d[base + j],
                WeightData::F16(d) => half::f16::from_bits(d[base + j]).to_f32(),
                WeightData::Int8PerChannel { data, scales } => {
                    scales.get(row) * (f32::from(data[base + j]) - offset(j))
                }
                WeightData::Int4PerChannel { packed, scales } => {
                    scales.get(row) * (f32::from(int4_at(packed, base + j)) - offset(j))
                }
                WeightData::Int4Block32 { packed, scales } => {
                    let blocks = k / BLOCK;
                    scales.get(row * blocks + j / BLOCK)
                        * (f32::from(int4_at(packed, base + j)) - offset(j))
                }
                WeightData::Int8Block32 { data, scales } => {
                    let blocks = k / BLOCK;
                    scales.get(row * blocks + j / BLOCK) * (f32::from(data[base + j]) - offset(j))
                }
                WeightData::Palettized(p) => {
                    p.values.get(p.group(row) * p.entries() + p.index(base + j))
                }
            };
        }
    }
}

/// The int4 value at flat element index `i`: element `2b` is the low nibble of byte `b`, element
/// `2b + 1` the high nibble, two's complement in [-8, 7].
#[inline(always)]
pub fn int4_at(packed: &[u8], i: usize) -> i8 {
    let byte = packed[i / 2];
    let nibble = if i.is_multiple_of(2) {
        byte << 4
    } else {
        byte & 0xF0
    };
    // The nibble now sits in the high half; an arithmetic shift sign-extends it.
    (nibble as i8) >> 4
}
