/**
 * The `llamane` command line: `llamane <command> [flags]`.
 *
 * @module
 */

import { flagArguments, UsageError } from "./args.ts";
import type { Command } from "./command.ts";
import { infoCommand } from "./info.ts";
import { printable } from "./format.ts";
import { demoCommand } from "./demo.ts";
import { evalCommand } from "./eval.ts";
import { exportCommand } from "./export.ts";
import { inspectCommand } from "./inspect.ts";
import { lintCommand } from "./lint.ts";
import { runCommand } from "./run.ts";
import { chatCommand } from "./chat.ts";
import { serveCommand } from "./serve.ts";
import { tokenizeCommand } from "./tokenize.ts";
import { VERSION } from "../version.ts";

const commands: Readonly<Record<string, Command>> = {
  demo: demoCommand,
  export: exportCommand,
  run: runCommand,
  chat: chatCommand,
  eval: evalCommand,
  serve: serveCommand,
  inspect: inspectCommand,
  lint: lintCommand,
  info: infoCommand,
  tokenize: tokenizeCommand,
};

/** What `llamane --help` prints: every command with its summary, in aligned columns. */
export function overview(): string {
  const rows: [string, string][] = [
    ...Object.entries(commands).map(([name, c]): [string, string] => [name, c.summary]),
    ["help COMMAND", "print a command's flags (as llamane COMMAND --help does)"],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  const lines = rows.map(([name, summary]) => `  ${name.padEnd(width)}  ${summary}`);
  return `Usage: llamane <command> [flags]\n       llamane --version\n\nCommands:\n${
    lines.join("\n")
  }\n\nRun llamane help <command> for a command's flags.`;
}

/** The usage text of every command, by name, as `llamane <command> --help` prints it. */
export function commandUsages(): Readonly<Record<string, string>> {
  return Object.fromEntries(Object.entries(commands).map(([name, c]) => [name, c.usage]));
}

function unknownCommand(name: string): number {
  console.error(`llamane: unknown command "${name}"\n\n${overview()}`);
  return 2;
}

/** `llamane help [COMMAND]`. */
function help(topic: string | undefined): number {
  if (topic === undefined) {
    console.log(overview());
    return 0;
  }
  const command = commands[topic];
  if (command === undefined) return unknownCommand(topic);
  console.log(command.usage);
  return 0;
}

/** Runs the CLI on `argv` and returns the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    console.log(overview());
    return 2;
  }
  if (name === "--version") {
    console.log(`llamane ${VERSION}`);
    return 0;
  }
  if (name === "--help" || name === "-h") return help(undefined);
  if (name === "help") return help(rest[0]);
  const command = commands[name];
  if (command === undefined) return unknownCommand(name);
  const flags = flagArguments(rest);
  if (flags.includes("--help") || flags.includes("-h")) {
    console.log(command.usage);
    return 0;
  }
  try {
    await command.main(rest);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`llamane ${name}: ${printable(error.message)}\n\n${command.usage}`);
      return 2;
    }
    const message = error instanceof Error ? error.message : String(error);
    console.error(`llamane ${name}: ${printable(message)}`);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
