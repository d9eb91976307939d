//! Shape arithmetic shared by the ops: row-major strides, NumPy broadcasting, and the merging of
//! axes that lets strided loops run over long contiguous stretches.

use super::tensor::MAX_RANK;

/// Row-major strides (in elements) of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

/// Product of the sizes.
pub fn count(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// The NumPy broadcast of two shapes (aligned at the right; each pair of sizes equal or one of
/// them 1), or None if they do not broadcast.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let size = |s: &[usize], i: usize| (i + s.len()).checked_sub(rank).map_or(1, |j| s[j]);
    (0..rank)
        .map(|i| match (size(a, i), size(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// Strides with which an operand of shape `shape` is read at each index of `out` (its broadcast
/// result): its own row-major strides, 0 along axes it is broadcast on. `shape` must broadcast
/// to `out`.
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let own = strides(shape);
    let offset = out.len() - shape.len();
    (0..out.len())
        .map(|i| match i.checked_sub(offset) {
            Some(j) if shape[j] != 1 => own[j],
            _ => 0,
        })
        .collect()
}

/// An iteration space: sizes of the output axes (row-major, contiguous) and, per operand, the
/// stride of each axis in that operand. Axes of size 1 are dropped and neighbours that every
/// operand reads contiguously are merged, so the innermost axis is as long as possible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loops {
    /// Sizes, outermost first (empty for a single element).
    pub sizes: Vec<usize>,
    /// `strides[operand][axis]`.
    pub strides: Vec<Vec<usize>>,
}

impl Loops {
    /// Builds the loops over `sizes` with the given per-operand strides (one entry per axis).
    pub fn new(sizes: &[usize], operand_strides: &[Vec<usize>]) -> Self {
        let mut loops = Loops {
            sizes: Vec::new(),
            strides: vec![Vec::new(); operand_strides.len()],
        };
        for (axis, &size) in sizes.iter().enumerate() {
            if size == 1 {
                continue;
            }
            let mergeable = !loops.sizes.is_empty()
                && operand_strides
                    .iter()
                    .zip(&loops.strides)
                    .all(|(s, merged)| merged.last().copied() == Some(s[axis] * size));
            if mergeable {
                let last = loops.sizes.len() - 1;
                loops.sizes[last] *= size;
                for (merged, s) in loops.strides.iter_mut().zip(operand_strides) {
                    merged[last] = s[axis];
                }
            } else {
                loops.sizes.push(size);
                for (merged, s) in loops.strides.iter_mut().zip(operand_strides) {
                    merged.push(s[axis]);
                }
            }
        }
        loops
    }

    /// Length of the innermost axis (1 when there are no axes).
    pub fn inner(&self) -> usize {
        self.sizes.last().copied().unwrap_or(1)
    }

    /// Stride of the innermost axis in `operand` (0 when there are no axes).
    pub fn inner_stride(&self, operand: usize) -> usize {
        self.strides[operand].last().copied().unwrap_or(0)
    }

    /// Calls `f(offsets)` with each operand's starting offset for every run of the innermost
    /// axis, in row-major order of the outer axes. `N` is the number of operands.
    pub fn for_each_run<const N: usize>(&self, mut f: impl FnMut([usize; N])) {
        assert_eq!(self.strides.len(), N, "Loops::for_each_run: operand count");
        let outer = self.sizes.len().saturating_sub(1);
        if self.sizes.contains(&0) {
            return;
        }
        // Plan tensors have rank <= MAX_RANK, so a fixed array holds the index: no allocation.
        assert!(
            outer < MAX_RANK,
            "Loops::for_each_run: rank above {MAX_RANK}"
        );
        let mut index = [0usize; MAX_RANK];
        let mut offsets = [0usize; N];
        loop {
            f(offsets);
            // Odometer over the outer axes, updating offsets incrementally.
            let mut axis = outer;
            loop {
                if axis == 0 {
                    return;
                }
                axis -= 1;
                index[axis] += 1;
                for (o, s) in offsets.iter_mut().zip(&self.strides) {
                    *o += s[axis];
                }
                if index[axis] < self.sizes[axis] {
                    break;
                }
                for (o, s) in offsets.iter_mut().zip(&self.strides) {
                    *o -= s[axis] * self.sizes[axis];
                }
                index[axis] = 0;
            }
        }
    }
}
