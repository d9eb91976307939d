//! Throughput of the CPU kernels on this machine: memory-read bandwidth, decode GEMV (m = 1) in
//! GB/s of weights read and prefill (m = 32) in GFLOP/s, each for the f32 and int8 activation
//! paths (plans take int8 for quantized weights), and the error of int8 activations against f32
//! activations.
//!
//! Run: `cargo run --release --example bench [-- --threads N] [--format c4w|b4w|c8w|lut4|f16]
//! [--path f32|int8]` (both paths unless one is named; lut4's f32 path is scalar and slow).
//! Timings are the median of several runs (the best can be a fluke on a shared machine, e.g. a
//! weight copy still in L3); the spread (worst / best - 1) is printed beside each.

use std::hint::black_box;
use std::time::Instant;

use llamane_cpu::kernels;
use llamane_cpu::linear::{linear, ActivationPath, Cpu, LinearOptions};
use llamane_cpu::palette::{pack_indices, quantize_levels, Palettes};
use llamane_cpu::quantize::{int4_block32, int4_per_channel, int8_per_channel};
use llamane_cpu::thread_pool::ThreadPool;
use llamane_cpu::weights::{Scales, WeightData, Weights};

/// Llama-3.2-1B linear shapes `[n, k]`: MLP up/gate, MLP down, output head.
const SHAPES: [(usize, usize, &str); 3] = [
    (8192, 2048, "mlp up   [8192, 2048]"),
    (2048, 8192, "mlp down [2048, 8192]"),
    (128256, 2048, "lm head  [128256, 2048]"),
];

/// Rows per palette of the lut4 weights (the exporter's default).
const PALETTE_ROWS: usize = 16;

/// Weights cycled through per GEMV so they never sit in the 32 MiB L3: every call streams from DRAM.
const MIN_STREAM_BYTES: usize = 256 << 20;

struct Rng(u64);

impl Rng {
    fn normal(&mut self) -> f32 {
        let mut s = 0.0;
        for _ in 0..4 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s += (self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        }
        s * 1.732
    }
    fn vec(&mut self, len: usize, scale: f32) -> Vec<f32> {
        (0..len).map(|_| self.normal() * scale).collect()
    }
}

/// Owned packed weights in one of the benchmarked formats (scales f16, as in fp16 bundles).
struct Packed {
    n: usize,
    k: usize,
    format: String,
    bytes: Vec<u8>,
    halves: Vec<u16>,
    scales: Vec<u16>,
    /// lut4 only: the palettes' int16 levels and steps (their values are in `scales`).
    levels: Vec<i16>,
    steps: Vec<f32>,
}

impl Packed {
    fn new(format: &str, n: usize, k: usize, rng: &mut Rng) -> Self {
        // Build one row block and repeat it: quantizing 262M weights would dominate the run.
        let rows = n.min(256);
        let w = rng.vec(rows * k, 0.02);
        let f16 = |v: &[f32]| -> Vec<u16> {
            v.iter()
                .map(|&x| half::f16::from_f32(x).to_bits())
                .collect()
        };
        let (bytes, halves, scales): (Vec<u8>, Vec<u16>, Vec<f32>) = match format {
            "c4w" => {
                let (b, s) = int4_per_channel(&w, rows, k);
                (b, vec![], s)
            }
            "b4w" => {
                let (b, s) = int4_block32(&w, rows, k);
                (b, vec![], s)
            }
            "c8w" => {
                let (q, s) = int8_per_channel(&w, rows, k);
                (q.iter().map(|&v| v as u8).collect(), vec![], s)
            }
            "lut4" => {
                // Indices cycling through the palette, Gaussian palettes: the speed does not
                // depend on the values.
                let indices: Vec<u8> = (0..rows * k).map(|i| (i * 7 % 16) as u8).collect();
                let palettes = rng.vec(rows / PALETTE_ROWS * 16, 0.02);
                (pack_indices(&indices, 4), vec![], palettes)
            }
            "f16" => (vec![], f16(&w), vec![]),
            other => panic!("unknown format {other}: expected c4w, b4w, c8w, lut4 or f16"),
        };
        let repeat = n / rows;
        let scales = f16(&scales).repeat(repeat);
        let (levels, steps) = if format == "lut4" {
            quantize_levels(Scales::F16(&scales), 16)
        } else {
            (vec![], vec![])
        };
        Packed {
            n,
            k,
            format: format.to_string(),
            bytes: bytes.repeat(repeat),
            halves: halves.repeat(repeat),
            scales,
            levels,
            steps,
        }
    }

    fn weights(&self) -> Weights<'_> {
        let scales = Scales::F16(&self.scales);
        let data = match self.format.as_str() {
            "c4w" => WeightData::Int4PerChannel {
                packed: &self.bytes,
                scales,
            },
            "b4w" => WeightData::Int4Block32 {
                packed: &self.bytes,
                scales,
            },
            "c8w" => WeightData::Int8PerChannel {
                // SAFETY: u8 and i8 share size and alignment; every bit pattern is valid.
                data: unsafe {
                    std::slice::from_raw_parts(self.bytes.as_ptr().cast(), self.bytes.len())
                },
                scales,
            },
            "lut4" => WeightData::Palettized(Palettes {
                bits: 4,
                indices: &self.bytes,
                group_rows: PALETTE_ROWS,
                values: scales,
                levels: &self.levels,
                steps: &self.steps,
            }),
            _ => WeightData::F16(&self.halves),
        };
        Weights::new(self.n, self.k, data).unwrap()
    }
}

/// Median and spread (worst / best - 1) of `runs` calls of `f`, in seconds.
fn time(runs: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[runs / 2], times[runs - 1] / times[0] - 1.0)
}

/// Multi-threaded streaming read of a 1 GiB buffer: the ceiling for a bandwidth-bound GEMV.
fn bandwidth(pool: &ThreadPool) -> f64 {
    let words = (1usize << 30) / 8;
    let buf: Vec<u64> = (0..words as u64).collect();
    let tasks = pool.threads() * 8;
    let chunk = words / tasks;
    let (median, spread) = time(5, || {
        let sums: Vec<std::sync::atomic::AtomicU64> = (0..tasks).map(|_| 0.into()).collect();
        pool.run(tasks, &|t| {
            let part = &buf[t * chunk..(t + 1) * chunk];
            // Eight independent lanes so the adds keep up with the loads.
            let mut acc = [0u64; 8];
            for c in part.chunks_exact(8) {
                for i in 0..8 {
                    acc[i] = acc[i].wrapping_add(c[i]);
                }
            }
            sums[t].store(
                acc.iter().fold(0, |a, &b| a.wrapping_add(b)),
                std::sync::atomic::Ordering::Relaxed,
            );
        });
        black_box(&sums);
    });
    let gbs = (words * 8) as f64 / median / 1e9;
    println!(
        "memory read, {} threads: {gbs:.1} GB/s (spread {:.0}%)",
        pool.threads(),
        spread * 100.0
    );
    gbs
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .map(|i| args[i + 1].clone())
    };
    let threads = arg("--threads").map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |t| t.parse().unwrap(),
    );
    let format = arg("--format").unwrap_or_else(|| "c4w".to_string());
    let paths = match arg("--path").as_deref() {
        None => vec![ActivationPath::F32, ActivationPath::Int8],
        Some("f32") => vec![ActivationPath::F32],
        Some("int8") => vec![ActivationPath::Int8],
        Some(other) => panic!("unknown path {other}: expected f32 or int8"),
    };
    let pool = ThreadPool::new(threads);
    let cpu = Cpu {
        kernels: kernels::selected(),
        pool: &pool,
    };
    println!(
        "kernels: {}, threads: {threads}, weights: {format} (f16 scales)",
        cpu.kernels.isa.name()
    );
    let bw = bandwidth(&pool);
    let mut rng = Rng(7);

    println!("\ndecode GEMV, m = 1 (weights streamed from DRAM):");
    for (n, k, name) in SHAPES {
        let one = Packed::new(&format, n, k, &mut rng);
        let bytes = one.weights().size_bytes();
        let copies = MIN_STREAM_BYTES.div_ceil(bytes).max(1);
        let all: Vec<Packed> = (0..copies)
            .map(|_| Packed::new(&format, n, k, &mut rng))
            .collect();
        let weights: Vec<Weights> = all.iter().map(Packed::weights).collect();
        let x = rng.vec(k, 1.0);
        let mut y = vec![0.0; n];
        for &path in &paths {
            let options = LinearOptions { bias: None, path };
            let mut i = 0;
            let (median, spread) = time(20 * copies.min(4), || {
                let w = &weights[i % copies];
                i += 1;
                linear(cpu, &mut y, &x, w, &options).unwrap();
            });
            let gbs = bytes as f64 / median / 1e9;
            println!(
                "  {name} {path:?}: {:7.1} us  {gbs:5.1} GB/s = {:3.0}% of bandwidth (spread {:.0}%)",
                median * 1e6,
                gbs / bw * 100.0,
                spread * 100.0
            );
        }
    }

    let m = 32;
    println!("\nprefill, m = {m}:");
    for (n, k, name) in SHAPES {
        let p = Packed::new(&format, n, k, &mut rng);
        let w = p.weights();
        let x = {
            let mut x = rng.vec(m * k, 1.0);
            // Llama-like outlier channels.
            for r in 0..m {
                for j in (3..k).step_by(97) {
                    x[r * k + j] *= 20.0;
                }
            }
            x
        };
        let flops = 2.0 * (m * n * k) as f64;
        let mut results = Vec::new();
        for &path in &paths {
            let mut y = vec![0.0; m * n];
            let options = LinearOptions { bias: None, path };
            let runs = if n > 100_000 { 3 } else { 10 };
            let (median, spread) = time(runs, || linear(cpu, &mut y, &x, &w, &options).unwrap());
            println!(
                "  {name} {path:?}: {:8.2} ms  {:6.1} GFLOP/s (spread {:.0}%)",
                median * 1e3,
                flops / median / 1e9,
                spread * 100.0
            );
            results.push(y);
        }
        if format != "f16" && paths.len() == 2 {
            let (exact, approx) = (&results[0], &results[1]);
            let norm = |v: &mut dyn Iterator<Item = f32>| {
                v.map(|e| f64::from(e) * f64::from(e)).sum::<f64>().sqrt()
            };
            let err = norm(&mut exact.iter().zip(approx).map(|(a, b)| a - b));
            let max_rel = exact
                .iter()
                .zip(approx)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max)
                / exact.iter().fold(0f32, |m, v| m.max(v.abs()));
            println!(
                "    int8 vs f32 activations: relative L2 error {:.2e}, max error / max |y| {max_rel:.2e}",
                err / norm(&mut exact.iter().copied())
            );
        }
    }
}
