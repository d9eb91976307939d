/**
 * A worker thread of export/quantize_pool.ts: it says it is ready, then does each job it is sent
 * and sends back the result (or the error's name and message), with the job's rows.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { type ChunkJob, resultBuffers, runChunkJob } from "./chunk_job.ts";

self.onmessage = ({ data: job }: MessageEvent<ChunkJob>) => {
  try {
    const result = runChunkJob(job);
    self.postMessage({ result }, resultBuffers(result));
  } catch (error) {
    const { name, message } = error instanceof Error ? error : new Error(String(error));
    self.postMessage({ error: { name, message } });
  }
};
self.postMessage("ready");
