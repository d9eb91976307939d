/**
 * The flags that name a checkpoint, shared by every command that reads one.
 *
 * @module
 */

import { type FlagTable, parseNumber, UsageError } from "./args.ts";
import { type ConfigOptions, DEFAULT_ROPE_SCALE_FACTOR } from "../llama/config.ts";
import type { ModelPaths } from "../llama/open.ts";

/** `-c/--checkpoint`, `-p/--params`, `--rope_scale_factor`. */
export const modelFlags = {
  checkpoint: {
    type: "string",
    short: "c",
    value: "PATH",
    help: "a Hugging Face model folder (or its config.json), a .gguf file, or a Meta .pth or " +
      ".safetensors (with -p)",
  },
  params: {
    type: "string",
    short: "p",
    value: "PATH",
    help: "Meta params.json (Meta checkpoints only)",
  },
  rope_scale_factor: {
    type: "string",
    value: "N",
    help: "RoPE scale factor of use_scaled_rope models; Llama 3.2 1B and 3B need 32",
    defaultText: String(DEFAULT_ROPE_SCALE_FACTOR),
  },
} as const satisfies FlagTable;

/** Reads the checkpoint flags; which layouts need `--params` is for openModel to say. */
export function modelPathsFromFlags(values: {
  checkpoint?: string | undefined;
  params?: string | undefined;
  rope_scale_factor?: string | undefined;
}): { paths: ModelPaths; options: ConfigOptions } {
  if (values.checkpoint === undefined) throw new UsageError("Missing --checkpoint");
  const options: ConfigOptions = values.rope_scale_factor === undefined
    ? {}
    : { ropeScaleFactor: parseNumber("rope_scale_factor", values.rope_scale_factor, 1) };
  const paths = values.params === undefined
    ? { checkpoint: values.checkpoint }
    : { checkpoint: values.checkpoint, params: values.params };
  return { paths, options };
}
