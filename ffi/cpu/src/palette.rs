//! Palettized weights (`constexpr_lut_to_dense`): each weight is a 4-bit or 6-bit index into a
//! palette of 16 or 64 values, one palette per group of consecutive output rows.
//!
//! The int8-activation kernels meet the palettes as integers: each palette is quantized once to
//! int16 levels with one step, `level = round(value / step)` with `step = max|value| / 32767`, so
//! a row's product is an exact integer dot product times the step. Sixteen bits, not eight:
//! k-means gives an outlier weight an entry of its own, and with int8 levels an entry 100 times
//! the others leaves them one or two levels (SmolLM2's palettes have such entries).

use crate::weights::Scales;

/// A palettized `[n, k]` matrix as the kernels read it.
#[derive(Clone, Copy, Debug)]
pub struct Palettes<'a> {
    /// Index width: 4 or 6.
    pub bits: u32,
    /// `[n, k]` indices packed LSB-first (two per byte for 4 bits, a bit stream for 6).
    pub indices: &'a [u8],
    /// Consecutive rows sharing one palette.
    pub group_rows: usize,
    /// `[n / group_rows, 2^bits]` palette values.
    pub values: Scales<'a>,
    /// `[n / group_rows, 2^bits]` the values as int16 levels of [`Self::steps`].
    pub levels: &'a [i16],
    /// `[n / group_rows]` the value of one level.
    pub steps: &'a [f32],
}

impl Palettes<'_> {
    /// Entries per palette.
    pub fn entries(&self) -> usize {
        1 << self.bits
    }

    /// The palette of row `row`.
    #[inline(always)]
    pub fn group(&self, row: usize) -> usize {
        row / self.group_rows
    }

    /// The index at flat element `i`.
    #[inline(always)]
    pub fn index(&self, i: usize) -> usize {
        index_at(self.indices, self.bits, i)
    }
}

/// Element `i` of indices of `bits` bits packed LSB-first: it starts at bit `bits * i` of the
/// little-endian bit stream and may straddle two bytes.
#[inline(always)]
pub fn index_at(packed: &[u8], bits: u32, i: usize) -> usize {
    let bit = i * bits as usize;
    let byte = bit / 8;
    let low = usize::from(packed[byte]);
    let high = packed.get(byte + 1).map_or(0, |&b| usize::from(b));
    ((low | high << 8) >> (bit % 8)) & ((1 << bits) - 1)
}

/// Packs indices (each below `2^bits`) LSB-first, as Core ML stores them; for tests and
/// benchmarks.
pub fn pack_indices(indices: &[u8], bits: u32) -> Vec<u8> {
    let mut packed = vec![0u8; (indices.len() * bits as usize).div_ceil(8)];
    for (i, &v) in indices.iter().enumerate() {
        assert!(
            u32::from(v) < 1 << bits,
            "pack_indices: index {v} needs more than {bits} bits"
        );
        let bit = i * bits as usize;
        let word = usize::from(v) << (bit % 8);
        packed[bit / 8] |= word as u8;
        if word >> 8 != 0 {
            packed[bit / 8 + 1] |= (word >> 8) as u8;
        }
    }
    packed
}

/// The largest level magnitude.
const MAX_LEVEL: f32 = 32767.0;

/// Every palette's int16 levels and step (see the module documentation): `values` holds
/// `palettes` rows of `entries`.
pub fn quantize_levels(values: Scales, entries: usize) -> (Vec<i16>, Vec<f32>) {
    let palettes = values.len() / entries;
    let mut levels = Vec::with_capacity(values.len());
    let mut steps = Vec::with_capacity(palettes);
    for p in 0..palettes {
        let entry = |e: usize| values.get(p * entries + e);
        let max = (0..entries).fold(0f32, |m, e| m.max(entry(e).abs()));
        let step = max / MAX_LEVEL;
        steps.push(step);
        for e in 0..entries {
            let level = if step > 0.0 {
                (entry(e) / step).round_ties_even()
            } else {
                0.0
            };
            levels.push(level.clamp(-MAX_LEVEL, MAX_LEVEL) as i16);
        }
    }
    (levels, steps)
}
