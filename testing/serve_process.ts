/**
 * `llamane serve` in a child process, as users run it: started on a free port of 127.0.0.1, its
 * address read from the line it prints, its memory read from outside (so that the client's own
 * allocations do not count), and stopped with SIGTERM. Deno's inspector is open on loopback so
 * that a full garbage collection can be asked for before memory is read, and the JavaScript heap's
 * live objects counted: without it, memory swings by a fifth with the garbage not yet collected.
 *
 * @module
 */

import { DevToolsConnection } from "./devtools.ts";

const MAIN = new URL("../cli/main.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

/** A server's memory, in bytes, after a full garbage collection. */
export interface ServerMemory {
  /** The process's resident set size. */
  readonly resident: number;
  /** The JavaScript heap's live objects: where requests the server failed to let go would stay. */
  readonly heapUsed: number;
}

/** A running `llamane serve`. */
export interface ServeProcess extends AsyncDisposable {
  /** `http://127.0.0.1:PORT`, the base of every route. */
  readonly url: string;
  readonly pid: number;
  /** What the server wrote to stderr so far: its start line and one line per request. */
  readonly log: readonly string[];
  /** Collects the server's garbage, then reads its memory. */
  memory(): Promise<ServerMemory>;
}

/**
 * Starts `llamane serve -m BUNDLE --port 0 ...flags` and waits until it listens.
 *
 * @throws {Error} with the server's output when it exits before listening
 */
export async function startServeProcess(
  bundle: string,
  flags: readonly string[] = [],
): Promise<ServeProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      // Not --quiet, which would hide the line giving the inspector's address.
      "--inspect=127.0.0.1:0",
      `--config=${CONFIG}`,
      "--allow-read",
      "--allow-env",
      "--allow-ffi",
      "--allow-net=127.0.0.1",
      MAIN,
      "serve",
      "-m",
      bundle,
      "--port",
      "0",
      "--backend",
      "cpu",
      ...flags,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const log: string[] = [];
  const lines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  const url = Promise.withResolvers<string>();
  const inspector = Promise.withResolvers<string>();
  // Reads stderr to its end, so that the server never blocks on a full pipe.
  const drained = (async () => {
    let pending = "";
    for (;;) {
      const { value, done } = await lines.read();
      if (done) break;
      const parts = (pending + value).split("\n");
      pending = parts.pop()!;
      for (const line of parts) {
        log.push(line);
        const served = line.match(/ at (http:\/\/\S+)\/v1 /)?.[1];
        if (served !== undefined) url.resolve(served);
        const debuggerUrl = line.match(/^Debugger listening on (ws:\/\/\S+)/)?.[1];
        if (debuggerUrl !== undefined) inspector.resolve(debuggerUrl);
      }
    }
    const exited = new Error(
      `llamane serve exited before listening:\n${[...log, pending].join("\n")}`,
    );
    url.reject(exited);
    inspector.reject(exited);
  })();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // It has exited already.
    }
    await child.status;
    await drained;
  };
  let address: string;
  let inspectorUrl: string;
  try {
    address = await url.promise;
    inspectorUrl = await inspector.promise;
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url: address,
    pid: child.pid,
    log,
    async memory() {
      // Connected only for this: with a debugger attached, every worker the server starts (one
      // per chat template rendering) loads many times slower.
      const devTools = await DevToolsConnection.open(inspectorUrl);
      try {
        await devTools.send("HeapProfiler.collectGarbage");
        const { usedSize } = await devTools.send("Runtime.getHeapUsage") as { usedSize: number };
        return { resident: await residentBytes(child.pid), heapUsed: usedSize };
      } finally {
        await devTools.close();
      }
    },
    [Symbol.asyncDispose]: stop,
  };
}

/** A process's resident set size in bytes, as `ps` reports it (Linux and macOS). */
async function residentBytes(pid: number): Promise<number> {
  const { success, stdout } = await new Deno.Command("ps", {
    args: ["-o", "rss=", "-p", String(pid)],
    stdout: "piped",
    stderr: "null",
  }).output();
  const kib = Number(new TextDecoder().decode(stdout).trim());
  if (!success || !Number.isFinite(kib) || kib <= 0) {
    throw new Error(`Cannot read the resident memory of process ${pid} with ps`);
  }
  return kib * 1024;
}
