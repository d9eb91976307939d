//! Runs execution plans on deterministic inputs and prints the time per run: the speed of a
//! bundle piece on this machine through the same code the C ABI calls.
//!
//! Run: `cargo run --release --example run_plan -- <weight.bin> <plan.json>... [--runs N]
//! [--context C] [--profile]`. Inputs are filled with small deterministic values (tokens with
//! small ids); the mask lets every query see the whole cache and every new entry, unless
//! `--context C` limits it to the first C cache slots and the call's earlier entries, as in a
//! conversation C tokens long. The figures are the median over the runs, after one warm-up run.
//! `--profile` adds the median time per run spent in each kind of step.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use llamane_cpu::plan::memory::CallerBuffer;
use llamane_cpu::plan::tensor::DType;
use llamane_cpu::plan::Plan;
use llamane_cpu::weight_file::WeightFile;

/// The additive mask `[L, C + L]` of a call after `context` cached tokens (all visible if None).
fn mask(shape: &[usize], context: Option<usize>) -> Vec<f32> {
    let (rows, width) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    let cache = width - rows;
    (0..rows * width)
        .map(|i| {
            let (row, col) = (i / width, i % width);
            let visible = match context {
                None => true,
                Some(c) if col < cache => col < c,
                Some(_) => col - cache <= row,
            };
            if visible {
                0.0
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect()
}

/// Deterministic contents for an input buffer of `bytes` bytes holding `dtype` values; the mask
/// as [`mask`] makes it.
fn fill(
    name: &str,
    dtype: DType,
    bytes: usize,
    shape: &[usize],
    context: Option<usize>,
) -> Vec<u64> {
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
    if name == "mask" {
        let values = mask(shape, context);
        match dtype {
            DType::F16 => {
                for (c, v) in raw.chunks_exact_mut(2).zip(values) {
                    c.copy_from_slice(&half::f16::from_f32(v).to_bits().to_le_bytes());
                }
            }
            _ => {
                for (c, v) in raw.chunks_exact_mut(4).zip(values) {
                    c.copy_from_slice(&v.to_le_bytes());
                }
            }
        }
        return words;
    }
    match dtype {
        DType::I32 => {
            for (i, c) in raw.chunks_exact_mut(4).enumerate() {
                c.copy_from_slice(&((i * 7 % 90) as i32).to_le_bytes());
            }
        }
        DType::F16 => {
            for c in raw.chunks_exact_mut(2) {
                c.copy_from_slice(&half::f16::from_f32(next()).to_bits().to_le_bytes());
            }
        }
        DType::F32 => {
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
    let profile = args.iter().any(|a| a == "--profile");
    let context = args
        .iter()
        .position(|a| a == "--context")
        .map(|i| args[i + 1].parse().expect("--context C"));
    let paths: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| {
            !a.starts_with("--")
                && (*i == 0 || !["--runs", "--context"].contains(&args[i - 1].as_str()))
        })
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
            .map(|s| {
                let t = plan.tensor(s.tensor);
                fill(&s.name, t.dtype, s.bytes, &t.shape, context)
            })
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
        // Per run, the seconds spent in each op name.
        let mut by_op: Vec<BTreeMap<&str, f64>> = Vec::new();
        let mut times: Vec<f64> = (0..=runs)
            .map(|_| {
                let mut ops = BTreeMap::new();
                let t = Instant::now();
                let mut last = t;
                let mut observe = |step: usize| {
                    if profile {
                        let now = Instant::now();
                        *ops.entry(plan.step_name(step)).or_insert(0.0) +=
                            (now - last).as_secs_f64();
                        last = now;
                    }
                };
                // SAFETY: every buffer is an owned Vec of the plan's size, alive and untouched
                // during the call; inputs and outputs are distinct allocations.
                unsafe { plan.run_observed(&ins, &outs, &mut observe) }
                    .unwrap_or_else(|e| panic!("{e}"));
                let elapsed = t.elapsed().as_secs_f64();
                by_op.push(ops);
                elapsed
            })
            .collect();
        times.remove(0);
        by_op.remove(0);
        times.sort_by(f64::total_cmp);
        println!(
            "{path}: {} steps, loaded in {:.1} ms, run median {:.3} ms (best {:.3} ms, {runs} runs)",
            plan.steps(),
            load.as_secs_f64() * 1e3,
            times[times.len() / 2] * 1e3,
            times[0] * 1e3
        );
        if profile {
            let names: Vec<&str> = by_op.iter().flat_map(|m| m.keys().copied()).collect();
            let mut rows: Vec<(f64, &str)> = names
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(|&name| {
                    let mut t: Vec<f64> = by_op
                        .iter()
                        .map(|m| m.get(name).copied().unwrap_or(0.0))
                        .collect();
                    t.sort_by(f64::total_cmp);
                    (t[t.len() / 2], name)
                })
                .collect();
            rows.sort_by(|a, b| b.0.total_cmp(&a.0));
            for (t, name) in rows {
                println!("  {name:12} {:8.3} ms", t * 1e3);
            }
        }
    }
}
