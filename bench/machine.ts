/**
 * What a benchmark ran on, recorded beside its figures: the OS and core count, the CPU's model and
 * its SIMD features that decide kernel choices (here and in llama.cpp), and the kernel set the
 * CPU backend's library selects (after `LLAMANE_CPU_KERNELS`).
 *
 * @module
 */

import { CpuBackend } from "../runtime/backend/cpu.ts";

/** The machine, as recorded with each benchmark's results. */
export interface Machine {
  /** `os-arch, N cores`. */
  readonly machine: string;
  /** The CPU's model name, or `unknown` where /proc/cpuinfo is not there to say. */
  readonly cpu: string;
  /** The CPU's dot-product and matrix features (x86 AVX2/AVX-512/VNNI/AMX, Arm dotprod/i8mm). */
  readonly cpu_flags: string;
  /** The kernel set of the CPU backend's library, or why there is none. */
  readonly cpu_kernels: string;
}

/** /proc/cpuinfo flags that change which integer dot-product kernels can run. */
const KERNEL_FLAGS = [
  "avx2",
  "fma",
  "f16c",
  "avx512f",
  "avx512bw",
  "avx512vl",
  "avx512_vnni",
  "avx_vnni",
  "avx512_bf16",
  "amx_tile",
  "amx_int8",
  "asimd",
  "asimddp",
  "i8mm",
  "sve",
];

/**
 * The first processor's model name and kernel-relevant flags, from Linux's /proc/cpuinfo. Deno
 * lets a program read /proc only with --allow-all, so `cat` (--allow-run, which the bench has)
 * reads it.
 */
async function cpuInfo(): Promise<{ cpu: string; cpu_flags: string }> {
  const unknown = { cpu: "unknown", cpu_flags: "unknown" };
  if (Deno.build.os !== "linux") return unknown;
  const { success, stdout } = await new Deno.Command("cat", { args: ["/proc/cpuinfo"] }).output();
  if (!success) return unknown;
  const text = new TextDecoder().decode(stdout);
  const field = (name: string) =>
    new RegExp(`^${name}\\s*:\\s*(.*)$`, "m").exec(text)?.[1]?.trim() ?? "";
  const present = new Set([...field("flags").split(/\s+/), ...field("Features").split(/\s+/)]);
  return {
    cpu: field("model name") || "unknown",
    cpu_flags: KERNEL_FLAGS.filter((flag) => present.has(flag)).join(" "),
  };
}

async function kernelSet(): Promise<string> {
  try {
    return (await CpuBackend.create()).kernels ?? "not reported by this library";
  } catch (error) {
    return `none: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/** Describes this machine (opens the CPU backend's library to ask for its kernels). */
export async function describeMachine(): Promise<Machine> {
  return {
    machine: `${Deno.build.os}-${Deno.build.arch}, ${navigator.hardwareConcurrency} cores`,
    ...await cpuInfo(),
    cpu_kernels: await kernelSet(),
  };
}
