/**
 * The tiny random-weight model of `tiny_llama.ts`, exported: for tests of what runs a bundle
 * (planners, backends, bindings) rather than of the export itself.
 *
 * @module
 */

import { exportModel } from "../export/export_model.ts";
import { CpuBackend } from "../runtime/backend/cpu.ts";
import { LoadedModel } from "../runtime/model.ts";
import { ModelSession } from "../runtime/session.ts";
import type { ExportOptions } from "../export/options.ts";
import { writeTinyLlama } from "./tiny_llama.ts";

/** Exports a freshly written tiny model into a new temporary directory; returns the bundle path. */
export async function exportTinyBundle(
  options: Omit<Partial<ExportOptions>, "checkpoint" | "params" | "output"> = {},
): Promise<string> {
  const tiny = await writeTinyLlama();
  const bundle = `${await Deno.makeTempDir()}/tiny.llamane`;
  await exportModel({
    checkpoint: tiny.checkpoint,
    params: tiny.params,
    output: bundle,
    ...options,
  });
  return bundle;
}

/**
 * The logits of every call a bundle makes on the CPU backend, bit for bit: a prompt of one call
 * length, then six one-token decode steps. Two bundles that should compute alike must give
 * equal lists.
 */
export async function callLogitBytes(bundle: string): Promise<Uint8Array[]> {
  using model = await LoadedModel.load(bundle, await CpuBackend.create());
  const session = new ModelSession(model);
  const out: Uint8Array[] = [];
  const record = (a: Float16Array | Float32Array) =>
    out.push(new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice());
  const vocab = model.manifest.model.vocabSize;
  record(await session.call(Array.from({ length: model.inputLength }, (_, i) => (i * 7) % vocab)));
  for (let step = 0; step < 6; step++) record(await session.step([(step * 13 + 5) % vocab]));
  return out;
}
