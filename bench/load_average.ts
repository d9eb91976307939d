/**
 * The machine's 1-minute load average, recorded next to every timing: on a shared machine it says
 * how much of the timing was someone else's work.
 *
 * @module
 */

/**
 * The 1-minute load average as `uptime` prints it (Linux and macOS), or `undefined` when it cannot
 * be had. Asked of a child process because Deno refuses to read `/proc/loadavg` without
 * `--allow-all`, and `Deno.loadavg()` needs `--allow-sys`, which `deno task bench` does not grant;
 * it grants `--allow-run`.
 */
export async function loadAverage1m(): Promise<number | undefined> {
  let stdout: Uint8Array;
  try {
    const output = await new Deno.Command("uptime", { stdout: "piped", stderr: "null" }).output();
    if (!output.success) return undefined;
    stdout = output.stdout;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  const match = /load averages?: *([\d.]+)/.exec(new TextDecoder().decode(stdout));
  return match === null ? undefined : Number(match[1]);
}
