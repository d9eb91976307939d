//! A weight operand (`weight` of linear and dequantize, `table` of gather): dense f16/f32 data
//! `[N, K]`, i8/i4 data `[N, K]` read through f16/f32 scales `[N, K / group]` and optional
//! offsets of the same shape as `(data[n, k] - offset[n, k / group]) * scale[n, k / group]`
//! (offsets are integers of the data's type or floats), or u4/u6 palette indices `[N, K]` read
//! through f16/f32 palettes `[G, 1, 2^bits, 1]` as `lut[n / (N / G), data[n, k]]`. Never expanded
//! to a full f32 matrix.

use super::Checker;
use crate::palette::index_at;
use crate::plan::convert::read_f32;
use crate::plan::format::Weight;
use crate::plan::memory::{Memory, Src};
use crate::plan::tensor::DType;
use crate::weights::{int4_at, Offsets};

/// `len` offsets as the kernels read them (types checked at load).
pub fn offsets_of(src: Src, len: usize) -> Offsets {
    match src {
        Src::I8(o) => Offsets::Int8(o),
        Src::I4(packed) => Offsets::Int4 { packed, len },
        Src::F16(o) => Offsets::F16(o),
        Src::F32(o) => Offsets::F32(o),
        Src::I32(_) | Src::Indices { .. } => {
            unreachable!("checked at load: offsets are i8, i4, f16 or f32")
        }
    }
}

/// Scales of quantized data.
#[derive(Clone, Copy, Debug)]
pub struct Quant {
    /// Tensor of the scales `[N, K / group]`.
    pub scale: usize,
    /// Inputs per scale along a row.
    pub group: usize,
    /// Tensor of the offsets `[N, K / group]`, if any.
    pub offset: Option<usize>,
}

/// The palettes of palette indices.
#[derive(Clone, Copy, Debug)]
pub struct Palette {
    /// Tensor of the palettes `[G, 1, 2^bits, 1]`.
    pub lut: usize,
    /// Rows sharing one palette, `N / G`.
    pub group_rows: usize,
}

/// A checked weight operand.
#[derive(Clone, Copy, Debug)]
pub struct WeightRef {
    /// Tensor of the data.
    pub data: usize,
    /// Element type of the data.
    pub dtype: DType,
    /// Scales, for i8/i4 data.
    pub quant: Option<Quant>,
    /// Palettes, for u4/u6 data.
    pub palette: Option<Palette>,
    /// Rows.
    pub n: usize,
    /// Columns.
    pub k: usize,
}

impl WeightRef {
    /// Checks the data's rank and type, and the scales' type and shape against the group.
    pub fn check(c: &Checker, w: &Weight, role: &str) -> Result<Self, String> {
        let data = c.tensor(w.data, &format!("{role} data"))?;
        let [n, k] = data.shape[..] else {
            return Err(format!(
                "{role} data (tensor {}) has shape {:?}, expected [N, K]",
                w.data, data.shape
            ));
        };
        let palette = match (data.dtype, w.lut) {
            (DType::U4 | DType::U6, Some(lut))
                if w.scale.is_none() && w.group.is_none() && w.offset.is_none() =>
            {
                Some(Self::check_palette(c, lut, data.dtype, n, role)?)
            }
            (DType::U4 | DType::U6, _) => {
                return Err(format!(
                    "{role} data (tensor {}) is {}, which takes a lut and no scale",
                    w.data,
                    data.describe()
                ))
            }
            (_, Some(_)) => {
                return Err(format!(
                    "{role} data (tensor {}) is {}, which takes no lut",
                    w.data,
                    data.describe()
                ))
            }
            (_, None) => None,
        };
        let quant = match (data.dtype, w.scale, w.group) {
            (DType::F16 | DType::F32, None, None) if w.offset.is_none() => None,
            (DType::U4 | DType::U6, _, _) => None,
            (DType::F16 | DType::F32, _, _) => {
                return Err(format!(
                    "{role} data (tensor {}) is {}, which takes no scale or group",
                    w.data,
                    data.describe()
                ))
            }
            (DType::I8 | DType::I4, Some(scale), Some(group)) => {
                let scales = c.tensor(scale, &format!("{role} scale"))?;
                if !matches!(scales.dtype, DType::F16 | DType::F32) {
                    return Err(format!(
                        "{role} scale (tensor {scale}) is {}, expected f16 or f32",
                        scales.describe()
                    ));
                }
                if group == 0 || !k.is_multiple_of(group) {
                    return Err(format!(
                        "{role} group {group} does not divide the row length K = {k}"
                    ));
                }
                if scales.shape != [n, k / group] {
                    return Err(format!(
                        "{role} scale (tensor {scale}) has shape {:?}, expected [{n}, {}] for \
                         data [{n}, {k}] in groups of {group}",
                        scales.shape,
                        k / group
                    ));
                }
                if let Some(offset) = w.offset {
                    let offsets = c.tensor(offset, &format!("{role} offset"))?;
                    if offsets.dtype != data.dtype
                        && !matches!(offsets.dtype, DType::F16 | DType::F32)
                    {
                        return Err(format!(
                            "{role} offset (tensor {offset}) is {}, expected {} as the data, f16 \
                             or f32",
                            offsets.describe(),
                            data.dtype.name()
                        ));
                    }
                    if offsets.shape != scales.shape {
                        return Err(format!(
                            "{role} offset (tensor {offset}) has shape {:?}, expected the scale's \
                             {:?}",
                            offsets.shape, scales.shape
                        ));
                    }
                }
                Some(Quant {
                    scale,
                    group,
                    offset: w.offset,
                })
            }
            (DType::I8 | DType::I4, _, _) => {
                return Err(format!(
                    "{role} data (tensor {}) is {}, which needs a scale and a group",
                    w.data,
                    data.describe()
                ))
            }
            (DType::I32, _, _) => {
                return Err(format!(
                    "{role} data (tensor {}) is {}, expected f16, f32, i8 or i4",
                    w.data,
                    data.describe()
                ))
            }
        };
        Ok(WeightRef {
            data: w.data,
            dtype: data.dtype,
            quant,
            palette,
            n,
            k,
        })
    }

    /// Checks palettes `[G, 1, 2^bits, 1]` (f16 or f32) of `n` rows of `dtype` indices.
    fn check_palette(
        c: &Checker,
        lut: usize,
        dtype: DType,
        n: usize,
        role: &str,
    ) -> Result<Palette, String> {
        let bits = if dtype == DType::U4 { 4 } else { 6 };
        let palettes = c.tensor(lut, &format!("{role} lut"))?;
        if !matches!(palettes.dtype, DType::F16 | DType::F32) {
            return Err(format!(
                "{role} lut (tensor {lut}) is {}, expected f16 or f32",
                palettes.describe()
            ));
        }
        match palettes.shape[..] {
            [g, 1, entries, 1] if entries == 1 << bits && g > 0 && n.is_multiple_of(g) => {
                Ok(Palette {
                    lut,
                    group_rows: n / g,
                })
            }
            _ => Err(format!(
                "{role} lut (tensor {lut}) has shape {:?}, expected [G, 1, {}, 1] with G \
                 dividing the {n} rows",
                palettes.shape,
                1 << bits
            )),
        }
    }

    /// Whether the data is read through scales or palettes rather than as plain floats.
    pub fn is_packed(&self) -> bool {
        self.quant.is_some() || self.palette.is_some()
    }

    /// Row `row` as f32 into `out` (length K): the definition of the weight's values.
    pub fn row_f32(
        &self,
        mem: &Memory,
        kernels: &crate::kernels::Kernels,
        row: usize,
        out: &mut [f32],
    ) {
        let k = self.k;
        assert_eq!(out.len(), k, "WeightRef::row_f32: output length");
        let src = mem.src(self.data);
        if let (Some(palette), Src::Indices { bits, packed }) = (self.palette, src) {
            let lut = mem.src(palette.lut);
            let base = (row / palette.group_rows) << bits;
            for (j, o) in out.iter_mut().enumerate() {
                *o = lut.get(base + index_at(packed, bits, row * k + j));
            }
            return;
        }
        let Some(quant) = self.quant else {
            return read_f32(kernels, src, row * k, out);
        };
        let scales = mem.src(quant.scale);
        let offsets = quant
            .offset
            .map(|o| offsets_of(mem.src(o), self.n * (k / quant.group)));
        let groups = k / quant.group;
        for g in 0..groups {
            let scale = scales.get(row * groups + g);
            let offset = offsets.map_or(0.0, |o| o.get(row * groups + g));
            let cols = g * quant.group..(g + 1) * quant.group;
            let base = row * k;
            match src {
                Src::I8(data) => {
                    for j in cols {
                        out[j] = (f32::from(data[base + j]) - offset) * scale;
                    }
                }
                Src::I4(packed) => {
                    for j in cols {
                        out[j] = (f32::from(int4_at(packed, base + j)) - offset) * scale;
                    }
                }
                _ => unreachable!("checked at load: quantized data is i8 or i4"),
            }
        }
    }
}
