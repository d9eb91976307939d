//! Measures this machine's memory-read bandwidth: threads stream through a buffer far larger than
//! any cache, summing it, and the bytes read per second are what a memory-bound kernel (a decode
//! step reading every weight once) can at best achieve. `deno task bench run_cpu` runs it to put
//! the CPU backend's decode speed against that bound.
//!
//! Run: `cargo run --release --example bandwidth -- [--bytes N] [--threads T] [--runs R]`
//! (defaults: 1 GiB, every core, 10 runs). Prints one JSON object with the GB/s (10^9 bytes per
//! second) of each run, after one untimed warm-up pass.

use std::hint::black_box;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

/// Independent sums per thread: enough for the loop to keep several vector loads in flight, so
/// that the adds never limit the rate at which memory is read.
const LANES: usize = 8;

struct Options {
    bytes: usize,
    threads: usize,
    runs: usize,
}

fn parse_options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str, default: usize| -> usize {
        match args.iter().position(|a| a == flag) {
            None => default,
            Some(i) => args
                .get(i + 1)
                .and_then(|v| v.parse().ok())
                .filter(|&v| v > 0)
                .unwrap_or_else(|| panic!("{flag} needs a positive integer")),
        }
    };
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    Options {
        bytes: value("--bytes", 1 << 30),
        threads: value("--threads", cores),
        runs: value("--runs", 10),
    }
}

/// Sums a slice of words with `LANES` independent accumulators, which the compiler turns into
/// vector adds.
fn sum(words: &[u64]) -> u64 {
    let mut lanes = [0u64; LANES];
    let chunks = words.chunks_exact(LANES);
    let tail: u64 = chunks.remainder().iter().fold(0, |a, &w| a.wrapping_add(w));
    for chunk in chunks {
        for (lane, &word) in lanes.iter_mut().zip(chunk) {
            *lane = lane.wrapping_add(word);
        }
    }
    lanes.iter().fold(tail, |a, &l| a.wrapping_add(l))
}

/// One pass: a thread sums each part of `words`; returns the wall time from the moment all
/// threads are ready to the moment the last one finishes, so thread start-up is not counted.
fn timed_pass(words: &[u64], threads: usize) -> Duration {
    let parts: Vec<&[u64]> = words.chunks(words.len().div_ceil(threads)).collect();
    let ready = Barrier::new(parts.len() + 1);
    let finished = Barrier::new(parts.len() + 1);
    thread::scope(|scope| {
        for part in parts {
            let (ready, finished) = (&ready, &finished);
            scope.spawn(move || {
                ready.wait();
                black_box(sum(part));
                finished.wait();
            });
        }
        ready.wait();
        let start = Instant::now();
        finished.wait();
        start.elapsed()
    })
}

fn main() {
    let options = parse_options();
    let count = options.bytes / 8;
    // Every page is written before timing (by the threads that will read it), so the passes read
    // real memory: untouched pages of a zeroed allocation all map the same zero page.
    let mut words = vec![0u64; count];
    let share = count.div_ceil(options.threads);
    thread::scope(|scope| {
        for (index, part) in words.chunks_mut(share).enumerate() {
            scope.spawn(move || {
                for (i, word) in part.iter_mut().enumerate() {
                    *word = (index * share + i) as u64;
                }
            });
        }
    });
    timed_pass(&words, options.threads);
    let gb_s: Vec<String> = (0..options.runs)
        .map(|_| {
            let seconds = timed_pass(&words, options.threads).as_secs_f64();
            format!("{:.2}", (count * 8) as f64 / seconds / 1e9)
        })
        .collect();
    println!(
        "{{\"bytes\":{},\"threads\":{},\"runs\":{},\"gb_s\":[{}]}}",
        count * 8,
        options.threads,
        options.runs,
        gb_s.join(",")
    );
}
