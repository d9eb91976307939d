/**
 * `llamane demo`: exports the embedded King James model with the default options and generates
 * from it, so that one command shows the whole pipeline without a download.
 *
 * @module
 */

import { parseFlags, usage } from "./args.ts";
import type { Command } from "./command.ts";
import { exportCommand } from "./export.ts";
import { runCommand } from "./run.ts";

const MODEL = "models/kjv-tiny";
const BUNDLE = "out/kjv-tiny.llamane";

/** `llamane demo` */
export const demoCommand: Command = {
  summary: "export the embedded King James model and generate from it",
  usage: usage({
    command: "demo",
    synopsis: [""],
    description:
      `Exports ${MODEL} to ${BUNDLE} with the default options (fp16, int4 per channel), then continues "And God said" on the CPU backend. Run from the repository root.`,
    flags: {},
  }),

  async main(argv) {
    parseFlags(argv, {});
    await Deno.mkdir("out", { recursive: true });
    await exportCommand.main([
      "-c",
      `${MODEL}/consolidated.00.pth`,
      "-p",
      `${MODEL}/params.json`,
      "-o",
      BUNDLE,
    ]);
    console.log();
    await runCommand.main([
      "-m",
      BUNDLE,
      "--prompt",
      "And God said",
      "--max_new_tokens",
      "64",
      "--seed",
      "7",
    ]);
  },
};
