//! A plan allocates its scratch when it is created; running it allocates nothing (decode runs a
//! plan per token, hundreds of steps each). Counted with a global allocator, on the real plans of
//! the tiny test bundle (every op the exporter emits, int8 activations included).
//!
//! This file holds a single test so that nothing else allocates while it counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use llamane_cpu::plan::memory::CallerBuffer;
use llamane_cpu::plan::Plan;
use llamane_cpu::weight_file::WeightFile;

/// The system allocator, counting allocations.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; the counter has no effect on
// the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is GlobalAlloc::alloc's, which System upholds.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from System.alloc with this layout (see alloc).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for alloc and dealloc.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Zeroed 8-byte-aligned buffers of the given sizes and their caller descriptions.
fn buffers(sizes: &[usize]) -> (Vec<Vec<u64>>, Vec<CallerBuffer>) {
    let mut words: Vec<Vec<u64>> = sizes.iter().map(|&n| vec![0u64; n.div_ceil(8)]).collect();
    let described = words
        .iter_mut()
        .zip(sizes)
        .map(|(w, &bytes)| CallerBuffer {
            ptr: w.as_mut_ptr().cast(),
            bytes,
        })
        .collect();
    (words, described)
}

#[test]
fn running_a_plan_allocates_nothing() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_c4w");
    for (piece, length) in [
        ("blocks", "L8"),
        ("blocks", "L1"),
        ("head", "L8"),
        ("embedding", "L8"),
    ] {
        let weights = Arc::new(WeightFile::open(&dir.join(format!("{piece}.weight.bin"))).unwrap());
        let json = std::fs::read(dir.join(format!("{piece}.{length}.plan.json"))).unwrap();
        let plan = Plan::new(weights, &json).unwrap();
        let sizes = |specs: &[llamane_cpu::plan::BufferSpec]| -> Vec<usize> {
            specs.iter().map(|s| s.bytes).collect()
        };
        let (_ins, inputs) = buffers(&sizes(plan.inputs()));
        let (_outs, outputs) = buffers(&sizes(plan.outputs()));
        // SAFETY (both runs): the buffers are distinct owned Vecs of the plan's sizes, alive
        // and untouched during the calls.
        // The first run starts the thread pool, which allocates once per process.
        unsafe { plan.run(&inputs, &outputs) }.unwrap();
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        let result = unsafe { plan.run(&inputs, &outputs) };
        let during = ALLOCATIONS.load(Ordering::SeqCst) - before;
        result.unwrap();
        assert_eq!(
            during, 0,
            "{piece} {length}: a run allocated {during} times"
        );
    }
}
