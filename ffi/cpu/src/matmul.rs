//! `y [m, n] = a [m, k] b [k, n]` with `b` read row by row (f32 or f16), its columns spread over
//! the thread pool like a linear layer's: attention's `probs @ V`, where V is the cache as
//! stored. Each output is computed by one task with one summation order, so the result does not
//! depend on `m`, the row's position or the number of threads.

use crate::error::{check_len, Error};
use crate::kernels::out_columns::{whole, ColumnSplitter};
use crate::kernels::Rows;
use crate::linear::{columns_per_task, Cpu};

/// `y [m, n] = a [m, k] b [k, n]` where `m = y.len() / n` and `k = a.len() / m`.
pub fn matmul_rows(cpu: Cpu, y: &mut [f32], a: &[f32], b: Rows, n: usize) -> Result<(), Error> {
    if n == 0 || y.is_empty() {
        return check_len("matmul: y", y.len(), 0);
    }
    if !y.len().is_multiple_of(n) {
        return Err(Error::invalid(format!(
            "matmul: y has {} elements, not a multiple of n = {n}",
            y.len()
        )));
    }
    let m = y.len() / n;
    if !a.len().is_multiple_of(m) {
        return Err(Error::invalid(format!(
            "matmul: a has {} elements, not a multiple of m = {m}",
            a.len()
        )));
    }
    let k = a.len() / m;
    check_len("matmul: b", b.len(), k * n)?;
    let (widths, parts) = ([n], whole(n));
    let per_task = columns_per_task(m * n * k, n, cpu.pool.threads());
    let splitter = ColumnSplitter::new(y, m, &widths, &parts, per_task);
    cpu.pool.run(splitter.len(), &|task| {
        // SAFETY: the pool runs each task index exactly once.
        unsafe { splitter.columns(task, |_, mut out| (cpu.kernels.matmul_rows)(&mut out, a, b)) };
    });
    Ok(())
}
