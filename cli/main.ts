/**
 * The `llamane` command line: `llamane <command> [flags]`.
 *
 * @module
 */

import { UsageError } from "./args.ts";
import type { Command } from "./command.ts";
import { infoCommand } from "./info.ts";
import { demoCommand } from "./demo.ts";
import { exportCommand } from "./export.ts";
import { inspectCommand } from "./inspect.ts";
import { runCommand } from "./run.ts";
import { tokenizeCommand } from "./tokenize.ts";

const commands: Record<string, Command> = {
  demo: demoCommand,
  export: exportCommand,
  run: runCommand,
  inspect: inspectCommand,
  info: infoCommand,
  tokenize: tokenizeCommand,
};

function overview(): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length));
  const lines = Object.entries(commands).map(([name, c]) =>
    `  ${name.padEnd(width)}  ${c.summary}`
  );
  return `Usage: llamane <command> [flags]\n\nCommands:\n${lines.join("\n")}\n\n` +
    "Run llamane <command> --help for a command's flags.";
}

/** Runs the CLI on `argv` and returns the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(overview());
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (command === undefined) {
    console.error(`llamane: unknown command "${name}"\n\n${overview()}`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(command.usage);
    return 0;
  }
  try {
    await command.main(rest);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`llamane ${name}: ${error.message}\n\n${command.usage}`);
      return 2;
    }
    console.error(`llamane ${name}: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
