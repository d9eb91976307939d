/**
 * `llamane demo`: exports the embedded King James model with the default options and generates
 * from it, so that one command shows the whole pipeline. It runs from any working directory, and
 * from a URL or JSR as well as from a clone.
 *
 * @module
 */

import { parseFlags, usage, UsageError } from "./args.ts";
import type { Command } from "./command.ts";
import { exportCommand } from "./export.ts";
import { runCommand } from "./run.ts";
import { embeddedModel } from "../models/embedded.ts";

/** `llamane demo [BUNDLE]` */
export const demoCommand: Command = {
  summary: "export the embedded King James model and generate from it",
  usage: usage({
    command: "demo",
    synopsis: ["[BUNDLE]"],
    description: "Exports the embedded King James model with the default options (fp16, int4 " +
      "per channel) to the directory BUNDLE, or to a temporary directory removed at the end, " +
      'then continues "And God said" on the CPU backend. Runs from any directory. When llamane ' +
      "was loaded from a URL, the model (7.9 MB) is first downloaded from beside it into a " +
      "temporary directory, removed at the end too.",
    flags: {},
  }),

  async main(argv) {
    const { positionals } = parseFlags(argv, {}, true);
    if (positionals.length > 1) {
      throw new UsageError(`Expected at most one BUNDLE, got ${positionals.length} arguments`);
    }
    await using model = await embeddedModel();
    const scratch = positionals[0] === undefined
      ? await Deno.makeTempDir({ prefix: "llamane-demo-" })
      : undefined;
    try {
      const bundle = positionals[0] ?? `${scratch}/kjv-tiny.llamane`;
      await exportCommand.main(["-c", model.checkpoint, "-p", model.params, "-o", bundle]);
      console.log();
      await runCommand.main([
        "-m",
        bundle,
        "--prompt",
        "And God said",
        "--max_new_tokens",
        "64",
        "--seed",
        "7",
      ]);
    } finally {
      if (scratch !== undefined) await Deno.remove(scratch, { recursive: true });
    }
  },
};
