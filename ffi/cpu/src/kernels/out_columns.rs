//! A column range of a row-major output matrix: the unit of work one thread writes.
//!
//! Threads split a linear layer's outputs by columns, so each thread's share of `y [m, n]` is a
//! strided set of row pieces. Handing out `&mut` row slices for disjoint column ranges lets the
//! kernels write with ordinary bounds-checked indexing while other threads write other columns.
//!
//! The `n` columns a kernel computes may also be a window of a wider matrix (a fused linear
//! writes several weight matrices side by side into one output): column `c` is then stored at
//! `c + shift` in rows of `stride` elements.

use std::marker::PhantomData;
use std::ops::Range;

/// Columns `cols` of a row-major `[m, n]` f32 matrix, exclusively writable through this value.
pub struct OutColumns<'a> {
    ptr: *mut f32,
    m: usize,
    n: usize,
    /// Elements per stored row, at least `shift + n`.
    stride: usize,
    /// Stored position of column 0 inside a row.
    shift: usize,
    cols: Range<usize>,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: an OutColumns only ever touches its own column range, which no other value aliases
// (see `ColumnSplitter::columns`), so sending it to another thread is like sending `&mut [f32]`.
unsafe impl Send for OutColumns<'_> {}

impl<'a> OutColumns<'a> {
    /// All columns of `y`, an `[m, n]` matrix.
    pub fn full(y: &'a mut [f32], m: usize, n: usize) -> Self {
        assert_eq!(y.len(), m * n, "OutColumns::full: length is not m * n");
        OutColumns {
            ptr: y.as_mut_ptr(),
            m,
            n,
            stride: n,
            shift: 0,
            cols: 0..n,
            _borrow: PhantomData,
        }
    }

    /// Rows of the matrix.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Columns of the whole matrix.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The columns this value may write.
    pub fn cols(&self) -> Range<usize> {
        self.cols.clone()
    }

    /// Row `r` restricted to [`Self::cols`]: index 0 is column `cols().start`.
    #[inline]
    pub fn row(&mut self, r: usize) -> &mut [f32] {
        assert!(r < self.m, "OutColumns::row: row {r} out of {}", self.m);
        // SAFETY: r < m, cols ⊆ 0..n and shift + n <= stride, so the range lies inside the
        // m * stride allocation borrowed for 'a; no other OutColumns covers these elements, and
        // `&mut self` keeps this one from handing out two live slices at once.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.ptr.add(r * self.stride + self.shift + self.cols.start),
                self.cols.len(),
            )
        }
    }
}

/// Where the columns of one weight matrix go in a [`ColumnSplitter`]: output matrix `out`, from
/// its column `shift` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    /// Columns (the weight matrix's rows).
    pub n: usize,
    /// Index of the output matrix.
    pub out: usize,
    /// First column of the output matrix that this part writes.
    pub shift: usize,
}

/// The single part of a plain `[m, n]` product.
pub fn whole(n: usize) -> [Part; 1] {
    [Part {
        n,
        out: 0,
        shift: 0,
    }]
}

/// Splits the columns of one or more parts (weight matrices computed side by side) into tasks of
/// `per_task` columns (the last may be shorter), counted over the parts in order, and hands out
/// each task's share of every part as an [`OutColumns`].
///
/// The output matrices lie one after the other in one buffer: matrix `o` is `[m, widths[o]]`.
/// Parts write disjoint column ranges of their matrices (checked in `new`), so tasks never write
/// the same element. Nothing is stored per task, and nothing is allocated.
pub struct ColumnSplitter<'a, 'p> {
    ptr: *mut f32,
    m: usize,
    widths: &'p [usize],
    parts: &'p [Part],
    total: usize,
    per_task: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: the splitter only hands out OutColumns for disjoint element ranges (see `columns`), so
// sharing it between the pool's threads cannot create aliasing writes.
unsafe impl Sync for ColumnSplitter<'_, '_> {}

impl<'a, 'p> ColumnSplitter<'a, 'p> {
    /// Takes the buffer of the output matrices, their rows `m` and widths, the parts and the
    /// number of columns per task (at least 1). Panics unless the buffer holds the matrices
    /// exactly and every part fits its matrix without overlapping another part.
    pub fn new(
        y: &'a mut [f32],
        m: usize,
        widths: &'p [usize],
        parts: &'p [Part],
        per_task: usize,
    ) -> Self {
        assert!(per_task > 0, "ColumnSplitter::new: empty tasks");
        assert_eq!(
            y.len(),
            m * widths.iter().sum::<usize>(),
            "ColumnSplitter::new: length is not m * widths"
        );
        for (i, p) in parts.iter().enumerate() {
            assert!(
                p.out < widths.len() && p.shift + p.n <= widths[p.out],
                "ColumnSplitter::new: part {p:?} outside its output"
            );
            let overlaps =
                |q: &Part| q.out == p.out && q.shift < p.shift + p.n && p.shift < q.shift + q.n;
            assert!(
                !parts[i + 1..].iter().any(overlaps),
                "ColumnSplitter::new: part {p:?} overlaps another"
            );
        }
        ColumnSplitter {
            ptr: y.as_mut_ptr(),
            m,
            widths,
            parts,
            total: parts.iter().map(|p| p.n).sum(),
            per_task,
            _borrow: PhantomData,
        }
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.total.div_ceil(self.per_task)
    }

    /// Whether there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Calls `f(part, columns)` for each part that task `task` (`task < len()`) covers, in part
    /// order, with the task's columns of that part.
    ///
    /// # Safety
    /// At most one call per task index may be running at a time (the thread pool runs each task
    /// index exactly once per job).
    pub unsafe fn columns(&self, task: usize, mut f: impl FnMut(usize, OutColumns<'_>)) {
        assert!(
            task < self.len(),
            "ColumnSplitter::columns: task out of range"
        );
        let start = task * self.per_task;
        let stop = (start + self.per_task).min(self.total);
        let mut first = 0;
        for (index, part) in self.parts.iter().enumerate() {
            let (lo, hi) = (start.max(first), stop.min(first + part.n));
            if lo < hi {
                let offset = self.m * self.widths[..part.out].iter().sum::<usize>();
                // Tasks cover disjoint ranges of the parts' columns, parts disjoint columns of
                // their matrices (checked in `new`), and matrices disjoint stretches of the
                // buffer: these elements belong to this task alone. The offset lies inside the
                // buffer, which holds all matrices.
                f(
                    index,
                    OutColumns {
                        ptr: self.ptr.wrapping_add(offset),
                        m: self.m,
                        n: part.n,
                        stride: self.widths[part.out],
                        shift: part.shift,
                        cols: lo - first..hi - first,
                        _borrow: PhantomData,
                    },
                );
            }
            first += part.n;
        }
    }
}
