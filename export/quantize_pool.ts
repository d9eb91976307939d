/**
 * Quantization on worker threads. The exporter reads a weight a few rows at a time and hands each
 * chunk to an idle worker, so that the scale searches and k-means fits of several chunks run at
 * once while this thread reads and writes. Every chunk is quantized by the same function on
 * whichever thread: the bundle's bytes do not depend on the number of workers.
 *
 * Where no worker can start (read permission for llamane's own modules is not granted, for one),
 * the pool does its jobs on the calling thread.
 *
 * @module
 */

import { type ChunkJob, type ChunkResult, runChunkJob } from "./chunk_job.ts";

/** The workers' module: `deno compile` must be told to include it (deno.json's compile task). */
export const WORKER_MODULE = new URL("./quantize_worker.ts", import.meta.url);

/** The directory of the modules a worker loads: they start only with read permission for it. */
export const WORKER_DIRECTORY = new URL("./", WORKER_MODULE);

/** What a worker sends back for a job. */
type Reply =
  | { readonly result: ChunkResult<ChunkJob> }
  | { readonly error: { readonly name: string; readonly message: string } };

/** Starts one worker, resolving once it has loaded; undefined when it cannot. */
function startWorker(): Promise<Worker | undefined> {
  // A worker that fails to load reports the error on the console too: ask first.
  if (
    WORKER_MODULE.protocol === "file:" &&
    Deno.permissions.querySync({ name: "read", path: WORKER_DIRECTORY }).state !== "granted"
  ) {
    return Promise.resolve(undefined);
  }
  let worker: Worker;
  try {
    worker = new Worker(WORKER_MODULE, { type: "module" });
  } catch {
    return Promise.resolve(undefined);
  }
  return new Promise((resolve) => {
    worker.onmessage = () => resolve(worker);
    worker.onerror = (event) => {
      event.preventDefault();
      worker.terminate();
      resolve(undefined);
    };
  });
}

/** The error a worker reported, rebuilt with its type where it is a standard one. */
function rebuildError({ name, message }: { name: string; message: string }): Error {
  const error = name === "RangeError"
    ? new RangeError(message)
    : name === "TypeError"
    ? new TypeError(message)
    : new Error(message);
  error.name = name;
  return error;
}

/** Worker threads that quantize chunks of rows; dispose of it to stop them. */
export class QuantizePool implements Disposable {
  readonly #workers: readonly Worker[];
  readonly #idle: Worker[];
  /** Jobs waiting for a worker, each woken with the worker it gets. */
  readonly #waiting: ((worker: Worker) => void)[] = [];

  private constructor(workers: readonly Worker[]) {
    this.#workers = workers;
    this.#idle = [...workers];
  }

  /** Starts up to `threads` workers (none for 1): those that cannot start are left out. */
  static async start(threads: number): Promise<QuantizePool> {
    const workers = threads <= 1
      ? []
      : await Promise.all(Array.from({ length: threads }, startWorker));
    return new QuantizePool(workers.filter((worker) => worker !== undefined));
  }

  /** Threads that quantize: the workers, or this one when none started. */
  get threads(): number {
    return Math.max(1, this.#workers.length);
  }

  /**
   * Does `job` on the next idle worker (on this thread when there are none). The job's rows move
   * to the worker and come back in the result: use `result.weights`, not `job.weights`, after.
   */
  async run<J extends ChunkJob>(job: J): Promise<ChunkResult<J>> {
    if (this.#workers.length === 0) return runChunkJob(job);
    const worker = this.#idle.pop() ??
      await new Promise<Worker>((resolve) => this.#waiting.push(resolve));
    try {
      return await this.#send(worker, job);
    } finally {
      const next = this.#waiting.shift();
      if (next === undefined) this.#idle.push(worker);
      else next(worker);
    }
  }

  #send<J extends ChunkJob>(worker: Worker, job: J): Promise<ChunkResult<J>> {
    // Rows that are a view into a larger buffer are copied: moving the buffer would take it
    // from its other users.
    const { weights } = job;
    const owned = weights.byteOffset === 0 && weights.byteLength === weights.buffer.byteLength
      ? weights
      : weights.slice();
    return new Promise((resolve, reject) => {
      worker.onmessage = ({ data }: MessageEvent<Reply>) => {
        if ("error" in data) reject(rebuildError(data.error));
        else resolve(data.result as ChunkResult<J>);
      };
      worker.onerror = (event) => {
        event.preventDefault();
        reject(new Error(`A quantization worker failed: ${event.message}`));
      };
      worker.postMessage({ ...job, weights: owned }, [owned.buffer as ArrayBuffer]);
    });
  }

  /** Stops the workers. */
  [Symbol.dispose](): void {
    for (const worker of this.#workers) worker.terminate();
  }
}
