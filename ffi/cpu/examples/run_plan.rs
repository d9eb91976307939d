//! Runs execution plans on deterministic inputs and prints the time per run: the speed of a
//! bundle piece on this machine through the same code the C ABI calls.
//!
//! Run: `cargo run --release --example run_plan -- <weight.bin> <plan.json>... [--runs N]`.
//! Inputs are filled with small deterministic values (tokens with small ids, masks with zeros);
//! the figures are the median over the runs, after one warm-up run.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use llamane_cpu::plan::memory::CallerBuffer;
use llamane_cpu::plan::tensor::DType;
use llamane_cpu::plan::Plan;
use llamane_cpu::weight_file::WeightFile;

/// Deterministic contents for an input buffer of `bytes` bytes holding `dtype` values.
fn fill(name: &str, dtype: DType, bytes: usize) -> Vec<u64> {
    let mut words = vec![0u64; bytes.div_ceil(8)];
    // SAFETY: the Vec's buffer holds at least `bytes` bytes, 8-byte aligned.
    let raw = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), bytes) };
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    match dtype {
        DType::I32 => {
            for (i, c) in raw.chunks_exact_mut(4).enumerate() {
                c.copy_from_slice(&((i * 7 % 90) as i32).to_le_bytes());
            }
        }
        DType::F16 if name != "mask" => {
            for c in raw.chunks_exact_mut(2) {
                c.copy_from_slice(&half::f16::from_f32(next()).to_bits().to_le_bytes());
            }
        }
        DType::F32 if name != "mask" => {
            for c in raw.chunks_exact_mut(4) {
                c.copy_from_slice(&next().to_le_bytes());
            }
        }
        _ => {}
    }
    words
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .map_or(10, |i| args[i + 1].parse().expect("--runs N"));
    let paths: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with("--") && (*i == 0 || args[i - 1] != "--runs"))
        .map(|(_, a)| a)
        .collect();
    let (weights, plans) = paths
        .split_first()
        .expect("usage: run_plan <weight.bin> <plan.json>...");
    let weights = Arc::new(WeightFile::open(Path::new(weights)).expect("weights"));
    println!("kernels: {}", llamane_cpu::kernels::selected().isa.name());
    for path in plans {
        let json = std::fs::read(path).expect("read plan");
        let start = Instant::now();
        let plan = Plan::new(Arc::clone(&weights), &json).unwrap_or_else(|e| panic!("{e}"));
        let load = start.elapsed();
        let mut inputs: Vec<Vec<u64>> = plan
            .inputs()
            .iter()
            .map(|s| fill(&s.name, plan.tensor(s.tensor).dtype, s.bytes))
            .collect();
        let mut outputs: Vec<Vec<u64>> = plan
            .outputs()
            .iter()
            .map(|s| vec![0u64; s.bytes.div_ceil(8)])
            .collect();
        let buffers = |v: &mut Vec<Vec<u64>>, specs: &[llamane_cpu::plan::BufferSpec]| {
            v.iter_mut()
                .zip(specs)
                .map(|(b, s)| CallerBuffer {
                    ptr: b.as_mut_ptr().cast(),
                    bytes: s.bytes,
                })
                .collect::<Vec<_>>()
        };
        let ins = buffers(&mut inputs, plan.inputs());
        let outs = buffers(&mut outputs, plan.outputs());
        let mut times: Vec<f64> = (0..=runs)
            .map(|_| {
                let t = Instant::now();
                // SAFETY: every buffer is an owned Vec of the plan's size, alive and untouched
                // during the call; inputs and outputs are distinct allocations.
                unsafe { plan.run(&ins, &outs) }.unwrap_or_else(|e| panic!("{e}"));
                t.elapsed().as_secs_f64()
            })
            .collect();
        times.remove(0);
        times.sort_by(f64::total_cmp);
        println!(
            "{path}: {} steps, loaded in {:.1} ms, run median {:.3} ms (best {:.3} ms, {runs} runs)",
            plan.steps(),
            load.as_secs_f64() * 1e3,
            times[times.len() / 2] * 1e3,
            times[0] * 1e3
        );
    }
}
