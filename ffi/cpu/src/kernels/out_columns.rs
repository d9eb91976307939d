//! A column range of a row-major output matrix: the unit of work one thread writes.
//!
//! Threads split a linear layer's outputs by columns, so each thread's share of `y [m, n]` is a
//! strided set of row pieces. Handing out `&mut` row slices for disjoint column ranges lets the
//! kernels write with ordinary bounds-checked indexing while other threads write other columns.

use std::marker::PhantomData;
use std::ops::Range;

/// Columns `cols` of a row-major `[m, n]` f32 matrix, exclusively writable through this value.
pub struct OutColumns<'a> {
    ptr: *mut f32,
    m: usize,
    n: usize,
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
        // SAFETY: r < m and cols ⊆ 0..n, so the range lies inside the m * n allocation borrowed
        // for 'a; no other OutColumns covers these columns, and `&mut self` keeps this one from
        // handing out two live slices at once.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.ptr.add(r * self.n + self.cols.start),
                self.cols.len(),
            )
        }
    }
}

/// Splits `y [m, n]` into disjoint column ranges of `per_task` columns (the last may be
/// shorter), one per task, for the thread pool. The ranges are computed, not stored, so splitting
/// allocates nothing.
pub struct ColumnSplitter<'a> {
    ptr: *mut f32,
    m: usize,
    n: usize,
    per_task: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: the splitter only hands out OutColumns for disjoint ranges (see `columns`), so sharing
// it between the pool's threads cannot create aliasing writes.
unsafe impl Sync for ColumnSplitter<'_> {}

impl<'a> ColumnSplitter<'a> {
    /// Takes `y` (`[m, n]`) and the number of columns per task (at least 1).
    pub fn new(y: &'a mut [f32], m: usize, n: usize, per_task: usize) -> Self {
        assert_eq!(y.len(), m * n, "ColumnSplitter::new: length is not m * n");
        assert!(per_task > 0, "ColumnSplitter::new: empty tasks");
        ColumnSplitter {
            ptr: y.as_mut_ptr(),
            m,
            n,
            per_task,
            _borrow: PhantomData,
        }
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.n.div_ceil(self.per_task)
    }

    /// Whether there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The output columns of task `task` (`task < len()`).
    ///
    /// # Safety
    /// At most one OutColumns per task index may be alive at a time (the thread pool runs each
    /// task index exactly once per job).
    pub unsafe fn columns(&self, task: usize) -> OutColumns<'_> {
        assert!(
            task < self.len(),
            "ColumnSplitter::columns: task out of range"
        );
        let start = task * self.per_task;
        // Ranges of different tasks are disjoint by construction: [t p, (t + 1) p) ∩ [0, n).
        OutColumns {
            ptr: self.ptr,
            m: self.m,
            n: self.n,
            cols: start..(start + self.per_task).min(self.n),
            _borrow: PhantomData,
        }
    }
}
