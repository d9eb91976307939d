//! Activations quantized to int8 per block of 32, for the integer dot-product path of prefill.
//!
//! Each row of `x [m, k]` is cut into blocks of 32; a block keeps `scale = max|x| / 127` and
//! `q = round_ties_even(x * (127 / max|x|))`. The values are stored in the order the weight
//! kernels unpack their weights, so no shuffle is needed in the inner loop: int8 weights are in
//! natural order; int4 weights unpack as low nibbles (even elements) and high nibbles (odd
//! elements), one block at a time or two (see [`Q8Layout`]).

use std::collections::TryReserveError;

use crate::weights::BLOCK;

use super::Kernels;

/// Order of the values of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Q8Layout {
    /// Element `j` at position `j` (pairs with int8 weights).
    Natural,
    /// Per block: elements 0, 2, .., 30 then 1, 3, .., 31 (pairs with packed int4 weights read
    /// 16 bytes, one block, at a time).
    EvenOdd,
    /// Per two blocks `2p`, `2p + 1`: the even elements of `2p`, the even elements of `2p + 1`,
    /// the odd elements of `2p`, the odd elements of `2p + 1`, 16 each; a last block without a
    /// partner as in [`Q8Layout::EvenOdd`]. Pairs with packed int4 weights read 32 bytes, two
    /// blocks, at a time: their low nibbles then line up with the first 32 values and their high
    /// nibbles with the next 32.
    Pairs,
}

impl Q8Layout {
    /// Position inside a row of `k` values (`k % 32 == 0`) of its element `j`.
    #[inline(always)]
    pub fn position(self, j: usize, k: usize) -> usize {
        let (b, i) = (j / BLOCK, j % BLOCK);
        let half = BLOCK / 2;
        match self {
            Q8Layout::Natural => j,
            Q8Layout::Pairs if b / 2 < k / (2 * BLOCK) => {
                (b - b % 2) * BLOCK + (i % 2) * BLOCK + (b % 2) * half + i / 2
            }
            Q8Layout::EvenOdd | Q8Layout::Pairs => b * BLOCK + (i % 2) * half + i / 2,
        }
    }
}

/// `x [m, k]` quantized to int8 blocks of 32 (`k` divisible by 32).
///
/// The buffers are reused by [`Q8Rows::requantize`]: once they have grown to the largest shape a
/// caller needs (or were sized up front with [`Q8Rows::try_reserve`]), quantizing allocates nothing.
#[derive(Clone, Debug)]
pub struct Q8Rows {
    m: usize,
    k: usize,
    layout: Q8Layout,
    /// `[m, k]` values, each block of 32 in `layout` order.
    values: Vec<i8>,
    /// `[m, k/32]` block scales.
    scales: Vec<f32>,
    /// `[m]`: `sum_b scale_b * sum_i q_bi`, what the quantized row sums to. Kernels that store
    /// weights with an offset (int4 as `w + 8`) subtract `offset * row_sum`.
    row_sums: Vec<f32>,
    /// `[m, k/32]`: `scale_b * sum_i q_bi` per block, what each quantized block sums to. Weights
    /// with an offset per block of 32 subtract `scale * offset * block_sum` per block.
    block_sums: Vec<f32>,
    /// [`Q8Layout::Pairs`] only: `[m, ceil(k / 64), 8]`, per two blocks their scales as the lanes
    /// of an 8-lane vector whose low half sums block `2p` and high half block `2p + 1` (a last
    /// block alone fills all 8).
    pair_scales: Vec<f32>,
}

impl Default for Q8Rows {
    fn default() -> Self {
        Q8Rows {
            m: 0,
            k: 0,
            layout: Q8Layout::Natural,
            values: Vec::new(),
            scales: Vec::new(),
            row_sums: Vec::new(),
            block_sums: Vec::new(),
            pair_scales: Vec::new(),
        }
    }
}

impl Q8Rows {
    /// Quantizes `x` (`[m, k]`, `k % 32 == 0`) with the kernels of `kernels`.
    pub fn quantize(kernels: &Kernels, x: &[f32], m: usize, k: usize, layout: Q8Layout) -> Self {
        let mut rows = Q8Rows::default();
        rows.requantize(kernels, x, m, k, layout);
        rows
    }

    /// Makes room for `[m, k]` activations, so later calls up to that size do not allocate.
    /// Fails, rather than aborting, when the memory cannot be had.
    pub fn try_reserve(&mut self, m: usize, k: usize) -> Result<(), TryReserveError> {
        let grow = |len: usize, want: usize| want.saturating_sub(len);
        self.values
            .try_reserve(grow(self.values.len(), m.saturating_mul(k)))?;
        self.scales
            .try_reserve(grow(self.scales.len(), m.saturating_mul(k) / BLOCK))?;
        self.block_sums
            .try_reserve(grow(self.block_sums.len(), m.saturating_mul(k) / BLOCK))?;
        self.pair_scales.try_reserve(grow(
            self.pair_scales.len(),
            m.saturating_mul(k.div_ceil(2 * BLOCK)).saturating_mul(8),
        ))?;
        self.row_sums.try_reserve(grow(self.row_sums.len(), m))
    }

    /// Replaces the contents with `x` (`[m, k]`, `k % 32 == 0`) quantized, reusing the buffers.
    pub fn requantize(
        &mut self,
        kernels: &Kernels,
        x: &[f32],
        m: usize,
        k: usize,
        layout: Q8Layout,
    ) {
        assert!(
            k.is_multiple_of(BLOCK) && x.len() == m * k,
            "Q8Rows::quantize: bad shape"
        );
        let blocks = k / BLOCK;
        (self.m, self.k, self.layout) = (m, k, layout);
        // Every element is overwritten below; resizing within the capacity does not allocate.
        self.values.resize(m * k, 0);
        self.scales.resize(m * blocks, 0.0);
        self.row_sums.resize(m, 0.0);
        for r in 0..m {
            self.row_sums[r] = (kernels.quantize_row_q8)(
                &mut self.values[r * k..(r + 1) * k],
                &mut self.scales[r * blocks..(r + 1) * blocks],
                &x[r * k..(r + 1) * k],
                layout,
            );
        }
        self.block_sums.resize(m * blocks, 0.0);
        for (sum, b) in self.block_sums.iter_mut().zip(0..) {
            let (r, block) = (b / blocks, b % blocks);
            let row = &self.values[r * k..(r + 1) * k];
            let total: i32 = block_ranges(layout, block, blocks)
                .into_iter()
                .flat_map(|range| &row[range])
                .map(|&q| i32::from(q))
                .sum();
            // At most 32 * 128 in magnitude: exact in f32.
            *sum = self.scales[b] * total as f32;
        }
        if layout != Q8Layout::Pairs {
            self.pair_scales.clear();
            return;
        }
        let pairs = blocks.div_ceil(2);
        self.pair_scales.resize(m * pairs * 8, 0.0);
        for (lanes, p) in self.pair_scales.chunks_exact_mut(8).zip(0..) {
            let (r, pair) = (p / pairs, p % pairs);
            let first = r * blocks + 2 * pair;
            let second = if 2 * pair + 1 < blocks {
                first + 1
            } else {
                first
            };
            lanes[..4].fill(self.scales[first]);
            lanes[4..].fill(self.scales[second]);
        }
    }

    /// Rows.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Columns (a multiple of 32).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Order of the values inside each block.
    pub fn layout(&self) -> Q8Layout {
        self.layout
    }

    /// `[m, k]` quantized values, each block in `layout` order.
    pub fn values(&self) -> &[i8] {
        &self.values
    }

    /// `[m, k/32]` block scales.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// `[m]` sums of the dequantized rows (see the field doc).
    pub fn row_sums(&self) -> &[f32] {
        &self.row_sums
    }

    /// `[m, k/32]` sums of the dequantized blocks (see the field doc).
    pub fn block_sums(&self) -> &[f32] {
        &self.block_sums
    }

    /// [`Q8Layout::Pairs`]: `[m, ceil(k / 64), 8]` scales as vector lanes (see the field doc).
    pub fn pair_scales(&self) -> &[f32] {
        &self.pair_scales
    }

    /// Element `(r, j)` dequantized, in natural order: for tests and error measurement.
    pub fn dequantized(&self, r: usize, j: usize) -> f32 {
        let q = self.values[r * self.k + self.layout.position(j, self.k)];
        self.scales[r * (self.k / BLOCK) + j / BLOCK] * f32::from(q)
    }
}

/// The two runs of a row's positions that hold block `block` (of `blocks`) in `layout`.
fn block_ranges(layout: Q8Layout, block: usize, blocks: usize) -> [std::ops::Range<usize>; 2] {
    let half = BLOCK / 2;
    let start = block * BLOCK;
    if layout == Q8Layout::Pairs && block / 2 < blocks / 2 {
        // Evens of both blocks, then odds of both: this block's halves are 32 apart.
        let first = (block - block % 2) * BLOCK + (block % 2) * half;
        [first..first + half, first + BLOCK..first + BLOCK + half]
    } else {
        [start..start + half, start + half..start + BLOCK]
    }
}
