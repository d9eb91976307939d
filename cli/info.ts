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
import { storedBytes } from "../checkpoint/dtype.ts";
import { elementCount } from "../shape.ts";

/** `llamane info -c CKPT -p PARAMS` */
export const infoCommand: Command = {
  summary: "print a checkpoint's config, parameter count and tensors",
  usage: usage({
    command: "info",
    synopsis: ["-c CHECKPOINT -p PARAMS"],
    description:
      "Prints the resolved model config, the parameter count and every tensor (name, shape, dtype), then checks the tensors against the config.",
    flags: modelFlags,
  }),

  async main(argv) {
    const { values } = parseFlags(argv, modelFlags);
    const { paths, options } = modelPathsFromFlags(values);
    using model = await openModel(paths, options);
    const { config, source } = model;

    console.log(`checkpoint  ${paths.checkpoint}`);
    for (const [key, value] of Object.entries(config)) {
      const shown = value === undefined
        ? "none"
        : typeof value === "object"
        ? JSON.stringify(value)
        : value;
      console.log(`${key.padEnd(11)} ${shown}`);
    }
    console.log(`parameters  ${parameterCount(config).toLocaleString("en-US")}\n`);

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
  },
};
