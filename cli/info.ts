/**
 * `llamane info`: a checkpoint's resolved config, parameter count and tensor table.
 *
 * @module
 */

import { parseFlags, usage } from "./args.ts";
import type { Command } from "./command.ts";
import { modelFlags, modelPathsFromFlags } from "./model_flags.ts";
import { openModel } from "../llama/open.ts";
import { parameterCount } from "../llama/config.ts";
import { validateTensors } from "../llama/weights.ts";
import { measureQkLayout } from "../llama/qk_layout.ts";
import { storedBytes } from "../checkpoint/dtype.ts";
import { elementCount } from "../shape.ts";

/** `llamane info -c CKPT [-p PARAMS]` */
export const infoCommand: Command = {
  summary: "print a checkpoint's config, parameter count and tensors",
  usage: usage({
    command: "info",
    synopsis: ["-c CHECKPOINT [-p PARAMS]"],
    description:
      "Prints the checkpoint's layout and file format, the resolved model config with where each field came from, the parameter count and every tensor (name, shape, stored type), then checks the tensors against the config and the order of the q/k rows.",
    flags: modelFlags,
  }),

  async main(argv) {
    const { values } = parseFlags(argv, modelFlags);
    const { paths, options } = modelPathsFromFlags(values);
    using model = await openModel(paths, options);
    const { config, source, provenance } = model;
    for (const warning of model.warnings) console.error(`warning: ${warning}`);

    const fields = Object.entries(config).map(([key, value]) => {
      const shown = value === undefined
        ? "none"
        : typeof value === "object"
        ? JSON.stringify(value)
        : String(value);
      return [key, shown, provenance[key as keyof typeof provenance]] as const;
    });
    const valueWidth = Math.max(...fields.map(([, shown]) => shown.length).filter((n) => n <= 24));
    const keyWidth = Math.max(...fields.map(([key]) => key.length));
    const line = (key: string, text: string) => console.log(`${key.padEnd(keyWidth)}  ${text}`);
    line("checkpoint", paths.checkpoint);
    line("layout", `${LAYOUT_NAMES[model.layout]} (${source.format} file)`);
    for (const [key, shown, from] of fields) line(key, `${shown.padEnd(valueWidth)}  ${from}`);
    line("parameters", `${parameterCount(config).toLocaleString("en-US")}\n`);

    const tensors = source.list();
    const nameWidth = Math.max(...tensors.map((t) => t.name.length));
    let totalBytes = 0;
    for (const t of tensors) {
      totalBytes += storedBytes(t.dtype, elementCount(t.shape));
      console.log(
        `${t.name.padEnd(nameWidth)}  ${`[${t.shape.join(", ")}]`.padEnd(14)}  ${t.dtype}`,
      );
    }
    console.log(`\n${tensors.length} tensors, ${(totalBytes / 2 ** 20).toFixed(1)} MiB`);
    validateTensors(paths.checkpoint, config, tensors);
    console.log("all tensors match the config");
    const verdict = await measureQkLayout(source, config);
    console.log(
      verdict.looksRotateHalf
        ? `q/k rows look like rotate-half order under Meta names (t = ${verdict.t.toFixed(1)}): ` +
          "export will refuse this checkpoint"
        : `q/k row order consistent with the layout (t = ${verdict.t.toFixed(1)} over ` +
          `${verdict.heads} heads)`,
    );
  },
};

const LAYOUT_NAMES = {
  "meta": "Meta",
  "hugging-face": "Hugging Face",
  "gguf": "GGUF",
} as const;
