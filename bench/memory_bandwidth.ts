/**
 * This machine's memory-read bandwidth, measured by `ffi/cpu/examples/bandwidth.rs` (threads
 * summing a 1 GiB buffer), built and run through cargo.
 *
 * @module
 */

const MANIFEST = new URL("../ffi/cpu/Cargo.toml", import.meta.url).pathname;

/** What one run of the example prints. */
export interface BandwidthRun {
  readonly bytes: number;
  readonly threads: number;
  readonly runs: number;
  /** GB/s (10^9 bytes per second) of each timed pass. */
  readonly gb_s: readonly number[];
}

/**
 * Builds (if needed) and runs the bandwidth example with `threads` threads (every core when
 * omitted), `runs` timed passes over 1 GiB.
 */
export async function measureBandwidth(runs: number, threads?: number): Promise<BandwidthRun> {
  const args = [
    "run",
    "--release",
    "--quiet",
    "--example",
    "bandwidth",
    "--manifest-path",
    MANIFEST,
    "--",
    "--runs",
    String(runs),
    ...(threads === undefined ? [] : ["--threads", String(threads)]),
  ];
  const output = await new Deno.Command("cargo", { args, stdout: "piped", stderr: "inherit" })
    .output();
  if (!output.success) {
    throw new Error(`Cannot measure the memory bandwidth: cargo ${args.join(" ")} failed`);
  }
  return JSON.parse(new TextDecoder().decode(output.stdout)) as BandwidthRun;
}
