/**
 * The flags that name a checkpoint, shared by every command that reads one.
 *
 * @module
 */

import { type OptionSpec, parseNumber, UsageError } from "./args.ts";
import type { ConfigOptions } from "../llama/config.ts";
import type { ModelPaths } from "../llama/open.ts";

/** `-c/--checkpoint`, `-p/--params`, `--rope_scale_factor`. */
export const modelFlags = {
  checkpoint: { type: "string", short: "c" },
  params: { type: "string", short: "p" },
  rope_scale_factor: { type: "string" },
} as const satisfies OptionSpec;

/** Usage lines for {@link modelFlags}. */
export const modelFlagsUsage = `  -c, --checkpoint PATH      model checkpoint (.pth or .safetensors)
  -p, --params PATH          Meta params.json
      --rope_scale_factor N  RoPE scale factor for use_scaled_rope models (default 8; Llama 3.2
                             1B/3B need 32)`;

/** Reads the checkpoint flags, requiring both paths. */
export function modelPathsFromFlags(values: {
  checkpoint?: string | undefined;
  params?: string | undefined;
  rope_scale_factor?: string | undefined;
}): { paths: ModelPaths; options: ConfigOptions } {
  if (values.checkpoint === undefined) throw new UsageError("Missing --checkpoint");
  if (values.params === undefined) throw new UsageError("Missing --params");
  const options: ConfigOptions = values.rope_scale_factor === undefined
    ? {}
    : { ropeScaleFactor: parseNumber("rope_scale_factor", values.rope_scale_factor, 1) };
  return { paths: { checkpoint: values.checkpoint, params: values.params }, options };
}
