//! The plan checker on any bytes: a plan (JSON) checked against the weight.bin of each piece of
//! the test bundle in tests/data/tiny_c4w, and a plan that passes is run on zeroed buffers. A
//! panic, an out-of-bounds access or an allocation beyond the fuzzer's limit is a bug; an error is
//! the expected answer to a bad plan.

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use llamane_cpu::plan::memory::CallerBuffer;
use llamane_cpu::plan::{BufferSpec, Plan};
use llamane_cpu::weight_file::WeightFile;

/// Largest run attempted, in bytes of caller buffers: bigger plans are only checked.
const RUN_BYTES: usize = 1 << 20;

/// The test bundle's weight files, mapped once.
fn weights() -> &'static [Arc<WeightFile>] {
    static WEIGHTS: OnceLock<Vec<Arc<WeightFile>>> = OnceLock::new();
    WEIGHTS.get_or_init(|| {
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/tiny_c4w");
        ["embedding", "blocks", "head"]
            .iter()
            .map(|piece| {
                let path = format!("{data}/{piece}.weight.bin");
                Arc::new(WeightFile::open(path.as_ref()).expect("the test bundle's weights"))
            })
            .collect()
    })
}

/// Zeroed, 8-byte aligned storage for each buffer of a plan side.
fn zeroed(specs: &[BufferSpec]) -> Vec<Vec<u64>> {
    specs
        .iter()
        .map(|s| vec![0u64; s.bytes.div_ceil(8)])
        .collect()
}

fn buffers(storage: &mut [Vec<u64>], specs: &[BufferSpec]) -> Vec<CallerBuffer> {
    storage
        .iter_mut()
        .zip(specs)
        .map(|(words, spec)| CallerBuffer {
            ptr: words.as_mut_ptr().cast(),
            bytes: spec.bytes,
        })
        .collect()
}

fuzz_target!(|json: &[u8]| {
    for weights in weights() {
        let Ok(plan) = Plan::new(Arc::clone(weights), json) else {
            continue;
        };
        let sizes = plan.inputs().iter().chain(plan.outputs()).map(|s| s.bytes);
        let total = sizes.fold(0usize, usize::saturating_add);
        if total > RUN_BYTES {
            continue;
        }
        let (mut ins, mut outs) = (zeroed(plan.inputs()), zeroed(plan.outputs()));
        let inputs = buffers(&mut ins, plan.inputs());
        let outputs = buffers(&mut outs, plan.outputs());
        // SAFETY: each buffer is a distinct live Vec at least as long as its spec says.
        let _ = unsafe { plan.run(&inputs, &outputs) };
    }
});
