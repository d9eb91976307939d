/**
 * A probe run in a fresh Deno process under GNU time, whose `%M` is the child's peak RSS (the
 * VmHWM it had on exit) and `%U`, `%S` its CPU time, which unlike wall time does not grow with the
 * load others put on a shared machine: Deno refuses to read `/proc/self/status` without `--allow-all`, which a
 * probe should not need, and a fresh process keeps one probe's memory out of the next one's peak.
 *
 * @module
 */

import type { Figures } from "./bench.ts";
import { round } from "./spread.ts";

const GNU_TIME = "/usr/bin/time";

/** Whether GNU time is there to measure peak RSS. */
export function hasGnuTime(): Promise<boolean> {
  return Deno.stat(GNU_TIME).then(() => true, () => false);
}

/**
 * Runs `deno run PERMISSIONS SCRIPT ARGS` and returns the JSON figures it prints, with its wall
 * time (`process_wall_ms`), peak RSS (`peak_rss_mb`) and user plus system CPU time
 * (`process_cpu_ms`; both a note where GNU time is missing).
 */
export async function runTimedProbe(
  name: string,
  permissions: readonly string[],
  script: URL,
  args: readonly string[],
  gnuTime: boolean,
): Promise<Figures> {
  const probe = [Deno.execPath(), "run", ...permissions, script.pathname, ...args];
  const [command, ...rest] = gnuTime
    ? [GNU_TIME, "-f", "maxrss_kb=%M cpu_s=%U+%S", ...probe]
    : probe;
  const started = performance.now();
  const output = await new Deno.Command(command!, { args: rest, stdout: "piped", stderr: "piped" })
    .output();
  const wall = performance.now() - started;
  const stderr = new TextDecoder().decode(output.stderr);
  if (!output.success) {
    throw new Error(`Cannot run the ${name} probe: exit code ${output.code}\n${stderr}`);
  }
  const measured = stderr.match(/maxrss_kb=(\d+) cpu_s=([\d.]+)\+([\d.]+)/);
  const missing = `n/a: needs GNU time at ${GNU_TIME}`;
  return {
    ...JSON.parse(new TextDecoder().decode(output.stdout)),
    process_wall_ms: round(wall),
    peak_rss_mb: measured === null ? missing : round(Number(measured[1]) / 1024),
    process_cpu_ms: measured === null
      ? missing
      : round((Number(measured[2]) + Number(measured[3])) * 1000),
  };
}
