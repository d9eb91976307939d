//! Attention of query rows against keys and values read where they lie: the KV cache and the
//! call's new entries are separate sources along the key axis, never concatenated.
//!
//! For query position `l` and head `h` (sharing KV head `h / G`, `G = H / Hkv`):
//! `s_j = (scale q[l, h]) . K[j] + mask[l, j]`, `p = softmax(s)`, `out[l, h] = sum_j p_j V[j]`.
//! Each dot product is a chain of fused multiply-adds in the order of `d`; the softmax is the
//! kernel's (key `j` adds to lane `j % 8` of the sum); `sum_j p_j V[j]` is a chain in the order
//! of `j`. None of it depends on the other rows of the call or on the threads.
//!
//! Keys whose mask hides them (at or below [`MASK_HIDDEN`], -inf included) for every row of a task
//! are skipped, 8 at a time (aligned to the key axis, so a kept key stays in its lane): they would
//! add `exp(s - 1e4 - max) = 0` to the sums and `0 * V[j]` to the output, which changes nothing
//! when the cache holds finite values and scores differ by less than 9,800 (exp underflows to 0
//! below about -104). A decode step with a short context reads only the filled part of the cache.
//!
//! Work is split by KV head and block of positions. Each task turns its keys into f32 columns
//! (`[D, n]`, so a query meets 8 keys per vector) and its values into f32 rows, once for all of
//! its query rows, in per-thread scratch sized when the plan is created.

use std::collections::TryReserveError;
use std::sync::Mutex;

use crate::error::Error;
use crate::kernels::out_columns::OutColumns;
use crate::kernels::Rows;
use crate::linear::Cpu;

/// Keys per skipped or kept chunk: one vector of scores.
const CHUNK: usize = 8;
/// The mask value of a hidden key (`MASK_HIDDEN` of bundle/io_names.ts); lower values hide too.
const MASK_HIDDEN: f32 = -1e4;

/// Sizes of one attention call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Query positions.
    pub l: usize,
    /// Query heads.
    pub h: usize,
    /// Key/value heads (dividing `h`).
    pub hkv: usize,
    /// Head size.
    pub d: usize,
    /// Keys: the sources' lengths added up.
    pub s: usize,
}

impl Shape {
    /// Query heads per KV head.
    fn groups(&self) -> usize {
        self.h / self.hkv
    }

    /// f32 scratch of one thread: keys `[d, s]`, values `[s, d]`, scores and probabilities
    /// `[G, s]` each, one mask row `[s]`, queries and outputs `[G, d]` each.
    fn floats(&self) -> usize {
        let g = self.groups();
        2 * self.s * self.d + 2 * g * self.s + self.s + 2 * g * self.d
    }
}

/// Keys or values: sources `[hkv, lens[i], d]` along the key axis, read through `rows(i)`.
pub struct Sources<'s, 'a> {
    /// Length of each source along the key axis.
    pub lens: &'s [usize],
    /// The elements of source `i`.
    pub rows: &'s (dyn Fn(usize) -> Rows<'a> + Sync),
}

/// One thread's buffers.
#[derive(Default)]
struct Buffers {
    floats: Vec<f32>,
    /// Kept key ranges `[start, end)` of the running task.
    ranges: Vec<(usize, usize)>,
}

/// Per-thread scratch of attention calls, sized once for the largest call of a plan.
#[derive(Default)]
pub struct AttentionScratch {
    threads: Vec<Mutex<Buffers>>,
}

impl AttentionScratch {
    /// Makes room for calls of `shape` on `threads` threads, so later calls up to that size do
    /// not allocate. Fails, rather than aborting, when the memory cannot be had.
    pub fn try_reserve(&mut self, threads: usize, shape: &Shape) -> Result<(), TryReserveError> {
        while self.threads.len() < threads {
            self.threads.push(Mutex::default());
        }
        for buffers in &mut self.threads {
            let b = buffers.get_mut().unwrap_or_else(|e| e.into_inner());
            let floats = shape.floats();
            b.floats
                .try_reserve(floats.saturating_sub(b.floats.len()))?;
            b.floats.resize(b.floats.len().max(floats), 0.0);
            let ranges = shape.s.div_ceil(CHUNK);
            b.ranges
                .try_reserve(ranges.saturating_sub(b.ranges.len()))?;
        }
        Ok(())
    }
}

/// Rows of `out` that tasks write, each task its own (see `attention`).
struct SharedOut {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: tasks only write through `rows`, whose callers take disjoint ranges.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// Elements `start..start + len`.
    ///
    /// # Safety
    /// No other live slice covers these elements.
    #[allow(clippy::mut_from_ref)]
    unsafe fn rows(&self, start: usize, len: usize) -> &mut [f32] {
        assert!(
            start + len <= self.len,
            "attention: output rows out of range"
        );
        // SAFETY: in bounds (asserted) of the buffer borrowed by `attention` for the call;
        // exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}

/// `out [l, h, d]` = attention of `q [l, h, d]` over `keys` and `values` with `mask [l, s]`.
pub fn attention(
    cpu: Cpu,
    out: &mut [f32],
    (q, mask, scale): (&[f32], &[f32], f32),
    shape: &Shape,
    keys: &Sources,
    values: &Sources,
    scratch: &AttentionScratch,
) -> Result<(), Error> {
    let Shape { l, h, hkv, d, s } = *shape;
    let sizes_fit = hkv > 0
        && h.is_multiple_of(hkv)
        && q.len() == l * h * d
        && out.len() == q.len()
        && mask.len() == l * s
        && keys.lens.iter().sum::<usize>() == s
        && values.lens.iter().sum::<usize>() == s
        && (0..keys.lens.len()).all(|i| (keys.rows)(i).len() == hkv * keys.lens[i] * d)
        && (0..values.lens.len()).all(|i| (values.rows)(i).len() == hkv * values.lens[i] * d);
    if !sizes_fit {
        return Err(Error::invalid(format!(
            "attention: operands do not fit {shape:?}"
        )));
    }
    let threads = cpu.pool.threads();
    if scratch.threads.len() < threads
        || scratch.threads.iter().any(|t| {
            let b = t.lock().unwrap_or_else(|e| e.into_inner());
            b.floats.len() < shape.floats() || b.ranges.capacity() < s.div_ceil(CHUNK)
        })
    {
        return Err(Error::invalid("attention: scratch too small for the call"));
    }
    if l == 0 || h == 0 || d == 0 {
        return Ok(());
    }
    // Enough tasks for every thread to take a few; more blocks of positions only when there are
    // few KV heads, as each block converts its keys and values again.
    let blocks = (2 * threads).div_ceil(hkv).min(l);
    let per_block = l.div_ceil(blocks);
    let shared = SharedOut {
        ptr: out.as_mut_ptr(),
        len: out.len(),
    };
    cpu.pool.run_indexed(hkv * blocks, &|task, thread| {
        let (head, block) = (task / blocks, task % blocks);
        let positions = block * per_block..((block + 1) * per_block).min(l);
        let mut buffers = scratch.threads[thread]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let Buffers { floats, ranges } = &mut *buffers;
        task_rows(
            cpu,
            &shared,
            (q, mask, scale),
            shape,
            (keys, values),
            (head, positions),
            (floats, ranges),
        );
    });
    Ok(())
}

/// The key ranges (multiples of [`CHUNK`] apart from the end of the axis) holding a key that
/// some row of `positions` does not mask; returns how many keys they hold.
fn kept_keys(
    mask: &[f32],
    s: usize,
    positions: std::ops::Range<usize>,
    ranges: &mut Vec<(usize, usize)>,
) -> usize {
    ranges.clear();
    let mut kept = 0;
    for start in (0..s).step_by(CHUNK) {
        let end = (start + CHUNK).min(s);
        let visible = positions.clone().any(|p| {
            mask[p * s + start..p * s + end]
                .iter()
                .any(|&v| v > MASK_HIDDEN)
        });
        if !visible {
            continue;
        }
        kept += end - start;
        match ranges.last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            // Capacity for one range per chunk was reserved: this does not allocate.
            _ => ranges.push((start, end)),
        }
    }
    kept
}

/// Calls `f(source, first, count, at)` for the rows of the sources that the kept `ranges` cover:
/// `count` rows of source `source` from its row `first`, to go to compact row `at`.
fn for_each_run(
    lens: &[usize],
    ranges: &[(usize, usize)],
    mut f: impl FnMut(usize, usize, usize, usize),
) {
    let mut at = 0;
    for &(start, end) in ranges {
        let mut offset = 0;
        for (i, &len) in lens.iter().enumerate() {
            let (lo, hi) = (start.max(offset), end.min(offset + len));
            if lo < hi {
                f(i, lo - offset, hi - lo, at + lo - start);
            }
            offset += len;
        }
        at += end - start;
    }
}

/// One task: KV head `head` for the query rows of `positions`.
fn task_rows(
    cpu: Cpu,
    out: &SharedOut,
    (q, mask, scale): (&[f32], &[f32], f32),
    shape: &Shape,
    (keys, values): (&Sources, &Sources),
    (head, positions): (usize, std::ops::Range<usize>),
    (floats, ranges): (&mut [f32], &mut Vec<(usize, usize)>),
) {
    let kernels = cpu.kernels;
    let Shape { h, hkv, d, s, .. } = *shape;
    let g = h / hkv;
    let n = kept_keys(mask, s, positions.clone(), ranges);
    let (kt, rest) = floats.split_at_mut(d * n);
    let (v, rest) = rest.split_at_mut(n * d);
    let (scores, rest) = rest.split_at_mut(g * n);
    let (probs, rest) = rest.split_at_mut(g * n);
    let (mask_row, rest) = rest.split_at_mut(n);
    let (queries, rest) = rest.split_at_mut(g * d);
    let attended = &mut rest[..g * d];
    if n > 0 {
        for_each_run(keys.lens, ranges, |i, first, count, at| {
            let rows = slice_rows((keys.rows)(i), (head * keys.lens[i] + first) * d, count * d);
            (kernels.transpose)(&mut kt[at..], n, rows, d);
        });
        for_each_run(values.lens, ranges, |i, first, count, at| {
            let from = (head * values.lens[i] + first) * d;
            let dst = &mut v[at * d..(at + count) * d];
            match (values.rows)(i) {
                Rows::F32(src) => dst.copy_from_slice(&src[from..from + count * d]),
                Rows::F16(src) => (kernels.f16_to_f32)(dst, &src[from..from + count * d]),
            }
        });
    }
    for p in positions {
        let first = (p * h + head * g) * d;
        if n == 0 {
            // Every key is masked for these rows: softmax gives zeros, and so does the sum.
            // SAFETY: rows p of heads head * g.. belong to this task alone.
            unsafe { out.rows(first, g * d) }.fill(0.0);
            continue;
        }
        for (dst, &x) in queries.iter_mut().zip(&q[first..first + g * d]) {
            *dst = x * scale;
        }
        (kernels.matmul_rows)(&mut OutColumns::full(scores, g, n), queries, Rows::F32(kt));
        let mut at = 0;
        for &(start, end) in ranges.iter() {
            mask_row[at..at + end - start].copy_from_slice(&mask[p * s + start..p * s + end]);
            at += end - start;
        }
        for (score, prob) in scores.chunks_exact_mut(n).zip(probs.chunks_exact_mut(n)) {
            (kernels.add)(prob, score, mask_row);
            (kernels.softmax)(score, prob, n);
        }
        (kernels.matmul_rows)(&mut OutColumns::full(attended, g, d), scores, Rows::F32(v));
        // SAFETY: rows p of heads head * g.. belong to this task alone: tasks split the heads
        // by KV head and the positions by block.
        unsafe { out.rows(first, g * d) }.copy_from_slice(attended);
    }
}

/// `count` elements of `rows` from `from`.
fn slice_rows(rows: Rows, from: usize, count: usize) -> Rows {
    match rows {
        Rows::F32(s) => Rows::F32(&s[from..from + count]),
        Rows::F16(s) => Rows::F16(&s[from..from + count]),
    }
}
