/**
 * The tiny random-weight model of `tiny_llama.ts`, exported: for tests of what runs a bundle
 * (planners, backends, bindings) rather than of the export itself.
 *
 * @module
 */

import { exportModel } from "../export/export_model.ts";
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
