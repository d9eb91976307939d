//! What the bridge does around its Core ML calls that needs no Core ML, so that tests/abi.rs runs
//! it on Linux: bounded waits, error chains, the one recompilation of a rejected cache entry, and
//! publishing a compiled model into the cache, and the strided copy of outputs Core ML returns in
//! arrays of its own.

use std::{any::Any, fs, path::Path, sync::mpsc, time::Duration};

/// Element strides of a contiguous row-major array of `shape`.
pub fn row_major_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (1..shape.len()).rev() {
        strides[i - 1] = strides[i] * shape[i];
    }
    strides
}

/// Copies an array of `shape` stored with element `strides` in `src` into the contiguous `dst`,
/// `size` bytes per element, a row at a time when the last axis is contiguous (as Core ML's
/// padded arrays are). Bad lengths panic on a slice bound; nothing is read out of bounds.
pub fn copy_strided(src: &[u8], strides: &[usize], shape: &[usize], size: usize, dst: &mut [u8]) {
    assert!(strides.len() == shape.len() && dst.len() == shape.iter().product::<usize>() * size);
    let (Some(&width), Some(&last_stride)) = (shape.last(), strides.last()) else { return };
    let run = if last_stride == 1 { width } else { 1 };
    let mut index = vec![0usize; shape.len()];
    for out in dst.chunks_exact_mut(run * size) {
        let at: usize = index.iter().zip(strides).map(|(i, s)| i * s).sum();
        out.copy_from_slice(&src[at * size..(at + run) * size]);
        // Advance the multi-index by `run` elements, carrying into the outer axes.
        let mut axis = shape.len() - 1;
        index[axis] += run;
        while index[axis] == shape[axis] && axis > 0 {
            index[axis] = 0;
            axis -= 1;
            index[axis] += 1;
        }
    }
}

/// Waits at most `timeout` for the answer of an asynchronous Core ML call, so that a completion
/// handler that never runs fails the call instead of hanging the caller.
pub fn wait_for<U>(
    answer: &mpsc::Receiver<Result<U, String>>, timeout: Duration, action: &str,
) -> Result<U, String> {
    match answer.recv_timeout(timeout) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
            "Core ML did not finish ({action}) within {} s; raise the timeout if the model is large",
            timeout.as_secs()
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(format!("Core ML never answered: {action}")),
    }
}

/// One message for an error and the errors under it (Core ML puts the actionable text, such as
/// an "E5RT: ..." line, in the underlying error), outermost first, repeats dropped.
pub fn error_chain(action: &str, descriptions: &[String]) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for text in descriptions.iter().map(|d| d.trim()).filter(|d| !d.is_empty()) {
        if !parts.contains(&text) {
            parts.push(text);
        }
    }
    format!("Core ML could not {action}: {}", parts.join("; caused by: "))
}

/// Loads a model from its compiled cache entry at `compiled`, compiling it first when missing. An
/// entry that was already there but no longer loads (Core ML rejects compilations of an older
/// system) is removed and compiled once more; a fresh compilation that fails to load is an error.
pub fn load_compiled<T>(
    compiled: &Path, compile: impl Fn() -> Result<(), String>, load: impl Fn() -> Result<T, String>,
) -> Result<T, String> {
    let cached = compiled.is_dir();
    if !cached {
        compile()?;
    }
    match load() {
        Err(stale) if cached => {
            fs::remove_dir_all(compiled).map_err(|e| {
                format!("{stale}; and the cached \"{}\" cannot be removed: {e}", compiled.display())
            })?;
            compile()?;
            load()
                .map_err(|e| format!("{e} (after compiling again: the cached copy said: {stale})"))
        }
        result => result,
    }
}

/// Puts a compiled model at `compiled` without a reader ever seeing a partial directory: `stage`
/// fills a sibling directory, which is then renamed into place. Losing that race to another
/// process leaves its copy in place, which is as good.
pub fn publish(
    compiled: &Path, stage: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(), String> {
    let staged = compiled.with_extension(format!("partial-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staged);
    stage(&staged).inspect_err(|_| drop(fs::remove_dir_all(&staged)))?;
    if let Err(e) = fs::rename(&staged, compiled) {
        let _ = fs::remove_dir_all(&staged);
        if !compiled.is_dir() {
            return Err(format!("Cannot publish \"{}\": {e}", compiled.display()));
        }
    }
    Ok(())
}

/// The message a panic carries, for the error it becomes at the boundary.
pub fn panic_text(panic: &(dyn Any + Send)) -> &str {
    let text = panic.downcast_ref::<String>().map(String::as_str);
    text.or_else(|| panic.downcast_ref::<&str>().copied()).unwrap_or("a panic")
}
